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

from pipeline.core.options import add_options, from_args
from queries.transform import QueryConfig

USES_BEAM = True


def add_arguments(parser: argparse.ArgumentParser) -> None:
    # every option, its type, default and help: QueryConfig's fields
    add_options(parser, QueryConfig)


def run(args: argparse.Namespace, beam_args: list[str]) -> int:
    config = from_args(QueryConfig, args)
    if config.worldwide:
        from queries import worldwide_job

        worldwide_job.run(config, beam_args)
    else:
        from queries import job

        job.run(config, beam_args)
    return 0
