"""The crawl stage as one composite PTransform, read top-down in :class:`Crawl`:

    sources ──ReadSources──► MatchedPair (matched where read) + (StatKey, n) counters
    MatchedPair ──ByUid, Dedup──► (uid, FirstCopy) ──Unique──► one MatchedPair per uid
    MatchedPair ──EntryIds, CountEntries──► (entry id, count)   (MetaCLIP's global counts)
    MatchedPair + counts ──Balance──► kept row (a CANDIDATES dict)
    kept rows ──WriteCandidates──► part-*.parquet;  counts ──► entry_counts.parquet
    (StatKey, n) ──SumStats──► stats.json (written last, after the Parquet files)

Every counter travels as data (``((source, counter), n)`` elements summed by a combine), so
``stats.json`` is exact on any runner. The automaton is built in ``DoFn.setup`` from the
metadata path (once per worker), the balancing draw hashes ``(seed, uid)``, and the part
files are canonical (:mod:`pipeline.crawl.writer`: part by a hash of the uid, rows sorted by
uid): the same inputs and seed give byte-identical candidates on any runner and number of
workers, in whatever order pages and rows arrive.
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import apache_beam as beam
from apache_beam.coders import Coder, registry
from apache_beam.metrics import Metrics
from apache_beam.pvalue import AsDict, AsList, AsSingleton, TaggedOutput
from apache_beam.utils import shared

from pipeline.core.cliargs import non_negative_int, output_dir, positive_int
from pipeline.core.options import option
from pipeline.core.progress import Progress
from pipeline.core.takedown_list import TakedownList, read_lists
from pipeline.crawl.balancing import DEFAULT_T, keep_texts
from pipeline.crawl.elements import FirstCopy, MatchedPair, TextMatch
from pipeline.crawl.html_extract import TEXT_FIELDS
from pipeline.crawl.live_crawler import CrawlerOptions, crawl_site_pairs, site_of
from pipeline.crawl.matching import Matcher, load_metadata
from pipeline.crawl.option_values import (
    candidates_dir,
    files,
    parse_text_fields,
    seed_urls,
)
from pipeline.crawl.optout import DEFAULT_ROBOTS_DIRECTIVES, PageOptOut
from pipeline.crawl.pairs import DEFAULT_MAX_TEXT_CHARS, Pair, pair_uid
from pipeline.crawl.stats import StatKey, write_stats
from pipeline.crawl.url_lists import url_list_pairs
from pipeline.crawl.warc_source import DEFAULT_MAX_PAGE_BYTES, warc_pairs
from pipeline.crawl.wat import wat_pairs
from pipeline.crawl.worldwide_metadata import load_worldwide_metadata
from pipeline.crawl.worldwide_routing import WorldwideRouter
from pipeline.crawl.worldwide_transform import BalanceWorldwide
from pipeline.crawl.writer import (
    ROWS_PER_PART,
    num_parts,
    part_of,
    write_entry_counts,
    write_part,
)
from schemas.status import REMOVED

STATS = "stats"  # the tag of the source DoFns' counter output
SOURCES = "sources (any mix; at least one)"  # option group of --warc, --wat, --seeds, --urls
PartKey = tuple[int, int]  # (part, parts): the key rows are grouped by for one part file


@dataclass(frozen=True)
class CrawlConfig:
    """Everything the stage needs; paths are fsspec paths readable by the workers. The
    fields declared with ``option`` are ``wit crawl``'s command line, defaults included."""

    metadata: str = option(required=True, help="the query list: a JSON list of strings "
                                               "(OUT/queries/metadata.json); with "
                                               "--worldwide, the index of the per-language "
                                               "lists (OUT/queries/worldwide/index.json)")
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
                         "each with probability t/count; with --worldwide, English's "
                         "threshold t_en (each language's is derived from it)")
    worldwide: bool = option(False, help="MetaCLIP 2's worldwide curation: --metadata is "
                                         "the index.json of per-language query lists; every "
                                         "text is routed by its language (fastText lid.176) "
                                         "and matched against that language's list, counts "
                                         "and thresholds are per language, and each image "
                                         "keeps one matched text drawn at random "
                                         "(docs/crawl.md)")
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
    exclude: tuple[str, ...] = option(
        (), append=True, metavar="FILE",
        help="a takedown list or OUT/shards/removals.jsonl (format: 'wit takedown --help'); "
             "repeatable. Pairs whose image URL, page URL or domain it names are dropped "
             "(counted 'removed') and the live crawler fetches no such page (counted "
             "skipped:removed); its "
             "sha256/phash entries act in 'wit shards --exclude' (default: none)")
    robots_meta_directives: tuple[str, ...] = option(
        DEFAULT_ROBOTS_DIRECTIVES, nargs="*", metavar="DIRECTIVE",
        help="directives of <meta name=\"robots\"> (or an X-Robots-Tag page header) that drop "
             "every image of the page (opted_out:robots_meta / opted_out:x_robots_tag in "
             "stats.json); give the option with no value to ignore them")
    respect_tdmrep: bool = option(
        True, flag="--ignore-tdmrep",
        help="do not honour TDMRep on pages: the tdm-reservation header and "
             "<meta name=\"tdm-reservation\" content=\"1\">, and for the live crawler the "
             "origin's /.well-known/tdmrep.json (default: honoured; the page's images dropped, "
             "opted_out:tdm_reservation)")
    rows_per_part: int = ROWS_PER_PART
    crawler: CrawlerOptions = field(default_factory=CrawlerOptions)

    @property
    def opt_out(self) -> PageOptOut:
        """The page-level opt-out signals honoured (docs/consent.md)."""
        token = self.crawler.user_agent.split("/", 1)[0].strip() or "webimagetext"
        return PageOptOut(tuple(self.robots_meta_directives), self.respect_tdmrep, token)


