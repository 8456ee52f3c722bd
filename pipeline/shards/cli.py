"""Download the crawl's candidates with img2dataset (behind an SSRF guard, robots.txt and
retry/backoff), apply basic filters, remove exact and near duplicates (sha256, 64-bit pHash
with LSH bands + faiss) and near-copies of evaluation images, and write WebDataset shards
(KEY.jpg/KEY.txt/KEY.json) with a Parquet per shard, sizes.json, manifest.json and a
report.html dataset card under OUT/shards/. Every candidate keeps a status in the Parquet.
With --clip-filter CHECKPOINT, each sample's CLIP score is stored and can filter
(--min-clip-score, --clip-top-fraction).

Rerunning after a crash resumes the download; the final shards are identical."""

from __future__ import annotations

import argparse
import os
import sys

from pipeline.core.cliargs import (
    bounded,
    non_negative_float,
    non_negative_int,
    output_dir,
    positive_float,
    positive_int,
)
from pipeline.core.jobs import print_summary
from pipeline.shards.filters import PRESETS, describe_changes, from_preset, preset_changes
from pipeline.shards.language import parse_languages

USES_BEAM = True


def _languages(value: str) -> tuple[str, ...]:
    try:
        return parse_languages(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    d = parser.add_argument_group("input/output")
    d.add_argument("--candidates", required=True,
                   help="the crawl's candidates: a folder with part-*.parquet, or Parquet "
                   "file(s)/glob (columns of schemas.candidates.CANDIDATES)")
    d.add_argument("--out", required=True, type=output_dir, help="output root; writes OUT/shards/")
    d.add_argument("--samples-per-shard", type=positive_int, default=10000,
                   help="kept samples per output tar (default: %(default)s)")
    d.add_argument("--report-samples", type=non_negative_int, default=24,
                   help="images in the report.html sample grid (default: %(default)s)")

    g = parser.add_argument_group("download (img2dataset)")
    g.add_argument("--image-size", type=positive_int, default=256,
                   help="target size in px, as img2dataset's image_size (default: %(default)s)")
    g.add_argument("--resize-mode", default="keep_ratio",
                   choices=["no", "keep_ratio", "keep_ratio_largest", "center_crop", "border"],
                   help="as img2dataset's resize_mode; images are first turned upright by their EXIF "
                   "orientation (default: %(default)s)")
    g.add_argument("--resize-only-if-bigger", action="store_true",
                   help="never upscale small images (default: off)")
    g.add_argument("--encode-format", default="jpg", choices=["jpg", "png", "webp"],
                   help="image format in the shards (default: %(default)s)")
    g.add_argument("--encode-quality", type=bounded(int, 0, 100), default=95,
                   help="JPEG/WebP quality or PNG compression (default: %(default)s)")
    g.add_argument("--distributor", default="multiprocessing",
                   choices=["multiprocessing", "pyspark"],
                   help="img2dataset distributor (default: %(default)s)")
    g.add_argument("--spark-master", default=None,
                   help="Spark master URL for --distributor pyspark, e.g. spark://host:7077 "
                   "or local[4] (default: the active session, else local[--processes])")
    g.add_argument("--processes", type=positive_int, default=os.cpu_count() or 1,
                   help="download processes (default: CPU count, %(default)s)")
    g.add_argument("--threads", type=positive_int, default=64,
                   help="download threads per process (default: %(default)s)")
    g.add_argument("--download-shard-size", type=positive_int, default=10000,
                   help="candidates per download shard, the unit of resume (default: %(default)s)")
    g.add_argument("--timeout", type=positive_float, default=10.0,
                   help="seconds for a whole request incl. body (default: %(default)s)")
    g.add_argument("--retries", type=non_negative_int, default=2,
                   help="retries for 429/5xx/timeouts within a run (default: %(default)s)")
    g.add_argument("--max-backoff", type=non_negative_float, default=10.0,
                   help="longest wait between retries, also the cap on Retry-After; a longer "
                   "Retry-After fails the row (retry later with --retry-failed) "
                   "(default: %(default)s)")
    g.add_argument("--max-bytes", type=positive_int, default=50 * 1024 * 1024,
                   help="largest response body accepted (default: %(default)s)")
    g.add_argument("--retry-failed", action="store_true",
                   help="after the download, re-download once more only the rows whose status "
                   "is failed_to_download or failed_to_resize (default: off)")
    g.add_argument("--user-agent-token", default="webimagetext",
                   help="token in the User-Agent, matched by robots.txt and X-Robots-Tag "
                   "(default: %(default)s)")
    g.add_argument("--disallowed-header-directives", nargs="*",
                   default=["noai", "noimageai", "noindex", "noimageindex"],
                   help="X-Robots-Tag directives that forbid use (default: %(default)s)")
    g.add_argument("--ignore-robots-txt", action="store_true",
                   help="do not fetch robots.txt of image hosts (default: honoured)")
    g.add_argument("--allow-private", action="store_true",
                   help="allow private/loopback/link-local targets (default: blocked)")
    g.add_argument("--allow-network", action="append", default=[], metavar="CIDR",
                   help="trust this network despite the SSRF guard, e.g. 10.1.0.0/16 for an "
                   "intranet mirror; repeatable (default: none)")

    f = parser.add_argument_group(
        "filters, dedup, decontamination",
        "--filter picks a rule set; each rule option below overrides it (the change is printed "
        "and recorded in manifest.json)")
    f.add_argument("--filter", default="datacomp-basic", choices=sorted(PRESETS),
                   help="datacomp-basic: DataComp's basic filter exactly (caption > 2 words and "
                   "> 5 characters, English by fastText lid.176, shorter side >= 200 px, "
                   "aspect <= 3); none: no caption, language or image-size rule "
                   "(default: %(default)s)")
    f.add_argument("--min-words", type=non_negative_int, default=None,
                   help="caption words, whitespace-split (datacomp-basic: 3)")
    f.add_argument("--min-chars", type=non_negative_int, default=None,
                   help="caption characters (datacomp-basic: 6)")
    f.add_argument("--languages", type=_languages, default=None, metavar="CODES",
                   help="comma-separated fastText lid.176 language codes a caption may have, "
                   "e.g. en,de; 'any' for no language rule (datacomp-basic: en)")
    f.add_argument("--min-side", type=non_negative_int, default=None,
                   help="shorter side of the original image in pixels (datacomp-basic: 200)")
    f.add_argument("--max-aspect", type=bounded(float, 1), default=None,
                   help="longer/shorter side (datacomp-basic: 3.0)")
    f.add_argument("--min-bytes", type=non_negative_int, default=None,
                   help="downloaded bytes, LAION's rule is 5000 (datacomp-basic: 0, none)")
    f.add_argument("--max-pixels", type=positive_int, default=40_000_000,
                   help="original pixel count, checked from the header before decoding "
                   "(default: %(default)s)")
    f.add_argument("--near-dup-bits", type=bounded(int, 0, 64), default=10,
                   help="pHash Hamming distance for near-duplicates (default: %(default)s)")
    f.add_argument("--contamination-bits", type=bounded(int, 0, 64), default=None,
                   help="pHash distance to an eval image (default: --near-dup-bits)")
    f.add_argument("--eval-images", nargs="*", default=[], metavar="DIR",
                   help="folders of evaluation images; near-copies are removed as "
                   "'contaminated' (default: none)")

    c = parser.add_argument_group("CLIP-score filter")
    c.add_argument("--clip-filter", metavar="CHECKPOINT",
                   help="checkpoint of `wit train`: store each sample's image-caption cosine "
                   "similarity as clip_score (Parquet and .json) and filter with the options "
                   "below (default: off)")
    c.add_argument("--min-clip-score", type=bounded(float, -1, 1), metavar="S",
                   help="drop samples whose clip_score < S, as filtered:clip_score (default: none)")
    c.add_argument("--clip-top-fraction", type=bounded(float, 0, 1, low_open=True), metavar="F",
                   help="keep only the best fraction F by clip_score of the samples left after the "
                   "basic filters and decontamination (ties kept) (default: all)")
    c.add_argument("--clip-batch-size", type=positive_int, default=64,
                   help="images per forward pass (default: %(default)s)")
    c.add_argument("--clip-device", default="cpu",
                   help="cpu, cuda, cuda:N or auto for the scoring model (default: %(default)s)")


def run(args: argparse.Namespace, beam_args: list[str]) -> int:
    from pipeline.core.net import FetchConfig
    from pipeline.shards.download import DownloadConfig
    from pipeline.shards.imaging import ResizeConfig
    from pipeline.shards.job import ShardsOptions, run_shards, shards_dir

    clip = None
    if args.clip_filter:
        from pipeline.shards.clipscore import ClipFilterConfig
        clip = ClipFilterConfig(args.clip_filter, args.min_clip_score, args.clip_top_fraction,
                                args.clip_batch_size, args.clip_device)
    elif args.min_clip_score is not None or args.clip_top_fraction is not None:
        from pipeline.core.errors import InputError
        raise InputError("--min-clip-score/--clip-top-fraction need --clip-filter CHECKPOINT")
    fetch = FetchConfig(
        timeout=args.timeout, retries=args.retries, max_backoff=args.max_backoff,
        max_bytes=args.max_bytes, user_agent_token=args.user_agent_token,
        disallowed_header_directives=tuple(args.disallowed_header_directives),
        respect_robots_txt=not args.ignore_robots_txt, allow_private=args.allow_private,
        allowed_networks=tuple(args.allow_network), connections_per_host=args.threads)
    filters = from_preset(args.filter, min_words=args.min_words, min_chars=args.min_chars,
                          languages=args.languages, min_side=args.min_side,
                          max_aspect=args.max_aspect, min_bytes=args.min_bytes,
                          max_pixels=args.max_pixels)
    resize = ResizeConfig(
        image_size=args.image_size, resize_mode=args.resize_mode,
        resize_only_if_bigger=args.resize_only_if_bigger, encode_format=args.encode_format,
        encode_quality=args.encode_quality, max_pixels=args.max_pixels)
    download = DownloadConfig(
        fetch=fetch, resize=resize, thread_count=args.threads,
        min_words=filters.min_words, min_chars=filters.min_chars)
    changes = preset_changes(filters)
    if changes:
        print(f"wit shards: --filter {filters.preset} changed: {describe_changes(changes)}",
              file=sys.stderr)
    options = ShardsOptions(
        candidates=args.candidates, out=args.out, download=download, filters=filters,
        near_dup_bits=args.near_dup_bits,
        contamination_bits=args.near_dup_bits if args.contamination_bits is None
        else args.contamination_bits,
        eval_images=args.eval_images, retry_failed=args.retry_failed,
        distributor=args.distributor, processes=args.processes, spark_master=args.spark_master,
        download_shard_size=args.download_shard_size, samples_per_shard=args.samples_per_shard,
        report_samples=args.report_samples, clip=clip)
    manifest = run_shards(options, beam_args)
    counts = manifest["counts"]
    print_summary(f"wit shards: {counts['kept']} of {counts['candidates']} candidates kept in "
                  f"{manifest['shards']['count']} shard(s) under {shards_dir(args.out)}\n  "
                  + ", ".join(f"{k}: {v}" for k, v in manifest["statuses"].items()))
    return 0

