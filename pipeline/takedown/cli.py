"""Remove samples from existing shards (a ``wit shards`` output folder) on request: every
row whose image URL, page URL, domain, SHA-256 or pHash a takedown list names. Only the
shards that hold such rows are rewritten (temporary files renamed into place; every other
file stays byte-identical); the removed rows stay in the Parquet with status 'removed' and
nothing but their key, uid and hashes; OUT/shards/removals.jsonl records each removal (hashes,
URLs, key, rule; never image bytes); sizes.json and manifest.json describe the new dataset
version. Running the same list again removes nothing more.

List format, one entry per line ('#' starts a comment):
  url https://example.com/img/cat.jpg      the image URL
  page https://example.com/post.html       every image of that page
  domain example.com                       images or pages on the host or a subdomain
  sha256 <64 hex digits>                   the downloaded bytes' SHA-256
  phash <16 hex digits> [RADIUS]           pHash within RADIUS bits (0-32, default 0)
A removals.jsonl file is a list too. Pass the same files to 'wit shards --exclude' and
'wit crawl --exclude' so that rebuilt datasets never fetch those items again."""

from __future__ import annotations

import argparse

from pipeline.core.jobs import print_summary
from pipeline.takedown import job


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--shards", required=True, metavar="DIR",
                        help="the shards to take samples out of: OUT/shards of a 'wit shards' "
                             "run (its *.tar, *.parquet, *_stats.json, sizes.json, manifest.json)")
    parser.add_argument("--list", dest="lists", required=True, action="append", metavar="FILE",
                        help="a takedown list (format above) or a removals.jsonl; repeatable")
    parser.add_argument("--dry-run", action="store_true",
                        help="only report what the lists match; write nothing")


def run(args: argparse.Namespace, beam_args: list[str]) -> int:
    folder = str(args.shards).rstrip("/")
    outcome = job.run(folder, list(args.lists), dry_run=args.dry_run)
    print_summary(job.summary_text(outcome, folder))
    return 0
