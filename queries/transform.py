"""The ``queries`` Beam pipeline as composite PTransforms.

    dumps ──CountDumps──► unigram / bigram / link partial counts, titles, redirects, stats
                          │ CombinePerKey(sum) (spreads over workers)
    unigrams ≥ min_count, bigrams with PMI ≥ min_pmi (two joins for c(a), c(b); bigrams
    that cannot reach min_pmi are dropped after the first),
    titles by pageviews (or by in-links inside the dump) ──► WriteQueries (one worker)

Parallelism is per dump file (Wikimedia publishes English Wikipedia in dozens of parts);
pages are processed where they are read, so page texts are never shuffled and memory on a
worker is one page plus bounded partial-count dictionaries.
"""

from __future__ import annotations

import logging
import math
import zlib
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import apache_beam as beam
import fsspec
from apache_beam import pvalue
from apache_beam.metrics import Metrics

from pipeline.core.cliargs import finite_float, non_negative_int, positive_int
from pipeline.core.errors import InputError
from pipeline.core.options import option
from pipeline.core.progress import Progress
from queries import pageviews as pv
from queries.dump import MAIN_NAMESPACE, iter_pages
from queries.option_values import parse_sources
from queries.select import pmi
from queries.tokenize import count_text
from queries.wikitext import normalize_title, to_plain_text
from schemas.queries import SOURCES

log = logging.getLogger(__name__)


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
        help="Wikimedia hourly pageview files (pageviews-YYYYMMDD-HH0000[.gz]); without them "
             "titles are ranked by in-links inside the dump")
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
                            help="titles whose summed en pageviews reach this")
    min_hourly_views: int = option(pv.MIN_HOURLY_VIEWS, type=non_negative_int,
                                   help="hourly pageview counts below this are ignored")
    min_inlinks: int = option(50, type=non_negative_int,
                              help="without pageviews: titles linked from at least this many "
                                   "article links in the dump")
    max_entries: int = option(500_000, type=positive_int,
                              help="cap on the list, filled in source order")
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


# Counts travel as sharded dictionaries: (shard, {key: count}) with shard = crc32(key) % S.
# One Beam element per shard instead of one per word keeps Beam's per-element cost (~20 µs)
# off the hot path, while CombinePerKey over shards still spreads the work over workers.
# crc32, not hash(): Python's str hash differs between worker processes.
def shard_of(key: str, shards: int) -> int:
    return zlib.crc32(key.encode("utf-8")) % shards


def split_counts(counts: Counter, shards: int, key_of=None) -> Iterator[tuple[int, dict]]:
    """Split a dictionary into per-shard dictionaries (by ``key_of(key)``, default the key)."""
    parts: dict[int, dict] = {}
    for key, value in counts.items():
        shard = shard_of(key_of(key) if key_of else key, shards)
        part = parts.get(shard)
        if part is None:
            part = parts[shard] = {}
        part[key] = value
    return iter(sorted(parts.items()))


# One shard per this many bytes of XML keeps a shard's summed dictionary (distinct keys /
# shards) about the same size whatever the dump size: ~1M bigrams at enwiki's density.
XML_BYTES_PER_SHARD = 256 << 20
MIN_SHARDS = 256
COMPRESSION_RATIO = {".bz2": 4.5, ".gz": 3.5, ".xz": 5.0}  # enwiki pages-articles XML


def shards_for(sizes: Iterable[tuple[str, int]]) -> int:
    """Shard count for dump files ``(path, stored bytes)``: at least MIN_SHARDS, one per
    XML_BYTES_PER_SHARD of (estimated) XML, so per-shard state stays flat as dumps grow."""
    xml = 0.0
    for path, size in sizes:
        ratio = next((r for ext, r in COMPRESSION_RATIO.items() if path.lower().endswith(ext)),
                     1.0)
        xml += size * ratio
    return max(MIN_SHARDS, math.ceil(xml / XML_BYTES_PER_SHARD))


def observe(name: str, value: int) -> None:
    """The size of one piece of per-element state, as a Beam distribution (max/mean are
    what bench/scale.py reports as the job's own memory, apart from the runner's)."""
    Metrics.distribution("wit.queries", name).update(value)


def first_word(bigram: str) -> str:
    return bigram.split(" ", 1)[0]


