"""``BuildQueries``: the whole queries stage as one composite PTransform, and ``run`` to
execute it. Outputs go to ``OUT/queries/`` (schemas in ``schemas.queries``)."""

from __future__ import annotations

import io
from dataclasses import asdict

import apache_beam as beam
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.core import fsio, jobs
from pipeline.core.beam import make_pipeline
from queries.select import (
    Candidate,
    merge,
    numeral_candidates,
    rank_bigrams,
    rank_titles,
    rank_unigrams,
)
from queries.transform import (
    CountDumps,
    QueryConfig,
    ScoreBigrams,
    SumDicts,
    TitlesByInlinks,
    TitlesByPageviews,
    frequent,
    observe,
)
from schemas import METADATA, validate
from schemas.queries import NUMERAL

PMI_FORMULA = "PMI(a b) = log2(c(a b) * N / (c(a) * c(b))), N = word tokens (nltk BigramAssocMeasures.pmi)"


def versions(wordnet_version: str | None) -> dict[str, str]:
    found = jobs.versions(("webimagetext", "apache-beam", "nltk", "mwparserfromhell", "mwxml",
                           "pyarrow"), python=True, missing="unknown")
    if wordnet_version:
        found["wordnet"] = wordnet_version
    return found


def title_rule_text(cfg: QueryConfig) -> str | None:
    if cfg.title_rule == "pageviews":
        return (f"pageviews: en titles without ':' whose hourly counts >= "
                f"{cfg.min_hourly_views} sum to >= {cfg.min_views}")
    if cfg.title_rule == "inlinks":
        return (f"inlinks (no pageview files given): articles of the dump linked from >= "
                f"{cfg.min_inlinks} article links, links to redirects counted for the target")
    return None


def metadata_table(entries: list[Candidate]) -> pa.Table:
    table = pa.table({
        "entry_id": list(range(len(entries))),
        "entry": [e.entry for e in entries],
        "source": [e.source for e in entries],
        "count": [e.count for e in entries],
        "score": [e.score for e in entries],
    })
    return validate(table, METADATA, where="metadata.parquet")


class WriteQueriesFn(beam.DoFn):
    """Merge the sources and write metadata.parquet, stats.json and, last, metadata.json
    (each under a temporary name first), so metadata.json exists only for complete runs."""

    def __init__(self, out_dir: str, config: QueryConfig):
        self.out_dir, self.config = out_dir, config

    def process(self, _, wordnet, unigrams, bigrams, titles, counters):
        cfg = self.config
        per_source: dict[str, list[Candidate]] = {NUMERAL: numeral_candidates()}
        if "wordnet" in cfg.sources:
            per_source["wordnet"] = [Candidate(name, "wordnet") for name in wordnet]
        if "unigram" in cfg.sources:
            per_source["unigram"] = rank_unigrams(unigrams)
        if "bigram" in cfg.sources:
            observe("selected_bigrams", len(bigrams))
            per_source["bigram"] = rank_bigrams(bigrams)
        if "title" in cfg.sources:
            per_source["title"] = rank_titles(titles)
        entries, report = merge(per_source, cfg.max_entries)
        out = fsio.join(self.out_dir, "queries")
        stats = {
            "inputs": {"wiki": list(cfg.wiki), "pageviews": list(cfg.pageviews), **counters},
            "entries": len(entries),
            "entries_per_source": report,
            "thresholds": {
                "sources": list(cfg.sources), "min_count": cfg.min_count,
                "min_pmi": cfg.min_pmi, "min_bigram_count": cfg.min_bigram_count,
                "min_views": cfg.min_views, "min_hourly_views": cfg.min_hourly_views,
                "min_inlinks": cfg.min_inlinks, "max_entries": cfg.max_entries,
            },
            "title_rule": title_rule_text(cfg),
            "pmi": PMI_FORMULA,
            "versions": versions(cfg.wordnet_version),
            "outputs": {name: fsio.join(out, name)
                        for name in ("metadata.json", "metadata.parquet", "stats.json")},
        }
        buffer = io.BytesIO()
        pq.write_table(metadata_table(entries), buffer)
        fsio.atomic_write_bytes(fsio.join(out, "metadata.parquet"), buffer.getvalue())
        fsio.atomic_write_json(fsio.join(out, "stats.json"), stats)
        fsio.atomic_write_json(fsio.join(out, "metadata.json"), [e.entry for e in entries],
                               indent=None)
        yield stats


