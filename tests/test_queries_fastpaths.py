"""The fast counting path equals the reference it replaces: C-level counting vs nltk tokens
+ per-token word tests, on tricky strings and on every real article."""

from __future__ import annotations

from collections import Counter

import pytest

from queries.dump import iter_pages
from queries.tokenize import count_text, is_word, tokenize, word_tokens
from queries.wikitext import to_plain_text

TRICKY = [
    "O'Brien's rock-and-roll, in 1990!\nNext",
    "abc--def ghi-  jkl' mno ’quoted’ a’b c_d _e f__",
    "tab\tsep\r\nwin\u2028ls \x0bvt \x1cfs \u00a0nbsp \u3000ideo 東京 タワー x²y ٣٤",
    "Café naïve  résumé -- (New York) 'New York' New\n York ...end",
    "", "   ", "\n\n", "a", "a b", "-a- b",
]


def reference_counts(text: str) -> tuple[Counter, Counter, int]:
    """count_text as it was written first: nltk tokens, then a Python word test per token."""
    tokens = tokenize(text)
    flags = [is_word(t) for t in tokens]
    words = [t for t, word in zip(tokens, flags) if word]
    bigrams = Counter(a + " " + b for a, b, fa, fb in zip(tokens, tokens[1:], flags, flags[1:])
                      if fa and fb)
    return Counter(words), bigrams, len(words)


@pytest.fixture(scope="module")
def sample_pages(wiki_sample):
    return [(p.title, p.namespace, p.redirect, p.text, ns)
            for p, ns in iter_pages(str(wiki_sample))]


def test_word_tokens_are_the_tokens_with_non_words_blanked():
    for text in TRICKY:
        assert word_tokens(text) == [t if is_word(t) else "" for t in tokenize(text)], text


def test_count_text_equals_reference_on_tricky_and_real_text(sample_pages):
    texts = list(TRICKY)
    for _title, namespace, redirect, wikitext, names in sample_pages:
        if namespace == 0 and not redirect:
            texts.append(to_plain_text(wikitext, names)[0])
    assert len(texts) == len(TRICKY) + 106
    for text in texts:
        unigrams, bigrams = Counter(), Counter()
        words = count_text(text, unigrams, bigrams)
        assert (unigrams, bigrams, words) == reference_counts(text), text[:60]
        assert list(unigrams) == list(reference_counts(text)[0])  # same insertion order
