"""Hostile inputs to `wit queries`: malformed dumps and pages, garbage pageview lines, a failed
rerun into an old --out. Each case has its expected outcome: the page or line skipped and
counted while the good records of the same run are kept, or rc != 0 with one line naming the
file (and no output that looks like this run's result)."""

from __future__ import annotations

import bz2
import json
import os
import subprocess
import sys
from collections import Counter

import pytest

from queries.dump import DumpError, iter_pages

HEAD = ('<mediawiki xmlns="http://www.mediawiki.org/xml/export-0.10/" version="0.10" '
        'xml:lang="en">\n')
SITEINFO = ('<siteinfo><sitename>W</sitename><namespaces>'
            '<namespace key="0" case="first-letter" />'
            '<namespace key="14" case="first-letter">Category</namespace>'
            '</namespaces></siteinfo>\n')


def page(title: str | None, text: str, ns: str = "0", page_id: int = 1, extra: str = "") -> str:
    title_tag = f"<title>{title}</title>" if title is not None else ""
    return (f"<page>{title_tag}<ns>{ns}</ns><id>{page_id}</id>{extra}<revision><id>{page_id}</id>"
            f"<text>{text}</text></revision></page>\n")


GOOD = [page("Zebra", "The zebra crossing is striped. Zebra zebra [[Horse]].", page_id=1),
        page("Horse", "A horse is an animal. Horse horse [[Zebra]].", page_id=2)]

# name -> (dump text, expected pages read, expected skipped counts) for dumps that are read
PAGE_CASES = {
    "no_title": (HEAD + SITEINFO + GOOD[0] + page(None, "orphan words", page_id=3) + GOOD[1]
                 + "</mediawiki>", 2, {"no_title": 1}),
    "bad_ns": (HEAD + SITEINFO + GOOD[0] + page("Odd", "odd", ns="zero", page_id=4) + GOOD[1]
               + "</mediawiki>", 2, {"malformed_page": 1}),
    "unknown_tag": (HEAD + SITEINFO + GOOD[0] + page("Odd", "x", page_id=5, extra="<evil>1</evil>")
                    + GOOD[1] + "</mediawiki>", 2, {"malformed_page": 1}),
    "empty_title": (HEAD + SITEINFO + page("", "nothing", page_id=6) + GOOD[0] + GOOD[1]
                    + "</mediawiki>", 2, {"no_title": 1}),
    "no_pages": (HEAD + SITEINFO + "</mediawiki>", 0, {}),
}
# name -> (dump text, words of the one-line error) for files that are not (complete) dumps
FILE_CASES = {
    "no_siteinfo": (HEAD + GOOD[0] + "</mediawiki>", "no <siteinfo>"),
    "cut_xml": (HEAD + SITEINFO + GOOD[0][:40], "malformed XML"),
    "other_root_child": (HEAD + "<banner>hi</banner>" + SITEINFO + "</mediawiki>", "unexpected <banner>"),
}


@pytest.mark.parametrize("name", list(PAGE_CASES))
def test_malformed_pages_are_skipped_and_counted(name, tmp_path):
    text, pages, skipped = PAGE_CASES[name]
    path = tmp_path / f"{name}.xml"
    path.write_text(text)
    counts: Counter[str] = Counter()
    titles = [p.title for p, _ in iter_pages(str(path), skipped=counts)]
    assert len(titles) == pages and dict(counts) == skipped
    assert set(titles) <= {"Zebra", "Horse"}


@pytest.mark.parametrize("name", list(FILE_CASES))
def test_files_that_are_not_dumps_are_one_line_errors(name, tmp_path):
    text, words = FILE_CASES[name]
    path = tmp_path / f"{name}.xml"
    path.write_text(text)
    with pytest.raises(DumpError) as error:
        list(iter_pages(str(path)))
    message = str(error.value)
    assert message.startswith(str(path)) and words in message and "\n" not in message


def wit(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "WIT_PROGRESS": "0", "NO_ALBUMENTATIONS_UPDATE": "1"}
    return subprocess.run([sys.executable, "-m", "pipeline.cli", "queries", *args],
                          capture_output=True, text=True, env=env, timeout=300)


PAGEVIEW_LINES = [
    "en Zebra 120 0", "en Horse 80 0",  # good
    "en Zebra ²³ 0",  # a digit str.isdigit() accepts and int() refuses
    "en Horse 1e3 0", "en Horse -5 0", "en 0", "", "   ", "en Horse 12 0 extra more",
    "en %ZZ%E2%82 99 0",  # undecodable percent-encoding: kept as text, no ':' -> counted
    "en \x00\x01 77 0", "de Zebra 500 0", "en Talk:Zebra 400 0", "en - 300 0",
    "en Zebra " + "9" * 40 + " 0",  # a huge count is still a count
]


@pytest.mark.integration
def test_a_dump_and_pageviews_full_of_junk_keep_every_good_record(tmp_path):
    dump = tmp_path / "wiki.xml.bz2"
    dump.write_bytes(bz2.compress(PAGE_CASES["no_title"][0].encode()))
    views = tmp_path / "pageviews-20240101-000000"
    views.write_text("\n".join(PAGEVIEW_LINES) + "\n", encoding="utf-8")
    out = tmp_path / "out"
    result = wit("--wiki", str(dump), "--pageviews", str(views), "--sources", "unigram,title",
                 "--min-count", "2", "--min-views", "50", "--min-hourly-views", "1",
                 "--out", str(out))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    stats = json.loads((out / "queries" / "stats.json").read_text())
    inputs = stats["inputs"]
    assert inputs["pages"] == 3 and inputs["articles"] == 2
    assert inputs["skipped_pages_no_title"] == 1
    assert inputs["pageview_lines"] == sum(1 for line in PAGEVIEW_LINES if line.strip())
    assert inputs["pageview_bad_lines"] == 5  # ²³, 1e3, -5, "en 0", 6 fields
    entries = json.loads((out / "queries" / "metadata.json").read_text())
    assert {"zebra", "horse"} <= set(entries)  # unigrams of the good pages
    assert {"Zebra", "Horse"} <= set(entries)  # titles of the good pageview lines
    assert "orphan" not in entries and "Talk:Zebra" not in entries
    assert all(entry.isprintable() for entry in entries)  # not the control-character title


@pytest.mark.integration
def test_a_failed_rerun_leaves_no_result_that_looks_like_its_own(tmp_path):
    good = tmp_path / "good.xml"
    good.write_text(PAGE_CASES["no_title"][0])
    out = tmp_path / "out"
    args = ["--sources", "unigram", "--min-count", "1", "--out", str(out)]
    assert wit("--wiki", str(good), *args).returncode == 0
    assert (out / "queries" / "metadata.json").exists()
    bad = tmp_path / "bad.xml"
    bad.write_text(FILE_CASES["no_siteinfo"][0])
    result = wit("--wiki", str(bad), *args)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    (line,) = [line for line in result.stderr.splitlines() if "error" in line]
    assert line.startswith("wit queries: error: ") and str(bad) in line, line
    assert "no <siteinfo>" in line
    left = sorted(p.name for p in (out / "queries").iterdir())
    assert not {"metadata.json", "stats.json", "metadata.parquet"} & set(left), left


def test_stats_json_never_holds_nan(tmp_path):
    from queries.transform import QueryConfig

    with pytest.raises(ValueError, match="finite"):
        QueryConfig(min_pmi=float("nan"))
    with pytest.raises(ValueError, match="max_entries"):
        QueryConfig(max_entries=0)
    # the command line refuses them at parse time (exit 2): test_hostile_cli.py
