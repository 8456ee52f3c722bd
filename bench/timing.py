"""The measuring helpers the benchmarks share: CPU seconds and peak RSS from ``getrusage``,
and a command run under a wall clock that also reports the CPU its process tree used."""

from __future__ import annotations

import resource
import subprocess
import time
from typing import Any, NamedTuple


class Timed(NamedTuple):
    wall: float  # seconds
    cpu: float  # user + system seconds of the command and its children
    done: subprocess.CompletedProcess


def cpu_seconds(who: int = resource.RUSAGE_SELF) -> float:
    """User + system CPU seconds of this process (or, with RUSAGE_CHILDREN, its waited-for
    children)."""
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def peak_rss_mb(who: int = resource.RUSAGE_SELF) -> float:
    """Peak resident set size in MB (Linux reports ``ru_maxrss`` in KiB)."""
    return resource.getrusage(who).ru_maxrss / 1024


def run_timed(command: list[str], **kwargs: Any) -> Timed:
    """``subprocess.run(command, **kwargs)`` with its wall seconds and the CPU seconds of the
    command and everything it started (children are counted once waited for)."""
    before = cpu_seconds(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(command, **kwargs)
    wall = time.perf_counter() - start
    return Timed(wall, cpu_seconds(resource.RUSAGE_CHILDREN) - before, done)
