"""Every kind of web image through the real download path: real files written here with
PIL/numpy, served from a loopback server, fetched, decoded, resized and written by
:class:`GuardedDownloader`; the stored JPEGs are compared with a reference decode of what
was drawn (mean colour, size, orientation)."""

from __future__ import annotations

import io
import struct
import tarfile
import zlib
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers.servers import loopback_server
from PIL import Image

from pipeline.core.net import FetchConfig
from pipeline.shards.download import DownloadConfig, GuardedDownloader
from pipeline.shards.reader import to_input_table
from schemas.candidates import CANDIDATES

pytestmark = pytest.mark.integration

SIZE = (320, 240)


def encode(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def png16(pixels: np.ndarray, colour_type: int) -> bytes:
    """A 16-bit PNG (PIL cannot write 16-bit RGB or LA): ``pixels`` uint16, HxW or HxWxC."""
    height, width = pixels.shape[:2]

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = pixels.astype(">u2").reshape(height, -1).tobytes()
    stride = len(rows) // height
    raw = b"".join(b"\x00" + rows[i * stride:(i + 1) * stride] for i in range(height))
    header = struct.pack(">IIBBBBB", width, height, 16, colour_type, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw))
            + chunk(b"IEND", b""))


def gradient16(channels: int = 0) -> np.ndarray:
    """0..65535 across the width; ``channels`` copies (0: a 2-D array)."""
    row = np.linspace(0, 65535, SIZE[0]).astype(np.uint16)
    plane = np.tile(row, (SIZE[1], 1))
    return plane if channels == 0 else np.stack([plane] * channels, axis=-1)


def photo(seed: int = 0) -> np.ndarray:
    """A smooth RGB picture with distinct channel means."""
    rng = np.random.default_rng(seed)
    x = np.linspace(0, 1, SIZE[0])[None, :]
    y = np.linspace(0, 1, SIZE[1])[:, None]
    base = np.stack([200 * x + 0 * y, 60 + 100 * y + 0 * x, 40 + 80 * x * y], axis=-1)
    return np.clip(base + rng.normal(0, 3, base.shape), 0, 255).astype(np.uint8)


