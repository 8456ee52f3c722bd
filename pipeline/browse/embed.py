"""``wit index``'s work: the image and caption embeddings of every kept sample of the shards
(batched, on CPU or GPU), the faiss index of the image embeddings, and the mapping Parquet
(:mod:`schemas.index`).

Resumable: each shard's embeddings and mapping rows go to ``_parts/{shard}.*`` (temporary
name, then rename) as soon as the shard is done, and a rerun skips the shards whose part is
there; a killed run loses at most the shard it was in. The parts are assembled into the
final arrays in shard order, so ids do not depend on which run embedded a shard."""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.browse.index_choice import (
    FLAT_BELOW,
    HNSW_BELOW,
    KINDS,
    IndexSpec,
    build_index,
    choose_index,
)
from pipeline.browse.shard_listing import list_shards
from pipeline.browse.tar_offsets import image_offsets, read_member
from pipeline.core.cliargs import output_dir, positive_int
from pipeline.core.errors import InputError
from pipeline.core.options import option
from pipeline.core.progress import Progress
from schemas import status as st
from schemas import validate
from schemas.index import MAPPING, MAPPING_ROW_GROUP, MAPPING_SAMPLE_COLUMNS

PARTS = "_parts"


@dataclass(frozen=True)
class IndexConfig:
    shards: str = option(required=True, metavar="OUT/shards",
                         help="the shards folder of `wit shards` (local)")
    checkpoint: str = option(required=True, metavar="CK",
                             help="checkpoint of `wit train` whose model embeds images and captions")
    out: str = option(required=True, metavar="OUT/index", type=output_dir,
                      help="output folder: image.faiss, image.npy, text.npy, mapping.parquet, "
                           "index.json (a rerun resumes from its _parts/)")
    batch_size: int = option(64, type=positive_int, help="images per forward pass")
    device: str = option("cpu", help="cpu, cuda, cuda:N or auto (cuda when available)")
    kind: str = option("auto", choices=KINDS,
                       help="faiss index: auto picks flat (exact) below --flat-below vectors, "
                            "hnsw below --hnsw-below, ivfpq above")
    flat_below: int = option(FLAT_BELOW, type=positive_int, metavar="N",
                             help="auto: exact search below N vectors")
    hnsw_below: int = option(HNSW_BELOW, type=positive_int, metavar="N",
                             help="auto: HNSW below N vectors, IVF-PQ from N on")


class Encoder:
    """The checkpoint's model, loaded once; L2-normalised image and text embeddings."""

    def __init__(self, checkpoint: str, device: str = "cpu"):
        import torch

        from training.clip.checkpoint import load_model

        self.device = torch.device(("cuda" if torch.cuda.is_available() else "cpu")
                                   if device == "auto" else device)
        self.model, self.tokenizer = load_model(checkpoint, self.device)
        self.dim = self.model.cfg.embed_dim

    def images(self, tensors: list[Any]) -> np.ndarray:
        import torch

        with torch.no_grad():
            return self.model.encode_image(torch.stack(tensors).to(self.device)).float().cpu().numpy()

    def texts(self, texts: list[str]) -> np.ndarray:
        import torch

        with torch.no_grad():
            tokens = self.tokenizer.encode(texts, self.model.cfg.context_length)
            return self.model.encode_text(tokens.to(self.device)).float().cpu().numpy()

    def image_tensor(self, data: bytes) -> Any:
        """Raises for bytes that do not decode."""
        from training.clip.preprocess import image_tensor

        return image_tensor(data, self.model.cfg.image_size)


def _fingerprint(config: IndexConfig) -> dict[str, Any]:
    """What the parts of a run depend on: a rerun with another checkpoint starts over."""
    stat = os.stat(config.checkpoint)
    return {"checkpoint": os.path.abspath(config.checkpoint), "size": stat.st_size,
            "mtime_ns": stat.st_mtime_ns}


def _kept_rows(parquet: Path) -> list[dict[str, Any]]:
    table = pq.read_table(parquet, columns=MAPPING_SAMPLE_COLUMNS)
    return [r for r in table.to_pylist() if r["status"] == st.SUCCESS]