@functools.cache
def excluded_pairs(paths: tuple[str, ...]) -> TakedownList | None:
    """The ``--exclude`` lists, read once per worker process (None: no list)."""
    return read_lists(paths) if paths else None


def _stats(source: str, counts: Counter[str]) -> Iterator[TaggedOutput]:
    for key, n in sorted(counts.items()):
        yield TaggedOutput(STATS, ((source, key), n))


class MatchingSource(beam.DoFn):
    """Base of the source DoFns: pairs are matched where they are read, with an automaton
    built once per worker in ``setup``, so matching runs at the speed of a bare
    pyahocorasick loop and unmatched pairs never become pipeline elements. Each text of an
    image is matched on its own (MetaCLIP); emits a :class:`MatchedPair` for every pair
    with a text that matched, and counters (``stats``)."""

    def __init__(self, config: CrawlConfig, shared_matcher: shared.Shared | None = None):
        self.config = config
        # one automaton per worker process, shared by every source DoFn given this handle
        self.shared_matcher = shared_matcher or shared.Shared()
        self.matcher: Matcher | WorldwideRouter | None = None
        self.excluded: TakedownList | None = None

    def setup(self) -> None:
        path = self.config.metadata
        if self.config.worldwide:
            self.matcher = self.shared_matcher.acquire(
                lambda: WorldwideRouter(load_worldwide_metadata(path)), tag=f"worldwide:{path}")
        else:
            self.matcher = self.shared_matcher.acquire(lambda: Matcher(load_metadata(path)),
                                                       tag=path)
        self.excluded = excluded_pairs(self.config.exclude)

    def matched(self, pairs: Iterable[Pair], counts: Counter[str],
                label: str) -> Iterator[MatchedPair]:
        assert self.matcher is not None
        match: Callable[[int, str], TextMatch]
        if isinstance(self.matcher, WorldwideRouter):
            match = self.matcher.text_match
        else:
            match_ids = self.matcher.match
            match = lambda i, text: TextMatch(i, tuple(match_ids(text)))  # noqa: E731
        progress = Progress(f"crawl {label}", unit="pairs")
        n = 0
        excluded = self.excluded
        for pair in pairs:
            if excluded is not None and excluded.before_download(pair.url, pair.page_url):
                counts[REMOVED] += 1  # a takedown: never a candidate
                continue
            matches = tuple(found for found in (match(i, text) for i, text in
                                                enumerate(pair.texts)) if found.entry_ids)
            if matches:
                yield MatchedPair(pair_uid(pair.url, pair.texts), pair, matches)
            else:
                counts["unmatched"] += 1
            n += 1
            if n == 1000:  # keep the bar off the per-pair path
                progress.update(n)
                n = 0
        progress.update(n)
        progress.close()


