"""``NearDuplicates``: the near-duplicate composite of the shards job (pHash LSH tables with
bounded groups). The pure logic (keys, splits, the keeper rule) is in dedup.py, which also
describes the design; the element types are in elements.py."""

from __future__ import annotations

import math
import zlib
from collections.abc import Iterable, Iterator
from typing import Any

import apache_beam as beam
from apache_beam.transforms.window import GlobalWindows

from pipeline.core.beam import MinOf
from pipeline.shards.dedup import (
    NearDupConfig,
    Ranked,
    best_neighbours,
    group_keys,
    hash_marks,
    lsh_key,
    round_split_bits,
)
from pipeline.shards.elements import DuplicateMark, SameHash
from pipeline.shards.packing import pack_member, unpack_members
from pipeline.shards.phash import from_hex, to_hex
from schemas import status as st


def salt(key: str, salts: int) -> int:
    """Which of a crowded pHash's sub-groups a sample joins (crc32: the same everywhere)."""
    return zlib.crc32(key.encode()) % salts if salts > 1 else 0


MEMBER, REPRESENTATIVE, NEIGHBOUR = 0, 1, 2


def same_hash_marks(item: tuple[tuple[str, int], Iterable[SameHash]]
                    ) -> Iterator[tuple[str, DuplicateMark]]:
    """One (pHash, salt) group of samples with the hash's representative and best neighbour.
    The grouped values are iterated once, never indexed (lists on some Beam versions, lazy
    on others)."""
    members: list[Ranked] = []
    representative: Ranked | None = None
    best: Ranked | None = None
    for role, ranked in item[1]:
        if role == MEMBER:
            members.append(ranked)
        elif role == REPRESENTATIVE:
            representative = ranked
        elif best is None or ranked < best:
            best = ranked
    assert representative is not None, f"pHash {item[0][0]}: no representative"
    for key, keeper in hash_marks(members, representative, best):
        yield key, DuplicateMark(st.NEAR, keeper)


class PackGroups(beam.DoFn):
    """(pHash, Ranked) representatives -> (LSH group key, packed members): every group the
    hash joins gets the member appended to its ``bytearray`` (packing.py), and the packed
    groups leave when the bundle ends or when they hold ``flush_bytes``. The shuffle after
    then holds a few bytes per member instead of one Python tuple per member and table:
    the job's largest buffer (docs/scaling.md). Any split into chunks gives the same groups."""

    def __init__(self, config: NearDupConfig, flush_bytes: int = 32 << 20):
        self.config, self.flush_bytes = config, flush_bytes
        self._groups: dict[Any, bytearray] = {}
        self._bytes = 0

    def start_bundle(self) -> None:
        self._groups, self._bytes = {}, 0

    def process(self, kv: tuple[str, Ranked], extra: dict) -> Iterator[tuple[Any, bytes]]:
        value = from_hex(kv[0])
        member = bytearray()
        pack_member(value, kv[1], member)
        for key in group_keys(value, self.config, extra):
            found = self._groups.get(key)
            if found is None:
                found = self._groups[key] = bytearray()
            found += member
            self._bytes += len(member)
        if self._bytes >= self.flush_bytes:
            yield from self._flush()

    def _flush(self) -> Iterator[tuple[Any, bytes]]:
        groups, self._groups, self._bytes = self._groups, {}, 0
        for key in sorted(groups):
            yield key, bytes(groups[key])

    def finish_bundle(self) -> Iterator[Any]:
        for element in self._flush():
            yield GlobalWindows.windowed_value(element)


def group_members(chunks: Iterable[bytes]) -> list[tuple[int, Ranked]]:
    """The (pHash, Ranked) members of one LSH group from its packed chunks."""
    return [member for chunk in chunks for member in unpack_members(chunk)]


