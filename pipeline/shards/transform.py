"""The Beam job over downloaded shards: latest attempt per row -> basic filters ->
decontamination -> exact dedup (sha256) -> near dedup (pHash LSH bands + faiss) -> resharding
into fixed-size WebDataset shards.

Only metadata flows through the shuffles until the last step, which reads each kept image
once from its download tar and groups them by output shard. Every row keeps a status; no
row is ever dropped from the PCollections.
"""

from __future__ import annotations

import math
import tarfile
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import apache_beam as beam
import fsspec
import pyarrow.parquet as pq

from pipeline.shards.decontaminate import EvalIndex
from pipeline.shards.dedup import exact_duplicates, group_edges, preference
from pipeline.shards.download import shard_name
from pipeline.shards.filters import FilterConfig, filter_reason
from pipeline.shards.phash import band_values, from_hex, phash_bytes, to_hex
from pipeline.shards.writer import write_shard
from schemas.shards import SAMPLES

Record = dict[str, Any]
SAMPLE_FIELDS = [f.name for f in SAMPLES]


@dataclass(frozen=True)
class TransformConfig:
    out_folder: str
    filters: FilterConfig = field(default_factory=FilterConfig)
    near_dup_bits: int = 10
    contamination_bits: int = 10
    samples_per_shard: int = 10000
    block_size: int = 10000  # keys per block: the download shard size
    encode_format: str = "jpg"
    resize_mode: str = "keep_ratio"


@dataclass(frozen=True)
class DownloadedShard:
    round: int
    folder: str
    name: str


def read_tar_images(path: str, encode_format: str, wanted: set[str] | None = None) -> dict[str, bytes]:
    """``{key: image bytes}`` of a download tar (only ``wanted`` keys when given)."""
    suffix = "." + encode_format
    images: dict[str, bytes] = {}
    with fsspec.open(path, "rb") as f, tarfile.open(fileobj=f, mode="r|") as tar:
        for member in tar:
            if not member.name.endswith(suffix):
                continue
            key = member.name[: -len(suffix)]
            if wanted is not None and key not in wanted:
                continue
            extracted = tar.extractfile(member)
            if extracted is not None:
                images[key] = extracted.read()
    return images


class ReadDownloadedShard(beam.DoFn):
    """Rows of one download shard as records. The downloader stored each image's pHash; only
    rows without one (downloads of an older version) make us read the tar."""

    def __init__(self, config: TransformConfig):
        self.config = config

    def process(self, shard: DownloadedShard) -> Iterator[Record]:
        base = f"{shard.folder}/{shard.name}"
        with fsspec.open(base + ".parquet", "rb") as f:
            rows = pq.read_table(f).to_pylist()
        images: dict[str, bytes] | None = None
        for row in rows:
            record: Record = {name: row.get(name) for name in SAMPLE_FIELDS}
            record.update(duplicate_of=None, attempts=1, _round=shard.round, _source=base)
            if record["status"] == "success" and not record["phash"]:
                if images is None:
                    images = read_tar_images(base + ".tar", self.config.encode_format)
                image = images.get(record["key"])
                try:
                    if image is None:
                        raise ValueError("image missing from the download tar")
                    record["phash"] = to_hex(phash_bytes(
                        image, self.config.resize_mode == "border",
                        record["original_width"], record["original_height"]))
                except Exception as exc:  # noqa: BLE001 - a bad stored image is a row status
                    record.update(status="failed_to_resize", error_message=f"pHash: {exc}")
            yield record


def latest_attempt(item: tuple[str, Iterable[Record]]) -> Record:
    records = list(item[1])
    latest = dict(max(records, key=lambda r: r["_round"]))
    latest["attempts"] = len(records)
    return latest


def apply_filters(record: Record, config: FilterConfig) -> Record:
    if record["status"] == "success":
        reason = filter_reason(record, config)
        if reason:
            record = {**record, "status": f"filtered:{reason}",
                      "error_message": f"basic filter: {reason}"}
    return record


class Decontaminate(beam.DoFn):
    """Marks records near an evaluation image; the eval hashes arrive as a side input and
    are indexed once per worker."""

    def __init__(self, max_bits: int):
        self.max_bits = max_bits
        self._index: EvalIndex | None = None
        self._source: int | None = None

    def process(self, record: Record, eval_hashes: list[str]) -> Iterator[Record]:
        if record["status"] != "success" or not eval_hashes or not record["phash"]:
            yield record
            return
        if self._index is None or self._source != id(eval_hashes):
            self._index = EvalIndex([from_hex(h) for h in eval_hashes])
            self._source = id(eval_hashes)
        distance = int(self._index.nearest_distance([from_hex(record["phash"])])[0])
        if distance <= self.max_bits:
            record = {**record, "status": "contaminated",
                      "error_message": f"pHash within {distance} bits of an evaluation image"}
        yield record


def mark_duplicates(item: tuple[str, dict[str, list]], kind: str) -> Iterator[Record]:
    """Join of records with their best keeper (if any)."""
    _, joined = item
    keepers = sorted(joined["keeper"])
    for record in joined["record"]:
        if keepers:
            keeper = keepers[0] if isinstance(keepers[0], str) else keepers[0][1]
            record = {**record, "status": f"duplicate_of:{keeper}", "duplicate_of": keeper,
                      "error_message": f"{kind} duplicate of {keeper}"}
        yield record


def is_success(record: Record) -> bool:
    return record["status"] == "success"


def _pref(record: Record):
    return preference(record["original_width"], record["original_height"], record["key"])


