"""The crawl stage as one composite PTransform: sources -> pairs, MetaCLIP-matched where
they are read -> dedup -> global entry counts -> balancing -> Parquet + entry counts +
stats.json.

Every counter travels as data (``((source, counter), n)`` elements summed by a combine), so
``stats.json`` is exact on any runner. The automaton is built in ``DoFn.setup`` from the
metadata path (once per worker), the balancing draw hashes ``(seed, uid)``, and the part
files are canonical (:mod:`pipeline.crawl.writer`: part by a hash of the uid, rows sorted by
uid): the same inputs and seed give byte-identical candidates on any runner and number of
workers, in whatever order pages and rows arrive.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import apache_beam as beam
import fsspec
from apache_beam.metrics import Metrics
from apache_beam.pvalue import AsDict, AsList, AsSingleton, TaggedOutput
from apache_beam.utils import shared

from pipeline.core import fsio
from pipeline.core.cliargs import non_negative_int, output_dir, positive_int
from pipeline.core.options import option
from pipeline.core.progress import Progress
from pipeline.crawl.balancing import DEFAULT_T, keep_texts
from pipeline.crawl.html_extract import TEXT_FIELDS
from pipeline.crawl.live_crawler import CrawlerOptions, crawl_site, site_of
from pipeline.crawl.matching import Matcher, load_metadata
from pipeline.crawl.option_values import (
    candidates_dir,
    files,
    parse_text_fields,
    seed_urls,
)
from pipeline.crawl.pairs import DEFAULT_MAX_TEXT_CHARS, Pair, make_pair, pair_uid
from pipeline.crawl.url_lists import url_list_pairs
from pipeline.crawl.warc_source import DEFAULT_MAX_PAGE_BYTES, warc_pairs
from pipeline.crawl.wat import wat_pairs
from pipeline.crawl.writer import (
    ROWS_PER_PART,
    num_parts,
    part_of,
    write_entry_counts,
    write_part,
)

STATS = "stats"
SOURCES = "sources (any mix; at least one)"  # option group of --warc, --wat, --seeds, --urls
StatKey = tuple[str, str]


@dataclass(frozen=True)
class CrawlConfig:
    """Everything the stage needs; paths are fsspec paths readable by the workers. The
    fields declared with ``option`` are ``wit crawl``'s command line, defaults included."""

    metadata: str = option(required=True, help="the query list: a JSON list of strings "
                                               "(OUT/queries/metadata.json)")
    # the candidates directory (OUT/candidates); on the command line, the output root
    out: str = option(required=True, type=output_dir, convert=candidates_dir,
                      help="output root; the stage writes OUT/candidates/")
    warc: Sequence[str] = option((), nargs="+", append=True, metavar="FILE", group=SOURCES,
                                 convert=files("WARC"),
                                 help="WARC files (.warc or .warc.gz, globs and fsspec URLs "
                                      "allowed)")
    wat: Sequence[str] = option((), nargs="+", append=True, metavar="FILE", group=SOURCES,
                                convert=files("WAT"),
                                help="Common Crawl WAT files (.warc.wat.gz)")
    seeds: Sequence[str] = option((), nargs="+", append=True, metavar="URL", group=SOURCES,
                                  convert=seed_urls,
                                  help="seed URLs for the live crawler, or files (local or "
                                       "fsspec paths such as s3://) with one URL a line")
    url_lists: Sequence[str] = option((), flag="--urls", nargs="+", append=True,
                                      metavar="FILE", group=SOURCES, convert=files("URL-list"),
                                      help="URL lists in img2dataset's formats: .parquet, "
                                           ".csv, .tsv, .jsonl (optionally .gz) with --url-col "
                                           "and --caption-col")
    t: int = option(DEFAULT_T, type=positive_int,
                    help="balancing threshold: an entry matched by more than t pairs keeps "
                         "each with probability t/count")
    seed: int = option(0, type=non_negative_int,
                       help="seed of the balancing draw, hashed with each pair's uid")
    text_fields: Sequence[str] = option(
        TEXT_FIELDS, convert=parse_text_fields,
        help="where an <img>'s texts come from: every distinct non-empty one is matched and "
             "balanced (MetaCLIP), the first kept one is the sample's caption")
    url_col: str = option("url", help="URL column of --urls files")
    caption_col: str = option("caption", help="text column of --urls files")
    max_page_bytes: int = option(DEFAULT_MAX_PAGE_BYTES, type=positive_int,
                                 help="largest HTML page read, archived or live")
    max_text_chars: int = option(DEFAULT_MAX_TEXT_CHARS, type=positive_int,
                                 help="longest text kept, in characters after whitespace is "
                                      "collapsed; a longer alt/title/caption is dropped and "
                                      "counted (texts_too_long)")
    num_shards: int = option(0, type=non_negative_int,
                             help="number of part-NNNNN-of-MMMMM.parquet files; rows go to a "
                                  "part by a hash of their uid and are sorted by uid; 0: one "
                                  f"part per {ROWS_PER_PART:,} kept rows, at least one")
    rows_per_part: int = ROWS_PER_PART
    crawler: CrawlerOptions = field(default_factory=CrawlerOptions)


