"""Page-level opt-out at crawl time (pipeline.crawl.optout): robots meta, TDMRep meta and
headers drop every image of the page, counted, in HTML extraction, WARC and WAT records, the
live crawler (with the origin's tdmrep.json, on loopback) and a real `wit crawl` run."""

from __future__ import annotations

import io
import json
from collections import Counter
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest
from helpers.crawl import write_metadata
from helpers.servers import loopback_server
from helpers.shards import send
from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

from pipeline.cli import main
from pipeline.crawl.html_extract import extract_page
from pipeline.crawl.live_crawler import CrawlerOptions, crawl_site
from pipeline.crawl.optout import PageOptOut, header_dict
from pipeline.crawl.wat import wat_record_pairs

POLICY = PageOptOut()
IMAGES = '<img src="/a.jpg" alt="a red photo"><img src="/b.jpg" alt="a blue photo">'


def html(head: str = "", body: str = IMAGES) -> str:
    return f"<!doctype html><html><head>{head}<title>t</title></head><body>{body}</body></html>"


@pytest.mark.parametrize("head,headers,reason", [
    ('<meta name="robots" content="noai, noimageai">', {}, "robots_meta"),
    ('<meta name="ROBOTS" content="index,follow noimageai">', {}, "robots_meta"),
    ('<meta name="webimagetext" content="noai">', {}, "robots_meta"),
    ('<meta name="tdm-reservation" content="1">', {}, "tdm_reservation"),
    ("", {"tdm-reservation": "1"}, "tdm_reservation"),
    ("", {"X-Robots-Tag": "noimageai"}, "x_robots_tag"),
    ("", {"X-Robots-Tag": "webimagetext: noai"}, "x_robots_tag"),
])
def test_a_page_that_opts_out_gives_no_pair_and_counts_every_image(head, headers, reason) -> None:
    pairs, links, counts = extract_page(html(head, IMAGES + '<a href="/next">n</a>'),
                                        "http://site.example/p", opt_out=POLICY,
                                        headers=header_dict(headers.items()), with_links=True)
    assert pairs == [] and links == ["http://site.example/next"]  # links still followed
    assert counts == Counter({"images": 2, f"opted_out:{reason}": 2, "opted_out_pages": 1})


@pytest.mark.parametrize("head,headers", [
    ('<meta name="robots" content="noindex, nofollow">', {}),  # not a directive we honour
    ('<meta name="otherbot" content="noai">', {}),  # another agent's meta
    ('<meta name="tdm-reservation" content="0">', {}),
    ('<meta name="tdm-reservation" content="2">', {}),  # a protocol error: unset
    ("", {"X-Robots-Tag": "otherbot: noai"}),
    ("", {"tdm-reservation": "0"}),
])
def test_pages_that_do_not_opt_out_keep_their_images(head, headers) -> None:
    pairs, _, counts = extract_page(html(head), "http://site.example/p", opt_out=POLICY,
                                    headers=header_dict(headers.items()))
    assert len(pairs) == 2 and counts["with_text"] == 2 and counts["opted_out_pages"] == 0


def test_switches_turn_each_signal_off() -> None:
    robots = html('<meta name="robots" content="noai">')
    tdm = html('<meta name="tdm-reservation" content="1">')
    no_robots = PageOptOut(robots_directives=())
    no_tdm = PageOptOut(respect_tdmrep=False)
    assert len(extract_page(robots, "http://h/", opt_out=no_robots)[0]) == 2
    assert extract_page(tdm, "http://h/", opt_out=no_robots)[0] == []
    assert len(extract_page(tdm, "http://h/", opt_out=no_tdm)[0]) == 2
    assert extract_page(robots, "http://h/", opt_out=no_tdm)[0] == []
    custom = PageOptOut(robots_directives=("noindex",))
    assert extract_page(html('<meta name="robots" content="noindex">'), "http://h/",
                        opt_out=custom)[0] == []


def test_wat_records_headers_and_metas() -> None:
    def envelope(headers: object, metas: object) -> dict:
        links = [{"path": "IMG@/src", "url": "/a.jpg", "alt": "a red photo"},
                 {"path": "IMG@/src", "url": "/b.jpg", "alt": "a blue photo"},
                 {"path": "A@/href", "url": "/next"}]
        return {"Envelope": {
            "WARC-Header-Metadata": {"WARC-Type": "response", "WARC-Target-URI": "http://h/p"},
            "Payload-Metadata": {"HTTP-Response-Metadata": {
                "Headers": headers,
                "HTML-Metadata": {"Head": {"Metas": metas}, "Links": links}}}}}

    cases = [({"tdm-reservation": "1"}, [], "tdm_reservation"),
             ({}, [{"name": "robots", "content": "noimageai"}], "robots_meta"),
             ({"X-Robots-Tag": "noai"}, [], "x_robots_tag"),
             ({"Content-Type": "text/html"}, [{"name": "robots", "content": "index"}], None),
             ("not a dict", [7, {"name": 3, "content": None}], None)]  # hostile: ignored
    for headers, metas, reason in cases:
        counts: Counter[str] = Counter()
        found = wat_record_pairs(envelope(headers, metas), counts, opt_out=POLICY)
        if reason is None:
            assert len(found) == 2 and counts["opted_out_pages"] == 0
        else:
            assert found == [] and counts[f"opted_out:{reason}"] == 2, reason


