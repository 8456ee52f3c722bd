"""The demo's held-out evaluation set: OpenClipart items of ten top-level categories that are
kept out of the mini-web (so never in the training shards), labelled by their category.

Written as an image folder per class for ``wit eval --zeroshot`` (and ``wit shards
--eval-images``, which removes near-copies of them from the shards as contaminated) and as a
WebDataset shard of (image, caption) pairs for ``wit eval --retrieval``. Images are composited
on white and stored as JPEG, as img2dataset does for the training images.
"""

from __future__ import annotations

import io
import json
import tarfile
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from pipeline.demo.miniweb import OPENCLIPART, ClipArt, bucket

# top-level folder -> class name used in the zero-shot prompts ("a photo of a {}.")
EVAL_CLASSES = {"animals": "animal", "buildings": "building", "computer": "computer",
                "food": "food", "geography": "map", "office": "office", "people": "people",
                "plants": "plant", "tools": "tool", "transportation": "transport"}


@dataclass(frozen=True)
class Split:
    web: list[ClipArt]
    heldout: list[ClipArt]


def split(items: list[ClipArt], web_images: int, per_class: int) -> Split:
    """Hold out up to per_class items of each eval class (at most a quarter of the class),
    then take web_images of the rest for the mini-web; both in a stable pseudo-random order."""
    ordered = sorted(items, key=lambda item: (bucket(item.relpath, 1 << 30), item.relpath))
    held: list[ClipArt] = []
    for category in EVAL_CLASSES:
        members = [item for item in ordered if item.category == category]
        held.extend(members[:min(per_class, len(members) // 4)])
    chosen = {item.relpath for item in held}
    web = [item for item in ordered if item.relpath not in chosen][:web_images]
    return Split(web=web, heldout=held)


def _jpeg(png: Path, size: int = 256) -> bytes:
    with Image.open(png) as img:
        img.draft("RGB", (size, size))
        rgba = img.convert("RGBA")
    rgba.thumbnail((size, size))
    white = Image.new("RGB", rgba.size, (255, 255, 255))
    white.paste(rgba, mask=rgba.getchannel("A"))
    out = io.BytesIO()
    white.save(out, "JPEG", quality=90)
    return out.getvalue()


def write_heldout(items: list[ClipArt], out: Path, root: Path = OPENCLIPART) -> dict[str, int]:
    """out/zeroshot/CLASS/KEY.jpg and out/retrieval/00000.tar (+ sizes.json); returns the
    number of images per class."""
    counts: dict[str, int] = {}
    (out / "retrieval").mkdir(parents=True, exist_ok=True)
    partial = out / "retrieval" / "00000.tar.part"
    with tarfile.open(partial, "w") as tar:
        for n, item in enumerate(items):
            label = EVAL_CLASSES[item.category]
            data = _jpeg(root / "png" / item.png)
            key = f"{n:05d}"
            folder = out / "zeroshot" / label
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"{key}.jpg").write_bytes(data)
            for name, payload in ((f"{key}.jpg", data), (f"{key}.txt", item.caption.encode())):
                info = tarfile.TarInfo(name)
                info.size, info.mtime = len(payload), 0
                tar.addfile(info, io.BytesIO(payload))
            counts[label] = counts.get(label, 0) + 1
    partial.rename(out / "retrieval" / "00000.tar")
    (out / "retrieval" / "sizes.json").write_text(json.dumps({"00000.tar": len(items)}))
    return counts
