"""The status vocabulary (schemas/status.py) and the one ``_stats.json`` shape."""

from __future__ import annotations

from pipeline.core.net import row_status
from schemas import status as st
from schemas.shards import SHARD_STATS_KEYS, shard_stats


def test_constructors_and_parsers_round_trip():
    assert st.filtered(st.MIN_SIDE) == "filtered:min_side"
    assert st.filtered_reason(st.filtered(st.CLIP_SCORE)) == "clip_score"
    assert st.duplicate_of("0000000007") == "duplicate_of:0000000007"
    assert st.skipped("non_html") == "skipped:non_html"
    assert st.skipped_reason(st.skipped("bad_json")) == "bad_json"
    assert st.is_filtered("filtered:language") and not st.is_filtered("failed_to_download")
    assert st.is_duplicate(st.duplicate_of("1")) and not st.is_duplicate(st.SUCCESS)
    message = st.duplicate_message(st.EXACT, "0000000003")
    assert message == "exact duplicate of 0000000003" and st.duplicate_kind(message) == st.EXACT
    assert st.duplicate_kind(None) == st.NEAR


def test_status_groups():
    groups = {s: st.status_group(s) for s in
              ("success", "failed_to_download", "failed_to_resize", "filtered:min_side",
               "contaminated", "duplicate_of:0000000001")}
    assert groups == {"success": "success", "failed_to_download": "failed_to_download",
                      "failed_to_resize": "failed_to_resize", "filtered:min_side": "filtered",
                      "contaminated": "contaminated", "duplicate_of:0000000001": "duplicate"}
    assert all(any(s.startswith(p) for p in st.STATUS_PREFIXES) for s in groups)


def test_network_failures_map_to_download_statuses():
    assert row_status("robots_disallowed") == "filtered:robots_txt"
    assert row_status("blocked_private_address") == "filtered:blocked_address"
    assert row_status("blocked_userinfo") == "filtered:blocked_userinfo"
    assert row_status("http_404") in st.RETRYABLE


def test_shard_stats_shape():
    statuses = ["success"] * 3 + ["filtered:language", "filtered:min_side", "filtered:language",
                                  "duplicate_of:0000000001", "duplicate_of:0000000002",
                                  "contaminated", "failed_to_download"]
    stats = shard_stats(statuses, ["language", "caption_chars", "language"])
    assert tuple(stats) == SHARD_STATS_KEYS
    assert stats == {
        "count": 10, "successes": 3, "failed_to_download": 1, "failed_to_resize": 0,
        "filtered": 3, "duplicates": 2, "contaminated": 1,
        "status_dict": {"contaminated": 1, "failed_to_download": 1, "filtered:language": 2,
                        "filtered:min_side": 1, "success": 3},
        # texts dropped from images that kept another, by reason (F1)
        "filtered_texts": {"caption_chars": 1, "language": 2},
    }
    assert shard_stats(statuses)["filtered_texts"] == {}
    timed = shard_stats(statuses, duration=1.5, start_time=10.0, end_time=11.5)
    assert list(timed) == [*SHARD_STATS_KEYS, "duration", "start_time", "end_time"]
