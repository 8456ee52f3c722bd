"""Validated argparse types shared by every stage's CLI.

Numbers are checked when the command line is parsed, so a nonsense value (``--max-pages -1``,
``--min-pmi nan``) is a one-line usage error (exit 2) instead of an empty result with rc 0.
Use them as ``parser.add_argument("--x", type=positive_int)``.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from pathlib import Path


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


def output_dir(text: str) -> str:
    """An argparse type for ``--out``: a folder that exists or can be made. A local path that
    is a regular file, or lies under one, is a usage error naming that file, not a traceback
    from deep inside a stage. (Object-store URLs are not checked here: a prefix there can
    coexist with an object of the same name.)"""
    if not text:
        raise argparse.ArgumentTypeError("an empty path is not a folder")
    if "://" in text and not text.startswith("file://"):
        return text
    path = Path(text.removeprefix("file://")).expanduser()
    for candidate in (path, *path.parents):
        if candidate.exists() or candidate.is_symlink():
            if not candidate.is_dir():
                what = "is" if candidate == path else f"lies under {candidate}, which is"
                raise argparse.ArgumentTypeError(
                    f"{text} {what} a file, not a folder: choose another --out")
            break
    return text
