"""The Beam job over downloaded shards: latest attempt per row -> basic filters ->
decontamination -> CLIP-score filter (optional, clipscore.py) -> exact dedup (sha256) ->
near dedup (pHash LSH tables, bounded groups) -> resharding
into fixed-size WebDataset shards.

Only metadata flows through the shuffles until the last step, which reads each kept image
once from its download tar and groups them by output shard. Dedup shuffles only
(sha256, HashedSample) pairs; full records are shuffled once, by block of keys, where they
meet their duplicate marks (and once more by key when there are retry rounds). The element
types and their flow: pipeline/shards/elements.py.
Steps that have nothing to do (no retry rounds, no eval images) are left out of the graph:
each Beam stage costs fixed time. Every row keeps a status; no row is ever dropped.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import apache_beam as beam
import fsspec
import pyarrow.parquet as pq
from apache_beam.utils import shared

from pipeline.shards.decontaminate import EvalIndex
from pipeline.shards.dedup import (
    NearDupConfig,
    Ranked,
    exact_duplicates,
    preference,
)
from pipeline.shards.elements import (
    DuplicateMark,
    HashedSample,
    KeptRanks,
    MarkedBlock,
    Record,
    ShardMember,
)
from pipeline.shards.filters import FilterConfig, filter_sample
from pipeline.shards.near_duplicates import NearDuplicates
from pipeline.shards.phash import from_hex, phash_bytes, to_hex
from pipeline.shards.reader import shard_name
from pipeline.shards.tario import read_tar_images
from pipeline.shards.writer import write_shard
from schemas import status as st
from schemas.shards import SAMPLES

SAMPLE_FIELDS = [f.name for f in SAMPLES]


@dataclass(frozen=True, kw_only=True)
class TransformConfig:
    """The Beam job's settings, made from the stage's options by
    ``pipeline.shards.job.transform_config``: the defaults live there, none here."""

    out_folder: str
    filters: FilterConfig
    near_dup_bits: int
    contamination_bits: int
    samples_per_shard: int
    block_size: int  # keys per block: the download shard size
    encode_format: str
    resize_mode: str
    # pipeline.shards.clipscore.ClipFilterConfig: CLIP-score every row, filter after decontamination
    clip: Any = None
    # a URL list's --save-additional-columns (pa.Schema): carried by the records, written
    # after the SAMPLES columns
    extra_columns: Any = None

    @property
    def fields(self) -> list[str]:
        """The columns a record carries: SAMPLES', then the additional ones."""
        return SAMPLE_FIELDS + (self.extra_columns.names if self.extra_columns else [])


@dataclass(frozen=True)
class DownloadedShard:
    round: int
    folder: str
    name: str


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
        fields = self.config.fields
        for row in rows:
            record: Record = {name: row.get(name) for name in fields}
            record.update(duplicate_of=None, attempts=1, _round=shard.round, _source=base)
            if is_success(record) and not record["phash"]:
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
                    record.update(status=st.FAILED_TO_RESIZE, error_message=f"pHash: {exc}")
            yield record


def latest_attempt(item: tuple[str, Iterable[Record]]) -> Record:
    records = list(item[1])
    latest = dict(max(records, key=lambda r: r["_round"]))
    latest["attempts"] = len(records)
    return latest


GUARDED = st.filtered(st.MAX_PIXELS)


def apply_filters(record: Record, config: FilterConfig) -> Record:
    """The basic filters on a downloaded row (filters.filter_sample): its texts reduced to
    the passing ones, then its status. A row the downloader's pixel guard stopped, with its
    size known from the header, is judged too: a rule it breaks replaces ``max_pixels``, so
    that status counts only the images the rules would have kept."""
    guarded = record["status"] == GUARDED and bool(record["original_width"]) \
        and bool(record["original_height"])
    if not (is_success(record) or guarded):
        return record
    updates, reason = filter_sample(record, config)
    record = {**record, **updates}
    if guarded:
        if reason not in (None, st.MAX_PIXELS):  # else the download's message stays
            record.update(status=st.filtered(reason),
                          error_message=st.basic_filter_message(reason))
    elif reason:
        record.update(status=st.filtered(reason), error_message=st.basic_filter_message(reason))
    return record


