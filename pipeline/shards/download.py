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

A shard is done when its ``_stats.json`` exists (written last, atomically); a killed run
redoes only unfinished shards.
"""

from __future__ import annotations

import hashlib
import io
import math
import os
import sys
import threading
import time
import traceback
import warnings
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image, UnidentifiedImageError

from pipeline import fsio
from pipeline.core.net import FetchConfig, Fetcher, FetchError
from pipeline.errors import InputError
from pipeline.shards.filters import FilterConfig, caption_reason
from pipeline.shards.imaging import ResizeConfig, clean_error, process_image
from pipeline.shards.phash import to_hex
from pipeline.shards.writer import DownloadShardWriter

# Columns of the per-shard Arrow input files (img2dataset's convention: caption, url last).
INPUT_COLUMNS = ["key", "uid", "page_url", "source", "matched_entry_ids", "texts", "caption",
                 "url"]
KEY_WIDTH = 10
OOM_SHARD_COUNT = 5
RETRYABLE_STATUSES = ("failed_to_download", "failed_to_resize")


@dataclass(frozen=True)
class DownloadConfig:
    fetch: FetchConfig
    image_size: int = 256
    resize_mode: str = "keep_ratio"
    resize_only_if_bigger: bool = False
    encode_format: str = "jpg"
    encode_quality: int = 95
    max_pixels: int = 40_000_000
    thread_count: int = 64
    # caption rules are checked before fetching (see filters.py; DataComp's: > 2, > 5)
    min_words: int = 3
    min_chars: int = 6


def format_key(index: int) -> str:
    return f"{index:0{KEY_WIDTH}d}"


def shard_name(shard_id: int) -> str:
    return f"{shard_id:0{OOM_SHARD_COUNT}d}"


def download_schema(input_schema: pa.Schema) -> pa.Schema:
    """img2dataset's output columns after the input ones (key is already an input column)."""
    fields = [f for f in input_schema]
    fields += [
        pa.field("status", pa.string()),
        pa.field("error_message", pa.string()),
        pa.field("width", pa.int32()),
        pa.field("height", pa.int32()),
        pa.field("original_width", pa.int32()),
        pa.field("original_height", pa.int32()),
        pa.field("sha256", pa.string()),
        pa.field("original_bytes", pa.int64()),
        # pHash of the stored image, computed here where it is in hand (parallel workers)
        pa.field("phash", pa.string()),
    ]
    return pa.schema(fields)


# -- header checks (pure) -------------------------------------------------------------------

