"""(image URL, text) pairs from one HTML page (pure; lxml).

Every ``<img>`` is one candidate. Its URL is the largest ``srcset`` candidate that is an
http(s) URL, else ``src``, resolved against ``<base href>`` (itself resolved against the page
URL) and the page URL; only http(s) URLs are kept. Its texts are the distinct non-empty
values of the fields in ``text_fields``, in that order: ``alt``, ``title``,
``data-image-title`` (MetaCLIP's three) and the ``<figcaption>`` of an enclosing ``<figure>``
(our extension); the first is the image's best text. Each image lands in exactly one
counter: ``with_text`` (emitted), ``skipped:empty_text``, ``skipped:text_too_long`` (every
text longer than ``max_text_chars``) or ``skipped:no_http_url`` -- or, when the page opts
out (``<meta name="robots" content="noai">``, ``<meta name="tdm-reservation" content="1">``
or its response headers: :mod:`pipeline.crawl.optout`), every image in
``opted_out:<reason>``. A page's licence signals (``rel="license"``, Creative Commons links,
``dcterms``/``dc.rights`` meta) go with each of its images (:mod:`pipeline.crawl.page_licenses`).
"""

from __future__ import annotations

import codecs
import re
from collections import Counter
from collections.abc import Sequence
from typing import NamedTuple

import lxml.etree
import lxml.html
from urllib3 import HTTPHeaderDict

from pipeline.crawl.optout import (
    OPTED_OUT_PAGES,
    PageOptOut,
    header_opt_out,
    meta_opt_out,
    opted_out,
)
from pipeline.crawl.page_licenses import page_license_signals
from pipeline.crawl.pairs import DEFAULT_MAX_TEXT_CHARS, Texts, clean_texts, resolve_url
from schemas.status import skipped

