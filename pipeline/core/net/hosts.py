"""Per-host politeness that holds across every thread and every process of a download on one
machine: a connection limit, a request rate, ``Crawl-delay`` and a host-level backoff.

Without it, 64 threads x N processes may open 64 x N connections to one host at once, and a
429 backs off only the row that got it. Here:

- **One table per machine** (:class:`HostTable`): a fixed array of host slots in a shared
  memory file (``/dev/shm``) that the launcher creates and every download worker process
  maps -- img2dataset's process pool and Spark's Python workers alike (a worker on a machine
  where the file does not exist creates its own: the limits then hold per machine). Each slot
  holds one host's leases (one per request in flight, each with an expiry), the next time a
  request may start (GCRA, no burst), the backoff pause and the count of 429/503 answers in
  a row. Every change happens under a lock (a thread lock per stripe of slots, and a POSIX
  record lock on the stripe's byte so other processes wait too), so the checks and updates
  are atomic across processes -- but one: the end of a request whose host is in good
  standing (no 429/503 to reset) returns its live lease with one 8-byte store and no lock
  (only its owner may touch a live lease), so a request costs one locked update, not two.
- **Leases, not counters**: a slot counts a request only until its lease expires (twice the
  whole-request deadline plus 5 s, and the deadline ends every request, body included), so a
  worker killed in the middle of a request cannot leave its host throttled for the rest of
  the run.
- **Collisions are conservative**: a host is a 64-bit hash of its lower-case name; two hosts
  that land in one slot while both are busy share one budget (each sees less, never more);
  a slot whose host is idle is taken over.
- :meth:`HostLimiter.gate` wraps each HTTP request (every hop and every try, robots.txt
  included; :class:`~pipeline.core.net.client.HttpClient` calls it): it waits for a lease
  and the host's next start time, then watches the answer. A **429 or 503** (with or
  without ``Retry-After``) pauses the *host* for every thread and process -- ``Retry-After``
  when given, else ``backoff_base * 2**(n-1)`` for the n-th such answer in a row (answers to
  requests sent before the pause began count once) -- and any other answer resets the
  count. A host paused for longer than ``max_backoff`` is unavailable: its requests fail at
  once with reason ``host_backoff`` (row status ``failed_to_download:host_backoff``, which
  ``--retry-failed`` retries later); so does a request that would wait more than
  ``max_wait`` for its turn.
- :func:`polite_map` runs a download shard's rows on a thread pool without letting a busy
  host hold threads: rows wait in per-host queues, not in threads, and a row is handed to a
  thread only when its host could take a request now. Rows of other hosts keep the threads
  at full speed meanwhile; rows of an unavailable host, and rows still queued for a host
  once the shard has run ``max_wait`` seconds, are *deferred* (``host_backoff``) instead of
  holding the shard open.

``Crawl-delay`` (robots.txt of the image host, :meth:`HostLimiter.crawl_delay`) raises the
host's spacing to at most ``MAX_CRAWL_DELAY`` (60 s; a larger value counts as 60 s).
"""

from __future__ import annotations

import contextlib
import functools
import glob
import hashlib
import heapq
import itertools
import mmap
import os
import tempfile
import threading
import time
from collections import Counter, OrderedDict, deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from pipeline.core.net.client import FetchError
from pipeline.core.net.robots import MAX_CRAWL_DELAY
from schemas import status as st

try:
    import fcntl
except ImportError:  # pragma: no cover - not Linux/macOS: the limits hold per process only
    fcntl = None  # type: ignore[assignment]

BUSY_STATUSES = frozenset({429, 503})
# finish() returns a lease without the lock only while it is this far from expiry (a lease
# is taken over only once expired: the store cannot race a new owner)
LOCK_FREE_MARGIN = 2.0
POLL = 0.02  # seconds between looks at a host whose leases other processes hold
AHEAD = 0.02  # polite_map hands a row out this long before its host's next start
MAX_DELAYS = 65536  # hosts whose Crawl-delay a process remembers (least recently set dropped)

# the error texts of deferred rows (fixed: they are stored in the row's error_message)
BACKED_OFF = ("host backed off: it answered 429/503 and stays paused longer than "
              "--max-backoff")
WAITED = ("host busy: waited longer than --max-host-wait for its turn (connections, rate, "
          "Crawl-delay)")


