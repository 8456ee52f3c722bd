"""The live crawler against a real multi-page site served on loopback by this test, with
the faults a crawler meets: robots.txt, slow pages, redirect loops, non-HTML, oversized and
non-UTF-8 pages, 429 + Retry-After, a redirect to a private address, 404s."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest
from helpers.servers import loopback_server
from helpers.shards import send

from pipeline.cli import main
from pipeline.core.net import retry_after_seconds, robots_crawl_delay
from pipeline.crawl.live_crawler import CrawlerOptions, crawl_site

UA = "witbot/1.0 (test)"
ROBOTS = "User-agent: witbot\nDisallow: /private/\n\nUser-agent: *\nDisallow: /\n"


def page(body: str) -> str:
    return f"<!doctype html><html><head><title>t</title></head><body>{body}</body></html>"


class Site:
    """Routes of the test site and what the server saw."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.hits: Counter[str] = Counter()
        self.agents: set[str] = set()
        self.starts: list[float] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.robots = ROBOTS

    def respond(self, handler: BaseHTTPRequestHandler) -> None:
        path = handler.path
        html = "text/html; charset=utf-8"
        if path == "/robots.txt":
            return self.send(handler, 200, "text/plain", self.robots.encode())
        if path == "/":
            return self.send(handler, 200, html, page(
                '<img src="/img/home.jpg" alt="home page photo">'
                '<a href="/a.html">a</a> <a href="/private/secret.html">p</a>'
                '<a href="/slow.html">s</a> <a href="/loop1">l</a> <a href="/data.bin">d</a>'
                '<a href="/big.html">b</a> <a href="/latin1.html">l1</a>'
                '<a href="/busy.html">busy</a> <a href="/to-private">tp</a>'
                '<a href="/moved">m</a> <a href="/missing">404</a>'
                '<a href="http://offsite.invalid/x.html">off</a>').encode())
        if path == "/a.html":
            return self.send(handler, 200, html, page(
                '<img src="img/a.jpg" alt="page a picture"><a href="/deep1.html">d</a>'
            ).encode())
        if path == "/deep1.html":
            return self.send(handler, 200, html, page(
                '<img src="/img/d1.jpg" alt="depth two"><a href="/deep2.html">d</a>').encode())
        if path == "/deep2.html":
            return self.send(handler, 200, html, page('<img src="/d2.jpg" alt="too deep">')
                             .encode())
        if path.startswith("/private/"):
            return self.send(handler, 200, html, page('<img src="/s.jpg" alt="secret">')
                             .encode())
        if path == "/slow.html":
            time.sleep(1.5)
            return self.send(handler, 200, html, page('<img src="/z.jpg" alt="slow">')
                             .encode())
        if path in ("/loop1", "/loop2"):
            return self.redirect(handler, "/loop2" if path == "/loop1" else "/loop1")
        if path == "/data.bin":
            return self.send(handler, 200, "application/octet-stream", b"\x00" * 100)
        if path == "/big.html":
            return self.send(handler, 200, html, page(
                '<img src="/big.jpg" alt="big">' + "x" * 300_000).encode())
        if path == "/latin1.html":
            return self.send(handler, 200, "text/html; charset=ISO-8859-1", page(
                '<img src="/cafe.jpg" alt="Café crème brûlée">').encode("latin-1"))
        if path == "/busy.html":
            if self.hits[path] == 1:
                return self.send(handler, 429, "text/plain", b"slow down",
                                 {"Retry-After": "1"})
            return self.send(handler, 200, html, page('<img src="/busy.jpg" alt="after wait">')
                             .encode())
        if path == "/to-private":
            return self.redirect(handler, "http://169.254.169.254/latest/meta-data/")
        if path == "/moved":
            return self.redirect(handler, "/moved-here.html")
        if path == "/moved-here.html":
            return self.send(handler, 200, html, page('<img src="m.jpg" alt="moved image">')
                             .encode())
        return self.send(handler, 404, "text/plain", b"not found")

    @staticmethod
    def send(handler, status: int, ctype: str, body: bytes, headers=None) -> None:
        send(handler, status, body, ctype, headers)  # a page the crawler gives up on is fine

    @staticmethod
    def redirect(handler, location: str) -> None:
        handler.send_response(302)
        handler.send_header("Location", location)
        handler.send_header("Content-Length", "0")
        handler.end_headers()


@pytest.fixture()
def site() -> Iterator[tuple[str, Site]]:
    state = Site()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            with state.lock:
                state.hits[self.path] += 1
                state.agents.add(self.headers.get("User-Agent", ""))
                state.starts.append(time.monotonic())
                state.in_flight += 1
                state.max_in_flight = max(state.max_in_flight, state.in_flight)
            try:
                state.respond(self)
            finally:
                with state.lock:
                    state.in_flight -= 1

        def log_message(self, *args) -> None:
            pass

    with loopback_server(Handler) as base:
        yield base, state


OPTIONS = CrawlerOptions(user_agent=UA, max_depth=2, max_pages=50, delay=0.0, concurrency=3,
                         timeout=0.5, max_page_bytes=100_000, max_redirects=3,
                         allowed_networks=("127.0.0.0/8",), retries=1, max_retry_after=2.0)


