"""Politeness in the network layer, without a download job: the DNS cache (one query per host
per TTL through the real cache code, negative caching, failures by kind, answers re-checked by
the SSRF guard at every connect, rebinding after expiry refused), the per-host table and
limiter (connections, rate, Crawl-delay, host-level backoff after 429/503, leases that
expire), the shard dispatcher (other hosts at full speed, rows of a backed-off host
deferred) and the honest User-Agent."""

from __future__ import annotations

import argparse
import socket
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
from helpers.politeness import CountingHost, jpeg, most_in_window

from pipeline.core.net import BlockedURLError, FetchConfig, Fetcher, FetchError, guarded_connect
from pipeline.core.net.dns import DnsCache, failure_kind
from pipeline.core.net.fetcher import check_contact, user_agent
from pipeline.core.net.hosts import (
    BACKED_OFF,
    WAITED,
    HostLimiter,
    HostLimits,
    HostTable,
    host_hash,
    host_key,
    polite_map,
    shared_table_path,
)
from pipeline.shards import cli as shards_cli
from schemas import status as st


class Clock:
    def __init__(self, now: float = 1000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


class Stub:
    """A resolver under the test's control, counting its queries per name."""

    def __init__(self, answers: dict[str, list[str] | BaseException]):
        self.answers = answers
        self.queries: list[str] = []
        self.lock = threading.Lock()

    def __call__(self, host: str, port: int) -> list[str]:
        with self.lock:
            self.queries.append(host)
        answer = self.answers[host]
        if isinstance(answer, BaseException):
            raise answer
        return list(answer)


# -- DNS ------------------------------------------------------------------------------------------

def test_one_query_per_host_per_ttl():
    clock = Clock()
    stub = Stub({"a.test": ["192.0.2.1"], "b.test": ["192.0.2.2", "2001:db8::1"]})
    cache = DnsCache(stub, ttl=300, negative_ttl=60, clock=clock)
    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(lambda i: cache("ab"[i % 2] + ".test", 443), range(200)))
    assert answers[0] == ["192.0.2.1"] and answers[1] == ["192.0.2.2", "2001:db8::1"]
    assert sorted(stub.queries) == ["a.test", "b.test"]  # 200 lookups, one query per host
    clock.now += 299
    cache("A.TEST.", 80)  # the same name, any case, trailing dot, any port
    assert len(stub.queries) == 2
    clock.now += 2  # past the TTL: asked again, once
    cache("a.test", 80), cache("a.test", 80)
    assert stub.queries[2:] == ["a.test"]
    assert cache.counts() == {"lookups": 203, "hits": 200, "negative_hits": 0, "queries": 3,
                              "failures": {}}


def test_lookups_of_one_name_at_once_make_one_query():
    release = threading.Event()
    calls: list[str] = []

    def slow(host: str, port: int) -> list[str]:
        calls.append(host)
        release.wait(5)
        return ["192.0.2.1"]

    cache = DnsCache(slow, ttl=60)
    with ThreadPoolExecutor(20) as pool:
        futures = [pool.submit(cache, "slow.test", 80) for _ in range(20)]
        time.sleep(0.2)
        release.set()
        assert all(f.result() == ["192.0.2.1"] for f in futures)
    assert calls == ["slow.test"]


def test_failures_are_cached_for_the_negative_ttl_and_counted_by_kind():
    clock = Clock()
    stub = Stub({"nx.test": socket.gaierror(socket.EAI_NONAME, "Name or service not known"),
                 "again.test": socket.gaierror(socket.EAI_AGAIN, "Temporary failure"),
                 "empty.test": [], "bad.test": UnicodeError("label too long")})
    cache = DnsCache(stub, ttl=300, negative_ttl=30, clock=clock)
    for _ in range(3):
        with pytest.raises(socket.gaierror) as info:
            cache("nx.test", 80)
        assert info.value.errno == socket.EAI_NONAME  # the resolver's error, raised again
    with pytest.raises(socket.gaierror):
        cache("again.test", 80)
    assert cache("empty.test", 80) == []
    with pytest.raises(UnicodeError):
        cache("bad.test", 80)
    assert len(stub.queries) == 4
    clock.now += 31
    with pytest.raises(socket.gaierror):
        cache("nx.test", 80)
    counts = cache.counts()
    assert counts["queries"] == 5 and counts["negative_hits"] == counts["hits"] == 2
    assert counts["failures"] == {"bad_name": 1, "no_address": 1, "no_such_name": 2,
                                  "temporary_failure": 1}
    assert failure_kind(TimeoutError()) == "timeout" and failure_kind(OSError()) == "other"


