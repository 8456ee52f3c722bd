"""64-bit perceptual hashes (imagehash's DCT pHash) and the LSH band keys that let a
distributed job find every pair within a Hamming distance.

Pigeonhole: split the 64 bits into ``d + 1`` bands; two hashes that differ in at most ``d``
bits agree exactly on at least one band. Grouping by (band index, band value) therefore puts
every near-duplicate pair together in some group, and checking pairs only in the *lowest*
band they share reports each pair exactly once.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np
from PIL import Image

HASH_BITS = 64
HASH_SIZE, IMG_SIZE = 8, 32  # imagehash.phash(hash_size=8, highfreq_factor=4)


def _dct_rows(n: int, rows: int) -> np.ndarray:
    """The first ``rows`` rows of the unnormalised DCT-II matrix of size ``n`` (what
    ``scipy.fftpack.dct`` computes: y[k] = 2 sum_i x[i] cos(pi k (2i + 1) / 2n))."""
    k, i = np.arange(rows)[:, None], np.arange(n)[None, :]
    return 2.0 * np.cos(np.pi * k * (2 * i + 1) / (2 * n))


_DCT = _dct_rows(IMG_SIZE, HASH_SIZE)


def phash_image(image: Image.Image) -> int:
    """The 64-bit pHash of a PIL image as an unsigned int (bit 63 = first DCT bit).

    imagehash's ``phash`` definition (greyscale, Lanczos to 32x32, 2-D DCT-II, the 8x8
    lowest frequencies against their median), computed with one small matrix product for
    the 8x8 corner instead of two full FFT-based DCTs: ~3x cheaper per image, the same bits.
    Coefficients are rounded to 1e-6 so exact zeros (flat images) stay zeros, as in scipy."""
    small = image.convert("L").resize((IMG_SIZE, IMG_SIZE), Image.Resampling.LANCZOS)
    pixels = np.asarray(small, dtype=np.float64)
    low = np.round(_DCT @ pixels @ _DCT.T, 6)
    bits = (low > np.median(low)).ravel()
    return int.from_bytes(np.packbits(bits).tobytes(), "big")


def content_box(width: int, height: int, original_width: int | None,
                original_height: int | None) -> tuple[int, int, int, int] | None:
    """The centred box of a padded ("border" resize mode) image that holds the picture."""
    if not original_width or not original_height or width != height:
        return None
    if original_width >= original_height:
        inner_w, inner_h = width, max(1, round(height * original_height / original_width))
    else:
        inner_w, inner_h = max(1, round(width * original_width / original_height)), height
    left, top = (width - inner_w) // 2, (height - inner_h) // 2
    return left, top, left + inner_w, top + inner_h


def phash_bytes(data: bytes, crop_border: bool = False, original_width: int | None = None,
                original_height: int | None = None) -> int:
    """pHash of encoded image bytes; ``crop_border`` drops the padding of "border" mode."""
    with Image.open(io.BytesIO(data)) as opened:
        opened.draft("L", (128, 128))  # JPEG: decode at reduced scale, pHash needs 32x32
        image = opened.convert("L")
    if crop_border:
        box = content_box(image.width, image.height, original_width, original_height)
        if box:
            image = image.crop(box)
    return phash_image(image)


def to_hex(value: int) -> str:
    return f"{value:016x}"


def from_hex(text: str) -> int:
    return int(text, 16)


def band_slices(max_bits: int) -> list[tuple[int, int]]:
    """``max_bits + 1`` contiguous (shift, width) bands covering the 64 bits."""
    bands = max_bits + 1
    if bands > HASH_BITS:
        raise ValueError(f"near-dup distance {max_bits} too large for {HASH_BITS}-bit hashes")
    widths = [HASH_BITS // bands + (1 if i < HASH_BITS % bands else 0) for i in range(bands)]
    slices, shift = [], HASH_BITS
    for width in widths:
        shift -= width
        slices.append((shift, width))
    return slices


def band_values(value: int, max_bits: int) -> list[int]:
    return [(value >> shift) & ((1 << width) - 1) for shift, width in band_slices(max_bits)]


def first_shared_band(a: int, b: int, max_bits: int) -> int | None:
    for i, (x, y) in enumerate(zip(band_values(a, max_bits), band_values(b, max_bits))):
        if x == y:
            return i
    return None


def to_faiss_codes(values: Sequence[int] | np.ndarray) -> np.ndarray:
    """uint64 hashes -> (n, 8) uint8 codes, big-endian so bit order matches the ints."""
    array = np.asarray(values, dtype=np.uint64).astype(">u8")
    return array.view(np.uint8).reshape(-1, 8)


def hamming(a: int, b: int) -> int:
    return (a ^ b).bit_count()
