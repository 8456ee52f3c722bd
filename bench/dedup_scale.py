"""Benchmark: near-duplicate search cost as the number of hashes grows, old vs new.

Hashes: realistic clustered pHashes of real images (bench/dedup_hashes.py: OpenClipart
pictures, crops, pairs, text-only and near-blank pictures, and their perturbed copies),
the first N of one seeded list, cached under .cache/. Preferences (pixel counts) are drawn
from a seeded generator.

  old  the previous search: 11 pigeonhole bands of 5-6 bits, all pairs in each band group
       (faiss range search from 512 members), every sample in the groups;
  new  pipeline.shards.dedup.near_duplicate_marks: same-hash collapse, 40 LSH tables of 12
       bits, crowded keys split to <= --bound, best neighbour per group, marks per hash.

Per N: CPU-seconds (process time; the machine may be shared, so the load average is
printed), the largest group, the pair checks, and on a --sample of samples checked against
all N by brute force: recall of the pairs within --bits (pairs of distinct hashes that
share a group; equal hashes are found by the collapse), precision of the marks (keeper
within --bits and better ranked) and agreement of the marks with the exact pairwise rule.
The old search's CPU is measured up to --old-max hashes (it grows quadratically); its pair
checks are counted at every N. The last line fits CPU ~ N^k.

--beam SIZES also runs the Beam composite (pipeline.shards.near_duplicates.NearDuplicates) on the
in-process runner and prints its CPU per record.

Usage: python bench/dedup_scale.py [--sizes 50000,200000,800000] [--old-max 200000]
       [--sample 1000] [--bits 10] [--bound 2000] [--tables 40] [--beam 20000,80000]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]

from dedup_hashes import realistic_hashes  # noqa: E402
from timing import peak_rss_mb  # noqa: E402

from pipeline.shards.dedup import (  # noqa: E402
    NearDupConfig,
    group_keys,
    near_duplicate_marks,
    near_pairs,
)

HASH_BITS = 64


def old_bands(bits: int) -> list[tuple[int, int]]:
    """The previous design's ``bits + 1`` contiguous (shift, width) bands."""
    bands = bits + 1
    widths = [HASH_BITS // bands + (1 if i < HASH_BITS % bands else 0) for i in range(bands)]
    slices, shift = [], HASH_BITS
    for width in widths:
        shift -= width
        slices.append((shift, width))
    return slices


def old_search(hashes: np.ndarray, bits: int, run: bool) -> tuple[float, int, int]:
    """(CPU-s or nan, largest group, pair checks) of the previous band search."""
    start = time.process_time()
    largest = checks = 0
    for shift, width in old_bands(bits):
        band = (hashes >> np.uint64(shift)) & np.uint64((1 << width) - 1)
        order = np.argsort(band, kind="stable")
        _, starts = np.unique(band[order], return_index=True)
        for lo, hi in zip(starts.tolist(), [*starts[1:].tolist(), len(order)]):
            largest = max(largest, hi - lo)
            checks += (hi - lo) * (hi - lo - 1) // 2
            if run and hi - lo > 1:
                near_pairs(hashes[order[lo:hi]], bits)
    return (time.process_time() - start) if run else float("nan"), largest, checks


def exact_neighbours(sample: np.ndarray, hashes: np.ndarray, bits: int) -> list[np.ndarray]:
    """Indices of every hash within ``bits`` of each sample hash (brute force)."""
    found = []
    for start in range(0, len(sample), 64):
        block = np.bitwise_count(sample[start:start + 64, None] ^ hashes[None, :])
        found.extend(np.flatnonzero(row <= bits) for row in block)
    return found


def quality(hashes: np.ndarray, prefs: list, keys: list[str], marks: dict[str, str],
            extra: dict, config: NearDupConfig, sample_size: int, seed: int) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    sample = np.sort(rng.choice(len(hashes), min(sample_size, len(hashes)), replace=False))
    index_of = {k: i for i, k in enumerate(keys)}
    true_pairs = found_pairs = agree = precise = marked = 0
    sample_hashes = hashes[sample]
    for i, near in zip(sample.tolist(), exact_neighbours(sample_hashes, hashes, config.max_bits)):
        mine = set(group_keys(int(hashes[i]), config, extra))
        others = {int(hashes[j]) for j in near.tolist()} - {int(hashes[i])}
        for other in others:
            true_pairs += 1
            found_pairs += bool(mine & set(group_keys(other, config, extra)))
        better = [(prefs[j], keys[j]) for j in near.tolist() if j != i and (prefs[j], keys[j]) < (prefs[i], keys[i])]
        expected = min(better)[1] if better else None
        got = marks.get(keys[i])
        agree += got == expected
        if got is not None:
            marked += 1
            j = index_of[got]
            precise += (int(hashes[i]) ^ int(hashes[j])).bit_count() <= config.max_bits and \
                (prefs[j], keys[j]) < (prefs[i], keys[i])
    return {"recall": found_pairs / max(1, true_pairs), "pairs": true_pairs,
            "precision": precise / max(1, marked), "agree": agree / len(sample)}


def beam_cost(items: list, config: NearDupConfig) -> tuple[float, int]:
    """CPU-seconds and marks of the Beam composite (NearDuplicates) over ``items`` on the
    in-process runner (this process: its CPU includes the runner's own shuffle)."""
    import apache_beam as beam

    from pipeline.core.beam import make_pipeline
    from pipeline.shards.dedup import Ranked
    from pipeline.shards.near_duplicates import NearDuplicates
    from pipeline.shards.phash import to_hex

    with tempfile.TemporaryDirectory() as tmp:
        start = time.process_time()
        with make_pipeline([]) as pipeline:
            _ = (pipeline
                 | beam.Create([(to_hex(value), Ranked(pref, key)) for key, value, pref in items])
                 | NearDuplicates(config)
                 | beam.combiners.Count.Globally()
                 | beam.io.WriteToText(f"{tmp}/count", shard_name_template=""))
        cpu = time.process_time() - start
        return cpu, int(Path(f"{tmp}/count").read_text())


def fit(sizes: list[int], values: list[float]) -> float:
    pairs = [(n, v) for n, v in zip(sizes, values) if v == v and v > 0]
    if len(pairs) < 2:
        return float("nan")
    return float(np.polyfit(np.log([n for n, _ in pairs]), np.log([v for _, v in pairs]), 1)[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="50000,200000,800000")
    parser.add_argument("--old-max", type=int, default=200_000)
    parser.add_argument("--sample", type=int, default=1000)
    parser.add_argument("--bits", type=int, default=10)
    parser.add_argument("--bound", type=int, default=2000)
    parser.add_argument("--tables", type=int, default=NearDupConfig.tables)
    parser.add_argument("--beam", default="", help="sizes for the Beam composite's cost, e.g. 20000,80000")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    config = NearDupConfig(max_bits=args.bits, group_bound=args.bound, tables=args.tables)
    everything = realistic_hashes(max(sizes))
    rows = defaultdict(list)
    print(f"load average at start: {os.getloadavg()[0]:.1f} (2 cores)")
    print(f"{'N':>9} {'distinct':>9} {'old cpu_s':>9} {'old max_group':>13} {'old checks':>12} "
          f"{'new cpu_s':>9} {'new max_group':>13} {'new checks':>11} {'recall':>7} "
          f"{'precision':>9} {'agree':>6} {'pairs':>6} {'load':>5}")
    for n in sizes:
        hashes = everything[:n]
        rng = np.random.default_rng(n)
        pixels = rng.integers(200, 2000, n) * rng.integers(200, 2000, n)
        keys = [f"{i:09d}" for i in range(n)]
        prefs = [(-int(p), k) for p, k in zip(pixels.tolist(), keys)]
        items = [(k, int(h), p) for k, h, p in zip(keys, hashes.tolist(), prefs)]
        old_cpu, old_max, old_checks = old_search(hashes, args.bits, n <= args.old_max)
        stats: dict[str, int] = {}
        start = time.process_time()
        splits: dict = {}
        marks = near_duplicate_marks(items, config, stats, splits)
        new_cpu = time.process_time() - start
        q = quality(hashes, prefs, keys, marks, splits, config, args.sample, seed=n)
        load = os.getloadavg()[0]
        for name, value in [("old", old_cpu), ("new", new_cpu), ("old_checks", old_checks),
                            ("new_checks", stats["pair_checks"])]:
            rows[name].append(value)
        print(f"{n:>9} {len(np.unique(hashes)):>9} {old_cpu:>9.1f} {old_max:>13} {old_checks:>12.3g} "
              f"{new_cpu:>9.1f} {stats['max_group']:>13} {stats['pair_checks']:>11.3g} "
              f"{q['recall']:>7.4f} {q['precision']:>9.3f} {q['agree']:>6.3f} {q['pairs']:>6} {load:>5.1f}",
              flush=True)
    print(f"fitted exponent (CPU ~ N^k): old {fit(sizes, rows['old']):.2f}, new {fit(sizes, rows['new']):.2f}; "
          f"pair checks: old {fit(sizes, rows['old_checks']):.2f}, new {fit(sizes, rows['new_checks']):.2f}")
    print(f"new CPU per sample at N={sizes[-1]}: {1e6 * rows['new'][-1] / sizes[-1]:.0f} us")
    beam_sizes = [int(s) for s in args.beam.split(",") if s]
    beam_cpu = []
    for n in beam_sizes:
        hashes = everything[:n]
        items = [(f"{i:09d}", int(h), (-(i % 7), f"{i:09d}")) for i, h in enumerate(hashes.tolist())]
        cpu, marks = beam_cost(items, config)
        beam_cpu.append(cpu)
        print(f"Beam NearDuplicates, in-process runner, N={n}: {cpu:.1f} CPU-s, "
              f"{1e6 * cpu / n:.0f} us per record, {marks} marks, peak RSS "
              f"{peak_rss_mb():.0f} MB, "
              f"load {os.getloadavg()[0]:.1f}", flush=True)
    if len(beam_sizes) > 1:
        print(f"Beam fitted exponent: {fit(beam_sizes, beam_cpu):.2f}")


if __name__ == "__main__":
    main()
