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


# ---------------------------------------------------------------- round 2 (issue 21)
# checkpoints that unpickle but are wrong, damaged sample metadata, huge captions, bad
# torchrun settings and log levels, FIFOs and garbage in evaluation sets


@pytest.fixture(scope="module")
def sized_shards(shards, tmp_path_factory) -> Path:
    """The shards with their sizes.json (no warning about counting them)."""
    root = tmp_path_factory.mktemp("sized_shards")
    for name in ("00000.tar", "00001.tar"):
        (root / name).write_bytes((shards / name).read_bytes())
    (root / "sizes.json").write_text('{"00000.tar": 24, "00001.tar": 24}')
    return root


@pytest.fixture(scope="module")
def trained(sized_shards, tmp_path_factory) -> Path:
    """A real checkpoint of `wit train` (optimizer, schedule, RNG included)."""
    from pipeline.cli import main

    out = tmp_path_factory.mktemp("trained") / "run"
    assert main(["train", "--shards", str(sized_shards), "--steps", "2", "--batch-size", "4",
                 "--workers", "0", "--out", str(out)]) == 0
    return out / "checkpoint.pt"


def _edited(state: dict, edit) -> dict:
    import copy
    state = copy.deepcopy(state)
    edit(state)
    return state


def _set(where: str, key, value):
    def edit(state):
        (state[where] if where else state)[key] = value
    return edit


def _drop(where: str, key):
    def edit(state):
        del (state[where] if where else state)[key]
    return edit


def _all_nan(state):
    for tensor in state["model"].values():
        tensor.fill_(float("nan"))


def _one_inf(state):
    state["model"]["visual.proj"][0, 0] = float("inf")


def _huge(state):
    state["model_config"].update(vision_width=16384, vision_heads=16, vision_layers=256,
                                 text_width=16384, text_heads=16, text_layers=256)


# name -> (edit of a good checkpoint, text the one-line error holds)
MODEL_CASES = {
    "wrong_shape.pt": (_set("model", "visual.proj", torch.zeros(3, 3)), "has shape [3, 3]"),
    "missing_weight.pt": (_drop("model", "text.ln_final.weight"), "1 weight(s) missing"),
    "unknown_weight.pt": (_set("model", "extra.weight", torch.zeros(2)), "1 unknown"),
    "int_weight.pt": (lambda s: s["model"].update(
        {"logit_scale": s["model"]["logit_scale"].long()}), "not floating point"),
    "no_model.pt": (_drop("", "model"), "'model' is not a mapping"),
    "no_tokenizer.pt": (_drop("", "tokenizer"), "no tokenizer"),
    "tokenizer_not_json.pt": (_set("", "tokenizer", "{not json at all"), "not a tokenizer.json"),
    "tokenizer_not_text.pt": (_set("", "tokenizer", 42), "no tokenizer"),
    "no_config.pt": (_drop("", "model_config"), "model config is a NoneType"),
    "config_not_a_dict.pt": (_set("", "model_config", [1, 2]), "model config is a list"),
    "config_2_20_widths.pt": (lambda s: s["model_config"].update(
        vision_width=2**20, text_width=2**20, embed_dim=2**20), "vision_width=1048576"),
    "config_huge_model.pt": (_huge, "parameters"),
    "config_heads.pt": (_set("model_config", "vision_heads", 3), "does not divide"),
    "config_patch.pt": (_set("model_config", "patch_size", 7), "not a multiple of patch"),
    "config_text_size.pt": (_set("model_config", "image_size", "32"), "not a whole number"),
    "config_bool.pt": (_set("model_config", "text_layers", True), "not a whole number"),
    "config_nan_ratio.pt": (_set("model_config", "mlp_ratio", float("nan")), "mlp_ratio"),
    "config_pool.pt": (_set("model_config", "pool", "max"), "pool='max'"),
    "config_unknown_key.pt": (_set("model_config", "evil", 1), "unknown keys ['evil']"),
    "config_missing_key.pt": (_drop("model_config", "embed_dim"), "lacks ['embed_dim']"),
    "all_nan.pt": (_all_nan, "NaN or infinite"),
    "one_inf.pt": (_one_inf, "1 of"),
}


