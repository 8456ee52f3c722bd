"""Downloading with img2dataset's pieces and a guarded fetch.

img2dataset's ``Downloader`` hard-wires ``urllib.urlopen`` and decodes whatever arrives.
Rather than fork it, we assemble the same pipeline from its pluggable parts: its
distributors (``multiprocessing_distributor``, ``pyspark_distributor``) call *our*
:class:`GuardedDownloader` once per input shard; that fetches through
:class:`pipeline.core.net.Fetcher`, decodes and resizes with
:mod:`pipeline.shards.imaging` (pixels bounded from the header first, reduced-scale JPEG
decoding, every colour mode and EXIF orientation handled, pHash from the small image), and
writes with :class:`pipeline.shards.writer.DownloadShardWriter` — so the download folder has
img2dataset's layout (``{shard}.tar``, ``{shard}.parquet``, ``{shard}_stats.json``).
The per-shard Arrow inputs come from :mod:`pipeline.shards.reader`.

A shard is done when its ``_stats.json`` exists (written last, atomically); a killed run
redoes only unfinished shards.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field

import fsspec
import pyarrow as pa

from pipeline.core import fsio
from pipeline.core.cliargs import bounded
from pipeline.core.errors import InputError
from pipeline.core.images import return_freed_images_to_the_system
from pipeline.core.licenses import resolve as resolve_license
from pipeline.core.net import FetchConfig, Fetcher, FetchError
from pipeline.core.net.hosts import HostTable, host_key, polite_map
from pipeline.core.options import option
from pipeline.core.takedown_list import Rule, TakedownList, read_lists
from pipeline.shards.blocklist import Blocklist, Match, process_blocklist
from pipeline.shards.filters import FilterConfig, download_reason, sample_texts
from pipeline.shards.imaging import ResizeConfig, clean_error, jpeg_is_truncated, process_image
from pipeline.shards.option_groups import DOWNLOAD
from pipeline.shards.phash import to_hex
from pipeline.shards.reader import shard_name
from pipeline.shards.url_lists import hash_mismatch
from pipeline.shards.writer import DownloadShardWriter
from schemas import status as st
from schemas.shards import EXPECTED_HASH, INPUT_ERROR, download_schema, shard_stats

# each thread holds a connection and an image in flight, and --threads also sizes the
# keep-alive pool of every host: beyond this, more threads only cost memory
MAX_THREADS = 1024


@dataclass(frozen=True)
class DownloadConfig:
    fetch: FetchConfig = field(default_factory=FetchConfig)
    # size, mode, format and pixel bound of the stored images (defaults in imaging.py)
    resize: ResizeConfig = ResizeConfig()
    thread_count: int = option(64, flag="--threads", type=bounded(int, 1, MAX_THREADS),
                               metavar="THREADS", group=DOWNLOAD,
                               help=f"download threads per process, at most {MAX_THREADS}")
    # the stage's filter rules: the caption ones are checked before fetching (filters.py)
    filters: FilterConfig = field(default_factory=FilterConfig)
    exclude: tuple[str, ...] = option(
        (), append=True, metavar="FILE", group=DOWNLOAD,
        help="a takedown list or OUT/shards/removals.jsonl (format: 'wit takedown --help'); "
             "repeatable. Rows it names get status 'removed': by image URL, page URL or "
             "domain before any fetch; by sha256 or pHash once the bytes are in hand, never "
             "written (default: none)")
    block_hashes: str = option(
        "", metavar="FILE", group=DOWNLOAD,
        help="refuse images whose sha256 or pHash is listed in FILE (lines 'sha256:HEX', "
             "'phash:HEX [RADIUS]'; docs/consent.md): status filtered:blocklist, the image "
             "written nowhere, only its hashes kept (default: none)")
    block_hashes_sha256: str = ""  # the list's fingerprint, set by the launcher

    def flat(self) -> dict:
        """The fields with the resize ones inline, in their order, then the caption rules
        (the manifest's and the work folder's record of the download settings)."""
        out: dict = {}
        for key, value in asdict(self).items():
            if key == "filters":
                # caption_texts: the rules judge every text (a work folder from a version that
                # judged the caption alone skipped rows now fetched, and is refused)
                out.update(min_words=value["min_words"], min_chars=value["min_chars"],
                           caption_texts="every")
                if value["script_words"]:  # only when on: older work folders stay valid
                    out.update(caption_words="scripts")
            elif key == "exclude":  # only when given: work folders from before it stay valid
                out.update({key: list(value)} if value else {})
            else:
                out.update(value if key == "resize" else {key: value})
        return out


@functools.cache
def exclusion_list(paths: tuple[str, ...]) -> TakedownList:
    """The ``--exclude`` lists, read once per worker process (checked on the launcher first)."""
    return read_lists(paths)


def removed_meta(rule: Rule) -> dict:
    meta = empty_meta()
    meta.update(status=st.REMOVED, error_message=st.removed_message(rule.kind, rule.where, rule.line))
    return meta


# -- the per-shard downloader -------------------------------------------------------------------

@functools.cache
def process_fetcher(config: FetchConfig, host_table: str | None = None) -> Fetcher:
    """The worker process's one Fetcher for ``config``, built on first use in the worker;
    ``host_table``: the run's shared host table (:mod:`pipeline.core.net.hosts`), opened here
    (created when this machine has none: a Spark worker elsewhere; the limits then hold per
    machine).

    Download workers are img2dataset's process pool (or Spark's Python workers), not Beam:
    the per-process object is a ``functools.cache`` of a builder keyed by the frozen config
    (as ``language.py`` loads its model), the non-Beam form of the code base's one idiom
    (docs/architecture.md, "Per-worker state"). Not built in a pool initializer: Spark has
    none, and the distributors unpickle the downloader for every shard while the robots.txt
    cache and the keep-alive pools must outlive a shard. Nothing on the launcher calls it."""
    return_freed_images_to_the_system()  # threads decode image-sized blocks here
    table = None
    if host_table:
        try:
            table = HostTable(config.max_connections_per_host, host_table)
        except OSError as exc:  # no such folder here: limits per process, said once
            print(f"wit shards: host table {host_table} unavailable ({exc.strerror}); "
                  "per-host limits hold per process here", file=sys.stderr, flush=True)
    return Fetcher(config, table)


def network_delta(after: dict, before: dict) -> dict:
    """``after - before`` of two :meth:`Fetcher.counts` (nested counters); kinds whose count
    did not change are left out of the ``failures`` dicts."""
    out: dict = {}
    for key, value in after.items():
        if isinstance(value, dict):
            inner = network_delta(value, before.get(key, {}))
            out[key] = {k: v for k, v in inner.items() if v} if key == "failures" else inner
        else:
            out[key] = round(value - before.get(key, 0), 3)
    return out


def add_network(total: dict, part: dict) -> dict:
    """``total + part`` of two network counter dicts (nested), in place; returns total."""
    for key, value in part.items():
        if isinstance(value, dict):
            add_network(total.setdefault(key, {}), value)
        else:
            total[key] = round(total.get(key, 0) + value, 3)
    return total


def empty_meta() -> dict:
    """The download fields of one row, all unset."""
    return {"status": None, "error_message": None, "width": None, "height": None,
            "original_width": None, "original_height": None, "sha256": None,
            "original_bytes": None, "phash": None, "final_url": None, "http_status": None,
            "content_type": None, "optout_checks": None, "image_licenses": None,
            "license": None}


MAX_ERROR_CHARS = 300


def unexpected_error(stage: str, exc: BaseException) -> str:
    """The ``error_message`` of an exception no layer expected: its type and text, without
    object addresses, cut to :data:`MAX_ERROR_CHARS` (a hostile value may be in it)."""
    text = clean_error(f"unexpected error while {stage}: {type(exc).__name__}: {exc}")
    return text if len(text) <= MAX_ERROR_CHARS else text[:MAX_ERROR_CHARS - 3] + "..."


class GuardedDownloader:
    """Called by img2dataset's distributors with ``(shard_id, arrow_path)``; returns
    ``(ok, row)`` like img2dataset's ``Downloader``. Picklable: heavy state is built lazily
    in the worker process. ``host_table``: the path of the run's shared host table
    (:func:`pipeline.core.net.hosts.shared_table_path`), None for one private to each
    process."""

    def __init__(self, config: DownloadConfig, output_folder: str, host_table: str | None = None):
        self.config = config
        self.output_folder = output_folder
        self.host_table = host_table
        self._fetcher: Fetcher | None = None
        self._blocklist: Blocklist | None = None

    def __getstate__(self):
        return {"config": self.config, "output_folder": self.output_folder,
                "host_table": self.host_table}

    def __setstate__(self, state):
        self.config, self.output_folder = state["config"], state["output_folder"]
        self.host_table = state.get("host_table")
        self._fetcher = None
        self._blocklist = None

    def _setup(self) -> None:
        if self._fetcher is None:
            self._fetcher = process_fetcher(self.config.fetch, self.host_table)
        c = self.config
        self._blocklist = process_blocklist(c.block_hashes, c.block_hashes_sha256) \
            if c.block_hashes else None

    def blocked(self, meta: dict, match: Match, sha256: str, phash: str | None) -> dict:
        """A blocklisted row: its hashes and the list's line, nothing of the image."""
        meta.update(status=st.filtered(st.BLOCKLIST), sha256=sha256, phash=phash,
                    width=None, height=None,
                    error_message=f"blocklist: {match.kind} on line {match.line} of "
                                  f"--block-hashes" + (f" ({match.distance} bits)"
                                                       if match.kind == "phash" else ""))
        print(f"wit shards: blocklisted image refused: sha256 {sha256} phash {phash} "
              f"({match.kind}, line {match.line})", file=sys.stderr, flush=True)
        return meta

    def __call__(self, row: tuple[int, str]) -> tuple[bool, tuple[int, str]]:
        try:
            self.download_shard(*row)
            return True, row
        except Exception as exc:  # noqa: BLE001 - img2dataset's contract: report, retry shard
            traceback.print_exc()
            print(f"shard {row[0]} failed with error {exc}")
            return False, row

    def deferred(self, why: str, page_licenses: list[str] | None = None) -> tuple[dict, None]:
        """The result of a row its host's politeness kept from being fetched (its
        ``license`` from the page's signals alone)."""
        meta = empty_meta()
        meta.update(status=st.FAILED_HOST_BACKOFF, error_message=why,
                    license=resolve_license(page_licenses or ()))
        return meta, None

    def host_of(self, row: dict) -> str:
        """The host whose limits a row waits for ("" when it will not be fetched)."""
        if row.get(INPUT_ERROR) or download_reason(sample_texts(row), self.config.filters) \
                or self.excluded.before_download(row["url"], row.get("page_url")):
            return ""
        return host_key(row["url"])

    @property
    def excluded(self) -> TakedownList:
        return exclusion_list(self.config.exclude)

    def process_row(self, url: str, texts: list[str], expected_hash: str | None = None,
                    input_error: str | None = None, page_url: str | None = None,
                    page_licenses: list[str] | None = None) -> tuple[dict, bytes | None]:
        """:meth:`process`, where any exception becomes the row's status: a stranger's
        bytes must never fail the download shard (and its up to 10,000 other rows). The
        row's ``license`` is resolved from the page's and the image's licence signals."""
        try:
            meta, image = self.process(url, texts, expected_hash, input_error, page_url)
        except Exception as exc:  # noqa: BLE001 - the last-resort guard of one row
            # fetch errors are caught in process(): this is the decoding of the bytes
            meta, image = {**empty_meta(), "status": st.FAILED_TO_RESIZE,
                           "error_message": unexpected_error("processing the image", exc)}, None
        meta["license"] = resolve_license([*(page_licenses or ()),
                                           *(meta["image_licenses"] or ())])
        return meta, image

    def process(self, url: str, texts: list[str], expected_hash: str | None = None,
                input_error: str | None = None, page_url: str | None = None
                ) -> tuple[dict, bytes | None]:
        """Fetch, bound, decode, resize one URL: (meta fields, encoded image or None). Not
        fetched when none of the image's ``texts`` passes the word and character rules.
        URL-list rows (url_lists.py) may carry why they cannot be downloaded at all, and the
        ``<type>:<hex>`` hash the downloaded bytes must have. An ``--exclude`` entry for the
        URL, page or domain refuses the row before anything is fetched; one for its sha256
        or pHash refuses the image once those are known, before it is written."""
        assert self._fetcher is not None
        meta = empty_meta()
        if input_error:
            meta.update(status=st.FAILED_TO_DOWNLOAD, error_message=input_error)
            return meta, None
        excluded = self.excluded
        rule = excluded.before_download(url, page_url)
        if rule is not None:
            return removed_meta(rule), None
        reason = download_reason(texts, self.config.filters)
        if reason:
            meta.update(status=st.filtered(reason), error_message=st.basic_filter_message(reason))
            return meta, None
        try:
            response = self._fetcher.fetch_response(url)
        except FetchError as exc:
            meta.update(status=exc.status, error_message=clean_error(str(exc)),
                        http_status=exc.http_status)
            return meta, None
        except Exception as exc:  # noqa: BLE001 - a hostile response the net layer missed
            meta.update(status=st.FAILED_TO_DOWNLOAD,
                        error_message=unexpected_error("downloading", exc))
            return meta, None
        data = response.body
        meta.update(original_bytes=len(data), final_url=response.url,
                    http_status=response.http_status,
                    content_type=(response.headers.get("Content-Type") or "")[:200] or None,
                    optout_checks=self._fetcher.optout_checks)
        # the blocklist first: a listed image is refused as such whatever else is wrong
        blocklist = self._blocklist
        sha256 = hashlib.sha256(data).hexdigest()
        listed = blocklist.match_sha256(bytes.fromhex(sha256)) if blocklist is not None else None
        if listed is not None:  # never decoded
            return self.blocked(meta, listed, sha256, None), None
        mismatch = hash_mismatch(data, expected_hash) if expected_hash is not None else None
        if mismatch:
            meta.update(status=st.HASH_MISMATCH, error_message=mismatch)
            return meta, None
        if data[:2] == b"\xff\xd8" and jpeg_is_truncated(data):
            meta.update(status=st.FAILED_TO_RESIZE,
                        error_message="truncated JPEG (no end-of-image marker)")
            return meta, None
        done = process_image(data, self.config.resize)
        meta.update(status=done.status, error_message=done.error, width=done.width,
                    height=done.height, original_width=done.original_width,
                    original_height=done.original_height, image_licenses=done.licenses)
        if done.status != st.SUCCESS:
            return meta, None
        listed = blocklist.match_phash(done.phash or 0) if blocklist is not None else None
        if listed is not None:
            return self.blocked(meta, listed, sha256, to_hex(done.phash or 0)), None
        meta.update(sha256=sha256, phash=to_hex(done.phash or 0))
        rule = excluded.after_download(meta["sha256"], meta["phash"])
        if rule is not None:  # its hashes stay in the row, the image is never written
            return {**removed_meta(rule), "sha256": meta["sha256"], "phash": meta["phash"]}, None
        return meta, done.data

    def download_shard(self, shard_id: int, arrow_path: str) -> None:
        self._setup()
        start = time.time()
        fs, path = fsspec.core.url_to_fs(arrow_path)
        with fs.open(path, "rb") as f:
            table = pa.ipc.open_file(f).read_all()
        schema = download_schema(table.schema)
        rows = table.to_pylist()
        writer = DownloadShardWriter(self.output_folder, shard_name(shard_id), schema,
                                     self.config.resize.encode_format)
        statuses: list[str] = []
        fetcher = self._fetcher
        assert fetcher is not None
        counted = fetcher.counts()
        try:
            results = polite_map(lambda r: self.process_row(r["url"], sample_texts(r),
                                                            r.get(EXPECTED_HASH),
                                                            r.get(INPUT_ERROR),
                                                            r.get("page_url"),
                                                            r.get("page_licenses")),
                                 rows, threads=self.config.thread_count, host_of=self.host_of,
                                 limiter=fetcher.hosts,
                                 defer=lambda r, why: self.deferred(why, r.get("page_licenses")))
            for row, (meta, image) in results:
                statuses.append(meta["status"])
                writer.write(image, row["key"], row["caption"], {**row, **meta})
        finally:
            writer.close()
        end = time.time()
        # the final shards' shape, with img2dataset's timings (bench/shards.py reads them),
        # then this shard's network counters (DNS cache, host limits; summed in the manifest)
        stats = shard_stats(statuses, duration=end - start, start_time=start, end_time=end)
        stats["network"] = network_delta(fetcher.counts(), counted)
        fsio.atomic_write_json(fsio.join(self.output_folder, f"{shard_name(shard_id)}_stats.json"), stats)
        fs.rm(path)


