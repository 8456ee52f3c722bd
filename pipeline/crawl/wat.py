"""WAT source (Common Crawl metadata files): image links of HTML responses -> pairs.

A WAT ``metadata`` record's JSON payload holds, for a response,
``Envelope -> Payload-Metadata -> HTTP-Response-Metadata -> HTML-Metadata -> Links``; image
links have ``"path": "IMG@/src"`` with ``url`` and (when present) ``alt`` / ``title``. URLs
are resolved against ``HTML-Metadata -> Head -> Base`` and the record's target URI.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator, Sequence
from typing import Any

from pipeline.crawl.archive import iter_records
from pipeline.crawl.html_extract import TEXT_FIELDS
from pipeline.crawl.pairs import Pair, normalize_text, resolve_url

IMG_PATH = "IMG@/src"
DEFAULT_MAX_RECORD_BYTES = 50 * 1024 * 1024


def _dig(obj: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(key)
    return obj


def wat_record_pairs(envelope_json: dict[str, Any], counts: Counter[str],
                     text_fields: Sequence[str] = TEXT_FIELDS) -> list[tuple[str, str, str]]:
    """``[(image_url, text, page_url), ...]`` of one parsed WAT JSON object."""
    envelope = envelope_json.get("Envelope") if isinstance(envelope_json, dict) else None
    if _dig(envelope, "WARC-Header-Metadata", "WARC-Type") != "response":
        return []
    html_meta = _dig(envelope, "Payload-Metadata", "HTTP-Response-Metadata", "HTML-Metadata")
    if not isinstance(html_meta, dict):
        counts["skipped:non_html"] += 1
        return []
    page_url = _dig(envelope, "WARC-Header-Metadata", "WARC-Target-URI") or ""
    counts["pages"] += 1
    base = resolve_url(_dig(html_meta, "Head", "Base"), page_url) or page_url
    found = []
    for link in html_meta.get("Links") or []:
        if not isinstance(link, dict) or link.get("path") != IMG_PATH:
            continue
        counts["images"] += 1
        url = resolve_url(link.get("url"), base)
        if url is None:
            counts["skipped:no_http_url"] += 1
            continue
        text = ""
        for field in text_fields:
            text = normalize_text(link.get(field), unescape=True)
            if text:
                break
        if not text:
            counts["skipped:empty_text"] += 1
            continue
        counts["with_text"] += 1
        found.append((url, text, page_url))
    return found


def wat_pairs(path: str, counts: Counter[str], text_fields: Sequence[str] = TEXT_FIELDS,
              max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES) -> Iterator[Pair]:
    """Pairs of every response described in the WAT file ``path``."""
    for record, payload in iter_records(path, counts, max_record_bytes):
        counts["records"] += 1
        if record.rec_type != "metadata":
            continue
        try:
            data = json.loads(payload)
        except ValueError:
            counts["skipped:bad_json"] += 1
            continue
        for url, text, page_url in wat_record_pairs(data, counts, text_fields):
            yield Pair(url, text, page_url, "wat")
