"""The queries stage's outputs: the sources' candidates merged into the entry list, and
``OUT/queries/metadata.parquet``, ``stats.json`` and, last, ``metadata.json`` (each written
under a temporary name first, so metadata.json exists only for complete runs). Schemas in
``schemas.queries``; the Beam step that calls this is ``transform.WriteQueriesFn``."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.core import fsio, jobs
from queries.select import (
    Candidate,
    merge,
    numeral_candidates,
    rank_bigrams,
    rank_titles,
    rank_unigrams,
)
from schemas import METADATA, validate
from schemas.queries import NUMERAL

if TYPE_CHECKING:
    from queries.transform import QueryConfig

OUTPUT_FILES = ("metadata.json", "metadata.parquet", "stats.json")
PMI_FORMULA = "PMI(a b) = log2(c(a b) * N / (c(a) * c(b))), N = word tokens (nltk BigramAssocMeasures.pmi)"


def versions(wordnet_version: str | None) -> dict[str, str]:
    found = jobs.versions(("webimagetext", "apache-beam", "nltk", "mwparserfromhell", "mwxml",
                           "pyarrow"), python=True, missing="unknown")
    if wordnet_version:
        found["wordnet"] = wordnet_version
    return found


def title_rule_text(cfg: QueryConfig) -> str | None:
    if cfg.title_rule == "pageviews":
        return (f"pageviews: en titles without ':' whose hourly counts >= "
                f"{cfg.min_hourly_views} sum to >= {cfg.min_views}")
    if cfg.title_rule == "inlinks":
        return (f"inlinks (no pageview files given): articles of the dump linked from >= "
                f"{cfg.min_inlinks} article links, links to redirects counted for the target")
    return None


def metadata_table(entries: list[Candidate]) -> pa.Table:
    table = pa.table({
        "entry_id": list(range(len(entries))),
        "entry": [e.entry for e in entries],
        "source": [e.source for e in entries],
        "count": [e.count for e in entries],
        "score": [e.score for e in entries],
    })
    return validate(table, METADATA, where="metadata.parquet")


def merge_sources(cfg: QueryConfig, wordnet: list[str], unigrams: list, bigrams: list,
                  titles: list) -> tuple[list[Candidate], dict[str, dict[str, int]]]:
    """Every chosen source ranked, then merged in MERGE_ORDER without duplicates and capped
    at ``max_entries``: (entries, per-source report)."""
    per_source: dict[str, list[Candidate]] = {NUMERAL: numeral_candidates()}
    if "wordnet" in cfg.sources:
        per_source["wordnet"] = [Candidate(name, "wordnet") for name in wordnet]
    if "unigram" in cfg.sources:
        per_source["unigram"] = rank_unigrams(unigrams)
    if "bigram" in cfg.sources:
        per_source["bigram"] = rank_bigrams(bigrams)
    if "title" in cfg.sources:
        per_source["title"] = rank_titles(titles)
    return merge(per_source, cfg.max_entries)


def stats_document(cfg: QueryConfig, out: str, entries: list[Candidate],
                   report: dict[str, dict[str, int]], counters: dict[str, Any]) -> dict:
    """The JSON object written to ``stats.json`` (see docs/queries.md)."""
    return {
        "inputs": {"wiki": list(cfg.wiki), "pageviews": list(cfg.pageviews), **counters},
        "entries": len(entries),
        "entries_per_source": report,
        "thresholds": {
            "sources": list(cfg.sources), "min_count": cfg.min_count,
            "min_pmi": cfg.min_pmi, "min_bigram_count": cfg.min_bigram_count,
            "min_views": cfg.min_views, "min_hourly_views": cfg.min_hourly_views,
            "min_inlinks": cfg.min_inlinks, "max_entries": cfg.max_entries,
        },
        "title_rule": title_rule_text(cfg),
        "pmi": PMI_FORMULA,
        "versions": versions(cfg.wordnet_version),
        "outputs": {name: fsio.join(out, name) for name in OUTPUT_FILES},
    }


def write_outputs(out: str, entries: list[Candidate], stats: dict) -> None:
    """metadata.parquet, stats.json, then metadata.json (the mark of a complete run)."""
    buffer = io.BytesIO()
    pq.write_table(metadata_table(entries), buffer)
    fsio.atomic_write_bytes(fsio.join(out, "metadata.parquet"), buffer.getvalue())
    fsio.atomic_write_json(fsio.join(out, "stats.json"), stats)
    fsio.atomic_write_json(fsio.join(out, "metadata.json"), [e.entry for e in entries],
                           indent=None)
