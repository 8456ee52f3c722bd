"""Tokenization and per-page counting (pure, no Beam).

Tokens are words as MetaCLIP's substring matching can find them: runs of letters/digits
with inner apostrophes or hyphens (``rock-and-roll``, ``O'Brien``). Punctuation is a token of
its own and breaks bigrams, so are line ends: a bigram is two words written next to each
other, separated by whitespace only — exactly what ``" a b "`` can match in an alt text.
Case is preserved (matching is case-sensitive).
"""

from __future__ import annotations

import re
from collections import Counter

from nltk.tokenize import RegexpTokenizer

WORD_PATTERN = r"\w+(?:['’\-]\w+)*"


class _FixedPatternTokenizer(RegexpTokenizer):
    """nltk's RegexpTokenizer compiled with the standard ``re`` engine. nltk >= 3.10 runs
    caller-supplied patterns through a ReDoS-guarded, timed ``regex`` matcher, which halves
    tokenizing speed; our pattern is fixed and cannot backtrack catastrophically."""

    def _check_regexp(self) -> None:
        if self._regexp is None:  # type: ignore[has-type]
            self._regexp = re.compile(self._pattern, self._flags)


# words, punctuation runs, and line ends (which break bigrams like punctuation does)
_TOKENIZER = _FixedPatternTokenizer(WORD_PATTERN + r"|[^\w\s]+|\n")


def tokenize(text: str) -> list[str]:
    """Words, punctuation runs and line ends of ``text``, in order."""
    return _TOKENIZER.tokenize(text)


def is_word(token: str) -> bool:
    return token[0].isalnum() or token[0] == "_"


def count_text(text: str, unigrams: Counter, bigrams: Counter | None) -> int:
    """Add the words of ``text`` to ``unigrams`` and its bigrams (``"a b"``) to ``bigrams``;
    return the number of words. (Counter.update over lists runs in C: this is the hot loop.)"""
    tokens = tokenize(text)
    flags = [t[0].isalnum() or t[0] == "_" for t in tokens]
    words = [t for t, word in zip(tokens, flags) if word]
    unigrams.update(words)
    if bigrams is not None:
        bigrams.update([
            a + " " + b
            for a, b, a_word, b_word in zip(tokens, tokens[1:], flags, flags[1:])
            if a_word and b_word
        ])
    return len(words)
