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
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime, timezone
from urllib.parse import urlsplit

from urllib3 import HTTPHeaderDict

from pipeline.core.cliargs import (
    non_negative_float,
    non_negative_int,
    positive_float,
    positive_int,
)
from pipeline.core.net import (
    ClientConfig,
    FetchError,
    HttpClient,
    Resolver,
    RobotsCache,
    system_resolver,
)
from pipeline.core.net.robots import origin_of
from pipeline.core.net.tdmrep import TdmRepCache
from pipeline.core.options import option
from pipeline.crawl.html_extract import TEXT_FIELDS, PageInfo, extract_page_info
from pipeline.crawl.option_values import networks
from pipeline.crawl.optout import PageOptOut
from pipeline.crawl.pairs import DEFAULT_MAX_TEXT_CHARS, Pair, Texts, make_pair
from pipeline.crawl.warc_source import DEFAULT_MAX_PAGE_BYTES, is_html
from schemas.status import REMOVED, skipped

DEFAULT_USER_AGENT = "webimagetext-crawler/0.1 (+https://github.com/webimagetext)"
LIVE = "live crawler (--seeds)"  # the options' group in ``wit crawl --help``


@dataclass(frozen=True)
class CrawlerOptions:
    """The live crawler's politeness and network options (``wit crawl``'s "live crawler"
    group; the defaults here are the command's)."""

    user_agent: str = option(DEFAULT_USER_AGENT, group=LIVE,
                             help="User-Agent sent and matched against robots.txt")
    max_depth: int = option(2, type=non_negative_int, group=LIVE,
                            help="link depth followed from a seed")
    max_pages: int = option(100, type=positive_int, group=LIVE,
                            help="pages fetched per site at most")
    delay: float = option(1.0, type=non_negative_float, group=LIVE,
                          help="seconds between requests to one host; robots.txt Crawl-delay "
                               "raises it")
    concurrency: int = option(2, type=positive_int, group=LIVE,
                              help="requests in flight per host")
    timeout: float = option(10.0, type=positive_float, group=LIVE,
                            help="seconds for a whole request: connect, headers and body "
                                 "(each hop and try)")
    # set from CrawlConfig.max_page_bytes (--max-page-bytes), which archived pages share
    max_page_bytes: int = DEFAULT_MAX_PAGE_BYTES
    max_redirects: int = option(5, type=non_negative_int, group=LIVE,
                                help="redirects followed per URL")
    same_site: bool = option(True, flag="--offsite", group=LIVE,
                             help="follow links to other sites too (default: same site only)")
    allow_private: bool = option(False, group=LIVE,
                                 help="allow private, loopback and link-local targets "
                                      "(default: blocked, checked after DNS resolution and "
                                      "after every redirect)")
    allowed_networks: tuple[str, ...] = option(
        (), flag="--allow-network", append=True, metavar="CIDR", convert=networks, group=LIVE,
        help="allow just this network, e.g. 127.0.0.0/8 (repeatable)")
    retries: int = option(1, type=non_negative_int, group=LIVE,
                          help="tries again after 429/5xx, timeouts and broken connections")
    max_retry_after: float = option(30.0, type=non_negative_float, group=LIVE,
                                    help="longest wait between tries, seconds; a longer "
                                         "Retry-After gives up")
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
    fetch_time: str | None = None  # when the response arrived, ISO 8601 UTC
    headers: HTTPHeaderDict | None = None


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
    def __init__(self, options: CrawlerOptions, counts: Counter[str],
                 opt_out: PageOptOut | None = None):
        o = self.options = options
        self.opt_out = opt_out
        self.counts = counts
        self.count_lock = threading.Lock()
        self.client = HttpClient(ClientConfig(
            timeout=o.timeout, max_bytes=o.max_page_bytes, retries=o.retries,
            max_backoff=o.max_retry_after, max_redirects=o.max_redirects,
            user_agent=o.user_agent, allow_private=o.allow_private,
            allowed_networks=tuple(o.allowed_networks), decode_content=True,
            connections_per_host=max(1, o.concurrency), resolver=o.resolver))
        self.robots = RobotsCache(self.client, gate=self._request_gate)
        self.tdmrep = TdmRepCache(self.client, gate=self._request_gate) \
            if opt_out is not None and opt_out.respect_tdmrep else None
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
        """robots.txt of ``url``'s origin (fetched once), and its Crawl-delay; then its
        tdmrep.json when TDMRep is honoured (a reserved page is never fetched)."""
        rules = self.robots.rules(url)
        origin = origin_of(url)
        if origin not in self.delays_applied:
            self.delays_applied.add(origin)
            delay = rules.crawl_delay(self.options.user_agent)
            if delay:
                self.gate(urlsplit(url).netloc, delay)
        rules.check(self.options.user_agent, url)
        if self.tdmrep is not None:
            self.tdmrep.check(url)

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
        return Fetched(response.url, "ok", response.headers.get("Content-Type"), response.body,
                       utc_now(), response.headers)

    def visit(self, url: str, text_fields: Sequence[str],
              max_text_chars: int = DEFAULT_MAX_TEXT_CHARS) -> tuple[Fetched, PageInfo | None]:
        fetched = self._fetch(url)
        if fetched.reason != "ok":
            return fetched, None
        page = extract_page_info(fetched.body, fetched.url, fetched.content_type, text_fields,
                                 with_links=True, max_text_chars=max_text_chars,
                                 opt_out=self.opt_out, headers=fetched.headers)
        with self.count_lock:
            self.counts.update(page.counts)
        return fetched, page