class AssignAndLoad(beam.DoFn):
    """One block of keys (sorted): the output shard of every row (kept rows by global rank,
    dropped rows beside them) and the image bytes of the kept rows."""

    def __init__(self, config: TransformConfig):
        self.config = config
        self._prefix: dict[int, int] = {}
        self._total = 0
        self._counts_id: int | None = None

    def _prefixes(self, counts: dict[int, int]) -> None:
        if self._counts_id == id(counts):
            return
        running, self._prefix = 0, {}
        for block in sorted(counts):
            self._prefix[block] = running
            running += counts[block]
        self._total, self._counts_id = running, id(counts)

    def process(self, item: tuple[int, Iterable[Record]],
                counts: dict[int, int]) -> Iterator[tuple[int, tuple[Record, bytes | None]]]:
        self._prefixes(counts)
        block, records = item
        size = self.config.samples_per_shard
        last_shard = max(1, math.ceil(self._total / size)) - 1
        ordered = sorted(records, key=lambda r: r["key"])
        wanted: dict[str, set[str]] = defaultdict(set)
        for record in ordered:
            if is_success(record):
                wanted[record["_source"]].add(record["key"])
        images: dict[str, bytes] = {}
        for source in sorted(wanted):
            images.update(read_tar_images(source + ".tar", self.config.encode_format, wanted[source]))
        rank = self._prefix.get(block, 0)
        for record in ordered:
            shard = min(rank // size, last_shard)
            clean = {name: record.get(name) for name in SAMPLE_FIELDS}
            if is_success(record):
                rank += 1
                yield shard, (clean, images[record["key"]])
            else:
                yield shard, (clean, None)


class WriteShard(beam.DoFn):
    def __init__(self, config: TransformConfig):
        self.config = config

    def process(self, item: tuple[int, Iterable[tuple[Record, bytes | None]]]) -> Iterator[dict]:
        shard, members = item
        rows, images = [], {}
        for record, image in members:
            rows.append(record)
            if image is not None:
                images[record["key"]] = image
        yield write_shard(self.config.out_folder, shard_name(shard), rows, images,
                          self.config.encode_format)


class BuildShards(beam.PTransform):
    """Downloaded shards (``DownloadedShard`` descriptors) -> written output shards; the
    output PCollection holds one stats dict per written shard."""

    def __init__(self, config: TransformConfig, shards: list[DownloadedShard],
                 eval_hashes: list[int]):
        super().__init__()
        self.config, self.shards, self.eval_hashes = config, shards, eval_hashes

    def expand(self, pbegin):
        cfg = self.config
        bits = cfg.near_dup_bits
        records = (
            pbegin
            | "Shards" >> beam.Create(self.shards)
            | "Reshuffle" >> beam.Reshuffle()
            | "Read" >> beam.ParDo(ReadDownloadedShard(cfg))
            | "ByKey" >> beam.Map(lambda r: (r["key"], r))
            | "Attempts" >> beam.GroupByKey()
            | "Latest" >> beam.Map(latest_attempt)
            | "Filter" >> beam.Map(apply_filters, cfg.filters)
        )
        # hashes travel as hex: Beam's int coder is signed 64-bit
        eval_side = pbegin | "EvalHashes" >> beam.Create([[to_hex(h) for h in self.eval_hashes]])
        records = records | "Decontaminate" >> beam.ParDo(
            Decontaminate(cfg.contamination_bits), beam.pvalue.AsSingleton(eval_side))

        # exact duplicates: one group per sha256
        ok = records | "Ok1" >> beam.Filter(is_success)
        other = records | "Other1" >> beam.Filter(lambda r: not is_success(r))
        exact = (
            ok
            | "BySha" >> beam.Map(lambda r: (r["sha256"], (_pref(r), r["key"])))
            | "ShaGroups" >> beam.GroupByKey()
            | "ExactDups" >> beam.FlatMap(lambda kv: exact_duplicates(kv[1]))
        )
        ok = (
            {"record": ok | "Key1" >> beam.Map(lambda r: (r["key"], r)), "keeper": exact}
            | "JoinExact" >> beam.CoGroupByKey()
            | "MarkExact" >> beam.FlatMap(mark_duplicates, "exact")
        )
        ok2 = ok | "Ok2" >> beam.Filter(is_success)
        other2 = ok | "Other2" >> beam.Filter(lambda r: not is_success(r))

        # near duplicates: LSH band groups, pairs inside each group
        near = (
            ok2
            | "Bands" >> beam.FlatMap(lambda r: [
                (f"{i}:{v}", (r["key"], r["phash"], _pref(r)))
                for i, v in enumerate(band_values(from_hex(r["phash"]), bits))])
            | "BandGroups" >> beam.GroupByKey()
            | "Pairs" >> beam.FlatMap(lambda kv: group_edges(
                int(kv[0].split(":")[0]), [(k, from_hex(h), p) for k, h, p in kv[1]], bits))
            | "BestKeeper" >> beam.CombinePerKey(min)
        )
        ok3 = (
            {"record": ok2 | "Key2" >> beam.Map(lambda r: (r["key"], r)), "keeper": near}
            | "JoinNear" >> beam.CoGroupByKey()
            | "MarkNear" >> beam.FlatMap(mark_duplicates, "near")
        )
        final = (other, other2, ok3) | "All" >> beam.Flatten()

        block_size = cfg.block_size
        counts = (
            final
            | "KeptPerBlock" >> beam.Map(lambda r: (int(r["key"]) // block_size, int(is_success(r))))
            | "SumBlocks" >> beam.CombinePerKey(sum)
        )
        return (
            final
            | "ByBlock" >> beam.Map(lambda r: (int(r["key"]) // block_size, r))
            | "Blocks" >> beam.GroupByKey()
            | "Assign" >> beam.ParDo(AssignAndLoad(cfg), beam.pvalue.AsDict(counts))
            | "ByShard" >> beam.GroupByKey()
            | "Write" >> beam.ParDo(WriteShard(cfg))
        )
