"""Facets over every candidate row of the shards (kept or not): what each row counts under,
counting them with the current selection applied, and the rows that match. Pure functions
over column batches (``{column: [values]}``), streamed one Parquet row batch at a time."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from schemas import status as st

# facet -> label, in display order; further columns of the shards (provenance, licence,
# language: whatever a run wrote, in SAMPLES or beyond) come after these under their own names
FIXED_FACETS = {"status": "status", "reason": "reason dropped", "entry": "query entry",
                "domain": "source domain", "clip": "CLIP score", "source": "candidate source"}
# columns a row needs for the fixed facets and the listing
BASE_COLUMNS = ["key", "url", "caption", "status", "error_message", "matched_entry_ids",
                "clip_score", "source"]
# the shards' columns that are not counted as they are: identity, free text, measurements,
# and the ones the fixed facets derive from. Any other column is a facet, so the columns
# other stages add (provenance, licence, language) show up without a change here
NOT_FACETS = frozenset({"key", "uid", "url", "caption", "texts", "text_filter_reasons",
                        "page_url", "status", "error_message", "width", "height",
                        "original_width", "original_height", "original_bytes", "sha256",
                        "phash", "duplicate_of", "attempts", "clip_score",
                        "matched_entry_ids", "source",
                        # provenance with a value per row: nothing to count
                        "source_offset", "fetch_time", "final_url"})
CLIP_STEP = 0.1
UNSCORED = "unscored"
# distinct values counted per facet; further new values count under OTHER, so memory stays
# bounded on a column with a value per row (domains of a web crawl, a free-text licence)
MAX_DISTINCT = 5000
OTHER = "(other values)"


def extra_facet_columns(schema: Any) -> list[str]:
    """Columns of a shard Parquet outside :data:`NOT_FACETS` whose values can be counted
    (strings, integers, booleans, lists of them): provenance, licence, language, a URL
    list's own columns. Present in some runs only, so found from the schema, never assumed."""
    import pyarrow as pa

    def countable(t: Any) -> bool:
        if pa.types.is_list(t) or pa.types.is_large_list(t):
            return countable(t.value_type)
        return (pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_integer(t)
                or pa.types.is_boolean(t) or pa.types.is_dictionary(t))

    return [f.name for f in schema if f.name not in NOT_FACETS and not f.name.startswith("_")
            and countable(f.type)]


def reason(status: str, error_message: str | None) -> str:
    """Why a row was dropped, short enough to count: the filter rule, the kind of duplicate,
    the download error's first words; "" for a kept row."""
    if status == st.SUCCESS:
        return ""
    if st.is_filtered(status):
        return st.filtered_reason(status)
    if st.is_duplicate(status):
        return f"{st.duplicate_kind(error_message)} duplicate"
    if status == st.FAILED_HOST_BACKOFF:
        return st.HOST_BACKOFF
    words = " ".join((error_message or "").split()[:4])
    return words[:60] or status


def clip_bin(score: float | None) -> str:
    if score is None:
        return UNSCORED
    low = min(0.9, max(-1.0, (score // CLIP_STEP) * CLIP_STEP))
    return f"{low:.1f} to {low + CLIP_STEP:.1f}"


def domain(url: str | None) -> str:
    try:
        return (urlsplit(url or "").hostname or "").lower() or "(none)"
    except ValueError:
        return "(unreadable)"


def row_values(row: Mapping[str, Any], extra: Iterable[str]) -> dict[str, list[str]]:
    """Every facet value of one row (a facet may have several: the matched entries)."""
    status = row["status"]
    values = {
        "status": [st.status_group(status)],
        "reason": [reason(status, row.get("error_message"))],
        "entry": [str(e) for e in (row.get("matched_entry_ids") or [])] or ["(none)"],
        "domain": [domain(row.get("url"))],
        "clip": [clip_bin(row.get("clip_score"))],
        "source": [row.get("source") or "(none)"],
    }
    for name in extra:
        value = row.get(name)
        items = value if isinstance(value, list) else [value]
        values[name] = [("(none)" if v is None else str(v)) for v in items] or ["(none)"]
    return values


def matches(values: Mapping[str, list[str]], selected: Mapping[str, str]) -> bool:
    return all(want in values.get(name, ()) for name, want in selected.items())


@dataclass
class FacetResult:
    counts: dict[str, Counter[str]] = field(default_factory=dict)
    rows: list[dict[str, Any]] = field(default_factory=list)  # the page of matching rows
    matching: int = 0
    total: int = 0


def count_facets(batches: Iterable[tuple[str, dict[str, list[Any]]]], extra: list[str],
                 selected: Mapping[str, str], offset: int = 0, limit: int = 50,
                 max_distinct: int = MAX_DISTINCT) -> FacetResult:
    """Counts of every facet value over the rows matching ``selected``, how many match, and
    the matching rows ``offset`` .. ``offset + limit`` (with their shard). Past
    ``max_distinct`` values, a facet counts new ones under :data:`OTHER`. ``batches``:
    (shard, column batch) pairs; memory holds the counts and one page of rows only."""
    result = FacetResult(counts={name: Counter() for name in [*FIXED_FACETS, *extra]})
    for shard, batch in batches:
        names = list(batch)
        for i in range(len(batch["key"])):
            row = {name: batch[name][i] for name in names}
            result.total += 1
            values = row_values(row, extra)
            if not matches(values, selected):
                continue
            for name, items in values.items():
                counter = result.counts[name]
                for item in set(items):
                    counter[item if item in counter or len(counter) < max_distinct else OTHER] += 1
            if offset <= result.matching < offset + limit:
                result.rows.append({"shard": shard, **row})
            result.matching += 1
    return result
