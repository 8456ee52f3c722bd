"""Hostile crawl inputs (issue 11 items 4, 5, 10, 11, 12): each row of the table is one
stranger's file with its expected outcome — counted skips (stats.json ``skipped`` by reason)
or a non-zero exit with one line naming the file — and one real `wit crawl` run mixes every
skip-and-count input with good files: no traceback on stderr, every good record kept."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers.crawl import wat_envelope, write_metadata, write_warc, write_wat

pytestmark = pytest.mark.integration

PAGE = "<html><body><img src='/{name}.jpg' alt='fox {name}'></body></html>"


def warc_no_target_uri(d: Path) -> list[str]:
    write_warc(d / "no_uri.warc.gz", [(None, PAGE.format(name="lost")),
                                      ("https://h1.example/", PAGE.format(name="nouri_good"))])
    return ["--warc", str(d / "no_uri.warc.gz")]


def warc_cut_in_header(d: Path) -> list[str]:
    plain = write_warc(d / "full.warc", [("https://h2.example/", PAGE.format(name="cut_good")),
                                         ("https://h2.example/2", PAGE.format(name="gone"))],
                       gzip=False).read_bytes()
    second = plain.index(b"WARC/1.", 10)
    (d / "cut.warc").write_bytes(plain[: plain.index(b"WARC-Target-URI", second) + 9])
    (d / "full.warc").unlink()
    return ["--warc", str(d / "cut.warc")]


def warc_misaligned_members(d: Path) -> list[str]:
    """20 records whose gzip members are cut at the wrong places; zcat gives a valid WARC."""
    plain = write_warc(d / "m.warc", [(f"https://h3.example/{i}", PAGE.format(name=f"m{i}"))
                                      for i in range(20)], gzip=False).read_bytes()
    (d / "m.warc").unlink()
    first = plain.index(b"WARC/1.", 10) + 50  # member 1: record 1 and a bit of record 2
    members = [plain[:first]] + [plain[i:i + 777] for i in range(first, len(plain), 777)]
    (d / "split.warc.gz").write_bytes(b"".join(gzip.compress(m) for m in members))
    assert gzip.decompress((d / "split.warc.gz").read_bytes()) == plain
    return ["--warc", str(d / "split.warc.gz")]


def wat_bad_fields(d: Path) -> list[str]:
    write_wat(d / "bad.wat.gz", [
        wat_envelope("https://h4.example/", [
            {"path": "IMG@/src", "url": 12345, "alt": "fox int url"},
            {"path": "IMG@/src", "url": "/list_alt.jpg", "alt": ["fox", "list"],
             "title": "fox title wins"},
            {"path": "IMG@/src", "url": "/wat_good.jpg", "alt": "fox wat_good"}]),
        wat_envelope("https://h4.example/x", {"not": "a list"}),
        wat_envelope(7, []),
        b"{broken json",
    ])
    return ["--wat", str(d / "bad.wat.gz")]


def html_hostile(d: Path) -> list[str]:
    page = ("<html><body>"
            "<img srcset='data:image/png;base64,AAAA 4x, javascript:alert(1) 3x, "
            "ftp://h5.example/f.jpg 2x' src='/srcset_good.jpg' alt='fox srcset_good'>"
            f"<img src='/huge.jpg' alt='fox {'x' * 1_000_000}'>"
            "</body></html>")
    write_warc(d / "html.warc.gz", [("https://h5.example/", page)])
    return ["--warc", str(d / "html.warc.gz")]


def jsonl_bad_rows(d: Path) -> list[str]:
    (d / "rows.jsonl").write_text("{broken\n"
                                  '{"url": "https://h6.example/list_good.jpg", "caption": "fox list_good"}\n'
                                  '{"url": 17, "caption": "fox int"}\n'
                                  '{"url": "https://h6.example/c.jpg", "caption": ["fox"]}\n')
    return ["--urls", str(d / "rows.jsonl")]


# (name, builder, source, expected skipped counts in stats.json, good image URLs)
SKIPPED = [
    # warcio itself fails on it (AttributeError): one bad record
    ("warc without WARC-Target-URI", warc_no_target_uri, "warc",
     {"bad_record": 1}, ["https://h1.example/nouri_good.jpg"]),
    ("warc cut inside a header block", warc_cut_in_header, "warc",
     {"bad_record": 1}, ["https://h2.example/cut_good.jpg"]),
    ("warc with misaligned gzip members", warc_misaligned_members, "warc",
     {}, [f"https://h3.example/m{i}.jpg" for i in range(20)]),
    ("wat with int url, list alt, dict links, int page, bad json", wat_bad_fields, "wat",
     {"bad_link": 1, "bad_links": 1, "no_target_uri": 1, "bad_json": 1},
     ["https://h4.example/list_alt.jpg", "https://h4.example/wat_good.jpg"]),
    ("srcset of data:/javascript:/ftp: and a 1 MB alt", html_hostile, "warc",
     {"text_too_long": 1}, ["https://h5.example/srcset_good.jpg"]),
    ("jsonl with a broken first line, int url, list caption", jsonl_bad_rows, "urls",
     {"bad_json_line": 1, "non_string_url": 1, "non_string_text": 1},
     ["https://h6.example/list_good.jpg"]),
]


def parquet_int_url(d: Path) -> tuple[list[str], Path, str]:
    pq.write_table(pa.table({"url": pa.array([1, 2], pa.int64()), "caption": ["fox", "fox"]}),
                   d / "ints.parquet")
    return ["--urls", str(d / "ints.parquet")], d / "ints.parquet", "column 'url' is int64"


def jsonl_broken_first_missing_column(d: Path) -> tuple[list[str], Path, str]:
    (d / "cols.jsonl").write_text('{"url": \n{"link": "https://e.com/a.jpg", "caption": "fox"}\n')
    return ["--urls", str(d / "cols.jsonl")], d / "cols.jsonl", "needs columns 'url'"


def not_a_warc(d: Path) -> tuple[list[str], Path, str]:
    (d / "junk.warc.gz").write_bytes(gzip.compress(b"GET / HTTP/1.1\r\n" * 50))
    return ["--warc", str(d / "junk.warc.gz")], d / "junk.warc.gz", "not a readable WARC file"


REFUSED: list[Callable[[Path], tuple[list[str], Path, str]]] = [
    parquet_int_url, jsonl_broken_first_missing_column, not_a_warc]


def wit_crawl(args: list[str], d: Path) -> subprocess.CompletedProcess:
    meta = write_metadata(d / "metadata.json", ["fox"])
    return subprocess.run([sys.executable, "-m", "pipeline.cli", "crawl", *args,
                           "--metadata", meta, "--out", str(d / "out")],
                          capture_output=True, text=True, timeout=300)


def good_candidates(d: Path) -> dict[str, dict]:
    rows = []
    for part in sorted((d / "out" / "candidates").glob("part-*.parquet")):
        rows.extend(pq.read_table(part).to_pylist())
    return {r["url"]: r for r in rows}


def test_hostile_inputs_mixed_with_good_files(tmp_path: Path) -> None:
    args: list[str] = []
    for _, build, *_ in SKIPPED:
        args += build(tmp_path)
    good = write_warc(tmp_path / "good.warc.gz", [("https://good.example/",
                                                   PAGE.format(name="plain_good"))])
    done = wit_crawl([*args, "--warc", str(good)], tmp_path)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    stats = json.loads((tmp_path / "out" / "candidates" / "stats.json").read_text())
    found = good_candidates(tmp_path)
    assert "https://good.example/plain_good.jpg" in found
    expected_skips: dict[str, dict[str, int]] = {}
    for name, _, source, skipped, urls in SKIPPED:
        for url in urls:
            assert url in found, (name, url)
        for reason, n in skipped.items():
            expected_skips.setdefault(source, {}).setdefault(reason, 0)
            expected_skips[source][reason] += n
    for source, skipped in expected_skips.items():
        for reason, n in skipped.items():
            assert stats["sources"][source]["skipped"].get(reason) == n, (source, reason)
    # the list alt is ignored and counted, the title of the same image is its caption
    assert found["https://h4.example/list_alt.jpg"]["texts"] == ["fox title wins"]
    assert stats["sources"]["wat"]["non_string_texts"] == 1
    assert stats["sources"]["warc"]["texts_too_long"] == 1
    assert stats["sources"]["warc"]["recovered:gzip_members_not_per_record"] == 1
    # counts add up per source: every image is emitted or skipped for one reason
    for doc in stats["sources"].values():
        image_skips = sum(v for k, v in doc["skipped"].items() if k in (
            "no_http_url", "empty_text", "text_too_long", "bad_link", "non_string_url",
            "non_string_text"))
        assert doc["images"] == doc["with_text"] + image_skips


@pytest.mark.parametrize("build", REFUSED, ids=lambda b: b.__name__)
def test_refused_inputs_one_line_naming_the_file(tmp_path: Path, build) -> None:
    args, path, why = build(tmp_path)
    done = wit_crawl(args, tmp_path)
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and str(path) in lines[0] and why in lines[0], done.stderr


def test_max_text_chars_option(tmp_path: Path) -> None:
    helped = subprocess.run([sys.executable, "-m", "pipeline.cli", "crawl", "--help"],
                            capture_output=True, text=True, timeout=120)
    assert "--max-text-chars" in helped.stdout and "texts_too_long" in helped.stdout
    done = wit_crawl(["--urls", str(tmp_path / "x.csv"), "--max-text-chars", "0"], tmp_path)
    assert done.returncode == 2 and "--max-text-chars" in done.stderr
    assert "Traceback" not in done.stderr
    # a lower cap drops what the default keeps, counted
    (tmp_path / "l.csv").write_text("url,caption\nhttps://e.com/a.jpg,fox " + "y" * 40 + "\n"
                                    "https://e.com/b.jpg,fox short\n")
    done = wit_crawl(["--urls", str(tmp_path / "l.csv"), "--max-text-chars", "20"], tmp_path)
    assert done.returncode == 0, done.stderr
    stats = json.loads((tmp_path / "out" / "candidates" / "stats.json").read_text())
    assert stats["sources"]["urls"]["skipped"]["text_too_long"] == 1
    assert list(good_candidates(tmp_path)) == ["https://e.com/b.jpg"]