class MergeCounts(beam.CombineFn):
    """Sum of ``{key: count}`` dictionaries (one shard's partial counts)."""

    def create_accumulator(self) -> Counter:
        return Counter()

    def add_input(self, acc: Counter, value: dict) -> Counter:
        acc.update(value)
        return acc

    def merge_accumulators(self, accs: Iterable[Counter]) -> Counter:
        accs = iter(accs)
        total = next(accs)
        for acc in accs:
            total.update(acc)
        return total

    def extract_output(self, acc: Counter) -> dict:
        return dict(acc)


class SumDicts(MergeCounts):
    """Element-wise sum of ``{name: number}`` dictionaries (the job's counters), sorted."""

    def extract_output(self, acc: Counter) -> dict:
        return dict(sorted(acc.items()))


class CountDumpFn(beam.DoFn):
    """A dump path -> sharded partial counts of unigrams, bigrams and links, plus
    article titles, redirects and a stats dictionary. Counts are combined in memory and
    flushed when a dictionary exceeds ``flush_keys`` keys."""

    def __init__(self, bigrams: bool, links: bool, flush_keys: int, shards: int):
        self.bigrams, self.links = bigrams, links
        self.flush_keys, self.shards = flush_keys, shards

    def _flush(self, tag: str, counts: Counter, key_of=None) -> Iterator[pvalue.TaggedOutput]:
        observe(f"flushed_{tag}_keys", len(counts))
        for part in split_counts(counts, self.shards, key_of):
            yield pvalue.TaggedOutput(tag, part)
        counts.clear()

    def process(self, path: str) -> Iterator[Any]:
        stats: Counter = Counter(files=1)
        unigrams: Counter = Counter()
        bigrams: Counter = Counter()
        links: Counter = Counter()
        redirects: dict[str, str] = {}
        articles: Counter = Counter()
        try:
            size = fsspec.get_fs_token_paths(path)[0].size(fsspec.core.strip_protocol(path))
        except Exception:  # noqa: BLE001 - progress total only
            size = None
        stats["compressed_bytes"] = size or 0
        progress = Progress(f"reading {path.rsplit('/', 1)[-1]}", total=size, unit="B",
                            unit_scale=True)
        last = [0]

        def on_progress(position: int) -> None:
            progress.update(position - last[0])
            last[0] = position

        skipped: Counter = Counter()  # malformed <page>s, by reason
        for page, namespaces in iter_pages(path, on_progress, skipped):
            stats["pages"] += 1
            if page.namespace != MAIN_NAMESPACE:
                stats["other_namespace_pages"] += 1
                continue
            if page.redirect:
                stats["redirects"] += 1
                if self.links:
                    redirects[normalize_title(page.title)] = normalize_title(page.redirect)
                continue
            try:
                text, page_links = to_plain_text(page.text, namespaces)
            except Exception as exc:  # noqa: BLE001 - one bad page must not stop the dump
                log.warning("%s: page %r: wikitext not parsed (%s)", path, page.title, exc)
                stats["unparsable_pages"] += 1
                continue
            stats["articles"] += 1
            stats["text_chars"] += len(text)
            stats["tokens"] += count_text(text, unigrams, bigrams if self.bigrams else None)
            if self.links:
                articles[normalize_title(page.title)] = 1
                links.update(filter(None, map(normalize_title, page_links)))
            if len(unigrams) > self.flush_keys:
                yield from self._flush("unigram", unigrams)
            if len(bigrams) > self.flush_keys:
                yield from self._flush("bigram", bigrams)
            if len(links) + len(articles) + len(redirects) > self.flush_keys:
                yield from self._flush("link", links)
                yield from self._flush("article", articles)
                yield from self._flush("redirect", redirects)  # type: ignore[arg-type]
        progress.close()
        for reason, n in skipped.items():  # pages = articles + redirects + ... + skipped
            stats["pages"] += n
            stats[f"skipped_pages_{reason}"] += n
        yield from self._flush("unigram", unigrams)
        yield from self._flush("bigram", bigrams)
        yield from self._flush("link", links)
        yield from self._flush("article", articles)
        yield from self._flush("redirect", redirects)  # type: ignore[arg-type]
        yield pvalue.TaggedOutput("stats", dict(stats))


