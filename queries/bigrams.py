"""Scoring bigrams by PMI over sharded counts (``ScoreBigrams``): two joins with the word
counts, one for c(a) and one for c(b), with the bigrams that cannot reach ``min_pmi``
dropped between them, so the second shuffle carries only those that can."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterator

import apache_beam as beam

from queries.select import max_first_count, pmi
from queries.sharding import observe, shard_of, split_counts


def first_word(bigram: str) -> str:
    return bigram.split(" ", 1)[0]


def by_first_word(shard_counts, min_count: int, shards: int) -> Iterator[tuple[int, dict]]:
    """One shard of summed bigram counts (sharded by the whole bigram, so no shard is hot)
    -> the bigrams with count >= min_count, split by the shard of their first word. Each
    piece is at most one summed shard, so a first word as common as "the" arrives in many
    bounded pieces instead of one dictionary holding all its bigrams."""
    _, counts = shard_counts
    observe("bigram_shard_keys", len(counts))
    kept = Counter({bigram: n for bigram, n in counts.items() if n >= min_count})
    return split_counts(kept, shards, first_word)


def with_first_count(joined, min_count: int, shards: int, total: int = 0,
                      min_pmi: float = -math.inf):
    """Shard s: pieces of bigram counts whose first word is in s + that shard's word counts
    -> (shard of the second word, [(bigram, count, c(a)), ...]) for the bigrams with
    count >= min_count that can still reach min_pmi (c(a) <= N / 2^min_pmi): pruned here,
    after the global sum and before the second shuffle, which then carries only those.
    The pieces are iterated one at a time; only the survivors are held. The records are plain
    tuples on purpose: they cross the next CoGroupByKey in lists, and Beam encodes its
    union-typed values with its default coder, which would pickle a NamedTuple (~15x slower
    and 3x the bytes in a list)."""
    _, grouped = joined
    words: dict = {}
    for counts in grouped["words"]:
        words = counts
    limit = max_first_count(total, min_pmi)
    out: dict[int, list] = {}
    for counts in grouped["bigrams"]:
        for bigram, count in counts.items():
            if count >= min_count:
                a, b = bigram.split(" ", 1)
                count_a = words[a]
                if count_a <= limit:
                    out.setdefault(shard_of(b, shards), []).append((bigram, count, count_a))
    observe("unigram_shard_keys", len(words))
    observe("bigram_survivors", sum(len(records) for records in out.values()))
    return sorted(out.items())


def scored(joined, total: int, min_pmi: float):
    """Shard s: [(bigram, count, c(a))] whose second word is in s + that shard's word counts
    -> (bigram, count, PMI) for PMI >= min_pmi."""
    _, grouped = joined
    words: dict = {}
    for counts in grouped["words"]:
        words = counts
    observe("unigram_shard_keys", len(words))
    for records in grouped["partial"]:
        observe("bigram_partial_records", len(records))
        for bigram, count, count_a in records:
            score = pmi(count, count_a, words[bigram.split(" ", 1)[1]], total)
            if score >= min_pmi:
                yield bigram, count, score


class ScoreBigrams(beam.PTransform):
    """Bigram counts (summed per shard of the whole bigram) + sharded word counts + total
    tokens -> (bigram, count, PMI) for bigrams with count >= min_count and PMI >= min_pmi:
    re-split by first word, joined with c(a) and pruned by the PMI bound, then joined with
    c(b) by second word and scored."""

    def __init__(self, min_count: int, min_pmi: float, shards: int):
        super().__init__()
        self.min_count, self.min_pmi, self.shards = min_count, min_pmi, shards

    def expand(self, inputs):
        bigrams, unigrams, total = inputs
        by_first = bigrams | "ByFirstWord" >> beam.FlatMap(by_first_word, self.min_count,
                                                           self.shards)
        with_first = (
            {"bigrams": by_first, "words": unigrams}
            | "JoinFirstWord" >> beam.CoGroupByKey()
            | "AttachFirst" >> beam.FlatMap(with_first_count, self.min_count, self.shards,
                                            total=beam.pvalue.AsSingleton(total),
                                            min_pmi=self.min_pmi)
        )
        return (
            {"partial": with_first, "words": unigrams}
            | "JoinSecondWord" >> beam.CoGroupByKey()
            | "ScorePMI" >> beam.FlatMap(scored, total=beam.pvalue.AsSingleton(total),
                                         min_pmi=self.min_pmi)
        )
