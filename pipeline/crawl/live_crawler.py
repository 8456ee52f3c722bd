"""A small polite crawler for seed URLs (``requests``), used by the ``live`` source.

Per site (host without ``www.``) it walks links breadth-first from the seeds and yields the
(image URL, text) pairs of every HTML page. It honours robots.txt for its user agent
(including ``Crawl-delay``), spaces requests to one host by ``delay`` seconds with at most
``concurrency`` in flight, stops at ``max_depth`` / ``max_pages``, stays on the seed's site
unless ``same_site=False``, enforces connect/read timeouts and a total time per page, caps
page bytes, accepts only HTML, follows at most ``max_redirects`` redirects itself, waits on
``429``/``503`` with ``Retry-After`` (up to ``max_retry_after`` seconds, ``retries`` times),
and checks every URL *and every redirect hop* with :mod:`pipeline.crawl.netguard` (no
private/loopback/link-local targets unless allowed); its session connects only to addresses
the guard checked at connect time (:mod:`pipeline.crawl.guarded_http`), so DNS rebinding
between the check and the connection is refused too. Every fetch that yields no page is
counted as ``skipped:<reason>``; nothing raises out of :func:`crawl_site`.
"""

from __future__ import annotations

import threading
import time
import urllib.robotparser
from collections import Counter, deque
from collections.abc import Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from urllib.parse import urljoin, urlsplit

import requests

from pipeline.crawl.guarded_http import ConnectGuard, guarded_session
from pipeline.crawl.html_extract import TEXT_FIELDS, extract_page
from pipeline.crawl.netguard import BlockedURLError, Resolver, check_url, system_resolver
from pipeline.crawl.warc_source import is_html
from pipeline.httputil import retry_after_seconds

DEFAULT_USER_AGENT = "webimagetext-crawler/0.1 (+https://github.com/webimagetext)"


@dataclass(frozen=True)
class CrawlerOptions:
    user_agent: str = DEFAULT_USER_AGENT
    max_depth: int = 2
    max_pages: int = 100  # per site
    delay: float = 1.0  # seconds between requests to one host
    concurrency: int = 2  # requests in flight per host
    timeout: float = 10.0  # connect, read, and total seconds per response
    max_page_bytes: int = 5 * 1024 * 1024
    max_redirects: int = 5
    same_site: bool = True
    allow_private: bool = False
    allowed_networks: tuple[str, ...] = ()
    retries: int = 1  # extra tries after 429/503 with Retry-After
    max_retry_after: float = 30.0
    # name -> addresses, for the check and for the connect (tests inject one to simulate
    # DNS rebinding)
    resolver: Resolver = field(default=system_resolver, compare=False, repr=False)


def site_of(url: str) -> str:
    """The crawl unit: host name, lower case, without a leading ``www.``."""
    host = (urlsplit(url).hostname or "").lower()
    return host[4:] if host.startswith("www.") else host


@dataclass
class Fetched:
    url: str  # final URL after redirects
    reason: str  # "ok" or why there is no page
    content_type: str | None = None
    body: bytes = b""


class HostGate:
    """Per-host politeness: at most ``concurrency`` requests in flight and request starts
    at least ``delay`` seconds apart."""

    def __init__(self, delay: float, concurrency: int):
        self.delay = delay
        self.slots = threading.Semaphore(max(1, concurrency))
        self.lock = threading.Lock()
        self.next_start = 0.0

    def __enter__(self) -> HostGate:
        self.slots.acquire()
        with self.lock:
            now = time.monotonic()
            start = max(now, self.next_start)
            self.next_start = start + self.delay
        if start > now:
            time.sleep(start - now)
        return self

    def __exit__(self, *exc: object) -> None:
        self.slots.release()