def host_key(url: str) -> str:
    """The politeness unit of ``url``: its host name, lower case, without a trailing dot or
    the port (``""`` when there is none)."""
    if not isinstance(url, str):
        return ""
    try:
        host = urlsplit(url).hostname
    except ValueError:
        return ""
    return (host or "").rstrip(".")


@functools.lru_cache(maxsize=1 << 16)
def host_hash(key: str) -> int:
    """A stable non-zero 64-bit hash of a host key (the same in every process); the hosts
    of a shard come back for every row and hop, so recent ones are remembered."""
    digest = hashlib.blake2b(key.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "little") or 1


def host_lane(key: str, lanes: int) -> int:
    """The lane (``0 .. lanes-1``) of a host key: where a cluster download runs all of that
    host's rows, one task at a time (pipeline/shards/lanes.py)."""
    return host_hash(key) % lanes if lanes > 1 else 0


def host_backoff_error(message: str) -> FetchError:
    return FetchError(message, st.HOST_BACKOFF, status=st.FAILED_HOST_BACKOFF)


@dataclass(frozen=True)
class HostLimits:
    """What one host may see from the whole download on one machine. 0 = no limit."""

    max_connections: int = 8  # requests in flight to one host
    max_rate: float = 10.0  # request starts per second to one host
    max_wait: float = 300.0  # longest a request, or a shard, waits for a host's turn
    max_backoff: float = 10.0  # a host paused for longer is unavailable (rows deferred)
    backoff_base: float = 0.5  # first pause after a 429/503 without Retry-After
    lease: float = 25.0  # a lease counts at most this long (the request deadline ends it)

    def interval(self, crawl_delay: float = 0.0) -> float:
        """Seconds between two request starts to a host with that ``Crawl-delay``."""
        rate = 1.0 / self.max_rate if self.max_rate > 0 else 0.0
        return max(rate, min(max(crawl_delay, 0.0), MAX_CRAWL_DELAY))


# -- the shared table -----------------------------------------------------------------------------

MAGIC = int.from_bytes(b"WITHOST1", "little")
VERSION = 1
HEADER_BYTES = 4096  # words 0-3: magic, version, slots, leases; bytes 64..: stripe locks
STRIPES = 1024
LOCK_BASE = 64
# 8-byte words of a slot: host hash, 429/503 answers in a row, next start (GCRA), paused
# until, when that pause began, last use; then the leases (expiry times, 0 = free)
KEY, FAILS, TAT, PAUSE, PAUSED_AT, USED = range(6)
FIXED = 6
TABLE_BYTES = 8 << 20  # the target size of a table


def table_slots(leases: int) -> int:
    """Slots of a table with ``leases`` leases each: a power of two, about 8 MiB in all."""
    slots = 1 << 16
    while slots > 1024 and slots * (FIXED + leases) * 8 > TABLE_BYTES:
        slots >>= 1
    return slots


def shared_table_path() -> str:
    """A new, empty file for a run's table, ``wit-hosts-<launcher pid>-*.table``: in
    ``/dev/shm`` where there is one (memory), else the temporary folder. The caller removes
    it after the run; tables left by launchers that no longer run (killed) are removed here."""
    shm = "/dev/shm"
    folder = shm if os.path.isdir(shm) and os.access(shm, os.W_OK) else tempfile.gettempdir()
    for old in glob.glob(os.path.join(folder, "wit-hosts-*-*.table")):
        pid = os.path.basename(old).split("-")[2]
        if pid.isdigit() and not _running(int(pid)):
            with contextlib.suppress(OSError):
                os.remove(old)
    fd, path = tempfile.mkstemp(prefix=f"wit-hosts-{os.getpid()}-", suffix=".table", dir=folder)
    os.close(fd)
    return path


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # another user's process
        return True
    return True


