"""Validated argparse types shared by every stage's CLI.

Numbers are checked when the command line is parsed, so a nonsense value (``--max-pages -1``,
``--min-pmi nan``) is a one-line usage error (exit 2) instead of an empty result with rc 0.
Use them as ``parser.add_argument("--x", type=positive_int)``.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable


def _number(kind: type, text: str) -> float:
    try:
        value = kind(text)
    except (TypeError, ValueError):
        name = "an integer" if kind is int else "a number"
        raise argparse.ArgumentTypeError(f"{text!r} is not {name}") from None
    if kind is float and not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return value


def bounded(kind: type, low: float | None = None, high: float | None = None,
            low_open: bool = False, what: str = "") -> Callable[[str], float]:
    """An argparse type: ``kind`` (int or float) within [low, high] (``low_open``: > low)."""

    def parse(text: str) -> float:
        value = _number(kind, text)
        if low is not None and (value <= low if low_open else value < low):
            raise argparse.ArgumentTypeError(
                f"{text} must be {'>' if low_open else '>='} {low}" + (f" ({what})" if what else ""))
        if high is not None and value > high:
            raise argparse.ArgumentTypeError(
                f"{text} must be <= {high}" + (f" ({what})" if what else ""))
        return value

    parse.__name__ = kind.__name__  # argparse names the type in its messages
    return parse


positive_int = bounded(int, 1)
non_negative_int = bounded(int, 0)
positive_float = bounded(float, 0, low_open=True)
non_negative_float = bounded(float, 0)
finite_float = bounded(float)
probability = bounded(float, 0, 1)
