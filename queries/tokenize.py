"""Tokenization and per-page counting (pure, no Beam).

Tokens are words as MetaCLIP's substring matching can find them: runs of letters/digits
with inner apostrophes or hyphens (``rock-and-roll``, ``O'Brien``). Punctuation is a token of
its own and breaks bigrams, so are line ends: a bigram is two words written next to each
other, separated by whitespace only — exactly what ``" a b "`` can match in an alt text.
Case is preserved (matching is case-sensitive).
"""

from __future__ import annotations

from collections import Counter

from nltk.tokenize import RegexpTokenizer

WORD_PATTERN = r"\w+(?:['’\-]\w+)*"
_TOKENIZER = RegexpTokenizer(WORD_PATTERN + r"|[^\w\s]+")


def tokenize(line: str) -> list[str]:
    """Words and punctuation runs of one line, in order."""
    return _TOKENIZER.tokenize(line)


def is_word(token: str) -> bool:
    return token[0].isalnum() or token[0] == "_"


def count_text(text: str, unigrams: Counter, bigrams: Counter | None) -> int:
    """Add the words of ``text`` to ``unigrams`` and its bigrams (``"a b"``) to ``bigrams``;
    return the number of words."""
    words = 0
    for line in text.split("\n"):
        previous = None
        for token in tokenize(line):
            if is_word(token):
                words += 1
                unigrams[token] += 1
                if bigrams is not None and previous is not None:
                    bigrams[previous + " " + token] += 1
                previous = token
            else:
                previous = None
    return words
