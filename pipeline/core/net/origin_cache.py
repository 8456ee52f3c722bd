"""A per-origin cache of what an origin's well-known file says (robots.txt, tdmrep.json):
fetched once per origin even when many threads ask at once, bounded by origins and by the
estimated bytes of the parsed entries, least recently used dropped first (and fetched again
if asked for again). Subclasses say how one origin is fetched and parsed (``_fetch``); an
entry has a ``size`` (estimated bytes held)."""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Generic, Protocol, TypeVar
from urllib.parse import urlsplit


class Sized(Protocol):
    @property
    def size(self) -> int: ...


E = TypeVar("E", bound=Sized)


def origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme.lower()}://{parts.netloc.lower()}"


class OriginCache(Generic[E]):
    """Entries per origin, at most ``max_origins`` of them and ``max_bytes`` (LRU)."""

    def __init__(self, max_origins: int, max_bytes: int):
        self.max_origins, self.max_bytes = max_origins, max_bytes
        self._entries: OrderedDict[str, E] = OrderedDict()  # least recently used first
        self._locks: dict[str, threading.Lock] = {}
        self._lock = threading.Lock()
        self.fetches = 0
        self.evictions = 0
        self.bytes = 0  # estimated size of the entries kept

    def _fetch(self, origin: str) -> E:
        raise NotImplementedError

    def _cached(self, origin: str) -> E | None:
        entry = self._entries.get(origin)
        if entry is not None:
            self._entries.move_to_end(origin)
        return entry

    def _keep(self, origin: str, entry: E) -> None:
        self._entries[origin] = entry
        self.bytes += entry.size
        while len(self._entries) > 1 and (len(self._entries) > self.max_origins
                                          or self.bytes > self.max_bytes):
            _, dropped = self._entries.popitem(last=False)
            self.bytes -= dropped.size
            self.evictions += 1

    def get(self, url: str) -> E:
        """The entry of ``url``'s origin, fetched on first use."""
        origin = origin_of(url)
        with self._lock:
            cached = self._cached(origin)
            if cached is not None:
                return cached
            lock = self._locks.setdefault(origin, threading.Lock())
        with lock:  # one fetch per origin even when many threads ask at once
            with self._lock:
                cached = self._cached(origin)
                if cached is not None:
                    return cached
            try:
                entry = self._fetch(origin)
            except BaseException:
                with self._lock:
                    self._locks.pop(origin, None)
                raise
            with self._lock:
                self._keep(origin, entry)
                self._locks.pop(origin, None)
                self.fetches += 1
            return entry
