"""Decoding, resizing and encoding one downloaded image (what img2dataset's ``Resizer`` did,
done right for web images and cheaper).

- **Bounded before decoding** (:mod:`pipeline.core.images`, the one place every stage opens
  images through): only the decoders a browser has, the work a decoder would loop over
  counted in the bytes (``filtered:decode_budget``), the header's size checked against
  ``max_pixels`` (an ICO's embedded frame included) and an aspect-ratio limit before any
  pixel is decoded, and decoding held to the process's memory budget.
- **Reduced-scale JPEG decoding**: when the target is at least twice smaller, libjpeg's DCT
  scaling (PIL ``draft``) decodes at 1/2, 1/4 or 1/8 of the size — most of a large JPEG's
  decode and resize cost — and the result is still at least the target size, so the final
  area (box) downscale keeps the quality of a full decode.
- **Every mode to 8-bit RGB or L**: 16-bit greyscale (``I;16``, ``I``) scaled by 1/257
  (not clipped), palette and transparency, LA/RGBA matted on white (as img2dataset does),
  CMYK, YCbCr. (Embedded ICC profiles are not applied, as img2dataset does not.)
- **EXIF orientation** applied, and the displayed size reported as the original size.
- The 64-bit pHash is computed from the small image in hand (before padding), not from a
  second decode of the encoded bytes.

Errors are row statuses with messages that depend only on the bytes (no object addresses).
"""

from __future__ import annotations

import functools
import io
import math
from dataclasses import dataclass, field, replace

import numpy as np
from PIL import Image

from pipeline.core.cliargs import bounded, positive_int
from pipeline.core.errors import UsageError
from pipeline.core.image_rights import image_license_signals
from pipeline.core.images import UNDECODABLE, ImageError, Opened, clean_error, decoding, open_image
from pipeline.core.options import option
from pipeline.shards.filters import FilterConfig
from pipeline.shards.option_groups import DOWNLOAD
from pipeline.shards.phash import phash_image
from schemas import status as st

# Beyond this ratio of the long to the short side a resize to the target size is
# degenerate (a 1x100000 strip would become 256x25,600,000 in keep_ratio mode).
MAX_ASPECT_RATIO = 100.0
DRAFT_FACTOR = 2.0  # decoding at >= 2x the target keeps SSIM vs a full decode at ~0.99
MODES = ("no", "keep_ratio", "center_crop", "border", "keep_ratio_largest")
WHITE = 255
# EXIF orientation -> the transposition that shows the picture upright (as browsers do);
# 5-8 swap the axes, so the displayed width is the stored height
_TRANSPOSE = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180,
              4: Image.Transpose.FLIP_TOP_BOTTOM, 5: Image.Transpose.TRANSPOSE,
              6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
              8: Image.Transpose.ROTATE_90}


# --encode-quality per --encode-format: (lowest, highest, default); PNG's is the zlib level
ENCODE_QUALITY = {"jpg": (0, 100, 95), "webp": (0, 100, 95), "png": (0, 9, 6)}
ENCODE_SCALE = {"jpg": "JPEG quality", "webp": "WebP quality", "png": "PNG compression level"}


@dataclass(frozen=True)
class ResizeConfig:
    image_size: int = option(256, type=positive_int, group=DOWNLOAD,
                             help="target size in px, as img2dataset's image_size")
    resize_mode: str = option(
        "keep_ratio", choices=MODES, group=DOWNLOAD,
        help="as img2dataset's resize_mode; images are first turned upright by their EXIF "
             "orientation")
    resize_only_if_bigger: bool = option(False, group=DOWNLOAD,
                                         help="never upscale small images (default: off)")
    encode_format: str = option("jpg", choices=("jpg", "png", "webp"), group=DOWNLOAD,
                                help="image format in the shards")
    # None: the format's default (ENCODE_QUALITY); set in __post_init__
    encode_quality: int = option(
        None, type=bounded(int, 0, 100), group=DOWNLOAD,
        help="JPEG/WebP quality 0-100 (default 95) or PNG compression level 0-9 (default 6)")
    # the filters' resource guard (--max-pixels), checked from the header before decoding
    max_pixels: int = FilterConfig.max_pixels

    def __post_init__(self) -> None:
        low, high, default = ENCODE_QUALITY[self.encode_format]
        if self.encode_quality is None:
            object.__setattr__(self, "encode_quality", default)
        elif not low <= self.encode_quality <= high:  # else every image fails to encode
            raise UsageError(
                f"--encode-quality {self.encode_quality} does not fit --encode-format "
                f"{self.encode_format}: {ENCODE_SCALE[self.encode_format]} is {low}-{high}")


