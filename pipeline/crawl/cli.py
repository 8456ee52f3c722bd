"""Extract (image URL, text) candidates from WARC files, Common Crawl WAT files, a polite
live crawl from seed URLs and URL lists (any mix), match their texts against the query list
(MetaCLIP substring matching) and balance them (MetaCLIP: an entry matched by more than t
pairs keeps about t of them).

Writes OUT/candidates/: part-NNNNN-of-MMMMM.parquet (uid, url, text, texts, page_url,
source, matched_entry_ids; a row's part is a hash of its uid, rows sorted by uid, so the same inputs
and seed give byte-identical files on any runner), entry_counts.parquet (entry_id, entry,
count, p) and stats.json (per source: pages, images, with text, matched, kept, skipped
records and why), then prints a summary. Details: docs/crawl.md.
"""

from __future__ import annotations

import argparse

from pipeline.core.errors import InputError
from pipeline.core.options import add_options, from_args
from pipeline.crawl.live_crawler import CrawlerOptions
from pipeline.crawl.transform import CrawlConfig

USES_BEAM = True


def add_arguments(parser: argparse.ArgumentParser) -> None:
    # every option, its type, default and help: CrawlConfig's and CrawlerOptions' fields
    add_options(parser, CrawlConfig, CrawlerOptions)


def config_from_args(args: argparse.Namespace) -> CrawlConfig:
    crawler = from_args(CrawlerOptions, args, max_page_bytes=args.max_page_bytes)
    config: CrawlConfig = from_args(CrawlConfig, args, crawler=crawler)
    if not (config.warc or config.wat or config.url_lists or config.seeds):
        raise InputError("no sources: pass --warc, --wat, --seeds and/or --urls "
                         "(see wit crawl --help)")
    return config


def run(args: argparse.Namespace, beam_args: list[str]) -> int:
    from pipeline.crawl import job

    job.run(config_from_args(args), beam_args)
    return 0