@pytest.mark.integration
def test_crawl_faults(site) -> None:
    base, state = site
    counts: Counter[str] = Counter()
    found = {(img, texts[0]) for _, img, texts in crawl_site([base + "/"], OPTIONS, counts)}
    assert found == {
        (base + "/img/home.jpg", "home page photo"),
        (base + "/img/a.jpg", "page a picture"),
        (base + "/img/d1.jpg", "depth two"),
        (base + "/cafe.jpg", "Café crème brûlée"),
        (base + "/busy.jpg", "after wait"),
        (base + "/m.jpg", "moved image"),
    }
    assert counts["pages"] == 6
    assert counts["skipped:robots_disallowed"] == 1
    assert state.hits["/private/secret.html"] == 0
    assert counts["skipped:timeout"] == 1
    assert counts["skipped:redirect_loop"] == 1
    assert counts["skipped:non_html"] == 1
    assert counts["skipped:too_large"] == 1
    assert counts["skipped:blocked_private_address"] == 1
    assert counts["skipped:http_404"] == 1
    assert state.hits["/busy.html"] == 2 and state.hits["/slow.html"] == 2  # both retried once
    assert counts["retried"] == 2
    assert state.hits["/deep2.html"] == 0  # beyond max_depth
    assert state.agents == {UA}
    assert state.max_in_flight <= OPTIONS.concurrency


@pytest.mark.integration
def test_private_targets_blocked_without_permission(site) -> None:
    base, state = site
    counts: Counter[str] = Counter()
    options = CrawlerOptions(user_agent=UA, delay=0.0, timeout=0.5)
    assert list(crawl_site([base + "/"], options, counts)) == []
    assert counts["skipped:blocked_private_address"] == 1
    assert sum(state.hits.values()) == 0  # not a single request reached the server


@pytest.mark.integration
def test_politeness_delay_and_page_limit(site) -> None:
    base, state = site
    counts: Counter[str] = Counter()
    options = CrawlerOptions(user_agent=UA, delay=0.2, concurrency=1, timeout=0.5,
                             max_pages=3, allowed_networks=("127.0.0.0/8",))
    list(crawl_site([base + "/"], options, counts))
    tried = counts["pages"] + sum(v for k, v in counts.items()
                                  if k.startswith("skipped:") and k != "skipped:page_limit")
    assert tried == 3  # max_pages
    assert counts["requests"] == len(state.starts) >= 3  # robots.txt + pages
    gaps = [b - a for a, b in zip(state.starts, state.starts[1:])]
    # request starts are spaced by the delay on the client; the server sees arrivals, which
    # differ from starts by each request's own latency (the first one also connects)
    assert min(gaps) >= 0.8 * 0.2
    assert state.max_in_flight == 1
    assert counts["skipped:page_limit"] > 0


@pytest.mark.integration
def test_robots_crawl_delay(site) -> None:
    base, state = site
    state.robots = "User-agent: witbot\nCrawl-delay: 0.25\nDisallow: /private/\n"
    options = CrawlerOptions(user_agent=UA, delay=0.0, concurrency=2, timeout=0.5,
                             max_pages=3, allowed_networks=("127.0.0.0/8",))
    list(crawl_site([base + "/"], options, Counter()))
    page_starts = state.starts[1:]  # after robots.txt
    gaps = [b - a for a, b in zip(page_starts, page_starts[1:])]
    assert len(gaps) >= 1 and min(gaps) >= 0.8 * 0.25  # see the politeness test


def test_robots_crawl_delay_parsing() -> None:
    lines = ["User-agent: other", "Crawl-delay: 9", "", "User-agent: WitBot",
             "User-agent: x", "Disallow: /a", "Crawl-delay: 0.5", "User-agent: *",
             "Crawl-delay: 2"]
    assert robots_crawl_delay(lines, "witbot/1.0") == 0.5
    assert robots_crawl_delay(lines, "somebody") == 2.0
    assert robots_crawl_delay(["User-agent: *", "Disallow:"], "witbot") is None


def test_retry_after_parsing() -> None:
    assert retry_after_seconds("3") == 3.0
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0
    assert retry_after_seconds("soon") is None


@pytest.mark.integration
def test_cli_live_crawl(site, tmp_path: Path) -> None:
    base, _ = site
    meta = tmp_path / "metadata.json"
    meta.write_text(json.dumps(["photo", "picture", "depth", "Café", "moved", "image"]))
    code = main(["crawl", "--seeds", base + "/", "--metadata", str(meta),
                 "--out", str(tmp_path / "out"), "--allow-network", "127.0.0.0/8",
                 "--user-agent", UA, "--delay", "0", "--timeout", "0.5",
                 "--max-page-bytes", "100000", "--max-retry-after", "2"])
    assert code == 0
    stats = json.loads((tmp_path / "out" / "candidates" / "stats.json").read_text())
    live = stats["sources"]["live"]
    assert live["pages"] == 6 and live["with_text"] == 6
    assert live["matched"] == live["kept"] == 5  # "after wait" matches nothing
    for reason in ("robots_disallowed", "timeout", "redirect_loop", "non_html", "too_large",
                   "blocked_private_address", "http_404"):
        assert live["skipped"][reason] == 1, reason