def robots_crawl_delay(lines: Sequence[str], user_agent: str) -> float | None:
    """``Crawl-delay`` (fractions allowed, unlike urllib.robotparser) of the group that
    names ``user_agent``, else of the ``*`` group."""
    token = user_agent.split("/", 1)[0].lower()
    delays: dict[str, float] = {}
    agents: list[str] = []
    in_rules = False
    for raw in lines:
        line = raw.split("#", 1)[0].strip()
        if ":" not in line:
            continue
        key, value = (x.strip() for x in line.split(":", 1))
        key = key.lower()
        if key == "user-agent":
            if in_rules:
                agents, in_rules = [], False
            agents.append(value.lower())
        else:
            in_rules = True
            if key == "crawl-delay":
                try:
                    delay = float(value)
                except ValueError:
                    continue
                for agent in agents:
                    delays.setdefault(agent, delay)
    for agent, delay in delays.items():
        if agent != "*" and agent in token:
            return delay
    return delays.get("*")


class SiteCrawler:
    def __init__(self, options: CrawlerOptions, counts: Counter[str]):
        self.options = options
        self.counts = counts
        self.count_lock = threading.Lock()
        self.session = guarded_session(ConnectGuard(
            options.allow_private, tuple(options.allowed_networks), options.resolver))
        self.session.headers["User-Agent"] = options.user_agent
        self.gates: dict[str, HostGate] = {}
        self.robots: dict[str, urllib.robotparser.RobotFileParser | None] = {}
        self.robots_lock = threading.Lock()

    def count(self, key: str, n: int = 1) -> None:
        with self.count_lock:
            self.counts[key] += n

    def gate(self, netloc: str, extra_delay: float = 0.0) -> HostGate:
        with self.robots_lock:
            if netloc not in self.gates:
                self.gates[netloc] = HostGate(self.options.delay, self.options.concurrency)
            gate = self.gates[netloc]
            gate.delay = max(gate.delay, extra_delay)  # robots.txt Crawl-delay may raise it
            return gate

    def _get(self, url: str, netloc: str) -> requests.Response:
        with self.gate(netloc):
            self.count("requests")
            return self.session.get(url, allow_redirects=False, stream=True,
                                    timeout=(self.options.timeout, self.options.timeout))

    def _robots(self, url: str) -> urllib.robotparser.RobotFileParser | None:
        """The parsed robots.txt of ``url``'s host (None = fetch everything)."""
        parts = urlsplit(url)
        key = f"{parts.scheme}://{parts.netloc}"
        with self.robots_lock:
            if key in self.robots:
                return self.robots[key]
        parser: urllib.robotparser.RobotFileParser | None = urllib.robotparser.RobotFileParser()
        assert parser is not None
        robots_url = key + "/robots.txt"
        got = self._fetch_raw(robots_url, accept_any_type=True, check_robots=False)
        crawl_delay = None
        if got.reason == "ok":
            lines = got.body.decode("utf-8", "replace").splitlines()
            parser.parse(lines)
            crawl_delay = robots_crawl_delay(lines, self.options.user_agent)
        elif got.reason.startswith("http_4"):
            parser = None  # no robots.txt: everything allowed
        else:
            parser.disallow_all = True  # type: ignore[attr-defined]  # unreachable robots.txt: be conservative
            self.count("robots_unavailable")
        with self.robots_lock:
            self.robots[key] = parser
        if crawl_delay:
            self.gate(parts.netloc, crawl_delay)
        return parser

    def _fetch_raw(self, url: str, accept_any_type: bool = False,
                   check_robots: bool = True) -> Fetched:
        o = self.options
        seen: set[str] = set()
        retries = o.retries
        hops = 0
        while True:
            try:
                check_url(url, o.allow_private, o.allowed_networks, o.resolver)
            except BlockedURLError as exc:
                return Fetched(url, f"blocked_{exc.reason}")
            if check_robots:
                robots = self._robots(url)
                if robots is not None and not robots.can_fetch(o.user_agent, url):
                    return Fetched(url, "robots_disallowed")
            seen.add(url)
            try:
                response = self._get(url, urlsplit(url).netloc)
            except BlockedURLError as exc:  # refused at connect time (e.g. DNS rebinding)
                return Fetched(url, f"blocked_{exc.reason}")
            except requests.Timeout:
                return Fetched(url, "timeout")
            except requests.ConnectionError:
                return Fetched(url, "connection_error")
            except requests.RequestException:
                return Fetched(url, "request_error")
            with response:
                status = response.status_code
                if status in (301, 302, 303, 307, 308) and response.headers.get("Location"):
                    target = urljoin(url, response.headers["Location"])
                    hops += 1
                    if target in seen:
                        return Fetched(url, "redirect_loop")
                    if hops > o.max_redirects:
                        return Fetched(url, "too_many_redirects")
                    url = target
                    continue
                if status in (429, 503):
                    wait_s = retry_after_seconds(response.headers.get("Retry-After"))
                    if retries > 0 and wait_s is not None and wait_s <= o.max_retry_after:
                        retries -= 1
                        self.count("retried")
                        time.sleep(wait_s)
                        seen.discard(url)
                        continue
                    return Fetched(url, f"http_{status}")
                if status != 200:
                    return Fetched(url, f"http_{status}")
                content_type = response.headers.get("Content-Type")
                if not accept_any_type and not is_html(content_type):
                    return Fetched(url, "non_html", content_type)
                return self._read_body(response, url, content_type)

    def _read_body(self, response: requests.Response, url: str,
                   content_type: str | None) -> Fetched:
        o = self.options
        length = response.headers.get("Content-Length", "")
        if length.isdigit() and int(length) > o.max_page_bytes:
            return Fetched(url, "too_large", content_type)
        deadline = time.monotonic() + o.timeout
        chunks, size = [], 0
        try:
            for chunk in response.iter_content(64 * 1024):
                size += len(chunk)
                if size > o.max_page_bytes:
                    return Fetched(url, "too_large", content_type)
                if time.monotonic() > deadline:
                    return Fetched(url, "timeout", content_type)
                chunks.append(chunk)
        except requests.RequestException:
            return Fetched(url, "timeout", content_type)
        return Fetched(url, "ok", content_type, b"".join(chunks))

    def visit(self, url: str, text_fields: Sequence[str]
              ) -> tuple[Fetched, list[tuple[str, str]], list[str]]:
        fetched = self._fetch_raw(url)
        if fetched.reason != "ok":
            return fetched, [], []
        pairs, links, page_counts = extract_page(fetched.body, fetched.url,
                                                 fetched.content_type, text_fields,
                                                 with_links=True)
        with self.count_lock:
            self.counts.update(page_counts)
        return fetched, pairs, links


