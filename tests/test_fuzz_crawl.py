"""Property-based fuzzing (hypothesis) of the crawl parsers that read strangers' bytes: HTML
image extraction, WAT JSON, WARC records and URL lists. Any input gives pairs or counted
skips — the only exception allowed is InputError (a whole file refused, naming it) — and the
counts add up: every image is emitted or skipped for exactly one reason."""

from __future__ import annotations

import contextlib
import gzip
import io
import json
import os
import tempfile
from collections import Counter
from collections.abc import Iterator

from helpers.crawl import wat_envelope
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

from pipeline.core.errors import InputError
from pipeline.crawl.html_extract import extract_page
from pipeline.crawl.url_lists import url_list_pairs
from pipeline.crawl.warc_source import warc_pairs
from pipeline.crawl.wat import wat_record_pairs

FUZZ = settings(max_examples=150, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
IMAGE_SKIPS = ("skipped:no_http_url", "skipped:empty_text", "skipped:text_too_long",
               "skipped:bad_link", "skipped:non_string_url", "skipped:non_string_text")


def image_skips(counts: Counter[str]) -> int:
    return sum(counts[k] for k in IMAGE_SKIPS)


refs = st.one_of(st.sampled_from(["a.jpg", "/b.png", "//cdn.x/c.gif", "data:image/png;base64,AA",
                                  "javascript:alert(1)", "ftp://h/f.jpg", "http://[::1", " ",
                                  "https://h/ä.jpg#frag", "HTTPS://H/U.JPG"]), st.text(max_size=20))
texts = st.one_of(st.sampled_from(["", " ", "fox", "a &amp; b", "x" * 1200, "\x00", "<b>"]),
                  st.text(max_size=30))
attr_names = st.sampled_from(["src", "srcset", "alt", "title", "data-image-title", "href"])


@st.composite
def html_pages(draw) -> str:
    parts = []
    for _ in range(draw(st.integers(0, 6))):
        kind = draw(st.sampled_from(["img", "figure", "base", "a", "junk"]))
        attrs = " ".join(f'{draw(attr_names)}="{draw(st.one_of(refs, texts))}"'
                         for _ in range(draw(st.integers(0, 4))))
        if kind == "figure":
            parts.append(f"<figure><img {attrs}><figcaption>{draw(texts)}</figcaption></figure>")
        elif kind == "junk":
            parts.append(draw(st.text(max_size=40)))
        else:
            parts.append(f"<{kind} {attrs}>")
    return "<html><body>" + "".join(parts) + "</body></html>"


@FUZZ
@given(page=st.one_of(html_pages(), st.binary(max_size=300)),
       url=st.sampled_from(["https://e.com/p/", "http://h", "", "not a url"]))
def test_html_extraction_counts_add_up(page, url) -> None:
    pairs, _, counts = extract_page(page, url, "text/html", max_text_chars=1000)
    assert len(pairs) == counts["with_text"]
    assert counts["images"] == counts["with_text"] + image_skips(counts)
    for image_url, found in pairs:
        assert image_url.lower().startswith(("http://", "https://"))
        assert found and all(0 < len(t) <= 1000 for t in found)


json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), texts),
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(st.sampled_from(
                                ["path", "url", "alt", "title", "data-image-title", "Links",
                                 "Envelope", "x"]), inner, max_size=4)),
    max_leaves=12)
links = st.lists(st.one_of(json_values, st.fixed_dictionaries(
    {"path": st.sampled_from(["IMG@/src", "A@/href", 3]), "url": st.one_of(refs, json_values)},
    optional={"alt": st.one_of(texts, json_values), "title": st.one_of(texts, json_values),
              "data-image-title": texts})), max_size=6)


@FUZZ
@given(doc=st.one_of(json_values, st.builds(wat_envelope, st.one_of(
    st.sampled_from(["https://e.com/a/", ""]), json_values), st.one_of(links, json_values))))
def test_wat_json_counts_add_up(doc) -> None:
    counts: Counter[str] = Counter()
    found = wat_record_pairs(doc, counts)
    assert len(found) == counts["with_text"]
    assert counts["images"] == counts["with_text"] + image_skips(counts)