def _stats(source: str, counts: Counter[str]) -> Iterator[TaggedOutput]:
    for key, n in sorted(counts.items()):
        yield TaggedOutput(STATS, ((source, key), n))


class MatchingSource(beam.DoFn):
    """Base of the source DoFns: pairs are matched where they are read, with an automaton
    built once per worker in ``setup``, so matching runs at the speed of a bare
    pyahocorasick loop and unmatched pairs never become pipeline elements. Each text of an
    image is matched on its own (MetaCLIP); emits ``(uid, pair, ((text index, entry ids),
    ...))`` for the texts that matched, and counters (``stats``)."""

    def __init__(self, config: CrawlConfig, shared_matcher: shared.Shared | None = None):
        self.config = config
        # one automaton per worker process, shared by every source DoFn given this handle
        self.shared_matcher = shared_matcher or shared.Shared()
        self.matcher: Matcher | None = None

    def setup(self) -> None:
        path = self.config.metadata
        self.matcher = self.shared_matcher.acquire(lambda: Matcher(load_metadata(path)),
                                                   tag=path)

    def matched(self, pairs: Iterable[Pair], counts: Counter[str],
                label: str) -> Iterator[Any]:
        assert self.matcher is not None
        match = self.matcher.match
        progress = Progress(f"crawl {label}", unit="pairs")
        n = 0
        for pair in pairs:
            matched = tuple((i, tuple(ids)) for i, ids in
                            ((i, match(text)) for i, text in enumerate(pair.texts)) if ids)
            if matched:
                yield pair_uid(pair.url, pair.texts), tuple(pair), matched
            else:
                counts["unmatched"] += 1
            n += 1
            if n == 1000:  # keep the bar off the per-pair path
                progress.update(n)
                n = 0
        progress.update(n)
        progress.close()


class ReadFiles(MatchingSource):
    """One file path -> its matched pairs and its counters."""

    def __init__(self, source: str, config: CrawlConfig,
                 shared_matcher: shared.Shared | None = None):
        super().__init__(config, shared_matcher)
        self.source = source

    def process(self, path: str) -> Iterator[Any]:
        counts: Counter[str] = Counter({"files": 1})
        c = self.config
        if self.source == "warc":
            pairs: Iterable[Pair] = warc_pairs(path, counts, c.text_fields, c.max_page_bytes,
                                               c.max_text_chars)
        elif self.source == "wat":
            pairs = wat_pairs(path, counts, c.text_fields, max_text_chars=c.max_text_chars)
        else:
            pairs = url_list_pairs(path, counts, c.url_col, c.caption_col, c.max_text_chars)
        yield from self.matched(pairs, counts, f"{self.source} {path.rsplit('/', 1)[-1]}")
        yield from _stats(self.source, counts)


class CrawlSites(MatchingSource):
    """``(site, [seed URLs])`` -> matched pairs of the pages crawled on that site, and
    counters. One site is crawled by one worker, so per-host politeness holds locally."""

    def process(self, element: tuple[str, Iterable[str]]) -> Iterator[Any]:
        _, seeds = element
        counts: Counter[str] = Counter({"sites": 1})
        c = self.config
        pages = crawl_site(sorted(set(seeds)), c.crawler, counts, c.text_fields,
                           c.max_text_chars)
        pairs = (make_pair(url, texts, page_url, "live") for page_url, url, texts in pages)
        yield from self.matched(pairs, counts, f"live {element[0]}")
        yield from _stats("live", counts)


class KeepFirst(beam.CombineFn):
    """Dedup of one uid: the smallest (pair, ids) by (source, page_url) and how many."""

    def create_accumulator(self) -> tuple[tuple | None, int]:
        return None, 0

    @staticmethod
    def _better(a: tuple | None, b: tuple | None) -> tuple | None:
        if a is None:
            return b
        if b is None:
            return a
        return min(a, b, key=lambda m: (m[0][3], m[0][2] or "", m[0][0], m[0][1]))

    def add_input(self, acc, value):
        return self._better(acc[0], value), acc[1] + 1

    def merge_accumulators(self, accs):
        best, n = None, 0
        for value, count in accs:
            best, n = self._better(best, value), n + count
        return best, n

    def extract_output(self, acc):
        return acc


