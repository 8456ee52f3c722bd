"""robots.txt, one policy for every stage (RFC 9309, section 2.3.1):

- **2xx**: the rules are parsed (the first 512 KiB; RFC 9309 asks for at least 500 KiB);
  redirects are followed (up to the client's ``max_redirects``, at least 5 by default);
- **4xx** ("unavailable", 401 and 403 included): everything is allowed;
- **5xx or unreachable** (timeout, connection or TLS failure, DNS error, too many
  redirects): everything is disallowed;
- the robots.txt URL itself blocked by the SSRF guard: the URL is refused as blocked.

The decision is made from :class:`FetchError`'s fields (``http_status``, ``reason``), never
from error text. Results are cached per origin (scheme, host, port) for the life of the
:class:`RobotsCache` -- one per crawler or per download worker process -- and fetched once
per origin even when many threads ask at the same time.
"""

from __future__ import annotations

import threading
import urllib.robotparser
from collections.abc import Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from pipeline.core.net.client import FetchError, Gate, HttpClient

ROBOTS_MAX_BYTES = 512 * 1024
MAX_CRAWL_DELAY = 60.0  # a larger Crawl-delay (or inf) would stall a crawl thread for ever


def origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme.lower()}://{parts.netloc.lower()}"


@dataclass(frozen=True)
class RobotsRules:
    """What robots.txt of one origin says. ``policy``: ``rules`` (parsed), ``allow_all``
    (4xx), ``disallow_all`` (5xx or unreachable) or ``blocked``."""

    origin: str
    policy: str
    lines: tuple[str, ...] = ()
    error: FetchError | None = None  # why it was unreachable or blocked
    parser: urllib.robotparser.RobotFileParser = field(
        default_factory=urllib.robotparser.RobotFileParser, compare=False, repr=False)

    def __post_init__(self) -> None:
        self.parser.parse(self.lines)

    def allows(self, agent: str, url: str) -> bool:
        if self.policy != "rules":
            return self.policy == "allow_all"
        return self.parser.can_fetch(agent, url)

    def crawl_delay(self, agent: str) -> float | None:
        return robots_crawl_delay(self.lines, agent)

    def check(self, agent: str, url: str) -> None:
        """Raise :class:`FetchError` (``robots_disallowed``, ``robots_unavailable`` or the
        blocked reason) unless ``agent`` may fetch ``url``."""
        if self.policy == "blocked" and self.error is not None:
            raise FetchError(str(self.error), self.error.reason)
        if self.policy == "disallow_all":
            why = f": {self.error}" if self.error is not None else ""
            raise FetchError(f"robots.txt unavailable{why} (disallow all, RFC 9309)",
                             "robots_unavailable")
        if not self.allows(agent, url):
            raise FetchError("disallowed by robots.txt", "robots_disallowed")


class RobotsCache:
    """robots.txt per origin, fetched through ``client`` (and ``gate``, for politeness)."""

    def __init__(self, client: HttpClient, gate: Gate | None = None):
        self.client, self.gate = client, gate
        self._rules: dict[str, RobotsRules] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._lock = threading.Lock()
        self.fetches = 0

    def rules(self, url: str) -> RobotsRules:
        origin = origin_of(url)
        with self._lock:
            if origin in self._rules:
                return self._rules[origin]
            lock = self._locks.setdefault(origin, threading.Lock())
        with lock:  # one fetch per origin even when many threads ask at once
            with self._lock:
                if origin in self._rules:
                    return self._rules[origin]
            rules = self._fetch(origin)
            with self._lock:
                self._rules[origin] = rules
                self._locks.pop(origin, None)
                self.fetches += 1
            return rules

    def check(self, agent: str, url: str) -> None:
        self.rules(url).check(agent, url)

    def _fetch(self, origin: str) -> RobotsRules:
        try:
            response = self.client.get(origin + "/robots.txt", gate=self.gate,
                                       max_bytes=ROBOTS_MAX_BYTES, truncate=True)
        except FetchError as exc:
            if exc.http_status is not None and 400 <= exc.http_status < 500:
                return RobotsRules(origin, "allow_all")
            if exc.reason.startswith("blocked_"):
                return RobotsRules(origin, "blocked", error=exc)
            return RobotsRules(origin, "disallow_all", error=exc)
        text = response.body.decode("utf-8", errors="replace")
        return RobotsRules(origin, "rules", tuple(text.splitlines()))


def robots_crawl_delay(lines: Sequence[str], user_agent: str) -> float | None:
    """``Crawl-delay`` (fractions allowed, unlike urllib.robotparser) of the group that
    names ``user_agent``, else of the ``*`` group; at most ``MAX_CRAWL_DELAY`` seconds,
    negative or non-numeric values ignored."""
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
                if not delay >= 0:  # nan or negative
                    continue
                delay = min(delay, MAX_CRAWL_DELAY)
                for agent in agents:
                    delays.setdefault(agent, delay)
    for agent, delay in delays.items():
        if agent != "*" and agent in token:
            return delay
    return delays.get("*")