def crawl_site(seeds: Sequence[str], options: CrawlerOptions, counts: Counter[str],
               text_fields: Sequence[str] = TEXT_FIELDS) -> Iterator[tuple[str, str, str]]:
    """Crawl from ``seeds`` (one site); yield ``(page_url, image_url, text)``. ``counts``
    gets ``pages``, ``requests``, ``images``, ``with_text`` and ``skipped:<reason>``."""
    crawler = SiteCrawler(options, counts)
    sites = {site_of(s) for s in seeds}
    frontier: deque[tuple[str, int]] = deque((s, 0) for s in seeds)
    queued = set(seeds)
    started = 0
    pending: dict[Future, tuple[str, int]] = {}
    with ThreadPoolExecutor(max_workers=max(1, options.concurrency)) as pool:
        while frontier or pending:
            while frontier and len(pending) < max(1, options.concurrency) \
                    and started < options.max_pages:
                url, depth = frontier.popleft()
                started += 1
                pending[pool.submit(crawler.visit, url, text_fields)] = (url, depth)
            if not pending:
                crawler.count("skipped:page_limit", len(frontier))
                break
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in sorted(done, key=lambda f: pending[f][0]):
                url, depth = pending.pop(future)
                try:
                    fetched, pairs, links = future.result()
                except Exception:  # noqa: BLE001 - a broken page must not end the crawl
                    crawler.count("skipped:error")
                    continue
                if fetched.reason != "ok":
                    crawler.count(f"skipped:{fetched.reason}")
                    continue
                crawler.count("pages")
                for image_url, text in pairs:
                    yield fetched.url, image_url, text
                if depth >= options.max_depth:
                    continue
                for link in links:
                    if link in queued or (options.same_site and site_of(link) not in sites):
                        continue
                    queued.add(link)
                    frontier.append((link, depth + 1))
    crawler.session.close()
