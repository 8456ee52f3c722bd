"""(image URL, text) pairs from one HTML page (pure; lxml).

Every ``<img>`` is one candidate. Its URL is the largest ``srcset`` candidate, else ``src``,
resolved against ``<base href>`` (itself resolved against the page URL) and the page URL;
only http(s) URLs are kept. Its text is the first non-empty of the fields in ``text_fields``:
``alt``, ``title``, the ``<figcaption>`` of an enclosing ``<figure>`` (the default order).
Each image lands in exactly one counter: ``with_text`` (emitted) or ``skipped:<reason>``.
"""

from __future__ import annotations

import codecs
import re
from collections import Counter
from collections.abc import Sequence

import lxml.etree
import lxml.html

from pipeline.crawl.pairs import normalize_text, resolve_url

TEXT_FIELDS = ("alt", "title", "figcaption")
_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_.:\-]+)""", re.I)
_XML_DECL = re.compile(r"^\s*<\?xml[^>]*\?>")
_SRCSET_DESCRIPTOR = re.compile(r"^(\d+(?:\.\d+)?)([wxh])$", re.I)


def _known_codec(name: str | None) -> str | None:
    if not name:
        return None
    try:
        return codecs.lookup(name.strip().strip("\"'")).name
    except LookupError:
        return None


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
            return data.decode(codec, errors="replace")
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


def largest_srcset_candidate(srcset: str | None) -> str | None:
    """The URL with the largest width (``640w``) or density (``2x``) descriptor in a
    ``srcset``; a candidate without descriptor counts as ``1x``."""
    if not srcset:
        return None
    best: tuple[int, float, str] | None = None
    for url, descriptors in parse_srcset(srcset):
        rank: tuple[int, float] = (0, 1.0)  # (1 for widths, value)
        for descriptor in descriptors:
            m = _SRCSET_DESCRIPTOR.match(descriptor)
            if m:
                rank = (1 if m.group(2).lower() == "w" else 0, float(m.group(1)))
        if best is None or rank > best[:2]:
            best = (rank[0], rank[1], url)
    return best[2] if best else None


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


def extract_page(page: str | bytes, page_url: str, content_type: str | None = None,
                 text_fields: Sequence[str] = TEXT_FIELDS, with_links: bool = False
                 ) -> tuple[list[tuple[str, str]], list[str], Counter[str]]:
    """``([(image_url, text), ...], [link, ...], counters)`` of one page; the counters are
    ``images``, ``with_text``, ``skipped:no_http_url``, ``skipped:empty_text``."""
    counts: Counter[str] = Counter()
    text = page if isinstance(page, str) else decode_html(
        page, charset_from_content_type(content_type))
    doc = parse_html(text)
    if doc is None:
        counts["skipped:empty_page"] += 1
        return [], [], counts
    base = page_url
    base_el = doc.find(".//base[@href]")
    if base_el is not None:
        base = resolve_url(base_el.get("href"), page_url) or page_url
    pairs: list[tuple[str, str]] = []
    for img in doc.iter("img"):
        counts["images"] += 1
        url = resolve_url(largest_srcset_candidate(img.get("srcset")) or img.get("src"), base)
        if url is None:
            counts["skipped:no_http_url"] += 1
            continue
        caption = ""
        for field in text_fields:
            raw = _figcaption(img) if field == "figcaption" else img.get(field)
            caption = normalize_text(raw)
            if caption:
                break
        if not caption:
            counts["skipped:empty_text"] += 1
            continue
        counts["with_text"] += 1
        pairs.append((url, caption))
    return pairs, (extract_links(doc, base) if with_links else []), counts


def extract_pairs(page: str | bytes, page_url: str, content_type: str | None = None,
                  text_fields: Sequence[str] = TEXT_FIELDS
                  ) -> tuple[list[tuple[str, str]], Counter[str]]:
    """``[(image_url, text), ...]`` in document order, and the counters of
    :func:`extract_page`."""
    pairs, _, counts = extract_page(page, page_url, content_type, text_fields)
    return pairs, counts
