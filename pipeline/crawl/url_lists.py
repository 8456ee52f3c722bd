"""URL-list source: the files img2dataset reads (parquet, csv, tsv, jsonl; optionally
``.gz``/``.bz2``/... compressed), with a URL column and a caption column -> pairs.

Files are streamed (Parquet by record batch, text formats line by line). A missing column is
an error naming the file; rows without an http(s) URL or text are counted and skipped.
"""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from collections.abc import Iterator

import fsspec
import pyarrow.parquet as pq

from pipeline.crawl.pairs import Pair, normalize_text, resolve_url
from pipeline.errors import InputError

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
            names = parquet.schema_arrow.names
            if url_col not in names or caption_col not in names:
                raise missing(names)
            for batch in parquet.iter_batches(columns=[url_col, caption_col],
                                              batch_size=10_000):
                urls = batch.column(0).to_pylist()
                texts = batch.column(1).to_pylist()
                yield from zip(urls, texts)
        return
    with fsspec.open(path, "rb", compression="infer") as raw:
        text = io.TextIOWrapper(raw, encoding="utf-8", errors="replace", newline="")
        if fmt == "jsonl":
            for line_no, line in enumerate(text, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except ValueError:
                    counts["skipped:bad_json_line"] += 1
                    continue
                if not isinstance(row, dict):
                    counts["skipped:bad_json_line"] += 1
                    continue
                if line_no == 1 and (url_col not in row or caption_col not in row):
                    raise missing(sorted(row))
                yield row.get(url_col), row.get(caption_col)
            return
        reader = csv.DictReader(text, delimiter="\t" if fmt == "tsv" else ",")
        fields = list(reader.fieldnames or [])
        if url_col not in fields or caption_col not in fields:
            raise missing(fields)
        for row in reader:
            yield row.get(url_col), row.get(caption_col)


def url_list_pairs(path: str, counts: Counter[str], url_col: str = "url",
                   caption_col: str = "caption") -> Iterator[Pair]:
    """Pairs of one URL-list file; ``counts`` gets ``rows``, ``images``, ``with_text`` and
    ``skipped:<reason>``."""
    fmt = detect_format(path)
    for url, caption in _rows(path, fmt, url_col, caption_col, counts):
        counts["rows"] += 1
        counts["images"] += 1
        clean = resolve_url(url, None) if isinstance(url, str) else None
        if clean is None:
            counts["skipped:no_http_url"] += 1
            continue
        text = normalize_text(caption if isinstance(caption, str) else None, unescape=True)
        if not text:
            counts["skipped:empty_text"] += 1
            continue
        counts["with_text"] += 1
        yield Pair(clean, text, None, "urls")