def _moments(state):
    state["optimizer"]["state"][0]["exp_avg"] = torch.zeros(2)


RESUME_CASES = {
    "moments_shape.pt": (_moments, "optimizer state exp_avg has shape [2]"),
    "moments_nan.pt": (lambda s: s["optimizer"]["state"][1]["exp_avg_sq"].fill_(float("nan")),
                       "optimizer state exp_avg_sq holds NaN"),
    "lr_text.pt": (lambda s: s["optimizer"]["param_groups"][0].update(lr="fast"),
                   "optimizer group 0 lr is 'fast'"),
    "groups.pt": (lambda s: s["optimizer"]["param_groups"].pop(), "1 optimizer parameter groups"),
    "scheduler_attr.pt": (_set("scheduler", "optimizer", None), "unknown keys ['optimizer']"),
    "step_text.pt": (_set("", "step", "abc"), "step 'abc'"),
    "no_optimizer.pt": (_drop("", "optimizer"), "it has no 'optimizer'"),
    "rng_garbage.pt": (_set("", "rng", {"python": (3, [1, 2], None)}), "cannot resume"),
    "positions.pt": (lambda s: s.update(stream_positions={0: ("a", -1)}), "stream position"),
}


def _write(tmp: Path, name: str, state: dict) -> Path:
    from training.clip.checkpoint import save_checkpoint
    path = tmp / name
    save_checkpoint(str(path), {k: v for k, v in state.items() if k != "format"})
    return path


def test_wrong_checkpoints_are_one_line_errors_before_anything_is_built(trained, tmp_path):
    """Every way a checkpoint that unpickles can be wrong: an InputError naming the file and
    the problem from `load_model` (eval, export, the CLIP-score filter) and from the
    shards-stage check, which builds nothing; the 2^20-wide config is refused at once."""
    import time

    from pipeline.core.errors import InputError
    from pipeline.shards.clipscore import check_checkpoint
    from training.clip.checkpoint import load_model

    good = load_checkpoint(str(trained))
    for name, (edit, expected) in MODEL_CASES.items():
        path = _write(tmp_path, name, _edited(good, edit))
        started = time.perf_counter()
        for load in (load_model, check_checkpoint):
            with pytest.raises(InputError) as exc:
                load(str(path))
            message = str(exc.value)
            assert name in message and expected in message, (name, message)
            assert "\n" not in message
        assert time.perf_counter() - started < 10, name  # nothing huge was allocated
    model, _ = load_model(str(trained))  # the untouched checkpoint loads
    assert check_checkpoint(str(trained)) == model.cfg.to_dict()


def test_wrong_checkpoints_refused_by_train_resume(trained, sized_shards, tmp_path, capsys):
    """`wit train --resume` checks the model part as above, and the optimizer, schedule,
    step, RNG states and stream positions too: one line naming the file, exit 1."""
    from pipeline.cli import main

    good = load_checkpoint(str(trained))
    cases = {**RESUME_CASES, "config_heads.pt": MODEL_CASES["config_heads.pt"],
             "all_nan.pt": MODEL_CASES["all_nan.pt"]}
    for name, (edit, expected) in cases.items():
        path = _write(tmp_path, name, _edited(good, edit))
        code = main(["train", "--shards", str(sized_shards), "--steps", "4", "--batch-size", "4",
                     "--workers", "0", "--resume", str(path), "--out", str(tmp_path / f"r_{name}")])
        err = capsys.readouterr().err.strip()
        assert code == 1 and len(err.splitlines()) == 1, (name, err)
        assert name in err and expected in err, (name, err)
    # the untouched checkpoint resumes
    assert main(["train", "--shards", str(sized_shards), "--steps", "4", "--batch-size", "4",
                 "--workers", "0", "--resume", str(trained), "--out", str(tmp_path / "ok")]) == 0