def header_size(data: bytes) -> tuple[int, int, str]:
    """(width, height, format) from the image header, without decoding pixels.

    Raises ``ValueError`` for bytes that are no image PIL knows, and PIL's
    ``DecompressionBombError`` for headers over twice PIL's own limit (~179 Mpixels)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            with Image.open(io.BytesIO(data)) as image:
                return int(image.width), int(image.height), str(image.format or "")
        except Image.DecompressionBombError:
            raise
        except UnidentifiedImageError:
            raise ValueError("not a decodable image: unknown or unsupported format") from None
        except Exception as exc:  # noqa: BLE001 - PIL raises many types for garbage
            raise ValueError(clean_error(f"not a decodable image: {exc}")) from exc


def jpeg_is_truncated(data: bytes) -> bool:
    """A JPEG whose last scan has no end-of-image marker after it was cut short (decoders
    would silently fill the rest grey). In entropy-coded data 0xFF is always stuffed, so
    FFD9 only appears as a marker."""
    last_scan = data.rfind(b"\xff\xda")
    return last_scan != -1 and data.find(b"\xff\xd9", last_scan) == -1


def precheck(data: bytes, max_pixels: int) -> tuple[str, str | None, int | None, int | None]:
    """(status, error, width, height) from the header: ``success`` means "go decode"."""
    try:
        width, height, fmt = header_size(data)
    except Image.DecompressionBombError as exc:
        return "filtered:max_pixels", str(exc), None, None
    except ValueError as exc:
        return "failed_to_resize", str(exc), None, None
    if width * height > max_pixels:
        return ("filtered:max_pixels",
                f"{width}x{height} = {width * height} pixels exceeds --max-pixels {max_pixels}",
                width, height)
    if fmt == "JPEG" and jpeg_is_truncated(data):
        return "failed_to_resize", "truncated JPEG (no end-of-image marker)", width, height
    return "success", None, width, height


# -- input sharding ---------------------------------------------------------------------------

def iter_candidate_batches(paths: list[str], batch_rows: int = 65536) -> Iterator[pa.Table]:
    """Validated candidate rows, file by file, in bounded batches."""
    from schemas import SchemaError, validate
    from schemas.candidates import CANDIDATES

    for path in paths:
        try:
            with fsspec.open(path, "rb") as f:
                parquet = pq.ParquetFile(f)
                for batch in parquet.iter_batches(batch_size=batch_rows):
                    table = pa.Table.from_batches([batch])
                    yield validate(table, CANDIDATES, where=path)
        except SchemaError as exc:
            raise InputError(str(exc)) from exc
        except (OSError, pa.ArrowInvalid) as exc:
            raise InputError(f"{path}: not a readable candidates Parquet file: {exc}") from exc


def candidate_files(candidates: str) -> list[str]:
    """``part-*.parquet`` under a candidates folder, or the given file(s)/glob; each file's
    columns are checked up front (from the footer) so a bad file fails before any download."""
    from schemas import SchemaError, validate
    from schemas.candidates import CANDIDATES

    if candidates.endswith(".parquet") or any(c in candidates for c in "*?["):
        files = fsio.expand([candidates], "candidates")
    else:
        files = fsio.expand([fsio.join(candidates, "part-*.parquet")], "candidates")
    for path in files:
        try:
            with fsspec.open(path, "rb") as f:
                schema = pq.read_schema(f)
            validate(schema.empty_table(), CANDIDATES, where=path)
        except SchemaError as exc:
            raise InputError(str(exc)) from exc
        except (OSError, pa.ArrowInvalid) as exc:
            raise InputError(f"{path}: not a readable candidates Parquet file: {exc}") from exc
    return files


def to_input_table(table: pa.Table, first_index: int) -> pa.Table:
    """Candidate rows -> the Arrow columns the downloader reads."""
    keys = pa.array([format_key(first_index + i) for i in range(table.num_rows)], pa.string())
    # all kept texts of the image (MetaCLIP); candidates written before they existed: the one
    texts = (table.column("texts") if "texts" in table.column_names else
             pa.array([[t] for t in table.column("text").to_pylist()], pa.list_(pa.string())))
    return pa.table({
        "key": keys,
        "uid": table.column("uid"),
        "page_url": table.column("page_url"),
        "source": table.column("source"),
        "matched_entry_ids": table.column("matched_entry_ids"),
        "texts": texts,
        "caption": table.column("text"),
        "url": table.column("url"),
    })


def write_input_shards(tables: Iterator[pa.Table], tmp_dir: str, rows_per_shard: int,
                       done: set[int]) -> Iterator[tuple[int, str]]:
    """Cut the row stream into Arrow shards of ``rows_per_shard`` rows, skipping ``done``.

    Yields (shard_id, path) — the iterable img2dataset's distributors consume."""
    fsio.makedirs(tmp_dir)
    buffer: list[pa.Table] = []
    buffered = 0
    shard_id = 0

    def flush(rows: list[pa.Table]) -> tuple[int, str] | None:
        nonlocal shard_id
        current, shard_id = shard_id, shard_id + 1
        if current in done:
            return None
        path = fsio.join(tmp_dir, f"{shard_name(current)}.arrow")
        table = pa.concat_tables(rows).combine_chunks()
        with fsspec.open(path, "wb") as f, pa.ipc.new_file(f, table.schema) as writer:
            writer.write_table(table)
        return current, path

    for table in tables:
        offset = 0
        while offset < table.num_rows:
            take = min(rows_per_shard - buffered, table.num_rows - offset)
            buffer.append(table.slice(offset, take))
            buffered += take
            offset += take
            if buffered == rows_per_shard:
                item = flush(buffer)
                buffer, buffered = [], 0
                if item:
                    yield item
    if buffered:
        item = flush(buffer)
        if item:
            yield item


def done_shards(folder: str) -> set[int]:
    fs, _, (root,) = fsspec.get_fs_token_paths(folder)
    if not fs.exists(root):
        return set()
    return {int(p.rsplit("/", 1)[-1].split("_")[0]) for p in fs.glob(root + "/*_stats.json")}


# -- the per-shard downloader -------------------------------------------------------------------

# One Fetcher per worker process and config, filled lazily in the worker: img2dataset's
# distributors unpickle the downloader for every shard, and the robots.txt cache must outlive
# a shard. Nothing on the launcher fills it.
_FETCHERS: dict[FetchConfig, Fetcher] = {}
_FETCHERS_LOCK = threading.Lock()


def process_fetcher(config: FetchConfig) -> Fetcher:
    with _FETCHERS_LOCK:
        if config not in _FETCHERS:
            _FETCHERS[config] = Fetcher(config)
        return _FETCHERS[config]


def unordered_map(pool: ThreadPoolExecutor, fn, items: list, window: int) -> Iterator[tuple]:
    """``(item, fn(item))`` as they complete, with at most ``window`` tasks in flight: one
    slow image never holds back the writing of the others (img2dataset's ``imap_unordered``
    does the same), and finished results cannot pile up. The download shard's rows are
    therefore in completion order; the Beam job orders everything by key."""
    pending: dict[Future, object] = {}
    for item in items:
        pending[pool.submit(fn, item)] = item
        if len(pending) >= window:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                yield pending.pop(future), future.result()
    while pending:
        done, _ = wait(pending, return_when=FIRST_COMPLETED)
        for future in done:
            yield pending.pop(future), future.result()


