"""Command-line values of ``wit crawl`` turned into config values (the ``convert`` of the
options declared on :class:`~pipeline.crawl.transform.CrawlConfig` and
:class:`~pipeline.crawl.live_crawler.CrawlerOptions`). Each raises a one-line
:class:`~pipeline.core.errors.InputError` naming the option or file at fault."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import fsspec

from pipeline.core import fsio
from pipeline.core.errors import InputError
from pipeline.core.net import parse_networks
from pipeline.crawl.html_extract import TEXT_FIELDS


def _flat(groups: Iterable[str | Sequence[str]]) -> list[str]:
    """``--warc a b --warc c`` arrives as ``[[a, b], [c]]``: one list, in order."""
    return [v for g in groups for v in ([g] if isinstance(g, str) else g)]


def files(what: str) -> Callable[[Sequence[Sequence[str]]], tuple[str, ...]]:
    """Globs and paths of every ``--warc``/``--wat``/``--urls`` -> the sorted files they name."""

    def expand(groups: Sequence[Sequence[str]]) -> tuple[str, ...]:
        patterns = _flat(groups)
        return tuple(fsio.expand(patterns, what)) if patterns else ()

    return expand


def seed_urls(groups: Sequence[Sequence[str]]) -> tuple[str, ...]:
    """Seed URLs, and files (local or on an object store) with one URL a line."""
    seeds: list[str] = []
    for value in _flat(groups):
        if value.lower().startswith(("http://", "https://")):
            seeds.append(value)
            continue
        # anything else is a seed file, local or on an object store (s3://, gs://)
        try:
            found = fsio.exists(value)
        except (ImportError, ValueError) as exc:  # unknown protocol, or its package missing
            raise InputError(f"{value}: not a URL (http://...) nor a readable seed file: "
                             f"{exc}") from exc
        if not found:
            raise InputError(f"{value}: not a URL (http://...) and no such seed file")
        with fsspec.open(value, "rt", encoding="utf-8") as f:
            seeds.extend(line.strip() for line in f if line.strip() and not line.startswith("#"))
    return tuple(seeds)


def parse_text_fields(value: str | Sequence[str]) -> tuple[str, ...]:
    """``alt,title`` (or the default's sequence) -> the fields, each one known."""
    items = value.split(",") if isinstance(value, str) else value
    fields = tuple(f.strip() for f in items if f.strip())
    bad = [f for f in fields if f not in TEXT_FIELDS]
    if bad or not fields:
        raise InputError(f"--text-fields: unknown field(s) {bad}; choose from {TEXT_FIELDS}")
    return fields


def networks(values: Sequence[str]) -> tuple[str, ...]:
    """``--allow-network`` values -> normalised CIDR strings."""
    try:
        return tuple(str(n) for n in parse_networks(values))
    except ValueError as exc:
        raise InputError(f"--allow-network: {exc}") from exc


def candidates_dir(root: str) -> str:
    """``--out`` is the output root; the stage writes ``OUT/candidates/``."""
    return fsio.join(root, "candidates")
