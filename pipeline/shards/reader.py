"""Input sharding, img2dataset's reader role: candidate Parquet files -> validated row
batches -> the per-shard Arrow input files the downloader reads (``{shard}.arrow``).

Keys number the rows in input order; a shard whose ``_stats.json`` exists is done and is not
written again, so a killed run redoes only unfinished shards.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.core import fsio
from pipeline.core.errors import InputError

KEY_WIDTH = 10
OOM_SHARD_COUNT = 5


def format_key(index: int) -> str:
    return f"{index:0{KEY_WIDTH}d}"


def shard_name(shard_id: int) -> str:
    return f"{shard_id:0{OOM_SHARD_COUNT}d}"


def iter_candidate_batches(paths: list[str], batch_rows: int = 65536) -> Iterator[pa.Table]:
    """Validated candidate rows, file by file, in bounded batches."""
    from schemas import SchemaError, validate
    from schemas.candidates import CANDIDATES, with_added_columns

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
    from schemas.candidates import CANDIDATES, with_added_columns

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
        "language": (table.column("language") if "language" in table.column_names
                     else pa.nulls(table.num_rows, pa.string())),
        "texts": texts,
        "caption": table.column("text"),
        "url": table.column("url"),
    })


def write_input_shards(tables: Iterator[pa.Table], tmp_dir: str, rows_per_shard: int,
                       done: set[int]) -> Iterator[tuple[int, str]]:
    """Cut the row stream into Arrow shards of ``rows_per_shard`` rows, skipping ``done``.

    Yields (shard_id, path) — the iterable img2dataset's distributors consume."""
    fsio.makedirs(tmp_dir)
    buffer: list[pa.Table] = []
    buffered = 0
    shard_id = 0

    def flush(rows: list[pa.Table]) -> tuple[int, str] | None:
        nonlocal shard_id
        current, shard_id = shard_id, shard_id + 1
        if current in done:
            return None
        path = fsio.join(tmp_dir, f"{shard_name(current)}.arrow")
        table = pa.concat_tables(rows).combine_chunks()
        with fsspec.open(path, "wb") as f, pa.ipc.new_file(f, table.schema) as writer:
            writer.write_table(table)
        return current, path

    for table in tables:
        offset = 0
        while offset < table.num_rows:
            take = min(rows_per_shard - buffered, table.num_rows - offset)
            buffer.append(table.slice(offset, take))
            buffered += take
            offset += take
            if buffered == rows_per_shard:
                item = flush(buffer)
                buffer, buffered = [], 0
                if item:
                    yield item
    if buffered:
        item = flush(buffer)
        if item:
            yield item


def done_shards(folder: str) -> set[int]:
    fs, _, (root,) = fsspec.get_fs_token_paths(folder)
    if not fs.exists(root):
        return set()
    return {int(p.rsplit("/", 1)[-1].split("_")[0]) for p in fs.glob(root + "/*_stats.json")}


def shard_count(rows: int, rows_per_shard: int) -> int:
    return math.ceil(rows / rows_per_shard) if rows else 0
