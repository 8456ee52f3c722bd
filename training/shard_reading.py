"""Reading WebDataset shards (img2dataset's layout: ``KEY.jpg`` + ``KEY.txt`` [+ ``KEY.json``]
per sample): shard lists and sample counts, tar members read as a stream (a damaged tar ends
its shard with a warning, never a traceback), samples grouped by key, and in-order
(image, caption) pairs for evaluation and tokenizer training."""

from __future__ import annotations

import logging
import tarfile
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import braceexpand
import fsspec
from webdataset.tariterators import group_by_keys

from pipeline.core import fsio
from pipeline.core.errors import InputError

log = logging.getLogger(__name__)

IMAGE_EXTS = ("jpg", "jpeg", "png", "webp")
TEXT_EXTS = ("txt",)


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



# ---------------------------------------------------------------- samples

def iterate_shard(url: str, handler: Callable[[Exception], bool] | None = None,
                  skipped: Counter[str] | None = None, with_json: bool = False,
                  extra: tuple[str, ...] = ()) -> Iterator[dict[str, Any]]:
    """Samples of one shard as dicts ``{"__key__", "__url__", ext: bytes}`` (``json``
    too with ``with_json``, and the ``extra`` extensions, e.g. a benchmark's ``cls``). A
    damaged tar (0 bytes, truncated, corrupt header) ends the shard early: logged and
    counted in ``skipped["tar_read_error"]``."""
    wanted = set(IMAGE_EXTS + TEXT_EXTS + (("json",) if with_json else ()) + extra)

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