class NearDuplicates(beam.PTransform):
    """(pHash, Ranked) of the exact-dedup keepers -> (key, near DuplicateMark).
    Every group is bounded: same-hash samples meet only through combiners and salted
    sub-groups of ``group_bound``, LSH keys with more representatives are split
    (pipeline/shards/dedup.py has the design)."""

    def __init__(self, config: NearDupConfig):
        super().__init__()
        self.config = config

    def expand(self, keepers):
        cfg, bound = self.config, self.config.group_bound
        reps = keepers | "Representatives" >> beam.CombinePerKey(MinOf(Ranked))
        crowded_hashes = beam.pvalue.AsDict(
            keepers
            | "PerHash" >> beam.Map(lambda kv: (kv[0], 1))
            | "HashSizes" >> beam.CombinePerKey(sum)
            | "CrowdedHashes" >> beam.Filter(lambda kv: kv[1] > bound)
            | "Salts" >> beam.Map(lambda kv: (kv[0], math.ceil(kv[1] / bound))))
        # count-and-split rounds: round r counts the keys the splits so far give (after the
        # first round only the split ones) and splits those still above the bound
        splits = [keepers.pipeline | "NoSplits" >> beam.Create([])]
        for round_ in range(cfg.split_rounds):
            splits.append(
                reps
                | f"Keys{round_}" >> beam.FlatMap(
                    lambda kv, extra, r: [(k, 1) for k in (
                        lsh_key(from_hex(kv[0]), t, cfg, extra) for t in range(cfg.tables))
                        if (r == 0 or k[1] > 0) and k not in extra],
                    beam.pvalue.AsDict(splits | f"SplitsBefore{round_}" >> beam.Flatten()), round_)
                | f"KeySizes{round_}" >> beam.CombinePerKey(sum)
                | f"Crowded{round_}" >> beam.Filter(lambda kv: kv[1] > bound)
                | f"SplitBits{round_}" >> beam.Map(
                    lambda kv, r: (kv[0], round_split_bits(kv[0], kv[1], cfg, r)), round_))
        crowded_keys = beam.pvalue.AsDict(splits | "AllSplits" >> beam.Flatten())
        neighbours = (
            reps
            # group keys stay Any (Beam's default coder): their ints reach 2**64, past VarInt's
            | "LshKeys" >> beam.ParDo(PackGroups(cfg), crowded_keys)
            .with_output_types(tuple[Any, bytes])
            | "LshGroups" >> beam.GroupByKey()
            | "BestInGroup" >> beam.FlatMap(
                lambda kv: [(to_hex(value), best) for value, best in best_neighbours(
                    group_members(kv[1]), cfg.max_bits)]
            ).with_output_types(tuple[str, Ranked])
            | "BestNeighbour" >> beam.CombinePerKey(MinOf(Ranked))
        )

        def fan_out(kv, salts, role):  # a per-hash value to every sub-group of its hash
            return [((kv[0], s), SameHash(role, kv[1])) for s in range(salts.get(kv[0], 1))]

        # one SameHash per value (its coder is opaque to the runner: one bytes object in
        # its shuffle, where CoGroupByKey's (tag, value) tuples were ~3x the memory)
        salted = tuple[tuple[str, int], SameHash]

        return (
            (keepers | "MemberGroups" >> beam.Map(
                lambda kv, salts: ((kv[0], salt(kv[1].key, salts.get(kv[0], 1))),
                                   SameHash(MEMBER, kv[1])),
                crowded_hashes).with_output_types(salted),
             reps | "RepresentativeGroups" >> beam.FlatMap(
                 fan_out, crowded_hashes, REPRESENTATIVE).with_output_types(salted),
             neighbours | "NeighbourGroups" >> beam.FlatMap(
                 fan_out, crowded_hashes, NEIGHBOUR).with_output_types(salted))
            | "SameHashValues" >> beam.Flatten().with_output_types(salted)
            | "SameHash" >> beam.GroupByKey()
            | "NearMarks" >> beam.FlatMap(same_hash_marks).with_output_types(tuple[str, DuplicateMark])
        )
