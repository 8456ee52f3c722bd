"""WAT files written here in Common Crawl's format, and URL lists in img2dataset's formats."""

from __future__ import annotations

import gzip
import io
import json
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from warcio.warcwriter import WARCWriter

from pipeline.core.errors import InputError
from pipeline.crawl.url_lists import url_list_pairs
from pipeline.crawl.wat import wat_pairs


def wat_envelope(page_url: str, links: list[dict] | None, base: str | None = None) -> dict:
    """One WAT JSON object as Common Crawl writes it (trimmed to the fields used)."""
    payload: dict = {"Actual-Content-Type": "application/http; msgtype=response",
                     "HTTP-Response-Metadata": {
                         "Response-Message": {"Status": "200", "Version": "HTTP/1.1"},
                         "Headers": {"Content-Type": "text/html"}}}
    if links is not None:
        head: dict = {"Title": "t", "Metas": []}
        if base:
            head["Base"] = base
        payload["HTTP-Response-Metadata"]["HTML-Metadata"] = {"Head": head, "Links": links}
    return {"Container": {"Filename": "x.warc.gz", "Compressed": True},
            "Envelope": {"Format": "WARC",
                         "WARC-Header-Length": "500",
                         "WARC-Header-Metadata": {"WARC-Type": "response",
                                                  "WARC-Target-URI": page_url},
                         "Payload-Metadata": payload}}


def write_wat(path: Path, envelopes: list[dict]) -> None:
    with open(path, "wb") as f:
        writer = WARCWriter(f, gzip=True)
        writer.write_record(writer.create_warcinfo_record("x.warc.wat.gz", {"software": "t"}))
        for env in envelopes:
            uri = env["Envelope"]["WARC-Header-Metadata"]["WARC-Target-URI"]
            body = json.dumps(env).encode() if env else b"{not json"
            writer.write_record(writer.create_warc_record(
                uri, "metadata", payload=io.BytesIO(body),
                warc_content_type="application/json"))


def test_wat_links(tmp_path: Path) -> None:
    path = tmp_path / "x.warc.wat.gz"
    write_wat(path, [
        wat_envelope("https://example.com/a/page.html", [
            {"path": "A@/href", "url": "/other", "text": "not an image"},
            {"path": "IMG@/src", "url": "img/cat.jpg", "alt": "A  cat &amp; dog"},
            {"path": "IMG@/src", "url": "https://cdn.example.org/x.png", "alt": ""},
            {"path": "IMG@/src", "url": "/t.png", "title": "titled"},
            {"path": "IMG@/src", "url": "data:image/png;base64,AA", "alt": "inline"},
        ]),
        wat_envelope("https://example.com/b", [
            {"path": "IMG@/src", "url": "p.jpg", "alt": "based"}], base="https://b.example/s/"),
        wat_envelope("https://example.com/robots.txt", None),  # not HTML
    ])
    counts: Counter[str] = Counter()
    pairs = [(p.url, p.text, p.page_url) for p in wat_pairs(str(path), counts)]
    assert pairs == [
        ("https://example.com/a/img/cat.jpg", "A cat & dog", "https://example.com/a/page.html"),
        ("https://example.com/t.png", "titled", "https://example.com/a/page.html"),
        ("https://b.example/s/p.jpg", "based", "https://example.com/b"),
    ]
    assert counts["pages"] == 2 and counts["images"] == 5 and counts["with_text"] == 3
    assert counts["skipped:empty_text"] == 1 and counts["skipped:no_http_url"] == 1
    assert counts["skipped:non_html"] == 1


def test_real_whirlwind_wat_has_no_links() -> None:
    from helpers.data import shared_file

    counts: Counter[str] = Counter()
    assert list(wat_pairs(str(shared_file("webarchive/whirlwind.warc.wat.gz")), counts)) == []
    assert counts["records"] >= 1  # read fine; this WAT holds request metadata only


ROWS = [("https://e.com/1.jpg", "a red  fox"), ("http://e.com/2.png", "tom &amp; jerry"),
        ("ftp://e.com/3.jpg", "bad scheme"), ("https://e.com/4.jpg", "   "),
        ("https://e.com/5.jpg", None)]


