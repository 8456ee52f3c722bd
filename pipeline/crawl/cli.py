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

import fsspec

from pipeline.core import fsio
from pipeline.core.cliargs import (
    non_negative_float,
    non_negative_int,
    output_dir,
    positive_float,
    positive_int,
)
from pipeline.core.errors import InputError
from pipeline.core.net import parse_networks
from pipeline.crawl.balancing import DEFAULT_T
from pipeline.crawl.html_extract import TEXT_FIELDS
from pipeline.crawl.live_crawler import DEFAULT_USER_AGENT, CrawlerOptions
from pipeline.crawl.pairs import DEFAULT_MAX_TEXT_CHARS
from pipeline.crawl.transform import CrawlConfig
from pipeline.crawl.warc_source import DEFAULT_MAX_PAGE_BYTES
from pipeline.crawl.writer import ROWS_PER_PART

USES_BEAM = True


def add_arguments(parser: argparse.ArgumentParser) -> None:
    src = parser.add_argument_group("sources (any mix; at least one)")
    src.add_argument("--warc", nargs="+", action="extend", default=[], metavar="FILE",
                     help="WARC files (.warc or .warc.gz, globs and fsspec URLs allowed)")
    src.add_argument("--wat", nargs="+", action="extend", default=[], metavar="FILE",
                     help="Common Crawl WAT files (.warc.wat.gz)")
    src.add_argument("--seeds", nargs="+", action="extend", default=[], metavar="URL",
                     help="seed URLs for the live crawler, or files (local or fsspec paths such "
                          "as s3://) with one URL a line")
    src.add_argument("--urls", nargs="+", action="extend", default=[], metavar="FILE",
                     help="URL lists in img2dataset's formats: .parquet, .csv, .tsv, .jsonl "
                          "(optionally .gz) with --url-col and --caption-col")
    parser.add_argument("--metadata", required=True,
                        help="the query list: a JSON list of strings (OUT/queries/metadata.json)")
    parser.add_argument("--out", required=True, type=output_dir,
                        help="output root; the stage writes OUT/candidates/")
    parser.add_argument("--t", type=positive_int, default=DEFAULT_T,
                        help="balancing threshold: an entry matched by more than t pairs keeps "
                             "each with probability t/count (default: %(default)s)")
    parser.add_argument("--seed", type=non_negative_int, default=0,
                        help="seed of the balancing draw, hashed with each pair's uid "
                             "(default: %(default)s)")
    parser.add_argument("--text-fields", default=",".join(TEXT_FIELDS),
                        help="where an <img>'s texts come from: every distinct non-empty one "
                             "is matched and balanced (MetaCLIP), the first kept one is the "
                             "sample's caption (default: %(default)s)")
    parser.add_argument("--max-text-chars", type=positive_int, default=DEFAULT_MAX_TEXT_CHARS,
                        help="longest text kept, in characters after whitespace is collapsed; "
                             "a longer alt/title/caption is dropped and counted "
                             "(texts_too_long) (default: %(default)s)")
    parser.add_argument("--url-col", default="url",
                        help="URL column of --urls files (default: %(default)s)")
    parser.add_argument("--caption-col", default="caption",
                        help="text column of --urls files (default: %(default)s)")
    parser.add_argument("--max-page-bytes", type=positive_int, default=DEFAULT_MAX_PAGE_BYTES,
                        help="largest HTML page read, archived or live (default: %(default)s)")
    parser.add_argument("--num-shards", type=non_negative_int, default=0,
                        help="number of part-NNNNN-of-MMMMM.parquet files; rows go to a part "
                             "by a hash of their uid and are sorted by uid; 0: one part per "
                             f"{ROWS_PER_PART:,} kept rows, at least one "
                             "(default: %(default)s)")
    live = parser.add_argument_group("live crawler (--seeds)")
    d = CrawlerOptions()
    live.add_argument("--user-agent", default=DEFAULT_USER_AGENT,
                      help="User-Agent sent and matched against robots.txt "
                           "(default: %(default)s)")
    live.add_argument("--max-depth", type=non_negative_int, default=d.max_depth,
                      help="link depth followed from a seed (default: %(default)s)")
    live.add_argument("--max-pages", type=positive_int, default=d.max_pages,
                      help="pages fetched per site at most (default: %(default)s)")
    live.add_argument("--delay", type=non_negative_float, default=d.delay,
                      help="seconds between requests to one host; robots.txt Crawl-delay "
                           "raises it (default: %(default)s)")
    live.add_argument("--concurrency", type=positive_int, default=d.concurrency,
                      help="requests in flight per host (default: %(default)s)")
    live.add_argument("--timeout", type=positive_float, default=d.timeout,
                      help="seconds for a whole request: connect, headers and body "
                           "(default: %(default)s)")
    live.add_argument("--max-redirects", type=non_negative_int, default=d.max_redirects,
                      help="redirects followed per URL (default: %(default)s)")
    live.add_argument("--retries", type=non_negative_int, default=d.retries,
                      help="tries again after 429/5xx, timeouts and broken connections "
                           "(default: %(default)s)")
    live.add_argument("--max-retry-after", type=non_negative_float, default=d.max_retry_after,
                      help="longest wait between tries, seconds; a longer Retry-After gives up "
                           "(default: %(default)s)")
    live.add_argument("--offsite", action="store_true",
                      help="follow links to other sites too (default: same site only)")
    live.add_argument("--allow-private", action="store_true",
                      help="allow private, loopback and link-local targets (default: blocked, "
                           "checked after DNS resolution and after every redirect)")
    live.add_argument("--allow-network", action="append", default=[], metavar="CIDR",
                      help="allow just this network, e.g. 127.0.0.0/8 (repeatable)")


