"""Exact and near-duplicate detection as pure functions (the Beam job only groups).

Keeper rule (deterministic, independent of runner and order): among duplicates the sample
with the most original pixels wins, ties go to the smallest key. A sample is a duplicate of
the best-ranked sample it is near; this is decided pairwise (no transitive closure), so in a
chain A~B~C where A beats B beats C but A is not near C, both B and C are dropped.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from pipeline.shards.phash import first_shared_band, to_faiss_codes

# Below this many hashes a numpy all-pairs check is cheaper than building a faiss index.
FAISS_MIN_GROUP = 512

Preference = tuple[int, str]


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


def group_edges(band: int, members: Iterable[tuple[str, int, Preference]],
                max_bits: int) -> list[tuple[str, tuple[Preference, str]]]:
    """Within one LSH group (all members share band ``band``): for every near pair whose
    lowest shared band is this one, emit (worse key, (better preference, better key))."""
    items = sorted(members, key=lambda m: m[0])
    hashes = [h for _, h, _ in items]
    edges: list[tuple[str, tuple[Preference, str]]] = []
    for i, j in near_pairs(hashes, max_bits):
        if first_shared_band(hashes[i], hashes[j], max_bits) != band:
            continue  # reported by the group of the lower band
        (ki, _, pi), (kj, _, pj) = items[i], items[j]
        if pi <= pj:
            edges.append((kj, (pi, ki)))
        else:
            edges.append((ki, (pj, kj)))
    return edges
