"""Opening strangers' image bytes: the one place every stage decodes through (the download,
training's samples, evaluation, decontamination, the CLIP score, pHash).

- **Allow-listed decoders** (:data:`FORMATS`): raster formats a browser shows. PIL's others
  are never tried — its EPS reader runs Ghostscript on the file, and many are exotic.
- **Bounded before any pixel is decoded**: the work a decoder would loop over is counted in
  the bytes first (JPEG scans, PNG chunks, GIF extension blocks: ``decode_budget``), an ICO's
  embedded frame is sized from its own header (PIL decodes it while opening), and the
  width x height from the header is checked against a pixel bound (``max_pixels``).
- **EXIF orientation without decoding**: a PNG's ``eXIf`` chunk may follow the pixel data,
  and PIL loads the whole image to find it; it is read from the chunk walk instead.
- **Memory budget** (:data:`DECODE_MEMORY`): the decoded bytes in flight per process are
  bounded, whatever the number of threads decoding.
- **Quiet**: PIL's warnings about hostile files are ignored by one filter installed at import
  (``warnings.catch_warnings`` is not thread-safe: entered by many threads at once it loses
  filters, and the warnings reach stderr).

Every refusal is an :class:`ImageError` with a reason (a ``filtered:`` reason of
``schemas.status`` or ``undecodable``) and a message that depends only on the bytes.
"""

from __future__ import annotations

import collections
import contextlib
import ctypes
import functools
import io
import re
import struct
import sys
import threading
import warnings
from collections.abc import Iterator
from typing import NamedTuple

from PIL import IcoImagePlugin, Image, UnidentifiedImageError

from pipeline.core.errors import InputError
from schemas import status as st

# Formats browsers display. (JPEG covers MPO, the multi-picture JPEGs of phone cameras; AVIF
# only where PIL has it.)
FORMATS = ("JPEG", "PNG", "GIF", "WEBP", "TIFF", "BMP", "ICO", "AVIF")
# The pixel bound of training, evaluation, the CLIP score and pHash (the download has its
# own, --max-pixels): 64 Mpx, an 8000 x 8000 image.
MAX_DECODE_PIXELS = 64_000_000
# Decode work: a progressive JPEG has ~10 scans; each costs a pass over every coefficient
# (0.8 MB with 8,000 scans of a 36 Mpx image took 16.8 CPU-s). PIL reads PNG chunks and GIF
# extension blocks one at a time in Python (~3 s per million); real files have thousands.
MAX_JPEG_SCANS = 100
MAX_PNG_CHUNKS = 100_000
MAX_GIF_BLOCKS = 100_000
# Decoded bytes in flight per process (see decode_cost): 1 GiB.
DECODE_MEMORY_BYTES = 1 << 30
_BYTES_PER_PIXEL = 14  # decode_cost of an RGB(A) image

UNDECODABLE = "undecodable"  # ImageError.reason of bytes that are not an allowed image

_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_ICO_MAGIC = b"\x00\x00\x01\x00"
_ORIENTATION = 0x0112

# PIL's warnings are about the file (truncated data, odd palettes, "decompression bomb"):
# row statuses and counts say what happened to it. One filter, installed once.
warnings.filterwarnings("ignore", module=r"PIL(\.|$)")


class ImageError(InputError, ValueError):
    """Image bytes refused before decoding or not decodable. ``reason``: ``max_pixels``,
    ``decode_budget`` (``schemas.status``) or :data:`UNDECODABLE`; ``shown_size``: the
    displayed (width, height) when the header was read."""

    def __init__(self, message: str, reason: str = UNDECODABLE,
                 shown_size: tuple[int, int] | None = None):
        super().__init__(clean_error(message))
        self.reason = reason
        self.shown_size = shown_size


class Opened(NamedTuple):
    """A lazily opened image (header read, nothing decoded) and its EXIF orientation (1-8)."""
    image: Image.Image
    orientation: int

    @property
    def shown_size(self) -> tuple[int, int]:
        """(width, height) as displayed: orientations 5-8 swap the axes."""
        width, height = self.image.size
        return (height, width) if self.orientation in (5, 6, 7, 8) else (width, height)


def clean_error(text: str) -> str:
    """An error text without object addresses, so that reruns write the same rows."""
    return _ADDRESS.sub("", text)


@functools.cache
def allowed_formats() -> tuple[str, ...]:
    Image.init()
    return tuple(f for f in FORMATS if f in Image.OPEN)


