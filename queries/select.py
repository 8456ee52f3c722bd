"""Selecting and merging entries (pure, no Beam).

PMI of a bigram ``a b`` (nltk's ``BigramAssocMeasures.pmi``, log base 2)::

    PMI(a, b) = log2( c(a b) * N / (c(a) * c(b)) )

with ``c`` counts over the dump's token stream and ``N`` the number of word tokens.
"""

from __future__ import annotations

import math
import string
from collections.abc import Iterable
from dataclasses import dataclass

from nltk.metrics.association import BigramAssocMeasures

from schemas.queries import MERGE_ORDER, NUMERAL

_PMI = BigramAssocMeasures.pmi
NUMERALS = tuple(str(i) for i in range(100))
_PUNCTUATION = frozenset(string.punctuation)


def pmi(count_ab: int, count_a: int, count_b: int, total: int) -> float:
    return float(_PMI(count_ab, (count_a, count_b), total))


def max_first_count(total: int, min_pmi: float) -> float:
    """The largest c(a) a bigram ``a b`` can have and still reach ``min_pmi``: c(a b) <= c(b)
    gives PMI(a b) <= log2(N / c(a)). (With a small margin for float rounding.)"""
    if total <= 0:
        return math.inf
    return total / 2.0 ** (min_pmi - 1e-9)


def is_valid_entry(entry: str) -> bool:
    """MetaCLIP's rule (``build_metadata.py``): drop the empty entry and single ASCII
    punctuation characters, nothing else."""
    return len(entry) > 0 and entry not in _PUNCTUATION


def numeral_candidates() -> list[Candidate]:
    return [Candidate(n, NUMERAL) for n in NUMERALS]


@dataclass(frozen=True)
class Candidate:
    entry: str
    source: str
    count: int | None = None
    score: float | None = None


def rank_unigrams(counts: Iterable[tuple[str, int]]) -> list[Candidate]:
    return [Candidate(t, "unigram", c) for t, c in sorted(counts, key=lambda x: (-x[1], x[0]))]


def rank_bigrams(scored: Iterable[tuple[str, int, float]]) -> list[Candidate]:
    ordered = sorted(scored, key=lambda x: (-x[2], -x[1], x[0]))
    return [Candidate(b, "bigram", c, s) for b, c, s in ordered]


def rank_titles(counts: Iterable[tuple[str, int]]) -> list[Candidate]:
    return [Candidate(t, "title", c) for t, c in sorted(counts, key=lambda x: (-x[1], x[0]))]


def merge(
    per_source: dict[str, list[Candidate]], max_entries: int
) -> tuple[list[Candidate], dict[str, dict[str, int]]]:
    """Concatenate sources in merge order (numeral, wordnet, unigram, bigram, title),
    dropping invalid entries and exact duplicates, and stop at ``max_entries``.

    Returns the entries (index = entry id) and per source: candidates, invalid,
    duplicates, capped (not taken because the list was full), kept.
    """
    entries: list[Candidate] = []
    seen: set[str] = set()
    report: dict[str, dict[str, int]] = {}
    for source in MERGE_ORDER:
        candidates = per_source.get(source)
        if candidates is None:
            continue
        row = {"candidates": len(candidates), "invalid": 0, "duplicates": 0, "capped": 0,
               "kept": 0}
        for candidate in candidates:
            if not is_valid_entry(candidate.entry):
                row["invalid"] += 1
            elif candidate.entry in seen:
                row["duplicates"] += 1
            elif len(entries) >= max_entries:
                row["capped"] += 1
            else:
                seen.add(candidate.entry)
                entries.append(candidate)
                row["kept"] += 1
        report[source] = row
    return entries, report
