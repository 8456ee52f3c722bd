"""The unit every source produces: an (image URL, text) pair, plus the helpers that make
pairs comparable across sources (text normalisation, URL cleaning, a stable uid)."""

from __future__ import annotations

import hashlib
import html
from typing import NamedTuple
from urllib.parse import urldefrag, urljoin, urlsplit

SOURCES = ("warc", "wat", "live", "urls")


class Pair(NamedTuple):
    url: str
    text: str
    page_url: str | None
    source: str  # one of SOURCES


def make_uid(url: str, text: str) -> str:
    """Stable id of a pair: 32 hex digits of BLAKE2b over url and text (same pair, same uid,
    whichever page or source it came from)."""
    return hashlib.blake2b(f"{url}\x00{text}".encode(), digest_size=16).hexdigest()


def normalize_text(text: str | None, unescape: bool = False) -> str:
    """Collapse every run of whitespace (Unicode included) to one space and strip; with
    ``unescape``, decode HTML entities first (for sources that carry raw attribute text;
    an HTML parser has already decoded them)."""
    if not text:
        return ""
    if unescape:
        text = html.unescape(text)
    return " ".join(text.split())


def resolve_url(ref: str | None, base: str | None) -> str | None:
    """``ref`` made absolute against ``base``, without fragment; None unless http(s)."""
    if not ref:
        return None
    ref = ref.strip()
    if not ref:
        return None
    try:
        absolute = urljoin(base, ref) if base else ref
        absolute = urldefrag(absolute)[0]
        parts = urlsplit(absolute)
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return None
    return absolute