def test_cache_is_bounded_and_ttl_zero_turns_it_off():
    stub = Stub({f"h{i}.test": ["192.0.2.1"] for i in range(10)})
    cache = DnsCache(stub, ttl=60, max_entries=4)
    for i in range(10):
        cache(f"h{i}.test", 80)
    assert len(cache._entries) == 4
    cache("h0.test", 80)  # evicted: asked again
    assert stub.queries.count("h0.test") == 2
    off = DnsCache(stub, ttl=0)
    off("h1.test", 80), off("h1.test", 80)
    assert off.counts()["queries"] == 2 and off.counts()["hits"] == 0


def test_a_cached_answer_is_checked_again_at_every_connect():
    """The cache keeps answers, never verdicts: a private address it holds is refused on
    every connect, and an answer that changes once the entry expires (rebinding) is checked
    like the first, so the victim is never reached."""
    trusted = ["127.0.0.2/32"]
    site = socket.create_server(("127.0.0.2", 0))
    port = site.getsockname()[1]
    victim = socket.create_server(("127.0.0.3", port))
    victim.setblocking(False)
    try:
        clock = Clock()
        stub = Stub({"evil.test": ["127.0.0.3"]})
        cache = DnsCache(stub, ttl=300, clock=clock)
        for _ in range(3):
            with pytest.raises(BlockedURLError, match="private_address"):
                guarded_connect("evil.test", port, 2.0, allowed_networks=trusted, resolver=cache)
        assert stub.queries == ["evil.test"]  # asked once, refused three times

        answers = iter([["127.0.0.2"], ["127.0.0.3"]])
        queries: list[str] = []

        def rebinding(host: str, port: int) -> list[str]:
            queries.append(host)
            return next(answers)

        cache = DnsCache(rebinding, ttl=300, clock=clock)
        with guarded_connect("rebind.test", port, 2.0, allowed_networks=trusted,
                             resolver=cache) as sock:
            assert sock.getpeername()[0] == "127.0.0.2"
        with guarded_connect("rebind.test", port, 2.0, allowed_networks=trusted,
                             resolver=cache):
            pass  # within the TTL: the same (checked) answer
        clock.now += 301  # expired: the DNS now answers the victim's address
        with pytest.raises(BlockedURLError, match="private_address"):
            guarded_connect("rebind.test", port, 2.0, allowed_networks=trusted, resolver=cache)
        assert queries == ["rebind.test", "rebind.test"]
        with pytest.raises(BlockingIOError):
            victim.accept()  # never connected to
    finally:
        site.close()
        victim.close()


