"""The trainer on real WebDataset shards written by img2dataset (served over loopback):
shard patterns, sizes, exact data order on resume, exact loss trajectory on resume, and
`wit train` / `wit eval` end to end through the CLI."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pyarrow.json
import pytest
import torch
from helpers.loader import first_batches

from pipeline.cli import main as wit
from pipeline.core.errors import InputError
from schemas import TRAIN_LOG, validate
from training import batch_stream, shard_reading
from training.clip.tokenizer import train_tokenizer
from training.synthetic import make_shards, shape_dataset
from training.train import TrainOptions, train


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # shared CI machine: see test_train_units
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("train_shards")
    sizes = make_shards(shape_dataset(240, seed=0, size=48), str(root / "shards"),
                        str(root / "work"), per_shard=80, image_size=48)
    assert sizes == {"00000.tar": 80, "00001.tar": 80, "00002.tar": 80}
    return root / "shards"


def test_shard_patterns_and_sizes(shards, tmp_path):
    brace = shard_reading.resolve_shards(f"{shards}/{{00000..00002}}.tar")
    assert [Path(p).name for p in brace] == ["00000.tar", "00001.tar", "00002.tar"]
    assert shard_reading.resolve_shards(str(shards)) == brace
    assert shard_reading.resolve_shards(f"{shards}/*.tar") == brace
    with pytest.raises(InputError, match="00003.tar: no such shard file .5 of 8 missing"):
        shard_reading.resolve_shards(f"{shards}/{{00000..00007}}.tar")
    assert shard_reading.shard_sizes(brace) == dict.fromkeys(brace, 80)
    # without sizes.json: img2dataset's NNNNN_stats.json, then counting the tar
    copy = tmp_path / "copy"
    copy.mkdir()
    (copy / "00000.tar").write_bytes((shards / "00000.tar").read_bytes())
    (copy / "00000_stats.json").write_text((shards / "00000_stats.json").read_text())
    (copy / "00001.tar").write_bytes((shards / "00001.tar").read_bytes())
    assert list(shard_reading.shard_sizes(shard_reading.resolve_shards(str(copy))).values()) == [80, 80]


def _batches(shards: Path, start: int, n: int, workers: int) -> list:
    tok = train_tokenizer(shard_reading.captions(shard_reading.resolve_shards(str(shards)), 100), 300)
    cfg = batch_stream.StreamConfig(shards=shard_reading.resolve_shards(str(shards)), batch_size=16,
                            image_size=32, context_length=16, steps_per_epoch=5, seed=3,
                            start_batch=start, shuffle_buffer=64)
    return first_batches(cfg, tok, n, workers)


def test_stream_resumes_at_any_batch(shards):
    full = _batches(shards, 0, 9, workers=2)  # crosses an epoch boundary (5 batches each)
    resumed = _batches(shards, 4, 5, workers=2)
    for (a_img, a_tok, _), (b_img, b_tok, _) in zip(full[4:], resumed):
        assert torch.equal(a_img, b_img) and torch.equal(a_tok, b_tok)
    assert full[0][0].shape == (16, 3, 32, 32) and full[0][0].dtype == torch.uint8
    assert not torch.equal(full[0][0], full[1][0])


def _losses(log: Path) -> dict[int, float]:
    return {r["step"]: r["loss"] for r in map(json.loads, log.read_text().splitlines())}


def test_resume_continues_the_same_loss_trajectory(shards, tmp_path):
    common = dict(shards=str(shards), batch_size=16, steps=8, log_every=1, workers=0,
                  shuffle_buffer=64, checkpoint_every=100, lr=1e-3)
    straight = train(TrainOptions(out=str(tmp_path / "a"), **common))
    assert straight.steps == 8
    first = train(TrainOptions(out=str(tmp_path / "b"), stop_at=4, **common))
    assert first.steps == 4
    with pytest.raises(InputError, match="exists: pass --resume"):
        train(TrainOptions(out=str(tmp_path / "b"), **common))
    resumed = train(TrainOptions(out=str(tmp_path / "b"), resume=first.checkpoint, **common))
    assert resumed.steps == 8
    a, b = _losses(tmp_path / "a" / "log.jsonl"), _losses(tmp_path / "b" / "log.jsonl")
    assert sorted(b) == list(range(1, 9))
    for step in range(1, 9):
        assert b[step] == pytest.approx(a[step], rel=1e-6, abs=1e-7), step
    assert a[8] < a[1]


@pytest.mark.integration
def test_cli_train_then_eval(shards, tmp_path, capsys):
    out = tmp_path / "run"
    rc = wit(["train", "--shards", f"{shards}/{{00000..00002}}.tar", "--config", "tiny",
              "--steps", "6", "--batch-size", "16", "--workers", "1", "--train-tokenizer",
              "--out", str(out / "train")])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "wit train: 6 steps, 96 samples" in printed
    for name in ("checkpoint.pt", "tokenizer.json", "log.jsonl", "train_options.json"):
        assert (out / "train" / name).exists(), name
    # the tokenizer saved beside the checkpoint, loaded from that file by another run
    saved = (out / "train" / "tokenizer.json").read_text()
    assert wit(["train", "--shards", str(shards), "--steps", "1", "--batch-size", "16",
                "--workers", "0", "--tokenizer", str(out / "train" / "tokenizer.json"),
                "--out", str(out / "again")]) == 0
    assert (out / "again" / "tokenizer.json").read_text() == saved
    capsys.readouterr()
    log = validate(pyarrow.json.read_json(out / "train" / "log.jsonl"), TRAIN_LOG, "log.jsonl")
    assert log.column("step").to_pylist() == [6]  # logged every 10 steps and at the end
    # a labelled set as an image folder per class, from the shards' own images
    folder = tmp_path / "classes"
    for raw, caption, key in shard_reading.iterate_pairs(shard_reading.resolve_shards(str(shards)), 40):
        shape = caption.split()[2]
        (folder / shape).mkdir(parents=True, exist_ok=True)
        (folder / shape / f"{key}.jpg").write_bytes(raw)
    rc = wit(["eval", "--checkpoint", str(out / "train" / "checkpoint.pt"), "--zeroshot",
              str(folder), "--retrieval", str(shards), "--retrieval-samples", "50",
              "--out", str(out / "eval")])
    assert rc == 0
    results = json.loads((out / "eval" / "eval.json").read_text())
    z = results["zeroshot"]
    assert z["classes"] == 4 and z["n"] == 40 and 0 <= z["top1"] <= z["top4"] <= 1
    assert set(z["per_class"]) == {"circle", "cross", "square", "triangle"}
    r = results["retrieval"]
    assert r["n"] == 50
    assert r["image_to_text_R@1"] <= r["image_to_text_R@5"] <= r["image_to_text_R@10"]
    assert "zero-shot top-1" in capsys.readouterr().out


@pytest.mark.integration
def test_cli_errors_name_the_input(shards, tmp_path, capsys):
    rc = wit(["train", "--shards", str(tmp_path / "{00000..00001}.tar"), "--out", str(tmp_path / "o")])
    assert rc == 1
    assert "00000.tar: no such shard file" in capsys.readouterr().err
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    rc = wit(["eval", "--checkpoint", str(bad), "--retrieval", str(shards), "--out", str(tmp_path / "e")])
    assert rc == 1
    assert "bad.pt: not a readable checkpoint" in capsys.readouterr().err


def test_bad_samples_are_counted_and_batches_stay_full(shards, tmp_path):
    import io
    import tarfile

    bad = tmp_path / "bad.tar"
    with tarfile.open(bad, "w") as tar, tarfile.open(shards / "00000.tar") as good:
        members = [m for m in good.getmembers() if m.name.endswith((".jpg", ".txt"))][:8]
        for m in members:  # 4 good samples
            tar.addfile(m, good.extractfile(m))

        def add(name: str, payload: bytes) -> None:
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
        add("x1.jpg", b"not a jpeg")
        add("x1.txt", b"a broken picture")
        add("x2.jpg", members[0].name.encode())  # garbage too, and no caption
        add("x3.txt", b"a caption without an image")
    tok = train_tokenizer(["a broken picture", "a red circle"], 300)
    cfg = batch_stream.StreamConfig(shards=[str(bad)], batch_size=5, image_size=32, context_length=16,
                            steps_per_epoch=2, shuffle_buffer=1)
    skipped: dict[str, int] = {}
    for i, (images, tokens, info) in enumerate(batch_stream.make_loader(cfg, tok, 0, False)):
        assert images.shape == (5, 3, 32, 32) and tokens.shape == (5, 16)
        for k, v in info.skipped.items():
            skipped[k] = skipped.get(k, 0) + v
        if i == 1:
            break
    assert skipped["no_caption"] >= 1 and skipped["no_image"] >= 1
    assert skipped["undecodable_image"] >= 1  # dropped, not blanked: no black images
    assert not any(bool((img == 0).all()) for img in images)
    # a shard list where no shard has a usable sample is an error, not an endless loop
    empty = tmp_path / "empty.tar"
    with tarfile.open(empty, "w"):
        pass
    cfg.shards = [str(empty)]
    with pytest.raises(InputError, match="no shard has an"):
        next(iter(batch_stream.make_loader(cfg, tok, 0, False)))


def test_bf16_checkpointing_compile_and_tensorboard(shards, tmp_path):
    """The GPU settings on a CPU: bf16 autocast, torch.compile (the aot_eager backend traces
    forward and backward without generating code, so this stays seconds; inductor works too
    but compiles for a minute) and gradient checkpointing, plus TensorBoard when installed."""
    common = dict(shards=str(shards), batch_size=16, log_every=1, workers=0, shuffle_buffer=16,
                  precision="bf16")
    checkpointed = train(TrainOptions(out=str(tmp_path / "gc"), steps=1, grad_checkpointing=True,
                                      **common))
    assert checkpointed.steps == 1 and math.isfinite(checkpointed.final_loss)
    result = train(TrainOptions(out=str(tmp_path / "t"), steps=2, compile=True,
                                compile_backend="aot_eager", checkpoint_every=1, **common))
    assert result.steps == 2 and math.isfinite(result.final_loss)
    losses = _losses(tmp_path / "t" / "log.jsonl")
    assert sorted(losses) == [1, 2]
    # the checkpoint holds the plain model's weights (not the compiled wrapper's names)
    state = torch.load(result.checkpoint, map_location="cpu", weights_only=True)
    assert "logit_scale" in state["model"] and not any("_orig_mod" in k for k in state["model"])
    # saved after steps 1 and 2 (--checkpoint-every 1), each to a temporary name then renamed
    assert state["step"] == 2 and not list((tmp_path / "t").glob(".tmp-*"))
    try:
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    except ImportError:  # optional: then nothing is written for it
        assert not (tmp_path / "t" / "tensorboard").exists()
        return
    events = EventAccumulator(str(tmp_path / "t" / "tensorboard"))
    events.Reload()
    assert {"train/loss", "train/temperature", "train/samples_per_s"} <= set(events.Tags()["scalars"])
    assert [(e.step, round(e.value, 5)) for e in events.Scalars("train/loss")] == [
        (step, round(loss, 5)) for step, loss in sorted(losses.items())]


def test_split_shards_by_rank_and_worker(shards, tmp_path):
    """--split-shards: in an epoch every (rank, worker) reads its own shards, together all."""
    paths = shard_reading.resolve_shards(str(shards))
    tok = train_tokenizer(shard_reading.captions(paths, 100), 300)
    images_of = {p: {raw for raw, _, _ in shard_reading.iterate_pairs([p])} for p in paths}
    for epoch in (0, 1):
        by_rank = [batch_stream.split_shards(paths, epoch, 3, rank, 3, 0, 1) for rank in range(3)]
        by_worker = [batch_stream.split_shards(paths, epoch, 3, 0, 1, worker, 3) for worker in range(3)]
        for parts in (by_rank, by_worker):
            assert [len(p) for p in parts] == [1, 1, 1] and set(sum(parts, [])) == set(paths)
        assert by_rank == by_worker  # the same deal: slot = rank x workers + worker
    with pytest.raises(InputError, match="3 shard.s. cannot be split between 2 process.es. x 2"):
        batch_stream.split_shards(paths, 0, 3, 0, 2, 0, 2)
    # the stream of rank 1 of 3 (one worker) reads exactly its one shard in the epoch
    cfg = batch_stream.StreamConfig(shards=paths, batch_size=16, image_size=32, context_length=16,
                            steps_per_epoch=5, seed=3, rank=1, world_size=3, shuffle_buffer=1,
                            resampled=False)
    stream = batch_stream.ShardStream(cfg, tok)._samples(epoch=0, worker=0, workers=1)
    (mine,) = batch_stream.split_shards(paths, 0, 3, 1, 3, 0, 1)
    assert {next(stream)[0] for _ in range(80)} == images_of[mine]
    with pytest.raises(InputError, match="cannot be split"):
        train(TrainOptions(shards=str(shards), out=str(tmp_path / "s"), batch_size=16, steps=1,
                           workers=4, split_shards=True))


@pytest.mark.integration
def test_benchmark_runs_every_phase_on_cpu(shards, tmp_path):
    """bench/train.py end to end on the CPU, its phase in its own process: bf16 autocast (the
    GPU path), MFU (against --peak-tflops), the multi-worker loader feeding training steps,
    the JSON and table outputs. (The other phases share this code; one keeps the test short.)"""
    import subprocess
    import sys
    repo = Path(__file__).resolve().parents[1]
    out = tmp_path / "bench"
    proc = subprocess.run(
        [sys.executable, str(repo / "bench" / "train.py"), "--device", "cpu", "--config", "tiny",
         "--batch-size", "16", "--steps", "2", "--warmup", "1", "--precision", "bf16",
         "--peak-tflops", "1", "--workers", "1", "--shards", str(shards),
         "--phases", "ours_shards",
         "--cache", str(tmp_path / "cache"), "--out", str(out)],
        capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads((out / "train_bench.json").read_text())
    assert results["precision"] == "bf16 autocast" and results["peak_tflops"] == 1
    phases = results["phases"]
    assert list(phases) == ["ours_shards"]
    for name, result in phases.items():
        assert result["samples_per_s"] > 0 and result["timed_steps"] == 2, name
        assert 0 < result["mfu"] < 1 and math.isfinite(result["final_loss"]), name
    table = (out / "train_bench.txt").read_text()
    assert table in proc.stdout and "ours, real shards via loader" in table
