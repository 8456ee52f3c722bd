"""``wit queries --worldwide``: MetaCLIP 2's per-language metadata from dumps of several
languages (docs/queries.md). The dumps are grouped by the language of their ``<siteinfo>``
dbname on the launcher; English keeps MetaCLIP 1's list (the stage as without
--worldwide); every other language runs :class:`LanguageQueries`, one Beam job per
language, which writes ``<lang>.json`` and ``<lang>.sources.json``; ``index.json`` is
written last.

Per language: tokens of its script (segmented where it has no spaces), unigrams by count,
bigrams by PMI (> --min-pmi), titles by the summed pageviews of the language's own
Wikipedia (``de`` / ``de.wikipedia`` lines of the --pageviews files, as English counts ``en``)
or, without --pageviews, by in-links inside the dump, merged under MetaCLIP 2's caps (:func:`queries.worldwide.language_metadata`).
The merge step holds only the top of each source (the caps bound them), never a whole
vocabulary.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from dataclasses import replace
from typing import Any

import apache_beam as beam

from pipeline.core import fsio, jobs
from pipeline.core.beam import make_pipeline
from pipeline.core.errors import InputError
from queries.bigrams import ScoreBigrams
from queries.dump_counts import CountDumps
from queries.segment import segmenter_for
from queries.sharding import SumDicts, frequent
from queries.titles import TitlesByInlinks, TitlesByPageviews
from queries.transform import QueryConfig
from queries.worldwide import (
    BIGRAM_MAX,
    TITLE_MAX,
    UNIGRAM_MAX,
    dump_language,
    language_metadata,
    write_index,
    write_language_files,
)

# numerals and duplicates of earlier sources: how far past a cap the top lists reach
MARGIN = 1_000


def _rank(item: tuple[str, float]) -> tuple[float, tuple[int, ...]]:
    """Descending by score, then ascending by text (a total order: Top.Of is the same on
    every runner, ties at the cut included)."""
    return item[1], (*(-ord(c) for c in item[0]), 1)


def _top(pcoll: beam.PCollection, n: int, label: str) -> beam.PCollection:
    return pcoll | f"Top{label}" >> beam.combiners.Top.Of(n, key=_rank)


class WriteLanguage(beam.DoFn):
    def __init__(self, folder: str, language: str, min_pmi: float):
        self.folder, self.language, self.min_pmi = folder, language, min_pmi

    def process(self, _: Any, unigrams: list, distinct: int, bigrams: list, titles: list,
                title_count: int) -> Iterable[dict]:
        # no WordNet source: no packaged multilingual WordNet (docs/queries.md)
        rows = language_metadata(self.language, [], unigrams, bigrams, titles, self.min_pmi,
                                 distinct, title_count)
        yield write_language_files(self.folder, self.language, rows)


class LanguageQueries(beam.PTransform):
    """Pipeline root -> the index item of one language, after writing its files."""

    def __init__(self, config: QueryConfig, language: str, paths: list[str], folder: str):
        super().__init__()
        self.config, self.language, self.paths, self.folder = config, language, paths, folder

    def expand(self, root):
        cfg = self.config
        counts = (root | "DumpPaths" >> beam.Create(self.paths)
                  | "CountDumps" >> CountDumps(True, True, cfg.flush_keys, cfg.shards,
                                               self.language))
        unigrams = counts["unigram"] | "AllUnigrams" >> beam.FlatMap(frequent, 1)
        total = (counts["stats"] | "DumpTotals" >> beam.CombineGlobally(SumDicts())
                 | "Tokens" >> beam.Map(lambda s: s.get("tokens", 0)))
        bigrams = (counts["bigram"], counts["unigram"], total) | "Bigrams" >> ScoreBigrams(
            cfg.min_bigram_count, cfg.min_pmi, cfg.shards)
        if title_rule(cfg) == "pageviews":  # this language's project lines only
            titles, _ = (root | "PageviewPaths" >> beam.Create(list(cfg.pageviews))
                         | "TitlesByPageviews" >> TitlesByPageviews(
                             cfg.min_views, cfg.min_hourly_views, cfg.shards, self.language))
        else:
            titles = ((counts["link"], counts["redirect"], counts["article"])
                      | "TitlesByInlinks" >> TitlesByInlinks(cfg.min_inlinks, cfg.shards))
        side = beam.pvalue
        return (root | "Once" >> beam.Create([None])
                | "Write" >> beam.ParDo(
                    WriteLanguage(self.folder, self.language, cfg.min_pmi),
                    unigrams=side.AsSingleton(_top(unigrams, UNIGRAM_MAX + MARGIN, "Unigrams")),
                    distinct=side.AsSingleton(unigrams | "Distinct" >> beam.combiners.Count
                                              .Globally()),
                    bigrams=side.AsSingleton(_top(
                        bigrams | "ByPMI" >> beam.Map(lambda b: (b[0], b[2])),
                        UNIGRAM_MAX + BIGRAM_MAX + MARGIN, "Bigrams")),
                    titles=side.AsSingleton(_top(titles, UNIGRAM_MAX + BIGRAM_MAX + TITLE_MAX
                                                 + MARGIN, "Titles")),
                    title_count=side.AsSingleton(titles | "Titles" >> beam.combiners.Count
                                                 .Globally())))


def title_rule(config: QueryConfig) -> str:
    """How a language's titles are ranked: ``pageviews`` with --pageviews files (each
    language counting its own project's lines), else ``inlinks`` inside its dumps."""
    return "pageviews" if config.pageviews else "inlinks"