def on_white(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    a = alpha.astype(np.float64)[..., None] / 255
    return rgb * a + 255 * (1 - a)


def cases() -> dict[str, tuple[bytes, np.ndarray]]:
    """name -> (file bytes, reference RGB/L pixels as drawn, displayed orientation)."""
    out: dict[str, tuple[bytes, np.ndarray]] = {}
    gray = gradient16()
    ref_gray = gray / 257.0
    out["png16_rgb"] = (png16(gradient16(3), 2), np.stack([ref_gray] * 3, -1))
    out["png16_gray_I16"] = (encode(Image.fromarray(gray), "PNG"), ref_gray)
    alpha = np.tile(np.linspace(0, 65535, SIZE[1]).astype(np.uint16)[:, None], (1, SIZE[0]))
    out["png16_la"] = (png16(np.stack([gray, alpha], -1), 4), on_white(ref_gray[..., None], alpha / 257.0)[..., 0])
    out["tiff_mode_I"] = (encode(Image.fromarray(gray.astype(np.int32), "I"), "TIFF"), ref_gray)
    rgb = photo()
    cmyk = Image.fromarray(rgb).convert("CMYK")
    out["jpeg_cmyk"] = (encode(cmyk, "JPEG", quality=95), np.asarray(cmyk.convert("RGB")))
    palette = Image.fromarray(rgb).quantize(64)
    palette.info["transparency"] = 0
    drawn = np.asarray(palette.convert("RGBA"))
    out["png_palette_transparency"] = (encode(palette, "PNG", transparency=0),
                                       on_white(drawn[..., :3], drawn[..., 3]))
    la_alpha = np.tile(np.linspace(0, 255, SIZE[0]).astype(np.uint8), (SIZE[1], 1))
    luminance = rgb[..., 1]
    out["png_la"] = (encode(Image.fromarray(np.stack([luminance, la_alpha], -1), "LA"), "PNG"),
                     on_white(luminance[..., None], la_alpha)[..., 0])
    first, second = Image.fromarray(rgb).quantize(128), Image.fromarray(255 - rgb).quantize(128)
    out["gif_animated_first_frame"] = (
        encode(first, "GIF", save_all=True, append_images=[second], duration=100, loop=0),
        np.asarray(first.convert("RGB")))
    out["webp"] = (encode(Image.fromarray(rgb), "WEBP", quality=95), rgb)
    webp_rgba = np.dstack([rgb, la_alpha])
    out["webp_alpha"] = (encode(Image.fromarray(webp_rgba, "RGBA"), "WEBP", lossless=True),
                         on_white(rgb, la_alpha))
    out["tiff"] = (encode(Image.fromarray(rgb), "TIFF", compression="tiff_lzw"), rgb)
    out["bmp"] = (encode(Image.fromarray(rgb), "BMP"), rgb)
    out["jpeg_gray"] = (encode(Image.fromarray(luminance), "JPEG", quality=95), luminance)
    return out


def orientation_jpeg() -> bytes:
    """512x256 as stored, red left half and blue right half, EXIF orientation 6 (the camera
    was turned: shown rotated 90 degrees clockwise, 256 wide and 512 tall, red on top)."""
    pixels = np.zeros((256, 512, 3), np.uint8)
    pixels[:, :256] = (220, 20, 20)
    pixels[:, 256:] = (20, 20, 220)
    exif = Image.Exif()
    exif[0x0112] = 6
    return encode(Image.fromarray(pixels), "JPEG", quality=95, exif=exif.tobytes())


def download(folder: Path, files: dict[str, bytes]) -> dict[str, tuple[dict, Image.Image | None]]:
    """Serve ``files`` on loopback and download them as one shard: name -> (row, image)."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            body = files.get(self.path.lstrip("/"))
            self.send_response(200 if body is not None else 404)
            self.send_header("Content-Length", str(len(body or b"")))
            self.end_headers()
            self.wfile.write(body or b"")

    names = sorted(files)
    with loopback_server(Handler) as base:
        candidates = pa.Table.from_pylist([
            {"uid": f"u{i}", "url": f"{base}/{name}", "text": f"test image {name}",
             "page_url": None, "source": "urls", "matched_entry_ids": [0]}
            for i, name in enumerate(names)], schema=CANDIDATES)
        table = to_input_table(candidates, 0)
        folder.mkdir(parents=True, exist_ok=True)
        arrow = folder / "input.arrow"
        with pa.OSFile(str(arrow), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
            writer.write_table(table)
        config = DownloadConfig(fetch=FetchConfig(allowed_networks=("127.0.0.1/32",), retries=0),
                                thread_count=4)
        GuardedDownloader(config, str(folder)).download_shard(0, str(arrow))
    rows = {r["url"].rsplit("/", 1)[-1]: r for r in pq.read_table(folder / "00000.parquet").to_pylist()}
    with tarfile.open(folder / "00000.tar") as tar:
        images = {m.name.split(".")[0]: Image.open(io.BytesIO(tar.extractfile(m).read())).copy()  # type: ignore[union-attr]
                  for m in tar.getmembers() if m.name.endswith(".jpg")}
    return {name: (row, images.get(row["key"])) for name, row in rows.items()}


@pytest.fixture(scope="module")
def downloaded(tmp_path_factory) -> tuple[dict, dict]:
    drawn = cases()
    files = {name: data for name, (data, _) in drawn.items()}
    files["oriented.jpg"] = orientation_jpeg()
    files["strip_1x100000.png"] = encode(Image.new("L", (1, 100000), 128), "PNG")
    files["strip_5x400.png"] = encode(Image.new("L", (5, 400), 128), "PNG")
    files["garbage.jpg"] = b"<html>not an image</html>" * 20
    return download(tmp_path_factory.mktemp("images"), files), drawn


def resized_reference(pixels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    image = Image.fromarray(np.clip(np.rint(pixels), 0, 255).astype(np.uint8))
    return np.asarray(image.resize(size, Image.Resampling.BOX), dtype=np.float64)


@pytest.mark.parametrize("name", sorted(cases()))
def test_stored_colours_match_a_reference_decode(downloaded, name):
    results, drawn = downloaded
    row, image = results[name]
    assert row["status"] == "success", row["error_message"]
    assert (row["original_width"], row["original_height"]) == SIZE
    assert (row["width"], row["height"]) == (341, 256) == image.size
    reference = drawn[name][1]
    stored = np.asarray(image.convert("RGB" if reference.ndim == 3 else "L"), dtype=np.float64)
    want = resized_reference(reference, image.size)
    # mean colour per channel, and the picture itself (not just its average) in place
    assert np.abs(stored.mean(axis=(0, 1)) - want.mean(axis=(0, 1))).max() < 3, name
    assert np.abs(stored - want).mean() < 6, name


def test_exif_orientation_is_applied_before_resizing(downloaded):
    row, image = downloaded[0]["oriented.jpg"]
    assert row["status"] == "success"
    assert (row["original_width"], row["original_height"]) == (256, 512)
    assert (row["width"], row["height"]) == (256, 512) == image.size
    pixels = np.asarray(image.convert("RGB"), dtype=np.float64)
    top, bottom = pixels[:256].mean(axis=(0, 1)), pixels[256:].mean(axis=(0, 1))
    assert top[0] > 180 and top[2] < 60, top  # red on top
    assert bottom[2] > 180 and bottom[0] < 60, bottom


def test_degenerate_strip_gets_a_status_and_a_thin_one_resizes(downloaded):
    row, image = downloaded[0]["strip_1x100000.png"]
    assert row["status"] == "filtered:aspect_ratio" and image is None
    assert row["error_message"] == "1x100000: aspect ratio over 100 cannot be resized"
    assert (row["original_width"], row["original_height"]) == (1, 100000)
    row, image = downloaded[0]["strip_5x400.png"]
    assert row["status"] == "success" and image.size == (256, 20480)


def test_error_texts_are_deterministic(downloaded, tmp_path):
    """Issue: error_message held ``<_io.BytesIO object at 0x...>``; two runs must write the
    same rows."""
    row, _ = downloaded[0]["garbage.jpg"]
    assert row["status"] == "failed_to_resize"
    assert row["error_message"] == "not a decodable image: unknown or unsupported format"
    files = {"garbage.jpg": b"GIF89a" + b"\x00" * 40, "bad.png": b"\x89PNG\r\n\x1a\n" + b"\x01" * 60}
    first = download(tmp_path / "a", files)
    second = download(tmp_path / "b", files)
    for name in files:
        assert first[name][0]["status"] == "failed_to_resize"
        assert "0x" not in first[name][0]["error_message"]
        # the same row but for the URLs (each run has its own loopback port)
        ports = {"url": None, "final_url": None}
        assert {**first[name][0], **ports} == {**second[name][0], **ports}