@pytest.mark.integration
def test_the_fetcher_resolves_each_host_once_per_ttl():
    """Through the downloader's Fetcher: hosts that close every connection (so each request
    connects again), names from a counted resolver: one query per host per TTL; a name that
    resolves to an untrusted address is refused at every connect and never reached."""
    image = jpeg(64)
    a = CountingHost("127.0.0.2", image, close=True)
    b = CountingHost("127.0.0.3", image, close=True)
    evil = CountingHost("127.0.0.4", image, close=True)
    stub = Stub({"a.test": ["127.0.0.2"], "b.test": ["127.0.0.3"], "evil.test": ["127.0.0.4"]})
    try:
        fetcher = Fetcher(FetchConfig(allowed_networks=("127.0.0.2/32", "127.0.0.3/32"),
                                      retries=0, max_requests_per_second_per_host=0,
                                      respect_robots_txt=False),  # robots.txt would cache "blocked"
                          resolver=stub)
        clock = Clock(time.monotonic())
        fetcher.dns.clock = clock
        urls = [a.url(f"/{i}.jpg", "a.test") for i in range(10)] + \
               [b.url(f"/{i}.jpg", "b.test") for i in range(10)]
        with ThreadPoolExecutor(8) as pool:
            assert set(pool.map(fetcher.fetch, urls)) == {image}
        for _ in range(3):
            with pytest.raises(FetchError) as info:
                fetcher.fetch(evil.url("/x.jpg", "evil.test"))
            assert info.value.status == st.filtered(st.BLOCKED_ADDRESS)
        assert sorted(stub.queries) == ["a.test", "b.test", "evil.test"]
        clock.now += fetcher.config.dns_ttl + 1
        fetcher.fetch(a.url("/again.jpg", "a.test"))
        assert sorted(stub.queries) == ["a.test", "a.test", "b.test", "evil.test"]
        dns = fetcher.counts()["dns"]
        # 20 images + 1 again, each on a new connection, and 3 connects refused
        assert dns["lookups"] == 24 and dns["queries"] == 4 and dns["hits"] == 20
        assert sum(evil.hits.values()) == 0
    finally:
        for server in (a, b, evil):
            server.close()


@pytest.mark.integration
def test_robots_txt_of_a_backed_off_host_is_not_cached_and_its_crawl_delay_applies():
    """A robots.txt fetch refused by the host's own backoff is not "robots.txt unavailable"
    for the rest of the process: the row is host_backoff, and robots.txt is fetched once the
    host is back; its Crawl-delay then spaces the host's requests."""
    host = CountingHost("127.0.0.2", jpeg(64), robots="User-agent: *\nCrawl-delay: 2.5\n")
    try:
        fetcher = Fetcher(FetchConfig(allowed_networks=("127.0.0.2/32",), retries=0))
        offset = [0.0]  # time runs, and the test can jump ahead
        fetcher.hosts.clock = lambda: time.monotonic() + offset[0]
        h = host_hash(host.host)
        now = fetcher.hosts.clock()
        fetcher.hosts.table.report(h, True, now, now, 60.0, 0.5)  # a 429 with Retry-After 60
        with pytest.raises(FetchError) as info:
            fetcher.fetch(host.url("/a.jpg"))
        assert info.value.status == st.FAILED_HOST_BACKOFF
        assert sum(host.hits.values()) == 0 and fetcher.robots_fetches == 0
        offset[0] += 61
        assert fetcher.fetch(host.url("/a.jpg")) == host.image
        assert host.hits["/robots.txt"] == 1 and fetcher.robots_fetches == 1
        assert fetcher.hosts.interval(host.host) == 2.5  # Crawl-delay over 1/10 s
        assert fetcher.hosts.ready_in(host.host)[0] > 2.0  # the next start is 2.5 s later
    finally:
        host.close()


# -- the host table and limiter ---------------------------------------------------------------

def test_connections_per_host_hold_across_threads():
    limiter = HostLimiter(HostLimits(max_connections=3, max_rate=0))
    lock = threading.Lock()
    now: Counter[str] = Counter()
    peak: Counter[str] = Counter()

    def request(url: str) -> None:
        host = host_key(url)
        with limiter.gate(url):
            with lock:
                now[host] += 1
                peak[host] = max(peak[host], now[host])
            time.sleep(0.01)
            with lock:
                now[host] -= 1

    urls = [f"http://one.test/{i}.jpg" for i in range(60)] + \
           [f"https://other.test:8443/{i}.jpg" for i in range(30)]
    with ThreadPoolExecutor(32) as pool:
        list(pool.map(request, urls))
    assert peak == {"one.test": 3, "other.test": 3}  # each host its own budget
    assert limiter.counts()["requests"] == 90 and limiter.counts()["waited"] > 0


