"""The guarded HTTP fetch that replaces img2dataset's plain ``urllib.urlopen``.

What it adds around a GET, in the order a request meets them:

- **SSRF guard** (``pipeline.crawl.netguard``): every TCP connection, the first one and the one
  after each redirect, resolves the host itself, checks *every* address and connects to the
  checked address, so neither a redirect nor a DNS answer that changes between check and
  connect reaches a private/loopback/link-local target (unless ``allow_private`` or the
  address is in ``allowed_networks``).
- **robots.txt of the image host**, fetched once per host per worker process and cached
  (401/403 disallow everything, other 4xx allow everything, 5xx and network errors are a
  retryable download failure).
- **X-Robots-Tag** directives (``noai``, ``noimageai``, ``noindex``, ``noimageindex`` by
  default), with img2dataset's own parser.
- **retry with backoff** for 429, 5xx, timeouts and connection resets, honouring
  ``Retry-After`` up to ``max_backoff`` seconds; a longer wait fails the row (rerun later
  with ``--retry-failed``).
- a **whole-request deadline** (a slow drip never holds a thread longer than ``timeout``) and
  a **byte cap** (``max_bytes``).
"""

from __future__ import annotations

import functools
import http.client
import socket
import threading
import time
import urllib.error
import urllib.request
import urllib.robotparser
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from img2dataset.downloader import is_disallowed

from pipeline.crawl.netguard import BlockedURLError, check_url, guarded_connect
from pipeline.httputil import retry_after_seconds

DEFAULT_DISALLOWED = ("noai", "noimageai", "noindex", "noimageindex")
ROBOTS_MAX_BYTES = 512 * 1024


class FetchError(Exception):
    """A failed fetch; ``status`` is the row status it maps to."""

    def __init__(self, message: str, status: str = "failed_to_download", retryable: bool = False,
                 retry_after: float | None = None):
        super().__init__(message)
        self.status, self.retryable, self.retry_after = status, retryable, retry_after


@dataclass(frozen=True)
class FetchConfig:
    timeout: float = 10.0
    retries: int = 2
    backoff_base: float = 0.5
    max_backoff: float = 10.0
    max_bytes: int = 50 * 1024 * 1024
    user_agent_token: str = "webimagetext"
    disallowed_header_directives: tuple[str, ...] = DEFAULT_DISALLOWED
    respect_robots_txt: bool = True
    allow_private: bool = False
    allowed_networks: tuple[str, ...] = field(default_factory=tuple)

    @property
    def user_agent(self) -> str:
        return (f"Mozilla/5.0 (compatible; {self.user_agent_token}; "
                "+https://github.com/rom1504/img2dataset)")


def _guarded_connect(config: FetchConfig, host: str, port: int, timeout: float | None) -> socket.socket:
    """Resolve ``host``, refuse if any address is blocked, connect to a checked address."""
    return guarded_connect(host, port, timeout, config.allow_private, config.allowed_networks)


class _GuardedHTTPConnection(http.client.HTTPConnection):
    def __init__(self, host: str, *, fetch_config: FetchConfig, **kwargs):
        super().__init__(host, **kwargs)
        self._fetch_config = fetch_config

    def connect(self) -> None:
        self.sock = _guarded_connect(self._fetch_config, self.host, self.port, self.timeout)


class _GuardedHTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, host: str, *, fetch_config: FetchConfig, **kwargs):
        super().__init__(host, **kwargs)
        self._fetch_config = fetch_config

    def connect(self) -> None:
        sock = _guarded_connect(self._fetch_config, self.host, self.port, self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)  # type: ignore[attr-defined]


class _HTTPHandler(urllib.request.HTTPHandler):
    def __init__(self, config: FetchConfig):
        super().__init__()
        self._config = config

    def http_open(self, req):
        return self.do_open(functools.partial(_GuardedHTTPConnection, fetch_config=self._config), req)


class _HTTPSHandler(urllib.request.HTTPSHandler):
    def __init__(self, config: FetchConfig):
        super().__init__()
        self._config = config

    def https_open(self, req):
        return self.do_open(functools.partial(_GuardedHTTPSConnection, fetch_config=self._config), req,
                            context=self._context)  # type: ignore[attr-defined]


class _RedirectHandler(urllib.request.HTTPRedirectHandler):
    max_redirections = 5

    def __init__(self, config: FetchConfig):
        super().__init__()
        self._config = config

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        # scheme and name check before following; the connection itself is checked again.
        check_url(newurl, self._config.allow_private, self._config.allowed_networks)
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def build_opener(config: FetchConfig) -> urllib.request.OpenerDirector:
    """An opener whose every connection passes the SSRF guard (no proxies, no file://)."""
    opener = urllib.request.OpenerDirector()
    for handler in (urllib.request.UnknownHandler(), _HTTPHandler(config), _HTTPSHandler(config),
                    urllib.request.HTTPDefaultErrorHandler(), _RedirectHandler(config),
                    urllib.request.HTTPErrorProcessor()):
        opener.add_handler(handler)
    return opener


