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
from collections.abc import Mapping, Sequence

from pipeline.core.scripts import is_no_space_letter
from pipeline.crawl.matching import Matcher, spacing

# ASCII punctuation and the CJK punctuation the reference lists
NO_SPACE_PUNCTUATION = frozenset(string.punctuation) | frozenset(
    "，。、；：？！“”‘’（）【】《》〈〉「」『』～—")


def is_no_space(char: str) -> bool:
    """Whether an entry starting or ending with ``char`` needs no word boundary there."""
    return char in NO_SPACE_PUNCTUATION or is_no_space_letter(char)


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


class LanguageMatcher(Matcher):
    """An Aho–Corasick automaton over the spaced entries of one language's metadata (the
    English :class:`~pipeline.crawl.matching.Matcher` with MetaCLIP 2's spacing rule; empty
    entries never match)."""

    @staticmethod
    def key_of(entry: str) -> str | None:
        return spaced_entry(entry) if entry else None


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