def embed_shard(encoder: Encoder, name: str, base: Path, batch_size: int,
                progress: Progress) -> tuple[list[dict[str, Any]], np.ndarray, np.ndarray, int]:
    """Mapping rows (no ``index_id`` yet), image and text embeddings of one shard's kept
    samples, and how many kept samples were skipped (no image in the tar, or undecodable)."""
    tar = base.with_suffix(".tar")
    rows = _kept_rows(base.with_suffix(".parquet"))
    members = image_offsets(str(tar)) if rows else {}
    done: list[dict[str, Any]] = []
    images: list[np.ndarray] = []
    texts: list[np.ndarray] = []
    batch: list[tuple[dict[str, Any], Any]] = []
    skipped = 0

    def flush() -> None:
        images.append(encoder.images([t for _, t in batch]))
        texts.append(encoder.texts([r["caption"] for r, _ in batch]))
        done.extend(r for r, _ in batch)
        progress.update(len(batch))
        batch.clear()

    for row in rows:
        member = members.get(row["key"])
        if member is None:
            skipped += 1
            continue
        try:
            tensor = encoder.image_tensor(read_member(str(tar), member.offset, member.size))
        except Exception as exc:  # noqa: BLE001 - one bad image is skipped and counted, not fatal
            print(f"wit index: {tar}: {row['key']}: image skipped: {' '.join(str(exc).split())[:200]}",
                  file=sys.stderr)
            skipped += 1
            continue
        batch.append(({**row, "shard": name, "image_offset": member.offset,
                       "image_size": member.size, "image_format": member.image_format}, tensor))
        if len(batch) == batch_size:
            flush()
    if batch:
        flush()
    empty = np.zeros((0, encoder.dim), dtype=np.float32)
    return (done, np.concatenate(images) if images else empty,
            np.concatenate(texts) if texts else empty, skipped)


def _write_part(parts: Path, name: str, rows: list[dict[str, Any]], image: np.ndarray,
                text: np.ndarray, skipped: int) -> None:
    """The rows then the arrays, each renamed when complete; the .npz marks a done part."""
    schema = pa.schema([f for f in MAPPING if f.name != "index_id"])
    tmp = parts / f".tmp-{name}.parquet"
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), tmp)
    os.replace(tmp, parts / f"{name}.parquet")
    tmp = parts / f".tmp-{name}.npz"
    with open(tmp, "wb") as f:
        np.savez(f, image=image.astype(np.float32), text=text.astype(np.float32),
                 skipped=np.array(skipped))
    os.replace(tmp, parts / f"{name}.npz")


def _prepare_parts(out: Path, fingerprint: dict[str, Any]) -> Path:
    parts = out / PARTS
    stamp = parts / "run.json"
    if parts.is_dir() and (not stamp.is_file() or json.loads(stamp.read_text()) != fingerprint):
        print(f"wit index: {parts}: parts of a run with another checkpoint: starting over",
              file=sys.stderr)
        shutil.rmtree(parts)
    parts.mkdir(parents=True, exist_ok=True)
    stamp.write_text(json.dumps(fingerprint))
    return parts


def _total_kept(shards: dict[str, Path]) -> int:
    total = 0
    for base in shards.values():
        status = pq.read_table(base.with_suffix(".parquet"), columns=["status"]).column("status")
        total += sum(1 for s in status.to_pylist() if s == st.SUCCESS)
    return total


def _assemble(out: Path, parts: Path, names: list[str], dim: int) -> tuple[int, dict[str, list[int]]]:
    """``mapping.parquet``, ``image.npy``, ``text.npy`` from the parts, in shard order;
    returns the count and ``{shard: [first id, count]}``."""
    counts = {n: int(pq.read_metadata(parts / f"{n}.parquet").num_rows) for n in names}
    total = sum(counts.values())
    arrays = {kind: np.lib.format.open_memmap(out / f".tmp-{kind}.npy", mode="w+",
                                              dtype=np.float32, shape=(total, dim))
              for kind in ("image", "text")}
    ranges: dict[str, list[int]] = {}
    tmp_mapping = out / ".tmp-mapping.parquet"
    with pq.ParquetWriter(tmp_mapping, MAPPING) as writer:
        pending: list[pa.Table] = []
        start = 0
        for name in names:
            n = counts[name]
            with np.load(parts / f"{name}.npz") as part:
                for kind, array in arrays.items():
                    array[start:start + n] = part[kind]
            table = pq.read_table(parts / f"{name}.parquet")
            table = table.add_column(0, "index_id", pa.array(np.arange(start, start + n), pa.int64()))
            pending.append(validate(table, MAPPING,
                                    where=str(parts / f"{name}.parquet")))
            ranges[name] = [start, n]
            start += n
            # whole row groups of MAPPING_ROW_GROUP rows: id i is in row group i // size
            buffered = pa.concat_tables(pending)
            whole = len(buffered) // MAPPING_ROW_GROUP * MAPPING_ROW_GROUP
            if whole:
                writer.write_table(buffered.slice(0, whole), row_group_size=MAPPING_ROW_GROUP)
            pending = [buffered.slice(whole)]
        rest = pa.concat_tables(pending) if pending else MAPPING.empty_table()
        if len(rest) or total == 0:
            writer.write_table(rest, row_group_size=MAPPING_ROW_GROUP)
    for array in arrays.values():
        array.flush()
    arrays.clear()  # closes the memory maps before the rename
    for kind in ("image", "text"):
        os.replace(out / f".tmp-{kind}.npy", out / f"{kind}.npy")
    os.replace(tmp_mapping, out / "mapping.parquet")
    return total, ranges


