"""Streaming WebDataset shards (img2dataset's layout: ``KEY.jpg`` + ``KEY.txt`` [+ ``KEY.json``]
per sample) into batches of (uint8 images, token ids).

Each DataLoader worker of each rank draws shards with replacement from its own seeded RNG
("resampled" shards, so ranks and workers never need a shared split) or, with
``resampled=False``, reads its own part of the shard list (split by node and by worker after
a per-epoch shuffle shared by all); it shuffles samples in a buffer, decodes, augments and
batches. An epoch is a fixed number of samples (from ``sizes.json``/img2dataset stats),
i.e. ``steps_per_epoch`` global batches. Global batch ``g`` is made by worker ``g % workers``
of every rank, from the stream seeded by (seed, epoch, rank, worker): so a run resumed at
step ``g`` rebuilds exactly the batches an uninterrupted run would have seen (same number of
workers and ranks), skipping the already used samples before decoding them (each batch
reports where it ended in its worker's stream, and checkpoints keep that: images that do
not decode are dropped, so a batch may use more than ``batch_size`` samples). Augmentation
randomness is seeded per sample index.
"""

from __future__ import annotations

import itertools
import logging
import os
import random
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from pipeline.core.errors import InputError, UsageError
from training.clip.preprocess import center_crop, decode_image, to_uint8_tensor
from training.sample_decoding import MalformedMetadata, mix_seed, pick_text, random_resized_crop
from training.shard_reading import image_and_text, iterate_shard

log = logging.getLogger(__name__)


def shuffled(items: Iterator[Any], buffer: int, rng: random.Random, initial: int | None = None
             ) -> Iterator[Any]:
    """Shuffle buffer (as webdataset's): start emitting once ``initial`` items are held,
    growing by two items per emitted one until ``buffer`` are held."""
    if buffer <= 1:
        yield from items
        return
    initial = min(buffer, initial if initial is not None else buffer)
    end = object()
    it = iter(items)
    pool: list[Any] = []
    for item in it:
        pool.append(item)
        if len(pool) < buffer:
            extra = next(it, end)
            if extra is not end:
                pool.append(extra)
        if len(pool) < initial:
            continue
        j = rng.randrange(len(pool))
        pool[j], pool[-1] = pool[-1], pool[j]
        yield pool.pop()
    rng.shuffle(pool)
    yield from pool


@dataclass
class StreamConfig:
    shards: list[str]
    batch_size: int
    image_size: int
    context_length: int
    steps_per_epoch: int
    seed: int = 0
    start_batch: int = 0
    rank: int = 0
    world_size: int = 1
    shuffle_buffer: int = 2000
    augment: bool = True
    # False: split the shards between ranks and workers instead of resampling them
    resampled: bool = True
    # "first": the caption (KEY.txt); "random": one of KEY.json's texts, per epoch
    text: str = "first"
    # resuming: loader worker -> (epoch, stream position after its last batch used), from
    # the BatchInfo of the interrupted run (see ShardStream.__iter__)
    start_positions: dict[int, tuple[int, int]] = field(default_factory=dict)


@dataclass
class BatchInfo:
    """What comes with each batch: samples skipped since the worker's previous batch, by
    reason, and where the batch ended in its worker's stream (saved in checkpoints so that a
    resumed run continues each worker's stream exactly)."""
    skipped: dict[str, int]
    worker: int
    epoch: int
    position: int


