"""The ``queries`` Beam pipeline as composite PTransforms.

    dumps ──CountDumps──► unigram / bigram / link partial counts, titles, redirects, stats
                          │ CombinePerKey(sum) (spreads over workers)
    unigrams ≥ min_count, bigrams with PMI ≥ min_pmi (two joins for c(a), c(b)),
    titles by pageviews (or by in-links inside the dump) ──► WriteQueries (one worker)

Parallelism is per dump file (Wikimedia publishes English Wikipedia in dozens of parts);
pages are processed where they are read, so page texts are never shuffled and memory on a
worker is one page plus bounded partial-count dictionaries.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import apache_beam as beam
import fsspec
from apache_beam import pvalue

from pipeline.errors import InputError
from pipeline.progress import Progress
from queries import pageviews as pv
from queries.dump import MAIN_NAMESPACE, iter_pages
from queries.select import pmi
from queries.tokenize import count_text
from queries.wikitext import normalize_title, to_plain_text

LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class QueryConfig:
    wiki: tuple[str, ...] = ()
    pageviews: tuple[str, ...] = ()
    sources: tuple[str, ...] = ("wordnet", "unigram", "bigram", "title")
    min_count: int = 100
    min_pmi: float = 30.0
    min_bigram_count: int = 2
    min_views: int = 70
    min_hourly_views: int = pv.MIN_HOURLY_VIEWS
    min_inlinks: int = 50
    max_entries: int = 500_000
    flush_keys: int = 200_000  # partial-count dictionary size that triggers a flush
    wordnet_version: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def title_rule(self) -> str | None:
        if "title" not in self.sources:
            return None
        return "pageviews" if self.pageviews else "inlinks"

    @property
    def needs_dump(self) -> bool:
        return bool({"unigram", "bigram"} & set(self.sources)) or self.title_rule == "inlinks"


class SumDicts(beam.CombineFn):
    """Element-wise sum of ``{name: number}`` dictionaries (the job's counters)."""

    def create_accumulator(self) -> Counter:
        return Counter()

    def add_input(self, acc: Counter, value: dict) -> Counter:
        acc.update(value)
        return acc

    def merge_accumulators(self, accs: Iterable[Counter]) -> Counter:
        total: Counter = Counter()
        for acc in accs:
            total.update(acc)
        return total

    def extract_output(self, acc: Counter) -> dict:
        return dict(sorted(acc.items()))


def _flush(tag: str, counts: Counter) -> Iterator[pvalue.TaggedOutput]:
    for key, value in counts.items():
        yield pvalue.TaggedOutput(tag, (key, value))
    counts.clear()


class CountDumpFn(beam.DoFn):
    """A dump path -> partial counts (in-mapper combined, flushed at ``flush_keys`` keys),
    article titles, redirects and a stats dictionary."""

    def __init__(self, bigrams: bool, links: bool, flush_keys: int):
        self.bigrams, self.links, self.flush_keys = bigrams, links, flush_keys

    def process(self, path: str) -> Iterator[Any]:
        stats: Counter = Counter(files=1)
        unigrams: Counter = Counter()
        bigrams: Counter = Counter()
        links: Counter = Counter()
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

        for page, namespaces in iter_pages(path, on_progress):
            stats["pages"] += 1
            if page.namespace != MAIN_NAMESPACE:
                stats["other_namespace_pages"] += 1
                continue
            if page.redirect:
                stats["redirects"] += 1
                if self.links:
                    yield pvalue.TaggedOutput(
                        "redirect", (normalize_title(page.title), normalize_title(page.redirect)))
                continue
            try:
                text, page_links = to_plain_text(page.text, namespaces)
            except Exception as exc:  # noqa: BLE001 - one bad page must not stop the dump
                LOG.warning("%s: page %r: wikitext not parsed (%s)", path, page.title, exc)
                stats["unparsable_pages"] += 1
                continue
            stats["articles"] += 1
            stats["text_chars"] += len(text)
            stats["tokens"] += count_text(text, unigrams, bigrams if self.bigrams else None)
            if self.links:
                yield pvalue.TaggedOutput("article", normalize_title(page.title))
                for link in page_links:
                    target = normalize_title(link)
                    if target:
                        links[target] += 1
            if len(unigrams) > self.flush_keys:
                yield from _flush("unigram", unigrams)
            if len(bigrams) > self.flush_keys:
                yield from _flush("bigram", bigrams)
            if len(links) > self.flush_keys:
                yield from _flush("link", links)
        progress.close()
        yield from _flush("unigram", unigrams)
        yield from _flush("bigram", bigrams)
        yield from _flush("link", links)
        yield pvalue.TaggedOutput("stats", dict(stats))


class CountDumps(beam.PTransform):
    """Dump paths -> tagged PCollections: unigram, bigram, link (summed counts), article,
    redirect, stats (per file)."""

    def __init__(self, config: QueryConfig):
        super().__init__()
        self.config = config

    def expand(self, paths):
        cfg = self.config
        parts = paths | "CountPages" >> beam.ParDo(
            CountDumpFn("bigram" in cfg.sources, cfg.title_rule == "inlinks", cfg.flush_keys)
        ).with_outputs("unigram", "bigram", "link", "article", "redirect", "stats")
        return {
            "unigram": parts.unigram | "SumUnigrams" >> beam.CombinePerKey(sum),
            "bigram": parts.bigram | "SumBigrams" >> beam.CombinePerKey(sum),
            "link": parts.link | "SumLinks" >> beam.CombinePerKey(sum),
            "article": parts.article,
            "redirect": parts.redirect,
            "stats": parts.stats,
        }


def _with_first_count(joined):
    """(word a, {bigram: [("a b", count)], count: [c(a)]}) -> (b, ("a b", count, c(a)))."""
    _, grouped = joined
    counts = list(grouped["count"])
    if counts:
        for bigram, count in grouped["bigram"]:
            yield bigram.split(" ")[1], (bigram, count, counts[0])


def _with_second_count(joined):
    """(word b, {bigram: [("a b", count, c(a))], count: [c(b)]}) -> ("a b", count, c(a), c(b))."""
    _, grouped = joined
    counts = list(grouped["count"])
    if counts:
        for bigram, count, count_a in grouped["bigram"]:
            yield bigram, count, count_a, counts[0]


class ScoreBigrams(beam.PTransform):
    """(bigram, count) + (word, count) + total tokens -> (bigram, count, PMI) above min_pmi."""

    def __init__(self, min_count: int, min_pmi: float):
        super().__init__()
        self.min_count, self.min_pmi = min_count, min_pmi

    def expand(self, inputs):
        bigrams, unigrams, total = inputs
        frequent = bigrams | "MinBigramCount" >> beam.Filter(lambda kv, m: kv[1] >= m,
                                                               self.min_count)
        by_first = frequent | "KeyByFirst" >> beam.Map(lambda kv: (kv[0].split(" ")[0], kv))
        with_first = (
            {"bigram": by_first, "count": unigrams}
            | "JoinFirst" >> beam.CoGroupByKey()
            | "AttachFirst" >> beam.FlatMap(_with_first_count)
        )
        with_both = (
            {"bigram": with_first, "count": unigrams}
            | "JoinSecond" >> beam.CoGroupByKey()
            | "AttachSecond" >> beam.FlatMap(_with_second_count)
        )
        return (
            with_both
            | "PMI" >> beam.Map(lambda r, n: (r[0], r[1], pmi(r[1], r[2], r[3], n)),
                                n=beam.pvalue.AsSingleton(total))
            | "MinPMI" >> beam.Filter(lambda rec, m: rec[2] >= m, self.min_pmi)
        )


class ReadPageviewsFn(beam.DoFn):
    """A pageview file -> (title, views) partial sums, and a stats dictionary."""

    def __init__(self, min_hourly: int):
        self.min_hourly = min_hourly

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
        yield from _flush("views", views)
        yield pvalue.TaggedOutput("stats", dict(stats))


def _resolve_redirect(joined):
    target, grouped = joined
    count = sum(grouped["count"])
    if count:
        redirects = sorted(grouped["redirect"])
        yield (redirects[0] if redirects else target), count


def _existing_article(joined, min_inlinks: int):
    title, grouped = joined
    if not list(grouped["article"]):
        return
    count = sum(grouped["count"])
    if count >= min_inlinks and ":" not in title:
        yield title, count


class TitlesByInlinks(beam.PTransform):
    """Article titles linked from at least ``min_inlinks`` articles (links to a redirect
    count for its target)."""

    def __init__(self, min_inlinks: int):
        super().__init__()
        self.min_inlinks = min_inlinks

    def expand(self, parts):
        links, redirects, articles = parts
        resolved = (
            {"count": links, "redirect": redirects}
            | "JoinRedirects" >> beam.CoGroupByKey()
            | "Resolve" >> beam.FlatMap(_resolve_redirect)
            | "SumResolved" >> beam.CombinePerKey(sum)
        )
        return (
            {"count": resolved, "article": articles | "KeyArticle" >> beam.Map(lambda t: (t, 1))}
            | "JoinArticles" >> beam.CoGroupByKey()
            | "KeepArticles" >> beam.FlatMap(_existing_article, self.min_inlinks)
        )


class TitlesByPageviews(beam.PTransform):
    """Titles with summed ``en`` pageviews >= min_views; returns (titles, stats)."""

    def __init__(self, min_views: int, min_hourly: int):
        super().__init__()
        self.min_views, self.min_hourly = min_views, min_hourly

    def expand(self, paths):
        parts = paths | "ReadPageviews" >> beam.ParDo(
            ReadPageviewsFn(self.min_hourly)).with_outputs("views", "stats")
        titles = (
            parts.views
            | "SumViews" >> beam.CombinePerKey(sum)
            | "MinViews" >> beam.Filter(lambda kv, m: kv[1] >= m, self.min_views)
        )
        return titles, parts.stats
