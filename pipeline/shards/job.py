"""The ``shards`` stage end to end: download rounds (img2dataset distributors), then the Beam
job (:class:`BuildShards`), then ``sizes.json``, ``manifest.json``, ``report.html`` and
``README.md`` (the Hugging Face dataset card); ``run`` prints the summary.

Layout under ``OUT/shards/``: the final shards at the top, download rounds under
``_work/round{r}/`` (img2dataset layout). Round 0 downloads every candidate; each run with
``--retry-failed`` adds a round that re-downloads only the rows whose latest status is
``failed_to_download`` (``failed_to_download:host_backoff`` included) or
``failed_to_resize``. A killed run resumes: finished download shards (those with a
``_stats.json``) are kept, and the Beam job rewrites every final shard from the rounds, so
the final shards are the same as those of an uninterrupted run.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.core import fsio
from pipeline.core.cliargs import bounded, non_negative_int, output_dir, positive_int
from pipeline.core.errors import InputError, WitError
from pipeline.core.jobs import print_summary, remove_outputs, versions
from pipeline.core.net.hosts import shared_table_path
from pipeline.core.options import option
from pipeline.core.takedown_list import read_lists
from pipeline.shards.decontaminate import hash_eval_images
from pipeline.shards.dedup import NearDupConfig
from pipeline.shards.download import (
    DownloadConfig,
    GuardedDownloader,
    add_network,
    run_distributor,
)
from pipeline.shards.filters import FilterConfig, preset_changes
from pipeline.shards.option_groups import DOWNLOAD, FILTERS, IO
from pipeline.shards.reader import (
    candidate_files,
    done_shards,
    iter_candidate_batches,
    shard_name,
    to_input_table,
    write_input_shards,
)
from pipeline.shards.url_lists import (
    UrlList,
    UrlListOptions,
    flat_paths,
    input_tables,
    open_url_lists,
)
from schemas import status as st
from schemas.shards import INPUT_ERROR, download_input_columns

if TYPE_CHECKING:
    from pipeline.shards.transform import DownloadedShard, TransformConfig

log = logging.getLogger(__name__)


# download processes (each with --threads threads): a Spark cluster's total executor cores
# (docs/scaling.md asks for 512); a local pool is also bounded by the shard count
MAX_PROCESSES = 4096


@dataclass
class ShardsOptions:
    """The stage's settings; its fields with ``option(...)`` are the ``wit shards`` options."""

    candidates: str | None = option(
        required=True, exclusive="input", group=IO,
        help="the crawl's candidates: a folder with part-*.parquet, or Parquet file(s)/glob "
             "(columns of schemas.candidates.CANDIDATES)")
    urls: tuple[str, ...] = option(
        (), required=True, exclusive="input", nargs="+", append=True, convert=flat_paths,
        metavar="FILE", group=IO,
        help="instead of --candidates: URL lists in img2dataset's formats (.parquet, .csv, "
             ".tsv, .jsonl, .txt, optionally .gz; files, globs, folders, fsspec paths), "
             "every row downloaded as it is (see 'URL lists' below)")
    out: str = option(required=True, type=output_dir, group=IO,
                      help="output root; writes OUT/shards/")
    samples_per_shard: int = option(10000, type=positive_int, group=IO,
                                    help="kept samples per output tar")
    report_samples: int = option(24, type=non_negative_int, group=IO,
                                 help="images in the report.html sample grid")
    # fetch, resize, threads and the filter rules (the caption ones apply before fetching)
    download: DownloadConfig = field(default_factory=DownloadConfig)
    distributor: str = option("multiprocessing", choices=("multiprocessing", "pyspark"),
                              group=DOWNLOAD, help="img2dataset distributor")
    spark_master: str | None = option(
        None, group=DOWNLOAD,
        help="Spark master URL for --distributor pyspark, e.g. spark://host:7077 or local[4] "
             "(default: the active session, else local[--processes])")
    processes: int = option(
        default_factory=lambda: min(os.cpu_count() or 1, MAX_PROCESSES),
        type=bounded(int, 1, MAX_PROCESSES), group=DOWNLOAD,
        help=f"download processes, at most {MAX_PROCESSES} and never more than download "
             "shards (default: CPU count, %(default)s)")
    host_lanes: int | None = option(
        None, type=bounded(int, 1, MAX_PROCESSES), metavar="N", group=DOWNLOAD,
        help="--distributor pyspark: cut the download shards by host into N lanes and run "
             "each lane in one Spark task at a time, so the per-host limits hold across the "
             "whole cluster, not per machine (default: --processes; 1: no lanes, the limits "
             "then hold per machine). Not with the local pool: on one machine the shared "
             "host table bounds every process")
    download_shard_size: int = option(
        10000, type=positive_int, group=DOWNLOAD,
        help="candidates per download shard, the unit of resume")
    retry_failed: bool = option(
        False, group=DOWNLOAD,
        help="after the download, re-download once more only the rows whose status is "
             "failed_to_download (host_backoff included) or failed_to_resize (default: off)")
    near_dup_bits: int = option(NearDupConfig.max_bits, type=bounded(int, 0, 64), group=FILTERS,
                                help="pHash Hamming distance for near-duplicates")
    # None: as near_dup_bits (set in __post_init__)
    contamination_bits: int = option(
        None, type=bounded(int, 0, 64), group=FILTERS,
        help="pHash distance to an eval image (default: --near-dup-bits)")
    eval_images: tuple[str, ...] = option(
        (), nargs="*", metavar="DIR", group=FILTERS,
        help="folders of evaluation images; near-copies are removed as 'contaminated' "
             "(default: none)")
    clip: Any = None  # pipeline.shards.clip_options.ClipFilterConfig
    # how --urls files are read
    url_list: UrlListOptions = field(default_factory=UrlListOptions)

    def __post_init__(self) -> None:
        if self.contamination_bits is None:
            self.contamination_bits = self.near_dup_bits
        self.urls = tuple(self.urls or ())
        if bool(self.candidates) == bool(self.urls):
            raise InputError("give either --candidates or --urls")
        if self.host_lanes is not None and self.distributor != "pyspark":
            raise InputError("--host-lanes is for --distributor pyspark (on one machine the "
                             "shared host table bounds every download process)")

    @property
    def filters(self) -> FilterConfig:
        """The filter rules (one copy, in the download config, whose workers apply the
        caption rules before fetching)."""
        return self.download.filters


