"""One guarded HTTP GET for every stage: the crawler's pages and robots.txt, the
downloader's images.

:meth:`HttpClient.get` follows redirects itself (at most ``max_redirects``; a URL seen twice
is a loop) and checks every hop with :func:`pipeline.core.net.guard.check_url` and the
caller's ``allow`` hook (robots.txt) before any request; every socket is opened by the guard
(:mod:`pipeline.core.net.pool`), with keep-alive per host. Each request -- each hop and each
try -- has a whole-request deadline of ``timeout`` seconds covering connect, TLS, headers and
body (:mod:`pipeline.core.net.deadline`), and its body is read up to ``max_bytes``.
429, 500, 502, 503, 504, timeouts and broken connections are retried ``retries`` times,
waiting ``Retry-After`` when the server sends one (a longer wait than ``max_backoff`` fails
at once) and else ``backoff_base * 2**try`` seconds (at most ``max_backoff``).

Failures raise :class:`FetchError` with the HTTP status as a field and a short ``reason``
tag; its text is deterministic (no object reprs, addresses or timings), so it can be stored.
"""

from __future__ import annotations

import contextlib
import http.client
import ssl
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field

from urllib3 import BaseHTTPResponse, HTTPHeaderDict, Timeout
from urllib3.exceptions import HTTPError as Urllib3Error
from urllib3.exceptions import NewConnectionError
from urllib3.exceptions import TimeoutError as Urllib3Timeout

from pipeline.core.net.deadline import REAPER
from pipeline.core.net.errors import FetchError, row_status
from pipeline.core.net.guard import BlockedURLError, Resolver, check_url, system_resolver
from pipeline.core.net.headers import content_length, redirect_target, retry_after_seconds
from pipeline.core.net.pool import ConnectGuard, GuardedPoolManager, current_watch

__all__ = ["ClientConfig", "FetchError", "HttpClient", "Response", "retry_after_seconds",
           "row_status"]

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
READ_CHUNK = 64 * 1024


@dataclass(frozen=True)
class ClientConfig:
    timeout: float = 10.0  # whole request: connect + TLS + headers + body
    max_bytes: int = 50 * 1024 * 1024
    retries: int = 2
    backoff_base: float = 0.5
    max_backoff: float = 10.0  # longest wait between tries; a longer Retry-After fails
    max_redirects: int = 5
    user_agent: str = "webimagetext"
    allow_private: bool = False
    allowed_networks: tuple[str, ...] = ()
    decode_content: bool = False  # ask for and undo gzip/deflate (pages, not images)
    connections_per_host: int = 10  # idle keep-alive connections kept per host
    hosts: int = 256  # hosts whose pools are kept (least recently used dropped)
    resolver: Resolver = field(default=system_resolver, compare=False, repr=False)


@dataclass
class Response:
    url: str  # after redirects
    http_status: int
    headers: HTTPHeaderDict
    body: bytes
    retries: int = 0


Allow = Callable[[str], None]  # raises FetchError to refuse a hop
Inspect = Callable[[int, HTTPHeaderDict], None]  # raises FetchError to refuse a response
Gate = Callable[[str], AbstractContextManager]  # held around each request (politeness)


