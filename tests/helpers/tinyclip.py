"""A tiny CLIP checkpoint trained in the test, through `wit train` on a WebDataset shard
written here (generated shapes with their captions), for tests that need a real checkpoint."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

from pipeline.cli import main as wit
from training.synthetic import shape_dataset


def write_shard(path: Path, pairs) -> None:
    """One WebDataset tar (KEY.png + KEY.txt per pair)."""
    with tarfile.open(path, "w") as tar:
        for i, (image, caption) in enumerate(pairs):
            buf = io.BytesIO()
            image.save(buf, format="PNG")
            for ext, payload in (("png", buf.getvalue()), ("txt", caption.encode())):
                info = tarfile.TarInfo(f"{i:06d}.{ext}")
                info.size = len(payload)
                tar.addfile(info, io.BytesIO(payload))


def train_tiny_checkpoint(root: Path, steps: int = 4) -> Path:
    """``root/train/checkpoint.pt`` of the tiny config after ``steps`` steps."""
    shards = root / "tiny-shards"
    shards.mkdir(parents=True)
    write_shard(shards / "00000.tar", shape_dataset(96, seed=0, size=40))
    out = root / "train"
    assert wit(["train", "--shards", str(shards), "--steps", str(steps), "--batch-size", "16",
                "--lr", "2e-3", "--workers", "0", "--log-every", "1", "--out", str(out)]) == 0
    return out / "checkpoint.pt"