def transform_config(opts: ShardsOptions, extra_columns: pa.Schema | None = None) -> TransformConfig:
    """The Beam job's settings from the stage's (``extra_columns``: a URL list's
    --save-additional-columns with their types)."""
    from pipeline.shards.transform import TransformConfig

    return TransformConfig(
        out_folder=shards_dir(opts.out), filters=opts.filters, near_dup_bits=opts.near_dup_bits,
        contamination_bits=opts.contamination_bits, samples_per_shard=opts.samples_per_shard,
        block_size=opts.download_shard_size, encode_format=opts.download.resize.encode_format,
        resize_mode=opts.download.resize.resize_mode, clip=opts.clip,
        extra_columns=extra_columns if extra_columns is not None and len(extra_columns) else None)


def shards_dir(out: str) -> str:
    return fsio.join(out, "shards")


def work_dir(out: str) -> str:
    return fsio.join(shards_dir(out), "_work")


def round_dir(out: str, r: int) -> str:
    return fsio.join(work_dir(out), f"round{r}")


def file_fingerprint(path: str) -> dict[str, Any]:
    digest = hashlib.sha256()
    size = 0
    with fsspec.open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
            size += len(chunk)
    return {"path": path, "bytes": size, "sha256": digest.hexdigest()}


def _glob(folder: str, pattern: str) -> list[str]:
    return fsio.glob(folder, pattern)


def existing_rounds(out: str) -> list[int]:
    return sorted(int(p.rsplit("round", 1)[-1]) for p in _glob(work_dir(out), "round*"))


