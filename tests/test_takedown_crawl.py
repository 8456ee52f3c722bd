"""`wit crawl --exclude`: a takedown list keeps its images out of the candidates and its
pages unfetched by the live crawler (loopback site)."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from helpers.shards import TRUSTED, Server, real_images, send, to_jpeg

from pipeline.cli import main

pytestmark = pytest.mark.integration

WORDS = ["tiger", "house", "flower", "guitar"]


def test_crawl_exclude_skips_listed_images_and_pages(tmp_path):
    images = real_images(len(WORDS) + 1)
    site = Server()
    page = "".join(f'<p><img src="/img/{i}.jpg" alt="a picture of a {w} in the sun"></p>'
                   for i, w in enumerate(WORDS)) + '<a href="/private.html">more</a>'
    site.routes["/index.html"] = lambda h: send(h, 200, f"<html><body>{page}</body></html>".encode(),
                                                "text/html")
    site.routes["/robots.txt"] = lambda h: send(h, 200, b"User-agent: *\nAllow: /\n", "text/plain")
    site.routes["/private.html"] = lambda h: send(
        h, 200, b'<html><img src="/img/9.jpg" alt="a picture of a tiger at home"></html>',
        "text/html")
    for i, (_, image) in enumerate(images):
        site.routes[f"/img/{i}.jpg"] = to_jpeg(image)
    listed = tmp_path / "takedown.txt"
    listed.write_text(f"url {site.url('/img/1.jpg')}\npage {site.url('/private.html')}\n")
    out = tmp_path / "out"
    (out / "queries").mkdir(parents=True)
    (out / "queries" / "metadata.json").write_text(json.dumps(WORDS + ["sun"]))
    try:
        assert main(["crawl", "--metadata", str(out / "queries" / "metadata.json"),
                     "--out", str(out), "--seeds", site.url("/index.html"),
                     "--allow-network", TRUSTED, "--delay", "0",
                     "--exclude", str(listed)]) == 0
    finally:
        site.close()
    crawled = pd.concat(pd.read_parquet(p) for p in sorted((out / "candidates").glob("part-*.parquet")))
    assert sorted(crawled["url"]) == sorted(site.url(f"/img/{i}.jpg") for i in (0, 2, 3))
    assert site.hits["/private.html"] == 0  # the listed page is never fetched
    stats = json.loads((out / "candidates" / "stats.json").read_text())
    live = stats["sources"]["live"]
    # one image of the index page dropped, the listed page not fetched
    assert live["removed"] == 1 and live["skipped"]["removed"] == 1
    assert live["with_text"] == live["removed"] + live.get("unmatched", 0) + live.get("duplicates", 0) \
        + live["matched"]


def test_crawl_exclude_names_a_bad_line(tmp_path, capsys):
    listed = tmp_path / "takedown.txt"
    listed.write_text("domain\n")
    (tmp_path / "metadata.json").write_text('["tiger"]')
    assert main(["crawl", "--metadata", str(tmp_path / "metadata.json"), "--out",
                 str(tmp_path / "out"), "--seeds", "http://127.0.0.2:9/",
                 "--exclude", str(listed)]) == 1
    assert f"{listed}:1: domain: no value" in capsys.readouterr().err