class Balance(beam.DoFn):
    """Keep each matched text of an image with probability ``1 - prod(1 - p_e)``, drawn
    from (seed, uid, text index) (:func:`pipeline.crawl.balancing.keep_texts`); the image is
    kept with its kept texts, the first of them as ``text``."""

    def __init__(self, t: int, seed: int):
        self.t, self.seed = t, seed

    def process(self, element, counts: dict[int, int]) -> Iterator[dict[str, Any]]:
        uid, pair, matched = element
        kept = set(keep_texts(uid, matched, counts, self.t, self.seed))
        if not kept:
            return
        url, _, page_url, source, texts = pair
        kept_texts = [texts[i] for i, _ in matched if i in kept]
        entry_ids = {e: None for i, ids in matched if i in kept for e in ids}  # ordered set
        yield {"uid": uid, "url": url, "text": kept_texts[0], "texts": kept_texts,
               "page_url": page_url, "source": source,
               "matched_entry_ids": list(entry_ids)}


class WriteParts(beam.DoFn):
    """``((part, parts), rows)`` -> the part file's path. The rows of one part are held and
    sorted in memory by one worker: ``rows_per_part`` (or ``--num-shards``) bounds that."""

    def __init__(self, out: str):
        self.out = out

    def process(self, element: tuple[tuple[int, int], Iterable[Any]]) -> Iterator[str]:
        (part, parts), values = element
        rows = [row for row in values if row is not None]
        # the job's largest per-worker state (bench/scale.py reports it)
        Metrics.distribution("wit.crawl", "rows_per_part").update(len(rows))
        yield write_part(self.out, part, parts, rows)


class WriteCandidates(beam.PTransform):
    """Kept rows -> canonical part files (pipeline/crawl/writer.py); returns their paths.

    The number of parts is known before any row is placed (a side input from the kept
    count), every part also gets a ``None`` marker so empty parts are written too, and one
    worker writes each part, sorted by uid."""

    def __init__(self, out: str, num_shards: int, rows_per_part: int):
        super().__init__()
        self.out, self.num_shards, self.rows_per_part = out, num_shards, rows_per_part

    def expand(self, kept: beam.PCollection) -> beam.PCollection:
        total = kept | "CountKept" >> beam.combiners.Count.Globally()
        parts = total | "NumParts" >> beam.Map(num_parts, self.num_shards, self.rows_per_part)
        placed = kept | "ToPart" >> beam.Map(
            lambda row, n: ((part_of(row["uid"], n), n), row), AsSingleton(parts))
        markers = parts | "EveryPart" >> beam.FlatMap(
            lambda n: [((p, n), None) for p in range(n)])
        return ((placed, markers) | "WithEmptyParts" >> beam.Flatten()
                | "GroupParts" >> beam.GroupByKey()
                | "WriteParts" >> beam.ParDo(WriteParts(self.out)))


def _write_entry_counts(_: Any, config: CrawlConfig, counts: dict[int, int]) -> str:
    return write_entry_counts(config.out, load_metadata(config.metadata), counts, config.t)


def stats_document(items: Iterable[tuple[StatKey, int]], config: CrawlConfig,
                   files: Sequence[str], entries: int) -> dict[str, Any]:
    """The JSON object written to ``stats.json`` (see docs/crawl.md)."""
    sources: dict[str, dict[str, Any]] = {}
    for (source, key), n in sorted(items):
        doc = sources.setdefault(source, {"skipped": {}})
        if key.startswith("skipped:"):
            doc["skipped"][key.split(":", 1)[1]] = n
        else:
            doc[key] = n
    order = ("files", "sites", "requests", "records", "rows", "pages", "images", "with_text",
             "unmatched", "duplicates", "matched", "kept")
    for source, doc in sources.items():
        for key in ("pages", "images", "with_text", "matched", "kept"):
            doc.setdefault(key, 0)
        sources[source] = {k: doc[k] for k in (*order, *sorted(doc)) if k in doc}
    totals: dict[str, int] = Counter()
    for doc in sources.values():
        for key, value in doc.items():
            if isinstance(value, int):
                totals[key] += value
    return {
        "sources": {s: sources[s] for s in sorted(sources)},
        "totals": dict(totals),
        "balancing": {"t": config.t, "seed": config.seed, "entries": entries},
        "inputs": {"metadata": config.metadata, "warc": list(config.warc),
                   "wat": list(config.wat), "seeds": list(config.seeds),
                   "urls": list(config.url_lists)},
        "outputs": sorted(f.rsplit("/", 1)[-1] for f in files),
    }


