"""Download worker processes that live no longer than the `wit shards` launcher, and shard
failures that end the run instead of being printed and forgotten.

img2dataset's ``multiprocessing_distributor`` starts a spawn pool whose workers outlive a
launcher killed with SIGKILL (they hold both ends of the task pipe, so they never see it
close, and keep downloading), and it only prints shards that still failed after its retries.
:func:`run_pool` does the same work (a spawn pool, tasks handed out as they come, failed
shards retried) with two differences: in every worker a thread watches the parent process id and ends the
worker within a second of the launcher's death (see :func:`die_with_parent`), and the
shards that still failed are returned so the caller can fail the run naming them.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import sys
import threading
import time
from collections.abc import Callable, Iterable

log = logging.getLogger(__name__)

WATCH_SECONDS = 1.0
Row = tuple[int, str]  # (shard id, input file)


def _watch_parent(parent_pid: int) -> None:
    """End this process once its parent is gone (checked every WATCH_SECONDS)."""
    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(WATCH_SECONDS)
        os._exit(1)
    threading.Thread(target=watch, name="wit-parent-watch", daemon=True).start()


def die_with_parent(parent_pid: int) -> None:
    """Pool initializer: this worker ends when the launcher ``parent_pid`` dies.

    A thread watches the parent process. Not Linux's ``prctl(PR_SET_PDEATHSIG)``: that
    signal follows the *thread* that started the process, and the pool starts the
    replacement of a recycled worker (``maxtasksperchild``) from its worker-handler thread,
    which exits when the pool closes. The signal then killed idle workers while they held
    the task queue's lock, and ``Pool.terminate`` waited on that lock forever."""
    _watch_parent(parent_pid)
    if os.getppid() != parent_pid:  # the launcher died before the watch started
        os._exit(1)


class ShardTask:
    """Runs one download shard in a worker: ``(ok, row)`` as img2dataset's distributors
    expect; a failure is one line on stderr (the shard is retried, then reported)."""

    def __init__(self, downloader: Callable[..., object]):
        self.downloader = downloader

    def __call__(self, row: Row) -> tuple[bool, Row]:
        try:
            self.downloader.download_shard(*row)  # type: ignore[attr-defined]
            return True, row
        except Exception as exc:  # noqa: BLE001 - reported by shard id, then retried
            print(f"download shard {row[0]} failed: {type(exc).__name__}: {exc}",
                  file=sys.stderr, flush=True)
            return False, row


def run_pool(processes: int, downloader: Callable[..., object], shards: Iterable[Row],
             max_shard_retry: int = 1, on_start: Callable[[], None] = lambda: None) -> list[Row]:
    """Download ``shards`` on ``processes`` spawned workers; returns the shards that still
    failed after ``max_shard_retry`` more tries (empty when all are done). ``on_start`` is
    called once the pool exists."""
    context = multiprocessing.get_context("spawn")
    task = ShardTask(downloader)
    with context.Pool(processes, initializer=die_with_parent, initargs=(os.getpid(),),
                      maxtasksperchild=5) as pool:
        on_start()

        def run(rows: Iterable[Row]) -> list[Row]:
            return [row for ok, row in pool.imap_unordered(task, rows) if not ok]

        failed = run(shards)
        for attempt in range(max_shard_retry):
            if not failed:
                break
            log.warning("retrying %d failed download shard(s), try %d", len(failed), attempt + 1)
            failed = run(failed)
        pool.terminate()
        pool.join()
    return sorted(failed)
