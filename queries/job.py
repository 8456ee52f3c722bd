"""The ``queries`` stage end to end: ``remove_stale_outputs`` clears an earlier run's
outputs (the CLI calls it before anything can fail), ``run`` runs the
:class:`~queries.transform.BuildQueries` job and prints the summary. Outputs go to
``OUT/queries/`` (schemas in ``schemas.queries``)."""

from __future__ import annotations

from dataclasses import asdict

from pipeline.core import fsio, jobs
from pipeline.core.beam import make_pipeline
from pipeline.core.jobs import print_summary
from queries.transform import BuildQueries, QueryConfig


def summary_text(stats: dict) -> str:
    inputs = stats["inputs"]
    lines = [f"queries: {stats['entries']:,} entries -> {stats['outputs']['metadata.json']}"]
    if inputs.get("files"):
        lines.append(f"  dump: {inputs.get('files', 0)} file(s), {inputs.get('pages', 0):,} "
                     f"pages, {inputs.get('articles', 0):,} articles, "
                     f"{inputs.get('redirects', 0):,} redirects, {inputs.get('tokens', 0):,} tokens")
    lines.append(f"  {'source':<9}{'candidates':>12}{'kept':>10}{'dup':>8}{'capped':>9}"
                 f"{'invalid':>9}")
    for source, row in stats["entries_per_source"].items():
        lines.append(f"  {source:<9}{row['candidates']:>12,}{row['kept']:>10,}"
                     f"{row['duplicates']:>8,}{row['capped']:>9,}{row['invalid']:>9,}")
    if stats.get("title_rule"):
        lines.append(f"  titles: {stats['title_rule']}")
    return "\n".join(lines)


# written by every run; stats.json and metadata.json mark a complete one. .tmp-*: temporary
# names a crashed run did not finish
STALE_OUTPUTS = ("metadata.json", "metadata.parquet", "stats.json", ".tmp-*")


def remove_stale_outputs(out_dir: str) -> None:
    """Delete an earlier run's outputs before this run starts, so a run that fails never
    leaves the previous metadata.json/stats.json looking like its own result."""
    jobs.remove_outputs(fsio.join(out_dir, "queries"), STALE_OUTPUTS)


def run(config: QueryConfig, wordnet_names: list[str], out_dir: str,
        beam_args: list[str] | None = None) -> dict:
    """Run the stage, print its summary and return the stats written to
    ``OUT/queries/stats.json``."""
    fsio.makedirs(fsio.join(out_dir, "queries"))
    with make_pipeline(beam_args) as p:
        _ = p | "BuildQueries" >> BuildQueries(config, wordnet_names, out_dir)
    stats = fsio.read_json(fsio.join(out_dir, "queries", "stats.json"))
    print_summary(summary_text(stats))
    return stats


def config_dict(config: QueryConfig) -> dict:
    return asdict(config)
