"""DDP: the gradients of two gloo processes (CPU), each with half of a batch, equal those of
one process on the whole batch — i.e. the loss uses the global batch and gathered features
carry their gradients back to the rank that made them."""

from __future__ import annotations

import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from training.clip.configs import get_config
from training.clip.model import CLIP
from training.loss import clip_loss

pytestmark = pytest.mark.integration

BATCH, VOCAB = 8, 300


def _inputs() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    images = torch.randint(0, 256, (BATCH, 3, 32, 32), dtype=torch.uint8, generator=g)
    tokens = torch.randint(3, VOCAB, (BATCH, 12), generator=g)
    tokens[:, 0], tokens[:, -1] = 1, 2  # start and end tokens, no padding
    return images, tokens


def _model() -> CLIP:
    torch.manual_seed(0)
    return CLIP(get_config("tiny"), VOCAB)


def _grads(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}


def _worker(rank: int, world: int, port: int, out: str) -> None:
    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        model = torch.nn.parallel.DistributedDataParallel(_model())
        images, tokens = _inputs()
        part = slice(rank * BATCH // world, (rank + 1) * BATCH // world)
        loss = clip_loss(*model(images[part], tokens[part]))
        loss.backward()
        torch.save({"grads": _grads(model.module), "loss": loss.detach()}, f"{out}.{rank}")
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ddp_gradients_equal_single_process_on_the_whole_batch(tmp_path):
    if not dist.is_available():
        pytest.skip("torch.distributed is not available in this build")
    torch.set_num_threads(1)
    model = _model()
    images, tokens = _inputs()
    full_loss = clip_loss(*model(images, tokens))
    full_loss.backward()
    expected = _grads(model)

    out = str(tmp_path / "rank.pt")
    mp.spawn(_worker, args=(2, _free_port(), out), nprocs=2, join=True)
    ranks = [torch.load(f"{out}.{r}") for r in range(2)]
    for got in ranks:  # DDP all-reduced: every rank holds the full-batch gradient
        assert set(got["grads"]) == set(expected)
        for name, grad in expected.items():
            torch.testing.assert_close(got["grads"][name], grad, rtol=1e-4, atol=1e-6,
                                       msg=lambda m, name=name: f"{name}: {m}")
    # each rank's loss is over its rows against all columns: their mean is the full loss
    mean = sum(r["loss"].item() for r in ranks) / 2
    assert mean == pytest.approx(full_loss.item(), rel=1e-5)
