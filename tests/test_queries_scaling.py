"""What keeps the queries job's per-worker state flat as dumps grow: the shard count follows
the input size, and bigrams that cannot reach --min-pmi are pruned before the second join
(exactness on real text: test_queries_pipeline.test_counts_equal_plain_python_reference)."""

from __future__ import annotations

import random

from queries.bigrams import by_first_word, with_first_count
from queries.select import max_first_count, pmi
from queries.sharding import (
    MAX_COUNT,
    MIN_SHARDS,
    XML_BYTES_PER_SHARD,
    frequent,
    shard_of,
    shards_for,
)


def test_shard_count_grows_with_the_dump_and_never_drops_below_the_minimum():
    assert shards_for([]) == MIN_SHARDS
    assert shards_for([("sample.xml.bz2", 1_700_000)]) == MIN_SHARDS
    enwiki = [(f"enwiki-pages-articles{i}.xml.bz2", 22_000_000_000 // 27) for i in range(27)]
    full = shards_for(enwiki)
    assert full > MIN_SHARDS
    # 10x the input: ~10x the shards, so distinct keys per shard stay about the same
    assert shards_for(enwiki * 10) >= 9.9 * full
    # plain XML counts byte for byte; bz2 by its estimated XML size
    assert shards_for([("a.xml", 1000 * XML_BYTES_PER_SHARD)]) == 1000
    assert shards_for([("a.xml.bz2", 1000 * XML_BYTES_PER_SHARD)]) > 1000


def test_pruned_bigrams_could_never_reach_min_pmi():
    rng = random.Random(7)
    total, min_pmi = 1_000_000, 9.0
    limit = max_first_count(total, min_pmi)
    for _ in range(2000):
        count_a = rng.randint(1, 5000)
        count_ab = rng.randint(1, count_a)
        # the best case for a pruned bigram: its second word occurs only in it
        best = pmi(count_ab, count_a, count_ab, total)
        if count_a > limit:
            assert best < min_pmi
    assert max_first_count(0, min_pmi) == float("inf")


def test_first_join_keeps_only_bigrams_that_can_pass():
    shards = 8
    words = {"rare": 1, "the": 50_000, "cat": 3, "dog": 2}
    bigrams = {"rare cat": 1, "the cat": 3, "the dog": 2, "rare dog": 1}
    joined = (0, {"bigrams": [bigrams], "words": [words]})
    everything = with_first_count(joined, 1, shards)
    pruned = with_first_count(joined, 1, shards, total=100_000, min_pmi=10.0)
    kept = {b for _, records in pruned for b, _, _ in records}
    assert {b for _, records in everything for b, _, _ in records} == set(bigrams)
    assert kept == {"rare cat", "rare dog"}  # c(the) = 50,000 > 100,000 / 2^10
    for shard, records in pruned:
        assert all(shard == shard_of(b.split(" ")[1], shards) for b, _, _ in records)


def test_bigrams_are_summed_by_their_own_hash_and_split_by_first_word_in_pieces():
    """No summed shard is hot: all bigrams of a common first word arrive as several pieces,
    each no larger than the summed shard it came from."""
    shards = 4
    summed = [{f"the w{i}": 1 + i % 3 for i in range(j, 400, 8)} for j in range(8)]
    pieces = [piece for counts in summed
              for piece in by_first_word((0, counts), min_count=2, shards=shards)]
    the = shard_of("the", shards)
    assert len(pieces) == 8 and {shard for shard, _ in pieces} == {the}
    assert all(len(piece) <= 50 for _, piece in pieces)
    merged = {k: v for _, piece in pieces for k, v in piece.items()}
    assert merged == {k: v for counts in summed for k, v in counts.items() if v >= 2}


def test_counts_past_beams_integer_coder_saturate():
    """A hostile pageview line's 40-digit count reaches `frequent`, whose (key, int) output
    Beam 2.78 encodes with its 64-bit integer coder: it saturates instead of failing the job."""
    counts = ("shard", {"Zebra": 10**40, "Horse": 80, "Rare": 1})
    assert sorted(frequent(counts, 2)) == [("Horse", 80), ("Zebra", MAX_COUNT)]
    assert MAX_COUNT == 2**63 - 1
