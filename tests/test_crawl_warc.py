"""WARC source on the real Common Crawl samples (counted independently with the stdlib's
html.parser) and on the malformed WARCs; the whole `wit crawl` on the samples."""

from __future__ import annotations

import gzip
import json
import re
from collections import Counter
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import pyarrow as pa
import pytest
from helpers.data import shared_file
from warcio.archiveiterator import ArchiveIterator

from pipeline.cli import main
from pipeline.core.errors import InputError
from pipeline.crawl.matching import Matcher, load_metadata
from pipeline.crawl.warc_source import warc_pairs
from schemas import CANDIDATES, ENTRY_COUNTS, read_validated

SAMPLES = ["webarchive/cc-main-2020-34-sample.warc.gz", "webarchive/clipped.warc.gz",
           "webarchive/whirlwind.warc.gz"]


class AltCounter(HTMLParser):
    """Independent reference: (resolved src, alt) of every <img> with a non-empty alt."""

    def __init__(self, page_url: str):
        super().__init__(convert_charrefs=True)
        self.base = page_url
        self.page_url = page_url
        self.base_seen = False
        self.found: list[tuple[str, str]] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "base" and a.get("href") and not self.base_seen:
            self.base_seen = True
            self.base = urljoin(self.page_url, a["href"].strip())
        if tag != "img":
            return
        src = a.get("src")
        if a.get("srcset"):  # largest candidate, naive tokenizer (enough for the samples)
            best = None
            for cand in a["srcset"].split(", "):
                parts = cand.split()
                value = float(parts[1][:-1]) if len(parts) > 1 else 1.0
                if best is None or value > best[0]:
                    best = (value, parts[0])
            src = best[1] if best else src
        alt = " ".join((a.get("alt") or "").split())
        if not src or not src.strip() or not alt:
            return
        url = urljoin(self.base, src.strip()).split("#", 1)[0]
        if urlsplit(url).scheme in ("http", "https"):
            self.found.append((url, alt))

    handle_startendtag = handle_starttag


def independent_pairs(path: Path) -> list[tuple[str, str]]:
    found = []
    with open(path, "rb") as f:
        for record in ArchiveIterator(f):
            if record.rec_type != "response":
                continue
            ctype = record.http_headers.get_header("Content-Type") or ""
            if "html" not in ctype:
                continue
            body = record.content_stream().read()
            m = re.search(r"charset=([\w-]+)", ctype) or re.search(
                rb"<meta[^>]+charset=[\"']?([\w-]+)", body[:4096], re.I)
            charset = m.group(1) if m else "utf-8"
            charset = charset.decode() if isinstance(charset, bytes) else charset
            parser = AltCounter(record.rec_headers.get_header("WARC-Target-URI"))
            parser.feed(body.decode(charset, "replace"))
            found.extend(parser.found)
    return found


@pytest.mark.parametrize("name", SAMPLES)
def test_sample_pairs_equal_independent_count(name: str) -> None:
    path = shared_file(name)
    counts: Counter[str] = Counter()
    ours = [(p.url, p.text) for p in warc_pairs(str(path), counts, text_fields=("alt",))]
    reference = independent_pairs(path)
    assert len(reference) > 0
    assert len(ours) == len(reference) == counts["with_text"]
    assert sorted(u for u, _ in ours) == sorted(u for u, _ in reference)
    assert sorted(ours) == sorted(reference)
    assert counts["images"] == counts["with_text"] + sum(
        v for k, v in counts.items() if k.startswith("skipped:") and k not in
        ("skipped:non_html", "skipped:http_status", "skipped:empty_page"))


def test_sample_urls_resolved() -> None:
    counts: Counter[str] = Counter()
    pairs = list(warc_pairs(str(shared_file("webarchive/clipped.warc.gz")), counts))
    assert all(p.url.startswith(("http://", "https://")) for p in pairs)
    assert all(p.page_url and p.source == "warc" for p in pairs)
    # whirlwind: root-relative /static/... resolved against the page's host
    pairs = list(warc_pairs(str(shared_file("webarchive/whirlwind.warc.gz")), Counter()))
    assert ("https://an.wikipedia.org/static/images/mobile/copyright/"
            "wikipedia-wordmark-an.svg", "Biquipedia") in [(p.url, p.text) for p in pairs]


@pytest.mark.parametrize("name", ["example-bad-non-chunked.warc.gz", "example-bad.warc.gz",
                                  "example-trunc.warc", "example-wrong-chunks.warc.gz"])