class ReadFiles(MatchingSource):
    """One file path -> its MatchedPairs and its counters."""

    def __init__(self, source: str, config: CrawlConfig,
                 shared_matcher: shared.Shared | None = None):
        super().__init__(config, shared_matcher)
        self.source = source

    def process(self, path: str) -> Iterator[Any]:
        counts: Counter[str] = Counter({"files": 1})
        c = self.config
        if self.source == "warc":
            pairs: Iterable[Pair] = warc_pairs(path, counts, c.text_fields, c.max_page_bytes,
                                               c.max_text_chars, c.opt_out)
        elif self.source == "wat":
            pairs = wat_pairs(path, counts, c.text_fields, max_text_chars=c.max_text_chars,
                              opt_out=c.opt_out)
        else:
            pairs = url_list_pairs(path, counts, c.url_col, c.caption_col, c.max_text_chars)
        yield from self.matched(pairs, counts, f"{self.source} {path.rsplit('/', 1)[-1]}")
        yield from _stats(self.source, counts)


class CrawlSites(MatchingSource):
    """``(site, seed URLs)`` -> MatchedPairs of the pages crawled on that site, and
    counters. One site is crawled by one worker, so per-host politeness holds locally."""

    def process(self, element: tuple[str, Iterable[str]]) -> Iterator[Any]:
        site, seeds = element
        counts: Counter[str] = Counter({"sites": 1})
        c = self.config
        excluded = excluded_pairs(c.exclude)
        skip_page = (lambda url: excluded.before_download(None, url) is not None) \
            if excluded is not None else None
        pairs = crawl_site_pairs(sorted(set(seeds)), c.crawler, counts, c.text_fields,
                                 c.max_text_chars, skip_page, c.opt_out)
        yield from self.matched(pairs, counts, f"live {site}")
        yield from _stats("live", counts)


class ReadSources(beam.PTransform):
    """Pipeline root -> (MatchedPairs of every source, ``(StatKey, n)`` counters). Files
    are spread over workers one path at a time; seed URLs are grouped by site."""

    def __init__(self, config: CrawlConfig):
        super().__init__()
        self.config = config

    # returns (matched pairs, stats); no return annotation: Beam 2.78 reads it as an output
    # type hint and warns on stderr that a tuple of PCollections is not one
    def expand(self, pbegin: beam.pvalue.PBegin):
        c = self.config
        matcher = shared.Shared()  # one automaton per worker for all the sources
        matched_sets, stat_sets = [], []
        for source, paths in (("warc", c.warc), ("wat", c.wat), ("urls", c.url_lists)):
            if not paths:
                continue
            read = (pbegin | f"List{source}" >> beam.Create(sorted(paths))
                    | f"Spread{source}" >> beam.Reshuffle()
                    | f"Read{source}" >> beam.ParDo(ReadFiles(source, c, matcher)).with_outputs(
                        STATS, main="pairs"))
            matched_sets.append(read.pairs)
            stat_sets.append(read[STATS])
        if c.seeds:
            sites = (pbegin | "ListSeeds" >> beam.Create(sorted(c.seeds))
                     | "BySite" >> beam.Map(lambda url: (site_of(url), url))
                     | "GroupSites" >> beam.GroupByKey()
                     | "CrawlSites" >> beam.ParDo(CrawlSites(c, matcher)).with_outputs(
                         STATS, main="pairs"))
            matched_sets.append(sites.pairs)
            stat_sets.append(sites[STATS])
        if not matched_sets:
            matched_sets.append(pbegin | "NoSources" >> beam.Create([]))
            stat_sets.append(pbegin | "NoStats" >> beam.Create([]))
        return (matched_sets | "AllMatched" >> beam.Flatten(),
                stat_sets | "AllSourceStats" >> beam.Flatten())


