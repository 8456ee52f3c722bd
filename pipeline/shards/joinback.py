"""Rows shuffled as compact states, full records joined back from the download shards.

The shards job used to shuffle every full record twice (by block to meet its duplicate
marks, then by output shard with its image), and Beam's in-process runner holds a whole
shuffle in memory. Now a row crosses the shuffles as a *state* of a few bytes: its key, its
download round, whether it is still a success after the per-row steps (filters,
decontamination, CLIP), and the *delta* -- the fields those steps changed relative to the
row as stored in its download shard's Parquet (usually none). The writer of an output shard
reads the rows of its blocks back from the download shards (:func:`rebuild_block`), applies
each row's delta, latest attempt and duplicate mark, and so writes the very records the
in-memory job wrote (docs/scaling.md, "Where the bytes are").

Packed states: per row the varints of the key's width and number (keys are the job's
zero-padded decimal keys), one success byte, the varint length of the pickled delta and the
delta (nothing when empty).
"""

from __future__ import annotations

import math
import pickle
from collections.abc import Iterable, Iterator
from typing import Any

from pipeline.shards.elements import BlockPlan, DuplicateMark, KeptRanks, Record
from pipeline.shards.packing import read_varint, write_varint
from schemas import status as st

# the fields ReadDownloadedShard sets on every row besides the stored columns
READ_DEFAULTS = {"duplicate_of": None, "attempts": 1}


def stored_record(row: dict[str, Any], fields: list[str]) -> Record:
    """A download shard's Parquet row as the job's record (before any step)."""
    record: Record = {name: row.get(name) for name in fields}
    record.update(READ_DEFAULTS)
    return record


def delta_of(record: Record, stored: Record, fields: list[str]) -> dict[str, Any]:
    """The fields of ``record`` that differ from the stored row's (``stored_record``)."""
    return {name: record.get(name) for name in fields
            if _differs(record.get(name), stored.get(name))}


def _differs(a: Any, b: Any) -> bool:
    # type too: 1 and True or 1.0 compare equal but are written differently
    return type(a) is not type(b) or a != b


def key_number(key: str) -> int:
    if not (key.isascii() and key.isdigit()):
        raise ValueError(f"key {key!r}: the shards job's keys are decimal digits")
    return int(key)


def pack_state(out: bytearray, key: str, success: bool, delta: dict[str, Any]) -> None:
    write_varint(out, len(key))
    write_varint(out, key_number(key))
    out.append(1 if success else 0)
    encoded = pickle.dumps(delta, protocol=5) if delta else b""
    write_varint(out, len(encoded))
    out += encoded


def unpack_states(data: bytes) -> Iterator[tuple[str, bool, dict[str, Any]]]:
    """(key, success, delta) of every state packed in ``data``, in order."""
    at, end = 0, len(data)
    while at < end:
        width, at = read_varint(data, at)
        number, at = read_varint(data, at)
        success = data[at] == 1
        size, at = read_varint(data, at + 1)
        delta = pickle.loads(data[at:at + size]) if size else {}
        at += size
        yield f"{number:0{width}d}", success, delta


def latest_states(chunks: Iterable[tuple[int, str, bytes]]
                  ) -> dict[str, tuple[int, str, bool, dict[str, Any], int]]:
    """key -> (round, source, success, delta, attempts) of its latest attempt, from the
    packed chunks ``(round, source, states)`` of one block."""
    found: dict[str, tuple[int, str, bool, dict[str, Any], int]] = {}
    for round_, source, packed in chunks:
        for key, success, delta in unpack_states(packed):
            before = found.get(key)
            attempts = 1 + (before[4] if before else 0)
            if before is None or round_ > before[0]:
                found[key] = (round_, source, success, delta, attempts)
            else:
                found[key] = (*before[:4], attempts)
    return found


def first_marks(marks: Iterable[tuple[str, DuplicateMark]]) -> dict[str, DuplicateMark]:
    """One mark per key (the least: deterministic when a key got two)."""
    found: dict[str, DuplicateMark] = {}
    for key, mark in sorted(marks):
        found.setdefault(key, mark)
    return found


def plan_block(block: int, chunks: Iterable[tuple[int, str, bytes]],
               marks: Iterable[tuple[str, DuplicateMark]]) -> BlockPlan:
    """One block's states and marks (the ``Blocks`` join) as its plan, with its kept count."""
    chunks = sorted(chunks)
    marked = first_marks(marks)
    kept = sum(1 for key, state in latest_states(chunks).items()
               if state[2] and key not in marked)
    return BlockPlan(block, kept, chunks, sorted(marked.items()))


def shards_of_block(plan: BlockPlan, ranks: KeptRanks, size: int) -> range:
    """The output shards that rows of this block go to (kept rows by global rank, dropped
    rows beside the kept row before them)."""
    last = max(1, math.ceil(ranks.total / size)) - 1
    first = ranks.first.get(plan.block, 0)
    return range(min(first // size, last), min((first + plan.kept) // size, last) + 1)


def rebuild_block(plan: BlockPlan, fields: list[str],
                  stored_rows: Any) -> list[Record]:
    """The block's records sorted by key, as the in-memory job had them after the duplicate
    marks: each row's stored record from ``stored_rows(source)`` (key -> Parquet row, of a
    download shard), its delta and attempts applied, its mark applied if a success. Records
    carry ``_source`` (for their image)."""
    marks = dict(plan.marks)
    records = []
    for key, (_, source, _, delta, attempts) in sorted(latest_states(plan.chunks).items()):
        row = stored_rows(source).get(key)
        if row is None:
            raise ValueError(f"{source}.parquet: row {key} is gone (the download shard "
                             "changed while the job ran)")
        record = {**stored_record(row, fields), **delta, "attempts": attempts,
                  "_source": source}
        mark = marks.get(key)
        if mark is not None and record["status"] == st.SUCCESS:
            record.update(status=st.duplicate_of(mark.keeper), duplicate_of=mark.keeper,
                          error_message=st.duplicate_message(mark.kind, mark.keeper))
        records.append(record)
    return records


def assign_rows(records: list[Record], first_rank: int, total: int, size: int
                ) -> Iterator[tuple[int, Record]]:
    """(output shard, record) of one block's records sorted by key: a kept row by its
    global rank, a dropped row beside the kept row before it."""
    last = max(1, math.ceil(total / size)) - 1
    rank = first_rank
    for record in records:
        shard = min(rank // size, last)
        if record["status"] == st.SUCCESS:
            rank += 1
        yield shard, record
