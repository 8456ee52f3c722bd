"""Robust iteration over WARC/WAT files (warcio), shared by the WARC and WAT sources.

A ``.gz`` file is read as what ``zcat`` gives: the decompressed bytes of all its gzip
members, in order (:class:`ForgivingGunzip`). So a file whose members do not line up with
records (one member for the whole file, or members split in the middle of records) reads
like the plain WARC it decompresses to; a member that does not decompress is skipped up to
the next gzip header and counted. Records are parsed from that plain stream; after a record
that warcio cannot parse, reading resumes at the next ``WARC/1.`` line and the record is
counted as ``skipped:bad_record``. A file of which not a single WARC record can be read
raises :class:`InputError` naming it.
"""

from __future__ import annotations

import bisect
import zlib
from collections import Counter
from collections.abc import Iterator
from typing import IO

import fsspec
from warcio.archiveiterator import ArchiveIterator
from warcio.recordloader import ArcWarcRecord

from pipeline.core.errors import InputError
from schemas.status import skipped

GZIP_MAGIC = b"\x1f\x8b\x08"
WARC_MAGIC = b"WARC/1."
_CHUNK = 1 << 20


def _find_next(fh: IO[bytes] | ForgivingGunzip, start: int, magic: bytes) -> int | None:
    """Offset of the next ``magic`` at or after ``start`` (None at EOF)."""
    fh.seek(start)
    carry = b""
    pos = start
    while True:
        chunk = fh.read(_CHUNK)
        if not chunk:
            return None
        data = carry + chunk
        found = data.find(magic)
        if found >= 0:
            return pos - len(carry) + found
        carry = data[-(len(magic) - 1):]
        pos += len(chunk)


class ForgivingGunzip:
    """A seekable read-only stream of the decompressed bytes of every gzip member of ``fh``.

    Memory stays flat: data is inflated chunk by chunk. The start of every member seen is
    remembered as an (uncompressed, compressed) offset pair, so seeking backwards re-inflates
    from the closest member start instead of from the beginning of the file. A member that
    raises ``zlib.error`` is counted in ``counts['skipped:bad_gzip_member']`` and reading
    goes on at the next gzip header; a file that ends inside a member is counted in
    ``counts['truncated_gzip']``."""

    def __init__(self, fh: IO[bytes], counts: Counter[str]):
        self.fh, self.counts = fh, counts
        self.starts: list[tuple[int, int]] = [(0, 0)]
        self._restart(0, 0)

    def _restart(self, upos: int, cpos: int) -> None:
        self.fh.seek(cpos)
        self.member_cpos = cpos
        self.read_cpos = cpos  # compressed bytes consumed from fh so far
        self.produced = upos  # uncompressed offset of the end of self.buf
        self.buf = b""
        self.pending = b""  # compressed bytes read but not yet inflated
        self.inflater = zlib.decompressobj(31)
        self.done = False

    def _new_member(self, cpos: int, pending: bytes) -> None:
        if self.produced > self.starts[-1][0]:
            self.starts.append((self.produced, cpos))
        self.member_cpos = cpos
        self.inflater = zlib.decompressobj(31)
        self.pending = pending

    def _read_compressed(self) -> bytes:
        data = self.fh.read(_CHUNK)
        self.read_cpos += len(data)
        return data

    def _inflate_more(self) -> None:
        """Append some decompressed bytes to ``buf``, or set ``done``."""
        while True:
            if self.inflater.eof:  # the member ended: the next one starts right after
                rest = self.inflater.unused_data or self._read_compressed()
                if not rest:
                    self.done = True
                    return
                self._new_member(self.read_cpos - len(rest), rest)
            if not self.pending:
                self.pending = self._read_compressed()
                if not self.pending:  # the file ends inside a member
                    self.counts["truncated_gzip"] += 1
                    self.done = True
                    return
            try:
                # bounded output per call: a gzip bomb never sits in memory whole
                out = self.inflater.decompress(self.pending, _CHUNK)
            except zlib.error:
                self.counts[skipped("bad_gzip_member")] += 1
                nxt = _find_next(self.fh, self.member_cpos + 1, GZIP_MAGIC)
                if nxt is None:
                    self.done = True
                    return
                self.fh.seek(nxt)
                self.read_cpos = nxt
                self._new_member(nxt, b"")
                continue
            self.pending = self.inflater.unconsumed_tail
            if out:
                self.buf += out
                self.produced += len(out)
                return

    def is_member_start(self, upos: int) -> bool:
        i = bisect.bisect_right(self.starts, (upos, 1 << 62)) - 1
        return self.starts[i][0] == upos

    def compressed_start(self, upos: int) -> int | None:
        """The file offset of the gzip member that starts at ``upos`` (None: no member
        starts there)."""
        i = bisect.bisect_right(self.starts, (upos, 1 << 62)) - 1
        return self.starts[i][1] if self.starts[i][0] == upos else None

    def read(self, size: int = -1) -> bytes:
        want = _CHUNK if size is None or size < 0 else size
        while len(self.buf) < want and not self.done:
            self._inflate_more()
        out, self.buf = self.buf[:want], self.buf[want:]
        return out

    def tell(self) -> int:
        return self.produced - len(self.buf)

    def seek(self, target: int, whence: int = 0) -> int:
        if whence != 0:
            raise OSError("ForgivingGunzip seeks from the start only")
        if target < self.tell():
            upos, cpos = self.starts[bisect.bisect_right(self.starts, (target, 1 << 62)) - 1]
            self._restart(upos, cpos)
        while self.tell() < target:
            if not self.read(min(_CHUNK, target - self.tell())):
                break
        return self.tell()


