"""One robots.txt policy (RFC 9309) for the downloader and the live crawler, decided from
the response's status field: 2xx rules apply, 4xx allow everything, 5xx and unreachable
disallow everything; one fetch per origin, cached, even under concurrent requests."""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
from helpers.shards import TRUSTED, Server, send

from pipeline.core.net import FetchConfig, Fetcher, FetchError, robots_crawl_delay
from pipeline.core.net.robots import MAX_CRAWL_DELAY
from pipeline.crawl.live_crawler import CrawlerOptions, crawl_site

RULES = b"User-agent: *\nDisallow: /private/\n"


def robots_route(code: int):
    def handler(h) -> None:
        if code == 302:
            send(h, 302, b"", headers={"Location": "/robots-real.txt"})
        elif code == 0:  # not HTTP at all: the server is unreachable as far as HTTP goes
            h.wfile.write(b"garbage\r\n\r\n")
        else:
            send(h, code, RULES if code == 200 else b"error", "text/plain")
    return handler


# robots.txt answer -> (status of /a.jpg, status of /private/b.jpg); "" = downloaded
POLICY = {
    200: ("", "filtered:robots_txt"),
    302: ("", "filtered:robots_txt"),  # redirects followed
    401: ("", ""), 403: ("", ""), 404: ("", ""), 410: ("", ""),  # 4xx: allow all
    500: ("failed_to_download", "failed_to_download"),  # 5xx: disallow all
    503: ("failed_to_download", "failed_to_download"),
    0: ("failed_to_download", "failed_to_download"),  # unreachable: disallow all
}


@pytest.mark.parametrize("code", sorted(POLICY))
@pytest.mark.integration
def test_downloader_robots_policy(code: int) -> None:
    server = Server()
    server.routes["/robots.txt"] = robots_route(code)
    server.routes["/robots-real.txt"] = lambda h: send(h, 200, RULES, "text/plain")
    server.routes["/a.jpg"] = server.routes["/private/b.jpg"] = b"image"
    try:
        fetcher = Fetcher(FetchConfig(retries=0, allowed_networks=(TRUSTED,)))
        got = []
        for path in ("/a.jpg", "/private/b.jpg", "/a.jpg"):
            try:
                assert fetcher.fetch(server.url(path)) == b"image"
                got.append("")
            except FetchError as exc:
                got.append(exc.status)
                if exc.status == "failed_to_download":
                    assert exc.reason == "robots_unavailable"
                    assert "disallow all" in str(exc)
        assert tuple(got[:2]) == POLICY[code] and got[2] == got[0]
        assert server.hits["/robots.txt"] == 1 and fetcher.robots_fetches == 1  # cached
        assert server.hits["/private/b.jpg"] == (POLICY[code][1] == "")
    finally:
        server.close()


@pytest.mark.integration
def test_one_robots_fetch_per_origin_under_concurrency() -> None:
    server = Server()
    server.routes["/robots.txt"] = robots_route(200)
    for i in range(16):
        server.routes[f"/{i}.jpg"] = b"image"
    try:
        fetcher = Fetcher(FetchConfig(retries=0, allowed_networks=(TRUSTED,)))
        with ThreadPoolExecutor(8) as pool:
            bodies = list(pool.map(fetcher.fetch, [server.url(f"/{i}.jpg") for i in range(16)]))
        assert bodies == [b"image"] * 16 and server.hits["/robots.txt"] == 1
    finally:
        server.close()


@pytest.mark.parametrize("code,pages,skipped", [(403, 1, None), (503, 0, "robots_unavailable"),
                                                (200, 1, "robots_disallowed")])
@pytest.mark.integration
def test_live_crawler_uses_the_same_policy(code: int, pages: int, skipped: str | None) -> None:
    server = Server()
    server.routes["/robots.txt"] = robots_route(code)
    server.routes["/"] = lambda h: send(
        h, 200, b'<html><img src="/a.jpg" alt="a photo"><a href="/private/p.html">p</a></html>',
        "text/html")
    server.routes["/private/p.html"] = lambda h: send(h, 200, b"<html></html>", "text/html")
    try:
        counts: Counter[str] = Counter()
        options = CrawlerOptions(delay=0.0, retries=0, allowed_networks=(TRUSTED,))
        list(crawl_site([server.url("/")], options, counts))
        assert counts["pages"] == pages + (code == 403)  # 403: the private page too
        if skipped:
            assert counts[f"skipped:{skipped}"] == 1
        assert server.hits["/robots.txt"] == 1
    finally:
        server.close()


def test_hostile_crawl_delays_are_bounded() -> None:
    def delay(value: str) -> float | None:
        return robots_crawl_delay(["User-agent: *", f"Crawl-delay: {value}"], "witbot/1.0")

    assert delay("1e9") == delay("inf") == MAX_CRAWL_DELAY == 60.0
    assert delay("nan") is None and delay("-5") is None and delay("0.5") == 0.5
