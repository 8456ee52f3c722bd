"""The compact shuffles of the shards job: packed dedup members and row states round-trip,
and records rebuilt from the download shards equal the records the steps made."""

from __future__ import annotations

import random

import pytest

from pipeline.shards.dedup import Ranked, preference
from pipeline.shards.elements import BlockPlan, DuplicateMark, KeptRanks
from pipeline.shards.joinback import (
    assign_rows,
    delta_of,
    latest_states,
    pack_state,
    plan_block,
    rebuild_block,
    shards_of_block,
    stored_record,
    unpack_states,
)
from pipeline.shards.near_duplicates import group_members
from pipeline.shards.packing import pack_member, read_varint, unpack_members, write_varint
from pipeline.shards.reader import format_key
from schemas import status as st

FIELDS = ["key", "status", "error_message", "caption", "phash", "clip_score", "duplicate_of",
          "attempts"]


def test_varints_round_trip_at_every_width():
    values = [0, 1, 127, 128, 300, 2**32, 2**63 - 1, 2**64 - 1]
    out = bytearray()
    for value in values:
        write_varint(out, value)
    at, back = 0, []
    for _ in values:
        value, at = read_varint(bytes(out), at)
        back.append(value)
    assert back == values and at == len(out)
    with pytest.raises(ValueError, match="negative"):
        write_varint(bytearray(), -1)


def test_dedup_members_round_trip_packed():
    rng = random.Random(7)
    members = []
    for _ in range(200):
        key = format_key(rng.randrange(10**9))
        pixels = rng.choice([None, 0, 1, 640, 4000])
        members.append((rng.getrandbits(64), Ranked(preference(pixels, pixels, key), key)))
    chunks = []
    for start in range(0, 200, 64):  # packed in chunks, as bundles flush them
        out = bytearray()
        for phash, ranked in members[start:start + 64]:
            pack_member(phash, ranked, out)
        chunks.append(bytes(out))
    assert group_members(chunks) == members
    assert list(unpack_members(chunks[0])) == members[:64]
    assert sum(map(len, chunks)) < 20 * len(members)  # a few bytes each, not a tuple


def test_a_member_with_a_key_that_is_not_decimal_is_refused():
    with pytest.raises(ValueError, match="'a12'"):
        pack_member(5, Ranked(preference(1, 1, "a12"), "a12"), bytearray())


def test_row_states_round_trip_with_their_deltas():
    states = [("0000000001", True, {}),
              ("0000000002", False, {"status": "filtered:min_size", "error_message": "small"}),
              ("0000000010", True, {"clip_score": 0.3125, "phash": "00ff00ff00ff00ff"}),
              ("0000000011", False, {"caption": None, "attempts": 2})]
    out = bytearray()
    for key, success, delta in states:
        pack_state(out, key, success, delta)
    assert list(unpack_states(bytes(out))) == states
    with pytest.raises(ValueError, match="'k1'"):
        pack_state(bytearray(), "k1", True, {})


def test_delta_holds_only_the_changed_fields_and_types():
    stored = stored_record({"key": "0000000001", "status": st.SUCCESS, "caption": "a cat",
                            "phash": "ab", "clip_score": 1.0}, FIELDS)
    assert stored["attempts"] == 1 and stored["duplicate_of"] is None
    assert delta_of(dict(stored), stored, FIELDS) == {}
    changed = {**stored, "status": "filtered:text", "clip_score": 1, "_round": 0}
    assert delta_of(changed, stored, FIELDS) == {"status": "filtered:text", "clip_score": 1}


def row(key: int, status: str = st.SUCCESS, **fields) -> dict:
    return {"key": format_key(key), "status": status, "caption": f"text {key}",
            "phash": f"{key:016x}", "clip_score": None, "error_message": None, **fields}


def chunk(round_: int, source: str, states) -> tuple[int, str, bytes]:
    out = bytearray()
    for key, success, delta in states:
        pack_state(out, format_key(key), success, delta)
    return round_, source, bytes(out)


def test_latest_attempt_wins_and_attempts_are_counted():
    chunks = [chunk(0, "r0/00000", [(1, False, {}), (2, True, {})]),
              chunk(1, "r1/00000", [(1, True, {"caption": "again"})])]
    latest = latest_states(reversed(chunks))  # order of arrival does not matter
    assert latest[format_key(1)] == (1, "r1/00000", True, {"caption": "again"}, 2)
    assert latest[format_key(2)] == (0, "r0/00000", True, {}, 1)


