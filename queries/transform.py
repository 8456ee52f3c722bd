"""The ``queries`` Beam pipeline: ``BuildQueries``, one composite read top-down, and its config.

    dumps ──CountDumps──► unigram / bigram / link partial counts, titles, redirects, stats
                          │ CombinePerKey(sum) (spreads over workers)
    unigrams ≥ min_count, bigrams with PMI ≥ min_pmi (two joins for c(a), c(b); bigrams
    that cannot reach min_pmi are dropped after the first),
    titles by pageviews (or by in-links inside the dump) ──► WriteQueries (one worker)

Parallelism is per dump file (Wikimedia publishes English Wikipedia in dozens of parts);
pages are processed where they are read, so page texts are never shuffled and memory on a
worker is one page plus bounded partial-count dictionaries.

The smaller composites live beside it, one role each: ``dump_counts.CountDumps``,
``bigrams.ScoreBigrams``, ``titles.TitlesByInlinks`` / ``TitlesByPageviews``; counts travel
as sharded dictionaries (``sharding.py``) and the outputs are written by ``writer.py``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import apache_beam as beam

from pipeline.core import fsio
from pipeline.core.cliargs import finite_float, non_negative_int, output_dir, positive_int
from pipeline.core.options import option
from queries import pageviews as pv
from queries.bigrams import ScoreBigrams
from queries.dump_counts import CountDumps
from queries.option_values import parse_sources
from queries.sharding import SumDicts, frequent, observe
from queries.titles import TitlesByInlinks, TitlesByPageviews
from queries.writer import merge_sources, stats_document, write_outputs
from schemas.queries import SOURCES


@dataclass(frozen=True)
class QueryConfig:
    """The stage's settings; the fields declared with ``option`` are ``wit queries``'s
    command line, defaults included (MetaCLIP's, for a full English Wikipedia)."""

    wiki: tuple[str, ...] = option(
        (), nargs="+", metavar="DUMP",
        help="MediaWiki pages-articles XML dump(s): .xml, .xml.bz2 or .xml.gz; globs and fsspec "
             "paths (gs://, s3://) allowed")
    pageviews: tuple[str, ...] = option(
        (), nargs="+", metavar="FILE",
        help="Wikimedia hourly pageview files (pageviews-YYYYMMDD-HH0000[.gz]): titles "
             "ranked by summed views of the en lines (with --worldwide, each language by its "
             "own project's lines, e.g. de or de.wikipedia); without them titles are ranked "
             "by in-links inside the dump")
    sources: tuple[str, ...] = option(
        SOURCES, type=parse_sources,
        help=f"comma-separated subset of {','.join(SOURCES)} to build; the numerals 0-99 are "
             "always added first (default: all, merged in that order)")
    min_count: int = option(100, type=non_negative_int,
                            help="unigrams occurring at least this often")
    min_pmi: float = option(30.0, type=finite_float,
                            help="bigrams with PMI = log2(c(ab)*N/(c(a)c(b))) at least this")
    # MetaCLIP has no count minimum for bigrams (only PMI); 1 = none
    min_bigram_count: int = option(1, type=non_negative_int,
                                   help="bigrams must also occur at least this often; MetaCLIP "
                                        "has no such rule, hence 1")
    min_views: int = option(70, type=non_negative_int,
                            help="titles whose summed pageviews reach this (en; with "
                                 "--worldwide per language)")
    min_hourly_views: int = option(pv.MIN_HOURLY_VIEWS, type=non_negative_int,
                                   help="hourly pageview counts below this are ignored")
    min_inlinks: int = option(50, type=non_negative_int,
                              help="without pageviews: titles linked from at least this many "
                                   "article links in the dump")
    max_entries: int = option(500_000, type=positive_int,
                              help="cap on the list, filled in source order")
    # where WordNet is read from and where the results go: the job's, not in stats.json
    wordnet: str | None = option(None, metavar="DIR",
                                 help="WordNet: a WNDB directory (e.g. /usr/share/wordnet) or "
                                      "an nltk data directory (default: nltk's data path, then "
                                      "/usr/share/wordnet)")
    out: str = option(required=True, metavar="DIR", type=output_dir,
                      help="output root; results go to DIR/queries/ (local or fsspec path)")
    worldwide: bool = option(False, help="MetaCLIP 2: one query list per language of the "
                                         "--wiki dumps (the language from each dump's "
                                         "<siteinfo> dbname), capped relative to that "
                                         "language's vocabulary, written to "
                                         "OUT/queries/worldwide/ with an index.json for "
                                         "`wit crawl --worldwide`; English keeps this "
                                         "stage's MetaCLIP 1 list (docs/queries.md)")
    flush_keys: int = 500_000  # partial-count dictionary size that triggers a flush
    shards: int = 256  # count dictionaries are split into this many shards (see shards_for)
    wordnet_version: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # the CLI refuses these at parse time; a programmatic caller gets the same check,
        # and stats.json (strict JSON) never holds NaN or Infinity
        if not math.isfinite(self.min_pmi):
            raise ValueError(f"min_pmi must be a finite number, got {self.min_pmi}")
        if self.max_entries < 1:
            raise ValueError(f"max_entries must be at least 1, got {self.max_entries}")

    @property
    def title_rule(self) -> str | None:
        if "title" not in self.sources:
            return None
        return "pageviews" if self.pageviews else "inlinks"

    @property
    def needs_dump(self) -> bool:
        return bool({"unigram", "bigram"} & set(self.sources)) or self.title_rule == "inlinks"


class WriteQueriesFn(beam.DoFn):
    """The ranked sources (side inputs) -> the merged entry list, written to
    ``out_dir/queries/`` (:mod:`queries.writer`); yields the stats written."""

    def __init__(self, out_dir: str, config: QueryConfig):
        self.out_dir, self.config = out_dir, config

    def process(self, _, wordnet, unigrams, bigrams, titles, counters):
        cfg = self.config
        if "bigram" in cfg.sources:
            observe("selected_bigrams", len(bigrams))
        entries, report = merge_sources(cfg, wordnet, unigrams, bigrams, titles)
        out = fsio.join(self.out_dir, "queries")
        stats = stats_document(cfg, out, entries, report, counters)
        write_outputs(out, entries, stats)
        yield stats


class BuildQueries(beam.PTransform):
    """pipeline root -> one stats dict, after writing ``config.out/queries/``."""

    def __init__(self, config: QueryConfig, wordnet_names: list[str]):
        super().__init__()
        self.config, self.wordnet_names = config, wordnet_names

    def expand(self, root):
        cfg = self.config
        empty = root | "NoEntries" >> beam.Create([])
        # what each source ranks: (word, count), (bigram, count, PMI), (title, count)
        unigrams = bigrams = titles = empty
        counter_parts = []  # per-file counter dicts, summed into stats.json's "inputs"
        if cfg.needs_dump:
            # dump paths -> {unigram, bigram, link: (shard, summed counts), article,
            # redirect: (shard, chunk), stats: per-file counters}
            dumps = CountDumps("bigram" in cfg.sources, cfg.title_rule == "inlinks",
                               cfg.flush_keys, cfg.shards)
            counts = root | "DumpPaths" >> beam.Create(list(cfg.wiki)) | "CountDumps" >> dumps
            counter_parts.append(counts["stats"])
            # (word, count) for count >= min_count
            unigrams = counts["unigram"] | "MinCount" >> beam.FlatMap(frequent, cfg.min_count)
            if "bigram" in cfg.sources:
                # N, the dump's word tokens, then (bigram, count, PMI) for PMI >= min_pmi
                total = (counts["stats"]
                         | "DumpTotals" >> beam.CombineGlobally(SumDicts())
                         | "Tokens" >> beam.Map(lambda s: s.get("tokens", 0)))
                bigrams = (counts["bigram"], counts["unigram"], total) | "Bigrams" >> ScoreBigrams(
                    cfg.min_bigram_count, cfg.min_pmi, cfg.shards)
            if cfg.title_rule == "inlinks":
                # (title, in-links) for articles linked at least min_inlinks times
                titles = ((counts["link"], counts["redirect"], counts["article"])
                          | "TitlesByInlinks" >> TitlesByInlinks(cfg.min_inlinks, cfg.shards))
        if cfg.title_rule == "pageviews":
            # (title, views) for views >= min_views, and the pageview files' counters
            titles, view_stats = (root | "PageviewPaths" >> beam.Create(list(cfg.pageviews))
                                  | "TitlesByPageviews" >> TitlesByPageviews(
                                      cfg.min_views, cfg.min_hourly_views, cfg.shards))
            counter_parts.append(view_stats)
        # every counter, summed: one dict
        counters = (
            (counter_parts or [root | "NoCounters" >> beam.Create([])])
            | "AllCounters" >> beam.Flatten()
            | "SumCounters" >> beam.CombineGlobally(SumDicts())
        )
        # one worker merges the sources (side inputs) and writes the outputs: one stats dict
        side = beam.pvalue
        return (
            root
            | "Once" >> beam.Create([None])
            | "Write" >> beam.ParDo(
                WriteQueriesFn(cfg.out, cfg),
                wordnet=side.AsSingleton(root | "WordNet" >> beam.Create([self.wordnet_names])),
                unigrams=side.AsList(unigrams if "unigram" in cfg.sources else empty),
                bigrams=side.AsList(bigrams),
                titles=side.AsList(titles),
                counters=side.AsSingleton(counters),
            )
        )