@pytest.mark.integration
def test_wrong_checkpoints_through_the_real_commands(trained, sized_shards, tmp_path):
    """The real `wit eval`, `wit export` and `wit train --resume`: one line naming the file,
    exit 1, no traceback, nothing written."""
    good = load_checkpoint(str(trained))
    for name in ("wrong_shape.pt", "config_2_20_widths.pt", "all_nan.pt"):
        path = _write(tmp_path, name, _edited(good, MODEL_CASES[name][0]))
        line = one_line_error(wit("eval", "--checkpoint", str(path), "--retrieval",
                                  str(sized_shards), "--out", str(tmp_path / "eval")), name)
        assert MODEL_CASES[name][1] in line, line
        assert not (tmp_path / "eval" / "eval.json").exists()
    path = _write(tmp_path, "tokenizer_not_json.pt", _edited(good, MODEL_CASES["tokenizer_not_json.pt"][0]))
    one_line_error(wit("export", "--checkpoint", str(path), "--out", str(tmp_path / "hf")),
                   "tokenizer_not_json.pt")
    assert not (tmp_path / "hf").exists()
    path = _write(tmp_path, "moments_shape.pt", _edited(good, _moments))
    line = one_line_error(wit("train", "--shards", str(sized_shards), "--steps", "4",
                              "--batch-size", "4", "--workers", "0", "--resume", str(path),
                              "--out", str(tmp_path / "r")), "moments_shape.pt")
    assert RESUME_CASES["moments_shape.pt"][1] in line


@pytest.mark.integration
def test_clip_filter_checks_the_whole_checkpoint_before_downloading(trained, tmp_path):
    from helpers.shards import TRUSTED, write_candidates

    candidates = write_candidates(tmp_path / "candidates",
                                  [{"url": "http://127.0.0.2:9/a.jpg", "text": "a cat on a mat"}])
    good = load_checkpoint(str(trained))
    for name in ("wrong_shape.pt", "config_huge_model.pt", "all_nan.pt"):
        path = _write(tmp_path, name, _edited(good, MODEL_CASES[name][0]))
        out = tmp_path / f"out_{name}"
        result = wit("shards", "--candidates", str(candidates), "--out", str(out),
                     "--allow-network", TRUSTED, "--processes", "1", "--threads", "2",
                     "--clip-filter", str(path))
        assert MODEL_CASES[name][1] in one_line_error(result, name)
        assert not (out / "shards" / "_work" / "round0").exists()  # nothing was downloaded


def _json_shard(path: Path, n: int, bad: dict[int, bytes]) -> None:
    """KEY.jpg + KEY.txt + KEY.json (two texts) per sample; ``bad`` replaces some JSONs."""
    with tarfile.open(path, "w") as tar:
        for i in range(n):
            key = f"{path.stem}_{i:04d}"
            meta = bad.get(i, json.dumps({"texts": [f"a square number {i}",
                                                    f"colour {COLORS[i % 4]}"]}).encode())
            for ext, payload in (("jpg", jpeg(COLORS[i % 4])), ("txt", f"square {i}".encode()),
                                 ("json", meta)):
                info = tarfile.TarInfo(f"{key}.{ext}")
                info.size = len(payload)
                tar.addfile(info, io.BytesIO(payload))


DEEP_JSON = b'{"texts": ' + b"[" * 200_000 + b"]" * 200_000 + b"}"
BAD_METADATA = {1: DEEP_JSON, 4: b"{not json", 7: b"\xff\xfe\x00garbage", 9: b"[1, 2, 3]",
                12: b'{"texts": "a string, not a list"}', 15: b'{"texts": {"a": ' * 5000}


def test_damaged_sample_metadata_is_a_counted_skip(tmp_path):
    """--text random: a KEY.json nested 200,000 deep (a RecursionError in the JSON parser),
    not JSON, not an object, or with a `texts` that is not a list skips its sample and counts
    it (bad_metadata), in the main process and inside loader workers; the good samples still
    make full batches."""
    for name in ("00000.tar", "00001.tar"):
        _json_shard(tmp_path / name, 20, BAD_METADATA)
    tok = train_tokenizer(["a square number 1", "colour red"] * 20, 300)
    for workers in (0, 2):
        cfg = batch_stream.StreamConfig(
            shards=[str(tmp_path / "00000.tar"), str(tmp_path / "00001.tar")], batch_size=7,
            image_size=16, context_length=12, steps_per_epoch=4, seed=1, shuffle_buffer=1,
            text="random", resampled=False)
        batches = first_batches(cfg, tok, 4, workers)
        skipped = sum(info.skipped.get("bad_metadata", 0) for _, _, info in batches)
        assert skipped >= len(BAD_METADATA), skipped
        assert all(images.shape[0] == 7 for images, _, _ in batches)


