"""Reading URL lists in img2dataset's formats, shared by the two stages that take them: the
crawl (``wit crawl --urls``: pairs to match) and the shards stage (``wit shards --urls``:
rows downloaded as they are).

Formats (from the file name, compression suffix ignored, or given): ``parquet``, ``csv``,
``tsv``, ``jsonl`` (``.json`` too: one JSON object a line) and ``txt`` (one URL a line, no
other column); text formats may be compressed (``.gz``, ``.bz2``, ``.xz``, ``.zst``). Paths
are fsspec paths (``s3://``, ``gs://``, ...).

Files are streamed: Parquet by record batch, text formats line by line, in batches of
:data:`BATCH_ROWS` rows, so memory does not grow with the list. A missing column is a
:class:`UrlListError` naming the file, found on the schema (Parquet), the header (CSV/TSV)
or the first JSON-object line (JSONL). A line that cannot be read (broken JSON, a JSON value
that is not an object, a CSV row the csv module refuses) is a :class:`BadRow` in the batch:
the caller counts it (the crawl) or keeps it as a row with a status (the shards stage).
Values are returned as read: strings from CSV/TSV/TXT, JSON values from JSONL (any type),
Parquet's values in its column types.
"""

from __future__ import annotations

import csv
import io
import json
import zlib
from collections.abc import Iterator, Sequence
from typing import NamedTuple

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.core.errors import InputError

FORMATS = ("parquet", "csv", "tsv", "jsonl", "txt")
COMPRESSIONS = (".gz", ".bz2", ".xz", ".zst")
BATCH_ROWS = 10_000
# what reading a damaged text file or its compression can raise
_READ_ERRORS = (OSError, EOFError, zlib.error, ValueError, ImportError)


class UrlListError(InputError):
    """A URL-list file is missing, unreadable, of an unknown format or lacks a column."""


class BadRow(NamedTuple):
    """A line of a text list that holds no row: ``bad_json_line`` or ``bad_csv_row``."""
    reason: str


Row = tuple  # the requested columns' values, in the requested order


def strip_compression(path: str) -> str:
    name = path.lower()
    for suffix in COMPRESSIONS:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def detect_format(path: str, formats: Sequence[str] = FORMATS) -> str:
    """The format of ``path`` from its name (compression suffix ignored); ``.json`` is
    JSON lines."""
    name = strip_compression(path)
    for fmt in formats:
        if name.endswith("." + fmt):
            return fmt
    if name.endswith(".json") and "jsonl" in formats:
        return "jsonl"
    raise UrlListError(f"{path}: unknown URL-list format (expected one of "
                       f"{', '.join('.' + f for f in formats)}, optionally compressed)")


def _names(columns: Sequence[str]) -> str:
    quoted = [repr(c) for c in dict.fromkeys(columns)]
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " and " + quoted[-1]


def _plain(kind: pa.DataType) -> pa.DataType:
    return kind.value_type if pa.types.is_dictionary(kind) else kind


def _is_text(kind: pa.DataType) -> bool:
    kind = _plain(kind)
    return pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_null(kind)


def check_columns(path: str, fmt: str, schema: pa.Schema | None, columns: Sequence[str],
                  text_columns: Sequence[str] = (), hint: str = "") -> None:
    """Raise a :class:`UrlListError` naming ``path`` unless ``schema`` (from
    :func:`list_schema`) has every column of ``columns``, those of ``text_columns`` as strings.
    A ``txt`` list has one column, the first of ``columns`` (the URL); asking it for more is
    an error. ``schema`` None (a JSONL file without any object line) passes."""
    why = f" ({hint})" if hint else ""
    if fmt == "txt":
        others = [c for c in dict.fromkeys(columns[1:]) if c != columns[0]]
        if others:
            raise UrlListError(f"{path}: a .txt list holds only URLs, one a line: it has no "
                               f"column {_names(others)}{why}")
        return
    if schema is None:
        return
    if any(c not in schema.names for c in columns):
        raise UrlListError(f"{path}: needs columns {_names(columns)}{why}; has {schema.names}")
    for col in dict.fromkeys(text_columns):
        kind = schema.field(col).type
        if not _is_text(kind):
            raise UrlListError(f"{path}: column {col!r} is {_plain(kind)}, not a string column")


def _open_text(path: str):
    raw = fsspec.open(path, "rb", compression="infer").open()
    return raw, io.TextIOWrapper(raw, encoding="utf-8", errors="replace", newline="")


def _first_object(lines) -> dict | None:
    for line in lines:
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except (ValueError, RecursionError):
            continue
        if isinstance(row, dict):
            return row
    return None