def test_malformed_files_processed(name: str) -> None:
    path = shared_file(f"webarchive/malformed/{name}")
    counts: Counter[str] = Counter()
    pairs = list(warc_pairs(str(path), counts))
    assert counts["records"] >= 1
    assert pairs == []  # example.com has no images; the point is: no exception
    problems = sum(v for k, v in counts.items()
                   if k.startswith(("skipped:", "recovered:")))
    if name != "example-trunc.warc":
        assert problems >= 1, counts  # every damaged file reports what it skipped


def test_truncated_gzip_keeps_earlier_records(tmp_path: Path) -> None:
    data = shared_file("webarchive/cc-main-2020-34-sample.warc.gz").read_bytes()
    cut = tmp_path / "cut.warc.gz"
    cut.write_bytes(data[: len(data) * 2 // 3])
    full, partial = Counter(), Counter()
    n_full = len(list(warc_pairs(str(shared_file(
        "webarchive/cc-main-2020-34-sample.warc.gz")), full)))
    n_partial = len(list(warc_pairs(str(cut), partial)))
    assert 0 < partial["pages"] < full["pages"]
    assert 0 < n_partial < n_full
    assert partial["truncated_records"] + partial["skipped:bad_record"] >= 1


def test_unreadable_file_names_it(tmp_path: Path) -> None:
    junk = tmp_path / "junk.warc.gz"
    junk.write_bytes(gzip.compress(b"this is not a warc file\n" * 10))
    with pytest.raises(InputError, match="junk.warc.gz: not a readable WARC file"):
        list(warc_pairs(str(junk), Counter()))


def read_candidates(out: Path) -> pa.Table:
    """All part files, each validated against the schema."""
    return pa.concat_tables(read_validated(str(f), CANDIDATES)
                            for f in sorted(out.glob("part-*.parquet")))


def write_metadata(path: Path, entries: list[str]) -> str:
    path.write_text(json.dumps(entries), encoding="utf-8")
    return str(path)


@pytest.mark.integration
def test_cli_on_samples(tmp_path: Path, capsys) -> None:
    warcs = [str(shared_file(n)) for n in SAMPLES]
    malformed = str(shared_file("webarchive/malformed/example-wrong-chunks.warc.gz"))
    meta = write_metadata(tmp_path / "metadata.json",
                          ["Houston Press", "Biquipedia", "Hovenier", "Escopete", "the"])
    code = main(["crawl", "--warc", *warcs, malformed, "--metadata", meta,
                 "--out", str(tmp_path / "out")])
    assert code == 0
    out = tmp_path / "out" / "candidates"
    stats = json.loads((out / "stats.json").read_text())
    warc = stats["sources"]["warc"]
    # its gzip members split records: read as one stream (what zcat gives), said so
    assert warc["files"] == 4 and warc["recovered:gzip_members_not_per_record"] == 1
    assert warc["with_text"] == warc["unmatched"] + warc.get("duplicates", 0) + warc["matched"]
    table = read_candidates(out)
    assert table.num_rows == warc["kept"] == warc["matched"] > 0
    counts = read_validated(str(out / "entry_counts.parquet"), ENTRY_COUNTS).to_pylist()
    assert [r["entry"] for r in counts] == ["Houston Press", "Biquipedia", "Hovenier",
                                            "Escopete", "the"]
    # every text of an image counts its entries (MetaCLIP); t is large, so all are kept
    matcher = Matcher(load_metadata(meta))
    by_id = Counter(e for texts in table.column("texts").to_pylist() for text in texts
                    for e in matcher.match(text))
    assert {r["entry_id"]: r["count"] for r in counts if r["count"]} == dict(by_id)
    for row in table.to_pylist():
        assert row["text"] == row["texts"][0]
        assert all(any(counts[e]["entry"] in text for text in row["texts"])
                   for e in row["matched_entry_ids"])
    printed = capsys.readouterr().out
    assert "warc" in printed and "kept" in printed


@pytest.mark.integration
def test_cli_errors(tmp_path: Path, capsys) -> None:
    meta = write_metadata(tmp_path / "m.json", ["a"])
    assert main(["crawl", "--metadata", meta, "--out", str(tmp_path)]) == 1
    assert "no sources" in capsys.readouterr().err
    assert main(["crawl", "--warc", str(tmp_path / "nope.warc.gz"), "--metadata", meta,
                 "--out", str(tmp_path)]) == 1
    assert "nope.warc.gz: no such WARC file" in capsys.readouterr().err
    junk = tmp_path / "junk.warc"
    junk.write_text("not a warc\n")
    assert main(["crawl", "--warc", str(junk), "--metadata", meta,
                 "--out", str(tmp_path / "o")]) == 1
    assert "junk.warc: not a readable WARC file" in capsys.readouterr().err