def utc_now() -> str:
    """The current time, ISO 8601 UTC to the second (as a WARC-Date)."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def crawl_site(seeds: Sequence[str], options: CrawlerOptions, counts: Counter[str],
               text_fields: Sequence[str] = TEXT_FIELDS,
               max_text_chars: int = DEFAULT_MAX_TEXT_CHARS,
               skip_page: Callable[[str], bool] | None = None,
               opt_out: PageOptOut | None = None) -> Iterator[tuple[str, str, Texts]]:
    """Crawl from ``seeds`` (one site); yield ``(page_url, image_url, texts)``
    (:func:`crawl_site_pairs` without the provenance)."""
    for pair in crawl_site_pairs(seeds, options, counts, text_fields, max_text_chars,
                                 skip_page, opt_out):
        yield pair.page_url or "", pair.url, pair.texts


def crawl_site_pairs(seeds: Sequence[str], options: CrawlerOptions, counts: Counter[str],
                     text_fields: Sequence[str] = TEXT_FIELDS,
                     max_text_chars: int = DEFAULT_MAX_TEXT_CHARS,
                     skip_page: Callable[[str], bool] | None = None,
                     opt_out: PageOptOut | None = None) -> Iterator[Pair]:
    """Crawl from ``seeds`` (one site); yield a ``live`` :class:`Pair` per image with text,
    with its page's final URL, fetch time and licence signals. ``counts`` gets ``pages``,
    ``requests``, ``images``, ``with_text`` and ``skipped:<reason>`` (``skipped:tdm_reservation``:
    a page tdmrep.json reserves, not fetched), and with ``opt_out`` ``opted_out:<reason>`` /
    ``opted_out_pages`` (pipeline.crawl.optout). ``skip_page(url)``: a page never to fetch (a
    takedown list's page or domain), counted ``skipped:removed``."""
    crawler = SiteCrawler(options, counts, opt_out)
    if skip_page is not None:
        kept = [s for s in seeds if not skip_page(s)]
        if len(kept) < len(seeds):
            crawler.count(skipped(REMOVED), len(seeds) - len(kept))
        seeds = kept
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
                    fetched, page = future.result()
                except Exception:  # noqa: BLE001 - a broken page must not end the crawl
                    crawler.count(skipped("error"))
                    continue
                if fetched.reason != "ok" or page is None:
                    crawler.count(skipped(fetched.reason))
                    continue
                crawler.count("pages")
                for image_url, texts in page.pairs:
                    yield make_pair(image_url, texts, fetched.url, "live",
                                    fetch_time=fetched.fetch_time, page_licenses=page.licenses)
                if depth >= options.max_depth:
                    continue
                for link in page.links:
                    if link in queued or (options.same_site and site_of(link) not in sites):
                        continue
                    if skip_page is not None and skip_page(link):
                        queued.add(link)  # counted once
                        crawler.count(skipped(REMOVED))
                        continue
                    queued.add(link)
                    frontier.append((link, depth + 1))
    crawler.client.close()