def _copy_order(m: MatchedPair) -> tuple[str, str, str, str, str, int, str, tuple[str, ...]]:
    """The copy kept: by source, page and image, then provenance, so that two copies of
    one page (two WARC files, two fetches) keep the same one on every runner."""
    p = m.pair
    return (p.source, p.page_url or "", p.url, p.text, p.source_file or "",
            -1 if p.source_offset is None else p.source_offset, p.fetch_time or "",
            p.page_licenses)


@beam.typehints.with_input_types(MatchedPair)
@beam.typehints.with_output_types(FirstCopy)
class KeepFirst(beam.CombineFn):
    """Dedup of one uid: MatchedPairs -> their FirstCopy."""

    def create_accumulator(self) -> FirstCopy:
        return FirstCopy(None, 0)

    @staticmethod
    def _first(a: MatchedPair | None, b: MatchedPair | None) -> MatchedPair | None:
        if a is None:
            return b
        if b is None:
            return a
        return min(a, b, key=_copy_order)

    def add_input(self, acc: FirstCopy, value: MatchedPair) -> FirstCopy:
        return FirstCopy(self._first(acc.first, value), acc.copies + 1)

    def merge_accumulators(self, accs: Iterable[FirstCopy]) -> FirstCopy:
        first, copies = None, 0
        for acc in accs:
            first, copies = self._first(first, acc.first), copies + acc.copies
        return FirstCopy(first, copies)

    def extract_output(self, acc: FirstCopy) -> FirstCopy:
        return acc

    def get_accumulator_coder(self) -> Coder:
        return registry.get_coder(FirstCopy)


def _dedup_stats(element: tuple[str, FirstCopy]) -> list[tuple[StatKey, int]]:
    """``matched`` once per uid, and ``duplicates`` for its other copies, by the source of
    the copy kept."""
    _, (first, copies) = element
    assert first is not None  # every uid was seen at least once
    source = first.pair.source
    return [((source, "matched"), 1)] + ([((source, "duplicates"), copies - 1)]
                                         if copies > 1 else [])


class Balance(beam.DoFn):
    """A MatchedPair -> its candidate row, if any text survives balancing: each matched
    text is kept with probability ``1 - prod(1 - p_e)``, drawn from (seed, uid, text
    index) (:func:`pipeline.crawl.balancing.keep_texts`); the image is kept with its kept
    texts, the first of them as ``text``."""

    def __init__(self, t: int, seed: int):
        self.t, self.seed = t, seed

    def process(self, element: MatchedPair,
                counts: dict[int, int]) -> Iterator[dict[str, Any]]:
        uid, pair, matches = element
        kept = set(keep_texts(uid, ((m.text_index, m.entry_ids) for m in matches), counts,
                              self.t, self.seed))
        if not kept:
            return
        kept_texts = [pair.texts[m.text_index] for m in matches if m.text_index in kept]
        entry_ids = {e: None for m in matches if m.text_index in kept
                     for e in m.entry_ids}  # an ordered set
        yield {"uid": uid, "url": pair.url, "text": kept_texts[0], "texts": kept_texts,
               "page_url": pair.page_url, "source": pair.source,
               "matched_entry_ids": list(entry_ids), "source_file": pair.source_file,
               "source_offset": pair.source_offset, "fetch_time": pair.fetch_time,
               "page_licenses": list(pair.page_licenses)}


class WriteParts(beam.DoFn):
    """``(PartKey, rows)`` -> the part file's path. The rows of one part are held and
    sorted in memory by one worker: ``rows_per_part`` (or ``--num-shards``) bounds that."""

    def __init__(self, out: str):
        self.out = out

    def process(self, element: tuple[PartKey, Iterable[Any]]) -> Iterator[str]:
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


