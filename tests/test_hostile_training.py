"""Hostile inputs to `wit train` / `wit eval`, through the real `wit` command: checkpoints
that would run code on load, damaged shards, undecodable images. Each case has its expected
outcome (rc != 0 and one line naming the file, or skipped and counted), no traceback, and the
good samples of the same run still used."""

from __future__ import annotations

import io
import json
import os
import pickle
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers.loader import first_batches
from PIL import Image

from training import batch_stream, shard_reading
from training.clip.checkpoint import FORMAT, load_checkpoint
from training.clip.tokenizer import train_tokenizer

COLORS = [(200, 30, 30), (30, 160, 40), (30, 60, 210), (230, 200, 40)]


def wit(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "WIT_PROGRESS": "0", "NO_ALBUMENTATIONS_UPDATE": "1"}
    return subprocess.run([sys.executable, "-m", "pipeline.cli", *args], capture_output=True,
                          text=True, env=env, timeout=timeout)


def one_line_error(result: subprocess.CompletedProcess, names: str) -> str:
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert names in lines[0], lines[0]
    return lines[0]


def jpeg(color: tuple[int, int, int], size: int = 40) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (size, size), color).save(buffer, "JPEG")
    return buffer.getvalue()


def write_shard(path: Path, samples: list[tuple[str, bytes | None, str | None]]) -> None:
    """A WebDataset tar: KEY.jpg + KEY.txt per sample (either may be missing)."""
    with tarfile.open(path, "w") as tar:
        for key, image, caption in samples:
            for ext, payload in (("jpg", image), ("txt", caption.encode() if caption else None)):
                if payload is None:
                    continue
                info = tarfile.TarInfo(f"{key}.{ext}")
                info.size = len(payload)
                tar.addfile(info, io.BytesIO(payload))


def good_samples(prefix: str, n: int) -> list[tuple[str, bytes | None, str | None]]:
    names = ["red", "green", "blue", "yellow"]
    return [(f"{prefix}{i:04d}", jpeg(COLORS[i % 4]), f"a {names[i % 4]} square number {i}")
            for i in range(n)]


