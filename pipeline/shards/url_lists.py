"""``wit shards --urls FILE...``: an existing URL list (CC3M, CC12M, a LAION or DataComp pool,
COYO, ...) downloaded as it is, img2dataset's job. No query list, no matching, no balancing:
every row of the list becomes one download row, numbered in list order (files in sorted path
order, then row order), and everything after the download is what crawl candidates get
(guard, robots.txt, filters, dedup, decontamination, report).

Reading is :mod:`pipeline.core.url_lists` (shared with ``wit crawl --urls``), streamed in
batches. Every file is checked before anything is downloaded (:func:`open_url_lists`: the
files exist, have a known format and the columns asked for); a bad one is a
:class:`~pipeline.core.url_lists.UrlListError` naming it (``wit shards`` exits 2).

What a row becomes (the downloader's input, :func:`input_tables`):

- ``url``: the URL column as written (surrounding whitespace stripped; "" where there is
  none: the shards' ``url`` column has no nulls); a row without an http(s) URL, and a line that cannot be read (broken JSON, a CSV row the csv module
  refuses), is kept with status ``failed_to_download`` and the reason as its
  ``error_message``, like img2dataset;
- ``caption``: the caption column as written, "" where there is none (``--caption-col ''``,
  a ``.txt`` list, a null cell); ``texts`` holds it when not empty;
- ``uid``: :func:`schemas.candidates.make_uid` of (url, caption), or the list's own ``uid``
  when ``--save-additional-columns`` names one (DataComp's pools);
- the ``--save-additional-columns``, kept in the shards' Parquet and each sample's
  ``KEY.json`` as img2dataset does: Parquet columns keep their types (unified across files,
  e.g. int32 and int64 give int64), CSV/TSV columns are strings, and JSONL values that are
  not strings are kept as their JSON text;
- with ``--verify-hash-col``, the list's hash of the image: bytes that hash otherwise are
  ``hash_mismatch`` (a null hash too, as in img2dataset), never kept and not retried.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import fsspec
import pyarrow as pa

from pipeline.core import fsio
from pipeline.core.errors import InputError
from pipeline.core.options import option
from pipeline.core.url_lists import (
    BATCH_ROWS,
    FORMATS,
    BadRow,
    UrlListError,
    check_columns,
    detect_format,
    list_schema,
    read_rows,
    strip_compression,
)
from pipeline.shards.option_groups import URLS
from pipeline.shards.reader import format_key
from schemas.candidates import make_uid
from schemas.shards import EXPECTED_HASH, INPUT_ERROR, RESERVED_COLUMNS

HASH_TYPES = ("md5", "sha256", "sha512")
SOURCE = "urls"
BAD_ROWS = {"bad_json_line": "unreadable list line: not a JSON object",
            "bad_csv_row": "unreadable list line: not a CSV row"}
# the downloader input columns every --urls row has, before the additional ones
BASE_FIELDS = [
    pa.field("key", pa.string()), pa.field("uid", pa.string()), pa.field("page_url", pa.string()),
    pa.field("source", pa.string()), pa.field("matched_entry_ids", pa.list_(pa.int64())),
    pa.field("language", pa.string()),
    pa.field("source_file", pa.string()), pa.field("source_offset", pa.int64()),
    pa.field("fetch_time", pa.string()), pa.field("page_licenses", pa.list_(pa.string())),
    pa.field("texts", pa.list_(pa.string())), pa.field("caption", pa.string()),
    pa.field("url", pa.string()),
]


def flat_paths(groups: Sequence[str | Sequence[str]]) -> tuple[str, ...]:
    """``--urls a b --urls c`` arrives as ``[[a, b], [c]]``: one tuple, in order."""
    return tuple(v for g in groups for v in ([g] if isinstance(g, str) else g))


def column_names(text: str) -> tuple[str, ...]:
    """``a,b`` (or img2dataset's JSON list ``["a","b"]``) -> the column names, in order; a
    name the shards' Parquet uses for its own columns is refused."""
    text = text.strip()
    if text.startswith("["):
        try:
            names = json.loads(text)
        except ValueError:
            names = None
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise argparse.ArgumentTypeError(f"{text!r} is not a JSON list of column names")
    else:
        names = text.split(",")
    names = [n.strip() for n in names if n.strip()]
    if not names:
        raise argparse.ArgumentTypeError(f"{text!r} names no column")
    reserved = [n for n in names if n in RESERVED_COLUMNS]
    if reserved:
        raise argparse.ArgumentTypeError(
            f"{', '.join(map(repr, reserved))}: the shards' Parquet has its own column of that "
            "name (schemas.shards.SAMPLES)")
    return tuple(dict.fromkeys(names))


@dataclass(frozen=True)
class UrlListOptions:
    """How ``--urls`` files are read; the options of the same names in img2dataset."""

    url_col: str = option("url", metavar="COL", group=URLS,
                          help="URL column (a .txt list is one URL a line, no column)")
    caption_col: str = option(
        "caption", metavar="COL", group=URLS,
        help="caption column; '' for none (KEY.txt is then empty and --filter's caption rules "
             "drop the row: use --filter none)")
    save_additional_columns: tuple[str, ...] = option(
        (), type=column_names, metavar="A,B,...", group=URLS,
        help="list columns kept in the shards' Parquet and each sample's KEY.json, e.g. "
             "SAMPLE_ID,similarity (img2dataset's JSON list works too); a 'uid' column fills "
             "the uid (default: none)")
    verify_hash_col: str | None = option(
        None, metavar="COL", group=URLS,
        help="column with the image's hash (hex); downloaded bytes with another hash get "
             "status hash_mismatch, never kept (default: no check)")
    verify_hash_type: str = option("sha256", choices=HASH_TYPES, group=URLS,
                                   help="hash of --verify-hash-col")
    input_format: str | None = option(
        None, choices=FORMATS, group=URLS,
        help="format of every --urls file (default: from each name: .parquet, .csv, .tsv, "
             ".jsonl or .json (JSON lines), .txt; optionally .gz/.bz2/.xz/.zst)")

    def columns(self, fmt: str) -> list[str]:
        """The columns read from a file of format ``fmt``: URL, caption, additional, hash."""
        if fmt == "txt":  # one URL a line; additional or hash columns make check_columns fail
            return [self.url_col, *self.save_additional_columns,
                    *([self.verify_hash_col] if self.verify_hash_col else [])]
        return [self.url_col, *([self.caption_col] if self.caption_col else []),
                *self.save_additional_columns,
                *([self.verify_hash_col] if self.verify_hash_col else [])]

    def text_columns(self, fmt: str) -> list[str]:
        return [] if fmt == "txt" else [c for c in (self.url_col, self.caption_col) if c]

    def hint(self) -> str:
        return "--url-col, --caption-col, --save-additional-columns, --verify-hash-col"


@dataclass(frozen=True)
class UrlList:
    """The checked ``--urls`` files (sorted), their formats, and the additional columns with
    their types (``uid`` aside: it fills SAMPLES' own)."""

    files: tuple[str, ...]
    formats: tuple[str, ...]
    options: UrlListOptions
    extra: pa.Schema

    def fingerprint(self) -> dict[str, Any]:
        """What shapes the rows, for the work folder's and the manifest's record."""
        return {"formats": list(self.formats), "url_col": self.options.url_col,
                "caption_col": self.options.caption_col,
                "save_additional_columns": list(self.options.save_additional_columns),
                "verify_hash_col": self.options.verify_hash_col,
                "verify_hash_type": self.options.verify_hash_type if self.options.verify_hash_col
                else None}


def _is_list_name(path: str, input_format: str | None) -> bool:
    if input_format:
        return strip_compression(path).endswith("." + input_format)
    try:
        detect_format(path)
    except UrlListError:
        return False
    return True


def list_files(patterns: Sequence[str], input_format: str | None = None) -> list[str]:
    """Files, globs and folders (their URL-list files, not recursive, as img2dataset reads a
    folder) -> the sorted files."""
    files: list[str] = []
    for pattern in patterns:
        try:
            fs, _, found = fsspec.get_fs_token_paths(pattern)
            is_dir = not (fsio.GLOB_CHARS & set(pattern)) and len(found) == 1 \
                and fs.isdir(found[0])
            if is_dir:
                inside = [p for p in fsio.glob(pattern, "*") if _is_list_name(p, input_format)]
                if not inside:
                    raise UrlListError(f"{pattern}: a folder without URL-list files")
                files.extend(inside)
            else:
                files.extend(fsio.expand([pattern], "URL-list"))
        except UrlListError:
            raise
        except InputError as exc:
            raise UrlListError(str(exc)) from exc
        except (ImportError, ValueError, OSError) as exc:  # unknown protocol, its package missing
            raise UrlListError(f"{pattern}: not a readable URL-list path: {exc}") from exc
    return sorted(set(files))


def _unify(path: str, name: str, kind: pa.DataType, known: dict[str, tuple[pa.DataType, str]]) -> None:
    if name not in known:
        known[name] = (kind, path)
        return
    before, where = known[name]
    if before == kind:
        return
    try:
        merged = pa.unify_schemas([pa.schema([pa.field(name, before)]),
                                   pa.schema([pa.field(name, kind)])],
                                  promote_options="permissive").field(name).type
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
        raise UrlListError(f"{path}: column {name!r} is {kind}, but {before} in {where}: "
                           f"{exc}") from exc
    known[name] = (merged, where)


def open_url_lists(patterns: Sequence[str], options: UrlListOptions) -> UrlList:
    """Expand ``patterns`` and check every file (format, columns) before any download;
    returns the files and the types of the additional columns."""
    reserved = [c for c in options.save_additional_columns if c in RESERVED_COLUMNS]
    if reserved:  # the command line refuses them already (column_names)
        raise UrlListError(f"--save-additional-columns {','.join(reserved)}: the shards' "
                           "Parquet has its own column of that name (schemas.shards.SAMPLES)")
    files = list_files(patterns, options.input_format)
    formats: list[str] = []
    types: dict[str, tuple[pa.DataType, str]] = {}
    extra_names = [c for c in options.save_additional_columns if c != "uid"]
    for path in files:
        fmt = options.input_format or detect_format(path)
        schema = list_schema(path, fmt)
        check_columns(path, fmt, schema, options.columns(fmt), options.text_columns(fmt),
                      options.hint())
        formats.append(fmt)
        for name in extra_names:
            kind = schema.field(name).type if fmt == "parquet" and schema is not None \
                else pa.string()
            _unify(path, name, kind, types)
    extra = pa.schema([pa.field(name, types[name][0] if name in types else pa.string())
                       for name in extra_names])
    return UrlList(tuple(files), tuple(formats), options, extra)


def _text(value: object) -> str | None:
    """A list value as text: strings as written, bytes as hex, other JSON values as JSON."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).hex()
    return json.dumps(value, ensure_ascii=False, default=str)


def url_problem(url: str | None) -> str | None:
    """Why a row's URL cannot be downloaded at all, or None."""
    if not url:
        return "no URL in the list row"
    if not url.lower().startswith(("http://", "https://")):
        return f"not an http(s) URL: {url[:200]!r}"
    return None


def hash_mismatch(data: bytes, expected: str) -> str | None:
    """None when ``data`` hashes to ``expected`` (``<type>:<hex>``, as the input column
    holds it); otherwise the row's error message (img2dataset's words first)."""
    kind, _, digest = expected.partition(":")
    actual = hashlib.new(kind, data).hexdigest()
    if actual == digest:
        return None
    if not digest:
        return f"hash mismatch: the list gives no {kind}"
    return f"hash mismatch: {kind} of the downloaded bytes is {actual}, the list gives {digest}"


def _expected(value: object, kind: str) -> str:
    text = _text(value)
    return f"{kind}:{(text or '').strip().lower()}"


class _Columns:
    """Column builders for one batch of download input rows."""

    def __init__(self, plan: UrlList):
        self.plan = plan
        self.values: dict[str, list] = {f.name: [] for f in BASE_FIELDS}
        for field in plan.extra:
            self.values[field.name] = []
        self.values[INPUT_ERROR] = []
        if plan.options.verify_hash_col:
            self.values[EXPECTED_HASH] = []

    def add(self, index: int, row: dict[str, object], error: str | None, path: str,
            row_number: int) -> None:
        opts, values = self.plan.options, self.values
        url = _text(row.get(opts.url_col))
        url = url.strip() if url is not None else None
        caption = _text(row.get(opts.caption_col)) if opts.caption_col else None
        caption = caption or ""
        listed_uid = _text(row.get("uid")) if "uid" in opts.save_additional_columns else None
        values["key"].append(format_key(index))
        values["uid"].append(listed_uid if listed_uid is not None
                             else make_uid(url or "", caption))
        values["page_url"].append(None)
        values["source"].append(SOURCE)
        values["matched_entry_ids"].append([])
        values["language"].append(None)
        values["source_file"].append(path)
        values["source_offset"].append(row_number)
        values["fetch_time"].append(None)
        values["page_licenses"].append([])
        values["texts"].append([caption] if caption else [])
        values["caption"].append(caption)
        values["url"].append(url or "")
        for field in self.plan.extra:
            value = row.get(field.name)
            values[field.name].append(_text(value) if pa.types.is_string(field.type) else value)
        values[INPUT_ERROR].append(error or url_problem(url))
        if opts.verify_hash_col:
            values[EXPECTED_HASH].append(_expected(row.get(opts.verify_hash_col),
                                                  opts.verify_hash_type))

    def table(self, path: str) -> pa.Table:
        fields = [*BASE_FIELDS, *self.plan.extra, pa.field(INPUT_ERROR, pa.string())]
        if self.plan.options.verify_hash_col:
            fields.append(pa.field(EXPECTED_HASH, pa.string()))
        arrays = []
        for field in fields:
            try:
                arrays.append(pa.array(self.values[field.name], type=field.type))
            except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, OverflowError) as exc:
                raise UrlListError(f"{path}: column {field.name!r} does not fit "
                                   f"{field.type}: {exc}") from exc
        return pa.Table.from_arrays(arrays, schema=pa.schema(fields))


def input_tables(plan: UrlList, batch_rows: int = BATCH_ROWS) -> Iterator[pa.Table]:
    """The downloader input of every row of every file, keys numbered across the files, in
    batches of at most ``batch_rows`` rows (memory does not grow with the list)."""
    index = 0
    opts = plan.options
    for path, fmt in zip(plan.files, plan.formats):
        # a .txt list: its one column is the URL (asking it for more fails in open_url_lists)
        columns = opts.columns(fmt)[:1] if fmt == "txt" else opts.columns(fmt)
        row_number = 0  # the row's position in this file (provenance: source_offset)
        for batch in read_rows(path, columns, fmt, opts.text_columns(fmt), opts.hint(),
                               batch_rows):
            built = _Columns(plan)
            for row in batch:
                if isinstance(row, BadRow):
                    built.add(index, {}, BAD_ROWS.get(row.reason, "unreadable list line"),
                              path, row_number)
                else:
                    built.add(index, dict(zip(columns, row)), None, path, row_number)
                index += 1
                row_number += 1
            yield built.table(path)