@pytest.mark.integration
def test_damaged_metadata_through_wit_train(tmp_path):
    folder = tmp_path / "shards"
    folder.mkdir()
    for name in ("00000.tar", "00001.tar"):
        _json_shard(folder / name, 20, BAD_METADATA)
    out = tmp_path / "train"
    result = wit("train", "--shards", str(folder), "--steps", "4", "--batch-size", "8",
                 "--workers", "2", "--text", "random", "--log-every", "4", "--split-shards",
                 "--out", str(out))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Traceback" not in result.stderr and "RecursionError" not in result.stderr
    summary = next(line for line in result.stdout.splitlines() if "samples skipped" in line)
    (log,) = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert log["skipped_bad_metadata"] >= 1
    assert f"bad metadata: {log['skipped_bad_metadata']}" in summary


def test_a_huge_caption_costs_what_a_short_one_does(tmp_path):
    """The tokenizer cuts a text to max_chars(context) characters before encoding: a 20 MB
    caption (one word, or many) encodes in milliseconds, the ids of real long captions are
    those of the whole text, and training a vocabulary or a stream on a shard holding one
    such caption stays fast."""
    import time

    from training.clip.tokenizer import max_chars

    tok = train_tokenizer(["a red square", "a golden retriever on the grass"] * 30, 400)
    huge = ["x" * 20_000_000, "ab cd " * 3_500_000]
    started = time.perf_counter()
    ids = tok.encode(huge, 77)
    assert time.perf_counter() - started < 2
    assert ids.shape == (2, 77) and (ids[:, -1] == tok.eot_id).all()
    long_real = ["golden retriever " * 3000, "a photo of " + "a very " * 4000 + "big dog",
                 "ünïcödé ß " * 5000]
    for text, row in zip(long_real, tok.encode(long_real, 77)):
        assert len(text) > max_chars(77)
        whole = tok.tokenizer.encode(text, add_special_tokens=False).ids[:75]
        assert row.tolist() == [tok.sot_id, *whole, tok.eot_id]
    shard = tmp_path / "00000.tar"
    write_shard(shard, good_samples("h", 12) + [("huge", jpeg(COLORS[1]), "y" * 20_000_000)])
    started = time.perf_counter()
    tok = train_tokenizer(shard_reading.captions([str(shard)], 100), 300)
    cfg = batch_stream.StreamConfig(shards=[str(shard)], batch_size=13, image_size=16,
                                    context_length=32, steps_per_epoch=1, shuffle_buffer=1)
    (images, tokens, _), = first_batches(cfg, tok, 1, 0)
    assert tokens.shape == (13, 32)
    assert time.perf_counter() - started < 20  # was minutes: BPE of a 20 MB word