def _write_stats(items: list[tuple[StatKey, int]], config: CrawlConfig,
                 files: list[str]) -> str:
    path = fsio.join(config.out, "stats.json")
    entries = len(load_metadata(config.metadata))
    fsio.atomic_write_json(path, stats_document(items, config, files, entries))
    return path


def _count(pcoll: beam.PCollection, label: str, key_fn) -> beam.PCollection:
    return (pcoll | f"{label}Key" >> beam.Map(lambda x: (key_fn(x), 1))
            | f"{label}Sum" >> beam.CombinePerKey(sum))


class Crawl(beam.PTransform):
    """The whole stage; applied to a pipeline root, returns the path of stats.json (a
    one-element PCollection, written after the Parquet outputs are final)."""

    def __init__(self, config: CrawlConfig):
        super().__init__()
        self.config = config

    def expand(self, pbegin: beam.pvalue.PBegin) -> beam.PCollection:
        c = self.config
        matcher = shared.Shared()
        pair_sets, stat_sets = [], []
        for source, paths in (("warc", c.warc), ("wat", c.wat), ("urls", c.url_lists)):
            if not paths:
                continue
            read = (pbegin | f"List{source}" >> beam.Create(sorted(paths))
                    | f"Spread{source}" >> beam.Reshuffle()
                    | f"Read{source}" >> beam.ParDo(ReadFiles(source, c, matcher)).with_outputs(
                        STATS, main="pairs"))
            pair_sets.append(read.pairs)
            stat_sets.append(read[STATS])
        if c.seeds:
            sites = (pbegin | "ListSeeds" >> beam.Create(sorted(c.seeds))
                     | "BySite" >> beam.Map(lambda u: (site_of(u), u))
                     | "GroupSites" >> beam.GroupByKey()
                     | "CrawlSites" >> beam.ParDo(CrawlSites(c, matcher)).with_outputs(
                         STATS, main="pairs"))
            pair_sets.append(sites.pairs)
            stat_sets.append(sites[STATS])
        if not pair_sets:
            pair_sets.append(pbegin | "NoSources" >> beam.Create([]))

        found = pair_sets | "AllMatched" >> beam.Flatten()
        unique = (found
                  | "ByUid" >> beam.Map(lambda m: (m[0], (m[1], m[2])))
                  | "Dedup" >> beam.CombinePerKey(KeepFirst()))
        stat_sets.append(
            unique | "DupStats" >> beam.FlatMap(
                lambda kv: [((kv[1][0][0][3], "matched"), 1)]
                + ([((kv[1][0][0][3], "duplicates"), kv[1][1] - 1)] if kv[1][1] > 1 else [])))
        matched = unique | "Unique" >> beam.MapTuple(lambda uid, acc: (uid, *acc[0]))

        # every matched text counts its entries (MetaCLIP), so an image whose alt and title
        # both name an entry counts twice for it
        counts = (matched | "EntryIds" >> beam.FlatMap(
                      lambda m: [e for _, ids in m[2] for e in ids])
                  | "CountEntries" >> beam.combiners.Count.PerElement())
        kept = matched | "Balance" >> beam.ParDo(Balance(c.t, c.seed),
                                                         counts=AsDict(counts))
        stat_sets.append(_count(kept, "Kept", lambda row: (row["source"], "kept")))

        part_files = kept | "WriteCandidates" >> WriteCandidates(c.out, c.num_shards,
                                                                 c.rows_per_part)
        count_file = (pbegin | "One" >> beam.Create([None])
                      | "WriteEntryCounts" >> beam.Map(_write_entry_counts, config=c,
                                                       counts=AsDict(counts)))
        files = (part_files, count_file) | "OutputFiles" >> beam.Flatten()
        return (stat_sets | "AllStats" >> beam.Flatten()
                | "SumStats" >> beam.CombinePerKey(sum)
                | "CollectStats" >> beam.combiners.ToList()
                | "WriteStats" >> beam.Map(_write_stats, config=c, files=AsList(files)))


def read_stats(out: str) -> dict[str, Any]:
    with fsspec.open(fsio.join(out, "stats.json"), "rt", encoding="utf-8") as f:
        return json.load(f)
