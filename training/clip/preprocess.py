"""Inference-time image preprocessing: decode, centre crop, uint8 tensor (CHW). The model
normalises on device (``model.IMAGE_MEAN``/``IMAGE_STD``), so this is all evaluation and the
CLIP-score filter do to an image; training adds its random crop on top
(``training/sample_decoding.py``). Decoding goes through :mod:`pipeline.core.images`: only
browser formats (never PIL's EPS reader, which runs Ghostscript), bounded at
``MAX_DECODE_PIXELS`` (64 Mpx) and the decode budget before any pixel is decoded."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from pipeline.core.images import MAX_DECODE_PIXELS, decode_rgb


def decode_image(data: bytes, size: int) -> Image.Image:
    """RGB, JPEGs decoded at a reduced scale when much larger than ``size``; raises
    :class:`pipeline.core.images.ImageError` for bytes refused or not decodable."""
    return decode_rgb(data, size, MAX_DECODE_PIXELS)


def center_crop(img: Image.Image, size: int) -> Image.Image:
    """Resize the shorter side to ``size`` and take the centre square (evaluation)."""
    width, height = img.size
    side = min(width, height)
    left, top = (width - side) // 2, (height - side) // 2
    return img.resize((size, size), Image.Resampling.BICUBIC, box=(left, top, left + side, top + side))


def to_uint8_tensor(img: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.asarray(img, dtype=np.uint8).copy()).permute(2, 0, 1)


def image_tensor(data: bytes, size: int) -> torch.Tensor:
    """Encoded image bytes -> the ``size`` x ``size`` centre crop as a uint8 tensor."""
    return to_uint8_tensor(center_crop(decode_image(data, size), size))
