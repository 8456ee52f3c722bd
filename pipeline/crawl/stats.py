"""``OUT/candidates/stats.json``: the crawl's counters, summed over the job, as one JSON
document (see docs/crawl.md). Counters travel through the pipeline as ``(StatKey, n)``
elements; this module only turns their sums into the document, writes and reads it."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import fsspec

from pipeline.core import fsio
from pipeline.crawl.optout import OPTED_OUT_PREFIX
from schemas import status as st

if TYPE_CHECKING:
    from pipeline.crawl.transform import CrawlConfig

# (source, counter name), e.g. ("warc", "images") or ("live", "skipped:robots")
StatKey = tuple[str, str]


def stats_document(items: Iterable[tuple[StatKey, int]], config: CrawlConfig,
                   files: Sequence[str], entries: int) -> dict[str, Any]:
    """The JSON object written to ``stats.json`` (see docs/crawl.md)."""
    sources: dict[str, dict[str, Any]] = {}
    for (source, key), n in sorted(items):
        doc = sources.setdefault(source, {"skipped": {}})
        if st.is_skipped(key):
            doc["skipped"][st.skipped_reason(key)] = n
        elif key.startswith(OPTED_OUT_PREFIX):  # images of pages that opted out, by signal
            doc.setdefault("opted_out", {})[key[len(OPTED_OUT_PREFIX):]] = n
        else:
            doc[key] = n
    order = ("files", "sites", "requests", "records", "rows", "pages", "images", "with_text",
             "unmatched", "removed", "duplicates", "matched", "kept")
    for source, doc in sources.items():
        for key in ("pages", "images", "with_text", "matched", "kept"):
            doc.setdefault(key, 0)
        sources[source] = {k: doc[k] for k in (*order, *sorted(doc)) if k in doc}
    totals: dict[str, int] = Counter()
    for doc in sources.values():
        for key, value in doc.items():
            if isinstance(value, int):
                totals[key] += value
    return {
        "sources": {s: sources[s] for s in sorted(sources)},
        "totals": dict(totals),
        "balancing": {"t": config.t, "seed": config.seed, "entries": entries,
                      "worldwide": config.worldwide},
        "inputs": {"metadata": config.metadata, "warc": list(config.warc),
                   "wat": list(config.wat), "seeds": list(config.seeds),
                   "urls": list(config.url_lists)},
        "outputs": sorted(f.rsplit("/", 1)[-1] for f in files),
    }


def write_stats(items: Iterable[tuple[StatKey, int]], config: CrawlConfig,
                files: Sequence[str], entries: int) -> str:
    path = fsio.join(config.out, "stats.json")
    fsio.atomic_write_json(path, stats_document(items, config, files, entries))
    return path


def read_stats(out: str) -> dict[str, Any]:
    with fsspec.open(fsio.join(out, "stats.json"), "rt", encoding="utf-8") as f:
        return json.load(f)