def group_by_language(paths: list[str]) -> dict[str, list[str]]:
    groups: dict[str, list[str]] = {}
    for path in paths:
        groups.setdefault(dump_language(path), []).append(path)
    return {lang: sorted(p) for lang, p in sorted(groups.items())}


def run(config: QueryConfig, beam_args: list[str] | None = None) -> dict[str, Any]:
    """Build every language's list into ``OUT/queries/worldwide/``; returns the index."""
    from queries import job

    folder = fsio.join(config.out, "queries", "worldwide")
    jobs.remove_outputs(folder, ("index.json", "*.json", ".tmp-*"))
    config = job.resolve_inputs(config)
    if not config.wiki:
        raise InputError("--worldwide needs --wiki dumps (one or more per language)")
    groups = group_by_language(list(config.wiki))
    for language in groups:  # fail early, on the launcher, for a language without segmenter
        segmenter_for(language)
    items: dict[str, dict] = {}
    for language, paths in groups.items():
        print(f"queries: {language}: {len(paths)} dump file(s) ...", file=sys.stderr)
        if language == "en":  # MetaCLIP 1's list, as MetaCLIP 2 keeps it
            english = job.run(replace(config, wiki=tuple(paths), worldwide=False), beam_args)
            entries = fsio.read_json(english["outputs"]["metadata.json"])
            items["en"] = write_language_files(folder, "en", [(e, "metaclip1") for e in entries])
            continue
        with make_pipeline(beam_args) as p:
            _ = p | f"Queries_{language}" >> LanguageQueries(config, language, paths, folder)
        items[language] = {"file": f"{language}.json", **_item(folder, language),
                           "titles": title_rule(config)}
    index = write_index(folder, items)
    doc = fsio.read_json(index)
    lines = [f"queries --worldwide: {len(items)} language(s) -> {index}"]
    lines += [f"  {lang:<6}{item['entries']:>9,}  {item['sources']}"
              + (f"  titles by {item['titles']}" if "titles" in item else "")
              for lang, item in doc["languages"].items()]
    jobs.print_summary("\n".join(lines))
    return doc


def _item(folder: str, language: str) -> dict:
    from collections import Counter

    sources = fsio.read_json(fsio.join(folder, f"{language}.sources.json"))
    return {"entries": len(sources), "sources": dict(sorted(Counter(sources).items()))}
