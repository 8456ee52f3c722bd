"""Caption language identification for the shards stage's language filter: the detector
itself lives in :mod:`pipeline.core.language` (the crawl's worldwide routing uses it too)."""

from __future__ import annotations

from pipeline.core.language import detect_language

__all__ = ["detect_language", "parse_languages"]


def parse_languages(value: str) -> tuple[str, ...]:
    """``"en,de"`` -> ``("en", "de")``; ``"any"`` -> ``()`` (no language rule)."""
    codes = tuple(dict.fromkeys(c.strip().lower() for c in value.split(",") if c.strip()))
    if codes == ("any",):
        return ()
    bad = [c for c in codes if c == "any" or not (c.isascii() and c.replace("-", "").isalpha())
           or not 2 <= len(c) <= 8]
    if bad or not codes:
        raise ValueError(f"not a list of language codes: {value!r} (e.g. en or en,de, or any)")
    return codes