@dataclass
class Processed:
    """The outcome for one image: ``status`` is ``success`` or a row status."""
    status: str
    error: str | None = None
    data: bytes | None = None
    width: int | None = None
    height: int | None = None
    original_width: int | None = None
    original_height: int | None = None
    phash: int | None = None
    # licence signals embedded in the image (EXIF, IPTC, XMP), read from its header blocks
    licenses: list[str] = field(default_factory=list)


def jpeg_is_truncated(data: bytes) -> bool:
    """A JPEG whose last scan has no end-of-image marker after it was cut short (decoders
    would silently fill the rest grey). In entropy-coded data 0xFF is always stuffed, so
    FFD9 only appears as a marker."""
    last_scan = data.rfind(b"\xff\xda")
    return last_scan != -1 and data.find(b"\xff\xd9", last_scan) == -1


def scaled_size(width: int, height: int, config: ResizeConfig) -> tuple[int, int]:
    """The size the picture is scaled to (before a centre crop or padding)."""
    mode, size = config.resize_mode, config.image_size
    if mode == "no":
        return width, height
    side = min(width, height) if mode in ("keep_ratio", "center_crop") else max(width, height)
    if config.resize_only_if_bigger and side <= size:
        return width, height
    scale = size / side
    return max(1, round(width * scale)), max(1, round(height * scale))


def _to_8bit(image: Image.Image) -> Image.Image:
    """Any PIL mode -> RGB, RGBA, L or LA, 8 bits per channel."""
    mode = image.mode
    if mode in ("RGB", "RGBA", "L", "LA", "CMYK"):
        return image
    if mode.startswith("I;16") or mode == "I":
        # 16-bit greyscale: 0..65535 -> 0..255 (PIL's own convert clips at 255: white)
        pixels = np.asarray(image).astype(np.float32)
        return Image.fromarray(np.clip(np.rint(pixels / 257.0), 0, 255).astype(np.uint8), "L")
    if mode == "F":
        return Image.fromarray(np.clip(np.rint(np.asarray(image)), 0, 255).astype(np.uint8), "L")
    if mode == "1":
        return image.convert("L")
    if mode == "P":
        return image.convert("RGBA" if "transparency" in image.info else "RGB")
    if mode in ("PA", "RGBa", "RGBX"):
        return image.convert("RGBA" if mode != "RGBX" else "RGB")
    if mode == "La":
        return image.convert("LA")
    return image.convert("RGB")  # YCbCr, LAB, HSV, ...


@functools.cache
def _cv2():
    """OpenCV, single-threaded: the download threads are the parallelism (as img2dataset)."""
    import cv2

    cv2.setNumThreads(1)
    return cv2


