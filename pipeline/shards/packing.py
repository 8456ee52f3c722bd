"""Compact byte codecs for what the shards job shuffles in bulk (docs/scaling.md).

Beam's in-process runner holds a shuffle's values until the next stage runs, each as its
own Python object (a tuple of a str and a NamedTuple's bytes: ~190 bytes for a near-dedup
member). The LSH groups see every representative hash once per table (40 by default), so
their members are packed instead: many members of one group key in one ``bytes`` value,
each member a few bytes (:func:`pack_member`), appended per bundle by
:class:`pipeline.shards.near_duplicates.PackGroups`.

A member is ``(pHash, Ranked)``: the 64-bit pHash as 8 little-endian bytes, then varints of
the original pixels, the key's width and the key as a number. Keys are the job's decimal
keys (``reader.format_key``: digits, zero-padded), so width and number give the key back.
"""

from __future__ import annotations

from collections.abc import Iterator

from pipeline.shards.dedup import Ranked


def write_varint(out: bytearray, value: int) -> None:
    """Unsigned LEB128: 7 bits per byte, low first, the high bit set on all but the last."""
    if value < 0:
        raise ValueError(f"varint of a negative number: {value}")
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)


def read_varint(data: bytes, at: int) -> tuple[int, int]:
    """(value, offset after it) of the varint at ``at``."""
    value = shift = 0
    while True:
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, at
        shift += 7


def pack_member(phash: int, ranked: Ranked, out: bytearray) -> None:
    """Appends one near-dedup member to ``out``."""
    pixels, key = -ranked.preference[0], ranked.key
    if ranked.preference[1] != key or not key.isascii() or not key.isdigit() or pixels < 0:
        raise ValueError(f"key {key!r}: not a dedup member of the shards job "
                         f"(preference {ranked.preference!r})")
    out += phash.to_bytes(8, "little")
    write_varint(out, pixels)
    write_varint(out, len(key))
    write_varint(out, int(key))


def unpack_members(data: bytes) -> Iterator[tuple[int, Ranked]]:
    """The ``(pHash, Ranked)`` members packed in ``data`` (:func:`pack_member`), in order."""
    at, end = 0, len(data)
    while at < end:
        phash = int.from_bytes(data[at:at + 8], "little")
        pixels, at = read_varint(data, at + 8)
        width, at = read_varint(data, at)
        number, at = read_varint(data, at)
        key = f"{number:0{width}d}"
        yield phash, Ranked((-pixels, key), key)
