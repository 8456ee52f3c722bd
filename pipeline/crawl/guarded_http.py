"""A ``requests`` session whose every TCP connection goes through
:func:`pipeline.crawl.netguard.guarded_connect` (used by the live crawler).

``requests`` hands connections to urllib3, which resolves the host name again when it opens a
socket; a check by name before the request (``check_url``) therefore does not bind where the
socket goes (DNS rebinding). Here urllib3's ``HTTPConnection._new_conn`` — the one place that
opens the socket, for http and https alike — is replaced by the guarded connect, so the socket
is connected to an address that was checked. Everything above the socket stays urllib3's: the
Host header and, for https, SNI and certificate verification still use the host *name*.

Proxies would make the proxy, not the target, the socket's peer, so the session ignores the
environment (``trust_env = False``: no ``*_PROXY`` variables, no ``.netrc``) and the adapter
refuses any proxy it is handed. ``REQUESTS_CA_BUNDLE`` / ``CURL_CA_BUNDLE`` are still honoured
for certificate verification, as plain ``requests`` does.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError
from urllib3.poolmanager import PoolManager

from pipeline.crawl.netguard import BlockedURLError, Resolver, guarded_connect, system_resolver


@dataclass(frozen=True)
class ConnectGuard:
    """Which addresses a connection may reach (see :mod:`pipeline.crawl.netguard`)."""

    allow_private: bool = False
    allowed_networks: tuple[str, ...] = ()
    resolver: Resolver = field(default=system_resolver, compare=False, repr=False)


def _connect(conn: HTTPConnection, guard: ConnectGuard) -> socket.socket:
    """urllib3's ``_new_conn`` with the guarded connect; a :class:`BlockedURLError` passes
    through urllib3 and requests unchanged, so the caller sees why."""
    timeout = conn.timeout if isinstance(conn.timeout, (int, float)) else socket.getdefaulttimeout()
    try:
        return guarded_connect(conn.host, conn.port, timeout, guard.allow_private,
                               guard.allowed_networks, guard.resolver,
                               conn.socket_options or ())
    except BlockedURLError:
        raise
    except TimeoutError as exc:  # the same errors urllib3 raises, so requests maps them alike
        raise ConnectTimeoutError(conn, f"Connection to {conn.host} timed out. "
                                        f"(connect timeout={timeout})") from exc
    except OSError as exc:
        raise NewConnectionError(conn, f"Failed to establish a new connection: {exc}") from exc


class _GuardedHTTPConnection(HTTPConnection):
    def __init__(self, *args: Any, guard: ConnectGuard, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._guard = guard

    def _new_conn(self) -> socket.socket:
        return _connect(self, self._guard)


class _GuardedHTTPSConnection(HTTPSConnection):
    def __init__(self, *args: Any, guard: ConnectGuard, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._guard = guard

    def _new_conn(self) -> socket.socket:  # TLS is wrapped around it by HTTPSConnection.connect
        return _connect(self, self._guard)


class _GuardedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _GuardedHTTPConnection


class _GuardedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _GuardedHTTPSConnection


class _GuardedPoolManager(PoolManager):
    def __init__(self, guard: ConnectGuard, **kwargs: Any):
        super().__init__(**kwargs)
        self.guard = guard
        self.pool_classes_by_scheme = {"http": _GuardedHTTPPool, "https": _GuardedHTTPSPool}

    def _new_pool(self, scheme: str, host: str, port: int,
                  request_context: dict[str, Any] | None = None) -> HTTPConnectionPool:
        pool = super()._new_pool(scheme, host, port, request_context)
        # via the pool's connection kwargs, not the manager's pool kwargs: those become the
        # pool key, which has a fixed set of fields
        pool.conn_kw["guard"] = self.guard
        return pool


class GuardedAdapter(HTTPAdapter):
    """An ``HTTPAdapter`` whose connections are opened by the guarded connect."""

    __attrs__ = [*HTTPAdapter.__attrs__, "guard"]

    def __init__(self, guard: ConnectGuard, **kwargs: Any):
        self.guard = guard  # before super().__init__, which builds the pool manager
        super().__init__(**kwargs)

    def init_poolmanager(self, connections: int, maxsize: int, block: bool = False,
                         **pool_kwargs: Any) -> None:
        self._pool_connections, self._pool_maxsize, self._pool_block = connections, maxsize, block
        self.poolmanager = _GuardedPoolManager(self.guard, num_pools=connections,
                                               maxsize=maxsize, block=block, **pool_kwargs)

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        raise BlockedURLError(proxy, "proxy", "a proxy would bypass the connect-time check")


def guarded_session(guard: ConnectGuard) -> requests.Session:
    """A ``requests.Session`` that connects only through :func:`guarded_connect`."""
    session = requests.Session()
    session.trust_env = False
    session.verify = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") \
        or True
    adapter = GuardedAdapter(guard)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session
