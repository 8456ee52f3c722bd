"""The whole-request deadline (issue item 9): a server that drips one byte every 0.5 s is
cut at the timeout, in the body and in the headers, for the live crawler and the image
downloader alike. The proof is what the server got out before the client hung up (a
fraction of the body) and the timeout status.

Issue 21 item 2: with ``Connection: close`` the response owns the socket and the deadline
used to have nothing to shut, so a 1 byte/s drip ran to its end. Those cases also bound the
time the request took, generously (a few times the timeout, against a 15 s drip)."""

from __future__ import annotations

import time
from collections import Counter

import pytest
from helpers.servers import RawServer, drip_body, drip_headers
from helpers.shards import TRUSTED, Server, send

from pipeline.core.net import ClientConfig, FetchConfig, Fetcher, FetchError, HttpClient
from pipeline.crawl.live_crawler import CrawlerOptions, crawl_site

pytestmark = pytest.mark.integration

LOOPBACK = ("127.0.0.1/32",)
BODY = 60  # bytes: 30 s of drip


def finished(server: RawServer) -> None:
    assert server.done.wait(30), "the server never saw the client go away"


def test_downloader_cuts_a_dripping_body() -> None:
    server = RawServer(drip_body(BODY))
    try:
        fetcher = Fetcher(FetchConfig(timeout=1.0, retries=0, respect_robots_txt=False,
                                      allowed_networks=LOOPBACK))
        with pytest.raises(FetchError) as info:
            fetcher.fetch(server.url("/drip.jpg"))
        assert info.value.reason == "timeout" and info.value.status == "failed_to_download"
        assert str(info.value) == "request took longer than 1s"
        finished(server)
        assert server.hung_up.is_set() and server.sent < BODY
    finally:
        server.close()


def test_live_crawler_cuts_a_dripping_page() -> None:
    """Item 9: ``--timeout`` bounds the whole page, not each 64 KiB chunk."""
    server = RawServer(drip_body(BODY, content_type="text/html"))
    try:
        counts: Counter[str] = Counter()
        options = CrawlerOptions(delay=0.0, timeout=1.0, retries=0, allowed_networks=LOOPBACK)
        assert list(crawl_site([server.url("/")], options, counts)) == []
        assert counts["skipped:timeout"] == 1 and counts["requests"] == 2  # robots.txt, page
        finished(server)
        assert server.hung_up.is_set() and server.sent < BODY
    finally:
        server.close()


def test_dripping_headers_are_cut_too() -> None:
    server = RawServer(drip_headers())
    try:
        client = HttpClient(ClientConfig(timeout=1.0, retries=0, allowed_networks=LOOPBACK))
        with pytest.raises(FetchError) as info:
            client.get(server.url("/"))
        assert info.value.reason == "timeout" and info.value.http_status is None
        finished(server)
        assert server.sent < 80
    finally:
        server.close()


def test_retries_get_a_fresh_deadline_each() -> None:
    server = RawServer(drip_body(BODY))
    try:
        client = HttpClient(ClientConfig(timeout=0.6, retries=1, backoff_base=0.0,
                                         allowed_networks=LOOPBACK))
        with pytest.raises(FetchError) as info:
            client.get(server.url("/"))
        assert info.value.reason == "timeout" and info.value.retries == 1
        assert server.connections == 2
    finally:
        server.close()


def test_a_politeness_wait_is_not_part_of_the_deadline() -> None:
    """robots.txt asks for 1.5 s between requests, the timeout is 1 s: the second page waits
    in the host's gate longer than the timeout and is still fetched."""
    server = Server()
    server.routes["/robots.txt"] = lambda h: send(h, 200, b"User-agent: *\nCrawl-delay: 1.5\n",
                                                  "text/plain")
    server.routes["/"] = lambda h: send(h, 200, b'<html><a href="/b.html">b</a></html>',
                                        "text/html")
    server.routes["/b.html"] = lambda h: send(h, 200, b"<html>b</html>", "text/html")
    try:
        counts: Counter[str] = Counter()
        options = CrawlerOptions(delay=0.0, timeout=1.0, concurrency=1, retries=0,
                                 allowed_networks=(TRUSTED,))
        list(crawl_site([server.url("/")], options, counts))
        assert counts["pages"] == 2 and counts["requests"] == 3
    finally:
        server.close()