class HostTable:
    """Host slots in memory shared by every process that opens ``path`` (private memory when
    ``path`` is None). All processes must use the same ``leases`` (the connection limit)."""

    def __init__(self, leases: int, path: str | None = None, slots: int | None = None):
        self.leases = max(0, leases)
        self.slots = slots or table_slots(self.leases)
        self.words = FIXED + self.leases
        self.path = path
        size = HEADER_BYTES + self.slots * self.words * 8
        self._fd: int | None = None
        if path is None or fcntl is None:
            self._mm = mmap.mmap(-1, size)
            self._init_header()
        else:
            self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
            fcntl.lockf(self._fd, fcntl.LOCK_EX, LOCK_BASE, 0)  # the header, while we set up
            try:
                existing = os.fstat(self._fd).st_size
                if existing == 0:
                    os.ftruncate(self._fd, size)
                elif existing != size:
                    raise ValueError(f"{path}: a host table of {existing} bytes, not {size}: "
                                     "made for other limits")
                self._mm = mmap.mmap(self._fd, size)
                if existing == 0:
                    self._init_header()
            finally:
                fcntl.lockf(self._fd, fcntl.LOCK_UN, LOCK_BASE, 0)
        self._q = memoryview(self._mm).cast("Q")
        self._d = memoryview(self._mm).cast("d")
        if (self._q[0], self._q[1], self._q[2], self._q[3]) != (MAGIC, VERSION, self.slots,
                                                                self.leases):
            self.close()
            raise ValueError(f"{path}: not a host table for these limits")
        self._locks = [threading.Lock() for _ in range(STRIPES)]

    def _init_header(self) -> None:
        q = memoryview(self._mm).cast("Q")
        q[0], q[1], q[2], q[3] = MAGIC, VERSION, self.slots, self.leases
        q.release()

    def close(self) -> None:
        for view in ("_q", "_d"):
            if hasattr(self, view):
                getattr(self, view).release()
        self._mm.close()
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    # -- locking: the stripe's thread lock, then its byte in the file (other processes)
    def _lock(self, slot: int) -> int:
        stripe = slot % STRIPES
        self._locks[stripe].acquire()
        if self._fd is not None:
            fcntl.lockf(self._fd, fcntl.LOCK_EX, 1, LOCK_BASE + stripe)
        return stripe

    def _unlock(self, stripe: int) -> None:
        if self._fd is not None:
            fcntl.lockf(self._fd, fcntl.LOCK_UN, 1, LOCK_BASE + stripe)
        self._locks[stripe].release()

    def _base(self, h: int) -> tuple[int, int]:
        slot = h % self.slots
        return slot, HEADER_BYTES // 8 + slot * self.words

    def _leases(self, base: int) -> list[float]:
        """The expiry times of a slot's leases (one copy, scanned in C, not word by word)."""
        return self._d[base + FIXED:base + self.words].tolist()  # type: ignore[return-value]

    def _idle(self, base: int, now: float) -> bool:
        d = self._d
        return (d[base + PAUSE] <= now and d[base + TAT] <= now
                and (not self.leases or max(self._leases(base)) <= now))

    def _claim(self, base: int, h: int, now: float) -> None:
        """Make the slot ``h``'s: free, or idle and taken over; else shared (conservative)."""
        q, d = self._q, self._d
        if q[base + KEY] == h:
            return
        if q[base + KEY] == 0 or self._idle(base, now):
            q[base + KEY] = h
            q[base + FAILS] = 0
            for word in range(TAT, self.words):
                d[base + word] = 0.0

    def try_acquire(self, h: int, now: float | Callable[[], float], interval: float,
                    lease: float, max_backoff: float) -> tuple[bool, int, float, str]:
        """``(True, lease index, lease token, "")`` when a request to host ``h`` may start
        now (the lease is taken and the next start moved on), else ``(False, -1, seconds to
        wait, why)`` with why ``unavailable`` (paused longer than ``max_backoff``),
        ``paused``, ``rate`` or ``connections``. ``now``: the time, or a clock read once the
        lock is held -- a time read before waiting for the lock is stale by that wait, which
        made spurious "rate" waits (another thread moved the next start on meanwhile) and
        spaced starts by less than the interval (the next start counted from the stale
        time)."""
        slot, base = self._base(h)
        d = self._d
        stripe = self._lock(slot)
        try:
            t = now() if callable(now) else now
            self._claim(base, h, t)
            pause = d[base + PAUSE] - t
            if pause > 0:
                return False, -1, pause, "unavailable" if pause > max_backoff else "paused"
            tat = d[base + TAT]
            if interval > 0 and tat > t:
                return False, -1, tat - t, "rate"
            index, token = -1, 0.0
            if self.leases:
                leases = self._leases(base)
                soonest = min(leases)
                if soonest > t:
                    return False, -1, POLL, "connections"
                index = leases.index(soonest)  # a free lease (expired or returned)
                token = t + lease
                d[base + FIXED + index] = token
            if interval > 0:
                d[base + TAT] = max(tat, t) + interval
            d[base + USED] = t
            return True, index, token, ""
        finally:
            self._unlock(stripe)

    def release(self, h: int, index: int, token: float) -> None:
        if index < 0:
            return
        slot, base = self._base(h)
        stripe = self._lock(slot)
        try:
            self._release(base, index, token)
        finally:
            self._unlock(stripe)

    def _release(self, base: int, index: int, token: float) -> None:
        if index >= 0 and self._d[base + FIXED + index] == token:  # still ours (not retaken)
            self._d[base + FIXED + index] = 0.0

    def report(self, h: int, busy: bool, started: float, now: float,
               retry_after: float | None, backoff_base: float) -> tuple[float, bool]:
        """An answer of host ``h`` to a request started at ``started``: a 429/503 (``busy``)
        pauses the host; ``(pause seconds, whether a new backoff began)``. Any other answer
        resets the count of busy answers."""
        return self.finish(h, -1, 0.0, busy, started, now, retry_after, backoff_base)

    def finish(self, h: int, index: int, token: float, busy: bool | None, started: float,
               now: float | Callable[[], float], retry_after: float | None,
               backoff_base: float) -> tuple[float, bool]:
        """The end of a request: its lease ``index`` returned and its answer reported
        (:meth:`report`; ``busy`` None: no answer) under one lock. ``now``: the time, or a
        clock (read again once the lock is held, as in :meth:`try_acquire`)."""
        t = now() if callable(now) else now
        slot, base = self._base(h)
        q, d = self._q, self._d
        if (not busy and q[base + KEY] == h and q[base + FAILS] == 0
                and (index < 0 or (d[base + FIXED + index] == token
                                   and t < token - LOCK_FREE_MARGIN))):
            # the common end, without the lock: a host in good standing has nothing to
            # reset, and a live lease is ours alone (others take only expired ones, and a
            # slot with a live lease is never taken over); one aligned 8-byte store
            if index >= 0:
                d[base + FIXED + index] = 0.0
            return 0.0, False
        stripe = self._lock(slot)
        try:
            if callable(now):
                t = now()
            self._release(base, index, token)
            if busy is None:
                return 0.0, False
            self._claim(base, h, t)
            new = started > d[base + PAUSED_AT]  # answers sent before a pause count once
            if not busy:
                if new and q[base + FAILS]:
                    q[base + FAILS] = 0
                return 0.0, False
            if new:
                q[base + FAILS] = min(q[base + FAILS] + 1, 60)
                d[base + PAUSED_AT] = t
            fails = max(1, q[base + FAILS])
            pause = retry_after if retry_after is not None else backoff_base * 2 ** (fails - 1)
            d[base + PAUSE] = max(d[base + PAUSE], t + pause)
            return pause, new
        finally:
            self._unlock(stripe)

    def peek(self, h: int, now: float, interval: float, max_backoff: float,
             ahead: float = 0.0) -> tuple[float, bool]:
        """Without a lock (a hint for :func:`polite_map`): ``(seconds until host ``h`` could
        take a request, whether it is unavailable)``; a start due within ``ahead`` seconds
        counts as now."""
        _, base = self._base(h)
        q, d = self._q, self._d
        if q[base + KEY] != h and self._idle(base, now):
            return 0.0, False
        pause = d[base + PAUSE] - now
        if pause > 0:
            return pause, pause > max_backoff
        if interval > 0 and d[base + TAT] - now > ahead:
            return d[base + TAT] - now - ahead, False
        if self.leases and min(self._leases(base)) > now:
            return POLL, False
        return 0.0, False

    def in_flight(self, h: int, now: float) -> int:
        """Live leases of host ``h``'s slot (tests, diagnostics)."""
        _, base = self._base(h)
        return sum(1 for expiry in self._leases(base) if expiry > now)