class BuildQueries(beam.PTransform):
    """pipeline root -> one stats dict, after writing ``out_dir/queries/``."""

    def __init__(self, config: QueryConfig, wordnet_names: list[str], out_dir: str):
        super().__init__()
        self.config, self.wordnet_names, self.out_dir = config, wordnet_names, out_dir

    def expand(self, root):
        cfg = self.config
        empty = root | "NoEntries" >> beam.Create([])
        unigrams = bigrams = titles = empty
        counter_parts = []
        if cfg.needs_dump:
            dumps = CountDumps(cfg)
            counts = root | "DumpPaths" >> beam.Create(list(cfg.wiki)) | "CountDumps" >> dumps
            counter_parts.append(counts["stats"])
            unigrams = counts["unigram"] | "MinCount" >> beam.FlatMap(frequent, cfg.min_count)
            if "bigram" in cfg.sources:
                total = (counts["stats"]
                         | "DumpTotals" >> beam.CombineGlobally(SumDicts())
                         | "Tokens" >> beam.Map(lambda s: s.get("tokens", 0)))
                bigrams = (counts["bigram"], counts["unigram"], total) | "Bigrams" >> ScoreBigrams(
                    cfg.min_bigram_count, cfg.min_pmi, cfg.shards)
            if cfg.title_rule == "inlinks":
                titles = ((counts["link"], counts["redirect"], counts["article"])
                          | "TitlesByInlinks" >> TitlesByInlinks(cfg.min_inlinks, cfg.shards))
        if cfg.title_rule == "pageviews":
            titles, view_stats = (root | "PageviewPaths" >> beam.Create(list(cfg.pageviews))
                                  | "TitlesByPageviews" >> TitlesByPageviews(
                                      cfg.min_views, cfg.min_hourly_views, cfg.shards))
            counter_parts.append(view_stats)
        counters = (
            (counter_parts or [root | "NoCounters" >> beam.Create([])])
            | "AllCounters" >> beam.Flatten()
            | "SumCounters" >> beam.CombineGlobally(SumDicts())
        )
        side = beam.pvalue
        return (
            root
            | "Once" >> beam.Create([None])
            | "Write" >> beam.ParDo(
                WriteQueriesFn(self.out_dir, cfg),
                wordnet=side.AsSingleton(root | "WordNet" >> beam.Create([self.wordnet_names])),
                unigrams=side.AsList(unigrams if "unigram" in cfg.sources else empty),
                bigrams=side.AsList(bigrams),
                titles=side.AsList(titles),
                counters=side.AsSingleton(counters),
            )
        )


# written by every run; stats.json and metadata.json mark a complete one. .tmp-*: temporary
# names a crashed run did not finish
STALE_OUTPUTS = ("metadata.json", "metadata.parquet", "stats.json", ".tmp-*")


def remove_stale_outputs(out_dir: str) -> None:
    """Delete an earlier run's outputs before this run starts, so a run that fails never
    leaves the previous metadata.json/stats.json looking like its own result."""
    jobs.remove_outputs(fsio.join(out_dir, "queries"), STALE_OUTPUTS)


def run(config: QueryConfig, wordnet_names: list[str], out_dir: str,
        beam_args: list[str] | None = None) -> dict:
    """Run the stage and return the stats written to ``OUT/queries/stats.json``."""
    fsio.makedirs(fsio.join(out_dir, "queries"))
    with make_pipeline(beam_args) as p:
        _ = p | "BuildQueries" >> BuildQueries(config, wordnet_names, out_dir)
    return fsio.read_json(fsio.join(out_dir, "queries", "stats.json"))


def config_dict(config: QueryConfig) -> dict:
    return asdict(config)