def test_request_starts_are_spaced_by_the_rate_and_by_crawl_delay():
    limiter = HostLimiter(HostLimits(max_connections=0, max_rate=20))
    starts: list[float] = []

    def request(url: str) -> None:
        with limiter.gate(url):
            starts.append(time.monotonic())

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(request, ["http://r.test/x"] * 8))
    gaps = [b - a for a, b in zip(sorted(starts), sorted(starts)[1:])]
    assert min(gaps) >= 0.05 * 0.9 and most_in_window(sorted(starts), 0.2) <= 5
    limiter.crawl_delay("http://r.test/robots.txt", 0.2)  # Crawl-delay raises the spacing
    limiter.crawl_delay("http://slow.test/robots.txt", 1e9)  # capped at 60 s
    assert limiter.interval("r.test") == 0.2 and limiter.interval("slow.test") == 60.0
    assert limiter.interval("other.test") == 0.05


def test_a_429_pauses_the_whole_host_then_backs_it_off():
    clock = Clock()
    limits = HostLimits(max_connections=4, max_rate=0, backoff_base=1.0, max_backoff=5.0)
    limiter = HostLimiter(limits, clock=clock)
    busy = FetchError("HTTP 429", "http_429", http_status=429)

    def answer(error: FetchError | None, url: str = "http://busy.test/a") -> None:
        with pytest.raises(FetchError) if error else _nothing():
            with limiter.gate(url):
                if error:
                    raise error

    # four requests in flight get 429 together: one backoff of 1 s, not four
    gates = [limiter.gate("http://busy.test/x") for _ in range(4)]
    for gate in gates:
        gate.__enter__()
    for gate in gates:
        assert gate.__exit__(FetchError, busy, None) is False
    assert limiter.counts()["backoffs"] == 1 and limiter.counts()["busy_answers"] == 4
    h = host_hash("busy.test")
    assert limiter.table.peek(h, clock.now, 0, 5.0) == (1.0, False)  # paused for everyone
    assert limiter.ready_in("other.test") == (0.0, False)  # other hosts untouched
    clock.now += 1.0
    answer(busy)  # 2nd in a row: 2 s
    assert limiter.ready_in("busy.test") == (2.0, False)
    clock.now += 2.0
    answer(busy)  # 3rd: 4 s
    clock.now += 4.0
    answer(busy)  # 4th: 8 s > max_backoff: the host is unavailable
    wait_s, unavailable = limiter.ready_in("busy.test")
    assert wait_s == 8.0 and unavailable
    with pytest.raises(FetchError) as info:
        with limiter.gate("http://busy.test/y"):
            pass
    assert info.value.reason == st.HOST_BACKOFF and info.value.status == st.FAILED_HOST_BACKOFF
    assert str(info.value) == BACKED_OFF
    clock.now += 8.0  # the pause is over: one request may try again; a success resets
    answer(None)
    answer(busy)
    assert limiter.ready_in("busy.test") == (1.0, False)
    # Retry-After wins over the exponential pause; a 503 counts like a 429
    answer(FetchError("HTTP 503", "http_503", http_status=503, retry_after=30.0),
           "http://other.test/")
    assert limiter.ready_in("other.test") == (30.0, True)


class _nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> bool:
        return False


def test_a_request_never_waits_past_max_wait():
    clock = Clock()
    limiter = HostLimiter(HostLimits(max_connections=1, max_rate=0, max_wait=0.05), clock=clock)
    with limiter.gate("http://one.test/a"):
        real = time.monotonic()
        limiter.clock = lambda: clock.now + (time.monotonic() - real)
        with pytest.raises(FetchError) as info:
            with limiter.gate("http://one.test/b"):
                pass
    assert str(info.value) == WAITED and limiter.counts()["refused"] == 1


