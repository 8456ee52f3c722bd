"""Command-line values of ``wit queries`` parsed into :class:`~queries.transform.QueryConfig`
values (argparse types of its option fields)."""

from __future__ import annotations

import argparse

from schemas.queries import SOURCES


def parse_sources(value: str) -> tuple[str, ...]:
    """``title,wordnet`` -> the chosen sources in merge order, whatever the order given."""
    chosen = tuple(s.strip() for s in value.split(",") if s.strip())
    unknown = [s for s in chosen if s not in SOURCES]
    if unknown or not chosen:
        raise argparse.ArgumentTypeError(
            f"unknown source(s) {', '.join(unknown) or '(none)'}; choose from {','.join(SOURCES)}")
    return tuple(s for s in SOURCES if s in chosen)
