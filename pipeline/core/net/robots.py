"""robots.txt, one policy for every stage (RFC 9309, section 2.3.1):

- **2xx**: the rules are parsed (the first 512 KiB; RFC 9309 asks for at least 500 KiB);
  redirects are followed (up to the client's ``max_redirects``, at least 5 by default);
- **4xx** ("unavailable", 401 and 403 included): everything is allowed;
- **5xx or unreachable** (timeout, connection or TLS failure, DNS error, too many
  redirects): everything is disallowed;
- the robots.txt URL itself blocked by the SSRF guard: the URL is refused as blocked.

The decision is made from :class:`FetchError`'s fields (``http_status``, ``reason``), never
from error text. Results are cached per origin (scheme, host, port) in the
:class:`RobotsCache` -- one per crawler or per download worker process -- and fetched once
per origin even when many threads ask at the same time. The cache is bounded: at most
``max_origins`` origins and ``max_bytes`` of parsed rules (estimated), the least recently
used dropped first (and fetched again if asked for again); only the parsed rules and the
``Crawl-delay`` values are kept, never the text.

Hostile rules do not break the parse: a rule whose path no URL parser reads
(``Disallow: //[``), and ``Crawl-delay``/``Request-rate`` values that the standard library
would pass to ``int()`` (``²``, 5,000 digits), are ignored; ``Sitemap`` lines are not kept.
"""

from __future__ import annotations

import urllib.parse
import urllib.robotparser
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import InitVar, dataclass, field

from pipeline.core.net.client import FetchError, Gate, HttpClient
from pipeline.core.net.origin_cache import OriginCache
from pipeline.core.net.origin_cache import origin_of as origin_of  # re-exported

ROBOTS_MAX_BYTES = 512 * 1024
MAX_CRAWL_DELAY = 60.0  # a larger Crawl-delay (or inf) would stall a crawl thread for ever
CACHE_ORIGINS = 10_000  # origins whose rules a RobotsCache keeps
CACHE_BYTES = 32 * 1024 * 1024  # estimated memory of the parsed rules a RobotsCache keeps
# the estimate, measured with tracemalloc on CPython 3.11: an entry of a few hundred bytes,
# ~160 bytes per rule plus its path, ~60 per user-agent plus its name
RULES_BASE_BYTES, RULE_BYTES, AGENT_BYTES = 1024, 160, 60
_IGNORED = "crawl-delay: -"  # a line the parser reads as a rule (it ends a group), no value


@dataclass(frozen=True)
class RobotsRules:
    """What robots.txt of one origin says. ``policy``: ``rules`` (parsed), ``allow_all``
    (4xx), ``disallow_all`` (5xx or unreachable) or ``blocked``."""

    origin: str
    policy: str
    lines: InitVar[Sequence[str]] = ()  # the robots.txt text: parsed, not kept
    error: FetchError | None = None  # why it was unreachable or blocked
    parser: urllib.robotparser.RobotFileParser = field(
        default_factory=urllib.robotparser.RobotFileParser, compare=False, repr=False)
    delays: dict[str, float] = field(default_factory=dict, compare=False, repr=False)
    size: int = field(default=0, compare=False, repr=False)  # estimated bytes held

    def __post_init__(self, lines: Sequence[str]) -> None:
        self.parser.parse(parsable_lines(lines))
        object.__setattr__(self, "delays", crawl_delays(lines))
        object.__setattr__(self, "size", estimated_size(self.parser, self.delays))

    def allows(self, agent: str, url: str) -> bool:
        if self.policy != "rules":
            return self.policy == "allow_all"
        try:
            return self.parser.can_fetch(agent, url)
        except ValueError as exc:  # the URL, unquoted, is no URL ("http://h%5B/")
            raise FetchError("URL cannot be matched against robots.txt", "blocked_bad_url") from exc

    def crawl_delay(self, agent: str) -> float | None:
        return pick_crawl_delay(self.delays, agent)

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


class RobotsCache(OriginCache[RobotsRules]):
    """robots.txt per origin, fetched through ``client`` (and ``gate``, for politeness);
    at most ``max_origins`` origins and ``max_bytes`` of parsed rules are kept (LRU,
    :class:`~pipeline.core.net.origin_cache.OriginCache`)."""

    def __init__(self, client: HttpClient, gate: Gate | None = None, *,
                 max_origins: int = CACHE_ORIGINS, max_bytes: int = CACHE_BYTES):
        super().__init__(max_origins, max_bytes)
        self.client, self.gate = client, gate

    def rules(self, url: str) -> RobotsRules:
        return self.get(url)

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


def parsable_lines(lines: Iterable[str]) -> Iterator[str]:
    """``lines`` as urllib.robotparser can parse them without raising: a rule whose path
    (unquoted, as the parser does) is no URL, and every ``Crawl-delay``/``Request-rate``
    (the parser sends ``isdigit()`` text to ``int()``; ours is :func:`crawl_delays`), become
    a line that still ends a group but has no effect; ``Sitemap`` lines are dropped."""
    for raw in lines:
        key, sep, value = raw.split("#", 1)[0].partition(":")
        key = key.strip().lower()
        if not sep:
            yield raw
        elif key in ("crawl-delay", "request-rate"):
            yield _IGNORED
        elif key == "sitemap":
            continue
        elif key in ("allow", "disallow"):
            try:
                urllib.parse.urlparse(urllib.parse.unquote(value.strip()))
            except ValueError:
                yield _IGNORED
            else:
                yield raw
        else:
            yield raw


def estimated_size(parser: urllib.robotparser.RobotFileParser, delays: dict[str, float]) -> int:
    """Bytes the parsed rules hold, roughly (see :data:`RULE_BYTES`)."""
    size = RULES_BASE_BYTES + sum(AGENT_BYTES + len(agent) for agent in delays)
    default = getattr(parser, "default_entry", None)  # the parser's undeclared attributes
    for entry in [*getattr(parser, "entries", []), *([default] if default else [])]:
        size += RULES_BASE_BYTES // 4
        size += sum(AGENT_BYTES + len(agent) for agent in entry.useragents)
        size += sum(RULE_BYTES + len(rule.path) for rule in entry.rulelines)
    return size


def crawl_delays(lines: Iterable[str]) -> dict[str, float]:
    """``Crawl-delay`` per user-agent name (lower case, ``*`` included): fractions allowed,
    unlike urllib.robotparser; at most ``MAX_CRAWL_DELAY`` seconds, negative or non-numeric
    values ignored; the first value of an agent counts."""
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
    return delays


def pick_crawl_delay(delays: dict[str, float], user_agent: str) -> float | None:
    """The delay of the group that names ``user_agent``, else of the ``*`` group."""
    token = user_agent.split("/", 1)[0].lower()
    for agent, delay in delays.items():
        if agent != "*" and agent in token:
            return delay
    return delays.get("*")


def robots_crawl_delay(lines: Sequence[str], user_agent: str) -> float | None:
    """``Crawl-delay`` (fractions allowed, unlike urllib.robotparser) of the group that
    names ``user_agent``, else of the ``*`` group; at most ``MAX_CRAWL_DELAY`` seconds,
    negative or non-numeric values ignored."""
    return pick_crawl_delay(crawl_delays(lines), user_agent)