def list_schema(path: str, fmt: str) -> pa.Schema | None:
    """The columns ``path`` offers, as an Arrow schema: Parquet's own types (dictionary
    columns as their value type); every column of a text format is a string. CSV/TSV: the
    header; JSONL: the keys of the first JSON-object line (None when it has none); TXT: one
    column, ``url``. Reads only the footer, the header or the lines up to the first object."""
    try:
        if fmt == "parquet":
            with fsspec.open(path, "rb") as f:
                schema = pq.read_schema(f)
            return pa.schema([pa.field(f.name, _plain(f.type)) for f in schema])
        if fmt == "txt":
            return pa.schema([pa.field("url", pa.string())])
        raw, text = _open_text(path)
        with raw, text:
            if fmt == "jsonl":
                first = _first_object(text)
                return None if first is None else pa.schema(
                    [pa.field(str(k), pa.string()) for k in first])
            header = next(csv.reader(text, delimiter="\t" if fmt == "tsv" else ","), [])
            return pa.schema([pa.field(name, pa.string()) for name in dict.fromkeys(header)])
    except UrlListError:
        raise
    except FileNotFoundError as exc:
        raise UrlListError(f"{path}: no such URL-list file") from exc
    except (csv.Error, pa.ArrowInvalid, *_READ_ERRORS) as exc:
        what = "Parquet file" if fmt == "parquet" else f"{fmt} file"
        raise UrlListError(f"{path}: not a readable {what}: {exc}") from exc


def read_rows(path: str, columns: Sequence[str], fmt: str, text_columns: Sequence[str] = (),
              hint: str = "", batch_rows: int = BATCH_ROWS) -> Iterator[list[Row | BadRow]]:
    """The rows of ``columns`` in ``path``, in file order, in batches of up to
    ``batch_rows``; each row is a tuple of the values (None where a row lacks one) or a
    :class:`BadRow`. Columns are checked as :func:`check_columns` does, before the first
    row (JSONL: on its first JSON-object line; broken lines before it come as BadRows)."""
    try:
        if fmt == "parquet":
            yield from _parquet_rows(path, columns, text_columns, hint, batch_rows)
        else:
            yield from _text_rows(path, columns, fmt, text_columns, hint, batch_rows)
    except UrlListError:
        raise
    except FileNotFoundError as exc:
        raise UrlListError(f"{path}: no such URL-list file") from exc
    except (pa.ArrowInvalid, *_READ_ERRORS) as exc:
        what = "Parquet file" if fmt == "parquet" else f"{fmt} file"
        raise UrlListError(f"{path}: not a readable {what}: {exc}") from exc


def _parquet_rows(path: str, columns: Sequence[str], text_columns: Sequence[str], hint: str,
                  batch_rows: int) -> Iterator[list[Row | BadRow]]:
    with fsspec.open(path, "rb") as f:
        try:
            parquet = pq.ParquetFile(f)
        except Exception as exc:  # noqa: BLE001 - pyarrow raises several types
            raise UrlListError(f"{path}: not a readable Parquet file: {exc}") from exc
        check_columns(path, "parquet", parquet.schema_arrow, columns, text_columns, hint)
        unique = list(dict.fromkeys(columns))
        where = [unique.index(c) for c in columns]
        for batch in parquet.iter_batches(columns=unique, batch_size=batch_rows):
            values = [batch.column(i).to_pylist() for i in range(len(unique))]
            yield list(zip(*(values[i] for i in where)))


def _text_rows(path: str, columns: Sequence[str], fmt: str, text_columns: Sequence[str],
               hint: str, batch_rows: int) -> Iterator[list[Row | BadRow]]:
    raw, text = _open_text(path)
    with raw, text:
        batch: list[Row | BadRow] = []
        for row in _text_lines(path, text, columns, fmt, text_columns, hint):
            batch.append(row)
            if len(batch) >= batch_rows:
                yield batch
                batch = []
        if batch:
            yield batch


def _text_lines(path: str, text, columns: Sequence[str], fmt: str,
                text_columns: Sequence[str], hint: str) -> Iterator[Row | BadRow]:
    if fmt == "txt":
        check_columns(path, fmt, None, columns, hint=hint)
        for line in text:
            if line.strip():
                yield (line.strip(),)
        return
    if fmt == "jsonl":
        checked = False
        for line in text:
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except (ValueError, RecursionError):
                yield BadRow("bad_json_line")
                continue
            if not isinstance(row, dict):
                yield BadRow("bad_json_line")
                continue
            if not checked:
                check_columns(path, fmt, pa.schema([pa.field(str(k), pa.string()) for k in row]),
                              columns, hint=hint)
                checked = True
            yield tuple(row.get(c) for c in columns)
        return
    reader = csv.DictReader(text, delimiter="\t" if fmt == "tsv" else ",")
    try:
        fields = list(reader.fieldnames or [])
    except csv.Error as exc:
        raise UrlListError(f"{path}: unreadable header line: {exc}") from exc
    check_columns(path, fmt, pa.schema([pa.field(n, pa.string()) for n in dict.fromkeys(fields)]),
                  columns, text_columns, hint)
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error:  # e.g. a field over csv.field_size_limit(): this row only
            yield BadRow("bad_csv_row")
            continue
        yield tuple(row.get(c) for c in columns)