# -- the per-process limiter ----------------------------------------------------------------------

class HostLimiter:
    """The per-process side of the table: :meth:`gate` around each request, the
    ``Crawl-delay`` of each host, the counters. Thread-safe."""

    def __init__(self, limits: HostLimits, table: HostTable | None = None,
                 clock: Callable[[], float] = time.monotonic):
        self.limits = limits
        self.table = table if table is not None else HostTable(limits.max_connections)
        self.clock = clock
        self._released = threading.Condition()
        self._delays: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()
        self._wait_seconds = 0.0
        self._waiting = 0  # threads of this process waiting in _acquire

    def crawl_delay(self, url: str, seconds: float | None) -> None:
        """robots.txt's ``Crawl-delay`` for ``url``'s host (the largest of its origins')."""
        key = host_key(url)
        if not key or not seconds or seconds <= 0:
            return
        with self._lock:
            self._delays[key] = max(self._delays.get(key, 0.0), min(seconds, MAX_CRAWL_DELAY))
            self._delays.move_to_end(key)
            while len(self._delays) > MAX_DELAYS:
                self._delays.popitem(last=False)

    def interval(self, key: str) -> float:
        # a read needs no lock (one dict look-up under the GIL); writes hold it
        delay = self._delays.get(key, 0.0) if self._delays else 0.0
        return self.limits.interval(delay)

    def ready_in(self, key: str, ahead: float = 0.0) -> tuple[float, bool]:
        """``(seconds until host ``key`` could take a request, unavailable?)`` -- a hint; a
        start due within ``ahead`` seconds counts as now."""
        if not key:
            return 0.0, False
        return self.table.peek(host_hash(key), self.clock(), self.interval(key),
                               self.limits.max_backoff, ahead)

    def count(self, name: str, n: int = 1) -> None:
        with self._lock:
            self._counts[name] += n

    def counts(self) -> dict:
        """``requests`` (leases granted), ``waited`` (requests that had to wait) and
        ``wait_seconds``, ``busy_answers`` (429/503), ``backoffs`` (host pauses begun),
        ``refused`` (requests failed as ``host_backoff``), ``deferred`` (rows deferred by
        :func:`polite_map`)."""
        with self._lock:
            out: dict = {k: self._counts[k] for k in ("requests", "waited", "busy_answers",
                                                      "backoffs", "refused", "deferred")}
            out["wait_seconds"] = round(self._wait_seconds, 3)
        return out

    def _acquire(self, key: str, h: int) -> tuple[int, float]:
        limits = self.limits
        interval = self.interval(key)
        start = self.clock()
        deadline = start + limits.max_wait
        waited = False
        while True:
            granted, index, value, why = self.table.try_acquire(
                h, self.clock, interval, limits.lease, limits.max_backoff)
            now = self.clock()
            if granted:
                with self._lock:
                    self._counts["requests"] += 1
                    if waited:
                        self._counts["waited"] += 1
                        self._wait_seconds += now - start
                return index, value
            if why == "unavailable" or now + value > deadline:
                self.count("refused")
                raise host_backoff_error(BACKED_OFF if why == "unavailable" else WAITED)
            waited = True
            with self._released:  # woken early when a lease of this process comes back
                self._waiting += 1
                try:
                    self._released.wait(value if why in ("rate", "paused") else min(value, POLL))
                finally:
                    self._waiting -= 1

    @contextlib.contextmanager
    def gate(self, url: str) -> Iterator[None]:
        """Held around one request to ``url``: waits for the host's turn (raises
        :class:`FetchError` ``host_backoff`` when the host is unavailable or the wait would
        exceed ``max_wait``), then watches the answer for 429/503."""
        key = host_key(url)
        if not key:
            yield
            return
        h = host_hash(key)
        index, token = self._acquire(key, h)
        started = self.clock()
        http_status: int | None = 200
        retry_after: float | None = None
        try:
            yield
        except FetchError as exc:
            http_status, retry_after = exc.http_status, exc.retry_after
            raise
        except BaseException:
            http_status = None  # not the host's answer: no verdict
            raise
        finally:
            # the lease back and the answer watched under one lock; a 429/503 pauses the
            # host, no answer at all (timeout, broken connection) is no verdict
            busy = None if http_status is None else http_status in BUSY_STATUSES
            _, new = self.table.finish(h, index, token, busy, started, self.clock,
                                       retry_after, self.limits.backoff_base)
            if busy:
                with self._lock:
                    self._counts["busy_answers"] += 1
                    self._counts["backoffs"] += int(new)
            if self._waiting:  # a thread of this process waits for a lease: wake it
                with self._released:
                    self._released.notify_all()


