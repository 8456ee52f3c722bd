"""Streaming pages out of MediaWiki ``pages-articles`` XML dumps (``.xml``, ``.xml.bz2``,
``.xml.gz``; any fsspec path) with mwxml. Memory stays at one page at a time."""

from __future__ import annotations

import bz2
import gzip
import lzma
import xml.etree.ElementTree as ElementTree
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import fsspec
import mwxml

from pipeline.errors import InputError

MAIN_NAMESPACE = 0


class DumpError(InputError):
    """A Wikipedia dump file is truncated, malformed or not a dump."""


@dataclass(frozen=True)
class Page:
    title: str
    namespace: int
    redirect: str | None  # target title when the page is a redirect
    text: str


def _decompressor(path: str):
    lower = path.lower()
    if lower.endswith(".bz2"):
        return bz2.BZ2File
    if lower.endswith(".gz"):
        return gzip.GzipFile
    if lower.endswith(".xz"):
        return lzma.LZMAFile
    return None


def _describe(exc: BaseException) -> str:
    if isinstance(exc, EOFError):
        return f"truncated compressed stream ({exc})"
    if isinstance(exc, ElementTree.ParseError):
        return f"malformed XML ({exc})"
    if isinstance(exc, OSError):
        return f"unreadable ({exc})"
    return f"{type(exc).__name__}: {exc}"


def check_header(path: str) -> None:
    """Fail fast (on the launcher) when ``path`` is missing, cannot be decompressed or does
    not start like a MediaWiki export."""
    try:
        with fsspec.open(path, "rb") as raw:
            wrap = _decompressor(path)
            stream = wrap(raw) if wrap else raw
            head = stream.read(4096)
    except (OSError, EOFError) as exc:
        raise DumpError(f"{path}: {_describe(exc)}") from exc
    text = head.decode("utf-8", errors="replace").lstrip("\ufeff \t\r\n")
    if text.startswith("<?xml"):
        text = text.split("?>", 1)[-1].lstrip()
    if not text.startswith("<mediawiki"):
        shown = text[:40].replace("\n", " ")
        raise DumpError(f"{path}: not a MediaWiki XML dump (starts with {shown!r})")


def iter_pages(
    path: str, on_progress: Callable[[int], None] | None = None
) -> Iterator[tuple[Page, frozenset[str]]]:
    """Yield (page, namespace names of the wiki, lower-cased) for every page of the dump.

    ``on_progress(compressed_bytes_read)`` is called after each page. Any read or parse
    failure becomes a :class:`DumpError` naming the file.
    """
    try:
        with fsspec.open(path, "rb") as raw:
            wrap = _decompressor(path)
            stream = wrap(raw) if wrap else raw
            dump = mwxml.Dump.from_file(stream)
            namespaces = frozenset(
                (ns.name or "").lower() for ns in (dump.site_info.namespaces or []) if ns.name
            )
            for page in dump:
                text = ""
                for revision in page:  # pages-articles holds the latest revision only
                    text = revision.text or ""
                yield Page(page.title, page.namespace, page.redirect, text), namespaces
                if on_progress is not None:
                    on_progress(raw.tell())
    except DumpError:
        raise
    except (OSError, EOFError, ElementTree.ParseError, ValueError, KeyError,
            AttributeError, TypeError) as exc:
        raise DumpError(f"{path}: {_describe(exc)}") from exc