def metadata_entries(config: CrawlConfig) -> int:
    """Entries of the query list, or of every language's list with --worldwide."""
    if config.worldwide:
        return sum(len(v) for v in load_worldwide_metadata(config.metadata).values())
    return len(load_metadata(config.metadata))


def _write_stats(items: list[tuple[StatKey, int]], config: CrawlConfig,
                 files: list[str]) -> str:
    return write_stats(items, config, files, metadata_entries(config))


class Crawl(beam.PTransform):
    """The whole stage; applied to a pipeline root, returns the path of stats.json (a
    one-element PCollection, written after the Parquet outputs are final)."""

    def __init__(self, config: CrawlConfig):
        super().__init__()
        self.config = config

    def expand(self, pbegin: beam.pvalue.PBegin) -> beam.PCollection:
        c = self.config
        # every source, matched where it is read: MatchedPairs, (StatKey, n) counters
        matched_pairs, source_stats = pbegin | "ReadSources" >> ReadSources(c)

        # the same image and texts from several pages or sources count once: (uid, FirstCopy)
        first_copies = (matched_pairs
                        | "ByUid" >> beam.Map(lambda m: (m.uid, m)).with_output_types(
                            tuple[str, MatchedPair])
                        | "Dedup" >> beam.CombinePerKey(KeepFirst()).with_output_types(
                            tuple[str, FirstCopy]))
        dedup_stats = first_copies | "DupStats" >> beam.FlatMap(_dedup_stats)
        unique_pairs = first_copies | "Unique" >> beam.MapTuple(
            lambda _, acc: acc.first).with_output_types(MatchedPair)

        if c.worldwide:  # MetaCLIP 2: counts and thresholds per language
            kept_rows, count_files = unique_pairs | "BalanceWorldwide" >> BalanceWorldwide(
                c.out, c.metadata, c.t, c.seed)
            return self.write(kept_rows, count_files, source_stats, dedup_stats)

        # every matched text counts its entries (MetaCLIP), so an image whose alt and title
        # both name an entry counts twice for it: (entry id, count)
        entry_counts = (unique_pairs
                        | "EntryIds" >> beam.FlatMap(
                            lambda m: [e for match in m.matches for e in match.entry_ids])
                        | "CountEntries" >> beam.combiners.Count.PerElement())

        # balancing against the global counts: candidate rows (dicts of CANDIDATES columns)
        kept_rows = unique_pairs | "Balance" >> beam.ParDo(Balance(c.t, c.seed),
                                                           counts=AsDict(entry_counts))
        count_file = (pbegin | "One" >> beam.Create([None])
                      | "WriteEntryCounts" >> beam.Map(_write_entry_counts, config=c,
                                                       counts=AsDict(entry_counts)))
        return self.write(kept_rows, count_file, source_stats, dedup_stats)

    def write(self, kept_rows: beam.PCollection,
              count_files: beam.PCollection, source_stats: beam.PCollection,
              dedup_stats: beam.PCollection) -> beam.PCollection:
        """Kept rows -> part files; then stats.json, after every output file."""
        c = self.config
        kept_stats = (kept_rows | "KeptKey" >> beam.Map(lambda row: ((row["source"], "kept"), 1))
                      | "KeptSum" >> beam.CombinePerKey(sum))

        # the Parquet outputs: part files and the count files (paths)
        part_files = kept_rows | "WriteCandidates" >> WriteCandidates(c.out, c.num_shards,
                                                                      c.rows_per_part)
        files = (part_files, count_files) | "OutputFiles" >> beam.Flatten()

        # stats.json last: it waits for every output file (a side input), so it marks a
        # complete run
        return ((source_stats, dedup_stats, kept_stats) | "AllStats" >> beam.Flatten()
                | "SumStats" >> beam.CombinePerKey(sum)
                | "CollectStats" >> beam.combiners.ToList()
                | "WriteStats" >> beam.Map(_write_stats, config=c, files=AsList(files)))