# -- the shard's dispatcher -----------------------------------------------------------------------

def polite_map(fn: Callable[[Any], Any], items: Iterable[Any], *, threads: int,
               host_of: Callable[[Any], str], limiter: HostLimiter,
               defer: Callable[[Any, str], Any], window: int | None = None
               ) -> Iterator[tuple[Any, Any]]:
    """``(item, fn(item))`` as they complete, on ``threads`` threads with at most ``window``
    (default ``2 * threads``) in flight, each host's items started only when the host could
    take a request (:meth:`HostLimiter.ready_in`; at most ``max_connections`` of a host's
    items in flight in this process). Items with no host (``host_of`` returns ``""``) start
    at once. ``(item, defer(item, why))`` for the items of a host that is unavailable, or that
    still has items waiting for its turn once ``max_wait`` seconds have passed since the
    start. Within a host, items start in their order."""
    limits = limiter.limits
    window = window or 2 * threads
    queues: dict[str, deque[Any]] = {}
    free: deque[Any] = deque()
    for item in items:
        key = host_of(item)
        if key:
            queues.setdefault(key, deque()).append(item)
        else:
            free.append(item)
    ready: deque[str] = deque(queues)  # round robin over the hosts
    queued = set(queues)  # hosts in ready
    sleeping: list[tuple[float, int, str]] = []  # (when, seq, host)
    seq = itertools.count()
    flying: Counter[str] = Counter()
    next_start: dict[str, float] = {}  # this process's own spacing of a host's starts
    pending: dict[Future, tuple[Any, str]] = {}
    clock = limiter.clock
    start = clock()

    def requeue(key: str) -> None:
        if key not in queued and queues.get(key):
            ready.append(key)
            queued.add(key)

    def deferred(key: str, why: str) -> list[tuple[Any, Any]]:
        rows = queues.pop(key, deque())
        limiter.count("deferred", len(rows))
        return [(item, defer(item, why)) for item in rows]

    with ThreadPoolExecutor(threads, thread_name_prefix="wit-download") as pool:
        while free or queues or pending:
            out: list[tuple[Any, Any]] = []
            now = clock()
            while sleeping and sleeping[0][0] <= now:
                requeue(heapq.heappop(sleeping)[2])
            while len(pending) < window and (free or ready):
                if free:
                    item = free.popleft()
                    pending[pool.submit(fn, item)] = (item, "")
                    continue
                key = ready.popleft()
                queued.discard(key)
                if not queues.get(key):
                    continue
                if limits.max_connections and flying[key] >= limits.max_connections:
                    continue  # requeued when one of its items completes
                # a row may be handed out up to AHEAD s before its host's next start (it
                # then waits that long in the gate): fewer rounds here when starts are close
                wait_s, unavailable = limiter.ready_in(key, AHEAD)
                wait_s = max(wait_s, next_start.get(key, 0.0) - now - AHEAD)
                if unavailable:
                    out += deferred(key, BACKED_OFF)
                    continue
                if wait_s > 0:
                    if now + wait_s - start > limits.max_wait:
                        out += deferred(key, WAITED)
                    else:
                        heapq.heappush(sleeping, (now + wait_s, next(seq), key))
                    continue
                item = queues[key].popleft()
                if not queues[key]:
                    del queues[key]
                flying[key] += 1
                interval = limiter.interval(key)
                if interval > 0:
                    next_start[key] = max(next_start.get(key, 0.0), now) + interval
                pending[pool.submit(fn, item)] = (item, key)
                requeue(key)
            yield from out
            if not pending:
                if sleeping:
                    time.sleep(max(0.0, sleeping[0][0] - clock()))
                continue
            timeout = max(0.0, sleeping[0][0] - clock()) if sleeping else None
            done, _ = wait(pending, timeout=timeout, return_when=FIRST_COMPLETED)
            for future in done:
                item, key = pending.pop(future)
                if key:
                    flying[key] -= 1
                    requeue(key)
                yield item, future.result()
