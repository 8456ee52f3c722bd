"""Counting a Wikipedia dump: ``CountDumps`` turns dump paths into summed, sharded counts
of unigrams, bigrams and links, plus article titles, redirects and per-file counters. Pages
are processed where they are read (one dump file per worker), so page texts are never
shuffled and a worker holds one page plus bounded partial-count dictionaries."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterator
from typing import Any

import apache_beam as beam
import fsspec
from apache_beam import pvalue

from pipeline.core.progress import Progress
from queries import worldwide
from queries.dump import MAIN_NAMESPACE, iter_pages
from queries.sharding import MergeCounts, observe, split_counts
from queries.tokenize import count_text
from queries.wikitext import normalize_title, to_plain_text

log = logging.getLogger(__name__)


class CountDumpFn(beam.DoFn):
    """A dump path -> sharded partial counts of unigrams, bigrams and links, plus
    article titles, redirects and a stats dictionary. Counts are combined in memory and
    flushed when a dictionary exceeds ``flush_keys`` keys."""

    def __init__(self, bigrams: bool, links: bool, flush_keys: int, shards: int,
                 language: str | None = None):
        self.bigrams, self.links = bigrams, links
        self.flush_keys, self.shards = flush_keys, shards
        # set for a worldwide (MetaCLIP 2) dump: tokens of its script, segmented if needed
        self.language = language

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
            if self.language is None:
                stats["tokens"] += count_text(text, unigrams,
                                              bigrams if self.bigrams else None)
            else:
                stats["tokens"] += worldwide.count_text(text, self.language, unigrams, bigrams)
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

    def __init__(self, bigrams: bool, links: bool, flush_keys: int, shards: int,
                 language: str | None = None):
        super().__init__()
        self.bigrams, self.links = bigrams, links
        self.flush_keys, self.shards = flush_keys, shards
        self.language = language

    def expand(self, paths):
        parts = paths | "CountPages" >> beam.ParDo(CountDumpFn(
            self.bigrams, self.links, self.flush_keys, self.shards, self.language,
        )).with_outputs("unigram", "bigram", "link", "article", "redirect", "stats")
        return {
            "unigram": parts.unigram | "SumUnigrams" >> beam.CombinePerKey(MergeCounts()),
            "bigram": parts.bigram | "SumBigrams" >> beam.CombinePerKey(MergeCounts()),
            "link": parts.link | "SumLinks" >> beam.CombinePerKey(MergeCounts()),
            "article": parts.article,
            "redirect": parts.redirect,
            "stats": parts.stats,
        }
