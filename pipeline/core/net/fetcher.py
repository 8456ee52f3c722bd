"""The image downloader's fetch: :class:`Fetcher` (one per worker process) adds to
:class:`~pipeline.core.net.client.HttpClient` the robots.txt of every image host and hop
(:mod:`pipeline.core.net.robots`, its ``Crawl-delay`` included), the origin's TDMRep file
``/.well-known/tdmrep.json`` (:mod:`pipeline.core.net.tdmrep`), the ``X-Robots-Tag``
response header (``noai``, ``noimageai``, ``noindex``, ``noimageindex`` by default, for all
agents or for our token) and the ``tdm-reservation`` header -- the headers checked before a
byte of the body is read (docs/consent.md, "Opt-out signals") --, the per-host limits and backoff shared by every thread and process
(:mod:`pipeline.core.net.hosts`) and a DNS cache (:mod:`pipeline.core.net.dns`). Images are
kept as served (no Content-Encoding is asked for or undone).

The User-Agent is honest (:func:`user_agent`): the tool's name and version, the project's
URL and the operator's ``--contact``; it never claims to be a browser or another crawler.
"""

from __future__ import annotations

import functools
import importlib.metadata
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass, field

from urllib3 import HTTPHeaderDict

from pipeline.core.net.client import ClientConfig, FetchError, HttpClient, Response
from pipeline.core.net.dns import DnsCache
from pipeline.core.net.guard import Resolver, system_resolver
from pipeline.core.net.headers import x_robots_forbids
from pipeline.core.net.hosts import HostLimiter, HostLimits, HostTable
from pipeline.core.net.robots import RobotsCache, RobotsRules, origin_of
from pipeline.core.net.tdmrep import RESERVED_REASON, TdmRepCache, TdmRules, header_reserves
from schemas import status as st

DEFAULT_DISALLOWED = ("noai", "noimageai", "noindex", "noimageindex")
TOOL = "webimagetext"
PROJECT_URL = "https://github.com/webimagetext"
MAX_CONTACT_CHARS = 200
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_URL = re.compile(r"https?://[^\s]+", re.IGNORECASE)


@functools.cache
def tool_version() -> str:
    """The installed version of this tool (``0+unknown`` when it is not installed)."""
    try:
        return importlib.metadata.version(TOOL)
    except importlib.metadata.PackageNotFoundError:
        return "0+unknown"


def check_contact(value: str) -> str:
    """``value`` if it is an e-mail address or an http(s) URL fit for a User-Agent header:
    printable ASCII, no spaces, none of ``()\\;``, at most 200 characters; else ValueError."""
    if len(value) > MAX_CONTACT_CHARS:
        raise ValueError(f"contact longer than {MAX_CONTACT_CHARS} characters")
    if not value.isascii() or not value.isprintable() or any(c in value for c in " ();\\"):
        raise ValueError("contact: printable ASCII without spaces, parentheses, ';' or '\\'")
    if not (_EMAIL.fullmatch(value) or _URL.fullmatch(value)):
        raise ValueError(f"contact {value!r}: expected an e-mail address or an http(s) URL")
    return value


def check_token(value: str) -> str:
    """``value`` if it is a User-Agent product token (letters, digits, ``.``, ``_``, ``-``)."""
    if not re.fullmatch(r"[A-Za-z0-9._-]{1,64}", value):
        raise ValueError(f"user agent token {value!r}: 1-64 letters, digits, '.', '_' or '-'")
    return value


def user_agent(token: str = TOOL, contact: str = "") -> str:
    """``webimagetext/0.1.0 (+https://github.com/webimagetext; contact: ops@example.org)``:
    the tool and its version (after ``token`` when the operator chose another one, which
    robots.txt and X-Robots-Tag then match), the project's URL, the operator's contact."""
    name = f"{TOOL}/{tool_version()}"
    product = name if token.lower() == TOOL else f"{token} {name}"
    return f"{product} (+{PROJECT_URL}" + (f"; contact: {contact})" if contact else ")")


@dataclass(frozen=True)
class FetchConfig:
    timeout: float = 10.0  # whole request, body included
    retries: int = 2
    backoff_base: float = 0.5
    max_backoff: float = 10.0
    max_bytes: int = 50 * 1024 * 1024
    user_agent_token: str = "webimagetext"
    disallowed_header_directives: tuple[str, ...] = DEFAULT_DISALLOWED
    respect_robots_txt: bool = True
    respect_tdmrep: bool = True  # tdmrep.json of every origin and the tdm-reservation header
    allow_private: bool = False
    allowed_networks: tuple[str, ...] = field(default_factory=tuple)
    connections_per_host: int = 64  # idle keep-alive connections kept per image host
    # politeness (pipeline.core.net.hosts): per host, across every thread and process
    max_connections_per_host: int = 8  # requests in flight; 0 = no limit
    max_requests_per_second_per_host: float = 10.0  # request starts; 0 = no limit
    max_host_wait: float = 300.0  # longest wait for a host's turn before a row is deferred
    # the DNS cache (pipeline.core.net.dns)
    dns_ttl: float = 300.0
    dns_negative_ttl: float = 60.0
    contact: str = ""  # the operator's e-mail address or URL, sent in the User-Agent

    def __post_init__(self) -> None:
        if self.contact:
            check_contact(self.contact)
        check_token(self.user_agent_token)

    @property
    def user_agent(self) -> str:
        return user_agent(self.user_agent_token, self.contact)

    @property
    def host_limits(self) -> HostLimits:
        return HostLimits(
            max_connections=self.max_connections_per_host,
            max_rate=self.max_requests_per_second_per_host, max_wait=self.max_host_wait,
            max_backoff=self.max_backoff, backoff_base=self.backoff_base,
            lease=2 * self.timeout + 5.0)