def _check_work_config(out: str, fingerprint: dict[str, Any]) -> None:
    """A work folder from other inputs/settings would mix two datasets: refuse."""
    path = fsio.join(work_dir(out), "_config.json")
    fingerprint = json.loads(json.dumps(fingerprint))  # tuples -> lists, as stored
    if fsio.exists(path):
        previous = fsio.read_json(path)
        if previous != fingerprint:
            changed = sorted(k for k in set(previous) | set(fingerprint)
                             if previous.get(k) != fingerprint.get(k))
            raise InputError(f"{path}: the downloads there were made with different "
                             f"{', '.join(changed)}; use another --out or delete {work_dir(out)}")
    else:
        fsio.atomic_write_json(path, fingerprint)


def host_lanes(opts: ShardsOptions) -> int:
    """Lanes of the download shards (pipeline/shards/lanes.py): on Spark ``--host-lanes``
    (default one per process), so that one host's rows are downloaded by one task at a time
    cluster-wide; 1 (the plain cut in input order) on the local pool, where the machine's
    host table bounds them."""
    if opts.distributor != "pyspark":
        return 1
    return opts.host_lanes if opts.host_lanes is not None else opts.processes


def _download_round(opts: ShardsOptions, r: int, tables: Iterator[pa.Table],
                    on_first_shard: Callable[[], None] = lambda: None,
                    host_table: str | None = None) -> int:
    """Download one round; returns the number of rows fed. Raises when shards stay
    unfinished (img2dataset's distributors only print such failures)."""
    folder = round_dir(opts.out, r)
    fsio.makedirs(folder)
    done = done_shards(folder)
    rows = 0

    def counted() -> Iterator[pa.Table]:
        nonlocal rows
        for table in tables:
            rows += table.num_rows
            yield table

    lanes = host_lanes(opts)
    expected: set[int] = set()  # every shard the round's rows make
    shards = write_input_shards(counted(), fsio.join(work_dir(opts.out), f"_tmp{r}"),
                                opts.download_shard_size, done, lanes, expected)
    downloader = GuardedDownloader(opts.download, folder, host_table)
    started = time.monotonic()
    failed = run_distributor(downloader, shards, opts.distributor, opts.processes,
                             opts.spark_master, on_start=on_first_shard, lanes=lanes)
    log.info("download round %d: %d rows in %.1fs", r, rows, time.monotonic() - started)
    # a shard whose worker failed is undone even if another process finished it meanwhile
    missing = sorted((expected - done_shards(folder)) | {shard_id for shard_id, _ in failed})
    if missing:
        names = ", ".join(shard_name(s) for s in missing[:5]) + (", ..." if len(missing) > 5 else "")
        raise WitError(f"{folder}: {len(missing)} download shard(s) still failed after a "
                       f"retry ({names}); rerun to resume")
    return rows


def _retry_rows(out: str, rounds: list[int]) -> Iterator[pa.Table]:
    """Rows whose latest attempt failed, as downloader input (with their original key and
    every input column). Memory holds only the failed keys, not every key. URL-list rows
    that cannot be downloaded at all (no http(s) URL, an unreadable line) are not retried."""
    failed: dict[str, int] = {}  # key -> round of its latest (failed) attempt
    for r in rounds:
        for path in _glob(round_dir(out, r), "*.parquet"):
            with fsspec.open(path, "rb") as f:
                names = pq.read_schema(f).names
                f.seek(0)
                columns = ["key", "status", *([INPUT_ERROR] if INPUT_ERROR in names else [])]
                table = pq.read_table(f, columns=columns)
            unusable = (table.column(INPUT_ERROR).to_pylist() if INPUT_ERROR in names
                        else [None] * table.num_rows)
            for key, status, error in zip(table.column("key").to_pylist(),
                                          table.column("status").to_pylist(), unusable):
                if status in st.RETRYABLE and error is None:
                    failed[key] = r
                else:
                    failed.pop(key, None)
    for r in rounds:
        for path in _glob(round_dir(out, r), "*.parquet"):
            with fsspec.open(path, "rb") as f:
                columns = download_input_columns(pq.read_schema(f))
                f.seek(0)
                table = pq.read_table(f, columns=columns)
            mask = [failed.get(k) == r for k in table.column("key").to_pylist()]
            if any(mask):
                yield table.filter(pa.array(mask)).sort_by("key")


