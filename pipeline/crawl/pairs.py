"""The unit every source produces: an (image URL, text) pair, plus the helpers that make
pairs comparable across sources (text normalisation, URL cleaning, a stable uid)."""

from __future__ import annotations

import html
from collections import Counter
from collections.abc import Iterable
from typing import NamedTuple
from urllib.parse import urldefrag, urljoin, urlsplit

from schemas.candidates import make_uid

SOURCES = ("warc", "wat", "live", "urls")
# Longest text kept (characters, after whitespace is collapsed): alt texts of a megabyte are
# page dumps or spam, not captions. CLIP reads 77 tokens (~300 characters).
DEFAULT_MAX_TEXT_CHARS = 1000
Texts = tuple[str, ...]


class Pair(NamedTuple):
    url: str
    text: str  # the best text: the first of ``texts``
    page_url: str | None
    source: str  # one of SOURCES
    # every distinct text of the image, in --text-fields order (MetaCLIP matches each)
    texts: Texts
    # provenance (schemas/candidates.py): the WARC/WAT/URL-list file, the record's offset
    # or the row's number in it, the page's fetch time (WARC-Date, or the live fetch)
    source_file: str | None = None
    source_offset: int | None = None
    fetch_time: str | None = None
    # the page's licence signals (pipeline.crawl.page_licenses), "kind=raw"
    page_licenses: tuple[str, ...] = ()


def make_pair(url: str, texts: Texts, page_url: str | None, source: str,
              source_file: str | None = None, source_offset: int | None = None,
              fetch_time: str | None = None, page_licenses: tuple[str, ...] = ()) -> Pair:
    return Pair(url, texts[0], page_url, source, texts, source_file, source_offset, fetch_time,
                page_licenses)


def pair_uid(url: str, texts: Texts) -> str:
    """The uid of an image and its texts (for a single text: ``make_uid(url, text)``)."""
    return make_uid(url, "\n".join(texts))  # normalized texts hold no newline


def normalize_text(text: object, unescape: bool = False) -> str:
    """Collapse every run of whitespace (Unicode included) to one space and strip; with
    ``unescape``, decode HTML entities first (for sources that carry raw attribute text;
    an HTML parser has already decoded them). Anything but a string gives ``""``."""
    if not text or not isinstance(text, str):
        return ""
    if unescape:
        text = html.unescape(text)
    return " ".join(text.split())


def clean_texts(raws: Iterable[object], counts: Counter[str], max_chars: int,
                unescape: bool = False) -> Texts:
    """The distinct non-empty normalized texts of ``raws``, in order, each at most
    ``max_chars`` long: a longer one is dropped and counted in ``texts_too_long`` (cutting
    it would make a caption the page never had). Non-strings count as ``non_string_texts``."""
    texts: list[str] = []
    for raw in raws:
        if raw is not None and not isinstance(raw, str):
            counts["non_string_texts"] += 1
            continue
        text = normalize_text(raw, unescape)
        if len(text) > max_chars:
            counts["texts_too_long"] += 1
        elif text and text not in texts:
            texts.append(text)
    return tuple(texts)


def resolve_url(ref: object, base: str | None) -> str | None:
    """``ref`` made absolute against ``base``, without fragment; None unless http(s)."""
    if not ref or not isinstance(ref, str) or (base is not None and not isinstance(base, str)):
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