def iter_records(path: str, counts: Counter[str], max_record_bytes: int
                 ) -> Iterator[tuple[ArcWarcRecord, bytes, int]]:
    """Yield ``(record, payload, offset)`` for every readable record of ``path`` (payload
    truncated to ``max_record_bytes``); bad stretches are counted in
    ``counts['skipped:<why>']``. ``offset``: where the record starts in the file -- the
    offset of its gzip member when it starts one (Common Crawl's per-record gzip: the
    offset its index gives), else its offset in the decompressed stream."""
    try:
        raw = fsspec.open(path, "rb").open()
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: cannot open: {exc}") from exc
    good = 0
    first_error = ""
    with raw as fh:
        stream: IO[bytes] | ForgivingGunzip = fh
        if fh.read(3) == GZIP_MAGIC:
            stream = ForgivingGunzip(fh, counts)
        start: int | None = 0
        while start is not None:
            stream.seek(start)
            offset = start
            done_at: int | None = None  # offset of the last record handled in this attempt
            try:
                iterator = ArchiveIterator(stream)
                for record in iterator:
                    offset = iterator.offset
                    at = offset
                    if isinstance(stream, ForgivingGunzip):
                        member = stream.compressed_start(offset)
                        if member is None:
                            counts["recovered:gzip_members_not_per_record"] = 1
                        else:
                            at = member
                    payload = record.content_stream().read(max_record_bytes + 1)
                    if len(payload) > max_record_bytes:
                        counts["truncated_records"] += 1
                        payload = payload[:max_record_bytes]
                    elif getattr(record.raw_stream, "limit", 0) > 0:
                        # the file ends inside this record: use what is there, say so
                        counts["truncated_records"] += 1
                    done_at = offset
                    if not record.format.startswith("warc"):
                        counts[skipped("non_warc_record")] += 1
                        continue
                    good += 1
                    yield record, payload, at
                start = None
            # warcio raises many types on strangers' bytes (ArchiveLoadFailed, ValueError,
            # AttributeError on a header block cut short, ...): any of them costs one record
            except Exception as exc:  # noqa: BLE001
                start = _find_next(stream, offset + 1, WARC_MAGIC)
                if done_at is not None and done_at == offset:
                    # the header after a good record failed: retry from that record alone, so
                    # that it is counted once, when it fails at the start of an attempt
                    continue
                first_error = first_error or " ".join(str(exc).split())[:200]
                counts[skipped("bad_record")] += 1
    if good == 0:
        why = first_error or (f"no WARC record in {counts[skipped('non_warc_record')]} "
                              "record(s) read" if counts[skipped("non_warc_record")]
                              else "no WARC record found")
        raise InputError(f"{path}: not a readable WARC file: {why}")
