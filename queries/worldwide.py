"""MetaCLIP 2's per-language metadata (pure; no Beam): tokens of any script, the language of
a dump, and the merge of a language's sources under MetaCLIP 2's caps.

**Tokens.** Words are runs of letters, digits *and combining marks* (``\\p{M}``: Thai vowel
signs, Devanagari matras — the English tokenizer, ``queries.tokenize``, splits words at
them), with inner apostrophes or hyphens; languages written without spaces are first cut
into words by their segmenter (:mod:`queries.segment`). Punctuation and line ends break
bigrams, as in the English tokenizer.

**Caps** (MetaCLIP 2's ``build_metadata.py``, relative to the language's own vocabulary):
numerals 0-99, then WordNet lemmas of the language, then unigrams by count, at most
``min(251,465, int(10% of the language's distinct unigrams))``, then bigrams with PMI > 30 by
PMI, at most 100,646 (written without their space in no-space languages), then titles by
pageviews, at most ``min(61,235, int(76% of the titles))``. A cap counts entries *added*
(not duplicates); empty, longer than 256 characters or all-punctuation entries are skipped.
English keeps MetaCLIP 1's list (``wit queries`` as before).
"""

from __future__ import annotations

import string
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence

import fsspec
import regex

from pipeline.core.language import wiki_language
from queries.segment import NO_SPACE_LANGUAGES, segmenter_for

UNIGRAM_SHARE, UNIGRAM_MAX = 0.1, 251_465
BIGRAM_MIN_PMI, BIGRAM_MAX = 30.0, 100_646
TITLE_SHARE, TITLE_MAX = 0.76, 61_235
MAX_ENTRY_CHARS = 256
CJK_PUNCTUATION = frozenset("，。、；：？¿！“”‘’（）【】《》〈〉「」『』～—")

_WORD = r"[\w\p{M}]+(?:['’\-][\w\p{M}]+)*"
_TOKENS = regex.compile(f"({_WORD})|[^\\w\\p{{M}}\\s]+|\\n")


def _is_word(token: str) -> bool:
    return any(unicodedata.category(c)[0] in "LNM" or c == "_" for c in token)


def word_tokens(text: str, language: str) -> list[str]:
    """The tokens of ``text`` with every non-word token (punctuation, line end) as ``""``."""
    segmenter = segmenter_for(language)
    if segmenter is None:
        return [m.group(1) or "" for m in _TOKENS.finditer(text)]
    tokens: list[str] = []
    for line in text.split("\n"):
        if tokens:
            tokens.append("")  # a line end breaks bigrams
        for run in line.split():
            tokens.extend(t if _is_word(t) else "" for t in segmenter(run) if t.strip())
    return tokens


def count_text(text: str, language: str, unigrams: Counter, bigrams: Counter) -> int:
    """Add the words of ``text`` and its bigrams (``"a b"``) to the counters; the number of
    words."""
    tokens = word_tokens(text, language)
    unigrams.update(filter(None, tokens))
    bigrams.update(f"{a} {b}" for a, b in zip(tokens, tokens[1:]) if a and b)
    return len(tokens) - tokens.count("")


def dump_language(path: str) -> str:
    """The merged language of a Wikipedia dump, from its ``<siteinfo>`` dbname
    (``dewiki`` -> ``de``); a clear error naming the file when it has none."""
    from mwxml.element_iterator import ElementIterator
    from mwxml.iteration.site_info import SiteInfo

    from queries.dump import DumpError, _decompressor

    with fsspec.open(path, "rb") as raw:
        wrap = _decompressor(path)
        root = ElementIterator.from_file(wrap(raw) if wrap else raw)
        for element in root:
            if element.tag == "siteinfo":
                dbname = SiteInfo.from_element(element).dbname
                try:
                    return wiki_language(dbname or "")
                except ValueError as exc:
                    raise DumpError(f"{path}: {exc}") from exc
            break
    raise DumpError(f"{path}: no <siteinfo> with a <dbname> before the first <page>")