class _Robots(RobotsCache):
    """robots.txt for the downloader: remembers each origin's ``Crawl-delay`` for our token,
    and keeps nothing when the fetch was refused by the host's own backoff (the host answered
    429/503: robots.txt is tried again once the host is back, instead of disallowing all)."""

    MAX_DELAYS = 1 << 20

    def __init__(self, client: HttpClient, token: str, gate=None):
        super().__init__(client, gate)
        self.token = token
        self.delays: OrderedDict[str, float] = OrderedDict()  # origins with a Crawl-delay
        self._delays_lock = threading.Lock()

    def _fetch(self, origin: str) -> RobotsRules:
        rules = super()._fetch(origin)
        if rules.error is not None and rules.error.reason == st.HOST_BACKOFF:
            raise rules.error  # not cached
        delay = rules.crawl_delay(self.token) if rules.policy == "rules" else None
        if delay:
            with self._delays_lock:
                self.delays[origin] = delay
                while len(self.delays) > self.MAX_DELAYS:
                    self.delays.popitem(last=False)
        return rules

    def delay(self, url: str) -> float | None:
        with self._delays_lock:
            return self.delays.get(origin_of(url))


class _TdmRep(TdmRepCache):
    """tdmrep.json for the downloader: nothing is kept when the fetch was refused by the
    host's own backoff (tried again once the host is back)."""

    def _fetch(self, origin: str) -> TdmRules:
        rules = super()._fetch(origin)
        if rules.error is not None and rules.error.reason == st.HOST_BACKOFF:
            raise rules.error  # not cached
        return rules


class Fetcher:
    """Guarded GETs for one worker process; thread-safe (the downloader calls it from a
    thread pool). Connections are kept alive per host for the life of the Fetcher.

    ``table``: the host table shared with the run's other processes (a private one when
    None); ``resolver``: the name resolver behind the DNS cache (tests inject one)."""

    def __init__(self, config: FetchConfig, table: HostTable | None = None,
                 resolver: Resolver = system_resolver):
        self.config = config
        self.dns = DnsCache(resolver, ttl=config.dns_ttl, negative_ttl=config.dns_negative_ttl)
        limits = config.host_limits
        self.hosts = HostLimiter(limits, table)
        # keep no more idle connections to a host than may be in use at once
        idle = config.connections_per_host
        if limits.max_connections:
            idle = min(idle, limits.max_connections)
        self.client = HttpClient(ClientConfig(
            timeout=config.timeout, max_bytes=config.max_bytes, retries=config.retries,
            backoff_base=config.backoff_base, max_backoff=config.max_backoff,
            user_agent=config.user_agent, allow_private=config.allow_private,
            allowed_networks=tuple(config.allowed_networks),
            connections_per_host=max(1, idle), resolver=self.dns))
        self.robots = _Robots(self.client, config.user_agent_token, gate=self.hosts.gate)
        self.tdmrep = _TdmRep(self.client, gate=self.hosts.gate)
        self._token = config.user_agent_token.lower()
        self._directives = {d.strip().lower() for d in config.disallowed_header_directives}

    @property
    def robots_fetches(self) -> int:
        return self.robots.fetches

    def counts(self) -> dict:
        """The process's network counters: ``{"dns": ..., "hosts": ..., "tdmrep": ...}``
        (``tdmrep``: the tdmrep.json files fetched, by outcome)."""
        return {"dns": self.dns.counts(), "hosts": self.hosts.counts(),
                "tdmrep": self.tdmrep.counts()}

    def _allow(self, url: str) -> None:
        """Before each request (each hop): robots.txt, then tdmrep.json of its origin."""
        if self.config.respect_robots_txt:
            rules = self.robots.rules(url)
            delay = self.robots.delay(url)
            if delay:
                self.hosts.crawl_delay(url, delay)
            rules.check(self.config.user_agent_token, url)
        if self.config.respect_tdmrep:
            self.tdmrep.check(url)

    def _inspect(self, status: int, headers: HTTPHeaderDict) -> None:
        """The final response's headers, before its body is read."""
        if self._directives and x_robots_forbids(headers, self._token, self._directives):
            raise FetchError("use of image disallowed by X-Robots-Tag directive", "x_robots_tag")
        if self.config.respect_tdmrep and header_reserves(headers):
            raise FetchError("TDM rights reserved by the tdm-reservation response header",
                             RESERVED_REASON)

    def fetch(self, url: str) -> bytes:
        """The body of ``url``; raises :class:`FetchError` carrying the row status."""
        return self.fetch_response(url).body

    def fetch_response(self, url: str) -> Response:
        """The response of ``url`` (final URL, status, headers, body); raises
        :class:`FetchError` carrying the row status."""
        checked = self.config.respect_robots_txt or self.config.respect_tdmrep
        allow = self._allow if checked else None
        return self.client.get(url, allow=allow, inspect=self._inspect, gate=self.hosts.gate)

    @property
    def optout_checks(self) -> list[str]:
        """The opt-out checks every fetched response has passed before its body was read,
        named by the ``filtered:<reason>`` each gives (the ``optout_checks`` column)."""
        checks = [st.ROBOTS_TXT] if self.config.respect_robots_txt else []
        checks += [st.X_ROBOTS_TAG] if self._directives else []
        return checks + ([st.TDM_RESERVATION] if self.config.respect_tdmrep else [])
