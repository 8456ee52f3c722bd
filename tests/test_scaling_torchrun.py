"""``wit train`` under ``torchrun``: one node, two CPU processes with gloo, exactly as a
multi-node launch runs it (torchrun sets RANK / WORLD_SIZE / LOCAL_RANK / MASTER_ADDR /
MASTER_PORT). Traffic stays on loopback (``--standalone``, GLOO_SOCKET_IFNAME=lo)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from training.synthetic import make_shards, shape_dataset

pytestmark = pytest.mark.integration

STEPS, BATCH, WORLD = 3, 8, 2


@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("torchrun_shards")
    sizes = make_shards(shape_dataset(96, seed=3, size=32), str(root / "shards"),
                        str(root / "work"), per_shard=24, image_size=32)
    assert sum(sizes.values()) == 96 and len(sizes) == 4
    return root / "shards"


def test_two_process_gloo_run_under_torchrun(shards, tmp_path):
    torchrun = shutil.which("torchrun", path=os.path.dirname(sys.executable))
    command = ([torchrun] if torchrun else [sys.executable, "-m", "torch.distributed.run"]) + [
        "--standalone", "--nproc_per_node", str(WORLD),
        "-m", "pipeline.cli", "train", "--shards", str(shards), "--config", "tiny",
        "--steps", str(STEPS), "--batch-size", str(BATCH), "--workers", "1",
        "--shuffle-buffer", "50", "--device", "cpu", "--out", str(tmp_path / "train")]
    env = dict(os.environ, GLOO_SOCKET_IFNAME="lo", OMP_NUM_THREADS="1",
               NO_ALBUMENTATIONS_UPDATE="1", WIT_PROGRESS="0")
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    # only rank 0 prints the summary; the global batch is WORLD x BATCH
    summaries = [line for line in result.stdout.splitlines() if line.startswith("wit train:")
                 and "steps" in line]
    assert len(summaries) == 1, result.stdout
    assert f"{STEPS} steps, {STEPS * BATCH * WORLD} samples" in summaries[0]
    state = torch.load(tmp_path / "train" / "checkpoint.pt", map_location="cpu",
                       weights_only=True)
    assert state["world_size"] == WORLD and state["step"] == STEPS
    assert state["samples"] == STEPS * BATCH * WORLD
    assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())
