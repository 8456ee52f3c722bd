"""The ``crawl`` stage end to end: check the query list, clear an earlier run's outputs,
run the :class:`~pipeline.crawl.transform.Crawl` job, print the summary. Outputs go to
``OUT/candidates/`` (see ``pipeline.crawl.cli``'s docstring and docs/crawl.md)."""

from __future__ import annotations

import json
from typing import Any

import fsspec

from pipeline.core import fsio
from pipeline.core.beam import make_pipeline
from pipeline.core.jobs import print_summary, remove_outputs
from pipeline.core.takedown_list import read_lists
from pipeline.crawl.stats import read_stats
from pipeline.crawl.transform import Crawl, CrawlConfig, metadata_entries
from pipeline.crawl.worldwide_transform import LANGUAGES_FILE

# stats.json is written last and marks a complete run; .tmp-*: temporary names of files a
# crashed run did not finish
OUTPUTS = ("part-*.parquet", "entry_counts.parquet", "language_entry_counts.parquet",
           LANGUAGES_FILE, "stats.json", ".tmp-*")


def summary_table(stats: dict[str, Any]) -> str:
    columns = ("pages", "images", "with_text", "opted_out_pages", "duplicates", "matched",
               "kept")
    rows = [("source", *columns, "skipped, opted out")]
    for name, doc in [*stats["sources"].items(), ("total", stats["totals"])]:
        skipped = doc.get("skipped", {})
        skipped_text = ", ".join(f"{k}={v}" for k, v in sorted(skipped.items())) or "-"
        opted = doc.get("opted_out", {})
        if opted:  # images dropped because their page opted out, by signal
            skipped_text += "; opted out: " + ", ".join(f"{k}={v}" for k, v in sorted(opted.items()))
        if name == "total":
            skipped_text = ""
        rows.append((name, *(str(doc.get(c, 0)) for c in columns), skipped_text))
    widths = [max(len(r[i]) for r in rows) for i in range(len(columns) + 1)]
    lines = []
    for row in rows:
        cells = [row[0].ljust(widths[0])] + [v.rjust(w) for v, w in zip(row[1:-1], widths[1:])]
        lines.append("  ".join(cells) + "  " + row[-1])
    return "\n".join(lines)


def languages_table(doc: dict[str, Any]) -> str:
    """``--worldwide``: one line per language with matches: its t, entries and matches."""
    p = "undefined (no English matches)" if doc["p"] is None else f"{doc['p']:.4f}"
    lines = [f"t_en={doc['t_en']}, tail proportion p={p}",
             "language  t_lang  entries  matches"]
    for lang, item in doc["languages"].items():
        lines.append(f"{lang:<8}  {item['t']:>6}  {item['entries']:>7}  {item['matches']:>7}")
    return "\n".join(lines)


def run(config: CrawlConfig, beam_args: list[str]) -> dict[str, Any]:
    """Run the stage, print its summary and return the stats of ``OUT/candidates/stats.json``."""
    entries = metadata_entries(config)  # fail early, on the launcher
    read_lists(config.exclude)  # a bad --exclude line too
    fsio.makedirs(config.out)
    remove_outputs(config.out, OUTPUTS)
    pipeline = make_pipeline(beam_args)
    _ = pipeline | "Crawl" >> Crawl(config)
    pipeline.run().wait_until_finish()
    stats = read_stats(config.out)
    b = stats["balancing"]
    worldwide = ""
    if config.worldwide:
        with fsspec.open(fsio.join(config.out, LANGUAGES_FILE), "rt", encoding="utf-8") as f:
            worldwide = languages_table(json.load(f)) + "\n"
    print_summary(f"{summary_table(stats)}\n{worldwide}{entries} entries, t={b['t']}, "
                  f"seed={b['seed']}; "
                  f"wrote {config.out}/ ({', '.join(stats['outputs'])})")
    return stats