def run_distributor(downloader: GuardedDownloader, shards: Iterator[tuple[int, str]],
                    distributor: str, processes: int, spark_master: str | None,
                    max_shard_retry: int = 1,
                    on_start: Callable[[], None] = lambda: None,
                    lanes: int = 1) -> list[tuple[int, str]]:
    """Hand the shards to the distributor of that name, on at most ``processes`` processes
    and never more than there are shards; returns the shards that still failed.
    ``on_start`` is called once the workers exist (not at all when there is no shard).
    pyspark: ``lanes`` is how the shards were cut (:mod:`pipeline.shards.lanes`, one task per
    lane per Spark job)."""
    from pipeline.shards.lanes import run_spark_lanes
    from pipeline.shards.workers import run_pool

    # never more processes than shards: peek at the first `processes` shards
    shards = iter(shards)
    head = list(itertools.islice(shards, processes))
    if not head:
        return []
    processes, shards = len(head), itertools.chain(head, shards)
    if distributor == "multiprocessing":  # img2dataset's, with workers that die with us
        return run_pool(processes, downloader, shards, max_shard_retry, on_start)
    elif distributor == "pyspark":
        on_start()
        return run_spark_lanes(downloader, shards, lanes, processes, spark_master,
                               max_shard_retry)
    else:
        raise InputError(f"--distributor {distributor}: expected multiprocessing or pyspark")
