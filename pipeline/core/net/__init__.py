"""The network layer of every stage: the live crawler and the image downloader fetch
through it, with one behaviour.

- :mod:`.guard` -- the SSRF guard (schemes, userinfo refused, blocked address ranges,
  allow-lists) and the connect that resolves once, checks every address and connects only
  to a checked one;
- :mod:`.pool` -- urllib3 pools (keep-alive per host) whose sockets come from that connect;
- :mod:`.deadline` -- the whole-request deadline (connect + TLS + headers + body);
- :mod:`.headers` -- strict parsers of the headers the layer acts on (Content-Length,
  Retry-After, Location, X-Robots-Tag): a value or a :class:`FetchError`, nothing else;
- :mod:`.errors` -- :class:`FetchError` (the HTTP status a field) and its row statuses;
- :mod:`.client` -- the GET: redirects checked hop by hop, retry/backoff with Retry-After,
  size-capped body;
- :mod:`.origin_cache` -- the per-origin cache of well-known files (bounded, LRU);
- :mod:`.robots` -- robots.txt, RFC 9309, cached per origin;
- :mod:`.tdmrep` -- TDMRep: ``/.well-known/tdmrep.json`` per origin (robots.txt's failure
  policy) and the ``tdm-reservation`` header (docs/consent.md);
- :mod:`.hosts` -- per-host limits (connections, rate, Crawl-delay) and the host-level backoff
  after 429/503, shared by every thread and process of a machine; the shard dispatcher;
- :mod:`.dns` -- the per-process DNS cache (TTL, negative caching, counters) behind the guard;
- :mod:`.fetcher` -- the downloader's :class:`Fetcher` (robots.txt, tdmrep.json,
  X-Robots-Tag and tdm-reservation before the body, and the above) and its honest User-Agent.

See docs/security.md, section "Network".
"""

from pipeline.core.net.client import (
    ClientConfig,
    FetchError,
    HttpClient,
    Response,
    retry_after_seconds,
    row_status,
)
from pipeline.core.net.dns import DnsCache
from pipeline.core.net.fetcher import FetchConfig, Fetcher, user_agent
from pipeline.core.net.guard import (
    BlockedURLError,
    Resolver,
    check_address,
    check_url,
    guarded_connect,
    is_public,
    parse_networks,
    redact,
    system_resolver,
)
from pipeline.core.net.hosts import HostLimiter, HostLimits, HostTable, polite_map
from pipeline.core.net.robots import RobotsCache, RobotsRules, robots_crawl_delay

__all__ = [
    "BlockedURLError", "ClientConfig", "DnsCache", "FetchConfig", "FetchError", "Fetcher",
    "HostLimiter", "HostLimits", "HostTable", "HttpClient", "Resolver", "Response",
    "RobotsCache", "RobotsRules", "check_address", "check_url", "guarded_connect", "is_public",
    "parse_networks", "polite_map", "redact", "retry_after_seconds", "robots_crawl_delay",
    "row_status", "system_resolver", "user_agent",
]
