"""Input sharding, img2dataset's reader role: candidate Parquet files -> validated row
batches -> the per-shard Arrow input files the downloader reads (``{shard}.arrow``).

Keys number the rows in input order; a shard whose ``_stats.json`` exists is done and is not
written again, so a killed run redoes only unfinished shards.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import fsspec
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.core import fsio
from pipeline.core.errors import InputError
from schemas.candidates import PROVENANCE_COLUMNS, with_added_columns

KEY_WIDTH = 10
# rows the lane buffers of write_input_shards hold at most (about 0.5 GB of input rows): past
# it the fullest lane is cut short, so the launcher's memory does not grow with the lanes
MAX_LANE_ROWS = 1_000_000
OOM_SHARD_COUNT = 5


def format_key(index: int) -> str:
    return f"{index:0{KEY_WIDTH}d}"


def shard_name(shard_id: int) -> str:
    return f"{shard_id:0{OOM_SHARD_COUNT}d}"


def iter_candidate_batches(paths: list[str], batch_rows: int = 65536) -> Iterator[pa.Table]:
    """Validated candidate rows, file by file, in bounded batches."""
    from schemas import SchemaError, validate
    from schemas.candidates import CANDIDATES

    for path in paths:
        try:
            with fsspec.open(path, "rb") as f:
                parquet = pq.ParquetFile(f)
                for batch in parquet.iter_batches(batch_size=batch_rows):
                    table = with_added_columns(pa.Table.from_batches([batch]))
                    yield validate(table, CANDIDATES, where=path)
        except SchemaError as exc:
            raise InputError(str(exc)) from exc
        except (OSError, pa.ArrowInvalid) as exc:
            raise InputError(f"{path}: not a readable candidates Parquet file: {exc}") from exc


def candidate_files(candidates: str) -> list[str]:
    """``part-*.parquet`` under a candidates folder, or the given file(s)/glob; each file's
    columns are checked up front (from the footer) so a bad file fails before any download."""
    from schemas import SchemaError, validate
    from schemas.candidates import CANDIDATES

    if candidates.endswith(".parquet") or any(c in candidates for c in "*?["):
        files = fsio.expand([candidates], "candidates")
    else:
        files = fsio.expand([fsio.join(candidates, "part-*.parquet")], "candidates")
    for path in files:
        try:
            with fsspec.open(path, "rb") as f:
                schema = pq.read_schema(f)
            validate(with_added_columns(schema.empty_table()), CANDIDATES, where=path)
        except SchemaError as exc:
            raise InputError(str(exc)) from exc
        except (OSError, pa.ArrowInvalid) as exc:
            raise InputError(f"{path}: not a readable candidates Parquet file: {exc}") from exc
    return files


def to_input_table(table: pa.Table, first_index: int) -> pa.Table:
    """Candidate rows -> the Arrow columns the downloader reads
    (``schemas.shards.DOWNLOAD_INPUT_COLUMNS``)."""
    table = with_added_columns(table)
    keys = pa.array([format_key(first_index + i) for i in range(table.num_rows)], pa.string())
    # all kept texts of the image (MetaCLIP); candidates written before they existed: the one
    texts = (table.column("texts") if "texts" in table.column_names else
             pa.array([[t] for t in table.column("text").to_pylist()], pa.list_(pa.string())))
    return pa.table({
        "key": keys,
        "uid": table.column("uid"),
        "page_url": table.column("page_url"),
        "source": table.column("source"),
        "matched_entry_ids": table.column("matched_entry_ids"),
        "language": table.column("language"),
        **{name: table.column(name) for name in PROVENANCE_COLUMNS},
        "texts": texts,
        "caption": table.column("text"),
        "url": table.column("url"),
    })


def host_lanes_of(table: pa.Table, lanes: int) -> list[int]:
    """The host lane of every row (:func:`pipeline.core.net.hosts.host_lane`; a row with no
    host, never fetched, goes by its key)."""
    from pipeline.core.net.hosts import host_key, host_lane

    out = []
    for key, url in zip(table.column("key").to_pylist(), table.column("url").to_pylist()):
        host = host_key(url)
        out.append(host_lane(host, lanes) if host else int(key) % lanes)
    return out


def write_input_shards(tables: Iterator[pa.Table], tmp_dir: str, rows_per_shard: int,
                       done: set[int], lanes: int = 1,
                       cut: set[int] | None = None) -> Iterator[tuple[int, str]]:
    """Cut the row stream into Arrow shards of ``rows_per_shard`` rows, skipping ``done``.

    ``lanes`` > 1: rows are routed by host first (:func:`host_lanes_of`), every shard holds
    the rows of one lane only, and the n-th shard of lane l has id ``n * lanes + l`` (so
    ``shard_id % lanes`` is its lane, and a rerun cuts the same shards); each lane's last
    shard may be short, and so may the fullest lane's shard whenever the lanes together hold
    more than :data:`MAX_LANE_ROWS` rows (that cut depends on the rows and the input's
    batches, both fixed by the inputs: a rerun cuts the same shards). ``lanes`` = 1 is the plain cut in input order (ids 0, 1, ...).
    ``cut`` collects the id of every shard cut, done or not.

    Yields (shard_id, path) — the iterable img2dataset's distributors consume."""
    fsio.makedirs(tmp_dir)
    buffers: list[list[pa.Table]] = [[] for _ in range(lanes)]
    buffered = [0] * lanes
    counts = [0] * lanes  # shards cut per lane

    def flush(lane: int) -> tuple[int, str] | None:
        rows, buffers[lane], buffered[lane] = buffers[lane], [], 0
        current = counts[lane] * lanes + lane
        counts[lane] += 1
        if cut is not None:
            cut.add(current)
        if current in done:
            return None
        path = fsio.join(tmp_dir, f"{shard_name(current)}.arrow")
        table = pa.concat_tables(rows).combine_chunks()
        with fsspec.open(path, "wb") as f, pa.ipc.new_file(f, table.schema) as writer:
            writer.write_table(table)
        return current, path

    for table in tables:
        if lanes > 1:
            # one stable sort by lane, then a slice per lane (rows keep their order in it)
            of_row = np.asarray(host_lanes_of(table, lanes), dtype=np.int64)
            order = np.argsort(of_row, kind="stable")
            grouped = table.take(pa.array(order))
            ends = np.cumsum(np.bincount(of_row, minlength=lanes)).tolist()
            parts = [(lane, grouped.slice(start, end - start)) for lane, (start, end)
                     in enumerate(zip([0, *ends[:-1]], ends)) if end > start]
        else:
            parts = [(0, table)]
        for lane, part in parts:
            offset = 0
            while offset < part.num_rows:
                take = min(rows_per_shard - buffered[lane], part.num_rows - offset)
                buffers[lane].append(part.slice(offset, take))
                buffered[lane] += take
                offset += take
                if buffered[lane] == rows_per_shard:
                    item = flush(lane)
                    if item:
                        yield item
                elif sum(buffered) > MAX_LANE_ROWS:  # memory: the fullest lane goes early
                    item = flush(max(range(lanes), key=buffered.__getitem__))
                    if item:
                        yield item
    for lane in range(lanes):
        if buffered[lane]:
            item = flush(lane)
            if item:
                yield item


def done_shards(folder: str) -> set[int]:
    fs, _, (root,) = fsspec.get_fs_token_paths(folder)
    if not fs.exists(root):
        return set()
    return {int(p.rsplit("/", 1)[-1].split("_")[0]) for p in fs.glob(root + "/*_stats.json")}


def shard_count(rows: int, rows_per_shard: int) -> int:
    return math.ceil(rows / rows_per_shard) if rows else 0