TEXT_FIELDS = ("alt", "title", "data-image-title", "figcaption")
_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_.:\-]+)""", re.I)
_XML_DECL = re.compile(r"^\s*<\?xml[^>]*\?>")
_SRCSET_DESCRIPTOR = re.compile(r"^(\d+(?:\.\d+)?)([wxh])$", re.I)


def _known_codec(name: str | None) -> str | None:
    """The text encoding called ``name``; None for unknown names, for codecs that are no
    text encodings (``base64``, ``rot13``: ``bytes.decode`` refuses them) and for names
    ``codecs`` refuses outright (an embedded NUL)."""
    if not name:
        return None
    try:
        info = codecs.lookup(name.strip().strip("\"'"))
    except (LookupError, ValueError, TypeError):
        return None
    return info.name if getattr(info, "_is_text_encoding", True) else None


def charset_from_content_type(content_type: str | None) -> str | None:
    """``text/html; charset=ISO-8859-1`` -> ``iso8859-1`` (None when absent or unknown)."""
    if not content_type:
        return None
    match = re.search(r"charset\s*=\s*([^;\s]+)", content_type, re.I)
    return _known_codec(match.group(1)) if match else None


def decode_html(data: bytes, header_charset: str | None = None) -> str:
    """Bytes -> text: the HTTP charset, else a ``<meta charset>`` in the first 4 KB, else
    UTF-8 if it decodes cleanly, else windows-1252 (the HTML default)."""
    candidates = [_known_codec(header_charset)]
    match = _META_CHARSET.search(data[:4096])
    if match:
        candidates.append(_known_codec(match.group(1).decode("ascii", "replace")))
    for codec in candidates:
        if codec:
            try:
                return data.decode(codec, errors="replace")
            except UnicodeError:  # idna & co. take no "replace"
                continue
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")


def parse_srcset(srcset: str) -> list[tuple[str, list[str]]]:
    """``[(url, [descriptor, ...]), ...]`` following the HTML spec's tokenizer: a URL is a
    run of non-space characters (trailing commas end the candidate), descriptors run to the
    next comma. So ``img,1.jpg 2x`` keeps its comma."""
    candidates = []
    pos, n = 0, len(srcset)
    while pos < n:
        while pos < n and (srcset[pos].isspace() or srcset[pos] == ","):
            pos += 1
        if pos >= n:
            break
        start = pos
        while pos < n and not srcset[pos].isspace():
            pos += 1
        url = srcset[start:pos]
        descriptors: list[str] = []
        if url.endswith(","):
            url = url.rstrip(",")
        else:
            end = srcset.find(",", pos)
            end = n if end < 0 else end
            descriptors = srcset[pos:end].split()
            pos = end + 1
        if url:
            candidates.append((url, descriptors))
    return candidates


def ranked_srcset(srcset: str | None) -> list[str]:
    """The URLs of a ``srcset``, largest width (``640w``) or density (``2x``) descriptor
    first (a candidate without descriptor counts as ``1x``; ties keep document order)."""
    if not srcset:
        return []
    ranked = []
    for index, (url, descriptors) in enumerate(parse_srcset(srcset)):
        rank: tuple[int, float] = (0, 1.0)  # (1 for widths, value)
        for descriptor in descriptors:
            m = _SRCSET_DESCRIPTOR.match(descriptor)
            if m:
                rank = (1 if m.group(2).lower() == "w" else 0, float(m.group(1)))
        ranked.append((-rank[0], -rank[1], index, url))
    return [url for *_, url in sorted(ranked)]


def largest_srcset_candidate(srcset: str | None) -> str | None:
    """The first of :func:`ranked_srcset`, or None."""
    ranked = ranked_srcset(srcset)
    return ranked[0] if ranked else None


def image_url(img: lxml.html.HtmlElement, base: str) -> str | None:
    """The largest ``srcset`` candidate that resolves to an http(s) URL, else ``src``: a
    ``data:``/``javascript:``/``ftp:`` candidate never hides a valid ``src``."""
    for ref in (*ranked_srcset(img.get("srcset")), img.get("src")):
        url = resolve_url(ref, base)
        if url is not None:
            return url
    return None


def image_texts(img: lxml.html.HtmlElement, text_fields: Sequence[str], counts: Counter[str],
                max_text_chars: int = DEFAULT_MAX_TEXT_CHARS) -> Texts:
    """The texts of one ``<img>`` (see the module doc)."""
    raws = (_figcaption(img) if field == "figcaption" else img.get(field)
            for field in text_fields)
    return clean_texts(raws, counts, max_text_chars)


def _figcaption(img: lxml.html.HtmlElement) -> str | None:
    for ancestor in img.iterancestors("figure"):
        caption = ancestor.find(".//figcaption")
        if caption is not None:
            return caption.text_content()
        return None
    return None


def parse_html(text: str) -> lxml.html.HtmlElement | None:
    """An lxml document, or None for an empty page."""
    text = _XML_DECL.sub("", text, count=1)
    if not text.strip():
        return None
    try:
        return lxml.html.document_fromstring(text)
    except (lxml.etree.ParserError, ValueError):
        return None


def extract_links(doc: lxml.html.HtmlElement, base: str) -> list[str]:
    """Absolute http(s) targets of ``<a href>`` (no fragments), in document order."""
    links = []
    for a in doc.iter("a"):
        url = resolve_url(a.get("href"), base)
        if url is not None:
            links.append(url)
    return links


class PageInfo(NamedTuple):
    """What one page gives: its ``(image_url, texts)`` pairs, its links (``with_links``),
    its licence signals (:mod:`pipeline.crawl.page_licenses`) and the counters."""

    pairs: list[tuple[str, Texts]]
    links: list[str]
    licenses: tuple[str, ...]
    counts: Counter[str]


def page_metas(doc: lxml.html.HtmlElement) -> list[tuple[object, object]]:
    """``(name, content)`` of every ``<meta name>`` of a page."""
    return [(meta.get("name"), meta.get("content")) for meta in doc.iter("meta")
            if meta.get("name") is not None]


def extract_page_info(page: str | bytes, page_url: str, content_type: str | None = None,
                      text_fields: Sequence[str] = TEXT_FIELDS, with_links: bool = False,
                      max_text_chars: int = DEFAULT_MAX_TEXT_CHARS,
                      opt_out: PageOptOut | None = None, headers: HTTPHeaderDict | None = None
                      ) -> PageInfo:
    """The :class:`PageInfo` of one page; the counters are ``images``, ``with_text``,
    ``texts``, ``skipped:no_http_url``, ``skipped:empty_text``, ``skipped:text_too_long``;
    with ``opt_out``, a page whose ``headers`` or meta tags opt out yields no pair, its
    images counted in ``opted_out:<reason>`` and the page in ``opted_out_pages``."""
    counts: Counter[str] = Counter()
    text = page if isinstance(page, str) else decode_html(
        page, charset_from_content_type(content_type))
    doc = parse_html(text)
    if doc is None:
        counts[skipped("empty_page")] += 1
        return PageInfo([], [], (), counts)
    base = page_url
    base_el = doc.find(".//base[@href]")
    if base_el is not None:
        base = resolve_url(base_el.get("href"), page_url) or page_url
    links = extract_links(doc, base) if with_links else []
    if opt_out is not None and opt_out.active:
        reason = (header_opt_out(headers, opt_out) if headers is not None else None) \
            or meta_opt_out(page_metas(doc), opt_out)
        if reason:
            images = sum(1 for _ in doc.iter("img"))
            counts["images"] += images
            counts[opted_out(reason)] += images
            counts[OPTED_OUT_PAGES] += 1
            return PageInfo([], links, (), counts)
    pairs: list[tuple[str, Texts]] = []
    for img in doc.iter("img"):
        counts["images"] += 1
        url = image_url(img, base)
        if url is None:
            counts[skipped("no_http_url")] += 1
            continue
        too_long = counts["texts_too_long"]
        texts = image_texts(img, text_fields, counts, max_text_chars)
        if not texts:
            long = counts["texts_too_long"] > too_long
            counts[skipped("text_too_long") if long else skipped("empty_text")] += 1
            continue
        counts["with_text"] += 1
        counts["texts"] += len(texts)
        pairs.append((url, texts))
    licenses = page_license_signals(doc, base) if pairs else ()
    return PageInfo(pairs, links, licenses, counts)


def extract_page(page: str | bytes, page_url: str, content_type: str | None = None,
                 text_fields: Sequence[str] = TEXT_FIELDS, with_links: bool = False,
                 max_text_chars: int = DEFAULT_MAX_TEXT_CHARS,
                 opt_out: PageOptOut | None = None, headers: HTTPHeaderDict | None = None
                 ) -> tuple[list[tuple[str, Texts]], list[str], Counter[str]]:
    """``([(image_url, texts), ...], [link, ...], counters)`` of one page
    (:func:`extract_page_info` without the licence signals)."""
    info = extract_page_info(page, page_url, content_type, text_fields, with_links,
                             max_text_chars, opt_out, headers)
    return info.pairs, info.links, info.counts


def extract_pairs(page: str | bytes, page_url: str, content_type: str | None = None,
                  text_fields: Sequence[str] = TEXT_FIELDS,
                  max_text_chars: int = DEFAULT_MAX_TEXT_CHARS,
                  opt_out: PageOptOut | None = None, headers: HTTPHeaderDict | None = None
                  ) -> tuple[list[tuple[str, Texts]], Counter[str]]:
    """``[(image_url, texts), ...]`` in document order, and the counters of
    :func:`extract_page`."""
    pairs, _, counts = extract_page(page, page_url, content_type, text_fields,
                                    max_text_chars=max_text_chars, opt_out=opt_out,
                                    headers=headers)
    return pairs, counts
