"""Hostile images (issue 21: items 3, 4, 5, 8, 11, 16) through the real paths: the download
(loopback server, :class:`GuardedDownloader`, in a process of its own so that its peak
memory and CPU time are its own), `wit train`, and every other entry point that decodes.
Each case has its expected status or count, stderr stays empty, and nothing is decoded
before the bounds are checked; nothing is ever handed to Ghostscript."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from helpers.images import (
    POSTSCRIPT,
    chunk,
    exif_orientation,
    fake_ghostscript,
    flat_png,
    gif_with_blocks,
    ico_around,
    many_scans_jpeg,
    progressive_jpeg,
)
from PIL import Image

from pipeline.core import images
from pipeline.core.images import MAX_DECODE_PIXELS, ImageError, open_image
from schemas import status as st

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[1]
HELPER = ROOT / "tests" / "helpers" / "images.py"
MB = 1 << 20


def env(**extra: str) -> dict[str, str]:
    return {**os.environ, "WIT_PROGRESS": "0", "NO_ALBUMENTATIONS_UPDATE": "1", **extra}


def download(folder: Path, files: dict[str, bytes], threads: int) -> dict:
    """``files`` served on loopback and downloaded as one shard by a fresh process."""
    folder.mkdir(parents=True)
    for name, data in files.items():
        (folder / name).write_bytes(data)
    result = subprocess.run([sys.executable, str(HELPER), str(folder), str(threads)],
                            capture_output=True, text=True, env=env(), timeout=600, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stderr == "", result.stderr[-3000:]  # no PIL warning, no traceback
    return json.loads(result.stdout)


def test_png_and_ico_bombs_are_refused_before_any_pixel_is_decoded(tmp_path):
    """Item 3: a 160 KB PNG of 13000x13000 with its EXIF orientation after the pixel data
    (PIL's getexif loaded the whole image to find it) and the same PNG inside an ICO that
    declares 32 px (PIL decodes an ICO's frame while opening): four PNGs and the ICO took
    the worker from +0 to +800 MB; now nothing is decoded."""
    bomb = flat_png(13000, 13000, colour_type=0, orientation=6)
    files = {f"bomb{i}.png": bomb for i in range(4)}
    files["bomb.ico"] = ico_around(bomb)
    run = download(tmp_path / "bombs", files, threads=5)
    for name, row in run["rows"].items():
        assert row["status"] == "filtered:max_pixels", (name, row)
        assert "13000x13000 = 169000000 pixels exceeds --max-pixels" in row["error_message"]
        assert (row["original_width"], row["original_height"]) == (13000, 13000)
    assert run["peak_mb"] - run["baseline_mb"] < 100, run  # 169 MB for one decoded bomb


def test_decoded_bytes_in_flight_are_bounded_per_worker(tmp_path):
    """Item 8: six 230 KB 16-bit PNGs just under --max-pixels (39.6 Mpx), six threads: one
    worker went +2 GB (each decode ~400 MB, all at once, and glibc's per-thread arenas kept
    what each thread freed). The memory budget lets them in one or two at a time."""
    png = flat_png(6000, 6600, depth=16, colour_type=2)
    run = download(tmp_path / "wide16", {f"deep{i}.png": png for i in range(6)}, threads=6)
    assert {row["status"] for row in run["rows"].values()} == {"success"}, run["rows"]
    assert run["peak_mb"] - run["baseline_mb"] < images.DECODE_MEMORY_BYTES / MB, run


def test_decode_work_is_bounded_and_gets_its_own_status(tmp_path):
    """Item 4: a 36 Mpx progressive JPEG (under the pixel bound) with one scan repeated 1,000
    times (~170 KB) cost ~25 CPU-s and was kept; a PNG of 150,000 chunks and a GIF of 150,000
    extension blocks cost seconds of Python each. Refused before decoding as
    ``filtered:decode_budget``; real files of each kind, and a PNG whose EXIF orientation
    follows its pixel data, are kept (the orientation applied)."""
    tall = Image.new("RGB", (300, 200), (200, 30, 30))
    tall.paste((30, 30, 200), (150, 0, 300, 200))  # red left, blue right as stored
    buffer = io.BytesIO()
    tall.save(buffer, "PNG")
    stored = buffer.getvalue()
    iend = stored.rindex(b"IEND") - 4  # the eXIf chunk goes after IDAT, before IEND
    files = {
        "scans.jpg": many_scans_jpeg(6000, 6000, 1000),
        "chunks.png": flat_png(300, 300, idat_chunks=150_000),
        "blocks.gif": gif_with_blocks(150_000),
        "progressive.jpg": progressive_jpeg(),
        "chunks_ok.png": flat_png(300, 300, idat_chunks=5_000),
        "blocks_ok.gif": gif_with_blocks(2_000),
        "oriented.png": stored[:iend] + chunk(b"eXIf", exif_orientation(6)) + stored[iend:],
    }
    run = download(tmp_path / "work", files, threads=4)
    rows = run["rows"]
    for name in ("scans.jpg", "chunks.png", "blocks.gif"):
        assert rows[name]["status"] == st.filtered(st.DECODE_BUDGET), (name, rows[name])
    assert rows["scans.jpg"]["error_message"] == (
        "JPEG with 1010 scans exceeds the decode budget of 100 scans")
    assert rows["chunks.png"]["error_message"] == (
        "PNG with over 100000 chunks exceeds the decode budget")
    for name in ("progressive.jpg", "chunks_ok.png", "blocks_ok.gif", "oriented.png"):
        assert rows[name]["status"] == "success", (name, rows[name])
    oriented = rows["oriented.png"]
    assert (oriented["original_width"], oriented["original_height"]) == (200, 300)
    assert oriented["height"] > oriented["width"]
    assert run["cpu_s"] < 10, run  # the JPEG alone took ~25 CPU-s


WARNING_SCRIPT = """
import io, sys, threading
sys.path.insert(0, "tests")
from PIL import Image
from helpers.images import flat_png, ico_around
from pipeline.shards.imaging import ResizeConfig, process_image
from training.clip.preprocess import decode_image

def png(image, **options):
    buffer = io.BytesIO()
    image.save(buffer, "PNG", **options)
    return buffer.getvalue()

palette = Image.new("P", (64, 64), 1)
palette.putpalette([0, 0, 0, 255, 0, 0] * 128)
files = [
    ico_around(png(Image.new("RGBA", (64, 64), "red")), declared=32),  # "not the expected size"
    flat_png(9500, 9500, colour_type=0),  # > PIL's 89 Mpx: DecompressionBombWarning
    png(palette, transparency=bytes(range(255)) + b"\\x00"),  # "palette with transparency"
]
errors = []

def work():
    try:
        for _ in range(15):
            for data in files:
                process_image(data, ResizeConfig())
                try:
                    decode_image(data, 32)
                except ValueError:
                    pass
    except Exception as exc:
        errors.append(repr(exc))

threads = [threading.Thread(target=work) for _ in range(12)]
for t in threads: t.start()
for t in threads: t.join()
print(len(errors))
"""


def test_pil_warnings_never_reach_stderr_from_many_threads():
    """Item 16: PIL's warnings about hostile files (an ICO frame not of its declared size, a
    header over PIL's bomb threshold, a palette with byte transparency) reached stderr: the
    ICO's at once, the others when catch_warnings was entered by many threads together."""
    result = subprocess.run([sys.executable, "-c", WARNING_SCRIPT], capture_output=True,
                            text=True, env=env(), timeout=600, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip() == "0"
    assert result.stderr == ""


ENTRY_POINTS_SCRIPT = """
import sys, tempfile
from pathlib import Path
from pipeline.core.images import ImageError
from pipeline.shards.decontaminate import hash_eval_images
from pipeline.shards.imaging import ResizeConfig, process_image
from pipeline.shards.phash import phash_bytes
from training.clip.preprocess import decode_image, image_tensor
from training.evaluate import _read_image
from pipeline.core.errors import InputError

data = Path(sys.argv[1]).read_bytes()
print(process_image(data, ResizeConfig()).status)
for call in (lambda: decode_image(data, 32), lambda: image_tensor(data, 32),
             lambda: phash_bytes(data)):
    try:
        call()
        print("decoded")
    except ImageError as exc:
        print("refused", exc.reason)
try:
    _read_image(sys.argv[1], 32)
    print("decoded")
except InputError as exc:
    print("refused")
folder = Path(tempfile.mkdtemp())
(folder / "eval.jpg").write_bytes(data)
hashes, skipped = hash_eval_images([str(folder)], 40_000_000)
print(len(hashes), len(skipped))
"""


def test_postscript_is_never_handed_to_ghostscript(tmp_path):
    """Item 5: a PostScript file named .jpg started `gs` in training, evaluation, the CLIP
    score and decontamination (PIL tried every reader, EPS included). A fake `gs` first on
    PATH shows PIL alone would run it; every entry point refuses the file and it never runs."""
    marker = tmp_path / "gs-ran"
    path = f"{fake_ghostscript(tmp_path / 'bin', marker)}:{os.environ['PATH']}"
    eps = tmp_path / "KEY.jpg"
    eps.write_bytes(POSTSCRIPT)
    trap = subprocess.run([sys.executable, "-c", "import sys; from PIL import Image; "
                           "Image.open(sys.argv[1]).load()", str(eps)],
                          capture_output=True, text=True, env=env(PATH=path), timeout=120)
    assert trap.returncode != 0 and marker.exists(), trap.stderr  # the trap works
    marker.unlink()
    result = subprocess.run([sys.executable, "-c", ENTRY_POINTS_SCRIPT, str(eps)],
                            capture_output=True, text=True, env=env(PATH=path), timeout=300,
                            cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split("\n") == [
        "failed_to_resize", "refused undecodable", "refused undecodable", "refused undecodable",
        "refused", "0 1", ""]
    assert result.stderr == ""
    assert not marker.exists()


def write_shard(path: Path, samples: list[tuple[str, bytes, str]]) -> None:
    with tarfile.open(path, "w") as tar:
        for key, image, caption in samples:
            for ext, payload in (("jpg", image), ("txt", caption.encode())):
                info = tarfile.TarInfo(f"{key}.{ext}")
                info.size = len(payload)
                tar.addfile(info, io.BytesIO(payload))


def test_training_skips_and_counts_postscript_and_oversized_members(tmp_path):
    """Items 5 and 11 through `wit train`: a PostScript file stored as KEY.jpg (it started
    `gs` and was trained on) and a 97 KB 100 Mpx PNG stored as KEY.jpg (decoded, 845 MB: the
    bound was PIL's 2 x 64 Mpx) are skipped and counted; `gs` never starts."""
    colours = [(200, 30, 30), (30, 160, 40), (30, 60, 210), (230, 200, 40)]
    good = []
    for i in range(16):
        buffer = io.BytesIO()
        Image.new("RGB", (40, 40), colours[i % 4]).save(buffer, "JPEG")
        good.append((f"g{i:03d}", buffer.getvalue(), f"a coloured square number {i}"))
    bad = [("eps", POSTSCRIPT, "a postscript program"),
           ("huge", flat_png(10000, 10000, colour_type=0), "a hundred megapixels")]
    shards = tmp_path / "shards"
    shards.mkdir()
    write_shard(shards / "00000.tar", good[:8] + bad + good[8:])
    marker = tmp_path / "gs-ran"
    path = f"{fake_ghostscript(tmp_path / 'bin', marker)}:{os.environ['PATH']}"
    out = tmp_path / "train"
    result = subprocess.run(
        [sys.executable, "-m", "pipeline.cli", "train", "--shards", str(shards), "--steps", "2",
         "--batch-size", "6", "--workers", "0", "--log-every", "2", "--shuffle-buffer", "1",
         "--out", str(out)],
        capture_output=True, text=True, env=env(PATH=path), timeout=600, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    (log,) = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert log["skipped_undecodable_image"] == 2, log
    assert not marker.exists()


def test_training_pixel_bound_is_one_documented_constant():
    """Item 11: the bound was PIL's MAX_IMAGE_PIXELS = 64 Mpx, whose error fires at twice
    that (128 Mpx). One constant, checked from the header, stated in docs/security.md."""
    assert MAX_DECODE_PIXELS == 64_000_000
    assert "64,000,000" in (ROOT / "docs" / "security.md").read_text()
    assert "MAX_DECODE_PIXELS" in (ROOT / "docs" / "security.md").read_text()
    open_image(flat_png(8000, 8000, colour_type=0)).image.close()  # the bound itself is fine
    with pytest.raises(ImageError) as refused:
        open_image(flat_png(8001, 8000, colour_type=0))
    assert refused.value.reason == st.MAX_PIXELS
    assert str(refused.value) == "8001x8000 = 64008000 pixels exceeds the decode bound 64000000"
