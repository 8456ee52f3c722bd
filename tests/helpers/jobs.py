"""The full graph of every Beam job on made-up remote paths, for tests that build graphs
without running them (the Dataflow dry run, the type check): nothing is read."""

from __future__ import annotations

from collections.abc import Callable

from pipeline.crawl.transform import Crawl, CrawlConfig
from pipeline.shards.job import ShardsOptions, transform_config
from pipeline.shards.transform import BuildShards, DownloadedShard
from queries.transform import BuildQueries, QueryConfig
from queries.worldwide_job import LanguageQueries


def every_job(root: str) -> dict[str, Callable]:
    """{job name: build(pipeline)} for queries, crawl and shards, their inputs under
    ``root`` (e.g. gs://bucket): queries on two dumps with every source, crawl from every
    kind of source, shards over two download rounds (the retry round's steps included)."""
    return {
        "queries": lambda p: p | "BuildQueries" >> BuildQueries(
            QueryConfig(wiki=(f"{root}/wiki/enwiki-pages-articles1.xml.bz2",
                              f"{root}/wiki/enwiki-pages-articles2.xml.bz2"),
                        sources=("unigram", "bigram", "title", "wordnet"), out=f"{root}/out"),
            ["cat", "dog"]),
        "crawl": lambda p: p | "Crawl" >> Crawl(CrawlConfig(
            metadata=f"{root}/out/queries/metadata.json", out=f"{root}/out/candidates",
            warc=(f"{root}/cc/a.warc.gz",), wat=(f"{root}/cc/a.warc.wat.gz",),
            url_lists=(f"{root}/lists/l.parquet",), seeds=("https://example.com/",))),
        "crawl_worldwide": lambda p: p | "Crawl" >> Crawl(CrawlConfig(
            metadata=f"{root}/out/queries/worldwide/index.json", out=f"{root}/out/candidates",
            warc=(f"{root}/cc/a.warc.gz",), url_lists=(f"{root}/lists/l.parquet",),
            worldwide=True)),
        "queries_worldwide_de": lambda p: p | "LanguageQueries" >> LanguageQueries(
            QueryConfig(out=f"{root}/out", worldwide=True), "de",
            [f"{root}/wiki/dewiki-pages-articles.xml.bz2"], f"{root}/out/queries/worldwide"),
        "shards": lambda p: p | "BuildShards" >> BuildShards(
            transform_config(ShardsOptions(candidates=f"{root}/out/candidates",
                                           out=f"{root}/out")),
            [DownloadedShard(round_, f"{root}/out/shards/_work/round{round_}", f"{i:05d}")
             for round_ in (0, 1) for i in range(3)], [12345]),
    }
