"""Robust iteration over WARC/WAT files (warcio), shared by the WARC and WAT sources.

Bad records are skipped and counted instead of ending the file: after a record that warcio
cannot parse, reading resumes at the next gzip member (``.gz``) or the next ``WARC/1.``
header (uncompressed); a gzip file that is one big member instead of one member per record
(which warcio refuses to iterate) is re-read as a plain stream. A file of which not a single
WARC record can be read raises :class:`InputError` naming it.
"""

from __future__ import annotations

import gzip
import zlib
from collections import Counter
from collections.abc import Iterator
from typing import IO

import fsspec
from warcio.archiveiterator import ArchiveIterator
from warcio.exceptions import ArchiveLoadFailed
from warcio.recordloader import ArcWarcRecord

from pipeline.errors import InputError

GZIP_MAGIC = b"\x1f\x8b\x08"
WARC_MAGIC = b"WARC/1."
READ_ERRORS = (ArchiveLoadFailed, EOFError, zlib.error, gzip.BadGzipFile, ValueError, OSError)
_SCAN_CHUNK = 1 << 20


def _find_next(fh: IO[bytes], start: int, magic: bytes) -> int | None:
    """Offset of the next ``magic`` at or after ``start`` (None at EOF)."""
    fh.seek(start)
    carry = b""
    pos = start
    while True:
        chunk = fh.read(_SCAN_CHUNK)
        if not chunk:
            return None
        data = carry + chunk
        found = data.find(magic)
        if found >= 0:
            return pos - len(carry) + found
        carry = data[-(len(magic) - 1):]
        pos += len(chunk)


def iter_records(path: str, counts: Counter[str], max_record_bytes: int
                 ) -> Iterator[tuple[ArcWarcRecord, bytes]]:
    """Yield ``(record, payload)`` for every readable record of ``path`` (payload truncated
    to ``max_record_bytes``); bad stretches are counted in ``counts['skipped:<why>']``."""
    try:
        raw = fsspec.open(path, "rb").open()
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: cannot open: {exc}") from exc
    good = 0
    with raw as fh:
        magic = GZIP_MAGIC if fh.read(3) == GZIP_MAGIC else WARC_MAGIC
        start: int | None = 0
        while start is not None:
            fh.seek(start)
            iterator = ArchiveIterator(fh)
            offset = start
            try:
                for record in iterator:
                    offset = start + iterator.offset
                    payload = record.content_stream().read(max_record_bytes + 1)
                    if len(payload) > max_record_bytes:
                        counts["truncated_records"] += 1
                        payload = payload[:max_record_bytes]
                    elif getattr(record.raw_stream, "limit", 0) > 0:
                        # the file ends inside this record: use what is there, say so
                        counts["truncated_records"] += 1
                    if not record.format.startswith("warc"):
                        counts["skipped:non_warc_record"] += 1
                        continue
                    good += 1
                    yield record, payload
                start = None
                if good == 0 and counts["skipped:non_warc_record"]:
                    raise InputError(f"{path}: not a readable WARC file: no WARC record in "
                                     f"{counts['skipped:non_warc_record']} record(s) read")
            except READ_ERRORS as exc:
                if "non-chunked gzip" in str(exc):
                    counts["recovered:non_chunked_gzip"] += 1
                    yield from _iter_single_member_gzip(path, counts, max_record_bytes, good)
                    return
                if good == 0:
                    raise InputError(f"{path}: not a readable WARC file: "
                                     f"{' '.join(str(exc).split())[:200]}") from exc
                counts["skipped:bad_record"] += 1
                start = _find_next(fh, offset + 1, magic)


def _iter_single_member_gzip(path: str, counts: Counter[str], max_record_bytes: int,
                             already: int) -> Iterator[tuple[ArcWarcRecord, bytes]]:
    """Re-read a one-member .warc.gz as a stream, skipping the ``already`` yielded records."""
    seen = 0
    with fsspec.open(path, "rb") as raw, gzip.GzipFile(fileobj=raw) as fh:
        try:
            for record in ArchiveIterator(fh):
                payload = record.content_stream().read(max_record_bytes + 1)
                if not record.format.startswith("warc"):
                    counts["skipped:non_warc_record"] += 1
                    continue
                seen += 1
                if seen <= already:
                    continue
                yield record, payload[:max_record_bytes]
        except READ_ERRORS:
            counts["skipped:bad_record"] += 1
    if seen == 0:
        raise InputError(f"{path}: not a readable WARC file: no WARC record found")