def test_rebuilt_block_equals_the_records_the_steps_made():
    stored = {"r0/00000": {r["key"]: r for r in [
        row(0), row(1), row(2, st.FAILED_TO_DOWNLOAD), row(3), row(4)]},
        "r1/00000": {r["key"]: r for r in [row(2)]}}
    # what the per-row steps made of each latest attempt (as the in-memory job had them)
    made = {0: {**stored_record(stored["r0/00000"][format_key(0)], FIELDS)},
            1: {**stored_record(stored["r0/00000"][format_key(1)], FIELDS),
                "status": "filtered:text", "error_message": "no text"},
            2: {**stored_record(stored["r1/00000"][format_key(2)], FIELDS), "clip_score": 0.5},
            3: {**stored_record(stored["r0/00000"][format_key(3)], FIELDS)},
            4: {**stored_record(stored["r0/00000"][format_key(4)], FIELDS)}}
    states0 = [(k, made[k]["status"] == st.SUCCESS and k != 2,
                {} if k == 2 else delta_of(made[k], stored_record(
                    stored["r0/00000"][format_key(k)], FIELDS), FIELDS)) for k in range(5)]
    states1 = [(2, True, delta_of(made[2], stored_record(stored["r1/00000"][format_key(2)],
                                                          FIELDS), FIELDS))]
    marks = [(format_key(3), DuplicateMark(st.NEAR, format_key(0))),
             (format_key(1), DuplicateMark(st.EXACT, format_key(0)))]  # 1 is no success
    plan = plan_block(0, [chunk(0, "r0/00000", states0), chunk(1, "r1/00000", states1)], marks)
    assert plan.kept == 3  # 0, 2 (its retry) and 4; 3 is a near duplicate
    records = rebuild_block(plan, FIELDS, lambda source: stored[source])
    assert [r["key"] for r in records] == [format_key(k) for k in range(5)]
    expected = dict(made)
    expected[2] = {**made[2], "attempts": 2}
    expected[3] = {**made[3], "status": st.duplicate_of(format_key(0)),
                   "duplicate_of": format_key(0),
                   "error_message": st.duplicate_message(st.NEAR, format_key(0))}
    for k, record in enumerate(records):
        assert {name: record.get(name) for name in FIELDS} == \
            {name: expected[k].get(name) for name in FIELDS}
    assert records[2]["_source"] == "r1/00000"


def test_a_row_missing_from_its_download_shard_is_named():
    plan = plan_block(0, [chunk(0, "r0/00007", [(5, True, {})])], [])
    with pytest.raises(ValueError, match=r"r0/00007.parquet: row 0000000005"):
        rebuild_block(plan, FIELDS, lambda source: {})


def test_each_row_is_written_to_exactly_one_of_its_blocks_shards():
    rng = random.Random(3)
    size, blocks = 7, []
    for block in range(6):  # blocks of 10 keys, some kept, some not
        blocks.append([{"key": format_key(block * 10 + i),
                        "status": st.SUCCESS if rng.random() < 0.6 else st.FAILED_TO_DOWNLOAD}
                       for i in range(10)])
    kept = [sum(r["status"] == st.SUCCESS for r in b) for b in blocks]
    first, running = {}, 0
    for block, count in enumerate(kept):
        first[block], running = running, running + count
    ranks = KeptRanks(first, running)
    # the whole job in one pass (the in-memory assignment) ...
    whole = {r["key"]: shard for b, records in enumerate(blocks)
             for shard, r in assign_rows(records, first[b], running, size)}
    # ... and per shard, from the blocks whose range reaches it
    per_shard: dict[str, int] = {}
    for b, records in enumerate(blocks):
        plan = BlockPlan(b, kept[b], [], [])
        for shard in shards_of_block(plan, ranks, size):
            for at, r in assign_rows(records, first[b], running, size):
                if at == shard:
                    assert r["key"] not in per_shard
                    per_shard[r["key"]] = shard
    assert per_shard == whole
    assert max(whole.values()) == (running - 1) // size