def _downloaded_shards(out: str) -> list[DownloadedShard]:
    from pipeline.shards.transform import DownloadedShard

    shards = []
    for r in existing_rounds(out):
        folder = round_dir(out, r)
        for shard_id in sorted(done_shards(folder)):
            shards.append(DownloadedShard(r, folder, shard_name(shard_id)))
    return shards


# every output of the Beam job and the report; .tmp-*: temporary names a crashed run left
OUTPUTS = ("*.tar", "*.parquet", "*_stats.json", "sizes.json", "manifest.json", "report.html",
           "README.md", ".tmp-*")
VERSIONED = ("webimagetext", "img2dataset", "apache-beam", "faiss-cpu", "imagehash", "pyarrow",
             "Pillow", "opencv-python-headless", "webdataset")


class BeamImport:
    """Imports Beam and the job's transforms in a thread once the download has started.
    The launcher only waits on the worker pool then, and these ~2 s of single-core import
    work would otherwise sit between the last download and the Beam job. Started once the
    pool exists (``run_distributor``'s ``on_start``), i.e. after the launcher has made the
    pool and done its own imports, so the two threads do not race on imports. Errors
    surface on the real import."""

    def __init__(self) -> None:
        self._thread: threading.Thread | None = None

    @staticmethod
    def _work() -> None:
        try:
            import pipeline.core.beam  # noqa: F401
            import pipeline.shards.transform  # noqa: F401
        except Exception:  # noqa: BLE001 - the import after the download reports it
            pass

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._work, name="wit-import-beam", daemon=True)
            self._thread.start()

    def join(self) -> None:
        if self._thread is not None:
            self._thread.join()