class Evil:
    """Unpickling this runs a shell command that creates a marker file."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


# ---------------------------------------------------------------- checkpoints


def evil_checkpoints(tmp: Path, marker: Path) -> dict[str, bytes]:
    zipped = io.BytesIO()
    torch.save({"format": FORMAT, "model": {}, "evil": Evil(marker)}, zipped)
    old = io.BytesIO()  # a checkpoint of the previous format: numpy objects inside
    torch.save({"format": "webimagetext-clip-2", "rng": {"numpy": np.random.get_state()}}, old)
    return {
        "evil_zip.pt": zipped.getvalue(),  # torch's zip format, pickle inside
        "evil_raw.pt": pickle.dumps({"format": FORMAT, "x": Evil(marker)}),  # a bare pickle
        "old_format.pt": old.getvalue(),
        "garbage.pt": b"\x80\x04not a checkpoint at all",
        "empty.pt": b"",
    }


@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("hostile_shards")
    write_shard(root / "00000.tar", good_samples("a", 24))
    write_shard(root / "00001.tar", good_samples("b", 24))
    return root


@pytest.mark.integration
def test_hostile_checkpoints_are_refused_before_anything_runs(shards, tmp_path):
    marker = tmp_path / "MARKER"
    for name, payload in evil_checkpoints(tmp_path, marker).items():
        path = tmp_path / name
        path.write_bytes(payload)
        evaluated = wit("eval", "--checkpoint", str(path), "--retrieval", str(shards),
                        "--out", str(tmp_path / "eval"))
        line = one_line_error(evaluated, name)
        assert "not a readable checkpoint" in line, line
        if name.startswith("evil"):
            resumed = wit("train", "--shards", str(shards), "--steps", "2", "--batch-size",
                          "4", "--workers", "0", "--resume", str(path), "--out",
                          str(tmp_path / "t"))
            one_line_error(resumed, name)
        assert not marker.exists(), f"{name} ran code on load"
    # the pickle really is hostile: the unsafe loader runs it
    torch.load(tmp_path / "evil_zip.pt", weights_only=False)
    assert marker.exists()


@pytest.mark.integration
def test_saved_checkpoints_load_weights_only_and_resume_exactly(shards, tmp_path):
    """Everything we save (optimizer, scheduler, RNG of python/numpy/torch, stream positions)
    is tensors and plain values, so the weights-only loader reads it; resuming restores
    the RNG states bit for bit."""
    from training.rng_state import rng_states, set_rng_states

    np.random.seed(5)
    before = rng_states()
    a = (np.random.rand(3), torch.rand(3))
    set_rng_states(before)
    b = (np.random.rand(3), torch.rand(3))
    assert np.array_equal(a[0], b[0]) and torch.equal(a[1], b[1])
    out = tmp_path / "run"
    assert wit("train", "--shards", str(shards), "--steps", "3", "--batch-size", "4",
               "--workers", "0", "--out", str(out)).returncode == 0
    state = load_checkpoint(str(out / "checkpoint.pt"))
    assert state["format"] == FORMAT and state["step"] == 3
    assert state["optimizer"]["state"] and state["scheduler"]["last_epoch"] == 3
    assert state["stream_positions"] == {0: (0, 12)}


# ---------------------------------------------------------------- shards


@pytest.mark.integration
def test_damaged_shards_and_images_are_skipped_and_counted(shards, tmp_path):
    """0-byte, truncated and garbage tars among good ones (no sizes.json: every shard is
    counted by reading it), undecodable images and samples without an image or caption:
    training runs on the good samples (--split-shards: every shard is read in an epoch), the
    summary line and log.jsonl count the rest."""
    folder = tmp_path / "mixed"
    folder.mkdir()
    for name in ("00000.tar", "00001.tar"):
        (folder / name).write_bytes((shards / name).read_bytes())
    bad_images = [(f"x{i}", b"\xff\xd8\xff\xe0 not really a jpeg", f"a broken picture {i}")
                  for i in range(3)]
    write_shard(folder / "00002.tar", good_samples("c", 8) + bad_images
                + [("noimg", None, "a caption alone"), ("nocap", jpeg(COLORS[0]), None)])
    (folder / "00003.tar").write_bytes(b"")
    whole = (shards / "00000.tar").read_bytes()
    (folder / "00004.tar").write_bytes(whole[: len(whole) // 2 + 100])  # cut mid-member
    (folder / "00005.tar").write_bytes(os.urandom(3000))
    sizes = shard_reading.shard_sizes(shard_reading.resolve_shards(str(folder)))
    assert [sizes[str(folder / f"0000{i}.tar")] for i in range(6)][:4] == [24, 24, 12, 0]
    assert 0 < sizes[str(folder / "00004.tar")] < 24
    out = tmp_path / "train"
    result = wit("train", "--shards", str(folder), "--steps", "12", "--batch-size", "8",
                 "--workers", "0", "--log-every", "12", "--shuffle-buffer", "4", "--split-shards",
                 "--out", str(out))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    assert "wit train: 12 steps, 96 samples" in result.stdout
    summary = next(line for line in result.stdout.splitlines() if "samples skipped" in line)
    (log,) = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    for reason in ("undecodable_image", "tar_read_error", "no_image", "no_caption"):
        assert log[f"skipped_{reason}"] >= 1, (reason, log)
        assert f"{reason.replace('_', ' ')}: {log[f'skipped_{reason}']}" in summary
    assert "00003.tar" in result.stderr  # left out as empty, and said so


def test_dropped_images_keep_batches_full_and_resume_exact(tmp_path):
    """Undecodable images are dropped (never a blank image with a caption) and the next sample
    takes the place; a stream resumed from the recorded positions yields the same batches."""
    shard = tmp_path / "00000.tar"
    samples = good_samples("g", 30)
    for i in (2, 3, 11, 17):  # garbage in the middle of batches
        samples[i] = (samples[i][0], b"garbage", samples[i][2])
    write_shard(shard, samples)
    tok = train_tokenizer([s[2] for s in samples], 300)

    def batches(start: int, positions: dict, n: int, workers: int) -> list:
        cfg = batch_stream.StreamConfig(shards=[str(shard)], batch_size=5, image_size=16,
                                context_length=12, steps_per_epoch=4, seed=2, start_batch=start,
                                shuffle_buffer=1, start_positions=positions)
        return first_batches(cfg, tok, n, workers)

    for workers in (0, 2):
        full = batches(0, {}, 6, workers)
        dropped = sum(info.skipped.get("undecodable_image", 0) for _, _, info in full)
        assert dropped >= 4
        for images, _, _ in full:
            assert images.shape == (5, 3, 16, 16)
            assert not (images == 0).flatten(1).all(dim=1).any()  # no blank stand-ins
        for start in (2, 3):  # an odd start too: the loader's worker 0 then plays worker 1
            positions = {info.worker: (info.epoch, info.position) for _, _, info in full[:start]}
            resumed = batches(start, positions, 6 - start, workers)
            for (a_img, a_tok, _), (b_img, b_tok, _) in zip(full[start:], resumed):
                assert torch.equal(a_img, b_img) and torch.equal(a_tok, b_tok)
