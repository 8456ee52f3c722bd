"""Hostile image files for the decoding tests (no tests here), built without ever holding
their pixels: bombs that are small on the wire and huge once decoded, files whose decoding
loops for long, a PostScript file, a fake Ghostscript. And ``python tests/helpers/images.py
FOLDER THREADS``: the real download path (loopback server, :class:`GuardedDownloader`) over
the files in FOLDER, in a process of its own, printing the rows and the process's peak
memory as JSON."""

from __future__ import annotations

import io
import json
import resource
import struct
import sys
import time
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
# an EPS that PIL's reader accepts and would hand to Ghostscript
POSTSCRIPT = (b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 16 16\n"
              b"0 0 moveto 16 16 lineto stroke\nshowpage\n%%EOF\n")


def chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def exif_orientation(value: int) -> bytes:
    """An EXIF block (TIFF header on) with only the orientation tag."""
    exif = Image.Exif()
    exif[0x0112] = value
    return exif.tobytes()[6:]  # without "Exif\0\0"


def flat_png(width: int, height: int, depth: int = 8, colour_type: int = 2,
             orientation: int | None = None, idat_chunks: int = 1) -> bytes:
    """A black ``width`` x ``height`` PNG compressed row by row (never held decoded); an
    ``eXIf`` chunk *after* the pixel data when ``orientation`` is given (PIL then loads the
    whole image to find it); the pixel data split into ``idat_chunks`` chunks."""
    channels = {0: 1, 2: 3, 4: 2, 6: 4}[colour_type]
    row = b"\x00" * (1 + width * channels * depth // 8)
    packer = zlib.compressobj(9)
    stream = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    if idat_chunks > 1:  # the stream in 1-byte pieces, then empty chunks up to the count
        pieces = [stream[i:i + 1] for i in range(len(stream))]
        pieces += [b""] * max(0, idat_chunks - len(pieces))
        idat = b"".join(chunk(b"IDAT", p) for p in pieces)
    else:
        idat = chunk(b"IDAT", stream)
    exif = chunk(b"eXIf", exif_orientation(orientation)) if orientation else b""
    header = struct.pack(">IIBBBBB", width, height, depth, colour_type, 0, 0, 0)
    return PNG_MAGIC + chunk(b"IHDR", header) + idat + exif + chunk(b"IEND", b"")


def ico_around(png: bytes, declared: int = 32) -> bytes:
    """An ICO whose one entry declares ``declared`` px and holds ``png`` (PIL decodes it at
    the PNG's own size, while opening)."""
    entry = struct.pack("<BBBBHHII", declared % 256, declared % 256, 0, 0, 1, 32, len(png), 22)
    return struct.pack("<HHH", 0, 1, 1) + entry + png


def _jpeg_scans(data: bytes) -> list[tuple[int, int]]:
    """(start, end) of each scan: the SOS segment and its entropy-coded data."""
    scans, pos = [], 2
    while pos < len(data) and data[pos + 1] != 0xD9:
        length = struct.unpack(">H", data[pos + 2:pos + 4])[0]
        end = pos + 2 + length
        if data[pos + 1] == 0xDA:
            while not (data[end] == 0xFF and data[end + 1] not in (0x00, *range(0xD0, 0xD8))):
                end += 1
            scans.append((pos, end))
        pos = end
    return scans


def many_scans_jpeg(width: int, height: int, repeats: int) -> bytes:
    """A flat progressive JPEG whose last scan is repeated ``repeats`` times: a few bytes a
    scan, each a pass over every coefficient of the image when decoded."""
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (120, 90, 200)).save(buffer, "JPEG", progressive=True)
    data = buffer.getvalue()
    start, end = _jpeg_scans(data)[-1]
    return data[:end] + data[start:end] * repeats + data[end:]


def progressive_jpeg(width: int = 400, height: int = 300) -> bytes:
    buffer = io.BytesIO()
    Image.linear_gradient("L").convert("RGB").resize((width, height)).save(
        buffer, "JPEG", progressive=True)
    return buffer.getvalue()


def gif_with_blocks(blocks: int) -> bytes:
    """A 300x300 GIF with a comment extension of ``blocks`` 1-byte sub-blocks before its image
    (PIL reads each one in Python)."""
    buffer = io.BytesIO()
    Image.new("P", (300, 300), 3).save(buffer, "GIF")
    data = buffer.getvalue()
    flags = data[10]
    head = 13 + ((3 << ((flags & 7) + 1)) if flags & 0x80 else 0)
    return data[:head] + b"\x21\xfe" + b"\x01x" * blocks + b"\x00" + data[head:]


