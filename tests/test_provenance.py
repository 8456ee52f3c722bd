"""Provenance and licence per sample, end to end: a WARC built here with warcio through
`wit crawl --warc` (file, record offset, WARC-Date, the page's rel="license"), a URL list's
rows (file, row number), and a live crawl of a loopback site whose pages carry licence links
and whose images carry EXIF/XMP licence fields, then a real `wit shards --licenses` run:
the Parquet (pandas), each sample's KEY.json, the summary and the report."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from helpers.licensed import rights_exif, xmp_packet
from helpers.shards import TRUSTED, Server, send
from PIL import Image, PngImagePlugin
from warcio.archiveiterator import ArchiveIterator
from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

from pipeline.cli import main
from pipeline.shards.url_lists import UrlListOptions, input_tables, open_url_lists
from schemas import CANDIDATES, SAMPLES, read_validated

pytestmark = pytest.mark.integration

BY = "https://creativecommons.org/licenses/by/4.0/"
CC0 = "https://creativecommons.org/publicdomain/zero/1.0/"
BY_SA = "https://creativecommons.org/licenses/by-sa/4.0/"
WORDS = ["tiger", "house", "flower", "castle", "guitar"]


def write_warc(path: Path, pages: list[tuple[str, str, str]]) -> None:
    """A gzipped WARC (one member per record, as Common Crawl's) of (url, date, html)
    responses, each after a request record."""
    with open(path, "wb") as f:
        writer = WARCWriter(f, gzip=True)
        for url, date, body in pages:
            writer.write_record(writer.create_warc_record(
                url, "request", payload=io.BytesIO(b"GET / HTTP/1.1\r\n\r\n"),
                warc_headers_dict={"WARC-Date": date}))
            http = StatusAndHeaders("200 OK", [("Content-Type", "text/html; charset=utf-8")],
                                    protocol="HTTP/1.1")
            writer.write_record(writer.create_warc_record(
                url, "response", payload=io.BytesIO(body.encode()), http_headers=http,
                warc_headers_dict={"WARC-Date": date}))


def metadata(out: Path) -> Path:
    path = out / "queries" / "metadata.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(WORDS))
    return path


def read_candidates(out: Path) -> list[dict]:
    return [row for p in sorted((out / "candidates").glob("part-*.parquet"))
            for row in read_validated(str(p), CANDIDATES).to_pylist()]


def test_warc_crawl_records_file_offset_date_and_page_licences(tmp_path):
    warc = tmp_path / "pages.warc.gz"
    licensed = (f'<html><head><link rel="license" href="{BY_SA}"><meta name="dc.rights" '
                f'content="Example Museum"></head><body><img src="/a.jpg" alt="a tiger '
                f'asleep"><a rel="license" href="{BY}">CC BY</a></body></html>')
    write_warc(warc, [
        ("https://one.example/page", "2021-03-04T05:06:07Z", licensed),
        ("https://two.example/", "2022-01-02T03:04:05Z",
         '<html><body><img src="https://img.example/h.jpg" alt="a house"></body></html>'),
    ])
    out = tmp_path / "out"
    assert main(["crawl", "--warc", str(warc), "--metadata", str(metadata(out)),
                 "--out", str(out)]) == 0
    rows = {r["text"]: r for r in read_candidates(out)}
    tiger, house = rows["a tiger asleep"], rows["a house"]
    assert {tiger["source"], house["source"]} == {"warc"}
    assert tiger["source_file"] == house["source_file"] == str(warc)
    assert (tiger["fetch_time"], house["fetch_time"]) == ("2021-03-04T05:06:07Z",
                                                          "2022-01-02T03:04:05Z")
    assert tiger["page_licenses"] == [f"link_license={BY_SA}", "dc_rights=Example Museum",
                                      f"rel_license={BY}"]
    assert house["page_licenses"] == []
    # the offset is the record's gzip member: reading from there gives that response
    for row in (tiger, house):
        with open(warc, "rb") as f:
            f.seek(row["source_offset"])
            record = next(iter(ArchiveIterator(f)))
        assert record.rec_type == "response"
        assert record.rec_headers.get_header("WARC-Target-URI") == row["page_url"]
    assert 0 < tiger["source_offset"] < house["source_offset"] < warc.stat().st_size


def test_url_list_rows_name_their_file_and_row(tmp_path):
    first, second = tmp_path / "a.csv", tmp_path / "b.jsonl"
    first.write_text("url,caption\nhttps://e.org/1.jpg,one\nnot a url,two\n")
    second.write_text('{"url": "https://e.org/3.jpg", "caption": "three"}\nbroken\n'
                      '{"url": "https://e.org/5.jpg", "caption": "five"}\n')
    plan = open_url_lists([str(tmp_path)], UrlListOptions())
    rows = [r for table in input_tables(plan) for r in table.to_pylist()]
    assert [(r["key"], r["source_file"], r["source_offset"]) for r in rows] == [
        ("0000000000", str(first), 0), ("0000000001", str(first), 1),
        ("0000000002", str(second), 0), ("0000000003", str(second), 1),
        ("0000000004", str(second), 2)]
    assert {r["fetch_time"] for r in rows} == {None}


# -- live crawl, then wit shards --licenses ---------------------------------------------------

def noise(seed: int, size=(320, 240)) -> Image.Image:
    """A distinct image per seed (noise: far apart in pHash, no near-duplicates)."""
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1] // 8, size[0] // 8, 3))
    return Image.fromarray(pixels.astype(np.uint8)).resize(size, Image.Resampling.NEAREST)


def encoded(image: Image.Image, fmt: str, **params) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **params)
    return buffer.getvalue()


def licensed_site(site: Server) -> None:
    """index.html (rel=license CC BY 4.0): a plain JPEG, and a JPEG behind a redirect whose
    XMP says CC0; other.html (no licence): a JPEG whose EXIF says all rights reserved, a PNG
    whose XMP says CC BY-SA 4.0, a plain JPEG."""
    png_info = PngImagePlugin.PngInfo()
    png_info.add_itxt("XML:com.adobe.xmp", xmp_packet(BY_SA).decode())
    images = {
        "/img/0.jpg": (encoded(noise(0), "JPEG"), "image/jpeg"),
        "/img/1.jpg": (encoded(noise(1), "JPEG", xmp=xmp_packet(CC0), exif=rights_exif()),
                       "image/jpeg"),
        "/img/2.jpg": (encoded(noise(2), "JPEG", exif=rights_exif(
            "(c) 2024 Jane Doe, all rights reserved")), "image/jpeg"),
        "/img/3.png": (encoded(noise(3), "PNG", pnginfo=png_info), "image/png"),
        "/img/4.jpg": (encoded(noise(4), "JPEG"), "image/jpeg"),
    }
    for path, (body, kind) in images.items():
        site.routes[path] = lambda h, body=body, kind=kind: send(h, 200, body, kind)

    def redirect(h):
        h.send_response(302)
        h.send_header("Location", "/img/1.jpg")
        h.send_header("Content-Length", "0")
        h.end_headers()

    site.routes["/r/1.jpg"] = redirect
    index = (f'<html><head><link rel="license" href="{BY}"></head><body>'
             '<img src="/img/0.jpg" alt="a tiger in the sun">'
             '<img src="/r/1.jpg" alt="a house by the sea">'
             '<a href="/other.html">more</a></body></html>')
    other = ('<html><body><img src="/img/2.jpg" alt="a flower in a pot">'
             '<img src="/img/3.png" alt="a castle on a hill">'
             '<img src="/img/4.jpg" alt="a guitar on a chair"></body></html>')
    site.routes["/index.html"] = lambda h: send(h, 200, index.encode(), "text/html")
    site.routes["/other.html"] = lambda h: send(h, 200, other.encode(), "text/html")
    site.routes["/robots.txt"] = lambda h: send(h, 200, b"User-agent: *\nAllow: /\n",
                                                "text/plain")


def test_live_crawl_then_shards_with_licences(tmp_path, capsys):
    site = Server()
    licensed_site(site)
    out = tmp_path / "out"
    try:
        assert main(["crawl", "--seeds", site.url("/index.html"), "--metadata",
                     str(metadata(out)), "--out", str(out), "--allow-network", TRUSTED,
                     "--delay", "0"]) == 0
        candidates = {r["text"]: r for r in read_candidates(out)}
        assert main(["shards", "--candidates", str(out / "candidates"), "--out", str(out),
                     "--allow-network", TRUSTED, "--processes", "1", "--filter", "none",
                     "--licenses", "CC0-1.0,cc-by-4.0," + BY_SA]) == 0
    finally:
        site.close()
    summary = capsys.readouterr().out

    tiger = candidates["a tiger in the sun"]
    assert tiger["source"] == "live" and tiger["source_file"] is None
    assert tiger["page_url"] == site.url("/index.html")
    assert tiger["page_licenses"] == [f"link_license={BY}"]
    assert tiger["fetch_time"].endswith("Z") and len(tiger["fetch_time"]) == 20
    assert candidates["a flower in a pot"]["page_licenses"] == []

    parquets = sorted((out / "shards").glob("*.parquet"))
    df = pd.concat(pd.read_parquet(p) for p in parquets).set_index("caption")
    assert pq.read_schema(parquets[0]).names == SAMPLES.names
    want = {  # caption: (status, license)
        "a tiger in the sun": ("success", "CC-BY-4.0"),  # the page's licence
        "a house by the sea": ("success", "CC0-1.0"),  # the image's XMP beats the page
        "a castle on a hill": ("success", "CC-BY-SA-4.0"),  # PNG iTXt XMP
        "a flower in a pot": ("filtered:license", "(c) 2024 Jane Doe, all rights reserved"),
        "a guitar on a chair": ("filtered:license", None),
    }
    assert {c: (df.loc[c, "status"], df.loc[c, "license"]) for c in want} == want
    house = df.loc["a house by the sea"]
    assert house["url"] == site.url("/r/1.jpg") and house["final_url"] == site.url("/img/1.jpg")
    assert list(house["image_licenses"]) == [
        f"xmp_cc_license={CC0}", "xmp_web_statement=https://example.org/rights",
        "xmp_usage_terms=Free to use with attribution", "xmp_dc_rights=(c) Jane Doe",
        "exif_copyright=(c) 2024 Jane Doe", "exif_artist=Jane Doe"]
    assert list(house["page_licenses"]) == [f"link_license={BY}"]
    for caption in want:
        row = df.loc[caption]
        # robots.txt, X-Robots-Tag and TDMRep (tdmrep.json + header) all checked and passed
        assert row["http_status"] == 200 and list(row["optout_checks"]) == [
            "robots_txt", "x_robots_tag", "tdm_reservation"]
        assert row["source"] == "live" and row["fetch_time"] == \
            candidates[caption]["fetch_time"]
    assert df.loc["a castle on a hill", "content_type"] == "image/png"

    import webdataset as wds  # each sample's KEY.json, as a training reader sees it

    tars = [str(t) for t in sorted((out / "shards").glob("*.tar"))]
    metas = {meta["caption"]: meta for _, meta in wds.WebDataset(
        tars, shardshuffle=False).decode("pil").to_tuple("jpg", "json")}
    assert set(metas) == {c for c, (s, _) in want.items() if s == "success"}
    assert metas["a house by the sea"]["license"] == "CC0-1.0"
    assert metas["a house by the sea"]["final_url"] == site.url("/img/1.jpg")
    assert metas["a tiger in the sun"]["page_licenses"] == [f"link_license={BY}"]

    manifest = json.loads((out / "shards" / "manifest.json").read_text())
    assert manifest["licenses"] == {"CC-BY-4.0": 1, "CC-BY-SA-4.0": 1, "CC0-1.0": 1}
    assert manifest["source_domains"] == {"distinct": 1, "top": [["127.0.0.2", 3]]}
    assert manifest["filtered"]["license"] == 2
    assert manifest["config"]["filters"]["licenses"] == ["CC0-1.0", "CC-BY-4.0", "CC-BY-SA-4.0"]
    assert "filtered:license: 2" in summary
    assert "licences of the kept samples: CC-BY-4.0 1, CC-BY-SA-4.0 1, CC0-1.0 1; --licenses " \
           "CC0-1.0,CC-BY-4.0,CC-BY-SA-4.0: 2 image(s) dropped" in summary
    report = (out / "shards" / "report.html").read_text()
    assert "Licences of the kept samples" in report and "CC-BY-SA-4.0" in report
    assert "Source domains of the kept samples" in report and "127.0.0.2" in report
    assert "license (--licenses CC0-1.0,CC-BY-4.0,CC-BY-SA-4.0)" in report
