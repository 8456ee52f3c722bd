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

class MalformedMetadata(ValueError):
    """A sample's ``KEY.json`` that does not parse (nesting too deep included), is not an
    object, or whose ``texts`` is not a list: the sample is skipped and counted
    (``bad_metadata``)."""


def sample_texts(sample: dict[str, Any], caption: str) -> list[str]:
    """The texts of a sample: KEY.json's ``texts`` (an image's kept alt, title, ...), else
    just its caption (shards without ``texts``, or without a string among them); a
    :class:`MalformedMetadata` for a JSON that is damaged."""
    texts = None
    if "json" in sample:
        try:
            meta = json.loads(sample["json"])
        except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
            kind = "nested too deep" if isinstance(exc, RecursionError) else "not JSON"
            raise MalformedMetadata(f"KEY.json {kind}") from None
        if not isinstance(meta, dict):
            raise MalformedMetadata(f"KEY.json is a {type(meta).__name__}, not an object")
        texts = meta.get("texts")
        if texts is not None and not isinstance(texts, list):
            raise MalformedMetadata(f"KEY.json's texts is a {type(texts).__name__}, not a list")
    if texts:
        found = [" ".join(t.split()) for t in texts if isinstance(t, str) and t.strip()]
        if found:
            return found
    return [caption]


def pick_text(sample: dict[str, Any], caption: str, mode: str, seed: int, epoch: int) -> str:
    """``first``: the caption; ``random``: one of :func:`sample_texts`, drawn from (seed,
    epoch, sample key) alone, so the same on any rank, worker count or shuffle order.
    Raises :class:`MalformedMetadata` (``random`` only: ``first`` reads no KEY.json)."""
    if mode == "first":
        return caption
    texts = sample_texts(sample, caption)
    if len(texts) == 1:
        return texts[0]
    rng = random.Random(mix_seed(seed, epoch, "text", str(sample.get("__key__"))))
    return rng.choice(texts)

