"""Builders of small crawl inputs for the tests: WARC files written with warcio, WAT
envelopes, metadata lists."""

from __future__ import annotations

import io
import json
from pathlib import Path

from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter


def html_record(writer: WARCWriter, url: str | None, body: str, *,
                content_type: str = "text/html; charset=utf-8") -> None:
    http = StatusAndHeaders("200 OK", [("Content-Type", content_type)], protocol="HTTP/1.1")
    record = writer.create_warc_record(url or "", "response", payload=io.BytesIO(body.encode()),
                                       http_headers=http)
    if url is None:  # a response record without WARC-Target-URI
        record.rec_headers.remove_header("WARC-Target-URI")
    writer.write_record(record)


def write_warc(path: Path, pages: list[tuple[str | None, str]], gzip: bool = True) -> Path:
    with open(path, "wb") as f:
        writer = WARCWriter(f, gzip=gzip)
        for url, body in pages:
            html_record(writer, url, body)
    return path


def write_wat(path: Path, envelopes: list[object]) -> Path:
    with open(path, "wb") as f:
        writer = WARCWriter(f, gzip=True)
        for env in envelopes:
            payload = json.dumps(env).encode() if not isinstance(env, bytes) else env
            writer.write_record(writer.create_warc_record(
                "https://example.com/meta", "metadata", payload=io.BytesIO(payload),
                warc_content_type="application/json"))
    return path


def wat_envelope(page_url: object, links: object) -> dict:
    return {"Envelope": {
        "WARC-Header-Metadata": {"WARC-Type": "response", "WARC-Target-URI": page_url},
        "Payload-Metadata": {"HTTP-Response-Metadata": {"HTML-Metadata": {
            "Head": {}, "Links": links}}}}}


def write_metadata(path: Path, entries: list[str]) -> str:
    path.write_text(json.dumps(entries), encoding="utf-8")
    return str(path)