# ---------------------------------------------------------------- Connection: close

CLOSE_DRIP = 15  # bytes at 1 byte/s: 15 s when nothing cuts it
TIMEOUT = 1.0
BOUND = 3 * TIMEOUT + 2  # generous: a cut drip ends in about TIMEOUT


def close_drip() -> RawServer:
    return RawServer(drip_body(CLOSE_DRIP, every=1.0, close=True))


def test_downloader_cuts_a_dripping_body_sent_with_connection_close() -> None:
    server = close_drip()
    try:
        fetcher = Fetcher(FetchConfig(timeout=TIMEOUT, retries=0, respect_robots_txt=False,
                                      allowed_networks=LOOPBACK))
        started = time.monotonic()
        with pytest.raises(FetchError) as info:
            fetcher.fetch(server.url("/drip.jpg"))
        assert time.monotonic() - started < BOUND
        assert info.value.reason == "timeout" and info.value.status == "failed_to_download"
        finished(server)
        assert server.hung_up.is_set() and server.sent < CLOSE_DRIP
    finally:
        server.close()


def test_a_dripping_robots_txt_sent_with_connection_close_is_cut() -> None:
    """robots.txt is fetched through the same client: cut at the timeout, it is unreachable
    (RFC 9309: disallow all) and the image row fails without the image being asked for."""
    server = RawServer(drip_body(1, every=0.0), robots=drip_body(CLOSE_DRIP, every=1.0,
                                                                 content_type="text/plain",
                                                                 close=True))
    try:
        fetcher = Fetcher(FetchConfig(timeout=TIMEOUT, retries=0, allowed_networks=LOOPBACK))
        started = time.monotonic()
        with pytest.raises(FetchError) as info:
            fetcher.fetch(server.url("/img.jpg"))
        assert time.monotonic() - started < BOUND
        assert info.value.reason == "robots_unavailable"
        assert "request took longer than 1s" in str(info.value)
        assert server.sent < CLOSE_DRIP and server.connections == 1  # never asked for the image
    finally:
        server.close()


def test_live_crawler_cuts_a_dripping_page_sent_with_connection_close() -> None:
    server = RawServer(drip_body(CLOSE_DRIP, every=1.0, content_type="text/html", close=True))
    try:
        counts: Counter[str] = Counter()
        options = CrawlerOptions(delay=0.0, timeout=TIMEOUT, retries=0,
                                 allowed_networks=LOOPBACK)
        started = time.monotonic()
        assert list(crawl_site([server.url("/")], options, counts)) == []
        assert time.monotonic() - started < BOUND
        assert counts["skipped:timeout"] == 1
        finished(server)
        assert server.hung_up.is_set() and server.sent < CLOSE_DRIP
    finally:
        server.close()


def test_live_crawler_cuts_a_dripping_robots_txt_sent_with_connection_close() -> None:
    server = RawServer(drip_body(1, every=0.0, content_type="text/html"),
                       robots=drip_body(CLOSE_DRIP, every=1.0, content_type="text/plain",
                                        close=True))
    try:
        counts: Counter[str] = Counter()
        options = CrawlerOptions(delay=0.0, timeout=TIMEOUT, retries=0,
                                 allowed_networks=LOOPBACK)
        started = time.monotonic()
        assert list(crawl_site([server.url("/")], options, counts)) == []
        assert time.monotonic() - started < BOUND
        assert counts["skipped:robots_unavailable"] == 1 and counts["requests"] == 1
        assert server.sent < CLOSE_DRIP
    finally:
        server.close()
