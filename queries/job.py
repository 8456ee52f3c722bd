"""The ``queries`` stage end to end: clear an earlier run's outputs (before anything can
fail), expand the dump and pageview globs, check the dumps' headers, size the count shards,
read WordNet, run the :class:`~queries.transform.BuildQueries` job and print the summary.
Outputs go to ``OUT/queries/`` (schemas in ``schemas.queries``)."""

from __future__ import annotations

import sys
from dataclasses import replace

import fsspec

from pipeline.core import fsio, jobs
from pipeline.core.beam import make_pipeline
from pipeline.core.errors import InputError
from pipeline.core.jobs import print_summary
from queries.dump import check_header
from queries.sharding import shards_for
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


def _size(path: str) -> int:
    """Stored bytes of a dump file (0 when the store cannot say; the header check reports
    unreadable files)."""
    try:
        fs, _, (root,) = fsspec.get_fs_token_paths(path)
        return int(fs.size(root) or 0)
    except (OSError, ValueError):
        return 0


def resolve_inputs(config: QueryConfig) -> QueryConfig:
    """``config`` with its globs expanded and its shard count sized from the dumps; the dumps
    the job reads are checked to be MediaWiki XML (one-line errors otherwise)."""
    wiki = fsio.expand(list(config.wiki), "dump") if config.wiki else []
    pageviews = fsio.expand(list(config.pageviews), "pageview") if config.pageviews else []
    config = replace(config, wiki=tuple(wiki), pageviews=tuple(pageviews),
                     shards=shards_for((path, _size(path)) for path in wiki))
    if config.needs_dump and not wiki:
        raise InputError("--wiki is required for the unigram and bigram sources "
                         "(and for titles without --pageviews)")
    for path in wiki if config.needs_dump else []:
        check_header(path)
    return config


def run(config: QueryConfig, beam_args: list[str] | None = None) -> dict:
    """Run the stage, print its summary and return the stats written to
    ``OUT/queries/stats.json``."""
    from queries.wordnet import wordnet_entries

    if not config.out:
        raise ValueError("QueryConfig.out is required")
    remove_stale_outputs(config.out)  # first: a failing rerun must not look like a result
    config = resolve_inputs(config)
    names: list[str] = []
    if "wordnet" in config.sources:
        print("queries: reading WordNet ...", file=sys.stderr)
        names, version = wordnet_entries(config.wordnet)
        config = replace(config, wordnet_version=version)
    if config.needs_dump:
        print(f"queries: counting {len(config.wiki)} dump file(s) ...", file=sys.stderr)
    fsio.makedirs(fsio.join(config.out, "queries"))
    with make_pipeline(beam_args) as p:
        _ = p | "BuildQueries" >> BuildQueries(config, names)
    stats = fsio.read_json(fsio.join(config.out, "queries", "stats.json"))
    print_summary(summary_text(stats))
    return stats
