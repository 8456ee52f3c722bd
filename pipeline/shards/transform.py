"""The Beam job over downloaded shards: latest attempt per row -> basic filters ->
decontamination -> CLIP-score filter (optional, clipscore.py) -> exact dedup (sha256) ->
near dedup (pHash LSH tables, bounded groups) -> resharding
into fixed-size WebDataset shards.

Only metadata flows through the shuffles until the last step, which reads each kept image
once from its download tar and groups them by output shard. Dedup shuffles only
(sha256, preference, key, pHash) tuples; full records are shuffled once, by block of keys,
where they meet their duplicate marks (and once more by key when there are retry rounds).
Steps that have nothing to do (no retry rounds, no eval images) are left out of the graph:
each Beam stage costs fixed time. Every row keeps a status; no row is ever dropped.
"""

from __future__ import annotations

import math
import zlib
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import apache_beam as beam
import fsspec
import pyarrow.parquet as pq

from pipeline.shards.decontaminate import EvalIndex
from pipeline.shards.dedup import (
    NearDupConfig,
    Preference,
    Ranked,
    best_neighbours,
    exact_duplicates,
    group_keys,
    hash_marks,
    lsh_key,
    preference,
    round_split_bits,
)
from pipeline.shards.filters import FilterConfig, filter_reason
from pipeline.shards.phash import from_hex, phash_bytes, to_hex
from pipeline.shards.reader import shard_name
from pipeline.shards.tario import read_tar_images
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
    # pipeline.shards.clipscore.ClipFilterConfig: CLIP-score every row, filter after decontamination
    clip: Any = None


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


def duplicate_marks(item: tuple[str, Iterable[tuple[Preference, str, str]]]
                    ) -> Iterator[tuple[str, tuple[str, str]]]:
    """One sha256 group of (preference, key, phash): (key, ("exact", keeper)) for every
    member but the keeper."""
    for key, keeper in exact_duplicates((pref, key) for pref, key, _ in item[1]):
        yield key, ("exact", keeper)


def keeper_hash(item: tuple[str, Iterable[tuple[Preference, str, str]]]) -> tuple[str, Ranked]:
    """The keeper of one sha256 group as (pHash, (preference, key)): only exact-dedup
    survivors take part in near dedup."""
    pref, key, phash = min(item[1])
    return phash, (pref, key)


def salt(key: str, salts: int) -> int:
    """Which of a crowded pHash's sub-groups a sample joins (crc32: the same everywhere)."""
    return zlib.crc32(key.encode()) % salts if salts > 1 else 0


def same_hash_marks(item: tuple[tuple[str, int], dict[str, list]]) -> Iterator[tuple[str, tuple[str, str]]]:
    """One (pHash, salt) group of samples with the hash's representative and best neighbour."""
    _, joined = item
    best = min(joined["neighbour"]) if joined["neighbour"] else None
    for key, keeper in hash_marks(joined["member"], joined["representative"][0], best):
        yield key, ("near", keeper)


class NearDuplicates(beam.PTransform):
    """(pHash, (preference, key)) of the exact-dedup keepers -> (key, ("near", keeper)).
    Every group is bounded: same-hash samples meet only through combiners and salted
    sub-groups of ``group_bound``, LSH keys with more representatives are split
    (pipeline/shards/dedup.py has the design)."""

    def __init__(self, config: NearDupConfig):
        super().__init__()
        self.config = config

    def expand(self, keepers):
        cfg, bound = self.config, self.config.group_bound
        reps = keepers | "Representatives" >> beam.CombinePerKey(min)
        crowded_hashes = beam.pvalue.AsDict(
            keepers
            | "PerHash" >> beam.Map(lambda kv: (kv[0], 1))
            | "HashSizes" >> beam.CombinePerKey(sum)
            | "CrowdedHashes" >> beam.Filter(lambda kv: kv[1] > bound)
            | "Salts" >> beam.Map(lambda kv: (kv[0], math.ceil(kv[1] / bound))))
        # count-and-split rounds: round r counts the keys the splits so far give (after the
        # first round only the split ones) and splits those still above the bound
        splits = [keepers.pipeline | "NoSplits" >> beam.Create([])]
        for round_ in range(cfg.split_rounds):
            splits.append(
                reps
                | f"Keys{round_}" >> beam.FlatMap(
                    lambda kv, extra, r: [(k, 1) for k in (
                        lsh_key(from_hex(kv[0]), t, cfg, extra) for t in range(cfg.tables))
                        if (r == 0 or k[1] > 0) and k not in extra],
                    beam.pvalue.AsDict(splits | f"SplitsBefore{round_}" >> beam.Flatten()), round_)
                | f"KeySizes{round_}" >> beam.CombinePerKey(sum)
                | f"Crowded{round_}" >> beam.Filter(lambda kv: kv[1] > bound)
                | f"SplitBits{round_}" >> beam.Map(
                    lambda kv, r: (kv[0], round_split_bits(kv[0], kv[1], cfg, r)), round_))
        crowded_keys = beam.pvalue.AsDict(splits | "AllSplits" >> beam.Flatten())
        neighbours = (
            reps
            | "LshKeys" >> beam.FlatMap(lambda kv, extra: [(key, kv) for key in group_keys(
                from_hex(kv[0]), cfg, extra)], crowded_keys)
            | "LshGroups" >> beam.GroupByKey()
            | "BestInGroup" >> beam.FlatMap(lambda kv: [(to_hex(value), best) for value, best in best_neighbours(
                [(from_hex(h), ranked) for h, ranked in kv[1]], cfg.max_bits)])
            | "BestNeighbour" >> beam.CombinePerKey(min)
        )

        def fan_out(kv, salts):  # a per-hash value to every sub-group of its hash
            return [((kv[0], s), kv[1]) for s in range(salts.get(kv[0], 1))]

        return (
            {"member": keepers | "MemberGroups" >> beam.Map(
                lambda kv, salts: ((kv[0], salt(kv[1][1], salts.get(kv[0], 1))), kv[1]), crowded_hashes),
             "representative": reps | "RepresentativeGroups" >> beam.FlatMap(fan_out, crowded_hashes),
             "neighbour": neighbours | "NeighbourGroups" >> beam.FlatMap(fan_out, crowded_hashes)}
            | "SameHash" >> beam.CoGroupByKey()
            | "NearMarks" >> beam.FlatMap(same_hash_marks)
        )


