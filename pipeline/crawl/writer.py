"""Canonical candidate files: which row goes to which ``part-*.parquet``, in which order, and
the exact Parquet bytes — so the same inputs and seed give byte-identical files on any
runner and number of workers, whatever order pages or rows arrived in.

- part of a row: ``SHA-256(uid)`` (first 8 bytes, big-endian) modulo the number of parts;
- rows inside a part: sorted by ``uid`` (unique after dedup);
- number of parts: ``--num-shards`` when given, else ``ceil(kept / rows_per_part)``, at least 1;
- every part is written, empty ones too (the schema and no rows), so ``part-*-of-N`` are
  always N files;
- fixed writer settings (codec, format version, row-group size): pyarrow stores no
  timestamps, so the bytes depend on the rows and the pyarrow version only.

The shards stage numbers samples by row order of the sorted part files, so this order is
also what makes its sample keys (and the dataset) the same on every run. Pure functions:
the Beam plumbing is in :mod:`pipeline.crawl.transform`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.core import fsio
from pipeline.crawl.balancing import entry_probability
from schemas import validate
from schemas.candidates import CANDIDATES, ENTRY_COUNTS

# Default rows per part file when --num-shards is 0. One part is grouped and sorted in
# memory by one worker, so this bounds a worker's memory (~100-200 MB of rows at typical
# URL/text lengths), and keeps files a convenient size for img2dataset-style readers.
ROWS_PER_PART = 200_000
# Row groups inside a file: readers that stream by row group hold at most this many rows.
ROW_GROUP_ROWS = 50_000
ENTRY_COUNTS_FILE = "entry_counts.parquet"
# Passed to every pq.write_table here: nothing depends on library defaults that may drift.
PARQUET_OPTIONS: dict[str, Any] = {
    "compression": "snappy",
    "version": "2.6",
    "data_page_version": "1.0",
    "use_dictionary": True,
    "write_statistics": True,
    "row_group_size": ROW_GROUP_ROWS,
    "store_schema": True,
}


def part_of(uid: str, num_parts: int) -> int:
    """The part a row goes to: a stable hash of its uid (never Python's salted ``hash``)."""
    digest = hashlib.sha256(uid.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % num_parts


def num_parts(kept: int, num_shards: int = 0, rows_per_part: int = ROWS_PER_PART) -> int:
    """``num_shards`` if positive, else enough parts of at most ``rows_per_part`` rows for
    ``kept`` rows (at least one)."""
    if num_shards > 0:
        return num_shards
    if rows_per_part <= 0:
        raise ValueError(f"rows_per_part must be positive, got {rows_per_part}")
    return max(1, -(-kept // rows_per_part))


def part_name(part: int, parts: int) -> str:
    return f"part-{part:05d}-of-{parts:05d}.parquet"


def parquet_bytes(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, **PARQUET_OPTIONS)
    return sink.getvalue().to_pybytes()


def candidates_table(rows: Iterable[Mapping[str, Any]], where: str = "<candidates>") -> pa.Table:
    """Candidate rows (dicts with the CANDIDATES columns) as a table sorted by uid."""
    ordered = sorted(rows, key=lambda row: row["uid"])
    return validate(pa.Table.from_pylist(ordered, schema=CANDIDATES), CANDIDATES, where=where)


def write_part(out: str, part: int, parts: int, rows: Iterable[Mapping[str, Any]]) -> str:
    """Write one part file atomically (temporary name, then rename); returns its path.
    Writing it twice (a retried bundle) gives the same bytes."""
    path = fsio.join(out, part_name(part, parts))
    fsio.atomic_write_bytes(path, parquet_bytes(candidates_table(rows, where=path)))
    return path


def entry_counts_table(entries: Sequence[str], counts: Mapping[int, int], t: int) -> pa.Table:
    """One row per metadata entry (count 0 included), in entry-id order."""
    counted = [counts.get(entry_id, 0) for entry_id in range(len(entries))]
    return pa.table({
        "entry_id": pa.array(range(len(entries)), pa.int64()),
        "entry": pa.array(entries, pa.string()),
        "count": pa.array(counted, pa.int64()),
        "p": pa.array([entry_probability(n, t) for n in counted], pa.float64()),
    }, schema=ENTRY_COUNTS)


def write_entry_counts(out: str, entries: Sequence[str], counts: Mapping[int, int],
                       t: int) -> str:
    path = fsio.join(out, ENTRY_COUNTS_FILE)
    table = validate(entry_counts_table(entries, counts, t), ENTRY_COUNTS, where=path)
    fsio.atomic_write_bytes(path, parquet_bytes(table))
    return path
