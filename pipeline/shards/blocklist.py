"""``wit shards --block-hashes FILE``: images whose bytes or look are on a list of known-bad
content are refused at download, counted (``filtered:blocklist``) and never written: not to
the work tars, not to the shards, not to any cache. Only their hashes are kept (the row's
``sha256``/``phash`` columns and a log line), the hook that screening against published hash
lists needs.

The file (UTF-8 text, one entry a line; docs/consent.md, "Blocklists")::

    # comment lines and blank lines are ignored; so is text after " #"
    sha256:<64 hex digits>        the exact bytes as served
    <64 hex digits>               the same (published lists are often bare sha256 lines)
    phash:<16 hex digits>         a 64-bit pHash (pipeline.shards.phash) within RADIUS bits
    phash:<16 hex digits> RADIUS  ... within RADIUS bits (0-16; default 4)

A line that is none of these is an error naming the file and the line (the run stops before
anything is downloaded). The sha256 of a download is checked before its bytes are decoded;
the pHash after decoding, on the same hash the near-duplicate search uses, so resized and
re-encoded copies of a listed image are caught within the radius. Memory: 32 bytes per sha256
and 9 per pHash, held once per download process.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

import fsspec
import numpy as np

from pipeline.core.errors import InputError
from pipeline.shards.phash import HASH_BITS, from_hex

DEFAULT_RADIUS = 4
MAX_RADIUS = 16  # beyond this unrelated images match (a random pair is ~32 bits apart)
_SHA256 = re.compile(r"(?:sha256:)?([0-9a-fA-F]{64})")
_PHASH = re.compile(r"phash:([0-9a-fA-F]{16})(?:\s+(\d{1,3}))?")


@dataclass(frozen=True)
class Match:
    kind: str  # "sha256" or "phash"
    line: int  # line of the file that matched
    distance: int = 0  # Hamming distance (pHash)


class Blocklist:
    """The parsed file: a set of sha256 digests and arrays of pHashes, radii and lines."""

    def __init__(self, sha256: dict[bytes, int], phashes: list[tuple[int, int, int]]):
        self.sha256 = sha256  # digest -> line
        self.phash = np.array([h for h, _, _ in phashes], dtype=np.uint64)
        self.radius = np.array([r for _, r, _ in phashes], dtype=np.uint8)
        self.lines = np.array([n for _, _, n in phashes], dtype=np.int64)

    def __len__(self) -> int:
        return len(self.sha256) + len(self.phash)

    def match_sha256(self, digest: bytes) -> Match | None:
        line = self.sha256.get(digest)
        return Match("sha256", line) if line is not None else None

    def match_phash(self, value: int) -> Match | None:
        """The closest listed pHash within its radius of ``value`` (first line on ties)."""
        if not len(self.phash):
            return None
        distance = np.bitwise_count(self.phash ^ np.uint64(value))
        inside = distance <= self.radius
        if not inside.any():
            return None
        best = int(np.argmin(np.where(inside, distance, HASH_BITS + 1)))
        return Match("phash", int(self.lines[best]), int(distance[best]))


def parse_line(text: str) -> tuple[str, bytes | tuple[int, int]] | None:
    """One line: ``("sha256", digest)``, ``("phash", (hash, radius))``, None for a blank or
    comment line; ValueError saying what is wrong otherwise."""
    text = text.split(" #", 1)[0].strip()
    if not text or text.startswith("#"):
        return None
    m = _SHA256.fullmatch(text)
    if m:
        return "sha256", bytes.fromhex(m.group(1))
    m = _PHASH.fullmatch(text)
    if m:
        radius = DEFAULT_RADIUS if m.group(2) is None else int(m.group(2))
        if radius > MAX_RADIUS:
            raise ValueError(f"pHash radius {radius} exceeds {MAX_RADIUS} bits")
        return "phash", (from_hex(m.group(1)), radius)
    raise ValueError("expected 'sha256:<64 hex digits>', '<64 hex digits>' or "
                     "'phash:<16 hex digits> [RADIUS]'")


def read_blocklist(path: str) -> Blocklist:
    """The blocklist at ``path`` (an fsspec path); :class:`InputError` naming the file and
    line for an unreadable file or a bad line."""
    sha256: dict[bytes, int] = {}
    phashes: list[tuple[int, int, int]] = []
    try:
        with fsspec.open(path, "rt", encoding="utf-8") as f:
            for number, raw in enumerate(f, 1):
                try:
                    entry = parse_line(raw)
                except ValueError as exc:
                    raise InputError(f"{path}: line {number}: {exc}: {raw.strip()[:80]!r}") from None
                if entry is None:
                    continue
                kind, value = entry
                if kind == "sha256":
                    assert isinstance(value, bytes)
                    sha256.setdefault(value, number)
                else:
                    assert isinstance(value, tuple)
                    phashes.append((value[0], value[1], number))
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read the blocklist: {exc}") from None
    return Blocklist(sha256, phashes)


@functools.cache
def process_blocklist(path: str, fingerprint: str) -> Blocklist:
    """The download process's one parsed list (keyed by the file's sha256, so a list that
    changed since the launcher checked it is read anew -- and refused if bad)."""
    return read_blocklist(path)
