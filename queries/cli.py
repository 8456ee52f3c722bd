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
from dataclasses import dataclass

import fsspec

from pipeline.core import fsio
from pipeline.core.cliargs import output_dir
from pipeline.core.errors import InputError
from pipeline.core.options import add_options, from_args, option
from queries.dump import check_header
from queries.sharding import shards_for
from queries.transform import QueryConfig

USES_BEAM = True


@dataclass(frozen=True)
class QueryPaths:
    """The options of ``wit queries`` beside :class:`QueryConfig`'s: where WordNet is read
    from and where the results go."""

    wordnet: str | None = option(None, metavar="DIR",
                                 help="WordNet: a WNDB directory (e.g. /usr/share/wordnet) or "
                                      "an nltk data directory (default: nltk's data path, then "
                                      "/usr/share/wordnet)")
    out: str = option(required=True, metavar="DIR", type=output_dir,
                      help="output root; results go to DIR/queries/ (local or fsspec path)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    # every option, its type, default and help: QueryConfig's and QueryPaths' fields
    add_options(parser, QueryConfig, QueryPaths)


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

    paths: QueryPaths = from_args(QueryPaths, args)
    job.remove_stale_outputs(paths.out)  # first: a failing rerun must not look like a result
    wiki = fsio.expand(list(args.wiki), "dump") if args.wiki else []
    pageviews = fsio.expand(list(args.pageviews), "pageview") if args.pageviews else []
    config: QueryConfig = from_args(
        QueryConfig, args, wiki=tuple(wiki), pageviews=tuple(pageviews),
        shards=shards_for((path, _size(path)) for path in wiki))
    if config.needs_dump and not wiki:
        raise InputError("--wiki is required for the unigram and bigram sources "
                         "(and for titles without --pageviews)")
    for path in wiki if config.needs_dump else []:
        check_header(path)
    names: list[str] = []
    if "wordnet" in config.sources:
        print("queries: reading WordNet ...", file=sys.stderr)
        names, version = wordnet_entries(paths.wordnet)
        config = QueryConfig(**{**job.config_dict(config), "wordnet_version": version})
    if config.needs_dump:
        print(f"queries: counting {len(wiki)} dump file(s) ...", file=sys.stderr)
    job.run(config, names, paths.out, beam_args)
    return 0