class Fetcher:
    """Guarded GETs for one worker process; thread-safe (img2dataset calls it from a pool)."""

    def __init__(self, config: FetchConfig):
        self.config = config
        self._opener = build_opener(config)
        self._directives = {d.strip().lower() for d in config.disallowed_header_directives}
        self._robots: dict[str, urllib.robotparser.RobotFileParser | FetchError] = {}
        self._robots_locks: dict[str, threading.Lock] = {}
        self._lock = threading.Lock()
        self.robots_fetches = 0

    # -- one attempt -------------------------------------------------------------------
    def _get_once(self, url: str, max_bytes: int, check_headers: bool) -> bytes:
        deadline = time.monotonic() + self.config.timeout
        request = urllib.request.Request(url, headers={"User-Agent": self.config.user_agent})
        try:
            with self._opener.open(request, timeout=self.config.timeout) as response:
                if check_headers and self._directives and is_disallowed(
                        response.headers, self.config.user_agent_token.lower(), self._directives):
                    raise FetchError("use of image disallowed by X-Robots-Tag directive",
                                     status="filtered:x_robots_tag")
                length = response.headers.get("Content-Length")
                if length and length.isdigit() and int(length) > max_bytes:
                    raise FetchError(f"response of {length} bytes exceeds {max_bytes} bytes")
                chunks, size = [], 0
                while True:
                    if time.monotonic() > deadline:
                        raise FetchError(f"download took longer than {self.config.timeout:g}s",
                                         retryable=True)
                    chunk = response.read1(65536)
                    if not chunk:
                        break
                    size += len(chunk)
                    if size > max_bytes:
                        raise FetchError(f"response exceeds {max_bytes} bytes")
                    chunks.append(chunk)
                return b"".join(chunks)
        except FetchError:
            raise
        except BlockedURLError as exc:
            raise FetchError(str(exc), status="filtered:blocked_address") from exc
        except urllib.error.HTTPError as exc:
            code = exc.code
            retryable = code == 429 or code >= 500
            wait = retry_after_seconds(exc.headers.get("Retry-After")) if exc.headers else None
            raise FetchError(f"HTTP Error {code}: {exc.reason}", retryable=retryable,
                             retry_after=wait) from exc
        except urllib.error.URLError as exc:
            reason = exc.reason
            if isinstance(reason, BlockedURLError):
                raise FetchError(str(reason), status="filtered:blocked_address") from exc
            raise FetchError(f"{reason}", retryable=isinstance(reason, (TimeoutError, OSError))) from exc
        except (TimeoutError, ConnectionError, http.client.HTTPException, OSError) as exc:
            raise FetchError(f"{type(exc).__name__}: {exc}", retryable=True) from exc

    def _get(self, url: str, max_bytes: int, check_headers: bool) -> bytes:
        attempt = 0
        while True:
            try:
                return self._get_once(url, max_bytes, check_headers)
            except FetchError as exc:
                if not exc.retryable or attempt >= self.config.retries:
                    raise
                wait = exc.retry_after
                if wait is None:
                    wait = self.config.backoff_base * (2 ** attempt)
                if wait > self.config.max_backoff:
                    raise FetchError(f"{exc} (Retry-After {wait:g}s exceeds --max-backoff "
                                     f"{self.config.max_backoff:g}s)", retryable=True) from exc
                time.sleep(wait)
                attempt += 1

    # -- robots.txt --------------------------------------------------------------------
    def _robots_for(self, url: str) -> urllib.robotparser.RobotFileParser | FetchError:
        parts = urlsplit(url)
        origin = f"{parts.scheme.lower()}://{parts.netloc.lower()}"
        with self._lock:
            if origin in self._robots:
                return self._robots[origin]
            lock = self._robots_locks.setdefault(origin, threading.Lock())
        with lock:  # one fetch per origin even when many threads ask at once
            with self._lock:
                if origin in self._robots:
                    return self._robots[origin]
            result = self._fetch_robots(origin)
            with self._lock:
                self._robots[origin] = result
                self.robots_fetches += 1
            return result

    def _fetch_robots(self, origin: str) -> urllib.robotparser.RobotFileParser | FetchError:
        parser = urllib.robotparser.RobotFileParser(origin + "/robots.txt")
        try:
            body = self._get(origin + "/robots.txt", ROBOTS_MAX_BYTES, check_headers=False)
        except FetchError as exc:
            text = str(exc)
            if text.startswith(("HTTP Error 401", "HTTP Error 403")):
                parser.disallow_all = True  # type: ignore[attr-defined]
            elif text.startswith("HTTP Error 4"):
                parser.allow_all = True  # type: ignore[attr-defined]
            elif exc.status.startswith("filtered:"):
                return exc
            else:
                return FetchError(f"robots.txt unavailable: {exc}", retryable=True)
            return parser
        parser.parse(body.decode("utf-8", errors="replace").splitlines())
        return parser

    def robots_allows(self, url: str) -> None:
        """Raise :class:`FetchError` when robots.txt of ``url``'s host forbids fetching it."""
        robots = self._robots_for(url)
        if isinstance(robots, FetchError):
            raise FetchError(str(robots), status=robots.status, retryable=robots.retryable)
        if not robots.can_fetch(self.config.user_agent_token, url):
            raise FetchError("disallowed by robots.txt", status="filtered:robots_txt")

    # -- public ------------------------------------------------------------------------
    def fetch(self, url: str) -> bytes:
        """The body of ``url``; raises :class:`FetchError` carrying the row status."""
        try:
            check_url(url, self.config.allow_private, self.config.allowed_networks,
                      resolver=lambda host, port: [])  # scheme/host syntax only; connect checks
        except BlockedURLError as exc:
            if exc.reason != "dns_error":  # an empty resolver answer is not an error here
                raise FetchError(str(exc), status="filtered:blocked_address") from exc
        if self.config.respect_robots_txt:
            self.robots_allows(url)
        return self._get(url, self.config.max_bytes, check_headers=True)