def run(opts: ShardsOptions, beam_args: list[str]) -> dict[str, Any]:
    """Run the stage, print its summary and return the manifest (``manifest.json``)."""
    started = time.time()
    opts = _checked_blocklist(opts)
    importing = BeamImport()
    # Spark's launcher keeps importing while it runs; only overlap with the process pool
    overlap = importing.start if opts.distributor == "multiprocessing" else (lambda: None)
    url_list: UrlList | None = None
    if opts.urls:  # every file checked before anything is downloaded
        url_list = open_url_lists(opts.urls, opts.url_list)
        files = list(url_list.files)
    else:
        files = candidate_files(opts.candidates or "")
    fingerprints = [file_fingerprint(p) for p in files]
    clip_config: dict[str, Any] | None = None
    if opts.clip is not None:  # a bad checkpoint fails now, not after the download
        from pipeline.shards.clipscore import check_checkpoint
        clip_config = {**asdict(opts.clip), "model_config": check_checkpoint(opts.clip.checkpoint),
                       "checkpoint_sha256": file_fingerprint(opts.clip.checkpoint)["sha256"]}
    config = {
        "download": opts.download.flat(),
        "download_shard_size": opts.download_shard_size,
    }
    # what shapes the downloaded files; fetch settings (timeouts, retries, ...) may change
    # between runs, e.g. a longer --timeout for --retry-failed
    shaping = {k: v for k, v in opts.download.flat().items() if k not in ("fetch", "thread_count")}
    if opts.download.exclude:  # a bad line fails now; what the lists hold shapes the rows
        read_lists(opts.download.exclude)
        shaping["exclude"] = [file_fingerprint(p) for p in opts.download.exclude]
    if url_list is not None:  # a URL list's reading shapes the rows (candidates: no key)
        config["url_list"] = url_list.fingerprint()
    # lanes cut other download shards: a work folder cut with other lanes is refused
    lanes = {"host_lanes": host_lanes(opts)} if host_lanes(opts) > 1 else {}
    _check_work_config(opts.out, {"inputs": fingerprints, "download": shaping,
                                  "download_shard_size": opts.download_shard_size, **lanes,
                                  **({"url_list": config["url_list"]} if url_list else {})})

    # the per-host limits' table, shared by every download process of this machine
    host_table = shared_table_path()
    tables = input_tables(url_list) if url_list is not None else _input_tables(files)
    try:
        rows = _download_round(opts, 0, tables, overlap, host_table)
        if opts.retry_failed:
            rounds = existing_rounds(opts.out)
            # a round is "done" only when every shard it fed is finished; resume an unfinished one
            last = rounds[-1]
            r = last if last > 0 and not fsio.exists(fsio.join(round_dir(opts.out, last), "_done")) \
                else last + 1
            _download_round(opts, r, _retry_rows(opts.out, [x for x in rounds if x < r]), overlap,
                            host_table)
            fsio.atomic_write_bytes(fsio.join(round_dir(opts.out, r), "_done"), b"")
    finally:
        with contextlib.suppress(OSError):
            os.remove(host_table)

    eval_hashes, eval_skipped = hash_eval_images(list(opts.eval_images), opts.filters.max_pixels) \
        if opts.eval_images else ([], [])
    importing.join()
    from pipeline.core.beam import make_pipeline
    from pipeline.shards.transform import BuildShards

    out_folder = shards_dir(opts.out)
    remove_outputs(out_folder, OUTPUTS)
    downloaded = _downloaded_shards(opts.out)
    if downloaded:
        beam_started = time.monotonic()
        pipeline = make_pipeline(beam_args)
        extra = url_list.extra if url_list is not None else None
        _ = pipeline | "BuildShards" >> BuildShards(transform_config(opts, extra), downloaded,
                                                    eval_hashes)
        pipeline.run().wait_until_finish()
        log.info("beam job over %d download shards: %.1fs", len(downloaded),
                 time.monotonic() - beam_started)
    report_started = time.monotonic()

    from pipeline.shards.report import summarize, write_report

    summary = summarize(out_folder)
    if summary["counts"]["candidates"] != rows:
        raise WitError(f"{out_folder}: {summary['counts']['candidates']} rows in the shards but "
                       f"{rows} candidates; rerun to rebuild the shards")
    sizes = summary.pop("sizes")
    fsio.atomic_write_json(fsio.join(out_folder, "sizes.json"), sizes)
    manifest = {
        **summary,
        "shards": {"count": len(sizes), "samples_per_shard": opts.samples_per_shard,
                   "samples": sum(sizes.values())},
        "network": network_totals(opts.out),
        "config": {
            **config,
            "filters": asdict(opts.filters),
            "filter_changes": preset_changes(opts.filters),
            "near_dup_bits": opts.near_dup_bits,
            "contamination_bits": opts.contamination_bits,
            "samples_per_shard": opts.samples_per_shard,
            "distributor": opts.distributor,
            "processes": opts.processes,
            "eval_images": opts.eval_images,
            "eval_hashes": len(eval_hashes),
            "eval_skipped": eval_skipped[:100],
            "download_rounds": existing_rounds(opts.out),
            "clip_filter": clip_config,
        },
        "versions": versions(VERSIONED),
        "inputs": fingerprints,
        "seconds": round(time.time() - started, 3),
    }
    write_report(out_folder, manifest, opts.candidates or "", opts.report_samples,
                 opts.download.resize.encode_format)
    fsio.atomic_write_json(fsio.join(out_folder, "manifest.json"), manifest)
    from pipeline.core.dataset_card import dataset_card

    # the Hugging Face dataset card, from the manifest just written
    fsio.atomic_write_bytes(fsio.join(out_folder, "README.md"), dataset_card(manifest).encode("utf-8"))
    log.info("manifest and report: %.1fs", time.monotonic() - report_started)
    print_summary(summary_text(manifest, out_folder))
    _fail_if_nothing_decoded(manifest, out_folder)
    return manifest


def _checked_blocklist(opts: ShardsOptions) -> ShardsOptions:
    """``--block-hashes``: the file read once here (a bad line stops the run before any
    download, naming it) and its fingerprint put into the download settings, so workers read
    the same list and a work folder made with another list is not resumed with this one."""
    path = opts.download.block_hashes
    if not path:
        return opts
    from pipeline.shards.blocklist import read_blocklist

    listed = read_blocklist(path)
    log.info("--block-hashes %s: %d sha256 and %d pHash entries", path, len(listed.sha256),
             len(listed.phash))
    download = replace(opts.download, block_hashes_sha256=file_fingerprint(path)["sha256"])
    return replace(opts, download=download)


def _by_reason(counts: dict[str, int]) -> str:
    return f" ({', '.join(f'{k} {v}' for k, v in counts.items())})" if counts else ""


