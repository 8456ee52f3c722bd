"""Download the crawl's candidates with img2dataset (behind an SSRF guard, robots.txt and
retry/backoff), apply basic filters, remove exact and near duplicates (sha256, 64-bit pHash
with LSH bands + faiss) and near-copies of evaluation images, and write WebDataset shards
(KEY.jpg/KEY.txt/KEY.json) with a Parquet per shard, sizes.json, manifest.json and a
report.html dataset card under OUT/shards/. Every candidate keeps a status in the Parquet.
With --clip-filter CHECKPOINT, each sample's CLIP score is stored and can filter
(--min-clip-score, --clip-top-fraction).

--urls FILE... instead of --candidates downloads an existing URL list (img2dataset's
formats and options: --url-col, --caption-col, --save-additional-columns, --verify-hash-col)
as it is: no query list, no matching, every row in the Parquet with a status.

Rerunning after a crash resumes the download; the final shards are identical."""

from __future__ import annotations

import argparse
import sys

from pipeline.core.options import add_options, from_args
from pipeline.shards import job
from pipeline.shards.clip_options import ClipFilterConfig
from pipeline.shards.download import DownloadConfig
from pipeline.shards.fetch_options import FetchOptions
from pipeline.shards.filters import FilterOptions, describe_changes, preset_changes
from pipeline.shards.imaging import ResizeConfig
from pipeline.shards.job import ShardsOptions
from pipeline.shards.option_groups import DESCRIPTIONS
from pipeline.shards.url_lists import UrlListError, UrlListOptions

USES_BEAM = True
# the config classes whose fields are the options (in --help order within each section)
CONFIGS = (ShardsOptions, UrlListOptions, ResizeConfig, DownloadConfig, FetchOptions,
           FilterOptions, ClipFilterConfig)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_options(parser, *CONFIGS, groups=DESCRIPTIONS)


def options_from_args(args: argparse.Namespace) -> ShardsOptions:
    """The parsed command line as the stage's config (prints the --filter preset changes)."""
    clip = None
    if args.checkpoint:
        clip = from_args(ClipFilterConfig, args)
    elif args.min_score is not None or args.top_fraction is not None:
        from pipeline.core.errors import InputError
        raise InputError("--min-clip-score/--clip-top-fraction need --clip-filter CHECKPOINT")
    filters = from_args(FilterOptions, args).config()
    fetch = from_args(FetchOptions, args, connections_per_host=args.thread_count)
    resize = from_args(ResizeConfig, args, max_pixels=filters.max_pixels)
    download = from_args(DownloadConfig, args, fetch=fetch, resize=resize, filters=filters)
    changes = preset_changes(filters)
    if changes:
        print(f"wit shards: --filter {filters.preset} changed: {describe_changes(changes)}",
              file=sys.stderr)
    return from_args(ShardsOptions, args, download=download, clip=clip,
                     url_list=from_args(UrlListOptions, args))


def run(args: argparse.Namespace, beam_args: list[str]) -> int:
    opts = options_from_args(args)
    try:
        job.run(opts, beam_args)
    except UrlListError as exc:  # a --urls file is missing, unreadable or lacks a column
        print(f"wit shards: error: {exc}", file=sys.stderr)
        return 2
    return 0