def test_a_host_under_its_limits_never_makes_a_request_wait(tmp_path):
    """16 threads, one host, limits far above what they reach: no request waits. (The time
    is read once the table's lock is held: read before, it was stale by the wait for the
    lock, and another thread's start made a spurious "rate" wait.) Every lease comes back,
    most without the lock (the host in good standing)."""
    path = str(tmp_path / "hosts.table")
    limits = HostLimits(max_connections=64, max_rate=1e6)
    limiter = HostLimiter(limits, HostTable(64, path))

    def requests(_: int) -> None:
        for _ in range(200):
            with limiter.gate("http://busy.test/a"):
                pass

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(requests, range(16)))
    counts = limiter.counts()
    assert counts["requests"] == 3200 and counts["waited"] == 0
    assert limiter.table.in_flight(host_hash("busy.test"), time.monotonic()) == 0
    limiter.table.close()


def test_leases_of_a_killed_worker_expire():
    clock = Clock()
    table = HostTable(2)
    h = host_hash("h.test")
    for _ in range(2):  # taken, never released (the worker was killed)
        assert table.try_acquire(h, clock.now, 0, 25.0, 10.0)[0]
    assert table.try_acquire(h, clock.now, 0, 25.0, 10.0)[3] == "connections"
    clock.now += 25.0 + 0.001
    assert table.try_acquire(h, clock.now, 0, 25.0, 10.0)[0]
    assert table.in_flight(h, clock.now) == 1


def test_the_table_file_is_shared_and_checked(tmp_path):
    path = str(tmp_path / "hosts.table")
    first, second = HostTable(3, path), HostTable(3, path)
    h = host_hash("shared.test")
    for _ in range(3):
        assert first.try_acquire(h, 1.0, 0, 25.0, 10.0)[0]
    assert second.try_acquire(h, 1.0, 0, 25.0, 10.0)[3] == "connections"
    assert second.in_flight(h, 1.0) == 3
    with pytest.raises(ValueError, match="other limits"):
        HostTable(4, path)
    first.close()
    second.close()


def test_tables_of_launchers_that_died_are_removed():
    import os
    import subprocess

    gone = subprocess.Popen(["true"])
    gone.wait()
    path = shared_table_path()
    folder = os.path.dirname(path)
    stale = os.path.join(folder, f"wit-hosts-{gone.pid}-stale.table")
    mine = os.path.join(folder, f"wit-hosts-{os.getpid()}-alive.table")
    for p in (stale, mine):
        open(p, "wb").close()
    try:
        again = shared_table_path()
        assert not os.path.exists(stale) and os.path.exists(mine)
        assert os.path.basename(again).startswith(f"wit-hosts-{os.getpid()}-")
    finally:
        for p in (path, mine, again):
            if os.path.exists(p):
                os.remove(p)


def test_host_keys():
    assert host_key("https://Img.Example.COM.:8443/a.jpg?x") == "img.example.com"
    assert host_key("http://[::1]:80/") == "::1"
    assert host_key("not a url") == "" and host_key("http://[bad/") == ""


# -- the dispatcher ---------------------------------------------------------------------------

def test_other_hosts_keep_full_speed_while_one_is_backed_off():
    limiter = HostLimiter(HostLimits(max_connections=2, max_rate=0, backoff_base=0.2,
                                     max_backoff=0.5))
    calls: list[tuple[float, str]] = []
    lock = threading.Lock()

    def fetch(url: str) -> str:
        with lock:
            calls.append((time.monotonic(), url))
        try:
            with limiter.gate(url):
                time.sleep(0.01)
                if "busy" in url:
                    raise FetchError("HTTP 429", "http_429", http_status=429)
        except FetchError as exc:
            return exc.status
        return st.SUCCESS

    items = [f"http://{'busy' if i % 2 else 'fine'}.test/{i}" for i in range(80)]
    started = time.monotonic()
    results = dict(polite_map(fetch, items, threads=16, host_of=host_key, limiter=limiter,
                              defer=lambda item, why: f"deferred: {why}"))
    fine = [t for t, u in calls if "fine" in u]
    busy_calls = [u for _, u in calls if "busy" in u]
    assert all(results[u] == st.SUCCESS for u in items if "fine" in u)
    # 40 rows of a host that answers 429: 3 rounds of 2 (0.2, 0.4, then 0.8 s > 0.5 s)
    assert len(busy_calls) <= 8 and all(
        results[u] in (st.FAILED_TO_DOWNLOAD, f"deferred: {BACKED_OFF}")
        or results[u] == st.FAILED_HOST_BACKOFF for u in items if "busy" in u)
    assert sum(1 for u in items if "busy" in u and results[u].startswith("deferred")) >= 30
    # the other host's 40 rows (2 at a time, 10 ms each) did not wait for the backoff
    assert max(fine) - started < 0.6 * 4
    assert limiter.counts()["deferred"] >= 30


