"""Artifacts of the ``crawl`` stage (``OUT/candidates/``).

- ``part-*.parquet``: :data:`CANDIDATES`, the balanced (image URL, text) pairs that the
  ``shards`` stage downloads. ``url`` + ``text`` are the columns img2dataset reads.
- ``entry_counts.parquet``: :data:`ENTRY_COUNTS`, the global match count of every entry and
  its balancing probability ``p = t / max(count, t)``.
- ``language_entry_counts.parquet`` (``--worldwide``): :data:`LANGUAGE_ENTRY_COUNTS`, the
  same per (language, entry), with each language's threshold ``t_lang``; ``languages.json``
  holds ``t_en``, the tail proportion ``p`` and every ``t_lang`` (docs/crawl.md).
- ``stats.json``: a JSON object with :data:`STATS_KEYS`; per source: pages, images, with
  text, unmatched, duplicates, matched, kept, and ``skipped`` records by reason
  (docs/crawl.md).
"""

import hashlib

import pyarrow as pa

CANDIDATES = pa.schema(
    [
        # stable id: a hash of (url, text), make_uid
        pa.field("uid", pa.string(), nullable=False),
        pa.field("url", pa.string(), nullable=False),
        # the best kept text of the image: the first of ``texts``
        pa.field("text", pa.string(), nullable=False),
        # every text of the image that survived balancing, in --text-fields order (alt,
        # title, data-image-title, figcaption); one for URL lists
        pa.field("texts", pa.list_(pa.string()), nullable=False),
        # the page the image was found on; null for URL lists
        pa.field("page_url", pa.string()),
        # warc | wat | live | urls
        pa.field("source", pa.string(), nullable=False),
        # entries matched by the kept texts (first seen first)
        pa.field("matched_entry_ids", pa.list_(pa.int64()), nullable=False),
        # provenance (docs/consent.md); null in candidates written before these columns.
        # the WARC/WAT or URL-list file the pair came from; null for the live crawl
        pa.field("source_file", pa.string()),
        # WARC/WAT: the record's offset in source_file (its gzip member's offset when it
        # starts one, as Common Crawl's index gives it; else in the decompressed stream);
        # URL lists: the row's number among the file's data rows, from 0
        pa.field("source_offset", pa.int64()),
        # when the page was fetched, ISO 8601 UTC: the record's WARC-Date, or the live
        # crawler's fetch; null for URL lists
        pa.field("fetch_time", pa.string()),
        # the page's licence signals, "kind=raw text" (pipeline.core.licenses: rel_license,
        # link_license, dcterms_license, cc_url, dc_rights)
        pa.field("page_licenses", pa.list_(pa.string())),
        # ``wit crawl --worldwide``: the metadata language of the kept text (its LID label
        # merged, or "other"), ``matched_entry_ids`` index that language's query list; null
        # for the English-only (MetaCLIP 1) crawl
        pa.field("language", pa.string()),
    ]
)

# the provenance columns, in order (carried by the shards stage into SAMPLES)
PROVENANCE_COLUMNS = ("source_file", "source_offset", "fetch_time", "page_licenses")

# Columns added to CANDIDATES after candidate files were first written: a reader fills them
# with nulls when a file lacks them (:func:`with_added_columns`).
ADDED_COLUMNS = (*PROVENANCE_COLUMNS, "language")


def with_added_columns(table: pa.Table) -> pa.Table:
    """``table`` with every missing :data:`ADDED_COLUMNS` column as nulls."""
    for name in ADDED_COLUMNS:
        if name not in table.column_names:
            field = CANDIDATES.field(name)
            table = table.append_column(field, pa.nulls(table.num_rows, field.type))
    return table


ENTRY_COUNTS = pa.schema(
    [
        pa.field("entry_id", pa.int64(), nullable=False),
        pa.field("entry", pa.string(), nullable=False),
        pa.field("count", pa.int64(), nullable=False),
        pa.field("p", pa.float64(), nullable=False),
    ]
)

# ``wit crawl --worldwide``: every entry of every language's query list, its count and its
# probability ``p = t_lang / max(count, t_lang)``; rows sorted by (language, entry_id).
LANGUAGE_ENTRY_COUNTS = pa.schema(
    [
        pa.field("language", pa.string(), nullable=False),
        pa.field("entry_id", pa.int64(), nullable=False),
        pa.field("entry", pa.string(), nullable=False),
        pa.field("count", pa.int64(), nullable=False),
        pa.field("p", pa.float64(), nullable=False),
    ]
)

# Top-level keys of stats.json.
STATS_KEYS = ("sources", "totals", "balancing", "inputs", "outputs")


def make_uid(url: str, text: str) -> str:
    """Stable id of a pair: 32 hex digits of BLAKE2b over url and text (same pair, same uid,
    whichever page or source it came from; ``wit shards --urls`` gives list rows the same)."""
    return hashlib.blake2b(f"{url}\x00{text}".encode(), digest_size=16).hexdigest()
