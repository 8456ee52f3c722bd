"""Takedown lists (parsing, matching) and the tar filter, without a shards run: pure
functions and real tar files written by tarfile."""

from __future__ import annotations

import io
import json
import tarfile

import pyarrow as pa
import pytest

from pipeline.core.errors import InputError
from pipeline.core.takedown_list import (
    Rule,
    TakedownListError,
    from_rules,
    parse_lines,
    parse_rule,
    read_lists,
)
from pipeline.takedown.shard_rewrite import matched_rows, removed_row
from pipeline.takedown.tar_filter import RECORD, filter_tar, member_data, members, sample_key
from schemas import status as st
from schemas.shards import SAMPLES

SHA = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"


def test_every_kind_parses_and_normalises():
    assert parse_rule("url HTTPS://Example.COM/a/B.jpg#top") == Rule("url", "https://example.com/a/B.jpg")
    assert parse_rule("page http://ex.org/p?id=3  # the post") == Rule("page", "http://ex.org/p?id=3")
    assert parse_rule("domain Example.org.") == Rule("domain", "example.org")
    assert parse_rule(f"sha256 {SHA.upper()}") == Rule("sha256", SHA)
    assert parse_rule("phash C3A1F0E2D4B59687 6") == Rule("phash", "c3a1f0e2d4b59687", 6)
    assert parse_rule("phash c3a1f0e2d4b59687").radius == 0
    assert parse_rule("domain\tex.org\t# tabs") == Rule("domain", "ex.org")
    assert parse_rule("   # only a comment") is None
    assert parse_rule("") is None
    assert Rule("phash", "c3a1f0e2d4b59687", 6).line == "phash c3a1f0e2d4b59687 6"


@pytest.mark.parametrize("line, why", [
    ("photo http://ex.org/a.jpg", "unknown kind 'photo'"),
    ("url", "url: no value"),
    ("url ftp://ex.org/a.jpg", "not an http(s) URL"),
    ("url http://ex.org/a.jpg http://ex.org/b.jpg", "one value expected"),
    ("domain http://ex.org/", "expected a host name"),
    ("domain localhost", "expected a host name"),
    ("sha256 abc", "sha256 must be 64 hex digits"),
    ("phash xyz", "phash must be 16 hex digits"),
    ("phash c3a1f0e2d4b59687 33", "radius must be a whole number 0..32"),
    ("phash c3a1f0e2d4b59687 -1", "radius must be a whole number"),
    ('{"no": "rule"}', "removals.jsonl record"),
    ("{not json", "Expecting property name"),
])
def test_a_bad_line_names_file_and_line(line, why):
    with pytest.raises(TakedownListError) as error:
        list(parse_lines(["# header", "domain ok.example", line], "list.txt"))
    assert str(error.value).startswith("list.txt:3: ") and why in str(error.value)


def test_a_removals_record_stands_for_its_rule_url_and_sha256():
    record = {"rule": "domain ex.org", "url": "http://cdn.other.net/x.jpg", "sha256": SHA,
              "key": "000001", "shard": "00000.tar"}
    rules = list(parse_lines([json.dumps(record)], "removals.jsonl"))
    assert [(r.kind, r.value) for r in rules] == [
        ("domain", "ex.org"), ("url", "http://cdn.other.net/x.jpg"), ("sha256", SHA)]
    assert rules[0].where == "removals.jsonl:1"


def test_read_lists_errors(tmp_path):
    with pytest.raises(InputError, match="no such takedown list"):
        read_lists([str(tmp_path / "missing.txt")])
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"url http://ex.org/\xff.jpg\n")
    with pytest.raises(TakedownListError, match="bad.txt: not UTF-8"):
        read_lists([str(bad)])


def test_matching_each_kind():
    rules = from_rules(parse_lines([
        "url http://img.ex.org/a.jpg", "page http://blog.ex.org/post", "domain bad.example",
        f"sha256 {SHA}", "phash ffff000000000000 2"], "l"))
    assert rules.counts() == {"url": 1, "page": 1, "domain": 1, "sha256": 1, "phash": 1}
    assert rules.before_download("HTTP://IMG.ex.org/a.jpg", None).kind == "url"
    assert rules.before_download("http://img.ex.org/b.jpg", "http://blog.ex.org/post").kind == "page"
    assert rules.before_download("http://cdn.bad.example/x.jpg", None).kind == "domain"
    assert rules.before_download("http://x.org/x.jpg", "https://bad.example/p").kind == "domain"
    assert rules.before_download("http://notbad.example/x.jpg", None) is None
    assert rules.before_download("http://img.ex.org/b.jpg", "http://blog.ex.org/other") is None
    assert rules.after_download(SHA, None).kind == "sha256"
    assert rules.after_download(None, "ffff000000000003").kind == "phash"  # 2 bits off
    assert rules.after_download(None, "ffff000000000007") is None  # 3 bits off
    assert rules.acts_after_download


def _row(key, status=st.SUCCESS, **values):
    return {"key": key, "uid": f"u{key}", "status": status, "url": f"http://ex.org/{key}.jpg",
            "caption": "a cat", "texts": ["a cat"], "page_url": "http://ex.org/p", "attempts": 1,
            "sha256": None, "phash": None, **values}