def warc_bytes(pages: list[tuple[str, str]]) -> bytes:
    out = io.BytesIO()
    writer = WARCWriter(out, gzip=False)
    for i, (url, body) in enumerate(pages):
        http = StatusAndHeaders("200 OK", [("Content-Type", "text/html")], protocol="HTTP/1.1")
        fixed = {"WARC-Record-ID": f"<urn:uuid:00000000-0000-0000-0000-{i:012d}>",
                 "WARC-Date": "2024-01-01T00:00:00Z"}  # same bytes every run (hypothesis)
        writer.write_record(writer.create_warc_record(url, "response",
                                                      payload=io.BytesIO(body.encode()),
                                                      http_headers=http,
                                                      warc_headers_dict=fixed))
    return out.getvalue()


@contextlib.contextmanager
def temp_file(data: bytes, suffix: str) -> Iterator[str]:
    """``data`` in a temporary file named ``*suffix`` (hypothesis runs many examples per
    test, so pytest's per-test tmp_path would be shared), removed afterwards."""
    fd, path = tempfile.mkstemp(suffix=suffix)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        yield path
    finally:
        os.unlink(path)


def read_warc(data: bytes, suffix: str) -> tuple[list, Counter[str]]:
    with temp_file(data, suffix) as path:
        counts: Counter[str] = Counter()
        try:
            # the pairs but for where they were read (the file, its gzip members' offsets)
            pairs = [p._replace(source_file=None, source_offset=None)
                     for p in warc_pairs(path, counts, max_text_chars=1000)]
        except InputError as exc:
            assert path in str(exc)
            return [], counts
        return pairs, counts


@FUZZ
@given(pages=st.lists(html_pages(), min_size=1, max_size=5), data=st.data())
def test_warc_members_split_anywhere_recover_every_record(pages, data) -> None:
    plain = warc_bytes([(f"https://e.com/{i}", p) for i, p in enumerate(pages)])
    cuts = sorted(set(data.draw(st.lists(st.integers(1, len(plain) - 1), max_size=6))))
    members = [plain[a:b] for a, b in zip([0, *cuts], [*cuts, len(plain)])]
    split, _ = read_warc(b"".join(gzip.compress(m, mtime=0) for m in members), ".warc.gz")
    whole, counts = read_warc(plain, ".warc")
    assert split == whole and counts["records"] == len(pages)


@FUZZ
@given(pages=st.lists(html_pages(), min_size=1, max_size=4), data=st.data(),
       compress=st.booleans())
def test_damaged_warc_never_raises_and_counts_add_up(pages, data, compress) -> None:
    plain = bytearray(warc_bytes([(f"https://e.com/{i}", p) for i, p in enumerate(pages)]))
    blob = bytearray(gzip.compress(bytes(plain), mtime=0)) if compress else plain
    for _ in range(data.draw(st.integers(0, 4))):  # flip bytes
        i = data.draw(st.integers(0, len(blob) - 1))
        blob[i] = data.draw(st.integers(0, 255))
    blob = blob[: data.draw(st.integers(1, len(blob)))]  # and maybe cut it short
    pairs, counts = read_warc(bytes(blob), ".warc.gz" if compress else ".warc")
    assert len(pairs) == counts["with_text"]
    assert counts["images"] == counts["with_text"] + image_skips(counts)


cells = st.one_of(refs, texts, st.integers(), st.none(), st.lists(st.integers(), max_size=2))


@FUZZ
@given(rows=st.lists(st.one_of(
    st.fixed_dictionaries({"url": cells, "caption": cells}), json_values,
    st.text(max_size=30)), max_size=8))
def test_jsonl_rows_counted(rows) -> None:
    lines = [json.dumps(r) if not isinstance(r, str) else r for r in rows]
    data = "\n".join(line.replace("\n", " ") for line in lines).encode()
    counts: Counter[str] = Counter()
    with temp_file(data, ".jsonl") as path:
        try:
            pairs = list(url_list_pairs(path, counts, max_text_chars=1000))
        except InputError as exc:
            assert path in str(exc) and "needs columns" in str(exc)
            return
    # lines as a text reader splits them (\n, \r and \r\n all end a line)
    lines = io.TextIOWrapper(io.BytesIO(data), encoding="utf-8", errors="replace", newline="")
    nonblank = sum(1 for line in lines if line.strip())
    assert nonblank == counts["rows"] + counts["skipped:bad_json_line"]
    assert counts["rows"] == len(pairs) + image_skips(counts)


@FUZZ
@given(text=st.text(max_size=300))
def test_csv_any_text(text) -> None:
    counts: Counter[str] = Counter()
    with temp_file(("url,caption\n" + text).encode("utf-8", "surrogatepass"), ".csv") as path:
        pairs = list(url_list_pairs(path, counts))
    assert counts["rows"] == len(pairs) + image_skips(counts)
