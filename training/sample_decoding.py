"""One training sample's parts: its image randomly resized and cropped, its texts, and the
seeds that make every random choice reproducible. Decoding and the centre crop (evaluation,
the CLIP-score filter) are the library's: ``training/clip/preprocess.py``."""

from __future__ import annotations

import hashlib
import json
import math
import random
from typing import Any

from PIL import Image

from training.clip.preprocess import center_crop


def mix_seed(*parts: int | str) -> int:
    """A 63-bit seed from several parts, stable across processes and Python versions."""
    digest = hashlib.blake2b(repr(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


# ---------------------------------------------------------------- images

def random_resized_crop(img: Image.Image, size: int, rng: random.Random,
                        scale: tuple[float, float] = (0.9, 1.0),
                        ratio: tuple[float, float] = (3 / 4, 4 / 3)) -> Image.Image:
    """A crop of random area fraction in ``scale`` and aspect ratio in ``ratio`` (log-uniform),
    resized to size x size; falls back to the centre square (as torchvision does)."""
    width, height = img.size
    area = width * height
    for _ in range(10):
        target = area * rng.uniform(*scale)
        aspect = math.exp(rng.uniform(math.log(ratio[0]), math.log(ratio[1])))
        w = round(math.sqrt(target * aspect))
        h = round(math.sqrt(target / aspect))
        if 0 < w <= width and 0 < h <= height:
            left, top = rng.randint(0, width - w), rng.randint(0, height - h)
            return img.resize((size, size), Image.Resampling.BICUBIC, box=(left, top, left + w, top + h))
    return center_crop(img, size)


# ---------------------------------------------------------------- texts

def sample_texts(sample: dict[str, Any], caption: str) -> list[str]:
    """The texts of a sample: KEY.json's ``texts`` (an image's kept alt, title, ...), else
    just its caption (shards without ``texts``, or an unreadable JSON)."""
    try:
        texts = json.loads(sample["json"]).get("texts") if "json" in sample else None
    except (ValueError, AttributeError):
        texts = None
    if isinstance(texts, list):
        found = [" ".join(t.split()) for t in texts if isinstance(t, str) and t.strip()]
        if found:
            return found
    return [caption]


def pick_text(sample: dict[str, Any], caption: str, mode: str, seed: int, epoch: int) -> str:
    """``first``: the caption; ``random``: one of :func:`sample_texts`, drawn from (seed,
    epoch, sample key) alone, so the same on any rank, worker count or shuffle order."""
    if mode == "first":
        return caption
    texts = sample_texts(sample, caption)
    if len(texts) == 1:
        return texts[0]
    rng = random.Random(mix_seed(seed, epoch, "text", str(sample.get("__key__"))))
    return rng.choice(texts)