def open_image(data: bytes, max_pixels: int = MAX_DECODE_PIXELS,
               bound: str = "the decode bound") -> Opened:
    """``data`` opened lazily with the allowed decoders, after every check above; raises
    :class:`ImageError`. ``bound`` names ``max_pixels`` in messages (e.g. ``--max-pixels``)."""
    png_exif, opening_cost = _check_work(data, max_pixels, bound)
    try:
        with DECODE_MEMORY.hold(opening_cost):  # an ICO's frame is decoded while opening
            image = Image.open(io.BytesIO(data), formats=allowed_formats())
    except UnidentifiedImageError:
        raise ImageError("not a decodable image: unknown or unsupported format") from None
    except Image.DecompressionBombError as exc:
        raise ImageError(str(exc), st.MAX_PIXELS) from None
    except Exception as exc:  # noqa: BLE001 - PIL raises many types for garbage
        raise ImageError(f"not a decodable image: {exc}") from None
    opened = Opened(image, _orientation(image, png_exif))
    width, height = image.size
    if width * height > max_pixels:
        image.close()
        shown = opened.shown_size
        raise ImageError(f"{shown[0]}x{shown[1]} = {width * height} pixels exceeds {bound} "
                         f"{max_pixels}", st.MAX_PIXELS, shown)
    return opened


def decode_cost(image: Image.Image) -> int:
    """Estimated peak bytes of decoding ``image`` at its (drafted) size and converting it:
    PIL keeps 1 byte per pixel for L, 2 for 16-bit, 4 for the rest, and a conversion or a
    NumPy copy holds one or two more full-size copies (peaks measured at 40 Mpx: L 3.4, RGB
    10-13, RGBA 8, 16-bit grey 14 bytes per pixel)."""
    mode = image.mode
    per_pixel = 4 if mode in ("1", "L") else 16 if mode.startswith("I") or mode == "F" else _BYTES_PER_PIXEL
    return image.width * image.height * per_pixel


class MemoryBudget:
    """A byte-weighted semaphore: :meth:`hold` waits until ``nbytes`` more fit under the
    capacity. First come, first served (a large image is not starved by small ones); one
    larger than the whole capacity runs alone."""

    def __init__(self, capacity: int):
        self.capacity = capacity
        self.in_use = 0
        self._queue: collections.deque[object] = collections.deque()
        self._changed = threading.Condition()

    @contextlib.contextmanager
    def hold(self, nbytes: int) -> Iterator[None]:
        weight = min(max(nbytes, 0), self.capacity)
        ticket = object()
        with self._changed:
            self._queue.append(ticket)
            self._changed.wait_for(
                lambda: self._queue[0] is ticket and self.in_use + weight <= self.capacity)
            self._queue.popleft()
            self.in_use += weight
            self._changed.notify_all()
        try:
            yield
        finally:
            with self._changed:
                self.in_use -= weight
                self._changed.notify_all()


DECODE_MEMORY = MemoryBudget(DECODE_MEMORY_BYTES)
MMAP_THRESHOLD_BYTES = 4 << 20


def return_freed_images_to_the_system() -> None:
    """Called once by each download worker process (not at import: training and Beam workers
    keep glibc's default). glibc serves large blocks from per-thread arenas once its dynamic mmap threshold has
    grown (to 32 MB), and each thread keeps what it freed: six download threads decoding
    one 40 Mpx image at a time still grew a worker by six images. A fixed threshold keeps
    image-sized blocks in mmap, given back when freed (measured: +1.05 GB -> +0.45 GB)."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None).mallopt(-3, MMAP_THRESHOLD_BYTES)  # M_MMAP_THRESHOLD


def decoding(image: Image.Image) -> contextlib.AbstractContextManager[None]:
    """Hold this process's memory budget for decoding and converting ``image``."""
    return DECODE_MEMORY.hold(decode_cost(image))


def to_rgb(image: Image.Image) -> Image.Image:
    """RGB; an image with transparency (an alpha band, or a palette or colour key marked
    transparent) is composited onto white first, as transformers' CLIP image processor does
    (so an exported model sees what `wit eval` sees: training/export_hf.py)."""
    if "A" in image.getbands() or image.info.get("transparency") is not None:
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def decode_rgb(data: bytes, size: int, max_pixels: int = MAX_DECODE_PIXELS,
               draft: bool = True) -> Image.Image:
    """``data`` decoded to RGB (:func:`to_rgb`) for training, evaluation and the CLIP score;
    with ``draft`` JPEGs at the smallest DCT scale that keeps ``size`` x ``size`` (training),
    without in full (inference, as transformers decodes). Raises :class:`ImageError`."""
    image = open_image(data, max_pixels).image
    try:
        with image:
            if draft:
                image.draft("RGB", (size, size))
            with decoding(image):
                return to_rgb(image)
    except Exception as exc:  # noqa: BLE001 - truncated or corrupt data after the header
        raise ImageError(f"not a decodable image: {type(exc).__name__}: {exc}") from None


