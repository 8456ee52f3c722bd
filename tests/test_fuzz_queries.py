"""Property-based fuzzing of the queries parsers that read strangers' bytes: pageview lines,
the dump's page walk and wikitext. Any input gives rows or a counted skip, never an exception
outside the named error types (DumpError for a file that is not a dump, ValueError for
wikitext the tokenizer gives up on, which the counting step counts as unparsable), and the
counts add up (in = out + skipped)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from xml.sax.saxutils import escape

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from queries import pageviews as pv
from queries.dump import DumpError, iter_pages
from queries.dump_counts import CountDumpFn
from queries.wikitext import to_plain_text

FUZZ = settings(max_examples=150, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])

# pageview lines: near-misses of the real format ("domain title views bytes") and noise
COUNT = st.one_of(st.integers(-10, 10**30).map(str), st.text(max_size=6),
                  st.sampled_from(["²", "١٢", "1e3", "0x10", "", "NaN", "-0", "𝟗"]))
TITLE = st.one_of(st.text(max_size=20), st.sampled_from(["Main_Page", "-", "Talk:X", "%E2%82"]),
                  st.text(alphabet="%0123456789ABCDEFZ_:", max_size=12))
NEAR_MISS = st.builds(lambda d, t, c, rest: " ".join([d, t, c, *rest]),
                      st.sampled_from(["en", "en.m", "de", "", "EN"]), TITLE, COUNT,
                      st.lists(st.sampled_from(["0", "123", "x", ""]), max_size=2))
LINE = st.one_of(NEAR_MISS, st.text(max_size=60),
                 st.lists(st.text(max_size=8), max_size=6).map(" ".join))


@FUZZ
@given(st.lists(LINE, max_size=40), st.integers(0, 200))
def test_pageview_lines_parse_or_count_and_counts_add_up(lines, min_hourly):
    parsed = bad = counted = 0
    for line in lines:
        row = pv.parse_line(line)
        if row is None:
            bad += 1
            assert pv.title_views(line, min_hourly) is None
            continue
        parsed += 1
        domain, title, views = row
        assert isinstance(views, int) and views >= 0 and isinstance(title, str)
        hit = pv.title_views(line, min_hourly)
        if hit is not None:
            counted += 1
            title, views = hit
            assert title and ":" not in title and title.isprintable() and views >= min_hourly
    assert parsed + bad == len(lines) and counted <= parsed


# wikitext: markup characters dense enough to hit templates, links, tags and tables
WIKITEXT = st.text(alphabet=st.one_of(st.sampled_from(list("[]{}|=<>/'!&;#:*-\n ")),
                                      st.characters(codec="utf-8")), max_size=300)


@FUZZ
@given(WIKITEXT)
def test_wikitext_gives_text_and_links_or_a_value_error(text):
    try:
        plain, links = to_plain_text(text, frozenset({"category", "file"}))
    except ValueError:
        return  # counted as an unparsable page by the counting step
    assert isinstance(plain, str) and all(isinstance(link, str) for link in links)


XML_TEXT = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")),
                   max_size=80)
PAGE = st.fixed_dictionaries({
    "title": st.one_of(st.none(), st.just(""), XML_TEXT),
    "ns": st.one_of(st.none(), st.sampled_from(["0", "1", "14", "-2", "x", ""])),
    "redirect": st.one_of(st.none(), XML_TEXT),
    "text": st.one_of(XML_TEXT, WIKITEXT.map(lambda t: "".join(c for c in t if c.isprintable()
                                                               or c in "\n\t"))),
    "extra": st.sampled_from(["", "<restrictions>x</restrictions>", "<evil/>"]),
})


def dump_xml(pages: list[dict]) -> str:
    parts = ['<mediawiki xmlns="http://www.mediawiki.org/xml/export-0.10/" version="0.10">',
             '<siteinfo><sitename>W</sitename><namespaces><namespace key="0" />'
             '<namespace key="14">Category</namespace></namespaces></siteinfo>']
    for i, p in enumerate(pages):
        title = "" if p["title"] is None else f"<title>{escape(p['title'])}</title>"
        ns = "" if p["ns"] is None else f"<ns>{p['ns']}</ns>"
        redirect = "" if p["redirect"] is None else \
            f'<redirect title="{escape(p["redirect"], {chr(34): "&quot;"})}" />'
        parts.append(f"<page>{title}{ns}<id>{i + 1}</id>{redirect}{p['extra']}<revision>"
                     f"<id>{i + 1}</id><text>{escape(p['text'])}</text></revision></page>")
    return "\n".join(parts + ["</mediawiki>"])


@FUZZ
@given(st.lists(PAGE, max_size=8))
def test_page_walk_reads_or_counts_every_page(tmp_path, pages):
    path = tmp_path / "dump.xml"
    path.write_text(dump_xml(pages), encoding="utf-8")
    skipped: Counter[str] = Counter()
    read = list(iter_pages(str(path), skipped=skipped))
    assert len(read) + sum(skipped.values()) == len(pages)  # in = out + skipped
    for page, _ in read:
        assert isinstance(page.title, str) and isinstance(page.text, str)
    # the counting step: every page lands in exactly one counter
    outputs = list(CountDumpFn(bigrams=True, links=True, flush_keys=1000, shards=4)
                   .process(str(path)))
    (stats,) = [o.value for o in outputs if o.tag == "stats"]
    parts = ("other_namespace_pages", "redirects", "unparsable_pages", "articles")
    skipped_pages = sum(v for k, v in stats.items() if k.startswith("skipped_pages_"))
    assert stats.get("pages", 0) == len(pages)
    assert sum(stats.get(k, 0) for k in parts) + skipped_pages == len(pages)


@FUZZ
@given(st.binary(max_size=400), st.sampled_from([".xml", ".xml.bz2", ".xml.gz"]))
def test_any_bytes_are_pages_or_a_dump_error(tmp_path, data, suffix):
    path: Path = tmp_path / f"junk{suffix}"
    path.write_bytes(b"<mediawiki>" + data if data[:1] == b"<" else data)
    skipped: Counter[str] = Counter()
    try:
        for page, _ in iter_pages(str(path), skipped=skipped):
            assert isinstance(page.title, str)
    except DumpError as exc:
        assert str(exc).startswith(str(path)) and "\n" not in str(exc)
