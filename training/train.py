"""The training loop: AdamW + cosine/warmup, gradient clipping, bf16 autocast on GPU (fp32 on
CPU), optional gradient checkpointing and ``torch.compile``, DDP under ``torchrun``,
atomic checkpoints every N steps and exact resume. Logs go to the console, to
``OUT/log.jsonl`` and to TensorBoard (``OUT/tensorboard``) when it is installed."""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from tqdm import tqdm

from pipeline.core import fsio
from pipeline.core.errors import InputError
from pipeline.core.progress import Progress
from training import batch_stream, shard_reading
from training.clip.checkpoint import check_model_state, load_checkpoint, save_checkpoint
from training.clip.configs import ModelConfig, check_size, get_config
from training.clip.model import CLIP, count_parameters
from training.clip.tokenizer import CaptionTokenizer, load_tokenizer, train_tokenizer
from training.loss import clip_loss
from training.optim import make_optimizer, make_scheduler
from training.resume import restore
from training.rng_state import rng_states
from training.train_options import TrainOptions

log = logging.getLogger(__name__)

CHECKPOINT = "checkpoint.pt"
TOKENIZER = "tokenizer.json"
LOG_FILE = "log.jsonl"


@dataclass
class TrainResult:
    steps: int
    samples: int
    checkpoint: str
    final_loss: float
    samples_per_s: float
    parameters: int
    losses: list[tuple[int, float]] = field(default_factory=list)
    world_size: int = 1
    # samples this rank skipped, by reason (no image, no caption, undecodable image, tar read
    # error)
    skipped: dict[str, int] = field(default_factory=dict)


def build_model(cfg: ModelConfig, tokenizer: CaptionTokenizer) -> CLIP:
    check_size(cfg, tokenizer.vocab_size)  # before allocating: a loaded vocabulary may be huge
    return CLIP(cfg, vocab_size=tokenizer.vocab_size, eot_id=tokenizer.eot_id)


def _device(name: str, local_rank: int) -> torch.device:
    if name == "auto":
        name = f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


def _tokenizer(opts: TrainOptions, shards: list[str], cfg: ModelConfig) -> CaptionTokenizer:
    if opts.tokenizer:
        return load_tokenizer(opts.tokenizer)
    # deterministic: every rank trains the same vocabulary from the same first captions
    texts = list(shard_reading.captions(shards, opts.tokenizer_samples))
    if not texts:
        raise InputError(f"{opts.shards}: no captions to train a tokenizer on")
    return train_tokenizer(texts, cfg.vocab_size)


def _setup_distributed(device: torch.device) -> tuple[int, int]:
    rank, world, _ = batch_stream.environment_world()
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return rank, world