def mark_block(item: tuple[int, dict[str, list]]) -> tuple[int, list[Record]]:
    """One block of keys: its records, sorted by key, with the duplicate marks applied."""
    block, joined = item
    marks: dict[str, tuple[str, str]] = {}
    for key, mark in sorted(joined["mark"]):
        marks.setdefault(key, mark)  # one per key; sorted keeps any tie deterministic
    records = []
    for record in sorted(joined["record"], key=lambda r: r["key"]):
        mark = marks.get(record["key"])
        if mark is not None and is_success(record):
            kind, keeper = mark
            record = {**record, "status": f"duplicate_of:{keeper}", "duplicate_of": keeper,
                      "error_message": f"{kind} duplicate of {keeper}"}
        records.append(record)
    return block, records


def is_success(record: Record) -> bool:
    return record["status"] == "success"


def _pref(record: Record):
    return preference(record["original_width"], record["original_height"], record["key"])


class AssignAndLoad(beam.DoFn):
    """One block of keys (records sorted by key): the output shard of every row (kept rows
    by global rank, dropped rows beside them) and the image bytes of the kept rows."""

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

    def process(self, item: tuple[int, list[Record]],
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
            # hashes travel as hex: Beam's int coder is signed 64-bit
            eval_side = pbegin | "EvalHashes" >> beam.Create([[to_hex(h) for h in self.eval_hashes]])
            records = records | "Decontaminate" >> beam.ParDo(
                Decontaminate(cfg.contamination_bits), beam.pvalue.AsSingleton(eval_side))
        if cfg.clip is not None and (cfg.clip.min_score is not None or cfg.clip.top_fraction):
            from pipeline.shards.clipscore import ClipFilter
            records = records | "ClipFilter" >> ClipFilter(cfg.clip)

        # Dedup sees only (sha256, preference, key, pHash) of the kept rows; the records
        # themselves are shuffled once, by block, to meet their duplicate marks.
        sha_groups = (
            records
            | "Hashes" >> beam.FlatMap(lambda r: [(r["sha256"], (_pref(r), r["key"], r["phash"]))]
                                       if is_success(r) else [])
            | "ShaGroups" >> beam.GroupByKey()
        )
        exact = sha_groups | "ExactDups" >> beam.FlatMap(duplicate_marks)
        near = (sha_groups
                | "Keepers" >> beam.Map(keeper_hash)
                | "NearDups" >> NearDuplicates(NearDupConfig(max_bits=bits)))
        marks = (exact, near) | "Marks" >> beam.Flatten()
        blocks = (
            {"record": records | "RecordsByBlock" >> beam.Map(lambda r: (int(r["key"]) // block_size, r)),
             "mark": marks | "MarksByBlock" >> beam.Map(lambda kv: (int(kv[0]) // block_size, kv))}
            | "Blocks" >> beam.CoGroupByKey()
            | "Mark" >> beam.Map(mark_block)
        )
        counts = blocks | "KeptPerBlock" >> beam.Map(
            lambda kv: (kv[0], sum(1 for r in kv[1] if is_success(r))))
        return (
            blocks
            | "Assign" >> beam.ParDo(AssignAndLoad(cfg), beam.pvalue.AsDict(counts))
            | "ByShard" >> beam.GroupByKey()
            | "Write" >> beam.ParDo(WriteShard(cfg))
        )
