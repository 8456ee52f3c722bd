"""Streaming pages out of MediaWiki ``pages-articles`` XML dumps (``.xml``, ``.xml.bz2``,
``.xml.gz``; any fsspec path) with mwxml. Memory stays at one page at a time."""

from __future__ import annotations

import bz2
import gzip
import itertools
import lzma
import xml.etree.ElementTree as ElementTree
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import fsspec
import mwxml
import mwxml.errors
from mwxml.element_iterator import ElementIterator
from mwxml.iteration.site_info import SiteInfo

from pipeline.core.errors import InputError

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
    path: str, on_progress: Callable[[int], None] | None = None,
    skipped: Counter[str] | None = None,
) -> Iterator[tuple[Page, frozenset[str]]]:
    """Yield (page, namespace names of the wiki, lower-cased) for every page of the dump.

    A ``<page>`` that mwxml cannot read (no ``<title>``, a non-numeric ``<ns>``, an
    unexpected tag) is skipped and counted in ``skipped[reason]``; the rest of the dump is
    read. ``on_progress(compressed_bytes_read)`` is called after each page. A file that is
    not a dump (no ``<siteinfo>``, broken XML, truncated stream) raises a :class:`DumpError`
    naming the file.
    """
    try:
        with fsspec.open(path, "rb") as raw:
            wrap = _decompressor(path)
            stream = wrap(raw) if wrap else raw
            root = ElementIterator.from_file(stream)
            site_info, first = _site_info(path, root)
            namespace_map = {ns.name: ns for ns in site_info.namespaces or []} \
                if site_info.namespaces is not None else None
            namespaces = frozenset(
                (ns.name or "").lower() for ns in (site_info.namespaces or []) if ns.name
            )
            for element in itertools.chain([first] if first is not None else [], root):
                page = _read_page(element, namespace_map, skipped)
                element.clear()  # the rest of a skipped page, and the page's memory
                if page is not None:
                    yield page, namespaces
                if on_progress is not None:
                    on_progress(raw.tell())
    except DumpError:
        raise
    except (OSError, EOFError, ElementTree.ParseError, ValueError, KeyError,
            AttributeError, TypeError, mwxml.errors.MalformedXML) as exc:
        raise DumpError(f"{path}: {_describe(exc)}") from exc


def _site_info(path: str, root: ElementIterator) -> tuple[SiteInfo, ElementIterator | None]:
    """The ``<siteinfo>`` of the dump and the first ``<page>`` element (or None)."""
    info: SiteInfo | None = None
    first: ElementIterator | None = None
    for element in root:
        if element.tag == "siteinfo":
            info = SiteInfo.from_element(element)
        elif element.tag in ("page", "logitem"):
            first = element
            break
        else:
            raise DumpError(f"{path}: not a pages-articles dump (unexpected <{element.tag}> "
                            "before the first <page>)")
    if info is None:
        raise DumpError(f"{path}: no <siteinfo> before the first <page>: not a complete "
                        "MediaWiki pages-articles dump")
    return info, first


def _read_page(element: ElementIterator, namespace_map: dict | None,
               skipped: Counter[str] | None) -> Page | None:
    """The page of one ``<page>`` element, or None (counted) when it is malformed."""
    if element.tag != "page":
        reason = "not_a_page"
    else:
        try:
            page = mwxml.Page.from_element(element, namespace_map)
            if not isinstance(page.title, str):
                raise TypeError("no <title>")
            text = ""
            for revision in page:  # pages-articles holds the latest revision only
                text = revision.text or ""
            return Page(page.title, page.namespace, page.redirect, text)
        except (AttributeError, TypeError, ValueError, KeyError,
                mwxml.errors.MalformedXML) as exc:
            reason = "no_title" if "replace" in str(exc) or "no <title>" in str(exc) \
                else "malformed_page"
    if skipped is not None:
        skipped[reason] += 1
    return None
