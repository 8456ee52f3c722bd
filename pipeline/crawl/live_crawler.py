"""A small polite crawler for seed URLs, used by the ``live`` source.

Per site (host without ``www.``) it walks links breadth-first from the seeds and yields the
(image URL, text) pairs of every HTML page. It honours robots.txt for its user agent
(including ``Crawl-delay``), spaces requests to one host by ``delay`` seconds with at most
``concurrency`` in flight, stops at ``max_depth`` / ``max_pages``, stays on the seed's site
unless ``same_site=False`` and accepts only HTML. Fetching -- the SSRF guard on every URL,
redirect hop and connection, robots.txt (RFC 9309), ``retries`` with ``Retry-After`` up to
``max_retry_after`` seconds, the whole-request ``timeout`` (body included) and the
``max_page_bytes`` cap -- is the shared network layer's (:mod:`pipeline.core.net`). Every
fetch that yields no page is counted as ``skipped:<reason>``; nothing raises out of
:func:`crawl_site`.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import Counter, deque
from collections.abc import Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from urllib3 import HTTPHeaderDict

from pipeline.core.net import (
    ClientConfig,
    FetchError,
    HttpClient,
    Resolver,
    RobotsCache,
    system_resolver,
)
from pipeline.core.net.robots import origin_of
from pipeline.crawl.html_extract import TEXT_FIELDS, extract_page
from pipeline.crawl.pairs import DEFAULT_MAX_TEXT_CHARS, Texts
from pipeline.crawl.warc_source import is_html
from schemas.status import skipped

DEFAULT_USER_AGENT = "webimagetext-crawler/0.1 (+https://github.com/webimagetext)"


@dataclass(frozen=True)
class CrawlerOptions:
    user_agent: str = DEFAULT_USER_AGENT
    max_depth: int = 2
    max_pages: int = 100  # per site
    delay: float = 1.0  # seconds between requests to one host
    concurrency: int = 2  # requests in flight per host
    timeout: float = 10.0  # whole request (connect + headers + body), each hop and try
    max_page_bytes: int = 5 * 1024 * 1024
    max_redirects: int = 5
    same_site: bool = True
    allow_private: bool = False
    allowed_networks: tuple[str, ...] = ()
    retries: int = 1  # extra tries after 429/5xx, timeouts and broken connections
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


class SiteCrawler:
    def __init__(self, options: CrawlerOptions, counts: Counter[str]):
        o = self.options = options
        self.counts = counts
        self.count_lock = threading.Lock()
        self.client = HttpClient(ClientConfig(
            timeout=o.timeout, max_bytes=o.max_page_bytes, retries=o.retries,
            max_backoff=o.max_retry_after, max_redirects=o.max_redirects,
            user_agent=o.user_agent, allow_private=o.allow_private,
            allowed_networks=tuple(o.allowed_networks), decode_content=True,
            connections_per_host=max(1, o.concurrency), resolver=o.resolver))
        self.robots = RobotsCache(self.client, gate=self._request_gate)
        self.gates: dict[str, HostGate] = {}
        self.gates_lock = threading.Lock()
        self.delays_applied: set[str] = set()

    def count(self, key: str, n: int = 1) -> None:
        with self.count_lock:
            self.counts[key] += n

    def gate(self, netloc: str, extra_delay: float = 0.0) -> HostGate:
        with self.gates_lock:
            if netloc not in self.gates:
                self.gates[netloc] = HostGate(self.options.delay, self.options.concurrency)
            gate = self.gates[netloc]
            gate.delay = max(gate.delay, extra_delay)  # robots.txt Crawl-delay may raise it
            return gate

    @contextlib.contextmanager
    def _request_gate(self, url: str) -> Iterator[None]:
        with self.gate(urlsplit(url).netloc):
            self.count("requests")
            yield

    def _allow(self, url: str) -> None:
        """robots.txt of ``url``'s origin (fetched once), and its Crawl-delay."""
        rules = self.robots.rules(url)
        origin = origin_of(url)
        if origin not in self.delays_applied:
            self.delays_applied.add(origin)
            delay = rules.crawl_delay(self.options.user_agent)
            if delay:
                self.gate(urlsplit(url).netloc, delay)
        rules.check(self.options.user_agent, url)

    @staticmethod
    def _html_only(status: int, headers: HTTPHeaderDict) -> None:
        if not is_html(headers.get("Content-Type")):
            raise FetchError("not HTML", "non_html")

    def _fetch(self, url: str) -> Fetched:
        try:
            response = self.client.get(url, allow=self._allow, inspect=self._html_only,
                                       gate=self._request_gate)
        except FetchError as exc:
            if exc.retries:
                self.count("retried", exc.retries)
            return Fetched(url, exc.reason)
        if response.retries:
            self.count("retried", response.retries)
        return Fetched(response.url, "ok", response.headers.get("Content-Type"), response.body)

    def visit(self, url: str, text_fields: Sequence[str],
              max_text_chars: int = DEFAULT_MAX_TEXT_CHARS
              ) -> tuple[Fetched, list[tuple[str, Texts]], list[str]]:
        fetched = self._fetch(url)
        if fetched.reason != "ok":
            return fetched, [], []
        pairs, links, page_counts = extract_page(fetched.body, fetched.url,
                                                 fetched.content_type, text_fields,
                                                 with_links=True,
                                                 max_text_chars=max_text_chars)
        with self.count_lock:
            self.counts.update(page_counts)
        return fetched, pairs, links


def crawl_site(seeds: Sequence[str], options: CrawlerOptions, counts: Counter[str],
               text_fields: Sequence[str] = TEXT_FIELDS,
               max_text_chars: int = DEFAULT_MAX_TEXT_CHARS
               ) -> Iterator[tuple[str, str, Texts]]:
    """Crawl from ``seeds`` (one site); yield ``(page_url, image_url, texts)``. ``counts``
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
                pending[pool.submit(crawler.visit, url, text_fields, max_text_chars)] = (url, depth)
            if not pending:
                crawler.count(skipped("page_limit"), len(frontier))
                break
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in sorted(done, key=lambda f: pending[f][0]):
                url, depth = pending.pop(future)
                try:
                    fetched, pairs, links = future.result()
                except Exception:  # noqa: BLE001 - a broken page must not end the crawl
                    crawler.count(skipped("error"))
                    continue
                if fetched.reason != "ok":
                    crawler.count(skipped(fetched.reason))
                    continue
                crawler.count("pages")
                for image_url, texts in pairs:
                    yield fetched.url, image_url, texts
                if depth >= options.max_depth:
                    continue
                for link in links:
                    if link in queued or (options.same_site and site_of(link) not in sites):
                        continue
                    queued.add(link)
                    frontier.append((link, depth + 1))
    crawler.client.close()
