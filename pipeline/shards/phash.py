"""64-bit perceptual hashes (imagehash's DCT pHash) and the bit masks of the LSH tables that
let a distributed job find the pairs within a Hamming distance (the search is in dedup.py)."""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Sequence

import numpy as np
from PIL import Image

from pipeline.core.images import ImageError, decoding, open_image

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
    """pHash of encoded image bytes; ``crop_border`` drops the padding of "border" mode.
    Raises :class:`pipeline.core.images.ImageError` for bytes refused or not decodable."""
    with open_image(data).image as opened:
        opened.draft("L", (128, 128))  # JPEG: decode at reduced scale, pHash needs 32x32
        try:
            with decoding(opened):
                image = opened.convert("L")
        except Exception as exc:  # noqa: BLE001 - truncated or corrupt data after the header
            raise ImageError(f"not a decodable image: {type(exc).__name__}: {exc}") from None
    if crop_border:
        box = content_box(image.width, image.height, original_width, original_height)
        if box:
            image = image.crop(box)
    return phash_image(image)


def to_hex(value: int) -> str:
    return f"{value:016x}"


def from_hex(text: str) -> int:
    return int(text, 16)


# LSH tables for near-duplicate search (see dedup.py). Bit 63 (the DC term) is left out: it
# is 1 in every hash but a flat image's. Tables come in rounds of 5 disjoint 12-bit bands over
# 60 of the 63 other bits, each round in its own fixed order: two hashes within 4 bits share a
# band in every round (pigeonhole); farther pairs share one with a probability per round.
INFORMATIVE_BITS = 63
BANDS_PER_ROUND = 5


@functools.cache
def lsh_bit_order(round_: int) -> tuple[int, ...]:
    """Round ``round_``'s order of the 63 informative bit positions: a fixed function of the
    round number (blake2b), the same in every process and Python version."""
    def rank(bit: int) -> bytes:
        return hashlib.blake2b(f"wit-lsh:{round_}:{bit}".encode(), digest_size=8).digest()
    return tuple(sorted(range(INFORMATIVE_BITS), key=rank))


@functools.cache
def lsh_mask(table: int, band_bits: int, bits: int) -> int:
    """The first ``bits`` bits of table ``table``: its ``band_bits`` band, then (for split
    groups) the bits that follow it in the round's order."""
    if bits > INFORMATIVE_BITS:
        raise ValueError(f"an LSH key of {bits} bits exceeds the {INFORMATIVE_BITS} usable bits")
    round_, band = divmod(table, BANDS_PER_ROUND)
    order = lsh_bit_order(round_)
    start = band * band_bits
    return sum(1 << order[(start + i) % INFORMATIVE_BITS] for i in range(bits))


def to_faiss_codes(values: Sequence[int] | np.ndarray) -> np.ndarray:
    """uint64 hashes -> (n, 8) uint8 codes, big-endian so bit order matches the ints."""
    array = np.asarray(values, dtype=np.uint64).astype(">u8")
    return array.view(np.uint8).reshape(-1, 8)