def train(opts: TrainOptions) -> TrainResult:
    rank, world, local_rank = batch_stream.environment_world()
    device = _device(opts.device, local_rank)
    if device.type == "cuda":
        torch.cuda.set_device(device)
        # fp32 leftovers outside autocast (optimizer, loss) may use TF32 tensor cores
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    rank, world = _setup_distributed(device)
    main = rank == 0
    bf16 = opts.precision == "bf16" or (opts.precision == "auto" and device.type == "cuda")

    checkpoint_path = fsio.join(opts.out, CHECKPOINT)
    state = load_checkpoint(opts.resume) if opts.resume else None
    if state is None and fsio.exists(checkpoint_path):
        raise InputError(f"{checkpoint_path} exists: pass --resume {checkpoint_path} to "
                         "continue that run, or choose another --out")
    shards = shard_reading.resolve_shards(opts.shards)
    if state is not None:
        assert opts.resume is not None
        # config, tokenizer and weights checked before anything is built from them
        cfg, tokenizer = check_model_state(opts.resume, state)
    else:
        cfg = get_config(opts.config, image_size=opts.image_size,
                         context_length=opts.context_length)
        tokenizer = _tokenizer(opts, shards, cfg)

    global_batch = opts.batch_size * world
    sizes = shard_reading.shard_sizes(shards)
    empty = [s for s in shards if sizes[s] <= 0]  # every sample dropped, or unreadable
    if empty:
        log.warning("%d shard(s) without samples left out: %s", len(empty),
                    ", ".join(empty[:5]) + (" ..." if len(empty) > 5 else ""))
    shards = [s for s in shards if sizes[s] > 0]
    if not shards:
        raise InputError(f"{opts.shards}: every shard is empty (sizes.json / _stats.json)")
    epoch_samples = opts.samples_per_epoch or sum(sizes.values())
    if epoch_samples < global_batch:
        raise InputError(f"{opts.shards}: {epoch_samples} samples per epoch, fewer than one "
                         f"global batch of {global_batch}")
    steps_per_epoch = batch_stream.steps_per_epoch(epoch_samples, global_batch)
    if opts.split_shards:  # fails early, naming the shards, if too few to split
        batch_stream.split_shards(shards, 0, opts.seed, rank, world, 0, max(1, opts.workers))
    total = opts.steps or (opts.samples // global_batch if opts.samples else steps_per_epoch)
    warmup = opts.warmup if opts.warmup is not None else max(1, total // 20)

    torch.manual_seed(opts.seed)
    model = build_model(cfg, tokenizer).to(device)
    if opts.grad_checkpointing:
        model.set_grad_checkpointing(True)
    optimizer = make_optimizer(model, opts.lr, opts.weight_decay)
    scheduler = make_scheduler(optimizer, warmup, total)
    step = 0
    start_positions: dict[int, tuple[int, int]] = {}
    if state is not None:
        assert opts.resume is not None
        step, start_positions = restore(opts.resume, state, model, optimizer, scheduler, rank,
                                        world, opts.workers)
        if state.get("world_size", 1) != world or state.get("workers") != opts.workers:
            log.warning("resuming with %d rank(s) x %d worker(s) instead of %s x %s: the data "
                        "order differs from the uninterrupted run", world, opts.workers,
                        state.get("world_size"), state.get("workers"))
    n_params = count_parameters(model)

    train_model: nn.Module = model
    if world > 1:
        train_model = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None)
    if opts.compile:
        train_model = torch.compile(train_model, backend=opts.compile_backend)  # type: ignore[assignment]

    stream = batch_stream.StreamConfig(
        shards=shards, batch_size=opts.batch_size, image_size=cfg.image_size,
        context_length=cfg.context_length, steps_per_epoch=steps_per_epoch, seed=opts.seed,
        start_batch=step, rank=rank, world_size=world, shuffle_buffer=opts.shuffle_buffer,
        resampled=not opts.split_shards, start_positions=start_positions,
        text=opts.text)
    loader = batch_stream.make_loader(stream, tokenizer, opts.workers, pin_memory=device.type == "cuda")

    if main:
        fsio.makedirs(opts.out)
        tokenizer.save(fsio.join(opts.out, TOKENIZER))
        fsio.atomic_write_json(fsio.join(opts.out, "train_options.json"),
                               {**asdict(opts), "model_config": cfg.to_dict(), "world_size": world,
                                "total_steps": total, "steps_per_epoch": steps_per_epoch})
    logger = _Logger(opts.out, total, enabled=main)

    # loader worker -> (epoch, stream position) after the last batch used from it
    positions: dict[int, tuple[int, int]] = dict(stream.start_positions)

    def checkpoint(at: int) -> None:
        rngs: Any = rng_states()
        ranks_positions: Any = positions
        if world > 1:
            gathered: list[Any] = [None] * world
            dist.all_gather_object(gathered, rngs)
            rngs = gathered
            gathered = [None] * world
            dist.all_gather_object(gathered, positions)
            ranks_positions = gathered
        if main:
            save_checkpoint(checkpoint_path, {
                "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(), "step": at, "total_steps": total,
                "samples": at * global_batch, "model_config": cfg.to_dict(),
                "tokenizer": tokenizer.to_json(), "options": asdict(opts), "rng": rngs,
                "world_size": world, "workers": opts.workers,
                "stream_positions": ranks_positions})

    train_model.train()
    losses: list[tuple[int, float]] = []
    window_start, window_steps, rate = time.perf_counter(), 0, 0.0
    last_loss = float("nan")
    skipped: Counter[str] = Counter()
    batches = iter(loader)
    try:
        stop = min(total, opts.stop_at or total)
        while step < stop:
            images, tokens, info = next(batches)
            skipped.update(info.skipped)
            positions[info.worker] = (info.epoch, info.position)
            images = images.to(device, non_blocking=True)
            tokens = tokens.to(device, non_blocking=True)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                image_features, text_features, scale = train_model(images, tokens)
                loss = clip_loss(image_features, text_features, scale)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if opts.grad_clip > 0:
                nn.utils.clip_grad_norm_(model.parameters(), opts.grad_clip)
            optimizer.step()
            scheduler.step()
            model.clamp_logit_scale()
            step += 1
            window_steps += 1
            if step % opts.log_every == 0 or step == stop:
                last_loss = loss.item()  # syncs the device: only every log_every
                elapsed = time.perf_counter() - window_start
                rate = window_steps * global_batch / max(elapsed, 1e-9)
                losses.append((step, last_loss))
                logger.log(step, {"loss": last_loss, "lr": float(scheduler.get_last_lr()[0]),
                                  "temperature": float(1 / model.logit_scale.detach().exp()),
                                  "logit_scale": float(model.logit_scale.detach().exp()),
                                  "samples": step * global_batch, "samples_per_s": rate,
                                  "epoch": step // steps_per_epoch,
                                  **{f"skipped_{k}": v for k, v in skipped.items()}})
                window_start, window_steps = time.perf_counter(), 0
            else:
                logger.advance()
            if step % opts.checkpoint_every == 0 and step < total:
                checkpoint(step)
        checkpoint(step)
    finally:
        logger.close()
        del batches
    return TrainResult(steps=step, samples=step * global_batch, checkpoint=checkpoint_path,
                       final_loss=last_loss, samples_per_s=rate, parameters=n_params,
                       losses=losses, world_size=world, skipped=dict(skipped))


class _Logger:
    """Console (a progress bar with the latest loss, or a line per log step), JSONL and,
    when installed, TensorBoard."""

    def __init__(self, out: str, total: int, enabled: bool):
        self.enabled = enabled
        self.progress = Progress("train", total=total, unit="step") if enabled else None
        self.jsonl = fsio.join(out, LOG_FILE)
        self.tb = None
        if enabled:
            try:
                from torch.utils.tensorboard import SummaryWriter
                self.tb = SummaryWriter(os.path.join(out, "tensorboard"))
            except ImportError:  # tensorboard is optional
                self.tb = None

    def advance(self) -> None:
        if self.progress is not None:
            self.progress.update(1)

    def log(self, step: int, values: dict[str, Any]) -> None:
        if not self.enabled:
            return
        self.advance()
        record = {"step": step, "time": time.time(), **values}
        with open(self.jsonl, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
        if self.tb is not None:
            for key, value in values.items():
                self.tb.add_scalar(f"train/{key}", value, step)
        if os.environ.get("WIT_PROGRESS", "1") != "0":
            assert self.progress is not None
            tqdm.write(f"step {step}/{self.progress.total:.0f}  loss {values['loss']:.4f}  "
                       f"T {values['temperature']:.4f}  lr {values['lr']:.2e}  "
                       f"{values['samples_per_s']:.1f} samples/s", file=sys.stderr)

    def close(self) -> None:
        if self.progress is not None:
            self.progress.close()
        if self.tb is not None:
            self.tb.close()
