"""The elements of the shards Beam job (pipeline/shards/transform.py), named after their shape.

Rows travel as :data:`Record` dicts (the :data:`schemas.shards.SAMPLES` columns plus the
job's ``_round`` and ``_source``). Keyed PCollections hold Beam's plain ``(key, value)``
pairs with plain-tuple or string keys, which Beam encodes deterministically; the values and
the unkeyed elements are these NamedTuples::

    Record -> (sha256, HashedSample) -> (pHash, dedup.Ranked) -> (key, DuplicateMark)
    (block, Record) + (block, (key, DuplicateMark)) -> MarkedBlock -> (shard, ShardMember)
    MarkedBlock -> (block, kept count) -> KeptRanks (side input of the shard assignment)

The NamedTuples travel as plain tuples (``pipeline.core.beam.register_tuple_coder``; Beam
would pickle them): the transforms that make them declare their output types, which is how
Beam finds the coder. The one exception is the ``Blocks`` join, whose inputs (records and
marks) Beam flattens into one union type: a DuplicateMark is pickled there, one per duplicate.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from pipeline.core.beam import register_tuple_coder
from pipeline.shards.dedup import Preference, Ranked

Record = dict[str, Any]


class HashedSample(NamedTuple):
    """What dedup needs of a kept row (keyed by its sha256); orders as its preference."""
    preference: Preference
    key: str
    phash: str


class DuplicateMark(NamedTuple):
    """Keyed by the duplicate's key: ``st.EXACT`` or ``st.NEAR``, and the kept sample."""
    kind: str
    keeper: str


class MarkedBlock(NamedTuple):
    """One block of keys (``block_size`` consecutive keys): its records sorted by key,
    duplicate marks applied."""
    block: int
    records: list[Record]


class ShardMember(NamedTuple):
    """A row of one output shard (keyed by the shard) and its image if kept."""
    record: Record
    image: bytes | None


class KeptRanks(NamedTuple):
    """The global rank of every block's first kept sample, and the number of kept samples."""
    first: dict[int, int]
    total: int


register_tuple_coder(HashedSample, DuplicateMark, MarkedBlock, ShardMember, KeptRanks, Ranked)