@pytest.mark.parametrize("env,args,expected", [
    ({"RANK": "abc"}, (), "RANK='abc'"),
    ({"WORLD_SIZE": "0"}, (), "WORLD_SIZE='0'"),
    ({"WORLD_SIZE": "-3"}, (), "WORLD_SIZE='-3'"),
    ({"LOCAL_RANK": "1.5"}, (), "LOCAL_RANK='1.5'"),
    ({"RANK": "2", "WORLD_SIZE": "2"}, (), "RANK=2 is outside WORLD_SIZE=2"),
    ({"WIT_LOG_LEVEL": "BOGUS"}, (), "'BOGUS' is not a logging level"),
    ({}, ("--log-level", "nope"), "'nope' is not a logging level"),
])
def test_bad_torchrun_settings_and_log_levels_are_usage_errors(shards, tmp_path, monkeypatch,
                                                                capsys, env, args, expected):
    """Exit 2 and one line, as a bad option value: never a traceback, never a run with a
    negative world ("-480 samples")."""
    from pipeline.cli import main

    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "WIT_LOG_LEVEL"):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    try:
        code = main(["train", *args, "--shards", str(shards), "--steps", "1", "--batch-size",
                     "4", "--workers", "0", "--out", str(tmp_path / "t")])
    except SystemExit as exc:  # argparse's usage errors
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1 and expected in err, err
    assert not (tmp_path / "t" / "checkpoint.pt").exists()
    if "WIT_LOG_LEVEL" in env:  # a good --log-level wins over a bad environment default
        with pytest.raises(SystemExit) as exc:
            main(["train", "--log-level", "info", "--help"])
        assert exc.value.code == 0


@pytest.mark.integration
def test_bad_world_size_through_the_real_command(shards, tmp_path):
    env = {**os.environ, "WIT_PROGRESS": "0", "WORLD_SIZE": "-3"}
    result = subprocess.run([sys.executable, "-m", "pipeline.cli", "train", "--shards",
                             str(shards), "--steps", "1", "--batch-size", "4", "--workers", "0",
                             "--out", str(tmp_path / "t")], capture_output=True, text=True,
                            env=env, timeout=300)
    assert result.returncode == 2
    one_line_error(result, "WORLD_SIZE='-3'")
    assert "samples" not in result.stdout


@pytest.mark.integration
def test_eval_reads_only_regular_files_and_names_the_file(trained, tmp_path):
    """A FIFO named x.jpg in a zero-shot folder is not an image (it would block the reader
    forever); one listed in a table is a one-line error naming it; a garbage image's error
    names the file and holds no object address."""
    folder = tmp_path / "set"
    for c, name in enumerate(("red", "green")):
        (folder / name).mkdir(parents=True)
        for i in range(3):
            (folder / name / f"{i}.jpg").write_bytes(jpeg(COLORS[c]))
    os.mkfifo(folder / "red" / "x.jpg")
    result = wit("eval", "--checkpoint", str(trained), "--zeroshot", str(folder), "--out",
                 str(tmp_path / "e1"), timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads((tmp_path / "e1" / "eval.json").read_text())["zeroshot"]["n"] == 6
    table = tmp_path / "table.csv"
    table.write_text(f"path,label\n{folder / 'red' / '0.jpg'},red\n{folder / 'red' / 'x.jpg'},red\n")
    line = one_line_error(wit("eval", "--checkpoint", str(trained), "--zeroshot", str(table),
                              "--out", str(tmp_path / "e2"), timeout=120), "x.jpg")
    assert "not a regular file" in line
    (folder / "green" / "bad.jpg").write_bytes(b"this is no image at all")
    line = one_line_error(wit("eval", "--checkpoint", str(trained), "--zeroshot", str(folder),
                              "--out", str(tmp_path / "e3"), timeout=120), "bad.jpg")
    assert " at 0x" not in line and "BytesIO" not in line, line


def test_image_error_texts_hold_no_object_address(trained):
    """Pillow's "cannot identify image file <_io.BytesIO object at 0x...>" becomes a fixed
    text, in evaluation and in the CLIP-score filter's row status (outputs stay the same
    bytes from run to run)."""
    import PIL.Image

    from pipeline.shards.clipscore import ClipScorer
    from training.clip.preprocess import image_error_text, image_tensor

    with pytest.raises(Exception) as exc:  # what Pillow says, opened directly
        PIL.Image.open(io.BytesIO(b"no image at all"))
    assert " at 0x" in str(exc.value)
    assert image_error_text(exc.value) == "cannot identify image file the data"
    with pytest.raises(Exception) as exc:  # through our decoder
        image_tensor(b"no image at all", 32)
    assert " at 0x" not in image_error_text(exc.value)
    (scored,) = ClipScorer(str(trained)).scores([b"no image at all"], ["a caption"])
    assert scored.score is None and " at 0x" not in scored.error, scored.error
