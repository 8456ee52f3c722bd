"""The elements of the shards Beam job (pipeline/shards/transform.py), named after their shape.

Rows travel as :data:`Record` dicts (the :data:`schemas.shards.SAMPLES` columns plus the
job's ``_round`` and ``_source``) only within the first stage; what crosses a shuffle is
compact (docs/scaling.md). Keyed PCollections hold Beam's plain ``(key, value)`` pairs with
plain-tuple or string keys, which Beam encodes deterministically; the values and the unkeyed
elements are these NamedTuples::

    Record -> (sha256, HashedSample) -> (pHash, dedup.Ranked) -> (key, DuplicateMark)
    Record -> (block, (round, source, packed states)) (joinback.py)
    (block, packed states) + (block, (key, DuplicateMark)) -> BlockPlan -> (shard, BlockPlan)
    BlockPlan -> (block, kept count) -> KeptRanks (side input of the shard assignment)
    (shard, [BlockPlan]) -> records read back from the download shards -> written shard

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


class SameHash(NamedTuple):
    """A sample in its (pHash, salt) group of near dedup: ``role`` 0 a member, 1 the hash's
    representative, 2 a best neighbour (near_duplicates.py)."""
    role: int
    ranked: Ranked


class BlockPlan(NamedTuple):
    """One block of keys (``block_size`` consecutive keys) without its records: its kept
    count, its rows' packed states per download shard ``(round, source, states)``
    (pipeline/shards/joinback.py) and its duplicate marks, sorted by key."""
    block: int
    kept: int
    chunks: list[tuple[int, str, bytes]]
    marks: list[tuple[str, DuplicateMark]]


class KeptRanks(NamedTuple):
    """The global rank of every block's first kept sample, and the number of kept samples."""
    first: dict[int, int]
    total: int


register_tuple_coder(HashedSample, DuplicateMark, SameHash, BlockPlan, KeptRanks, Ranked)