def test_rows_waiting_past_max_wait_are_deferred_not_held():
    limiter = HostLimiter(HostLimits(max_connections=0, max_rate=10, max_wait=0.35))
    items = [f"http://slow.test/{i}" for i in range(20)] + [f"http://x{i}.test/" for i in range(5)]
    order = []
    results = dict(polite_map(lambda u: order.append(u) or "done", items, threads=4,
                              host_of=host_key, limiter=limiter,
                              defer=lambda item, why: why))
    slow_done = [u for u in items if "slow" in u and results[u] == "done"]
    assert 3 <= len(slow_done) <= 6  # about 0.35 s at 10 per second
    assert all(results[u] == WAITED for u in items if "slow" in u and u not in slow_done)
    assert slow_done == [u for u in order if "slow" in u] == items[:len(slow_done)]  # in order
    assert all(results[u] == "done" for u in items if "x" in host_key(u))


# -- User-Agent ---------------------------------------------------------------------------------

def test_the_user_agent_is_honest():
    ua = FetchConfig().user_agent
    assert ua.startswith("webimagetext/") and "(+https://github.com/webimagetext)" in ua
    assert "Mozilla" not in ua and "img2dataset" not in ua and "compatible" not in ua
    assert FetchConfig(contact="ops@example.org").user_agent.endswith(
        "; contact: ops@example.org)")
    assert user_agent("mybot", "https://example.org/bot").startswith("mybot webimagetext/")
    for bad in ("ops@example.org\r\nX-Evil: 1", "me (at) example.org", "not-a-contact",
                "ftp://example.org/", "a@b.c;x", "é@example.org"):
        with pytest.raises(ValueError):
            check_contact(bad)
    with pytest.raises(ValueError):
        FetchConfig(user_agent_token="Googlebot\r\nX: y")


def test_wit_shards_help_and_parse_the_politeness_options(capsys):
    parser = argparse.ArgumentParser()
    shards_cli.add_arguments(parser)
    text = parser.format_help()
    for flag in ("--max-connections-per-host", "--max-requests-per-second-per-host",
                 "--max-host-wait", "--dns-ttl", "--dns-negative-ttl", "--contact"):
        assert flag in text
    args = parser.parse_args(["--candidates", "c", "--out", "o", "--contact", "ops@example.org",
                              "--max-connections-per-host", "2",
                              "--max-requests-per-second-per-host", "0.5"])
    fetch = shards_cli.options_from_args(args).download.fetch
    assert (fetch.contact, fetch.max_connections_per_host,
            fetch.max_requests_per_second_per_host) == ("ops@example.org", 2, 0.5)
    assert fetch.user_agent.endswith("contact: ops@example.org)")
    with pytest.raises(SystemExit):
        parser.parse_args(["--candidates", "c", "--out", "o", "--contact", "x y@z.org"])
    assert "--contact" in capsys.readouterr().err


def test_host_backoff_is_a_retryable_failed_download():
    assert st.FAILED_HOST_BACKOFF == "failed_to_download:host_backoff"
    assert st.FAILED_HOST_BACKOFF in st.RETRYABLE
    assert st.status_group(st.FAILED_HOST_BACKOFF) == st.FAILED_TO_DOWNLOAD
    assert st.is_failed_download(st.FAILED_HOST_BACKOFF)
    assert any(st.FAILED_HOST_BACKOFF.startswith(p) for p in st.STATUS_PREFIXES)
