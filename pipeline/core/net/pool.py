"""urllib3 connection pools whose every socket is opened by the SSRF guard.

urllib3 resolves a host name again when it opens a socket, so a check by name before the
request would not bind where the socket goes (DNS rebinding). Here ``_new_conn`` -- the one
place urllib3 opens a socket, for http and https alike -- is the guarded connect
(:func:`pipeline.core.net.guard.guarded_connect`): the socket's peer is an address that was
checked. Everything above the socket stays urllib3's: the Host header and, for https, SNI and
certificate verification (the system trust store; ``SSL_CERT_FILE`` is honoured) use the
host *name*. urllib3's pool manager never reads proxy settings from the environment, so no
``*_PROXY`` variable can make a proxy the socket's peer.

Each connection also reports itself, and the socket its response is read from, to the
calling thread's deadline watch (:mod:`pipeline.core.net.deadline`), so the whole-request
deadline can cut it, ``Connection: close`` responses included.
"""

from __future__ import annotations

import logging
import socket
import threading
from dataclasses import dataclass, field
from typing import Any

from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError
from urllib3.poolmanager import PoolManager
from urllib3.response import HTTPResponse

from pipeline.core.net.deadline import REAPER, Watch
from pipeline.core.net.guard import BlockedURLError, Resolver, guarded_connect, system_resolver

# every failure is reported once, per row or page, by the caller; urllib3's own warnings
# (a full pool, a server's malformed headers) would repeat strangers' noise on stderr
logging.getLogger("urllib3.connectionpool").setLevel(logging.ERROR)

_CURRENT = threading.local()  # .watch: the deadline of the request this thread is making


def current_watch(watch: Watch | None) -> None:
    _CURRENT.watch = watch


def _attach(conn: HTTPConnection) -> None:
    watch = getattr(_CURRENT, "watch", None)
    if watch is not None:
        REAPER.attach(watch, conn)


def _attach_socket(conn: HTTPConnection) -> None:
    """Before the response is read: on ``Connection: close`` http.client passes the socket
    to the response and drops ``conn.sock``, so the deadline keeps its own reference."""
    watch = getattr(_CURRENT, "watch", None)
    if watch is not None:
        REAPER.attach_socket(watch, conn.sock)


@dataclass(frozen=True)
class ConnectGuard:
    """Which addresses a connection may reach (see :mod:`pipeline.core.net.guard`)."""

    allow_private: bool = False
    allowed_networks: tuple[str, ...] = ()
    resolver: Resolver = field(default=system_resolver, compare=False, repr=False)


def _connect(conn: HTTPConnection, guard: ConnectGuard) -> socket.socket:
    """urllib3's ``_new_conn`` with the guarded connect; a :class:`BlockedURLError` passes
    through urllib3 unchanged, so the caller sees why."""
    _attach(conn)
    timeout = conn.timeout if isinstance(conn.timeout, (int, float)) else socket.getdefaulttimeout()
    try:
        return guarded_connect(conn.host, conn.port, timeout, guard.allow_private,
                               guard.allowed_networks, guard.resolver,
                               conn.socket_options or ())
    except BlockedURLError:
        raise
    except TimeoutError as exc:  # the errors urllib3 itself raises here
        raise ConnectTimeoutError(conn, "connect timed out") from exc
    except OSError as exc:
        raise NewConnectionError(conn, "connection failed") from exc


class _GuardedHTTPConnection(HTTPConnection):
    def __init__(self, *args: Any, guard: ConnectGuard, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._guard = guard

    def _new_conn(self) -> socket.socket:
        return _connect(self, self._guard)

    def request(self, *args: Any, **kwargs: Any) -> None:  # a reused keep-alive connection
        _attach(self)
        super().request(*args, **kwargs)

    def getresponse(self) -> HTTPResponse:  # type: ignore[override]  # as urllib3's
        _attach_socket(self)
        return super().getresponse()


class _GuardedHTTPSConnection(HTTPSConnection):
    def __init__(self, *args: Any, guard: ConnectGuard, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._guard = guard

    def _new_conn(self) -> socket.socket:  # TLS is wrapped around it by HTTPSConnection.connect
        return _connect(self, self._guard)

    def request(self, *args: Any, **kwargs: Any) -> None:
        _attach(self)
        super().request(*args, **kwargs)

    def getresponse(self) -> HTTPResponse:  # type: ignore[override]  # as urllib3's
        _attach_socket(self)
        return super().getresponse()


class _GuardedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _GuardedHTTPConnection


class _GuardedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _GuardedHTTPSConnection


class GuardedPoolManager(PoolManager):
    """A urllib3 ``PoolManager`` (keep-alive per host) that connects only through the guard."""

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
