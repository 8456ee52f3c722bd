"""Article titles for the query list: by summed pageviews of one language's Wikipedia (``en``
unless ``wit queries --worldwide`` asks for another; ``TitlesByPageviews``) or,
without pageview files, by in-links inside the dump (``TitlesByInlinks``, links to a
redirect counted for its target). Every input is sharded by title."""

from __future__ import annotations

from collections import Counter

import apache_beam as beam
import fsspec
from apache_beam import pvalue

from pipeline.core.errors import InputError
from queries import pageviews as pv
from queries.sharding import MergeCounts, frequent, split_counts


class ReadPageviewsFn(beam.DoFn):
    """A pageview file -> (title, views) partial sums, and a stats dictionary."""

    def __init__(self, min_hourly: int, shards: int, language: str = pv.DOMAIN):
        self.min_hourly, self.shards, self.language = min_hourly, shards, language

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
                    hit = pv.title_views(line, self.min_hourly, self.language)
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


def resolve_redirects(joined, shards: int):
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


def existing_articles(joined, min_inlinks: int):
    """Shard s: resolved link counts + article titles in s -> (title, in-links) for the
    articles of the dump (no namespace prefix) linked at least ``min_inlinks`` times."""
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
            | "Resolve" >> beam.FlatMap(resolve_redirects, self.shards)
            | "SumResolved" >> beam.CombinePerKey(MergeCounts())
        )
        return (
            {"counts": resolved, "articles": articles}
            | "JoinArticles" >> beam.CoGroupByKey()
            | "KeepArticles" >> beam.FlatMap(existing_articles, self.min_inlinks)
        )


class TitlesByPageviews(beam.PTransform):
    """Titles with summed pageviews of ``language``'s Wikipedia >= min_views; returns
    (titles, stats)."""

    def __init__(self, min_views: int, min_hourly: int, shards: int,
                 language: str = pv.DOMAIN):
        super().__init__()
        self.min_views, self.min_hourly, self.shards = min_views, min_hourly, shards
        self.language = language

    def expand(self, paths):
        parts = paths | "ReadPageviews" >> beam.ParDo(
            ReadPageviewsFn(self.min_hourly, self.shards, self.language)).with_outputs("views", "stats")
        titles = (
            parts.views
            | "SumViews" >> beam.CombinePerKey(MergeCounts())
            | "MinViews" >> beam.FlatMap(frequent, self.min_views)
        )
        return titles, parts.stats
