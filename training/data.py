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

import hashlib
import io
import itertools
import json
import logging
import math
import os
import random
import tarfile
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import braceexpand
import fsspec
import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, IterableDataset, get_worker_info
from webdataset.tariterators import group_by_keys

from pipeline import fsio
from pipeline.errors import InputError

log = logging.getLogger(__name__)

IMAGE_EXTS = ("jpg", "jpeg", "png", "webp")
TEXT_EXTS = ("txt",)
# bound decoded pixels: a hostile or huge image must not exhaust a worker's memory
Image.MAX_IMAGE_PIXELS = 64_000_000


def mix_seed(*parts: int | str) -> int:
    """A 63-bit seed from several parts, stable across processes and Python versions."""
    digest = hashlib.blake2b(repr(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


# ---------------------------------------------------------------- shard lists and sizes

def resolve_shards(spec: str) -> list[str]:
    """A brace pattern ('OUT/shards/{00000..00009}.tar'), a glob, a directory (every ``*.tar``
    in it) or a comma-separated list of those, as a list of existing shard paths."""
    shards: list[str] = []
    for part in (p.strip() for p in spec.split(",") if p.strip()):
        if not part.endswith(".tar") and not any(c in part for c in "*?[{") and _isdir(part):
            found = fsio.expand([fsio.join(part, "*.tar")], what="shard (.tar in directory)")
            shards.extend(found)
            continue
        expanded = list(braceexpand.braceexpand(part))
        missing = []
        for path in expanded:
            if any(c in path for c in "*?["):
                shards.extend(fsio.expand([path], what="shard"))
            elif fsio.exists(path):
                shards.append(path)
            else:
                missing.append(path)
        if missing:
            raise InputError(f"{missing[0]}: no such shard file ({len(missing)} of "
                             f"{len(expanded)} missing from --shards {spec!r})")
    if not shards:
        raise InputError(f"--shards {spec!r}: no shards found")
    return shards


def _isdir(path: str) -> bool:
    fs, _, (p,) = fsspec.get_fs_token_paths(path)
    return bool(fs.isdir(p))


def _shard_name(path: str) -> str:
    return path.rstrip("/").rsplit("/", 1)[-1]


def shard_sizes(shards: list[str]) -> dict[str, int]:
    """Samples per shard, from (in order of preference) ``sizes.json`` beside the shards
    (``{"00000.tar": n}``), img2dataset's ``NNNNN_stats.json`` (``successes``), or by
    counting the shard's members (slow: a warning says so)."""
    sizes: dict[str, int] = {}
    dirs: dict[str, dict[str, int] | None] = {}
    for shard in shards:
        parent = shard.rsplit("/", 1)[0] if "/" in shard else "."
        if parent not in dirs:
            path = fsio.join(parent, "sizes.json")
            dirs[parent] = None
            if fsio.exists(path):
                try:
                    dirs[parent] = {str(k): int(v) for k, v in fsio.read_json(path).items()}
                except (ValueError, AttributeError, TypeError) as exc:
                    raise InputError(f"{path}: expected {{\"00000.tar\": count, ...}}: {exc}") from exc
        name = _shard_name(shard)
        known = dirs[parent]
        if known is not None and name in known:
            sizes[shard] = known[name]
            continue
        stats = fsio.join(parent, name[: -len(".tar")] + "_stats.json")
        if fsio.exists(stats):
            sizes[shard] = int(fsio.read_json(stats).get("successes", 0))
            continue
        log.warning("%s: no sizes.json or _stats.json entry, counting its samples", shard)
        sizes[shard] = count_samples(shard)
    return sizes


def tar_members(url: str, select: Callable[[str], bool],
                on_error: Callable[[Exception], object]) -> Iterator[dict[str, Any]]:
    """``{"fname", "data", "__url__"}`` of the regular members of a tar, read as a stream.

    A damaged tar (0 bytes, corrupt header, a member cut short: Python's tarfile returns the
    short data silently, so sizes are checked here) ends the shard: ``on_error(exc)`` is
    called once and the members before the damage stay yielded."""
    try:
        with fsspec.open(url, "rb") as f, tarfile.open(fileobj=f, mode="r|*") as tar:
            for info in tar:
                if not info.isreg() or not select(info.name):
                    continue
                member = tar.extractfile(info)
                data = member.read() if member is not None else b""
                if len(data) != info.size:
                    raise tarfile.ReadError(f"{info.name} cut short at {len(data)} of "
                                            f"{info.size} bytes (truncated tar)")
                yield {"fname": info.name, "data": data, "__url__": url}
                tar.members = []  # type: ignore[attr-defined]  # streaming: keep no headers
            # tarfile also ends silently at a header cut short, or at no end-of-archive block
            # at all: then its stream holds less than one header block past the last member
            read = getattr(tar.fileobj, "pos", None)
            if read is not None and read < tar.offset + tarfile.BLOCKSIZE:
                raise tarfile.ReadError(f"no end-of-archive block after byte {tar.offset} "
                                        "(truncated tar)")
    except FileNotFoundError as exc:
        raise InputError(f"{url}: no such shard file") from exc
    except (tarfile.TarError, OSError, EOFError, ValueError, zlib.error) as exc:
        on_error(exc)


def count_samples(shard: str) -> int:
    """Samples (keys with an image) in a shard. A 0-byte or truncated tar counts the samples
    before the damage, with a warning naming the shard (0 for an unreadable one: such a
    shard is then left out of training, see ``train``), never a traceback."""
    keys = set()
    errors: list[Exception] = []
    for entry in tar_members(shard, lambda name: name.rsplit(".", 1)[-1].lower() in IMAGE_EXTS,
                             errors.append):
        keys.add(entry["fname"].rsplit(".", 1)[0])
    if errors:
        log.warning("%s: unreadable tar after %d sample(s) (%s); counting those",
                    shard, len(keys), _error_text(errors[0]))
    return len(keys)


def _error_text(exc: Exception) -> str:
    # webdataset appends (stream, url) to the exception's args: keep the first one only
    return f"{type(exc).__name__}: {exc.args[0] if exc.args else exc}"


# ---------------------------------------------------------------- transforms

def decode_image(data: bytes, size: int) -> Image.Image:
    img = Image.open(io.BytesIO(data))
    img.draft("RGB", (size, size))  # JPEG: decode at a reduced scale when much larger
    return img.convert("RGB")


def random_resized_crop(img: Image.Image, size: int, rng: random.Random,
                        scale: tuple[float, float] = (0.9, 1.0),
                        ratio: tuple[float, float] = (3 / 4, 4 / 3)) -> Image.Image:
    """A crop of random area fraction in ``scale`` and aspect ratio in ``ratio`` (log-uniform),
    resized to size x size; falls back to the centre square (as torchvision does)."""
    width, height = img.size
    area = width * height
    for _ in range(10):
        target = area * rng.uniform(*scale)
        aspect = math.exp(rng.uniform(math.log(ratio[0]), math.log(ratio[1])))
        w = round(math.sqrt(target * aspect))
        h = round(math.sqrt(target / aspect))
        if 0 < w <= width and 0 < h <= height:
            left, top = rng.randint(0, width - w), rng.randint(0, height - h)
            return img.resize((size, size), Image.Resampling.BICUBIC, box=(left, top, left + w, top + h))
    return center_crop(img, size)


def center_crop(img: Image.Image, size: int) -> Image.Image:
    """Resize the shorter side to ``size`` and take the centre square (evaluation)."""
    width, height = img.size
    side = min(width, height)
    left, top = (width - side) // 2, (height - side) // 2
    return img.resize((size, size), Image.Resampling.BICUBIC, box=(left, top, left + side, top + side))


def to_uint8_tensor(img: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.asarray(img, dtype=np.uint8).copy()).permute(2, 0, 1)


# ---------------------------------------------------------------- the stream

def iterate_shard(url: str, handler: Callable[[Exception], bool] | None = None,
                  skipped: Counter[str] | None = None, with_json: bool = False
                  ) -> Iterator[dict[str, Any]]:
    """Samples of one shard as dicts ``{"__key__", "__url__", ext: bytes}`` (``json``
    too with ``with_json``). A damaged tar (0 bytes, truncated, corrupt header) ends the
    shard early: logged and counted in ``skipped["tar_read_error"]``."""
    wanted = set(IMAGE_EXTS + TEXT_EXTS + (("json",) if with_json else ()))

    def select(fname: str) -> bool:
        return fname.rsplit(".", 1)[-1].lower() in wanted

    def on_error(exc: Exception) -> bool:
        log.warning("%s: skipping unreadable data: %s", url, _error_text(exc))
        if skipped is not None:
            skipped["tar_read_error"] += 1
        return True

    entries = tar_members(url, select, handler or on_error)
    yield from group_by_keys(entries, handler=handler or on_error)


def image_and_text(sample: dict[str, Any], skipped: Counter[str] | None = None
                   ) -> tuple[bytes, str] | None:
    """(image bytes, caption) of a sample, or None (counted in ``skipped`` by reason)."""
    image = next((sample[e] for e in IMAGE_EXTS if e in sample), None)
    text = next((sample[e] for e in TEXT_EXTS if e in sample), None)
    if image is None or text is None:
        reason = "no_image" if image is None else "no_caption"
        log.warning("%s: sample %s has %s, skipped", sample.get("__url__"), sample.get("__key__"),
                    reason.replace("_", " "))
        if skipped is not None:
            skipped[reason] += 1
        return None
    return image, text.decode("utf-8", errors="replace").strip()


def sample_texts(sample: dict[str, Any], caption: str) -> list[str]:
    """The texts of a sample: KEY.json's ``texts`` (an image's kept alt, title, ...), else
    just its caption (shards without ``texts``, or an unreadable JSON)."""
    try:
        texts = json.loads(sample["json"]).get("texts") if "json" in sample else None
    except (ValueError, AttributeError):
        texts = None
    if isinstance(texts, list):
        found = [" ".join(t.split()) for t in texts if isinstance(t, str) and t.strip()]
        if found:
            return found
    return [caption]


def pick_text(sample: dict[str, Any], caption: str, mode: str, seed: int, epoch: int) -> str:
    """``first``: the caption; ``random``: one of :func:`sample_texts`, drawn from (seed,
    epoch, sample key) alone, so the same on any rank, worker count or shuffle order."""
    if mode == "first":
        return caption
    texts = sample_texts(sample, caption)
    if len(texts) == 1:
        return texts[0]
    rng = random.Random(mix_seed(seed, epoch, "text", str(sample.get("__key__"))))
    return rng.choice(texts)


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
                    if pair is not None:
                        found = True
                        yield pair[0], pick_text(sample, pair[1], cfg.text, cfg.seed, epoch)
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


# ---------------------------------------------------------------- sequential reading (eval)

def iterate_pairs(shards: list[str], limit: int | None = None,
                  skipped: Counter[str] | None = None) -> Iterator[tuple[bytes, str, str]]:
    """(image bytes, caption, key) of the shards in order, once: for held-out evaluation."""
    n = 0
    for shard in shards:
        for sample in iterate_shard(shard, skipped=skipped):
            pair = image_and_text(sample, skipped)
            if pair is None:
                continue
            yield pair[0], pair[1], str(sample.get("__key__"))
            n += 1
            if limit is not None and n >= limit:
                return


def captions(shards: list[str], limit: int) -> Iterator[str]:
    for _, text, _ in iterate_pairs(shards, limit):
        yield text


def environment_world() -> tuple[int, int, int]:
    """(rank, world size, local rank) from torchrun's environment."""
    return (int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)),
            int(os.environ.get("LOCAL_RANK", 0)))
