"""The shards job's element types survive Beam's coders as themselves, travel as plain
tuples (not pickled objects), and the job's graph gives their PCollections those coders."""

from __future__ import annotations

import apache_beam as beam
import pytest
from apache_beam.coders import FastPrimitivesCoder, registry
from helpers.coders import accumulator_coder, named_tuples_in, pcollection_coders

from pipeline.shards.dedup import Ranked, preference
from pipeline.shards.elements import (
    DuplicateMark,
    HashedSample,
    KeptRanks,
    MarkedBlock,
    ShardMember,
)
from pipeline.shards.filters import FilterConfig
from pipeline.shards.transform import BuildShards, DownloadedShard, TransformConfig
from schemas import status as st

RECORD = {"key": "000000012", "status": st.SUCCESS, "caption": "a cat", "sha256": "ab" * 32,
          "original_width": 640, "original_height": 480, "clip_score": 0.25, "_round": 0}
ELEMENTS = [
    HashedSample(preference(640, 480, "000000012"), "000000012", "f0e1d2c3b4a59687"),
    Ranked(preference(None, None, "000000013"), "000000013"),
    DuplicateMark(st.NEAR, "000000012"),
    MarkedBlock(0, [RECORD, {**RECORD, "key": "000000013", "status": st.FAILED_TO_DOWNLOAD}]),
    MarkedBlock(3, []),
    ShardMember(RECORD, b"\xff\xd8 jpeg bytes"),
    ShardMember(RECORD, None),
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


def test_only_dict_free_elements_are_deterministic():
    deterministic = {cls.__name__ for cls in (HashedSample, Ranked, DuplicateMark, MarkedBlock,
                                               ShardMember, KeptRanks)
                     if registry.get_coder(cls).is_deterministic()}
    assert deterministic == {"HashedSample", "Ranked", "DuplicateMark"}


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
        "NearDups/LshKeys": Ranked, "NearDups/LshGroups": Ranked,
        "NearDups/BestInGroup": Ranked, "NearDups/SameHash/CoGroupByKeyImpl/GroupByKey": Ranked,
        "ExactDups": DuplicateMark, "NearDups/NearMarks": DuplicateMark,
        "Marks": DuplicateMark, "Mark": MarkedBlock, "KeptRanks": KeptRanks,
        "Assign": ShardMember, "ByShard": ShardMember,
    }
    for step, cls in expected.items():
        assert list(named_tuples_in(coders[f"BuildShards/{step}"])) == [cls], step


def test_min_combiners_keep_ranked_accumulators_as_plain_tuples():
    pipeline = build_graph()
    for step in ("Representatives", "BestNeighbour"):
        accumulator = accumulator_coder(pipeline, f"BuildShards/NearDups/{step}")
        assert list(named_tuples_in(accumulator)) == [Ranked], step
