"""The elements of the shards Beam job (pipeline/shards/transform.py), named after their shape.

Rows travel as :data:`Record` dicts (the :data:`schemas.shards.SAMPLES` columns plus the
job's ``_round`` and ``_source``). Keyed PCollections hold Beam's plain ``(key, value)``
pairs with plain-tuple or string keys, which Beam encodes deterministically; the values and
the unkeyed elements are these NamedTuples::

    Record -> (sha256, HashedSample) -> (pHash, dedup.Ranked) -> (key, DuplicateMark)
    (block, Record) + (block, (key, DuplicateMark)) -> MarkedBlock -> (shard, ShardMember)
    MarkedBlock -> (block, kept count) -> KeptRanks (side input of the shard assignment)
"""

from __future__ import annotations

from typing import Any, NamedTuple

from pipeline.shards.dedup import Preference

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