def write_list(path: Path, fmt: str, url_col: str = "url", caption_col: str = "caption"):
    if fmt == "parquet":
        pq.write_table(pa.table({url_col: [u for u, _ in ROWS],
                                 caption_col: [c for _, c in ROWS]}), path)
        return
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wt", encoding="utf-8", newline="") as f:
        if fmt == "jsonl":
            for u, c in ROWS:
                f.write(json.dumps({url_col: u, caption_col: c, "extra": 1}) + "\n")
            return
        import csv

        writer = csv.writer(f, delimiter="\t" if fmt == "tsv" else ",")
        writer.writerow(["extra", url_col, caption_col])
        for u, c in ROWS:
            writer.writerow(["x", u, c or ""])


@pytest.mark.parametrize("name", ["l.parquet", "l.csv", "l.tsv", "l.jsonl", "l.csv.gz",
                                  "l.jsonl.gz"])
def test_url_lists(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    write_list(path, name.split(".")[1])
    counts: Counter[str] = Counter()
    pairs = [tuple(p) for p in url_list_pairs(str(path), counts)]
    # provenance: the file and the row's number in it (from 0; rows 2-4 are skipped)
    assert pairs == [("https://e.com/1.jpg", "a red fox", None, "urls", ("a red fox",),
                      str(path), 0, None, ()),
                     ("http://e.com/2.png", "tom &amp; jerry", None, "urls",
                      ("tom &amp; jerry",), str(path), 1, None, ())]  # never HTML-unescaped
    assert counts["rows"] == 5 and counts["with_text"] == 2
    assert counts["skipped:no_http_url"] == 1 and counts["skipped:empty_text"] == 2


def test_url_list_columns_and_errors(tmp_path: Path) -> None:
    path = tmp_path / "l.csv"
    write_list(path, "csv", url_col="URL", caption_col="TEXT")
    with pytest.raises(InputError, match="l.csv: needs columns 'url' and 'caption'"):
        list(url_list_pairs(str(path), Counter()))
    assert len(list(url_list_pairs(str(path), Counter(), "URL", "TEXT"))) == 2
    with pytest.raises(InputError, match="l.txt: unknown URL-list format"):
        list(url_list_pairs(str(tmp_path / "l.txt"), Counter()))
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"not parquet")
    with pytest.raises(InputError, match="bad.parquet: not a readable Parquet file"):
        list(url_list_pairs(str(bad), Counter()))
    lines = tmp_path / "l.jsonl"
    lines.write_text('{"url": "https://e.com/a.jpg", "caption": "ok"}\n{broken\n[1]\n')
    counts: Counter[str] = Counter()
    assert len(list(url_list_pairs(str(lines), counts))) == 1
    assert counts["skipped:bad_json_line"] == 2


@pytest.mark.integration
def test_cli_mixed_sources_dedup(tmp_path: Path) -> None:
    """A WAT and a URL list in one run; the pair found in both is kept once."""
    from pipeline.cli import main

    wat = tmp_path / "x.warc.wat.gz"
    write_wat(wat, [wat_envelope("https://e.com/page", [
        {"path": "IMG@/src", "url": "https://e.com/1.jpg", "alt": "a red fox"},
        {"path": "IMG@/src", "url": "https://e.com/9.jpg", "alt": "a grey wolf"}])])
    urls = tmp_path / "l.jsonl"
    write_list(urls, "jsonl")
    meta = tmp_path / "metadata.json"
    meta.write_text(json.dumps(["fox", "wolf", "jerry"]))
    out = tmp_path / "out"
    assert main(["crawl", "--wat", str(wat), "--urls", str(urls), "--metadata", str(meta),
                 "--out", str(out)]) == 0
    rows = pq.read_table(next((out / "candidates").glob("part-*.parquet"))).to_pylist()
    assert sorted((r["url"], r["source"], r["matched_entry_ids"]) for r in rows) == [
        ("http://e.com/2.png", "urls", [2]),
        ("https://e.com/1.jpg", "urls", [0]),  # also in the WAT: the smaller source wins
        ("https://e.com/9.jpg", "wat", [1]),
    ]
    stats = json.loads((out / "candidates" / "stats.json").read_text())
    assert stats["totals"]["duplicates"] == 1
    assert stats["sources"]["wat"]["with_text"] == 2
    assert stats["sources"]["urls"]["kept"] == 2 and stats["sources"]["wat"]["kept"] == 1
