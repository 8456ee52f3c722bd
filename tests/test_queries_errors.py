"""Bad inputs: one line naming the file and what is wrong, a non-zero exit, and no
metadata.json left behind."""

from __future__ import annotations

import bz2
import subprocess
import sys

import pytest

from pipeline.cli import main

pytestmark = pytest.mark.integration

FAST = ["--sources", "unigram", "--min-count", "5"]


def run_cli(args, capsys):
    code = main(["queries", *args])
    err = capsys.readouterr().err.strip().splitlines()
    return code, err[-1] if err else ""


@pytest.fixture(scope="module")
def dump_xml(wiki_sample) -> bytes:
    return bz2.decompress(wiki_sample.read_bytes())


def assert_failed(tmp_path, code, line, path, what):
    assert code != 0
    assert line.startswith("wit queries: error: ") and str(path) in line and what in line
    assert not (tmp_path / "out" / "queries" / "metadata.json").exists()


def test_truncated_bz2(tmp_path, wiki_sample, capsys):
    bad = tmp_path / "truncated.xml.bz2"
    bad.write_bytes(wiki_sample.read_bytes()[:400_000])
    code, line = run_cli(["--wiki", str(bad), "--out", str(tmp_path / "out"), *FAST], capsys)
    assert_failed(tmp_path, code, line, bad, "truncated compressed stream")


def test_malformed_xml(tmp_path, dump_xml, capsys):
    bad = tmp_path / "malformed.xml"
    bad.write_bytes(dump_xml[:2_000_000] + b"<page><title>x</titl></page>")
    code, line = run_cli(["--wiki", str(bad), "--out", str(tmp_path / "out"), *FAST], capsys)
    assert_failed(tmp_path, code, line, bad, "malformed XML")


def test_not_a_dump(tmp_path, capsys):
    bad = tmp_path / "notes.xml"
    bad.write_text("<html><body>hello</body></html>")
    code, line = run_cli(["--wiki", str(bad), "--out", str(tmp_path / "out"), *FAST], capsys)
    assert_failed(tmp_path, code, line, bad, "not a MediaWiki XML dump")


def test_compressed_garbage(tmp_path, capsys):
    bad = tmp_path / "garbage.xml.bz2"
    bad.write_bytes(b"this is not bzip2 at all")
    code, line = run_cli(["--wiki", str(bad), "--out", str(tmp_path / "out"), *FAST], capsys)
    assert_failed(tmp_path, code, line, bad, "unreadable")


def test_missing_dump(tmp_path, capsys):
    code, line = run_cli(["--wiki", str(tmp_path / "nope.xml.bz2"),
                          "--out", str(tmp_path / "out"), *FAST], capsys)
    assert_failed(tmp_path, code, line, tmp_path / "nope.xml.bz2", "no such dump file")


def test_wordnet_missing(tmp_path, capsys):
    code, line = run_cli(["--sources", "wordnet", "--wordnet", str(tmp_path / "empty"),
                          "--out", str(tmp_path / "out")], capsys)
    assert_failed(tmp_path, code, line, tmp_path / "empty", "no WordNet database")


def test_not_a_pageview_file(tmp_path, capsys):
    bad = tmp_path / "pageviews-20240101-000000"
    bad.write_text("this,is,a,csv\n1,2,3,4\n")
    code, line = run_cli(["--sources", "title", "--pageviews", str(bad),
                          "--out", str(tmp_path / "out")], capsys)
    assert_failed(tmp_path, code, line, bad, "not a pageview file")


def test_console_script_exit_code_and_help(tmp_path):
    wit = [sys.executable, "-m", "pipeline.cli"]
    done = subprocess.run([*wit, "queries", "--wiki", str(tmp_path / "x.xml"), "--out",
                           str(tmp_path)], capture_output=True, text=True)
    assert done.returncode == 1 and "no such dump file" in done.stderr
    helped = subprocess.run([*wit, "queries", "--help"], capture_output=True, text=True)
    assert helped.returncode == 0
    for option in ("--wiki", "--pageviews", "--sources", "--min-count", "--min-pmi",
                   "--min-bigram-count", "--min-views", "--min-inlinks", "--max-entries",
                   "--wordnet", "--out"):
        assert option in helped.stdout