# ---------------------------------------------------------------- checks before decoding

def _check_work(data: bytes, max_pixels: int, bound: str) -> tuple[bytes | None, int]:
    """Refuse the bytes whose decoding would loop too long or whose ICO frame is too large;
    returns (a PNG's ``eXIf`` payload in PIL's form or None, the bytes decoded by opening)."""
    if data.startswith(b"\xff\xd8\xff"):
        scans = data.count(b"\xff\xda")  # 0xFF is stuffed in entropy-coded data
        if scans > MAX_JPEG_SCANS:
            raise ImageError(f"JPEG with {scans} scans exceeds the decode budget of "
                             f"{MAX_JPEG_SCANS} scans", st.DECODE_BUDGET)
    elif data.startswith(_PNG_MAGIC):
        return _walk_png(data), 0
    elif data.startswith((b"GIF87a", b"GIF89a")):
        _walk_gif(data)
    elif data.startswith(_ICO_MAGIC):
        return None, _check_ico(data, max_pixels, bound) * _BYTES_PER_PIXEL
    return None, 0


def _walk_png(data: bytes) -> bytes | None:
    """Count the chunks (length + type + CRC, bodies skipped) up to IEND; the ``eXIf`` body."""
    pos, count, exif = len(_PNG_MAGIC), 0, None
    while pos + 8 <= len(data):
        length, kind = struct.unpack_from(">I4s", data, pos)
        count += 1
        if count > MAX_PNG_CHUNKS:
            raise ImageError(f"PNG with over {MAX_PNG_CHUNKS} chunks exceeds the decode budget",
                             st.DECODE_BUDGET)
        if kind == b"eXIf" and exif is None:
            exif = b"Exif\x00\x00" + data[pos + 8:pos + 8 + length]
        if kind == b"IEND":
            break
        pos += 12 + length
    return exif


def _walk_gif(data: bytes) -> None:
    """Count the extension sub-blocks before the first image (PIL reads them in Python)."""
    flags = data[10] if len(data) > 10 else 0
    pos = 13 + ((3 << ((flags & 7) + 1)) if flags & 0x80 else 0)  # header + global palette
    blocks = 0
    while pos < len(data) and data[pos] == 0x21:  # an extension: introducer, label, sub-blocks
        pos += 2
        while pos < len(data):
            size = data[pos]
            pos += 1 + size
            blocks += 1
            if blocks > MAX_GIF_BLOCKS:
                raise ImageError(f"GIF with over {MAX_GIF_BLOCKS} extension blocks exceeds the "
                                 "decode budget", st.DECODE_BUDGET)
            if size == 0:
                break


def _check_ico(data: bytes, max_pixels: int, bound: str) -> int:
    """PIL's ICO reader decodes its first entry (the largest) while opening, at the size of
    the embedded PNG or BMP, whatever the directory says: size that frame from its header.
    Returns its pixel count."""
    try:
        entries = IcoImagePlugin.IcoFile(io.BytesIO(data)).entry
    except Exception as exc:  # noqa: BLE001 - a broken directory: PIL refuses it too
        raise ImageError(f"not a decodable image: ICO: {exc}") from None
    if not entries:
        return 0
    frame = data[entries[0].offset:]
    if frame.startswith(_PNG_MAGIC):
        _walk_png(frame)
        width, height = struct.unpack_from(">II", frame, 16) if len(frame) >= 24 else (0, 0)
    elif len(frame) >= 12:
        header_size = struct.unpack_from("<I", frame)[0]
        if header_size == 12:  # BITMAPCOREHEADER
            width, height = struct.unpack_from("<HH", frame, 4)
        else:  # BITMAPINFOHEADER and later: the height counts the AND mask too
            width, height = (abs(v) for v in struct.unpack_from("<ii", frame, 4))
        height //= 2
    else:
        return 0
    if width * height > max_pixels:
        raise ImageError(f"ICO frame {width}x{height} = {width * height} pixels exceeds {bound} "
                         f"{max_pixels}", st.MAX_PIXELS, (width, height))
    return width * height


def _orientation(image: Image.Image, png_exif: bytes | None) -> int:
    """The EXIF orientation, 1 when absent or unreadable (as browsers do), read without
    decoding: a PNG's from its ``eXIf`` chunk wherever it is (PIL's ``getexif`` would load
    the image to reach one after the pixel data)."""
    try:
        if image.format == "PNG":
            exif = Image.Exif()
            exif.load(image.info.get("exif") or png_exif or b"")
        else:
            exif = image.getexif()
        value = int(exif.get(_ORIENTATION, 1))
    except Exception:  # noqa: BLE001 - a broken EXIF block is ignored, as browsers do
        return 1
    return value if 1 <= value <= 8 else 1