class Decontaminate(beam.DoFn):
    """Marks records near an evaluation image. The eval hashes travel in the DoFn; their
    index is per-worker state (pipeline/core/beam.py): built in ``setup``, once per process."""

    def __init__(self, max_bits: int, eval_hashes: list[int]):
        self.max_bits, self.eval_hashes = max_bits, eval_hashes
        self._shared = shared.Shared()
        self._index: EvalIndex | None = None

    def setup(self) -> None:
        hashes = self.eval_hashes
        self._index = self._shared.acquire(lambda: EvalIndex(hashes))

    def process(self, record: Record) -> Iterator[Record]:
        assert self._index is not None
        if not is_success(record) or not record["phash"]:
            yield record
            return
        distance = int(self._index.nearest_distance([from_hex(record["phash"])])[0])
        if distance <= self.max_bits:
            record = {**record, "status": st.CONTAMINATED,
                      "error_message": f"pHash within {distance} bits of an evaluation image"}
        yield record


def hashed_sample(record: Record) -> list[tuple[str, HashedSample]]:
    if not is_success(record):
        return []
    return [(record["sha256"], HashedSample(_pref(record), record["key"], record["phash"]))]


def duplicate_marks(item: tuple[str, Iterable[HashedSample]]) -> Iterator[tuple[str, DuplicateMark]]:
    """One sha256 group: (key, exact mark) for every member but the keeper."""
    for key, keeper in exact_duplicates((s.preference, s.key) for s in item[1]):
        yield key, DuplicateMark(st.EXACT, keeper)


def keeper_hash(item: tuple[str, Iterable[HashedSample]]) -> tuple[str, Ranked]:
    """The keeper of one sha256 group as (pHash, ranked key): only exact-dedup survivors
    take part in near dedup."""
    best = min(item[1])
    return best.phash, Ranked(best.preference, best.key)


def mark_block(item: tuple[int, dict[str, Iterable[Any]]]) -> MarkedBlock:
    """One block of keys: its records, sorted by key, with the duplicate marks applied."""
    block, joined = item
    marks: dict[str, DuplicateMark] = {}
    for key, mark in sorted(joined["mark"]):
        marks.setdefault(key, mark)  # one per key; sorted keeps any tie deterministic
    records = []
    for record in sorted(joined["record"], key=lambda r: r["key"]):
        mark = marks.get(record["key"])
        if mark is not None and is_success(record):
            record = {**record, "status": st.duplicate_of(mark.keeper), "duplicate_of": mark.keeper,
                      "error_message": st.duplicate_message(mark.kind, mark.keeper)}
        records.append(record)
    return MarkedBlock(block, records)


def is_success(record: Record) -> bool:
    return record["status"] == st.SUCCESS


def _pref(record: Record):
    return preference(record["original_width"], record["original_height"], record["key"])


def kept_ranks(counts: Iterable[tuple[int, int]]) -> KeptRanks:
    """(block, kept rows) of every block -> where each block's kept rows start."""
    first, running = {}, 0
    for block, kept in sorted(counts):
        first[block] = running
        running += kept
    return KeptRanks(first, running)


