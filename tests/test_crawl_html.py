"""HTML extraction on hand-written pages: alt/title/figcaption, srcset, <base>, entities,
whitespace, non-http URLs and encodings."""

from __future__ import annotations

from pipeline.crawl.html_extract import (
    decode_html,
    extract_page,
    extract_pairs,
    largest_srcset_candidate,
)
from pipeline.crawl.pairs import make_uid, normalize_text, resolve_url

PAGE = """<!doctype html><html><head><base href="/static/"><title>t</title></head><body>
<img src="a.jpg" alt="  A   red&nbsp;fox &amp; a
  hen ">
<img src="b.jpg" title="only a title">
<figure><img src="c.jpg"><figcaption> The <b>caption</b> </figcaption></figure>
<img src="small.jpg" srcset="s.jpg 320w, large.jpg 1280w, m.jpg 640w" alt="wide">
<img src="x1.jpg" srcset="x1.jpg, x3.jpg 3x, x2.jpg 2x" alt="dense">
<img src="data:image/png;base64,AAAA" alt="inline">
<img src="javascript:void(0)" alt="js">
<img src="//cdn.example.org/p.png#frag" alt="protocol relative">
<img src="d.jpg" alt="">
<img alt="no src">
<a href="/next.html">next</a> <a href="mailto:x@y">mail</a> <a href="other.html#top">o</a>
</body></html>"""


def test_extract_fields_urls_and_counts() -> None:
    pairs, links, counts = extract_page(PAGE, "https://example.com/dir/page.html",
                                        with_links=True)
    assert [(url, texts[0]) for url, texts in pairs] == [
        ("https://example.com/static/a.jpg", "A red fox & a hen"),
        ("https://example.com/static/b.jpg", "only a title"),
        ("https://example.com/static/c.jpg", "The caption"),
        ("https://example.com/static/large.jpg", "wide"),
        ("https://example.com/static/x3.jpg", "dense"),
        ("https://cdn.example.org/p.png", "protocol relative"),
    ]
    assert counts["images"] == 10
    assert counts["with_text"] == 6
    assert counts["skipped:no_http_url"] == 3  # data:, javascript:, missing src
    assert counts["skipped:empty_text"] == 1
    assert links == ["https://example.com/next.html", "https://example.com/static/other.html"]


def test_alt_only_fields() -> None:
    pairs, counts = extract_pairs(PAGE, "https://example.com/", text_fields=("alt",))
    assert [t[0] for _, t in pairs] == ["A red fox & a hen", "wide", "dense", "protocol relative"]
    assert counts["skipped:empty_text"] == 3


def test_srcset_parsing() -> None:
    assert largest_srcset_candidate("a.jpg 1x, b.jpg 2x") == "b.jpg"
    assert largest_srcset_candidate("a.jpg 100w,b.jpg 50w") == "a.jpg"
    assert largest_srcset_candidate("img,1.jpg 2x, img,2.jpg 3x") == "img,2.jpg"
    assert largest_srcset_candidate("") is None


def test_encodings() -> None:
    latin1 = '<html><body><img src="/a.png" alt="Café crème"></body></html>'.encode("latin-1")
    assert extract_pairs(latin1, "http://h/", "text/html; charset=ISO-8859-1")[0] == [
        ("http://h/a.png", ("Café crème",))]
    meta = ('<html><head><meta charset="windows-1251"></head><body>'
            '<img src="a.png" alt="Пожарная"></body></html>').encode("cp1251")
    assert extract_pairs(meta, "http://h/")[0][0][1] == ("Пожарная",)
    utf8 = '<?xml version="1.0" encoding="utf-8"?><html><img src="a" alt="日本"></html>'
    assert extract_pairs(utf8.encode(), "http://h/")[0][0][1] == ("日本",)
    assert decode_html(b"caf\xe9") == "café"  # not UTF-8: windows-1252
    assert extract_pairs(b"", "http://h/")[1]["skipped:empty_page"] == 1


def test_pair_helpers() -> None:
    assert normalize_text("a &amp; b\u00a0\t c", unescape=True) == "a & b c"
    assert normalize_text("a &amp; b") == "a &amp; b"
    assert resolve_url("ftp://x/y", None) is None
    assert resolve_url("../i.png", "http://h/a/b/") == "http://h/a/i.png"
    assert make_uid("u", "t") == make_uid("u", "t") != make_uid("u", "t ")
    assert len(make_uid("u", "t")) == 32
