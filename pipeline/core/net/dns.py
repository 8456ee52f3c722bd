"""A per-process DNS cache in front of the resolver the SSRF guard connects through.

Every process of a download resolved every host itself, once per new connection: a pool of
millions of rows asks the same names again and again, and DNS failures are a main cause of
low success rates at scale (img2dataset #43, #361, #400, #417). :class:`DnsCache` is a
:data:`~pipeline.core.net.guard.Resolver` (``(host, port) -> addresses``) that

- keeps an answer for ``ttl`` seconds and a failure (no such name, no address, a temporary or
  server failure, a name that is not valid IDNA) for ``negative_ttl`` seconds -- ``getaddrinfo``
  does not tell a record's own TTL, so the TTL is the operator's (``--dns-ttl``,
  ``--dns-negative-ttl``); ``ttl`` 0 turns the cache off;
- asks the resolver **once** per name even when many threads want it at the same moment (the
  others wait for that answer);
- holds at most ``max_entries`` names (least recently used dropped), so a hostile list of
  millions of distinct names cannot grow it without bound;
- counts ``lookups`` (every call), ``hits`` (answered from the cache, ``negative_hits`` of
  them failures), ``queries`` (calls to the resolver) and ``failures`` by kind (see
  :func:`failure_kind`).

It caches *answers*, never decisions: the guard (:func:`~pipeline.core.net.guard.resolve_checked`)
checks every address of a cached answer again at every connect, so a cached private address
is refused each time, and an answer that changes once the entry expires (DNS rebinding) is
checked like the first one.
"""

from __future__ import annotations

import socket
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from pipeline.core.net.guard import Resolver, system_resolver

# socket.EAI_* values that exist on this platform -> the kind counted in the summary
_GAI_KINDS = {getattr(socket, name): kind for name, kind in (
    ("EAI_NONAME", "no_such_name"), ("EAI_NODATA", "no_data"),
    ("EAI_AGAIN", "temporary_failure"), ("EAI_FAIL", "server_failure"),
    ("EAI_ADDRFAMILY", "no_data"), ("EAI_SERVICE", "other"),
) if hasattr(socket, name)}


def failure_kind(error: BaseException | None) -> str:
    """The summary's kind of a resolver failure: ``no_such_name`` (NXDOMAIN),
    ``no_data`` (the name has no address of the kind asked), ``temporary_failure``
    (SERVFAIL or a timeout in the system resolver: EAI_AGAIN), ``server_failure``,
    ``no_address`` (an empty answer), ``bad_name`` (not valid IDNA), ``timeout`` or
    ``other``. ``None`` stands for an empty answer."""
    if error is None:
        return "no_address"
    if isinstance(error, socket.gaierror):
        return _GAI_KINDS.get(error.errno, "other")
    if isinstance(error, UnicodeError):
        return "bad_name"
    if isinstance(error, TimeoutError):
        return "timeout"
    return "other"


@dataclass
class _Entry:
    expires: float
    addresses: tuple[str, ...] = ()
    error: tuple[type[BaseException], tuple] | None = None  # raised again, fresh, on a hit

    def answer(self) -> list[str]:
        if self.error is not None:
            kind, args = self.error
            raise kind(*args)
        return list(self.addresses)


class _Pending:
    """A query in flight; threads asking the same name wait on ``done``."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.entry: _Entry | None = None


class DnsCache:
    """A thread-safe resolver cache (see the module docstring); build one per process."""

    def __init__(self, resolve: Resolver = system_resolver, ttl: float = 300.0,
                 negative_ttl: float = 60.0, max_entries: int = 65536,
                 clock: Callable[[], float] = time.monotonic):
        self.resolve, self.ttl, self.negative_ttl = resolve, ttl, negative_ttl
        self.max_entries, self.clock = max(1, max_entries), clock
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._pending: dict[str, _Pending] = {}
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()
        self._failures: Counter[str] = Counter()

    def __call__(self, host: str, port: int) -> Sequence[str]:
        name = host.lower().rstrip(".")
        with self._lock:
            self._counts["lookups"] += 1
            if self.ttl <= 0:
                pending = None
            else:
                entry = self._entries.get(name)
                if entry is not None and entry.expires > self.clock():
                    self._entries.move_to_end(name)
                    self._counts["hits"] += 1
                    if entry.error is not None or not entry.addresses:
                        self._counts["negative_hits"] += 1
                    return entry.answer()
                pending = self._pending.get(name)
                if pending is None:
                    pending = self._pending[name] = _Pending()
                    mine = True
                else:
                    mine = False
        if pending is None:  # no cache: every lookup is a query
            return self._query(name, host, port).answer()
        if not mine:
            pending.done.wait()
            with self._lock:
                self._counts["hits"] += 1  # answered by the query another thread made
                entry = pending.entry
                assert entry is not None
                if entry.error is not None or not entry.addresses:
                    self._counts["negative_hits"] += 1
            return entry.answer()
        try:
            entry = self._query(name, host, port)
            with self._lock:
                self._entries[name] = entry
                self._entries.move_to_end(name)
                while len(self._entries) > self.max_entries:
                    self._entries.popitem(last=False)
        except BaseException:  # not an OSError (a bug, KeyboardInterrupt): nothing cached
            entry = _Entry(0.0, error=(OSError, ("resolver failed",)))
            raise
        finally:
            with self._lock:
                pending.entry = entry
                self._pending.pop(name, None)
            pending.done.set()
        return entry.answer()

    def _query(self, name: str, host: str, port: int) -> _Entry:
        with self._lock:
            self._counts["queries"] += 1
        try:
            addresses = tuple(dict.fromkeys(self.resolve(host, port)))
        except (OSError, UnicodeError) as exc:
            self._failed(exc)
            return _Entry(self.clock() + self.negative_ttl, error=(type(exc), exc.args))
        if not addresses:
            self._failed(None)
            return _Entry(self.clock() + self.negative_ttl)
        return _Entry(self.clock() + self.ttl, addresses)

    def _failed(self, error: BaseException | None) -> None:
        with self._lock:
            self._failures[failure_kind(error)] += 1

    def counts(self) -> dict:
        """``{"lookups", "hits", "negative_hits", "queries", "failures": {kind: n}}``."""
        with self._lock:
            out: dict = {k: self._counts[k] for k in ("lookups", "hits", "negative_hits",
                                                      "queries")}
            out["failures"] = dict(sorted(self._failures.items()))
        return out