class AssignAndLoad(beam.DoFn):
    """One block of keys (records sorted by key): the output shard of every row (kept rows
    by global rank, dropped rows beside them) and the image bytes of the kept rows."""

    def __init__(self, config: TransformConfig):
        self.config = config

    def process(self, item: MarkedBlock, ranks: KeptRanks) -> Iterator[tuple[int, ShardMember]]:
        block, records = item
        size = self.config.samples_per_shard
        last_shard = max(1, math.ceil(ranks.total / size)) - 1
        ordered = sorted(records, key=lambda r: r["key"])
        wanted: dict[str, set[str]] = defaultdict(set)
        for record in ordered:
            if is_success(record):
                wanted[record["_source"]].add(record["key"])
        images: dict[str, bytes] = {}
        for source in sorted(wanted):
            images.update(read_tar_images(source + ".tar", self.config.encode_format, wanted[source]))
        rank = ranks.first.get(block, 0)
        fields = self.config.fields
        for record in ordered:
            shard = min(rank // size, last_shard)
            clean = {name: record.get(name) for name in fields}
            if is_success(record):
                rank += 1
                yield shard, ShardMember(clean, images[record["key"]])
            else:
                yield shard, ShardMember(clean, None)


class WriteShard(beam.DoFn):
    def __init__(self, config: TransformConfig):
        self.config = config

    def process(self, item: tuple[int, Iterable[ShardMember]]) -> Iterator[dict]:
        shard, members = item
        rows, images = [], {}
        for record, image in members:
            rows.append(record)
            if image is not None:
                images[record["key"]] = image
        yield write_shard(self.config.out_folder, shard_name(shard), rows, images,
                          self.config.encode_format, self.config.extra_columns)


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
        block_size = cfg.block_size
        if cfg.clip is not None:
            from pipeline.shards.clipscore import ReadAndScore
            read: beam.DoFn = ReadAndScore(cfg, cfg.clip)
        else:
            read = ReadDownloadedShard(cfg)
        records = (
            pbegin
            | "Shards" >> beam.Create(self.shards)
            | "Reshuffle" >> beam.Reshuffle()
            | "Read" >> beam.ParDo(read)
        )
        if any(shard.round > 0 for shard in self.shards):  # retried rows: keep the latest
            records = (
                records
                | "ByKey" >> beam.Map(lambda r: (r["key"], r))
                | "Attempts" >> beam.GroupByKey()
                | "Latest" >> beam.Map(latest_attempt)
            )
        records = records | "Filter" >> beam.Map(apply_filters, cfg.filters)
        if self.eval_hashes:
            records = records | "Decontaminate" >> beam.ParDo(
                Decontaminate(cfg.contamination_bits, self.eval_hashes))
        if cfg.clip is not None and (cfg.clip.min_score is not None or cfg.clip.top_fraction):
            from pipeline.shards.clipscore import ClipFilter
            records = records | "ClipFilter" >> ClipFilter(cfg.clip)

        # Dedup sees only (sha256, HashedSample) of the kept rows; the records themselves
        # are shuffled once, by block, to meet their duplicate marks.
        sha_groups = (
            records
            | "Hashes" >> beam.FlatMap(hashed_sample).with_output_types(tuple[str, HashedSample])
            | "ShaGroups" >> beam.GroupByKey()
        )
        exact = sha_groups | "ExactDups" >> beam.FlatMap(duplicate_marks).with_output_types(
            tuple[str, DuplicateMark])
        near = (sha_groups
                | "Keepers" >> beam.Map(keeper_hash).with_output_types(tuple[str, Ranked])
                | "NearDups" >> NearDuplicates(NearDupConfig(max_bits=bits)))
        marks = (exact, near) | "Marks" >> beam.Flatten()
        blocks = (
            {"record": records | "RecordsByBlock" >> beam.Map(lambda r: (int(r["key"]) // block_size, r)),
             "mark": marks | "MarksByBlock" >> beam.Map(lambda kv: (int(kv[0]) // block_size, kv))}
            | "Blocks" >> beam.CoGroupByKey()
            | "Mark" >> beam.Map(mark_block).with_output_types(MarkedBlock)
        )
        ranks = (
            blocks
            | "KeptPerBlock" >> beam.Map(lambda b: (b.block, sum(1 for r in b.records if is_success(r))))
            | "AllBlocks" >> beam.combiners.ToList()
            | "KeptRanks" >> beam.Map(kept_ranks).with_output_types(KeptRanks)
        )
        return (
            blocks
            | "Assign" >> beam.ParDo(AssignAndLoad(cfg), beam.pvalue.AsSingleton(ranks))
            .with_output_types(tuple[int, ShardMember])
            | "ByShard" >> beam.GroupByKey()
            | "Write" >> beam.ParDo(WriteShard(cfg))
        )