def _chunks(array: np.ndarray, size: int = 65536) -> Iterator[np.ndarray]:
    for start in range(0, len(array), size):
        yield np.asarray(array[start:start + size])


def _sample(array: np.ndarray, size: int) -> np.ndarray:
    """``size`` rows of ``array`` spread evenly (deterministic)."""
    ids = np.linspace(0, len(array) - 1, num=min(size, len(array))).astype(np.int64)
    return np.asarray(array[np.unique(ids)])


def write_faiss(out: Path, spec: IndexSpec, dim: int) -> float:
    """``image.faiss`` of ``image.npy``; returns the build time in seconds."""
    import faiss

    vectors = np.load(out / "image.npy", mmap_mode="r")
    start = time.perf_counter()
    index = build_index(spec, dim, len(vectors), lambda: _chunks(vectors),
                        lambda size: _sample(vectors, size))
    seconds = time.perf_counter() - start
    tmp = out / ".tmp-image.faiss"
    faiss.write_index(index, str(tmp))
    os.replace(tmp, out / "image.faiss")
    return seconds


def run_index(config: IndexConfig) -> dict[str, Any]:
    """Build ``config.out`` (see the module docstring); returns ``index.json``'s content."""
    shards = list_shards(config.shards)
    if not os.path.isfile(config.checkpoint):
        raise InputError(f"{config.checkpoint}: no such checkpoint file")
    encoder = Encoder(config.checkpoint, config.device)  # a bad checkpoint fails before any write
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "index.json").unlink(missing_ok=True)  # an index being rebuilt is not complete
    parts = _prepare_parts(out, _fingerprint(config))
    names = list(shards)
    todo = [n for n in names if not (parts / f"{n}.npz").is_file()]
    if len(todo) < len(names):
        print(f"wit index: resuming: {len(names) - len(todo)} of {len(names)} shards already "
              f"embedded in {parts}", file=sys.stderr)
    progress = Progress("embedding", total=_total_kept({n: shards[n] for n in todo}), unit="img")
    started = time.perf_counter()
    embedded = 0
    for name in todo:
        rows, image, text, skipped = embed_shard(encoder, name, shards[name], config.batch_size,
                                                 progress)
        _write_part(parts, name, rows, image, text, skipped)
        embedded += len(rows)
    progress.close()
    embed_seconds = time.perf_counter() - started
    total, ranges = _assemble(out, parts, names, encoder.dim)
    skipped = sum(int(np.load(parts / f"{n}.npz")["skipped"]) for n in names)
    spec = choose_index(total, encoder.dim, config.kind, config.flat_below, config.hnsw_below)
    build_seconds = write_faiss(out, spec, encoder.dim)
    info = {
        "kind": spec.kind, "params": {"factory": spec.factory, **spec.params},
        "count": total, "dim": encoder.dim, "metric": "inner_product (cosine)",
        "shards": ranges, "checkpoint": os.path.abspath(config.checkpoint),
        "model_config": encoder.model.cfg.to_dict(), "device": str(encoder.device),
        "embedding": {"embedded_this_run": embedded, "skipped": skipped,
                      "seconds": round(embed_seconds, 3),
                      "images_per_second": round(embedded / embed_seconds, 2) if embedded and embed_seconds > 0 else None,
                      "batch_size": config.batch_size},
        "build_seconds": round(build_seconds, 3),
    }
    tmp = out / ".tmp-index.json"
    tmp.write_text(json.dumps(info, indent=2))
    os.replace(tmp, out / "index.json")
    shutil.rmtree(parts)
    return info