def _seed_urls(values: list[str]) -> list[str]:
    seeds: list[str] = []
    for value in values:
        if value.lower().startswith(("http://", "https://")):
            seeds.append(value)
            continue
        # anything else is a seed file, local or on an object store (s3://, gs://)
        try:
            found = fsio.exists(value)
        except (ImportError, ValueError) as exc:  # unknown protocol, or its package missing
            raise InputError(f"{value}: not a URL (http://...) nor a readable seed file: "
                             f"{exc}") from exc
        if not found:
            raise InputError(f"{value}: not a URL (http://...) and no such seed file")
        with fsspec.open(value, "rt", encoding="utf-8") as f:
            seeds.extend(line.strip() for line in f if line.strip() and not line.startswith("#"))
    return seeds


def config_from_args(args: argparse.Namespace) -> CrawlConfig:
    fields = tuple(f.strip() for f in args.text_fields.split(",") if f.strip())
    bad = [f for f in fields if f not in TEXT_FIELDS]
    if bad or not fields:
        raise InputError(f"--text-fields: unknown field(s) {bad}; choose from {TEXT_FIELDS}")
    if args.t <= 0:
        raise InputError(f"--t must be positive, got {args.t}")
    if args.num_shards < 0:
        raise InputError(f"--num-shards must be 0 or positive, got {args.num_shards}")
    try:
        networks = tuple(str(n) for n in parse_networks(args.allow_network))
    except ValueError as exc:
        raise InputError(f"--allow-network: {exc}") from exc
    warc = fsio.expand(args.warc, "WARC") if args.warc else []
    wat = fsio.expand(args.wat, "WAT") if args.wat else []
    urls = fsio.expand(args.urls, "URL-list") if args.urls else []
    seeds = _seed_urls(args.seeds)
    if not (warc or wat or urls or seeds):
        raise InputError("no sources: pass --warc, --wat, --seeds and/or --urls "
                         "(see wit crawl --help)")
    crawler = CrawlerOptions(
        user_agent=args.user_agent, max_depth=args.max_depth, max_pages=args.max_pages,
        delay=args.delay, concurrency=args.concurrency, timeout=args.timeout,
        max_page_bytes=args.max_page_bytes, max_redirects=args.max_redirects,
        same_site=not args.offsite, allow_private=args.allow_private,
        allowed_networks=networks, retries=args.retries,
        max_retry_after=args.max_retry_after)
    return CrawlConfig(
        metadata=args.metadata, out=fsio.join(args.out, "candidates"), warc=warc, wat=wat,
        seeds=seeds, url_lists=urls, t=args.t, seed=args.seed, text_fields=fields,
        url_col=args.url_col, caption_col=args.caption_col,
        max_page_bytes=args.max_page_bytes, max_text_chars=args.max_text_chars,
        num_shards=args.num_shards, crawler=crawler)


def run(args: argparse.Namespace, beam_args: list[str]) -> int:
    from pipeline.crawl import job

    job.run(config_from_args(args), beam_args)
    return 0
