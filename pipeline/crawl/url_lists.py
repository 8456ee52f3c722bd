"""URL-list source: the files img2dataset reads (parquet, csv, tsv, jsonl; optionally
``.gz``/``.bz2``/... compressed), with a URL column and a caption column -> pairs.

Files are streamed (Parquet by record batch, text formats line by line). A missing column is
an error naming the file, checked on the header (CSV/TSV), the schema (Parquet) or the first
JSON object line (JSONL; broken lines before it are counted as ``skipped:bad_json_line``). A
Parquet URL or caption column that is not a string column (an int64 ``url``) is an error
naming the file and the column: its values are never cast to strings. In JSONL, where each
row has its own types, a row whose URL or caption is not a string is skipped and counted
(``skipped:non_string_url`` / ``skipped:non_string_text``). Rows without an http(s) URL or
text are counted and skipped. Captions are plain text: they are never HTML-unescaped
(``5&times;7`` stays as written).
"""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from collections.abc import Iterator

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.core.errors import InputError
from pipeline.crawl.pairs import DEFAULT_MAX_TEXT_CHARS, Pair, clean_texts, make_pair, resolve_url
from schemas.status import skipped

FORMATS = ("parquet", "csv", "tsv", "jsonl")
COMPRESSIONS = (".gz", ".bz2", ".xz", ".zst")


def detect_format(path: str) -> str:
    """``parquet``/``csv``/``tsv``/``jsonl`` from the file name (compression suffix ignored)."""
    name = path.lower()
    for suffix in COMPRESSIONS:
        if name.endswith(suffix):
            name = name[: -len(suffix)]
    for fmt in FORMATS:
        if name.endswith("." + fmt):
            return fmt
    if name.endswith(".json"):
        return "jsonl"
    raise InputError(f"{path}: unknown URL-list format (expected one of "
                     f"{', '.join('.' + f for f in FORMATS)}, optionally compressed)")


def _rows(path: str, fmt: str, url_col: str, caption_col: str,
          counts: Counter[str]) -> Iterator[tuple[object, object]]:
    def missing(columns: list[str]) -> InputError:
        return InputError(f"{path}: needs columns {url_col!r} and {caption_col!r} "
                          f"(--url-col/--caption-col); has {columns}")

    if fmt == "parquet":
        with fsspec.open(path, "rb") as f:
            try:
                parquet = pq.ParquetFile(f)
            except Exception as exc:  # noqa: BLE001 - pyarrow raises several types
                raise InputError(f"{path}: not a readable Parquet file: {exc}") from exc
            schema = parquet.schema_arrow
            if url_col not in schema.names or caption_col not in schema.names:
                raise missing(schema.names)
            for col in (url_col, caption_col):
                kind = schema.field(col).type
                if pa.types.is_dictionary(kind):
                    kind = kind.value_type
                if not (pa.types.is_string(kind) or pa.types.is_large_string(kind)
                        or pa.types.is_null(kind)):
                    raise InputError(f"{path}: column {col!r} is {kind}, not a string column")
            for batch in parquet.iter_batches(columns=[url_col, caption_col],
                                              batch_size=10_000):
                urls = batch.column(0).to_pylist()
                texts = batch.column(1).to_pylist()
                yield from zip(urls, texts)
        return
    with fsspec.open(path, "rb", compression="infer") as raw:
        text = io.TextIOWrapper(raw, encoding="utf-8", errors="replace", newline="")
        if fmt == "jsonl":
            checked = False
            for line in text:
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except (ValueError, RecursionError):
                    counts[skipped("bad_json_line")] += 1
                    continue
                if not isinstance(row, dict):
                    counts[skipped("bad_json_line")] += 1
                    continue
                if not checked:
                    if url_col not in row or caption_col not in row:
                        raise missing(sorted(row))
                    checked = True
                yield row.get(url_col), row.get(caption_col)
            return
        reader = csv.DictReader(text, delimiter="\t" if fmt == "tsv" else ",")
        try:
            fields = list(reader.fieldnames or [])
        except csv.Error as exc:
            raise InputError(f"{path}: unreadable header line: {exc}") from exc
        if url_col not in fields or caption_col not in fields:
            raise missing(fields)
        while True:
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error:  # e.g. a field over csv.field_size_limit(): this row only
                counts[skipped("bad_csv_row")] += 1
                continue
            yield row.get(url_col), row.get(caption_col)


def url_list_pairs(path: str, counts: Counter[str], url_col: str = "url",
                   caption_col: str = "caption",
                   max_text_chars: int = DEFAULT_MAX_TEXT_CHARS) -> Iterator[Pair]:
    """Pairs of one URL-list file; ``counts`` gets ``rows``, ``images``, ``with_text`` and
    ``skipped:<reason>``."""
    fmt = detect_format(path)
    for url, caption in _rows(path, fmt, url_col, caption_col, counts):
        counts["rows"] += 1
        counts["images"] += 1
        if url is not None and not isinstance(url, str):
            counts[skipped("non_string_url")] += 1
            continue
        if caption is not None and not isinstance(caption, str):
            counts[skipped("non_string_text")] += 1
            continue
        clean = resolve_url(url, None)
        if clean is None:
            counts[skipped("no_http_url")] += 1
            continue
        too_long = counts["texts_too_long"]
        texts = clean_texts((caption,), counts, max_text_chars)  # plain text: no unescape
        if not texts:
            long = counts["texts_too_long"] > too_long
            counts[skipped("text_too_long") if long else skipped("empty_text")] += 1
            continue
        counts["with_text"] += 1
        counts["texts"] += 1
        yield make_pair(clean, texts, None, "urls")
