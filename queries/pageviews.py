"""Wikimedia hourly pageview files: ``domain_code page_title count_views total_response_size``
per line (``pageviews-YYYYMMDD-HH0000`` or ``.gz``). Pure parsing, no Beam.

The domain code names the project: ``de`` is German Wikipedia (desktop) in the hourly files,
``de.wikipedia`` in the newer per-project dumps; ``de.m`` (mobile) and other projects
(``de.b`` Wikibooks, ``de.d`` Wiktionary, ...) are not counted, as MetaCLIP counts ``en``
alone. A language's titles (``wit queries --worldwide``) count its own project's lines."""

from __future__ import annotations

from urllib.parse import unquote

DOMAIN = "en"
MIN_HOURLY_VIEWS = 50


def parse_line(line: str) -> tuple[str, str, int] | None:
    """(domain, title, views) of a line, or None when it is not a pageview line."""
    parts = line.rstrip("\r\n").split(" ")
    # isascii: str.isdigit() also accepts digits such as '²' that int() refuses
    if len(parts) not in (3, 4) or not (parts[2].isascii() and parts[2].isdigit()):
        return None
    return parts[0], parts[1], int(parts[2])


def wikipedia_language(domain: str) -> str | None:
    """The language of a Wikipedia (desktop) domain code: ``de`` or ``de.wikipedia`` ->
    ``de``; None for mobile (``de.m``), other projects and anything else."""
    code = domain.removesuffix(".wikipedia")
    return code if code and "." not in code else None


def title_views(line: str, min_hourly: int = MIN_HOURLY_VIEWS,
                language: str = DOMAIN) -> tuple[str, int] | None:
    """(title as text, views) when the line counts toward a title entry of ``language``
    (default English): that language's Wikipedia (:func:`wikipedia_language`), hourly views
    >= ``min_hourly``, main-namespace title (no ``:``); else None."""
    parsed = parse_line(line)
    if parsed is None:
        return None
    domain, title, views = parsed
    if wikipedia_language(domain) != language or views < min_hourly:
        return None
    if "%" in title:  # the same page is logged under percent-encoded URL forms too
        title = unquote(title, errors="strict") if _decodable(title) else title
    if ":" in title:
        return None
    title = title.replace("_", " ").strip()
    # no real title holds control characters; a hostile line must not put them in the list
    return (title, views) if title and title != "-" and title.isprintable() else None


def _decodable(title: str) -> bool:
    try:
        unquote(title, errors="strict")
    except UnicodeDecodeError:
        return False
    return True