class ShardStream(IterableDataset):
    """Infinite stream of batches (images uint8 [B,3,S,S], tokens long [B,L], BatchInfo)
    for one rank;
    global batch ``start_batch + i`` is the i-th yielded (see module docstring)."""

    def __init__(self, cfg: StreamConfig, tokenizer: Any):
        super().__init__()
        self.cfg, self.tokenizer = cfg, tokenizer
        # skipped samples by reason since the last batch (shipped with each batch, since
        # workers are separate processes)
        self.skipped: Counter[str] = Counter()

    def _shard_order(self, epoch: int, worker: int, workers: int) -> tuple[list[str], Iterator[str]]:
        """(the shards this worker reads in ``epoch``, an endless sequence of them)."""
        cfg = self.cfg
        rng = random.Random(mix_seed(cfg.seed, epoch, cfg.rank, worker, "shards"))
        if cfg.resampled:  # drawn with replacement from every shard
            return cfg.shards, (rng.choice(cfg.shards) for _ in itertools.count())
        mine = split_shards(cfg.shards, epoch, cfg.seed, cfg.rank, cfg.world_size, worker, workers)

        def passes() -> Iterator[str]:
            order = list(mine)
            while True:  # a worker needing more samples than its shards hold reads them again
                yield from order
                rng.shuffle(order)
        return mine, passes()

    def _samples(self, epoch: int, worker: int, workers: int = 1) -> Iterator[tuple[bytes, str]]:
        cfg = self.cfg
        candidates, order = self._shard_order(epoch, worker, workers)
        buffer_rng = random.Random(mix_seed(cfg.seed, epoch, cfg.rank, worker, "buffer"))

        def raw() -> Iterator[tuple[bytes, str]]:
            empty: set[str] = set()
            for shard in order:
                found = False
                for sample in iterate_shard(shard, skipped=self.skipped,
                                            with_json=cfg.text != "first"):
                    pair = image_and_text(sample, self.skipped)
                    if pair is None:
                        continue
                    try:
                        text = pick_text(sample, pair[1], cfg.text, cfg.seed, epoch)
                    except MalformedMetadata as exc:  # a damaged sample, like any other
                        log.warning("%s: sample %s: %s, skipped", shard, sample.get("__key__"), exc)
                        self.skipped["bad_metadata"] += 1
                        continue
                    found = True
                    yield pair[0], text
                if not found:
                    empty.add(shard)
                    if len(empty) == len(set(candidates)):
                        raise InputError(f"{candidates[0]} ...: no shard has an (image, caption) sample")

        return shuffled(raw(), cfg.shuffle_buffer, buffer_rng, initial=cfg.shuffle_buffer // 2)

    def _make_batch(self, stream: Iterator[tuple[bytes, str]], epoch: int, worker: int,
                    position: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        """(images, tokens, stream position after the batch) from the pairs at ``position``
        on. An image that does not decode is dropped and counted (``undecodable_image``), and
        the next pair takes its place: a false (blank image, caption) pair would teach the
        model nothing true. Augmentation is seeded by the pair's position in the stream."""
        cfg = self.cfg
        images: list[torch.Tensor] = []
        texts: list[str] = []
        while len(images) < cfg.batch_size:
            data, text = next(stream)
            index, position = position, position + 1
            try:
                img = decode_image(data, cfg.image_size)
            except Exception as exc:  # noqa: BLE001 - PIL raises many types for bad bytes
                log.warning("undecodable image dropped (%s)", exc)
                self.skipped["undecodable_image"] += 1
                continue
            if cfg.augment:
                rng = random.Random(mix_seed(cfg.seed, epoch, cfg.rank, worker, index))
                img = random_resized_crop(img, cfg.image_size, rng)
            else:
                img = center_crop(img, cfg.image_size)
            images.append(to_uint8_tensor(img))
            texts.append(text)
        tokens = self.tokenizer.encode(texts, cfg.context_length)
        return torch.stack(images), tokens, position

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor, BatchInfo]]:
        cfg = self.cfg
        info = get_worker_info()
        loader_worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        steps = cfg.steps_per_epoch
        # DataLoader takes batches round-robin from its workers, worker 0 first: loader worker
        # w yields global batches start_batch + w, + W, ...; it plays the stream of the worker
        # that made those batches in an uninterrupted run (g mod W), so that a run resumed at
        # any step, odd ones included, sees the same batches in the same order
        g = cfg.start_batch + loader_worker
        worker = g % workers
        epoch, position = -1, 0
        stream: Iterator[tuple[bytes, str]] = iter(())
        while True:
            if g // steps != epoch:
                epoch = g // steps
                stream = self._samples(epoch, worker, workers)
                # pairs this worker's batches of this epoch before g used: recorded by the
                # run being resumed (dropped images make it more than batches x batch size),
                # else computed; skipped here without decoding
                recorded = cfg.start_positions.get(worker)
                if recorded is not None and recorded[0] == epoch:
                    position = recorded[1]
                else:
                    first = epoch * steps + (worker - epoch * steps) % workers
                    position = len(range(first, g, workers)) * cfg.batch_size
                for _ in range(position):
                    next(stream)
            images, tokens, position = self._make_batch(stream, epoch, worker, position)
            skipped = dict(self.skipped)
            self.skipped.clear()  # in place: the shard readers hold this counter
            yield images, tokens, BatchInfo(skipped, worker, epoch, position)
            g += workers


def split_shards(shards: list[str], epoch: int, seed: int, rank: int, world_size: int,
                 worker: int, workers: int) -> list[str]:
    """This (rank, worker)'s part of the shards in ``epoch``: the list shuffled the same way on
    every rank (seeded by seed and epoch), then dealt out to the world_size x workers slots."""
    order = list(shards)
    random.Random(mix_seed(seed, epoch, "split")).shuffle(order)
    slots = world_size * workers
    if len(order) < slots:
        raise InputError(f"{shards[0]} ...: {len(order)} shard(s) cannot be split between "
                         f"{world_size} process(es) x {workers} loader worker(s): use more "
                         "shards or fewer workers, or resampled shards (no --split-shards)")
    return order[rank * workers + worker::slots]


def make_loader(cfg: StreamConfig, tokenizer: Any, workers: int, pin_memory: bool) -> DataLoader:
    # fixed worker seeds: the stream is seeded explicitly, never from the global torch RNG
    return DataLoader(ShardStream(cfg, tokenizer), batch_size=None, num_workers=workers,
                      pin_memory=pin_memory, prefetch_factor=4 if workers else None,
                      persistent_workers=False,
                      generator=torch.Generator().manual_seed(cfg.seed))


def steps_per_epoch(total_samples: int, global_batch: int) -> int:
    return max(1, total_samples // global_batch)


def _whole(name: str, default: int, low: int) -> int:
    text = os.environ.get(name)
    if text is None:
        return default
    try:
        value = int(text.strip(), 10)
    except ValueError:
        value = None
    if value is None or value < low:
        raise UsageError(f"{name}={text!r}: expected a whole number >= {low} (torchrun sets "
                         "RANK, WORLD_SIZE and LOCAL_RANK; unset them for a single process)")
    return value


def environment_world() -> tuple[int, int, int]:
    """(rank, world size, local rank) from torchrun's environment, each checked: a
    :class:`UsageError` (exit 2) for a value that is not a whole number, a world of no
    process, or a rank outside it."""
    rank, world = _whole("RANK", 0, 0), _whole("WORLD_SIZE", 1, 1)
    local_rank = _whole("LOCAL_RANK", 0, 0)
    if rank >= world:
        raise UsageError(f"RANK={rank} is outside WORLD_SIZE={world} (ranks 0 to {world - 1})")
    return rank, world, local_rank
