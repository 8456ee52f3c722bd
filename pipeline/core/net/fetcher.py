"""The image downloader's fetch: :class:`Fetcher` (one per worker process) adds to
:class:`~pipeline.core.net.client.HttpClient` the robots.txt of every image host and hop
(:mod:`pipeline.core.net.robots`) and the ``X-Robots-Tag`` response header (``noai``,
``noimageai``, ``noindex``, ``noimageindex`` by default, for all agents or for our token).
Images are kept as served (no Content-Encoding is asked for or undone)."""

from __future__ import annotations

from dataclasses import dataclass, field

from urllib3 import HTTPHeaderDict

from pipeline.core.net.client import ClientConfig, FetchError, HttpClient
from pipeline.core.net.headers import x_robots_forbids
from pipeline.core.net.robots import RobotsCache

DEFAULT_DISALLOWED = ("noai", "noimageai", "noindex", "noimageindex")


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
    allow_private: bool = False
    allowed_networks: tuple[str, ...] = field(default_factory=tuple)
    connections_per_host: int = 64  # idle keep-alive connections kept per image host

    @property
    def user_agent(self) -> str:
        return (f"Mozilla/5.0 (compatible; {self.user_agent_token}; "
                "+https://github.com/rom1504/img2dataset)")


class Fetcher:
    """Guarded GETs for one worker process; thread-safe (the downloader calls it from a
    thread pool). Connections are kept alive per host for the life of the Fetcher."""

    def __init__(self, config: FetchConfig):
        self.config = config
        self.client = HttpClient(ClientConfig(
            timeout=config.timeout, max_bytes=config.max_bytes, retries=config.retries,
            backoff_base=config.backoff_base, max_backoff=config.max_backoff,
            user_agent=config.user_agent, allow_private=config.allow_private,
            allowed_networks=tuple(config.allowed_networks),
            connections_per_host=config.connections_per_host))
        self.robots = RobotsCache(self.client)
        self._token = config.user_agent_token.lower()
        self._directives = {d.strip().lower() for d in config.disallowed_header_directives}

    @property
    def robots_fetches(self) -> int:
        return self.robots.fetches

    def _allow(self, url: str) -> None:
        self.robots.check(self.config.user_agent_token, url)

    def _inspect(self, status: int, headers: HTTPHeaderDict) -> None:
        if self._directives and x_robots_forbids(headers, self._token, self._directives):
            raise FetchError("use of image disallowed by X-Robots-Tag directive", "x_robots_tag")

    def fetch(self, url: str) -> bytes:
        """The body of ``url``; raises :class:`FetchError` carrying the row status."""
        allow = self._allow if self.config.respect_robots_txt else None
        return self.client.get(url, allow=allow, inspect=self._inspect).body