class CountDumps(beam.PTransform):
    """Dump paths -> {unigram, bigram, link: (shard, summed counts), article, redirect:
    (shard, dict) chunks, stats: per-file counters}."""

    def __init__(self, config: QueryConfig):
        super().__init__()
        self.config = config

    def expand(self, paths):
        cfg = self.config
        parts = paths | "CountPages" >> beam.ParDo(CountDumpFn(
            "bigram" in cfg.sources, cfg.title_rule == "inlinks", cfg.flush_keys, cfg.shards,
        )).with_outputs("unigram", "bigram", "link", "article", "redirect", "stats")
        return {
            "unigram": parts.unigram | "SumUnigrams" >> beam.CombinePerKey(MergeCounts()),
            "bigram": parts.bigram | "SumBigrams" >> beam.CombinePerKey(MergeCounts()),
            "link": parts.link | "SumLinks" >> beam.CombinePerKey(MergeCounts()),
            "article": parts.article,
            "redirect": parts.redirect,
            "stats": parts.stats,
        }


def frequent(shard_counts, min_count: int) -> Iterator[tuple[str, int]]:
    """(shard, {key: count}) -> (key, count) for counts >= min_count."""
    _, counts = shard_counts
    for key, count in counts.items():
        if count >= min_count:
            yield key, count


def max_first_count(total: int, min_pmi: float) -> float:
    """The largest c(a) a bigram ``a b`` can have and still reach ``min_pmi``: c(a b) <= c(b)
    gives PMI(a b) <= log2(N / c(a)). (With a small margin for float rounding.)"""
    if total <= 0:
        return math.inf
    return total / 2.0 ** (min_pmi - 1e-9)


def by_first_word(shard_counts, min_count: int, shards: int) -> Iterator[tuple[int, dict]]:
    """One shard of summed bigram counts (sharded by the whole bigram, so no shard is hot)
    -> the bigrams with count >= min_count, split by the shard of their first word. Each
    piece is at most one summed shard, so a first word as common as "the" arrives in many
    bounded pieces instead of one dictionary holding all its bigrams."""
    _, counts = shard_counts
    observe("bigram_shard_keys", len(counts))
    kept = Counter({bigram: n for bigram, n in counts.items() if n >= min_count})
    return split_counts(kept, shards, first_word)


def _with_first_count(joined, min_count: int, shards: int, total: int = 0,
                      min_pmi: float = -math.inf):
    """Shard s: pieces of bigram counts whose first word is in s + that shard's word counts
    -> (shard of the second word, [(bigram, count, c(a)), ...]) for the bigrams with
    count >= min_count that can still reach min_pmi (c(a) <= N / 2^min_pmi): pruned here,
    after the global sum and before the second shuffle, which then carries only those.
    The pieces are iterated one at a time; only the survivors are held."""
    _, grouped = joined
    words: dict = {}
    for counts in grouped["words"]:
        words = counts
    limit = max_first_count(total, min_pmi)
    out: dict[int, list] = {}
    for counts in grouped["bigrams"]:
        for bigram, count in counts.items():
            if count >= min_count:
                a, b = bigram.split(" ", 1)
                count_a = words[a]
                if count_a <= limit:
                    out.setdefault(shard_of(b, shards), []).append((bigram, count, count_a))
    observe("unigram_shard_keys", len(words))
    observe("bigram_survivors", sum(len(records) for records in out.values()))
    return sorted(out.items())


def _scored(joined, total: int, min_pmi: float):
    """Shard s: [(bigram, count, c(a))] whose second word is in s + that shard's word counts
    -> (bigram, count, PMI) for PMI >= min_pmi."""
    _, grouped = joined
    words: dict = {}
    for counts in grouped["words"]:
        words = counts
    observe("unigram_shard_keys", len(words))
    for records in grouped["partial"]:
        observe("bigram_partial_records", len(records))
        for bigram, count, count_a in records:
            score = pmi(count, count_a, words[bigram.split(" ", 1)[1]], total)
            if score >= min_pmi:
                yield bigram, count, score


class ScoreBigrams(beam.PTransform):
    """Bigram counts (summed per shard of the whole bigram) + sharded word counts + total
    tokens -> (bigram, count, PMI) for bigrams with count >= min_count and PMI >= min_pmi:
    re-split by first word, joined with c(a) and pruned by the PMI bound, then joined with
    c(b) by second word and scored."""

    def __init__(self, min_count: int, min_pmi: float, shards: int):
        super().__init__()
        self.min_count, self.min_pmi, self.shards = min_count, min_pmi, shards

    def expand(self, inputs):
        bigrams, unigrams, total = inputs
        by_first = bigrams | "ByFirstWord" >> beam.FlatMap(by_first_word, self.min_count,
                                                           self.shards)
        with_first = (
            {"bigrams": by_first, "words": unigrams}
            | "JoinFirstWord" >> beam.CoGroupByKey()
            | "AttachFirst" >> beam.FlatMap(_with_first_count, self.min_count, self.shards,
                                            total=beam.pvalue.AsSingleton(total),
                                            min_pmi=self.min_pmi)
        )
        return (
            {"partial": with_first, "words": unigrams}
            | "JoinSecondWord" >> beam.CoGroupByKey()
            | "ScorePMI" >> beam.FlatMap(_scored, total=beam.pvalue.AsSingleton(total),
                                         min_pmi=self.min_pmi)
        )