def fake_ghostscript(folder: Path, marker: Path) -> Path:
    """A ``gs`` that only leaves ``marker`` behind; returns the folder to put first on PATH."""
    folder.mkdir(parents=True, exist_ok=True)
    gs = folder / "gs"
    gs.write_text(f"#!/bin/sh\necho \"$@\" >> '{marker}'\nexit 1\n")
    gs.chmod(0o755)
    return folder


def _save(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def sample_files() -> list[bytes]:
    """Small files of every allowed format (odd modes, EXIF, an ICO around a PNG) and of
    formats PIL reads but we refuse (EPS, PDF, PPM, TGA, PCX, PSD): fuzzing seeds."""
    rng = np.random.default_rng(0)
    rgb = Image.fromarray(rng.integers(0, 255, (12, 16, 3), dtype=np.uint8))
    palette = rgb.quantize(8)
    tiny = flat_png(6, 4)
    return [
        _save(rgb, "JPEG"), _save(rgb, "JPEG", progressive=True),
        _save(rgb, "JPEG", exif=Image.Exif().tobytes()),
        _save(rgb, "PNG"), _save(palette, "PNG", transparency=0),
        _save(Image.fromarray(rng.integers(0, 65535, (8, 8), dtype=np.uint16)), "PNG"),
        tiny[:-12] + chunk(b"eXIf", exif_orientation(6)) + tiny[-12:],
        _save(palette, "GIF"), gif_with_blocks(3), _save(rgb, "WEBP"),
        _save(rgb, "TIFF"), _save(rgb, "TIFF", compression="tiff_lzw"), _save(rgb, "BMP"),
        ico_around(_save(rgb.convert("RGBA"), "PNG")), _save(rgb, "ICO"),
        # formats PIL reads and we refuse: EPS would run Ghostscript
        POSTSCRIPT, b"\xc5\xd0\xd3\xc6" + b"\x00" * 26 + POSTSCRIPT, _save(rgb, "PDF"),
        _save(rgb, "PPM"), _save(rgb, "TGA"), _save(rgb, "PCX"), b"8BPS\x00\x01" + b"\x00" * 40,
    ]


# ---------------------------------------------------------------- the download, in a process

def download_folder(folder: Path, threads: int) -> dict:
    from http.server import BaseHTTPRequestHandler

    import pyarrow as pa
    import pyarrow.parquet as pq

    from helpers.servers import loopback_server  # type: ignore[import-not-found]
    from pipeline.core.net import FetchConfig
    from pipeline.shards.download import DownloadConfig, GuardedDownloader
    from pipeline.shards.reader import to_input_table
    from schemas.candidates import CANDIDATES

    files = {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            body = files.get(self.path.lstrip("/"), b"")
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    out = folder / "out"
    out.mkdir()
    with loopback_server(Handler) as base:
        candidates = pa.Table.from_pylist([
            {"uid": f"u{i}", "url": f"{base}/{name}", "text": f"hostile image {name}",
             "page_url": None, "source": "urls", "matched_entry_ids": [0]}
            for i, name in enumerate(files)], schema=CANDIDATES)
        table = to_input_table(candidates, 0)
        arrow = out / "input.arrow"
        with pa.OSFile(str(arrow), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
            writer.write_table(table)
        config = DownloadConfig(fetch=FetchConfig(allowed_networks=("127.0.0.1/32",), retries=0,
                                                  max_bytes=60_000_000), thread_count=threads)
        before = resource.getrusage(resource.RUSAGE_SELF)
        GuardedDownloader(config, str(out)).download_shard(0, str(arrow))
        after = resource.getrusage(resource.RUSAGE_SELF)
    rows = pq.read_table(out / "00000.parquet").to_pylist()
    return {"rows": {r["url"].rsplit("/", 1)[-1]: {k: r[k] for k in (
                "status", "error_message", "original_width", "original_height", "width", "height")}
                     for r in rows},
            "baseline_mb": before.ru_maxrss / 1024, "peak_mb": after.ru_maxrss / 1024,
            "cpu_s": (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)}


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/, for helpers.*
    started = time.time()
    print(json.dumps(download_folder(Path(sys.argv[1]), int(sys.argv[2]))))
