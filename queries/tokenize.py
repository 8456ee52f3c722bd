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


# The same tokens with the word in group 1 and "" for punctuation runs and line ends, so the
# counting below runs in C: filter(None, ...) keeps the words, filter(all, pairs) keeps the
# pairs of adjacent words. Equal to tokenize() + is_word() (tested on the real sample).
_WORD_OR_BREAK = re.compile("(" + WORD_PATTERN + r")|[^\w\s]+|\n")


def word_tokens(text: str) -> list[str]:
    """The tokens of ``text`` with every non-word token (punctuation run, line end) as ""."""
    return _WORD_OR_BREAK.findall(text)


def count_text(text: str, unigrams: Counter, bigrams: Counter | None) -> int:
    """Add the words of ``text`` to ``unigrams`` and its bigrams (``"a b"``) to ``bigrams``;
    return the number of words. (Counter.update over iterators runs in C: this is the hot
    loop; no per-token Python code.)"""
    tokens = word_tokens(text)
    unigrams.update(filter(None, tokens))
    if bigrams is not None:
        bigrams.update(map(" ".join, filter(all, zip(tokens, tokens[1:]))))
    return len(tokens) - tokens.count("")