class ReadPageviewsFn(beam.DoFn):
    """A pageview file -> (title, views) partial sums, and a stats dictionary."""

    def __init__(self, min_hourly: int, shards: int):
        self.min_hourly, self.shards = min_hourly, shards

    def process(self, path: str):
        views: Counter = Counter()
        stats: Counter = Counter(pageview_files=1)
        try:
            with fsspec.open(path, "rt", encoding="utf-8", errors="replace",
                             compression="infer") as f:
                for line in f:
                    if not line.strip():
                        continue
                    stats["pageview_lines"] += 1
                    if pv.parse_line(line) is None:
                        stats["pageview_bad_lines"] += 1
                        continue
                    hit = pv.title_views(line, self.min_hourly)
                    if hit is not None:
                        views[hit[0]] += hit[1]
        except (OSError, EOFError, UnicodeError) as exc:
            raise InputError(f"{path}: unreadable pageview file ({exc})") from exc
        if stats["pageview_lines"] and stats["pageview_bad_lines"] == stats["pageview_lines"]:
            raise InputError(f"{path}: not a pageview file (no line of the form "
                             "'domain_code page_title count_views total_response_size')")
        for part in split_counts(views, self.shards):
            yield pvalue.TaggedOutput("views", part)
        yield pvalue.TaggedOutput("stats", dict(stats))


def _resolve_redirects(joined, shards: int):
    """Shard s: link counts of targets in s + redirects from titles in s -> counts
    re-sharded by the resolved target (a link to a redirect counts for its target)."""
    _, grouped = joined
    redirects: dict = {}
    for part in grouped["redirects"]:
        redirects.update(part)
    resolved: Counter = Counter()
    for counts in grouped["links"]:
        for target, count in counts.items():
            resolved[redirects.get(target, target)] += count
    return split_counts(resolved, shards)


def _existing_articles(joined, min_inlinks: int):
    _, grouped = joined
    articles: set = set()
    for part in grouped["articles"]:
        articles.update(part)
    for counts in grouped["counts"]:
        for title, count in counts.items():
            if count >= min_inlinks and title in articles and ":" not in title:
                yield title, count


class TitlesByInlinks(beam.PTransform):
    """Article titles linked from at least ``min_inlinks`` article links (links to a
    redirect count for its target); all inputs sharded by title."""

    def __init__(self, min_inlinks: int, shards: int):
        super().__init__()
        self.min_inlinks, self.shards = min_inlinks, shards

    def expand(self, parts):
        links, redirects, articles = parts
        resolved = (
            {"links": links, "redirects": redirects}
            | "JoinRedirects" >> beam.CoGroupByKey()
            | "Resolve" >> beam.FlatMap(_resolve_redirects, self.shards)
            | "SumResolved" >> beam.CombinePerKey(MergeCounts())
        )
        return (
            {"counts": resolved, "articles": articles}
            | "JoinArticles" >> beam.CoGroupByKey()
            | "KeepArticles" >> beam.FlatMap(_existing_articles, self.min_inlinks)
        )


class TitlesByPageviews(beam.PTransform):
    """Titles with summed ``en`` pageviews >= min_views; returns (titles, stats)."""

    def __init__(self, min_views: int, min_hourly: int, shards: int):
        super().__init__()
        self.min_views, self.min_hourly, self.shards = min_views, min_hourly, shards

    def expand(self, paths):
        parts = paths | "ReadPageviews" >> beam.ParDo(
            ReadPageviewsFn(self.min_hourly, self.shards)).with_outputs("views", "stats")
        titles = (
            parts.views
            | "SumViews" >> beam.CombinePerKey(MergeCounts())
            | "MinViews" >> beam.FlatMap(frequent, self.min_views)
        )
        return titles, parts.stats
