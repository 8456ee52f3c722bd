"""MetaCLIP 2's per-language substring matching (pure; no Beam).

The text is spaced exactly as MetaCLIP 1 does (:func:`pipeline.crawl.matching.spacing`), but
an entry is wrapped in spaces only on the sides where it needs a word boundary: MetaCLIP 2
puts a space before an entry whose first character is not "no-space" and after one whose
last character is not (``get_spaced_metadata`` in its curation code). No-space characters
are those of scripts written without spaces between words (CJK ideographs, Thai, Lao,
Myanmar, Khmer, Tibetan) and punctuation. So ``猫`` matches inside ``一只猫在睡觉``, while
``cat`` needs boundaries and is not found in ``category``; a mixed entry ``PNG画像`` needs a
boundary before ``P`` only.

Where we differ from the reference (docs/crawl.md): kana (Hiragana, Katakana and their
half-width and extension blocks) count as no-space too — Japanese is written without spaces
and the reference's ranges leave kana out, so ``ネコ`` would only match between spaces;
Hangul keeps the word-boundary rule as in the reference (Korean is written with spaces).

Every text is matched against the metadata of its own language only (``pipeline.core.language``
routes it); :class:`WorldwideMatcher` holds one Aho–Corasick automaton per language.
"""

from __future__ import annotations

import string
from collections.abc import Iterable, Mapping, Sequence

import ahocorasick

from pipeline.crawl.matching import spacing

# (first, last) code points of the no-space blocks
NO_SPACE_RANGES = (
    (0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0x2A700, 0x2B73F),
    (0x2B740, 0x2B81F), (0x2B820, 0x2CEAF), (0x2CEB0, 0x2EBEF), (0xF900, 0xFAFF),
    (0x2E80, 0x2EFF), (0x2F00, 0x2FDF), (0x2FF0, 0x2FFF),  # CJK ideographs and radicals
    (0x0E00, 0x0E7F), (0x0E80, 0x0EFF), (0x1000, 0x109F), (0x1780, 0x17FF),
    (0x0F00, 0x0FFF),  # Thai, Lao, Myanmar, Khmer, Tibetan
    (0x3040, 0x309F), (0x30A0, 0x30FF), (0x31F0, 0x31FF), (0xFF66, 0xFF9F),  # kana (ours)
)
# ASCII punctuation and the CJK punctuation the reference lists
NO_SPACE_PUNCTUATION = frozenset(string.punctuation) | frozenset(
    "，。、；：？！“”‘’（）【】《》〈〉「」『』～—")


def is_no_space(char: str) -> bool:
    """Whether an entry starting or ending with ``char`` needs no word boundary there."""
    if char in NO_SPACE_PUNCTUATION:
        return True
    code = ord(char)
    return any(first <= code <= last for first, last in NO_SPACE_RANGES)


def spaced_entry(entry: str) -> str:
    """The key searched for in the spaced text: ``entry`` with a space on each side that
    needs a word boundary. An empty entry stays empty (it is never searched for)."""
    if not entry:
        return entry
    before = "" if is_no_space(entry[0]) else " "
    after = "" if is_no_space(entry[-1]) else " "
    return f"{before}{entry}{after}"


def naive_match(text: str, metadata: Sequence[str]) -> list[int]:
    """Reference implementation: one ``in`` per entry, O(len(metadata))."""
    spaced = spacing(text)
    return [i for i, entry in enumerate(metadata) if entry and spaced_entry(entry) in spaced]


class LanguageMatcher:
    """An Aho–Corasick automaton over the spaced entries of one language's metadata."""

    def __init__(self, metadata: Iterable[str]):
        ids_by_key: dict[str, list[int]] = {}
        for entry_id, entry in enumerate(metadata):
            if entry:
                ids_by_key.setdefault(spaced_entry(entry), []).append(entry_id)
        self.automaton = ahocorasick.Automaton(ahocorasick.STORE_ANY, ahocorasick.KEY_STRING)
        for key, ids in ids_by_key.items():
            self.automaton.add_word(key, tuple(ids))
        self.empty = not ids_by_key
        if not self.empty:
            self.automaton.make_automaton()

    def match(self, text: str) -> list[int]:
        """Sorted ids of the entries found in ``text``."""
        if self.empty:
            return []
        found: set[int] = set()
        for _, ids in self.automaton.iter(spacing(text)):
            found.update(ids)
        return sorted(found)


class WorldwideMatcher:
    """One :class:`LanguageMatcher` per language of the metadata; a text is matched against
    the language it is routed to (a language without metadata: no match). Build it once per
    worker (``DoFn.setup``): hundreds of languages' automata take seconds and memory."""

    def __init__(self, metadata: Mapping[str, Sequence[str]]):
        self.languages = frozenset(metadata)
        self.sizes = {lang: len(entries) for lang, entries in metadata.items()}
        self.matchers = {lang: LanguageMatcher(entries) for lang, entries in metadata.items()}

    def match(self, language: str, text: str) -> list[int]:
        matcher = self.matchers.get(language)
        return matcher.match(text) if matcher is not None else []
