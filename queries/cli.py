"""Build the CLIP query list ("metadata") from Wikipedia dumps, pageviews and WordNet, as
CLIP §2.2 describes and MetaCLIP published: the numerals 0-99 (always), WordNet synset
names, Wikipedia unigrams (count >= --min-count), bigrams (PMI >= --min-pmi), and article
titles (pageviews >= --min-views, or in-links >= --min-inlinks without pageview files), merged
in that order without duplicates and capped at --max-entries.

Writes OUT/queries/metadata.json (a JSON list, index = entry id), metadata.parquet and
stats.json. The defaults are for a full English Wikipedia; for a small sample lower the
thresholds (e.g. --min-count 20 --min-pmi 12 --min-bigram-count 5 --min-inlinks 3)."""

from __future__ import annotations

import argparse
import sys

import fsspec

from pipeline.core import fsio
from pipeline.core.cliargs import finite_float, non_negative_int, output_dir, positive_int
from pipeline.core.errors import InputError
from pipeline.core.jobs import print_summary
from queries.dump import check_header
from queries.transform import QueryConfig, shards_for
from schemas.queries import SOURCES

USES_BEAM = True


def _sources(value: str) -> tuple[str, ...]:
    chosen = tuple(s.strip() for s in value.split(",") if s.strip())
    unknown = [s for s in chosen if s not in SOURCES]
    if unknown or not chosen:
        raise argparse.ArgumentTypeError(
            f"unknown source(s) {', '.join(unknown) or '(none)'}; choose from {','.join(SOURCES)}")
    return tuple(s for s in SOURCES if s in chosen)  # merge order, whatever the order given


def add_arguments(parser: argparse.ArgumentParser) -> None:
    d = QueryConfig()
    parser.add_argument("--wiki", nargs="+", default=[], metavar="DUMP",
                        help="MediaWiki pages-articles XML dump(s): .xml, .xml.bz2 or .xml.gz; "
                             "globs and fsspec paths (gs://, s3://) allowed")
    parser.add_argument("--pageviews", nargs="+", default=[], metavar="FILE",
                        help="Wikimedia hourly pageview files (pageviews-YYYYMMDD-HH0000[.gz]); "
                             "without them titles are ranked by in-links inside the dump")
    parser.add_argument("--sources", type=_sources, default=d.sources,
                        help="comma-separated subset of %(choices)s to build; the numerals "
                             "0-99 are always added first (default: all, merged in that "
                             "order)".replace(
                                 "%(choices)s", ",".join(SOURCES)))
    parser.add_argument("--min-count", type=non_negative_int, default=d.min_count,
                        help="unigrams occurring at least this often (default: %(default)s)")
    parser.add_argument("--min-pmi", type=finite_float, default=d.min_pmi,
                        help="bigrams with PMI = log2(c(ab)*N/(c(a)c(b))) at least this "
                             "(default: %(default)s)")
    parser.add_argument("--min-bigram-count", type=non_negative_int, default=d.min_bigram_count,
                        help="bigrams must also occur at least this often; MetaCLIP has no such "
                             "rule, hence 1 (default: %(default)s)")
    parser.add_argument("--min-views", type=non_negative_int, default=d.min_views,
                        help="titles whose summed en pageviews reach this (default: %(default)s)")
    parser.add_argument("--min-hourly-views", type=non_negative_int, default=d.min_hourly_views,
                        help="hourly pageview counts below this are ignored (default: %(default)s)")
    parser.add_argument("--min-inlinks", type=non_negative_int, default=d.min_inlinks,
                        help="without pageviews: titles linked from at least this many article "
                             "links in the dump (default: %(default)s)")
    parser.add_argument("--max-entries", type=positive_int, default=d.max_entries,
                        help="cap on the list, filled in source order (default: %(default)s)")
    parser.add_argument("--wordnet", default=None, metavar="DIR",
                        help="WordNet: a WNDB directory (e.g. /usr/share/wordnet) or an nltk data "
                             "directory (default: nltk's data path, then /usr/share/wordnet)")
    parser.add_argument("--out", required=True, metavar="DIR", type=output_dir,
                        help="output root; results go to DIR/queries/ (local or fsspec path)")


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


def _size(path: str) -> int:
    """Stored bytes of a dump file (0 when the store cannot say; the header check below
    reports unreadable files)."""
    try:
        fs, _, (root,) = fsspec.get_fs_token_paths(path)
        return int(fs.size(root) or 0)
    except (OSError, ValueError):
        return 0


def run(args: argparse.Namespace, beam_args: list[str]) -> int:
    from queries import job
    from queries.wordnet import wordnet_entries

    job.remove_stale_outputs(args.out)  # first: a failing rerun must not look like a result
    wiki = fsio.expand(args.wiki, "dump") if args.wiki else []
    pageviews = fsio.expand(args.pageviews, "pageview") if args.pageviews else []
    config = QueryConfig(wiki=tuple(wiki), pageviews=tuple(pageviews), sources=args.sources,
                         min_count=args.min_count, min_pmi=args.min_pmi,
                         min_bigram_count=args.min_bigram_count, min_views=args.min_views,
                         min_hourly_views=args.min_hourly_views, min_inlinks=args.min_inlinks,
                         max_entries=args.max_entries, shards=shards_for(
                             (path, _size(path)) for path in wiki))
    if config.needs_dump and not wiki:
        raise InputError("--wiki is required for the unigram and bigram sources "
                         "(and for titles without --pageviews)")
    for path in wiki if config.needs_dump else []:
        check_header(path)
    names: list[str] = []
    if "wordnet" in config.sources:
        print("queries: reading WordNet ...", file=sys.stderr)
        names, version = wordnet_entries(args.wordnet)
        config = QueryConfig(**{**job.config_dict(config), "wordnet_version": version})
    if config.needs_dump:
        print(f"queries: counting {len(wiki)} dump file(s) ...", file=sys.stderr)
    stats = job.run(config, names, args.out, beam_args)
    print_summary(summary_text(stats))
    return 0
