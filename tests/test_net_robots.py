"""One robots.txt policy (RFC 9309) for the downloader and the live crawler, decided from
the response's status field: 2xx rules apply, 4xx allow everything, 5xx and unreachable
disallow everything; one fetch per origin, cached, even under concurrent requests. The cache
is bounded by origins and by bytes, least recently used dropped first (issue 21 item 9)."""

from __future__ import annotations

import gc
import tracemalloc
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
from helpers.shards import TRUSTED, Server, send

from pipeline.core.net import (
    ClientConfig,
    FetchConfig,
    Fetcher,
    FetchError,
    HttpClient,
    RobotsCache,
    RobotsRules,
    robots_crawl_delay,
)
from pipeline.core.net.robots import CACHE_BYTES, MAX_CRAWL_DELAY, ROBOTS_MAX_BYTES
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


# ---------------------------------------------------------------- the bounded cache (issue 21 item 9)


def big_robots(seed: int, rules: int) -> bytes:
    """A robots.txt of ``rules`` short Disallow lines (17 bytes each), ``/private/`` first."""
    lines = ["User-agent: *", "Disallow: /private/"]
    lines += [f"Disallow: /{seed:x}{i:04x}" for i in range(rules)]
    return ("\n".join(lines) + "\n").encode()


def robots_servers(count: int, rules: int) -> list[Server]:
    servers = []
    for n in range(count):
        server = Server("127.0.0.1")
        server.routes["/robots.txt"] = big_robots(n, rules)
        servers.append(server)
    return servers


def loopback_cache(**bounds) -> RobotsCache:
    client = HttpClient(ClientConfig(retries=0, allowed_networks=("127.0.0.1/32",)))
    return RobotsCache(client, **bounds)


@pytest.mark.integration
def test_the_robots_cache_drops_the_least_recently_used_origin() -> None:
    servers = robots_servers(4, 10)
    a, b, c, d = (s.url("/x.jpg") for s in servers)
    try:
        cache = loopback_cache(max_origins=3)
        for url in (a, b, c, a, d):  # a used again before d: b is the least recently used
            cache.check("webimagetext", url)
        assert cache.fetches == 4 and cache.evictions == 1
        cache.check("webimagetext", a)  # still kept
        cache.check("webimagetext", b)  # dropped: fetched again
        assert [s.hits["/robots.txt"] for s in servers] == [1, 2, 1, 1]
        with pytest.raises(FetchError) as info:  # the rules still apply after a refetch
            cache.check("webimagetext", b.replace("/x.jpg", "/private/y.jpg"))
        assert info.value.reason == "robots_disallowed"
    finally:
        for server in servers:
            server.close()


@pytest.mark.integration
def test_the_robots_cache_holds_at_most_its_byte_budget() -> None:
    servers = robots_servers(5, 2000)
    try:
        one = RobotsRules("http://h", "rules", big_robots(0, 2000).decode().splitlines()).size
        cache = loopback_cache(max_bytes=int(2.5 * one))
        for server in servers:
            cache.check("webimagetext", server.url("/x.jpg"))
            assert cache.bytes <= cache.max_bytes
        assert cache.evictions == 3 and cache.fetches == 5
    finally:
        for server in servers:
            server.close()


LARGE_RULES = (ROBOTS_MAX_BYTES - 100) // 17  # a robots.txt of just under 512 KiB


def test_the_cache_counts_the_memory_the_parsed_rules_hold() -> None:
    """A 512 KiB robots.txt (30,800 rules): what the cache counts is what stays in memory
    (tracemalloc), and that is the parsed rules only -- the lines of text are not kept."""
    lines = big_robots(0, LARGE_RULES).decode().splitlines()
    gc.collect()
    tracemalloc.start()
    try:
        rules = RobotsRules("http://h", "rules", lines)
        gc.collect()
        held, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert 0.75 * rules.size <= held <= 1.25 * rules.size, (held, rules.size)
    assert not rules.allows("webimagetext", "http://h/private/a.jpg")


@pytest.mark.integration
def test_large_robots_txt_files_keep_the_worker_within_the_cache_budget() -> None:
    """Twelve origins with a robots.txt of just under 512 KiB each: the default cache holds
    its budget (32 MiB) -- the unbounded cache held the text and the rules of all twelve
    (~7 MB each, issue 21: 387 MB for 30 origins)."""
    assert len(big_robots(11, LARGE_RULES)) <= ROBOTS_MAX_BYTES  # read whole, not cut
    servers = robots_servers(12, LARGE_RULES)
    try:
        cache = loopback_cache()
        for server in servers:
            cache.check("webimagetext", server.url("/x.jpg"))
            assert cache.bytes <= CACHE_BYTES
        assert cache.evictions >= 5 and cache.fetches == 12
        with pytest.raises(FetchError):  # the latest origin's rules are in force
            cache.check("webimagetext", servers[-1].url("/private/a.jpg"))
        assert servers[-1].hits["/robots.txt"] == 1
    finally:
        for server in servers:
            server.close()
