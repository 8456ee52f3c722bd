"""The ``crawl`` stage end to end: check the query list, clear an earlier run's outputs,
run the :class:`~pipeline.crawl.transform.Crawl` job, print the summary. Outputs go to
``OUT/candidates/`` (see ``pipeline.crawl.cli``'s docstring and docs/crawl.md)."""

from __future__ import annotations

from typing import Any

from pipeline.core import fsio
from pipeline.core.beam import make_pipeline
from pipeline.core.jobs import print_summary, remove_outputs
from pipeline.core.takedown_list import read_lists
from pipeline.crawl.matching import load_metadata
from pipeline.crawl.stats import read_stats
from pipeline.crawl.transform import Crawl, CrawlConfig

# stats.json is written last and marks a complete run; .tmp-*: temporary names of files a
# crashed run did not finish
OUTPUTS = ("part-*.parquet", "entry_counts.parquet", "stats.json", ".tmp-*")


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


def run(config: CrawlConfig, beam_args: list[str]) -> dict[str, Any]:
    """Run the stage, print its summary and return the stats of ``OUT/candidates/stats.json``."""
    entries = len(load_metadata(config.metadata))  # fail early, on the launcher
    read_lists(config.exclude)  # a bad --exclude line too
    fsio.makedirs(config.out)
    remove_outputs(config.out, OUTPUTS)
    pipeline = make_pipeline(beam_args)
    _ = pipeline | "Crawl" >> Crawl(config)
    pipeline.run().wait_until_finish()
    stats = read_stats(config.out)
    b = stats["balancing"]
    print_summary(f"{summary_table(stats)}\n{entries} entries, t={b['t']}, seed={b['seed']}; "
                  f"wrote {config.out}/ ({', '.join(stats['outputs'])})")
    return stats