def unigram_cap(distinct_unigrams: int) -> int:
    return min(UNIGRAM_MAX, int(distinct_unigrams * UNIGRAM_SHARE))


def title_cap(titles: int) -> int:
    return min(TITLE_MAX, int(titles * TITLE_SHARE))


def _usable(entry: str) -> bool:
    return (0 < len(entry) <= MAX_ENTRY_CHARS
            and not all(c in string.punctuation or c in CJK_PUNCTUATION for c in entry))


def language_metadata(language: str, wordnet: Sequence[str],
                      unigrams: Iterable[tuple[str, int]],
                      bigrams: Iterable[tuple[str, float]],
                      titles: Iterable[tuple[str, int]],
                      min_pmi: float = BIGRAM_MIN_PMI, distinct_unigrams: int | None = None,
                      title_count: int | None = None) -> list[tuple[str, str]]:
    """``(entry, source)`` of one language in entry-id order (see the module docstring).
    ``unigrams``: every distinct unigram of the language with its count; ``bigrams``:
    ``("a b", PMI)``, kept when PMI > ``min_pmi``; ``titles``: ``(title, views)``. Ties are broken by the entry, so the
    list does not depend on input order. ``distinct_unigrams`` / ``title_count``: the sizes
    the caps are relative to, when the lists passed are only the top of them (default:
    their lengths)."""
    entries: dict[str, str] = {str(n): "numeral" for n in range(100)}
    for lemma in wordnet:
        lemma = lemma.replace("+", "") if language in ("zh", "ja", "fr") else lemma
        lemma = lemma.strip()
        if _usable(lemma):
            entries.setdefault(lemma, "wordnet")
    unigram_list = list(unigrams)

    def add(ranked: Iterable[str], source: str, cap: int) -> None:
        added = 0
        for entry in ranked:
            if added >= cap:
                return
            entry = entry.strip()
            if _usable(entry) and entry not in entries:
                entries[entry] = source
                added += 1

    add((w for w, _ in sorted(unigram_list, key=lambda x: (-x[1], x[0]))), "unigram",
        unigram_cap(len(unigram_list) if distinct_unigrams is None else distinct_unigrams))
    joined = language in NO_SPACE_LANGUAGES
    add((b.replace(" ", "") if joined else b
         for b, pmi in sorted(bigrams, key=lambda x: (-x[1], x[0])) if pmi > min_pmi),
        "bigram", BIGRAM_MAX)
    title_list = sorted(titles, key=lambda x: (-x[1], x[0]))
    add((t for t, _ in title_list), "title",
        title_cap(len(title_list) if title_count is None else title_count))
    return list(entries.items())


def write_language_files(folder: str, language: str,
                         rows: Sequence[tuple[str, str]]) -> dict:
    """``<lang>.json`` (the entries; index = entry id) and ``<lang>.sources.json`` (each
    entry's source, same order); returns the language's item of ``index.json``."""
    from pipeline.core import fsio

    fsio.makedirs(folder)
    fsio.atomic_write_json(fsio.join(folder, f"{language}.json"), [e for e, _ in rows],
                           indent=None)
    fsio.atomic_write_json(fsio.join(folder, f"{language}.sources.json"),
                           [s for _, s in rows], indent=None)
    return {"file": f"{language}.json", "entries": len(rows),
            "sources": dict(sorted(Counter(s for _, s in rows).items()))}


def write_index(folder: str, items: dict[str, dict]) -> str:
    """``index.json``, written last: it marks a complete folder. Returns its path."""
    from pipeline.core import fsio

    index = fsio.join(folder, "index.json")
    fsio.atomic_write_json(index, {"languages": dict(sorted(items.items()))})
    return index


def write_worldwide_metadata(folder: str, metadata: dict[str, list[tuple[str, str]]]) -> str:
    """Write one query list per language plus the index ``wit crawl --worldwide`` reads
    (``pipeline/crawl/worldwide_metadata.py``). Returns the index path."""
    return write_index(folder, {language: write_language_files(folder, language, rows)
                                for language, rows in metadata.items()})