def _resize(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    """OpenCV's area average down (exact pixel-area weights, as img2dataset) and Lanczos up.
    Images with alpha are resized by PIL, which premultiplies the alpha (no colour bleeding
    from transparent pixels), so matting after the resize equals matting before it."""
    upscale = size[0] > image.width
    if image.mode in ("RGBA", "LA"):
        return image.resize(size, Image.Resampling.LANCZOS if upscale else Image.Resampling.BOX)
    cv2 = _cv2()
    pixels = cv2.resize(np.asarray(image), size,
                        interpolation=cv2.INTER_LANCZOS4 if upscale else cv2.INTER_AREA)
    return Image.fromarray(pixels, image.mode)


def _colour(image: Image.Image) -> Image.Image:
    """8-bit image -> RGB or L (alpha matted on white, as img2dataset does)."""
    if image.mode in ("RGBA", "LA"):
        base = Image.new(image.mode[:-1], image.size, (WHITE,) * (len(image.mode) - 1))
        base.paste(image.convert(image.mode[:-1]), mask=image.getchannel("A"))
        image = base
    return image if image.mode in ("RGB", "L") else image.convert("RGB")


def _fit(image: Image.Image, config: ResizeConfig) -> tuple[Image.Image, Image.Image]:
    """(stored image, picture without padding) after the centre crop or the border."""
    size = config.image_size
    if config.resize_mode == "center_crop" and (image.width > size or image.height > size):
        w, h = min(size, image.width), min(size, image.height)
        left, top = (image.width - w) // 2, (image.height - h) // 2
        image = image.crop((left, top, left + w, top + h))
        return image, image
    if config.resize_mode == "border" and (image.width < size or image.height < size):
        w, h = max(size, image.width), max(size, image.height)
        padded = Image.new(image.mode, (w, h), (WHITE,) * len(image.getbands()))
        padded.paste(image, ((w - image.width) // 2, (h - image.height) // 2))
        return padded, image
    return image, image


def _encode(image: Image.Image, config: ResizeConfig) -> bytes:
    buffer = io.BytesIO()
    if config.encode_format == "jpg":
        image.save(buffer, "JPEG", quality=config.encode_quality)
    elif config.encode_format == "png":
        image.save(buffer, "PNG", compress_level=config.encode_quality)
    elif config.encode_format == "webp":
        image.save(buffer, "WEBP", quality=config.encode_quality)
    else:
        raise ValueError(f"unknown encode format {config.encode_format}")
    return buffer.getvalue()


def process_image(data: bytes, config: ResizeConfig) -> Processed:
    """Encoded image bytes -> the stored image and its fields, or a row status."""
    try:
        opened = open_image(data, config.max_pixels, "--max-pixels")
    except ImageError as exc:
        status = st.FAILED_TO_RESIZE if exc.reason == UNDECODABLE else st.filtered(exc.reason)
        shown = exc.shown_size or (None, None)
        return Processed(status, str(exc), original_width=shown[0], original_height=shown[1])
    image = opened.image
    licenses = image_license_signals(image)  # from the header blocks: nothing decoded
    with image:
        raw_w, raw_h = image.size
        shown_w, shown_h = opened.shown_size
        if max(raw_w, raw_h) > MAX_ASPECT_RATIO * min(raw_w, raw_h):
            return Processed(st.filtered(st.ASPECT_RATIO), f"{shown_w}x{shown_h}: aspect ratio "
                             f"over {MAX_ASPECT_RATIO:g} cannot be resized",
                             original_width=shown_w, original_height=shown_h,
                             licenses=licenses)
        target = scaled_size(raw_w, raw_h, config)
        if image.format in ("JPEG", "MPO") and target[0] * 2 <= raw_w and target[1] * 2 <= raw_h:
            # DCT scaling: the decoded size stays >= DRAFT_FACTOR x the target
            image.draft(None, (math.ceil(target[0] * DRAFT_FACTOR), math.ceil(target[1] * DRAFT_FACTOR)))
        with decoding(image):  # the full-size pixels live only while the budget is held
            try:
                done = _decode_and_store(opened, target, config)
            finally:
                image.close()
    return replace(done, original_width=shown_w, original_height=shown_h, licenses=licenses)


def _decode_and_store(opened: Opened, target: tuple[int, int], config: ResizeConfig) -> Processed:
    image, orientation = opened
    try:
        image.load()
        picture = _to_8bit(image)
        if picture.size != target:
            picture = _resize(picture, target)
        picture = _colour(picture)
        if orientation in _TRANSPOSE:
            picture = picture.transpose(_TRANSPOSE[orientation])
        stored, content = _fit(picture, config)
        phash = phash_image(content)
        encoded = _encode(stored, config)
    except Image.DecompressionBombError as exc:
        return Processed(st.filtered(st.MAX_PIXELS), clean_error(str(exc)))
    except Exception as exc:  # noqa: BLE001 - truncated/corrupt data: a row status
        return Processed(st.FAILED_TO_RESIZE, clean_error(f"{type(exc).__name__}: {exc}"))
    return Processed(st.SUCCESS, None, encoded, stored.width, stored.height, phash=phash)
