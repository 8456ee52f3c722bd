"""Realistic clustered pHashes for the near-duplicate benchmark (helper of dedup_scale.py).

Real images: the Debian openclipart-png set (line art and flat colour on white: pHashes that
cluster far more than random bits). Each *family* is one distinct picture, derived from one
or two clip-arts (whole, a random crop, mirrored, two side by side) or a text-only /
near-blank picture (the hot cluster of real crawls), followed by near-duplicate copies of it
(resize, JPEG re-encode, border crop, brightness, small rotation, watermark text). Items are
listed family by family in a seeded random order, so the first N items are whole families
with the same duplicate rate at every N. Cached under .cache/.
"""

from __future__ import annotations

import io
import random
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFont

REPO = Path(__file__).resolve().parents[1]

from pipeline.shards.phash import phash_image  # noqa: E402

OPENCLIPART = Path("/usr/share/openclipart/png")
CACHE = REPO / ".cache"
BASE_SIDE = 160  # clip-arts are kept at this size: pHash looks at 32x32
WORDS = ("sale free photo stock news today best price click here logo text the of and "
         "image copyright all rights reserved welcome home page menu login").split()


def base_images() -> list[Image.Image]:
    """Every clip-art flattened on white, greyscale, longest side BASE_SIDE (cached)."""
    cache = CACHE / "dedup_clipart_base.npz"
    if cache.exists():
        data = np.load(cache)
        return [Image.fromarray(data[f"a{i}"]) for i in range(len(data.files))]
    images = []
    for path in sorted(OPENCLIPART.rglob("*.png")):
        try:
            with Image.open(path) as opened:
                opened.draft("RGBA", (BASE_SIDE * 2, BASE_SIDE * 2))
                rgba = opened.convert("RGBA")
        except Exception:  # noqa: BLE001 - a broken file in the system package: skip it
            continue
        rgba.thumbnail((BASE_SIDE, BASE_SIDE), Image.Resampling.LANCZOS)
        flat = Image.new("RGB", rgba.size, "white")
        flat.paste(rgba, mask=rgba.split()[-1])
        images.append(flat.convert("L"))
    CACHE.mkdir(exist_ok=True)
    np.savez(cache, **{f"a{i}": np.asarray(im) for i, im in enumerate(images)})
    return images


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    try:
        return ImageFont.truetype("DejaVuSans.ttf", size)
    except OSError:
        return ImageFont.load_default()


def _text_image(rng: random.Random) -> Image.Image:
    """Text-only or near-blank pictures: the dense cluster of real crawls."""
    w, h = rng.randint(80, 200), rng.randint(60, 160)
    image = Image.new("L", (w, h), rng.choice([255, 255, 250, 240, 0]))
    draw = ImageDraw.Draw(image)
    ink = 0 if image.getpixel((0, 0)) > 128 else 255
    for _ in range(rng.choice([0, 1, 1, 2, 3])):
        text = " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 4)))
        draw.text((rng.randint(0, w // 2), rng.randint(0, h - 10)), text, fill=ink,
                  font=_font(rng.randint(8, 24)))
    return image


def distinct_picture(bases: list[Image.Image], rng: random.Random) -> Image.Image:
    kind = rng.random()
    if kind < 0.15:
        return _text_image(rng)
    image = rng.choice(bases)
    if kind < 0.45:
        return image
    if kind < 0.75:  # a random crop of 40-90% of each side
        w, h = image.size
        cw = min(w, max(8, int(w * rng.uniform(0.4, 0.9))))
        ch = min(h, max(8, int(h * rng.uniform(0.4, 0.9))))
        left, top = rng.randint(0, w - cw), rng.randint(0, h - ch)
        image = image.crop((left, top, left + cw, top + ch))
        return image.transpose(Image.Transpose.FLIP_LEFT_RIGHT) if rng.random() < 0.5 else image
    other = rng.choice(bases)  # two clip-arts side by side
    canvas = Image.new("L", (image.width + other.width, max(image.height, other.height)), 255)
    canvas.paste(image, (0, 0))
    canvas.paste(other, (image.width, 0))
    return canvas


def _jpeg(image: Image.Image, quality: int) -> Image.Image:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    buffer.seek(0)
    return Image.open(buffer).convert("L")


def perturbed(image: Image.Image, rng: random.Random) -> Image.Image:
    w, h = image.size
    kind = rng.randrange(6)
    if kind == 0:
        scale = rng.uniform(0.4, 0.8)
        return image.resize((max(8, int(w * scale)), max(8, int(h * scale))))
    if kind == 1:
        return _jpeg(image, rng.randint(20, 80))
    if kind == 2:
        f = rng.uniform(0.02, 0.06)
        return image.crop((int(w * f), int(h * f), w - int(w * f), h - int(h * f)))
    if kind == 3:
        return ImageEnhance.Brightness(image).enhance(rng.uniform(0.75, 1.3))
    if kind == 4:
        return image.rotate(rng.uniform(-3, 3), resample=Image.Resampling.BILINEAR, fillcolor=255)
    marked = image.copy()
    ImageDraw.Draw(marked).text((rng.randint(0, w // 3), rng.randint(0, max(1, h - 12))),
                                rng.choice(["(c) stock", "sample", "www.example.com"]),
                                fill=rng.choice([128, 200]), font=_font(rng.randint(8, 14)))
    return marked


def realistic_hashes(count: int, seed: int = 0) -> np.ndarray:
    """``count`` pHashes (uint64), family by family; cached by (count, seed)."""
    cache = CACHE / f"dedup_hashes_{seed}_{count}.npy"
    if cache.exists():
        return np.load(cache)
    for bigger in sorted(CACHE.glob(f"dedup_hashes_{seed}_*.npy")):
        if int(bigger.stem.rsplit("_", 1)[1]) >= count:
            return np.load(bigger)[:count]
    bases = base_images()
    rng = random.Random(seed)
    values: list[int] = []
    CACHE.mkdir(exist_ok=True)
    milestones = [m for m in (50_000, 200_000, 400_000, 800_000) if m < count]
    while len(values) < count:
        if milestones and len(values) >= milestones[0]:  # keep the prefixes: a long run
            np.save(CACHE / f"dedup_hashes_{seed}_{milestones[0]}.npy",  # may be cut short
                    np.array(values[:milestones.pop(0)], dtype=np.uint64))
        picture = distinct_picture(bases, rng)
        values.append(phash_image(picture))
        copies = rng.choice([0, 0, 0, 1, 1, 2, 3, 5])  # ~1.6 copies per picture on average
        for _ in range(copies):
            values.append(phash_image(perturbed(picture, rng)))
    array = np.array(values[:count], dtype=np.uint64)
    np.save(cache, array)
    return array


if __name__ == "__main__":
    import time

    start = time.process_time()
    result = realistic_hashes(int(sys.argv[1]))
    print(len(result), "hashes", len(np.unique(result)), "distinct",
          f"{time.process_time() - start:.1f} CPU-s")