def write_warc(path: Path, pages: list[tuple[str, str, list[tuple[str, str]]]]) -> Path:
    with open(path, "wb") as f:
        writer = WARCWriter(f, gzip=True)
        for url, body, headers in pages:
            http = StatusAndHeaders("200 OK", [("Content-Type", "text/html"), *headers],
                                    protocol="HTTP/1.1")
            writer.write_record(writer.create_warc_record(
                url, "response", payload=io.BytesIO(body.encode()), http_headers=http))
    return path


@pytest.mark.integration
def test_wit_crawl_counts_opted_out_pages_in_stats_and_summary(tmp_path: Path, capsys) -> None:
    warc = write_warc(tmp_path / "pages.warc.gz", [
        ("http://h.example/open", html(), []),
        ("http://h.example/robots", html('<meta name="robots" content="noai">'), []),
        ("http://h.example/tdm-meta", html('<meta name="tdm-reservation" content="1">'), []),
        ("http://h.example/tdm-header", html(), [("tdm-reservation", "1")]),
    ])
    meta = write_metadata(tmp_path / "metadata.json", ["red", "blue"])
    assert main(["crawl", "--warc", str(warc), "--metadata", meta,
                 "--out", str(tmp_path / "out")]) == 0
    stats = json.loads((tmp_path / "out" / "candidates" / "stats.json").read_text())
    warc_stats = stats["sources"]["warc"]
    assert warc_stats["opted_out"] == {"robots_meta": 2, "tdm_reservation": 4}
    assert warc_stats["opted_out_pages"] == 3 and warc_stats["kept"] == 2
    assert warc_stats["images"] == 8
    summary = capsys.readouterr().out
    assert "opted out: robots_meta=2, tdm_reservation=4" in summary

    # --ignore-tdmrep and no robots directives: every page's images are candidates
    assert main(["crawl", "--warc", str(warc), "--metadata", meta, "--out",
                 str(tmp_path / "all"), "--ignore-tdmrep", "--robots-meta-directives"]) == 0
    stats = json.loads((tmp_path / "all" / "candidates" / "stats.json").read_text())
    assert stats["sources"]["warc"]["with_text"] == 8
    assert "opted_out" not in stats["sources"]["warc"]


@pytest.mark.integration
def test_live_crawler_honours_tdmrep_json_meta_and_headers() -> None:
    hits: Counter[str] = Counter()
    tdmrep = json.dumps([{"location": "/reserved/", "tdm-reservation": 1}]).encode()
    pages = {
        "/": html(body=IMAGES + '<a href="/reserved/x.html">r</a><a href="/meta.html">m</a>'
                  '<a href="/header.html">h</a>'),
        "/reserved/x.html": html(),
        "/meta.html": html('<meta name="robots" content="noimageai">'),
        "/header.html": html(),
    }

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def do_GET(self):
            hits[self.path] += 1
            if self.path == "/.well-known/tdmrep.json":
                return send(self, 200, tdmrep, "application/json")
            if self.path in pages:
                extra = {"tdm-reservation": "1"} if self.path == "/header.html" else {}
                return send(self, 200, pages[self.path].encode(), "text/html", extra)
            return send(self, 404, b"", "text/plain")

    options = CrawlerOptions(user_agent="witbot/1.0", delay=0.0, timeout=2.0,
                             allowed_networks=("127.0.0.0/8",))
    with loopback_server(Handler) as base:
        counts: Counter[str] = Counter()
        found = list(crawl_site([base + "/"], options, counts, opt_out=POLICY))
        assert {img for _, img, _ in found} == {base + "/a.jpg", base + "/b.jpg"}
        assert counts["skipped:tdm_reservation"] == 1 and hits["/reserved/x.html"] == 0
        assert counts["opted_out:robots_meta"] == 2 and counts["opted_out:tdm_reservation"] == 2
        assert hits["/.well-known/tdmrep.json"] == 1
        # without the policy (e.g. --ignore-tdmrep, no directives) every page is read
        counts = Counter()
        found = list(crawl_site([base + "/"], options, counts,
                                opt_out=PageOptOut(robots_directives=(), respect_tdmrep=False)))
        assert len(found) == 8 and hits["/reserved/x.html"] == 1
