"""WAT source (Common Crawl metadata files): image links of HTML responses -> pairs.

A WAT ``metadata`` record's JSON payload holds, for a response,
``Envelope -> Payload-Metadata -> HTTP-Response-Metadata -> HTML-Metadata -> Links``; image
links have ``"path": "IMG@/src"`` with ``url`` and (when present) ``alt`` / ``title``. URLs
are resolved against ``HTML-Metadata -> Head -> Base`` and the record's target URI. The
page's licence signals come from its ``Links`` (``rel`` license, Creative Commons URLs) and
``Head`` (``Link``, ``Metas``): :func:`wat_license_signals`.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator, Sequence
from typing import Any

from pipeline.core import licenses as lic
from pipeline.crawl.archive import iter_records
from pipeline.crawl.html_extract import TEXT_FIELDS
from pipeline.crawl.optout import (
    OPTED_OUT_PAGES,
    PageOptOut,
    header_dict,
    header_opt_out,
    meta_opt_out,
    opted_out,
)
from pipeline.crawl.page_licenses import CC_HREF as _CC_HREF
from pipeline.crawl.pairs import (
    DEFAULT_MAX_TEXT_CHARS,
    Pair,
    Texts,
    clean_texts,
    make_pair,
    resolve_url,
)
from schemas.status import skipped

IMG_PATH = "IMG@/src"
DEFAULT_MAX_RECORD_BYTES = 50 * 1024 * 1024


def _dig(obj: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(key)
    return obj


def _wat_opt_out(response_meta: Any, html_meta: dict, opt_out: PageOptOut) -> str | None:
    """The reason the recorded headers (``HTTP-Response-Metadata.Headers``, an object) or
    meta tags (``HTML-Metadata.Head.Metas``, a list of objects) opt a page out, or None."""
    headers = _dig(response_meta, "Headers")
    pairs = list(headers.items()) if isinstance(headers, dict) else []
    metas = _dig(html_meta, "Head", "Metas")
    metas = metas if isinstance(metas, list) else []
    return (header_opt_out(header_dict(pairs), opt_out)
            or meta_opt_out(((m.get("name"), m.get("content")) for m in metas
                             if isinstance(m, dict)), opt_out))


def wat_record_pairs(envelope_json: Any, counts: Counter[str],
                     text_fields: Sequence[str] = TEXT_FIELDS,
                     max_text_chars: int = DEFAULT_MAX_TEXT_CHARS,
                     opt_out: PageOptOut | None = None
                     ) -> list[tuple[str, Texts, str]]:
    """``[(image_url, texts, page_url), ...]`` of one parsed WAT JSON object (any JSON value:
    fields of the wrong type are skipped and counted, never trusted). With ``opt_out``, a
    page whose recorded headers or meta tags opt out gives none (``opted_out:<reason>``)."""
    envelope = envelope_json.get("Envelope") if isinstance(envelope_json, dict) else None
    if _dig(envelope, "WARC-Header-Metadata", "WARC-Type") != "response":
        return []
    html_meta = _dig(envelope, "Payload-Metadata", "HTTP-Response-Metadata", "HTML-Metadata")
    if not isinstance(html_meta, dict):
        counts[skipped("non_html")] += 1
        return []
    page_url = _dig(envelope, "WARC-Header-Metadata", "WARC-Target-URI")
    if not isinstance(page_url, str) or not page_url.strip():
        counts[skipped("no_target_uri")] += 1
        return []
    links = html_meta.get("Links") or []
    if not isinstance(links, list):
        counts[skipped("bad_links")] += 1
        return []
    counts["pages"] += 1
    if opt_out is not None and opt_out.active:
        reason = _wat_opt_out(_dig(envelope, "Payload-Metadata", "HTTP-Response-Metadata"),
                              html_meta, opt_out)
        if reason:
            images = sum(1 for link in links
                         if isinstance(link, dict) and link.get("path") == IMG_PATH)
            counts["images"] += images
            counts[opted_out(reason)] += images
            counts[OPTED_OUT_PAGES] += 1
            return []
    base = resolve_url(_dig(html_meta, "Head", "Base"), page_url) or page_url
    fields = [f for f in text_fields if f != "figcaption"]  # WAT links carry attributes only
    found = []
    for link in links:
        if not isinstance(link, dict) or link.get("path") != IMG_PATH:
            continue
        counts["images"] += 1
        if not isinstance(link.get("url"), str):
            counts[skipped("bad_link")] += 1
            continue
        url = resolve_url(link["url"], base)
        if url is None:
            counts[skipped("no_http_url")] += 1
            continue
        too_long = counts["texts_too_long"]
        # WAT attribute values are raw HTML: entities are still encoded
        texts = clean_texts((link.get(f) for f in fields), counts, max_text_chars,
                            unescape=True)
        if not texts:
            long = counts["texts_too_long"] > too_long
            counts[skipped("text_too_long") if long else skipped("empty_text")] += 1
            continue
        counts["with_text"] += 1
        counts["texts"] += len(texts)
        found.append((url, texts, page_url))
    return found


_META_KINDS = {"dcterms.license": lic.DCTERMS_LICENSE, "dc.license": lic.DCTERMS_LICENSE,
               "dc.rights": lic.DC_RIGHTS, "dcterms.rights": lic.DC_RIGHTS}


def wat_license_signals(envelope_json: Any) -> tuple[str, ...]:
    """The page's licence signals from a WAT record (:mod:`pipeline.crawl.page_licenses`'
    kinds): ``Links`` with ``rel`` license (``A@/href``) or to a Creative Commons licence,
    ``Head -> Link`` with ``rel`` license, ``Head -> Metas`` dcterms.license / dc.rights."""
    html_meta = _dig(envelope_json, "Envelope", "Payload-Metadata", "HTTP-Response-Metadata",
                     "HTML-Metadata")
    if not isinstance(html_meta, dict):
        return ()
    page_url = _dig(envelope_json, "Envelope", "WARC-Header-Metadata", "WARC-Target-URI")
    found: list[str] = []
    head = html_meta.get("Head")
    head = head if isinstance(head, dict) else {}
    metas = head.get("Metas")
    for meta in metas if isinstance(metas, list) else ():
        if isinstance(meta, dict) and isinstance(meta.get("content"), str):
            kind = _META_KINDS.get(str(meta.get("name") or meta.get("property") or "").lower())
            if kind and meta["content"].strip():
                found.append(lic.signal(kind, meta["content"]))
    head_links = head.get("Link")
    links = [(lic.LINK_LICENSE, link) for link in head_links] \
        if isinstance(head_links, list) else []
    if isinstance(html_meta.get("Links"), list):
        links += [(lic.REL_LICENSE, link) for link in html_meta["Links"]]
    for kind, link in links:
        if len(found) >= lic.MAX_SIGNALS:
            break
        if not isinstance(link, dict) or not isinstance(link.get("url"), str):
            continue
        url = resolve_url(link["url"], page_url if isinstance(page_url, str) else None)
        if url is None:
            continue
        rel = link.get("rel")
        if isinstance(rel, str) and "license" in rel.lower().split():
            found.append(lic.signal(kind, url))
        elif kind == lic.REL_LICENSE and str(link.get("path", "")).startswith("A@") \
                and _CC_HREF.match(url):
            found.append(lic.signal(lic.CC_URL, url))
    return tuple(dict.fromkeys(found))[:lic.MAX_SIGNALS]


def wat_pairs(path: str, counts: Counter[str], text_fields: Sequence[str] = TEXT_FIELDS,
              max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES,
              max_text_chars: int = DEFAULT_MAX_TEXT_CHARS,
              opt_out: PageOptOut | None = None) -> Iterator[Pair]:
    """Pairs of every response described in the WAT file ``path``."""
    for record, payload, offset in iter_records(path, counts, max_record_bytes):
        counts["records"] += 1
        if record.rec_type != "metadata":
            continue
        try:
            data = json.loads(payload)
        except (ValueError, RecursionError):  # not JSON, not UTF-8, or nested too deep
            counts[skipped("bad_json")] += 1
            continue
        fetch_time = _dig(data, "Envelope", "WARC-Header-Metadata", "WARC-Date")
        fetch_time = fetch_time if isinstance(fetch_time, str) else \
            record.rec_headers.get_header("WARC-Date")
        for url, texts, page_url in wat_record_pairs(data, counts, text_fields,
                                                     max_text_chars, opt_out):
            # a WAT holds link lists, no markup: rel="license" links are in them as
            # "A@/href" with their rel; pages' meta tags are not
            yield make_pair(url, texts, page_url, "wat", path, offset, fetch_time,
                            wat_license_signals(data))
