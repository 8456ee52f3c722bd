"""Exact and near-duplicate detection as pure functions (the Beam job only groups).

Keeper rule (deterministic, independent of runner and order): among duplicates the sample
with the most original pixels wins, ties go to the smallest key. A sample is a duplicate of
the best-ranked sample it is near; this is decided pairwise (no transitive closure), so in a
chain A~B~C where A beats B beats C but A is not near C, both B and C are dropped.

Near-duplicate search (docs/shards.md, "Near-duplicate search at scale"):
1. samples with the same pHash collapse to their best one, the hash's *representative*
   (a combiner: a blank image's million copies never form a group);
2. representatives are grouped by LSH keys: ``tables`` bit-sampled bands of ``band_bits``
   bits (phash.lsh_mask); a key with more than ``group_bound`` members is split by further
   bits of its table (:func:`split_bits`, from a count of every key), so no group holds more
   than about ``group_bound`` hashes and a group's all-pairs check is bounded work;
3. in each group every representative gets its best neighbour within ``max_bits``
   (verified exactly: precision 1.0), the minimum over groups is its best neighbour;
4. each sample of a hash is then a duplicate of the better of its representative and the
   hash's best neighbour (:func:`hash_marks`): exactly the pairwise rule above.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from pipeline.shards.phash import lsh_mask, to_faiss_codes

# Below this many hashes a numpy all-pairs check is cheaper than building a faiss index.
FAISS_MIN_GROUP = 512

Preference = tuple[int, str]  # (-original pixels, key): a sort key, smaller is better


class Ranked(NamedTuple):
    """A sample as dedup ranks it: smaller is the better sample."""
    preference: Preference
    key: str


# LSH keys are plain tuples: Beam groups by them and encodes plain tuples of ints
# deterministically and fast (a NamedTuple key would take its slower fallback encoding).
LshKey = tuple[int, int, int]  # (table, extra bits, masked hash)
GroupKey = tuple[int, int, int, int, int]  # LshKey + (block, block) of a block-split key


@dataclass(frozen=True)
class NearDupConfig:
    max_bits: int = 10
    tables: int = 40  # 8 rounds of 5 bands: recall >= 0.99 at 10 bits (docs/benchmarks.md)
    band_bits: int = 12
    group_bound: int = 2000  # split any LSH key with more representatives than this
    split_rounds: int = 3  # count-and-split passes (clustered hashes may need more than one)


def preference(original_width: int | None, original_height: int | None, key: str) -> Preference:
    """Smaller is better: more pixels first, then the smaller key."""
    return (-int((original_width or 0) * (original_height or 0)), key)


def exact_duplicates(members: Iterable[tuple[Preference, str]]) -> list[tuple[str, str]]:
    """(duplicate key, keeper key) for every member of one sha256 group but the keeper."""
    ordered = sorted(members)
    keeper = ordered[0][1]
    return [(key, keeper) for _, key in ordered[1:]]


def brute_force_pairs(hashes: Sequence[int] | np.ndarray, max_bits: int,
                      cells: int = 1 << 22) -> list[tuple[int, int]]:
    """All index pairs i < j with Hamming distance <= max_bits (numpy, exact); compares
    blocks of about ``cells`` pairs at a time to bound memory."""
    values = np.asarray(hashes, dtype=np.uint64)
    chunk = max(1, cells // max(1, len(values)))
    pairs: list[tuple[int, int]] = []
    for start in range(0, len(values), chunk):
        block = values[start:start + chunk]
        distances = np.bitwise_count(block[:, None] ^ values[None, :])
        rows, cols = np.nonzero(distances <= max_bits)
        rows = rows + start
        keep = rows < cols
        pairs.extend(zip(rows[keep].tolist(), cols[keep].tolist()))
    return sorted(pairs)


def faiss_pairs(hashes: Sequence[int] | np.ndarray, max_bits: int) -> list[tuple[int, int]]:
    """The same pairs as :func:`brute_force_pairs`, via a faiss binary flat index."""
    import faiss

    codes = to_faiss_codes(hashes)
    index = faiss.IndexBinaryFlat(64)
    index.add(codes)
    lims, _, ids = index.range_search(codes, max_bits + 1)  # faiss: distance < radius
    pairs: list[tuple[int, int]] = []
    for i in range(len(codes)):
        for j in ids[lims[i]:lims[i + 1]].tolist():
            if i < j:
                pairs.append((i, int(j)))
    return sorted(pairs)


def near_pairs(hashes: Sequence[int], max_bits: int) -> list[tuple[int, int]]:
    if len(hashes) < 2:
        return []
    if len(hashes) >= FAISS_MIN_GROUP:
        return faiss_pairs(hashes, max_bits)
    return brute_force_pairs(hashes, max_bits)


def split_bits(count: int, bound: int) -> int:
    """Extra key bits for an LSH key with ``count`` members: enough to cut it to ``bound`` if
    the bits split evenly, plus one for the unevenness of clustered hashes."""
    return 0 if count <= bound else math.ceil(math.log2(count / bound)) + 1


def round_split_bits(key: LshKey, count: int, config: NearDupConfig, round_: int) -> int:
    """What a crowded key gets in split round ``round_``: more bits (> 0) or, in the last
    round or when the bits run out, ``-n``: its hashes go to ``n`` blocks by a hash of
    their value, and every pair of blocks is one group of about 2/3 ``group_bound`` (all pairs
    inside the key are still checked: the cost of a cluster that survived the bit splits)."""
    bits = split_bits(count, config.group_bound)
    if round_ < config.split_rounds - 1 and key[1] + bits < 63 - config.band_bits:
        return bits
    return -max(3, math.ceil(3 * count / config.group_bound))  # 2/3 bound: room for chance


def block_of(value: int, blocks: int) -> int:
    """Which block of a block-split key a hash goes to: splitmix64's finaliser, so hashes
    that agree on most bits still spread evenly."""
    mask = 0xFFFFFFFFFFFFFFFF
    value = ((value ^ (value >> 30)) * 0xBF58476D1CE4E5B9) & mask
    value = ((value ^ (value >> 27)) * 0x94D049BB133111EB) & mask
    return (value ^ (value >> 31)) % blocks


def lsh_key(value: int, table: int, config: NearDupConfig, extra: Mapping[LshKey, int]) -> LshKey:
    """The key of one hash in one table: its band, lengthened by the split bits of every
    crowded key it falls in (``extra``: key -> bits to add, or -blocks)."""
    key = (table, 0, value & lsh_mask(table, config.band_bits, config.band_bits))
    while extra.get(key, 0) > 0:
        more = key[1] + extra[key]
        key = (table, more, value & lsh_mask(table, config.band_bits, config.band_bits + more))
    return key


def group_keys(value: int, config: NearDupConfig, extra: Mapping[LshKey, int]) -> list[GroupKey]:
    """Every group one hash joins: one per table, or for a block-split key one per pair of
    its block with another block."""
    keys: list[GroupKey] = []
    for table in range(config.tables):
        key = lsh_key(value, table, config, extra)
        blocks = -extra.get(key, 0)
        if blocks > 0:
            mine = block_of(value, blocks)
            keys.extend((*key, min(mine, b), max(mine, b)) for b in range(blocks) if b != mine)
        else:
            keys.append((*key, 0, 0))
    return keys


def table_keys(hashes: np.ndarray, table: int, config: NearDupConfig
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[LshKey, int]]:
    """Vectorised :func:`lsh_key` with the split rounds of the Beam job, for one table over
    all hashes: (extra bits, masked hashes, blocks or 0, the crowded keys found)."""
    band = config.band_bits
    more = np.zeros(len(hashes), dtype=np.int64)
    blocks = np.zeros(len(hashes), dtype=np.int64)
    keyed = hashes & np.uint64(lsh_mask(table, band, band))
    extra: dict[LshKey, int] = {}
    for round_ in range(config.split_rounds):
        pairs = np.stack([more.astype(np.uint64), keyed], axis=1)
        unique, inverse, counts = np.unique(pairs, axis=0, return_inverse=True, return_counts=True)
        inverse = inverse.reshape(-1)
        open_ = np.ones(len(unique), dtype=bool)
        open_[inverse[blocks > 0]] = False
        crowded = (counts > config.group_bound) & ((unique[:, 0] > 0) | (round_ == 0)) & open_
        if not crowded.any():
            break
        added = np.zeros(len(unique), dtype=np.int64)
        for index in np.flatnonzero(crowded).tolist():
            key = (table, int(unique[index, 0]), int(unique[index, 1]))
            added[index] = extra[key] = round_split_bits(key, int(counts[index]), config, round_)
        change = added[inverse]
        blocks[change < 0] = -change[change < 0]
        grown = change > 0
        more[grown] += change[grown]
        for level in np.unique(more[grown]).tolist():
            chosen = grown & (more == level)
            keyed[chosen] = hashes[chosen] & np.uint64(lsh_mask(table, band, band + level))
    return more, keyed, blocks, extra


def best_neighbours(members: Iterable[tuple[int, Ranked]], max_bits: int) -> list[tuple[int, Ranked]]:
    """One LSH group of (hash, representative) with distinct hashes: (hash, best neighbour)
    for every hash with a neighbour within ``max_bits`` in the group."""
    items = sorted(members)
    hashes = [h for h, _ in items]
    best: dict[int, Ranked] = {}
    for i, j in near_pairs(hashes, max_bits):
        for a, b in ((i, j), (j, i)):
            if a not in best or items[b][1] < best[a]:
                best[a] = items[b][1]
    return [(hashes[i], best[i]) for i in sorted(best)]


def hash_marks(members: Iterable[Ranked], representative: Ranked,
               neighbour: Ranked | None) -> list[tuple[str, str]]:
    """(duplicate key, keeper key) for samples sharing one pHash: all but the representative
    go to the better of it and the hash's best neighbour; the representative goes to the
    neighbour only if that one is better."""
    marks = []
    for member in members:
        if member == representative:
            if neighbour is not None and neighbour < representative:
                marks.append((member.key, neighbour.key))
        else:
            keeper = min(representative, neighbour) if neighbour is not None else representative
            marks.append((member.key, keeper.key))
    return marks


def pairwise_marks(items: Sequence[tuple[str, int, Preference]], max_bits: int) -> dict[str, str]:
    """The keeper rule applied to every pair (brute force, quadratic): the reference."""
    best: dict[int, Ranked] = {}
    for i, j in brute_force_pairs([h for _, h, _ in items], max_bits):
        for a, b in ((i, j), (j, i)):
            ranked = Ranked(items[b][2], items[b][0])
            if ranked < (items[a][2], items[a][0]) and (a not in best or ranked < best[a]):
                best[a] = ranked
    return {items[a][0]: keeper.key for a, keeper in best.items()}


def near_duplicate_marks(items: Sequence[tuple[str, int, Preference]], config: NearDupConfig,
                         stats: dict[str, int] | None = None,
                         splits: dict[LshKey, int] | None = None) -> dict[str, str]:
    """The Beam job's near-duplicate steps in one process, one table at a time (tests and
    bench/dedup_scale.py): {duplicate key: keeper key}. ``stats`` gets the largest group and
    the number of pair checks, ``splits`` the crowded keys (for :func:`group_keys`)."""
    members: dict[int, list[Ranked]] = {}
    for key, value, pref in items:
        members.setdefault(value, []).append(Ranked(pref, key))
    reps = {value: min(ranked) for value, ranked in members.items()}
    hashes = np.array(sorted(reps), dtype=np.uint64)
    ranked_of = [reps[int(h)] for h in hashes]
    best: dict[int, Ranked] = {}
    largest = checks = 0
    for table in range(config.tables):
        more, keyed, blocks, found = table_keys(hashes, table, config)
        if splits is not None:
            splits.update(found)
        order = np.lexsort((keyed, more))
        key_sorted, more_sorted = keyed[order], more[order]
        starts = np.flatnonzero(np.r_[True, (key_sorted[1:] != key_sorted[:-1])
                                      | (more_sorted[1:] != more_sorted[:-1]), True])
        for lo, hi in zip(starts[:-1].tolist(), starts[1:].tolist()):
            in_key = order[lo:hi]
            count = int(blocks[in_key[0]])
            if count:  # a block-split key: every pair of blocks is a group
                block = np.array([block_of(int(v), count) for v in hashes[in_key].tolist()])
                groups = [in_key[(block == a) | (block == b)] for a in range(count)
                          for b in range(a + 1, count)]
            else:
                groups = [in_key]
            for group in groups:
                largest = max(largest, len(group))
                checks += len(group) * (len(group) - 1) // 2
                if len(group) < 2:
                    continue
                found_best = best_neighbours(
                    [(int(hashes[i]), ranked_of[i]) for i in group.tolist()], config.max_bits)
                for value, neighbour in found_best:
                    if value not in best or neighbour < best[value]:
                        best[value] = neighbour
    if stats is not None:
        stats.update(max_group=largest, pair_checks=checks)
    marks: dict[str, str] = {}
    for value, ranked in members.items():
        marks.update(hash_marks(ranked, reps[value], best.get(value)))
    return marks
