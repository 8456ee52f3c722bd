"""PMI, entry validity, ranking and the merge with its cap (pure functions)."""

import math
import string

from queries.pageviews import parse_line, title_views
from queries.select import (
    Candidate,
    is_valid_entry,
    merge,
    numeral_candidates,
    pmi,
    rank_bigrams,
    rank_unigrams,
)


def test_pmi_is_log2_of_observed_over_expected():
    # c(ab)=10, c(a)=20, c(b)=40, N=1000: log2(10*1000/(20*40)) = log2(12.5)
    assert math.isclose(pmi(10, 20, 40, 1000), math.log2(12.5))


def test_invalid_entries_are_metaclips_empty_and_single_ascii_punctuation():
    assert is_valid_entry("dog") and is_valid_entry("7") and is_valid_entry("C++")
    assert not is_valid_entry("")
    for ch in string.punctuation:
        assert not is_valid_entry(ch)
    # MetaCLIP keeps everything else, also multi-character punctuation and whitespace
    assert is_valid_entry("...") and is_valid_entry("--") and is_valid_entry("   ")
    assert is_valid_entry("€") and is_valid_entry("«")  # not ASCII punctuation


def test_numerals_come_first_whatever_the_sources():
    per_source = {"numeral": numeral_candidates(), "title": [Candidate("7", "title", 90),
                                                            Candidate("Hot dog", "title", 80)]}
    entries, report = merge(per_source, max_entries=500_000)
    assert [e.entry for e in entries] == [str(i) for i in range(100)] + ["Hot dog"]
    assert report["numeral"]["kept"] == 100 and report["title"]["duplicates"] == 1


def test_ranking_is_deterministic():
    assert [c.entry for c in rank_unigrams([("b", 5), ("a", 5), ("c", 9)])] == ["c", "a", "b"]
    ranked = rank_bigrams([("x y", 3, 10.0), ("a b", 5, 10.0), ("c d", 1, 12.0)])
    assert [c.entry for c in ranked] == ["c d", "a b", "x y"]


def test_merge_order_duplicates_invalid_and_cap():
    per_source = {
        "title": [Candidate("dog", "title", 90), Candidate("Hot Dog", "title", 80)],
        "wordnet": [Candidate("dog", "wordnet"), Candidate("", "wordnet"),
                    Candidate("hot dog", "wordnet")],
        "unigram": [Candidate("dog", "unigram", 500), Candidate("the", "unigram", 400),
                    Candidate(".", "unigram", 300)],
        "bigram": [Candidate("New York", "bigram", 50, 20.0)],
    }
    entries, report = merge(per_source, max_entries=5)
    assert [(e.entry, e.source) for e in entries] == [
        ("dog", "wordnet"), ("hot dog", "wordnet"), ("the", "unigram"),
        ("New York", "bigram"), ("Hot Dog", "title")]
    assert report["wordnet"] == {"candidates": 3, "invalid": 1, "duplicates": 0, "capped": 0,
                                 "kept": 2}
    assert report["unigram"]["duplicates"] == 1 and report["unigram"]["invalid"] == 1
    assert report["title"] == {"candidates": 2, "invalid": 0, "duplicates": 1, "capped": 0,
                               "kept": 1}
    capped, report = merge(per_source, max_entries=3)
    assert [e.entry for e in capped] == ["dog", "hot dog", "the"]
    assert report["bigram"]["capped"] == 1 and report["title"]["capped"] == 1


def test_pageview_lines():
    assert parse_line("en Hot_dog 120 0\n") == ("en", "Hot_dog", 120)
    assert parse_line("en Hot_dog 120") == ("en", "Hot_dog", 120)
    assert parse_line("garbage") is None and parse_line("en X many 0") is None
    assert title_views("en Hot_dog 120 0") == ("Hot dog", 120)
    assert title_views("en Hot_dog 49 0") is None  # hourly counts below 50 ignored
    assert title_views("en.m Hot_dog 500 0") is None  # en domain only
    assert title_views("en Special:Search 900 0") is None  # titles with ':' excluded
    assert title_views("en Caf%C3%A9_society 70 0") == ("Café society", 70)
    assert title_views("en Special%3ASearch 90 0") is None
    assert title_views("en 100%_Pure 70 0") == ("100% Pure", 70)
