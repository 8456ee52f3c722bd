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
- :mod:`.robots` -- robots.txt, RFC 9309, cached per origin (bounded, LRU);
- :mod:`.fetcher` -- the downloader's :class:`Fetcher` (robots.txt + X-Robots-Tag).

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
from pipeline.core.net.fetcher import FetchConfig, Fetcher
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
from pipeline.core.net.robots import RobotsCache, RobotsRules, robots_crawl_delay

__all__ = [
    "BlockedURLError", "ClientConfig", "FetchConfig", "FetchError", "Fetcher", "HttpClient",
    "Resolver", "Response", "RobotsCache", "RobotsRules", "check_address", "check_url",
    "guarded_connect", "is_public", "parse_networks", "redact", "retry_after_seconds",
    "robots_crawl_delay", "row_status", "system_resolver",
]
