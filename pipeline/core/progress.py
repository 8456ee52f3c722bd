"""Progress for long local work: a tqdm bar on a terminal, periodic count lines otherwise
(CI logs, pipes). Set WIT_PROGRESS=0 to silence both."""

from __future__ import annotations

import os
import sys
import time

from tqdm import tqdm


class Progress:
    """``update(n)`` as work is done; ``close()`` at the end. ``unit`` names what is counted."""

    def __init__(self, desc: str, total: float | None = None, unit: str = "it",
                 unit_scale: bool = False, every_s: float = 10.0):
        self.desc, self.unit, self.every_s = desc, unit, every_s
        self.enabled = os.environ.get("WIT_PROGRESS", "1") != "0"
        self.count = 0.0
        self.total = total
        self._last = time.monotonic()
        self._start = self._last
        self._bar = None
        if self.enabled and sys.stderr.isatty():
            self._bar = tqdm(total=total, desc=desc, unit=unit, unit_scale=unit_scale,
                             mininterval=0.5, leave=False, file=sys.stderr)

    def update(self, n: float = 1) -> None:
        self.count += n
        if self._bar is not None:
            self._bar.update(n)
        elif self.enabled:
            now = time.monotonic()
            if now - self._last >= self.every_s:
                self._last = now
                total = f"/{self.total:.0f}" if self.total else ""
                print(f"  {self.desc}: {self.count:.0f}{total} {self.unit} "
                      f"({now - self._start:.0f}s)", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