def test_matched_rows_leave_removed_rows_alone():
    rules = from_rules([Rule("domain", "ex.org", where="l:1")])
    rows = [_row("0"), _row("1", st.FAILED_TO_DOWNLOAD), _row("2", st.REMOVED)]
    assert set(matched_rows(rows, rules)) == {"0", "1"}


def test_removed_row_keeps_key_uid_and_hashes_only():
    rule = Rule("url", "http://ex.org/0.jpg", where="l:4")
    schema = pa.schema([*SAMPLES, pa.field("LICENSE", pa.string())])
    row = removed_row(_row("0", sha256=SHA, phash="00ff00ff00ff00ff", LICENSE="cc-by",
                           width=64), rule, schema)
    assert row["status"] == st.REMOVED and row["error_message"] == "takedown url: l:4: url http://ex.org/0.jpg"
    assert (row["key"], row["uid"], row["sha256"], row["phash"], row["attempts"]) == \
        ("0", "u0", SHA, "00ff00ff00ff00ff", 1)
    assert row["url"] == row["caption"] == "" and row["page_url"] is None
    assert row["texts"] is None and row["LICENSE"] is None and row["width"] is None
    pa.Table.from_pylist([row], schema=schema)  # fits the schema (non-null columns filled)


def _tar(names: list[str], fmt=tarfile.USTAR_FORMAT) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=fmt) as tar:
        for name in names:
            data = name.encode() * 100
            info = tarfile.TarInfo(name)
            info.size, info.mtime = len(data), 0
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


@pytest.mark.parametrize("fmt", [tarfile.USTAR_FORMAT, tarfile.PAX_FORMAT, tarfile.GNU_FORMAT])
def test_filter_tar_copies_kept_members_byte_for_byte(fmt):
    # over 100 characters: a ustar prefix, a pax header or a GNU long-name header
    long = "p" * 60 + "/" + "d" * 60
    names = ["000.jpg", "000.txt", "001.jpg", "001.txt", f"{long}.jpg", f"{long}.txt"]
    source = _tar(names, fmt)
    keep_all = io.BytesIO()
    filter_tar(io.BytesIO(source), keep_all, "x.tar", lambda key: False)
    assert keep_all.getvalue() == source  # nothing dropped: the very same bytes
    out, seen = io.BytesIO(), []
    dropped = filter_tar(io.BytesIO(source), out, "x.tar", {"001", long}.__contains__,
                         lambda m, raw: seen.append((m, member_data(raw))))
    assert dropped == 4 and len(out.getvalue()) % RECORD == 0
    assert [m for m, _ in seen] == names[2:]
    assert seen[0][1] == b"001.jpg" * 100
    with tarfile.open(fileobj=io.BytesIO(out.getvalue())) as tar:
        assert tar.getnames() == ["000.jpg", "000.txt"]
        assert tar.extractfile("000.jpg").read() == b"000.jpg" * 100
    kept = dict(members(io.BytesIO(source), "x.tar"))
    assert out.getvalue().startswith(kept["000.jpg"] + kept["000.txt"])


def test_filter_tar_refuses_a_damaged_tar():
    source = bytearray(_tar(["000.jpg", "001.jpg"]))
    source[1536 + 3] ^= 0x01  # the second member's name (after 512 + 1024 bytes)
    with pytest.raises(ValueError, match="x.tar: bad tar header checksum at byte 1536"):
        filter_tar(io.BytesIO(bytes(source)), io.BytesIO(), "x.tar", lambda key: False)
    source[150] ^= 0xFF  # the first checksum field: not even a number
    with pytest.raises(ValueError, match="x.tar: bad tar header at byte 0"):
        filter_tar(io.BytesIO(bytes(source)), io.BytesIO(), "x.tar", lambda key: False)
    with pytest.raises(ValueError, match="truncated"):
        filter_tar(io.BytesIO(_tar(["000.jpg"])[:700]), io.BytesIO(), "x.tar", lambda key: False)


def test_sample_key_is_webdatasets():
    assert sample_key("000123.jpg") == "000123" and sample_key("a/b.c.json") == "a/b"


def test_scrub_report_cuts_removed_images_only(tmp_path):
    import base64
    import hashlib

    from pipeline.takedown.job import scrub_report

    gone, kept = (base64.b64encode(data).decode() for data in (b"removed image", b"kept image"))
    (tmp_path / "report.html").write_text(
        "<h1>Dataset card</h1>\n"
        f"<figure><img src='data:image/jpeg;base64,{gone}'><figcaption>a cat</figcaption></figure>\n"
        f"<figure><img src='data:image/jpeg;base64,{kept}'><figcaption>a dog</figcaption></figure>\n"
        f"<img alt='elsewhere' src=\"data:image/jpeg;base64,{gone}\">")
    digest = hashlib.sha256(gone.encode()).hexdigest()
    assert scrub_report(str(tmp_path), {digest}, 3)
    text = (tmp_path / "report.html").read_text()
    assert gone not in text and "a cat" not in text
    assert kept in text and "a dog" in text and "dataset version 3" in text
    assert not scrub_report(str(tmp_path), {digest}, 3)  # nothing left to cut
