"""URL-list source: the files img2dataset reads (parquet, csv, tsv, jsonl; optionally
``.gz``/``.bz2``/... compressed), with a URL column and a caption column -> pairs.

Reading is :mod:`pipeline.core.url_lists` (shared with ``wit shards --urls``): files are
streamed (Parquet by record batch, text formats line by line). A missing column is an error
naming the file, checked on the header (CSV/TSV), the schema (Parquet) or the first JSON
object line (JSONL; broken lines before it are counted as ``skipped:bad_json_line``). A
Parquet URL or caption column that is not a string column (an int64 ``url``) is an error
naming the file and the column: its values are never cast to strings. In JSONL, where each
row has its own types, a row whose URL or caption is not a string is skipped and counted
(``skipped:non_string_url`` / ``skipped:non_string_text``). Rows without an http(s) URL or
text are counted and skipped. Captions are plain text: they are never HTML-unescaped
(``5&times;7`` stays as written). A ``.txt`` list (URLs only) has no text to match: the crawl
does not take it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

from pipeline.core.url_lists import BadRow, read_rows
from pipeline.core.url_lists import detect_format as _detect_format
from pipeline.crawl.pairs import DEFAULT_MAX_TEXT_CHARS, Pair, clean_texts, make_pair, resolve_url
from schemas.status import skipped

FORMATS = ("parquet", "csv", "tsv", "jsonl")


def detect_format(path: str) -> str:
    """``parquet``/``csv``/``tsv``/``jsonl`` from the file name (compression suffix ignored)."""
    return _detect_format(path, FORMATS)


def url_list_pairs(path: str, counts: Counter[str], url_col: str = "url",
                   caption_col: str = "caption",
                   max_text_chars: int = DEFAULT_MAX_TEXT_CHARS) -> Iterator[Pair]:
    """Pairs of one URL-list file; ``counts`` gets ``rows``, ``images``, ``with_text`` and
    ``skipped:<reason>``."""
    columns = (url_col, caption_col)
    row_number = -1  # the row's position in the file (unreadable lines count), from 0
    for batch in read_rows(path, columns, detect_format(path), text_columns=columns,
                           hint="--url-col/--caption-col"):
        for row in batch:
            row_number += 1
            if isinstance(row, BadRow):
                counts[skipped(row.reason)] += 1
                continue
            url, caption = row
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
            yield make_pair(clean, texts, None, "urls", path, row_number)
