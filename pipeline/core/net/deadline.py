"""A whole-request deadline that holds while bytes trickle in.

Socket timeouts bound each ``recv``, not a request: a server that sends one byte every half
second never trips them. Here one daemon thread per process keeps a heap of deadlines; when
a request's deadline passes while it is still running, the thread shuts its socket down
(``SHUT_RDWR``), which wakes the blocked read in connect, TLS handshake, headers or body
alike. The request sees EOF or an error and reports a timeout because :attr:`Watch.fired`
is set. A request cancels its watch (under the same lock) before its connection goes back to
the pool, so a late deadline never hits a connection another request is using.

The socket is also recorded when the response starts (:meth:`Reaper.attach_socket`): on
``Connection: close`` http.client hands the socket to the response and the connection's
``sock`` becomes None, so without it a dripping body could not be cut.
"""

from __future__ import annotations

import heapq
import itertools
import os
import socket
import threading
import time
from typing import Any


class Watch:
    """The deadline of one request and the connection it is using."""

    __slots__ = ("deadline", "conn", "sock", "fired", "done")

    def __init__(self, deadline: float):
        self.deadline = deadline
        self.conn: Any = None  # an object with a ``sock`` attribute (urllib3's connection)
        self.sock: socket.socket | None = None  # the socket the response is read from
        self.fired = False
        self.done = False


class Reaper:
    """The per-process deadline thread (started lazily; restarted in a forked child)."""

    def __init__(self) -> None:
        self._seq = itertools.count()
        self._reset()
        os.register_at_fork(after_in_child=self._reset)  # threads do not survive a fork

    def _reset(self) -> None:
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._heap: list[tuple[float, int, Watch]] = []
        self._started = False

    def watch(self, seconds: float) -> Watch:
        watch = Watch(time.monotonic() + seconds)
        with self._wake:
            if not self._started:
                self._started = True
                threading.Thread(target=self._run, name="wit-net-deadlines", daemon=True).start()
            heapq.heappush(self._heap, (watch.deadline, next(self._seq), watch))
            if self._heap[0][2] is watch:  # only an earlier deadline changes the thread's wait
                self._wake.notify()
        return watch

    def attach(self, watch: Watch, conn: Any) -> None:
        with self._lock:
            watch.conn = conn
            conn.wit_watch = watch  # a stale watch must not cut a reused connection
            expired = watch.fired
        if expired:  # the deadline passed before the connection existed
            _shutdown(getattr(conn, "sock", None))

    def attach_socket(self, watch: Watch, sock: socket.socket | None) -> None:
        """The socket the response of ``watch``'s request will be read from; cut with the
        connection's even after the connection let go of it (``Connection: close``)."""
        with self._lock:
            watch.sock = sock
            expired = watch.fired
        if expired:
            _shutdown(sock)

    def cancel(self, watch: Watch) -> None:
        with self._lock:
            watch.done = True

    def _run(self) -> None:
        wake = self._wake
        while True:  # the process's lifetime (daemon thread)
            with wake:
                while not self._heap or self._heap[0][0] > time.monotonic():
                    wake.wait(None if not self._heap else self._heap[0][0] - time.monotonic())
                _, _, watch = heapq.heappop(self._heap)
                if watch.done:
                    continue
                watch.fired = True
                if watch.conn is not None and getattr(watch.conn, "wit_watch", None) is watch:
                    _shutdown(getattr(watch.conn, "sock", None))
                    # not done, so the request still owns the socket its response reads
                    _shutdown(watch.sock)


def _shutdown(sock: socket.socket | None) -> None:
    if sock is None:
        return
    try:
        # the plain socket's shutdown, also for a TLS socket: it must not touch the SSL
        # object the reading thread is using, only wake it
        socket.socket.shutdown(sock, socket.SHUT_RDWR)
    except OSError:
        pass


REAPER = Reaper()