class GuardedDownloader:
    """Called by img2dataset's distributors with ``(shard_id, arrow_path)``; returns
    ``(ok, row)`` like img2dataset's ``Downloader``. Picklable: heavy state is built lazily
    in the worker process."""

    def __init__(self, config: DownloadConfig, output_folder: str):
        self.config = config
        self.output_folder = output_folder
        self._fetcher: Fetcher | None = None
        self._resize = ResizeConfig()

    def __getstate__(self):
        return {"config": self.config, "output_folder": self.output_folder}

    def __setstate__(self, state):
        self.config, self.output_folder = state["config"], state["output_folder"]
        self._fetcher, self._resize = None, ResizeConfig()

    def _setup(self) -> None:
        if self._fetcher is None:
            self._fetcher = process_fetcher(self.config.fetch)
            self._resize = ResizeConfig(
                image_size=self.config.image_size, resize_mode=self.config.resize_mode,
                resize_only_if_bigger=self.config.resize_only_if_bigger,
                encode_format=self.config.encode_format, encode_quality=self.config.encode_quality,
                max_pixels=self.config.max_pixels)

    def __call__(self, row: tuple[int, str]) -> tuple[bool, tuple[int, str]]:
        try:
            self.download_shard(*row)
            return True, row
        except Exception as exc:  # noqa: BLE001 - img2dataset's contract: report, retry shard
            traceback.print_exc()
            print(f"shard {row[0]} failed with error {exc}")
            return False, row

    def process(self, url: str, caption: str | None) -> tuple[dict, bytes | None]:
        """Fetch, bound, decode, resize one URL: (meta fields, encoded image or None)."""
        assert self._fetcher is not None
        meta: dict = {"status": None, "error_message": None, "width": None, "height": None,
                      "original_width": None, "original_height": None, "sha256": None,
                      "original_bytes": None, "phash": None}
        reason = caption_reason(caption, FilterConfig(min_words=self.config.min_words,
                                                      min_chars=self.config.min_chars))
        if reason:
            meta.update(status=f"filtered:{reason}", error_message=f"basic filter: {reason}")
            return meta, None
        try:
            data = self._fetcher.fetch(url)
        except FetchError as exc:
            meta.update(status=exc.status, error_message=clean_error(str(exc)))
            return meta, None
        meta["original_bytes"] = len(data)
        if data[:2] == b"\xff\xd8" and jpeg_is_truncated(data):
            meta.update(status="failed_to_resize",
                        error_message="truncated JPEG (no end-of-image marker)")
            return meta, None
        done = process_image(data, self._resize)
        meta.update(status=done.status, error_message=done.error, width=done.width,
                    height=done.height, original_width=done.original_width,
                    original_height=done.original_height)
        if done.status != "success":
            return meta, None
        meta.update(sha256=hashlib.sha256(data).hexdigest(), phash=to_hex(done.phash or 0))
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
                                     self.config.encode_format)
        statuses: Counter[str] = Counter()
        counts: Counter[str] = Counter()
        try:
            with ThreadPoolExecutor(self.config.thread_count) as pool:
                results = unordered_map(pool, lambda r: self.process(r["url"], r["caption"]), rows,
                                        2 * self.config.thread_count)
                for row, (meta, image) in results:
                    full = {**row, **meta}
                    statuses[meta["status"] if meta["status"] == "success"
                             else (meta["error_message"] or meta["status"])] += 1
                    counts[meta["status"]] += 1
                    writer.write(image, row["key"], row["caption"], full)
        finally:
            writer.close()
        end = time.time()
        stats = {
            "count": len(rows),
            "successes": counts["success"],
            "failed_to_download": counts["failed_to_download"],
            "failed_to_resize": counts["failed_to_resize"],
            "filtered": {k: v for k, v in sorted(counts.items()) if k.startswith("filtered:")},
            "duration": end - start, "start_time": start, "end_time": end,
            "status_dict": dict(statuses.most_common(1000)),
        }
        fsio.atomic_write_json(fsio.join(self.output_folder, f"{shard_name(shard_id)}_stats.json"), stats)
        fs.rm(path)


def run_distributor(downloader: GuardedDownloader, shards: Iterator[tuple[int, str]],
                    distributor: str, processes: int, spark_master: str | None,
                    max_shard_retry: int = 1) -> list[tuple[int, str]]:
    """Hand the shards to the distributor of that name; returns the shards that still failed
    (multiprocessing; Spark's failures show as shards without ``_stats.json``)."""
    from img2dataset.distributor import pyspark_distributor

    from pipeline.shards.workers import run_pool

    if distributor == "multiprocessing":  # img2dataset's, with workers that die with us
        return run_pool(processes, downloader, shards, max_shard_retry)
    elif distributor == "pyspark":
        # local Spark workers must run this interpreter (the one with this package)
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        session = None
        if spark_master:
            from pyspark.sql import SparkSession

            session = (SparkSession.builder.master(spark_master).appName("wit-shards")
                       .config("spark.ui.enabled", "false").getOrCreate())
        try:
            pyspark_distributor(processes, downloader, shards, 1000, max_shard_retry)
        finally:
            if session is not None:
                session.stop()
        return []
    else:
        raise InputError(f"--distributor {distributor}: expected multiprocessing or pyspark")


def shard_count(rows: int, rows_per_shard: int) -> int:
    return math.ceil(rows / rows_per_shard) if rows else 0