class HttpClient:
    """Guarded GETs with keep-alive; thread-safe. Build one per process (or per crawler)."""

    def __init__(self, config: ClientConfig):
        self.config = config
        guard = ConnectGuard(config.allow_private, tuple(config.allowed_networks),
                             config.resolver)
        self.pools = GuardedPoolManager(guard, num_pools=config.hosts,
                                        maxsize=config.connections_per_host, block=False,
                                        retries=False)
        self.headers = {"User-Agent": config.user_agent, "Accept": "*/*"}
        if config.decode_content:
            self.headers["Accept-Encoding"] = "gzip, deflate"

    def close(self) -> None:
        self.pools.clear()

    def get(self, url: str, *, allow: Allow | None = None, inspect: Inspect | None = None,
            gate: Gate | None = None, max_bytes: int | None = None,
            truncate: bool = False) -> Response:
        """The 2xx response of ``url`` after redirects, its body read (at most ``max_bytes``:
        longer is an error, or with ``truncate`` cut there); raises :class:`FetchError`."""
        c = self.config
        seen: set[str] = set()
        retries = 0
        try:
            for _ in range(c.max_redirects + 1):
                try:
                    check_url(url, c.allow_private, c.allowed_networks)
                except BlockedURLError as exc:
                    raise _blocked(exc) from exc
                if allow is not None:
                    allow(url)
                seen.add(url)
                result, tries = self._with_retries(url, inspect, gate,
                                                   c.max_bytes if max_bytes is None else max_bytes,
                                                   truncate)
                retries += tries
                if isinstance(result, Response):
                    result.retries = retries
                    return result
                target = redirect_target(url, result)
                if target in seen:
                    raise FetchError("redirect loop", "redirect_loop")
                url = target
            raise FetchError(f"more than {c.max_redirects} redirects", "too_many_redirects")
        except FetchError as exc:
            exc.retries += retries  # the failed hop's own tries are already in
            raise

    def _with_retries(self, url: str, inspect: Inspect | None, gate: Gate | None,
                      max_bytes: int, truncate: bool) -> tuple[Response | str, int]:
        c = self.config
        attempt = 0
        while True:
            try:
                return self._once(url, inspect, gate, max_bytes, truncate), attempt
            except FetchError as exc:
                exc.retries = attempt
                if not exc.retryable or attempt >= c.retries:
                    raise
                wait = exc.retry_after
                if wait is not None and wait > c.max_backoff:
                    raise FetchError(f"{exc} (Retry-After {wait:g}s exceeds the "
                                     f"{c.max_backoff:g}s cap)", exc.reason,
                                     http_status=exc.http_status) from exc
                time.sleep(min(c.backoff_base * 2 ** attempt, c.max_backoff)
                           if wait is None else wait)
                attempt += 1

    def _once(self, url: str, inspect: Inspect | None, gate: Gate | None, max_bytes: int,
              truncate: bool) -> Response | str:
        """One request: the Response, or the Location of a redirect. The deadline starts
        once the gate lets the request through (a politeness wait is not the server's)."""
        with gate(url) if gate is not None else contextlib.nullcontext():
            return self._timed(url, inspect, max_bytes, truncate)

    def _timed(self, url: str, inspect: Inspect | None, max_bytes: int,
               truncate: bool) -> Response | str:
        timeout = self.config.timeout
        watch = REAPER.watch(timeout)
        current_watch(watch)
        response: BaseHTTPResponse | None = None
        reusable = False
        try:
            response = got = self.pools.urlopen(
                "GET", url, headers=self.headers, redirect=False, retries=False,
                preload_content=False, decode_content=self.config.decode_content,
                timeout=Timeout(connect=timeout, read=timeout), assert_same_host=False)
            status = got.status
            location = got.headers.get("Location")
            if status in REDIRECT_STATUSES and location:
                return location
            if status < 200 or status >= 300:
                raise FetchError(f"HTTP {status}", f"http_{status}", http_status=status,
                                 retryable=status in RETRY_STATUSES,
                                 retry_after=retry_after_seconds(got.headers.get("Retry-After")))
            if inspect is not None:
                inspect(status, got.headers)
            body, reusable = _read_body(got, max_bytes, truncate)
            if watch.fired:
                raise _timed_out(timeout)
            return Response(url, status, got.headers, body)
        except FetchError:
            raise
        except BlockedURLError as exc:  # refused at connect time
            raise _blocked(exc) from exc
        except (Urllib3Error, http.client.HTTPException, OSError) as exc:
            if watch.fired or _is_timeout(exc):
                raise _timed_out(timeout) from exc
            raise _transport_error(exc) from exc
        finally:
            REAPER.cancel(watch)  # before the connection can go back to the pool
            current_watch(None)
            if response is not None:
                if not reusable or watch.fired:
                    response.close()
                response.release_conn()


def _read_body(response: BaseHTTPResponse, max_bytes: int, truncate: bool) -> tuple[bytes, bool]:
    """(body, whether the connection can be reused)."""
    length = content_length(response.headers)  # an invalid one is a bad response
    if not truncate and length is not None and length > max_bytes:
        raise FetchError(f"response of {length} bytes exceeds {max_bytes} bytes", "too_large")
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = response.read1(READ_CHUNK)
        if not chunk:
            return b"".join(chunks), True
        size += len(chunk)
        if size > max_bytes:
            if truncate:
                chunks.append(chunk[:len(chunk) - (size - max_bytes)])
                return b"".join(chunks), False
            raise FetchError(f"response exceeds {max_bytes} bytes", "too_large")
        chunks.append(chunk)


def _blocked(exc: BlockedURLError) -> FetchError:
    if exc.reason == "dns_error":  # a name that does not resolve is a failed download
        return FetchError(str(exc), "dns_error")
    return FetchError(str(exc), f"blocked_{exc.reason}")


def _timed_out(timeout: float) -> FetchError:
    return FetchError(f"request took longer than {timeout:g}s", "timeout", retryable=True)


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _is_timeout(exc: BaseException) -> bool:
    # urllib3's NewConnectionError subclasses its ConnectTimeoutError: a refusal is no timeout
    return any(isinstance(e, (TimeoutError, Urllib3Timeout))
               and not isinstance(e, NewConnectionError) for e in _chain(exc))


def _transport_error(exc: BaseException) -> FetchError:
    """A deterministic FetchError for a transport failure (urllib3's own texts carry object
    reprs with memory addresses)."""
    for cause in _chain(exc):
        if isinstance(cause, ssl.SSLCertVerificationError):
            return FetchError(f"TLS error: {cause.verify_message}", "tls_error")
        if isinstance(cause, ssl.SSLError):
            return FetchError(f"TLS error: {cause.reason or type(cause).__name__}", "tls_error")
    causes = list(_chain(exc))
    if any(isinstance(cause, NewConnectionError) for cause in causes):  # before any byte
        why = next((c.strerror for c in causes if isinstance(c, OSError) and c.strerror),
                   type(causes[-1]).__name__)
        return FetchError(f"connection failed: {why}", "connection_error", retryable=True)
    for cause in causes:
        if isinstance(cause, (ConnectionError, http.client.IncompleteRead)):
            return FetchError(f"connection broken: {type(cause).__name__}", "connection_error",
                              retryable=True)
        if isinstance(cause, http.client.HTTPException):
            return FetchError(f"bad HTTP response: {type(cause).__name__}", "bad_response")
    return FetchError(f"connection failed: {type(exc).__name__}", "connection_error",
                      retryable=True)
