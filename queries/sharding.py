"""Counts as sharded dictionaries, the form every count of the queries job travels in:
``(shard, {key: count})`` with ``shard = crc32(key) % shards``; how many shards a job
uses, and the combiners that sum them. No I/O."""

from __future__ import annotations

import math
import zlib
from collections import Counter
from collections.abc import Iterable, Iterator

import apache_beam as beam
from apache_beam.metrics import Metrics


# Counts travel as sharded dictionaries: (shard, {key: count}) with shard = crc32(key) % S.
# One Beam element per shard instead of one per word keeps Beam's per-element cost (~20 µs)
# off the hot path, while CombinePerKey over shards still spreads the work over workers.
# crc32, not hash(): Python's str hash differs between worker processes.
def shard_of(key: str, shards: int) -> int:
    return zlib.crc32(key.encode("utf-8")) % shards


def split_counts(counts: Counter, shards: int, key_of=None) -> Iterator[tuple[int, dict]]:
    """Split a dictionary into per-shard dictionaries (by ``key_of(key)``, default the key)."""
    parts: dict[int, dict] = {}
    for key, value in counts.items():
        shard = shard_of(key_of(key) if key_of else key, shards)
        part = parts.get(shard)
        if part is None:
            part = parts[shard] = {}
        part[key] = value
    return iter(sorted(parts.items()))


# One shard per this many bytes of XML keeps a shard's summed dictionary (distinct keys /
# shards) about the same size whatever the dump size: ~1M bigrams at enwiki's density.
XML_BYTES_PER_SHARD = 256 << 20
MIN_SHARDS = 256
COMPRESSION_RATIO = {".bz2": 4.5, ".gz": 3.5, ".xz": 5.0}  # enwiki pages-articles XML


def shards_for(sizes: Iterable[tuple[str, int]]) -> int:
    """Shard count for dump files ``(path, stored bytes)``: at least MIN_SHARDS, one per
    XML_BYTES_PER_SHARD of (estimated) XML, so per-shard state stays flat as dumps grow."""
    xml = 0.0
    for path, size in sizes:
        ratio = next((r for ext, r in COMPRESSION_RATIO.items() if path.lower().endswith(ext)),
                     1.0)
        xml += size * ratio
    return max(MIN_SHARDS, math.ceil(xml / XML_BYTES_PER_SHARD))


# Counts leave the sharded dictionaries as (key, int) elements, which Beam encodes with its
# 64-bit integer coder (2.78 on infers it from the hints below): a count past it, which only
# a hostile pageview line can give, saturates instead of failing the job.
MAX_COUNT = 2**63 - 1


def frequent(shard_counts, min_count: int) -> Iterator[tuple[str, int]]:
    """(shard, {key: count}) -> (key, count) for counts >= min_count, saturated at
    MAX_COUNT."""
    _, counts = shard_counts
    for key, count in counts.items():
        if count >= min_count:
            yield key, min(count, MAX_COUNT)


class MergeCounts(beam.CombineFn):
    """Sum of ``{key: count}`` dictionaries (one shard's partial counts)."""

    def create_accumulator(self) -> Counter:
        return Counter()

    def add_input(self, acc: Counter, value: dict) -> Counter:
        acc.update(value)
        return acc

    def merge_accumulators(self, accs: Iterable[Counter]) -> Counter:
        accs = iter(accs)
        total = next(accs)
        for acc in accs:
            total.update(acc)
        return total

    def extract_output(self, acc: Counter) -> dict:
        return dict(acc)


class SumDicts(MergeCounts):
    """Element-wise sum of ``{name: number}`` dictionaries (the job's counters), sorted."""

    def extract_output(self, acc: Counter) -> dict:
        return dict(sorted(acc.items()))


def observe(name: str, value: int) -> None:
    """The size of one piece of per-element state, as a Beam distribution (max/mean are
    what bench/scale.py reports as the job's own memory, apart from the runner's)."""
    Metrics.distribution("wit.queries", name).update(value)
