"""Inference-time image preprocessing, exactly CLIP's (and transformers'
``CLIPImageProcessor``'s, so a model exported by ``wit export --format hf`` gives the same
embeddings through ``CLIPProcessor``): decode, RGB with any transparency composited onto
white, resize the shorter side to the model's size (bicubic; the longer side to
``int(size * long / short)``), take the centre square (offsets rounded down), uint8 tensor
(CHW). The model normalises on device (``model.IMAGE_MEAN``/``IMAGE_STD``), so this is all
evaluation and the CLIP-score filter do to an image; training adds its random crop on top
(``training/sample_decoding.py``) and lets JPEGs decode at a reduced scale (``draft``).
Decoding goes through :mod:`pipeline.core.images`: only browser formats (never PIL's EPS
reader, which runs Ghostscript), bounded at ``MAX_DECODE_PIXELS`` (64 Mpx) and the decode
budget before any pixel is decoded."""

from __future__ import annotations

import re

import numpy as np
import torch
from PIL import Image

from pipeline.core.images import MAX_DECODE_PIXELS, decode_rgb

# pixels of the resized image before the centre crop (48 MiB in RGB: an aspect ratio up to
# 334:1 at 224 px). Beyond, e.g. a hostile 1 x 60,000,000 image, only the crop's source
# region is resized, with the same filter scale (equal to about 1e-4 in the embedding)
MAX_RESIZED_PIXELS = 1 << 24


def decode_image(data: bytes, size: int, draft: bool = True) -> Image.Image:
    """RGB, transparency composited onto white; with ``draft`` (training) JPEGs decoded at a
    reduced scale when much larger than ``size``, without (inference) in full, as
    transformers does. Raises :class:`pipeline.core.images.ImageError` for bytes refused or
    not decodable."""
    return decode_rgb(data, size, MAX_DECODE_PIXELS, draft=draft)


def center_crop(img: Image.Image, size: int) -> Image.Image:
    """Resize the shorter side to ``size`` (bicubic) and take the centre square, exactly as
    CLIP's ``Resize(size) + CenterCrop(size)`` and transformers' ``CLIPImageProcessor``."""
    width, height = img.size
    short, long = (width, height) if width <= height else (height, width)
    new_long = int(size * long / short)
    new_w, new_h = (size, new_long) if width <= height else (new_long, size)
    left, top = (new_w - size) // 2, (new_h - size) // 2
    if new_w * new_h <= MAX_RESIZED_PIXELS:
        resized = img.resize((new_w, new_h), Image.Resampling.BICUBIC)
        return resized.crop((left, top, left + size, top + size))
    sx, sy = width / new_w, height / new_h
    box = (left * sx, top * sy, (left + size) * sx, (top + size) * sy)
    return img.resize((size, size), Image.Resampling.BICUBIC, box=box)


def to_uint8_tensor(img: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.asarray(img, dtype=np.uint8).copy()).permute(2, 0, 1)


def image_tensor(data: bytes, size: int) -> torch.Tensor:
    """Encoded image bytes -> the ``size`` x ``size`` centre crop as a uint8 tensor."""
    return to_uint8_tensor(center_crop(decode_image(data, size, draft=False), size))


_OBJECT_REPR = re.compile(r"<[^<>]*? at 0x[0-9a-fA-F]+>")


def image_error_text(exc: BaseException) -> str:
    """What is wrong with an image, in one line without object reprs: Pillow names the file
    object it could not identify (``<_io.BytesIO object at 0x...>``), an address that differs
    between runs and tells nothing; the caller names the file or row."""
    text = _OBJECT_REPR.sub("the data", " ".join(str(exc).split()))[:300]
    return text or type(exc).__name__
