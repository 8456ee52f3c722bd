"""The shards job's element types survive Beam's coders as themselves, travel as plain
tuples (not pickled objects), and the job's graph gives their PCollections those coders."""

from __future__ import annotations

import apache_beam as beam
import pytest
from apache_beam.coders import FastPrimitivesCoder, registry
from helpers.coders import accumulator_coder, named_tuples_in, pcollection_coders

from pipeline.shards.dedup import Ranked, preference
from pipeline.shards.elements import (
    BlockPlan,
    DuplicateMark,
    HashedSample,
    KeptRanks,
    SameHash,
)
from pipeline.shards.filters import FilterConfig
from pipeline.shards.transform import BuildShards, DownloadedShard, TransformConfig
from schemas import status as st

ELEMENTS = [
    HashedSample(preference(640, 480, "000000012"), "000000012", "f0e1d2c3b4a59687"),
    Ranked(preference(None, None, "000000013"), "000000013"),
    DuplicateMark(st.NEAR, "000000012"),
    BlockPlan(0, 1, [(0, "/out/round0/00000", b"\x0a\x0c\x01\x00")], []),
    KeptRanks({0: 0, 1: 7}, 12),
]



@pytest.mark.parametrize("element", ELEMENTS, ids=lambda e: type(e).__name__)
def test_elements_round_trip_as_plain_tuples(element):
    coder = registry.get_coder(type(element))
    encoded = coder.encode(element)
    back = coder.decode(encoded)
    assert back == element and type(back) is type(element)
    assert encoded == FastPrimitivesCoder().encode(tuple(element))
    assert type(element).__name__.encode() not in encoded  # the pickling fallback names it
    assert type(element).__name__.encode() in FastPrimitivesCoder().encode(element)


def test_a_same_hash_value_travels_as_plain_tuples():
    value = SameHash(1, Ranked(preference(3, 4, "000000014"), "000000014"))
    coder = registry.get_coder(SameHash)
    encoded = coder.encode(value)
    assert coder.decode(encoded) == value and type(coder.decode(encoded).ranked) is Ranked
    assert b"Ranked" not in encoded and b"SameHash" not in encoded


def test_a_block_plan_carries_its_marks_as_plain_tuples():
    plan = BlockPlan(3, 0, [(1, "/out/round1/00002", b"")],
                     [("000000013", DuplicateMark(st.EXACT, "000000012"))])
    coder = registry.get_coder(BlockPlan)
    encoded = coder.encode(plan)
    assert coder.decode(encoded) == plan
    assert type(coder.decode(encoded).marks[0][1]) is DuplicateMark
    assert b"DuplicateMark" not in encoded and b"BlockPlan" not in encoded


def test_only_dict_free_elements_are_deterministic():
    deterministic = {cls.__name__ for cls in (HashedSample, Ranked, DuplicateMark, BlockPlan,
                                               KeptRanks)
                     if registry.get_coder(cls).is_deterministic()}
    assert deterministic == {"HashedSample", "Ranked", "DuplicateMark", "BlockPlan"}


def build_graph() -> beam.Pipeline:
    config = TransformConfig(out_folder="/nonexistent/out", filters=FilterConfig(),
                             near_dup_bits=10, contamination_bits=8, samples_per_shard=100,
                             block_size=100, encode_format="jpg", resize_mode="border")
    pipeline = beam.Pipeline()
    _ = pipeline | "BuildShards" >> BuildShards(
        config, [DownloadedShard(0, "/nonexistent", "00000")], [])
    return pipeline


def test_the_job_gives_its_pcollections_the_element_coders():
    coders = pcollection_coders(build_graph())
    expected = {
        "Hashes": HashedSample, "ShaGroups": HashedSample, "Keepers": Ranked,
        "NearDups/BestInGroup": Ranked, "NearDups/SameHash": SameHash,
        "ExactDups": DuplicateMark, "NearDups/NearMarks": DuplicateMark,
        "Marks": DuplicateMark, "Plan": BlockPlan, "KeptRanks": KeptRanks,
        "Assign": BlockPlan, "ByShard": BlockPlan,
    }
    for step, cls in expected.items():
        assert list(named_tuples_in(coders[f"BuildShards/{step}"])) == [cls], step


def test_min_combiners_keep_ranked_accumulators_as_plain_tuples():
    pipeline = build_graph()
    for step in ("Representatives", "BestNeighbour"):
        accumulator = accumulator_coder(pipeline, f"BuildShards/NearDups/{step}")
        assert list(named_tuples_in(accumulator)) == [Ranked], step
