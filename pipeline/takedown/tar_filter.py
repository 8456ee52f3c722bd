"""Copying a tar without some samples, member bytes untouched: each kept member's header
blocks (pax/GNU long-name ones included) and data are copied as they are, so a rewritten
shard differs from the original only by the removed members. Streams one member at a time."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import BinaryIO

BLOCK = 512
RECORD = 20 * BLOCK  # tarfile's record size: archives are padded to a multiple of it


class TarFormatError(ValueError):
    pass


def _number(field: bytes) -> int:
    """A numeric header field: octal text, or GNU base-256 when the high bit is set."""
    if field[:1] in (b"\x80", b"\xff"):
        return int.from_bytes(field[1:], "big")
    text = field.split(b"\0", 1)[0].strip()
    return int(text, 8) if text else 0


def _padded(size: int) -> int:
    return -(-size // BLOCK) * BLOCK


def _pax_path(data: bytes) -> str | None:
    """The ``path`` record of a pax header (``LENGTH KEY=VALUE\\n`` records)."""
    pos = 0
    while pos < len(data) and data[pos:pos + 1] not in (b"", b"\0"):
        space = data.index(b" ", pos)
        length = int(data[pos:space])
        key, _, value = data[space + 1:pos + length - 1].partition(b"=")
        if key == b"path":
            return value.decode("utf-8")
        pos += length
    return None


def members(f: BinaryIO, name: str) -> Iterator[tuple[str, bytes]]:
    """``(member name, its raw bytes: extended headers, header, padded data)`` of every
    member of the tar ``f`` (``name`` for errors), up to the end-of-archive blocks."""
    pending, long_name = b"", None
    while True:
        header = f.read(BLOCK)
        if not header or not header.strip(b"\0"):
            if pending:
                raise TarFormatError(f"{name}: extended header without a member")
            return
        if len(header) < BLOCK:
            raise TarFormatError(f"{name}: truncated tar header")
        try:
            checksum, size = _number(header[148:156]), _number(header[124:136])
        except ValueError:
            raise TarFormatError(f"{name}: bad tar header at byte {f.tell() - BLOCK}") from None
        if checksum != sum(header) - sum(header[148:156]) + 8 * 32:
            raise TarFormatError(f"{name}: bad tar header checksum at byte {f.tell() - BLOCK}")
        kind = header[156:157]
        data = f.read(_padded(size))
        if len(data) < _padded(size):
            raise TarFormatError(f"{name}: truncated tar member")
        if kind in (b"x", b"L", b"g"):  # metadata of the next member: travels with it
            pending += header + data
            if kind == b"x":
                long_name = _pax_path(data[:size]) or long_name
            elif kind == b"L":
                long_name = data[:size].rstrip(b"\0").decode("utf-8")
            continue
        member = long_name or header[:100].split(b"\0", 1)[0].decode("utf-8")
        if not long_name and header[257:262] == b"ustar" and header[345:500].strip(b"\0"):
            member = header[345:500].split(b"\0", 1)[0].decode("utf-8") + "/" + member
        yield member, pending + header + data
        pending, long_name = b"", None


def sample_key(member: str) -> str:
    """webdataset's key of a member: its path up to the first '.' of its base name."""
    folder, _, base = member.rpartition("/")
    return (folder + "/" if folder else "") + base.split(".", 1)[0]


def filter_tar(src: BinaryIO, dst: BinaryIO, name: str, drop: Callable[[str], bool],
               on_dropped: Callable[[str, bytes], None] = lambda member, raw: None) -> int:
    """Copy the members of ``src`` whose key ``drop`` refuses to ``dst``, then the
    end-of-archive blocks and padding tarfile writes; ``on_dropped(member, raw)`` sees the
    others. Returns the number of members dropped."""
    written, dropped = 0, 0
    for member, raw in members(src, name):
        if drop(sample_key(member)):
            dropped += 1
            on_dropped(member, raw)
            continue
        dst.write(raw)
        written += len(raw)
    end = written + 2 * BLOCK
    dst.write(b"\0" * (2 * BLOCK + (-end) % RECORD))
    return dropped


def member_data(raw: bytes) -> bytes:
    """The data of a member from its raw bytes (:func:`members`): after the last header."""
    pos = 0
    while True:
        header = raw[pos:pos + BLOCK]
        size = _number(header[124:136])
        if header[156:157] not in (b"x", b"L", b"g"):
            return raw[pos + BLOCK:pos + BLOCK + size]
        pos += BLOCK + _padded(size)
