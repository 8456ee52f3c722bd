"""WARC source: HTML responses of a WARC file -> (image URL, text) pairs."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence

from pipeline.crawl.archive import iter_records
from pipeline.crawl.html_extract import TEXT_FIELDS, extract_page_info
from pipeline.crawl.optout import PageOptOut, header_dict
from pipeline.crawl.pairs import DEFAULT_MAX_TEXT_CHARS, Pair, make_pair
from schemas.status import skipped

HTML_TYPES = ("text/html", "application/xhtml+xml")
DEFAULT_MAX_PAGE_BYTES = 5 * 1024 * 1024


def is_html(content_type: str | None) -> bool:
    if not content_type:
        return False
    return content_type.split(";", 1)[0].strip().lower() in HTML_TYPES


def warc_pairs(path: str, counts: Counter[str], text_fields: Sequence[str] = TEXT_FIELDS,
               max_page_bytes: int = DEFAULT_MAX_PAGE_BYTES,
               max_text_chars: int = DEFAULT_MAX_TEXT_CHARS,
               opt_out: PageOptOut | None = None) -> Iterator[Pair]:
    """Pairs of every HTML ``response`` record of ``path``; ``counts`` gets ``records``,
    ``pages``, ``images``, ``with_text`` and ``skipped:<reason>``; with ``opt_out``, pages
    whose recorded headers or meta tags opt out give no pair (``opted_out:<reason>``)."""
    for record, payload, offset in iter_records(path, counts, max_page_bytes):
        counts["records"] += 1
        if record.rec_type != "response":
            continue
        if record.http_headers is None:
            counts[skipped("no_http_headers")] += 1
            continue
        status = record.http_headers.get_statuscode() or ""
        content_type = record.http_headers.get_header("Content-Type")
        if not status.startswith("2"):
            counts[skipped("http_status")] += 1
            continue
        if not is_html(content_type):
            counts[skipped("non_html")] += 1
            continue
        page_url = record.rec_headers.get_header("WARC-Target-URI") or ""
        if not page_url.strip():  # relative image URLs would have nothing to resolve against
            counts[skipped("no_target_uri")] += 1
            continue
        counts["pages"] += 1
        try:
            headers = header_dict(record.http_headers.headers) if opt_out is not None else None
            page = extract_page_info(payload, page_url, content_type, text_fields,
                                     max_text_chars=max_text_chars, opt_out=opt_out,
                                     headers=headers)
        except (ValueError, LookupError, RecursionError):  # a page lxml cannot take
            counts[skipped("unparseable_page")] += 1
            continue
        counts.update(page.counts)
        fetched = record.rec_headers.get_header("WARC-Date")
        for url, texts in page.pairs:
            yield make_pair(url, texts, page_url, "warc", path, offset, fetched, page.licenses)
