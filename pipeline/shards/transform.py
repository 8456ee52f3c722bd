"""The Beam job over downloaded shards: latest attempt per row -> basic filters ->
decontamination -> CLIP-score filter (optional, clipscore.py) -> exact dedup (sha256) ->
near dedup (pHash LSH tables, bounded groups) -> resharding
into fixed-size WebDataset shards.

No full record crosses a shuffle (the in-process runner holds every shuffle in memory):
dedup shuffles (sha256, HashedSample) pairs and packed pHashes, every row crosses as a
packed state of a few bytes (joinback.py) that meets its block's duplicate marks, and the
writer of each output shard reads its rows back from the download shards (and the kept
images from the download tars). The element types and their flow:
pipeline/shards/elements.py.
Steps that have nothing to do (no retry rounds, no eval images) are left out of the graph:
each Beam stage costs fixed time. Every row keeps a status; no row is ever dropped.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import apache_beam as beam
import fsspec
import pyarrow.parquet as pq
from apache_beam.transforms.window import GlobalWindows
from apache_beam.utils import shared

from pipeline.shards.decontaminate import EvalIndex
from pipeline.shards.dedup import (
    NearDupConfig,
    Ranked,
    exact_duplicates,
    preference,
)
from pipeline.shards.elements import (
    BlockPlan,
    DuplicateMark,
    HashedSample,
    KeptRanks,
    Record,
)
from pipeline.shards.filters import FilterConfig, filter_sample
from pipeline.shards.joinback import (
    assign_rows,
    delta_of,
    key_number,
    pack_state,
    plan_block,
    rebuild_block,
    shards_of_block,
    stored_record,
)
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
            # _stored: the row as the writer will read it back (joinback.py), for the delta
            stored = stored_record(row, fields)
            record: Record = {**stored, "_round": shard.round, "_source": base,
                              "_stored": stored}
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


class PackStates(beam.DoFn):
    """Records after the per-row steps -> ``(block, (round, source, packed states))``: each
    row's state (joinback.py) appended to its block's and download shard's ``bytearray``,
    which leave when the bundle ends or hold ``flush_bytes``. Any split into chunks gives
    the same plans."""

    def __init__(self, config: TransformConfig, flush_bytes: int = 16 << 20):
        self.config, self.flush_bytes = config, flush_bytes
        self._chunks: dict[tuple[int, int, str], bytearray] = {}
        self._bytes = 0

    def start_bundle(self) -> None:
        self._chunks, self._bytes = {}, 0

    def process(self, record: Record) -> Iterator[tuple[int, tuple[int, str, bytes]]]:
        fields = self.config.fields
        key = record["key"]
        where = (key_number(key) // self.config.block_size, record["_round"], record["_source"])
        chunk = self._chunks.get(where)
        if chunk is None:
            chunk = self._chunks[where] = bytearray()
        before = len(chunk)
        pack_state(chunk, key, is_success(record), delta_of(record, record["_stored"], fields))
        self._bytes += len(chunk) - before
        if self._bytes >= self.flush_bytes:
            yield from self._flush()

    def _flush(self) -> Iterator[tuple[int, tuple[int, str, bytes]]]:
        chunks, self._chunks, self._bytes = self._chunks, {}, 0
        for (block, round_, source), packed in sorted(chunks.items()):
            yield block, (round_, source, bytes(packed))

    def finish_bundle(self) -> Iterator[Any]:
        for element in self._flush():
            yield GlobalWindows.windowed_value(element)


def read_rows(source: str) -> list[dict[str, Any]]:
    """The rows of one download shard's Parquet (``source``: its path without suffix)."""
    with fsspec.open(source + ".parquet", "rb") as f:
        return pq.read_table(f).to_pylist()


def plan_shards(plan: BlockPlan, ranks: KeptRanks, size: int) -> Iterator[tuple[int, BlockPlan]]:
    for shard in shards_of_block(plan, ranks, size):
        yield shard, plan


class WriteShard(beam.DoFn):
    """One output shard from the plans of the blocks its rows come from: their records read
    back from the download shards (joinback.rebuild_block), the shard's rows picked by
    their rank, the kept rows' images read from the download tars."""

    def __init__(self, config: TransformConfig):
        self.config = config

    def process(self, item: tuple[int, Iterable[BlockPlan]], ranks: KeptRanks) -> Iterator[dict]:
        shard, plans = item
        cfg = self.config
        stored: dict[str, dict[str, dict[str, Any]]] = {}

        def rows_of(source: str) -> dict[str, dict[str, Any]]:
            if source not in stored:
                stored[source] = {row["key"]: row for row in read_rows(source)}
            return stored[source]

        rows: list[Record] = []
        for plan in sorted(plans, key=lambda p: p.block):
            records = rebuild_block(plan, cfg.fields, rows_of)
            rows.extend(record for at, record in assign_rows(
                records, ranks.first.get(plan.block, 0), ranks.total, cfg.samples_per_shard)
                if at == shard)
        if not rows:  # a block's range may reach a shard none of its rows go to
            return
        wanted: dict[str, set[str]] = defaultdict(set)
        for record in rows:
            if is_success(record):
                wanted[record["_source"]].add(record["key"])
        images: dict[str, bytes] = {}
        for source in sorted(wanted):
            images.update(read_tar_images(source + ".tar", cfg.encode_format, wanted[source]))
        fields = cfg.fields
        yield write_shard(cfg.out_folder, shard_name(shard),
                          [{name: r.get(name) for name in fields} for r in rows], images,
                          cfg.encode_format, cfg.extra_columns)


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
            | "Filter" >> beam.Map(apply_filters, cfg.filters)
        )
        if self.eval_hashes:
            records = records | "Decontaminate" >> beam.ParDo(
                Decontaminate(cfg.contamination_bits, self.eval_hashes))
        if cfg.clip is not None and (cfg.clip.min_score is not None or cfg.clip.top_fraction):
            from pipeline.shards.clipscore import ClipFilter
            records = records | "ClipFilter" >> ClipFilter(cfg.clip)

        # Dedup sees only (sha256, HashedSample) of the kept rows (a success is always its
        # row's latest attempt: only failures are downloaded again); every row's state
        # meets its duplicate marks by block, and its latest attempt is picked there.
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
        plans = (
            {"states": records | "States" >> beam.ParDo(PackStates(cfg)),
             "mark": marks | "MarksByBlock" >> beam.Map(
                 lambda kv: (key_number(kv[0]) // block_size, kv))}
            | "Blocks" >> beam.CoGroupByKey()
            | "Plan" >> beam.Map(lambda kv: plan_block(kv[0], kv[1]["states"], kv[1]["mark"]))
            .with_output_types(BlockPlan)
        )
        ranks = beam.pvalue.AsSingleton(
            plans
            | "KeptPerBlock" >> beam.Map(lambda p: (p.block, p.kept))
            | "AllBlocks" >> beam.combiners.ToList()
            | "KeptRanks" >> beam.Map(kept_ranks).with_output_types(KeptRanks))
        return (
            plans
            | "Assign" >> beam.FlatMap(plan_shards, ranks, cfg.samples_per_shard)
            .with_output_types(tuple[int, BlockPlan])
            | "ByShard" >> beam.GroupByKey()
            | "Write" >> beam.ParDo(WriteShard(cfg), ranks)
        )