def _fail_if_nothing_decoded(manifest: dict[str, Any], out_folder: str) -> None:
    """A run that fetched images but could decode or encode none of them wrote nothing
    because of its settings or its environment (a format Pillow cannot write), not because
    of its inputs: that is no success (exit 1), though the Parquets and report are kept."""
    counts, failed = manifest["counts"], manifest["statuses"].get(st.FAILED_TO_RESIZE, 0)
    if counts["kept"] == 0 and counts["downloaded"] == 0 and failed:
        raise WitError(f"{out_folder}: no sample written: all {failed} fetched image(s) failed "
                       f"to decode or encode ({st.FAILED_TO_RESIZE}; the error_message column "
                       "of the Parquet files says why)")


def summary_text(manifest: dict[str, Any], out_folder: str) -> str:
    from pipeline.shards.report import consent_line, guard_note

    counts, filtered = manifest["counts"], manifest["filtered"]
    rules = {r: filtered[r] for r in st.FILTER_RULES if filtered.get(r)}
    texts = manifest["texts"]["filtered"]
    guarded = sum(filtered.get(r, 0) for r in st.GUARDS)
    what = "list rows" if "url_list" in manifest["config"] else "candidates"
    text = (f"wit shards: {counts['kept']} of {counts['candidates']} {what} kept in "
            f"{manifest['shards']['count']} shard(s) under {out_folder}\n  "
            + ", ".join(f"{k}: {v}" for k, v in manifest["statuses"].items())
            + f"\n  filters (--filter {manifest['config']['filters']['preset']}): "
            f"{sum(rules.values())} image(s) dropped{_by_reason(rules)}; "
            f"{sum(texts.values())} text(s) dropped from images that kept another"
            f"{_by_reason(texts)}"
            f"\n  max_pixels: {guarded} image(s) dropped ({guard_note(manifest)})"
            f"\n  {consent_line(manifest)}")
    licenses = manifest.get("licenses") or {}
    allowed = manifest["config"]["filters"].get("licenses")
    if licenses or allowed:
        shown = ", ".join(f"{k} {v}" for k, v in list(licenses.items())[:8])
        text += (f"\n  licences of the kept samples: {shown or 'none'}"
                 + (f"; --licenses {','.join(allowed)}: {filtered.get(st.LICENSE, 0)} image(s) "
                    f"dropped ({st.filtered(st.LICENSE)})" if allowed else ""))
    domains = manifest.get("source_domains") or {}
    if domains.get("top"):
        text += (f"\n  source domains: {domains['distinct']}; top "
                 + ", ".join(f"{d} {n}" for d, n in domains["top"][:5]))
    network = manifest.get("network") or {}
    dns, hosts = network.get("dns"), network.get("hosts")
    if dns:
        failures = ", ".join(f"{k} {v}" for k, v in dns.get("failures", {}).items()) or "none"
        text += (f"\n  dns: {dns['lookups']} lookups, {dns['hits']} cache hits, "
                 f"{dns['queries']} queries; failures: {failures}")
    if hosts:
        text += (f"\n  hosts: {hosts['requests']} requests, {hosts['waited']} waited "
                 f"{hosts['wait_seconds']:g}s for their host's turn, {hosts['busy_answers']} "
                 f"429/503 answers, {hosts['backoffs']} host backoffs, {hosts['deferred']} rows "
                 f"deferred (host_backoff)")
    return text


def network_totals(out: str) -> dict[str, Any]:
    """The download rounds' network counters (``network`` of every ``_stats.json``), summed:
    ``{"dns": {...}, "hosts": {...}}`` (:meth:`pipeline.core.net.Fetcher.counts`)."""
    total: dict[str, Any] = {}
    for r in existing_rounds(out):
        for path in _glob(round_dir(out, r), "*_stats.json"):
            add_network(total, fsio.read_json(path).get("network") or {})
    return total


def _input_tables(files: list[str]) -> Iterator[pa.Table]:
    """Downloader input with keys numbered across files (file order, then row order)."""
    index = 0
    for table in iter_candidate_batches(files):
        yield to_input_table(table, index)
        index += table.num_rows
