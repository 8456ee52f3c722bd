"""`wit crawl` (live crawl of a loopback site) then `wit shards` on its candidates, both
through the `wit` command line."""

from __future__ import annotations

import json
import tarfile

import pandas as pd
import pytest
from helpers.shards import TRUSTED, Server, real_images, send, to_jpeg

from pipeline.cli import main

pytestmark = pytest.mark.integration

WORDS = ["tiger", "house", "flower", "guitar", "tree", "castle"]


def test_crawl_then_shards(tmp_path, capsys):
    images = real_images(len(WORDS))
    site = Server()
    # the house image also has a title: both texts travel to the sample (MetaCLIP)
    page = "".join(f'<p><img src="/img/{i}.jpg" alt="a picture of a {w} in the sun"'
                   + (' title="a red house"' if w == "house" else "") + "></p>"
                   for i, w in enumerate(WORDS)) + '<a href="/more.html">more</a>'
    site.routes["/index.html"] = lambda h: send(h, 200, f"<html><body>{page}</body></html>".encode(),
                                                "text/html")
    site.routes["/robots.txt"] = lambda h: send(h, 200, b"User-agent: *\nAllow: /\n", "text/plain")
    for i, (_, image) in enumerate(images):
        site.routes[f"/img/{i}.jpg"] = to_jpeg(image)
    site.routes["/img/9.jpg"] = to_jpeg(images[0][1])  # an exact copy under another URL
    site.routes["/more.html"] = lambda h: send(
        h, 200, b'<html><img src="/img/9.jpg" alt="the tiger once more"></html>', "text/html")
    out = tmp_path / "out"
    (out / "queries").mkdir(parents=True)
    (out / "queries" / "metadata.json").write_text(json.dumps(WORDS + ["sun"]))
    try:
        assert main(["crawl", "--metadata", str(out / "queries" / "metadata.json"), "--out", str(out),
                     "--seeds", site.url("/index.html"), "--allow-network", TRUSTED,
                     "--delay", "0"]) == 0
        assert main(["shards", "--candidates", str(out / "candidates"), "--out", str(out),
                     "--allow-network", TRUSTED, "--processes", "1", "--samples-per-shard", "4"]) == 0
    finally:
        site.close()
    df = pd.concat(pd.read_parquet(p) for p in sorted((out / "shards").glob("*.parquet")))
    crawled = pd.concat(pd.read_parquet(p) for p in sorted((out / "candidates").glob("part-*.parquet")))
    assert sorted(df["uid"]) == sorted(crawled["uid"])
    assert (df["status"] == "success").sum() == len(WORDS)
    assert df["status"].str.startswith("duplicate_of:").sum() == 1
    report = (out / "shards" / "report.html").read_text()
    assert "tiger" in report  # entry names from the crawl's entry_counts.parquet
    assert "kept in 2 shard(s)" in capsys.readouterr().out  # the summary, on stdout
    house = df[df["caption"] == "a picture of a house in the sun"].iloc[0]
    assert list(house["texts"]) == ["a picture of a house in the sun", "a red house"]
    metas, txts = [], {}
    for shard in sorted((out / "shards").glob("*.tar")):
        with tarfile.open(shard) as tar:
            metas += [json.load(tar.extractfile(m)) for m in tar.getmembers()
                      if m.name.endswith(".json")]
            txts.update({m.name: tar.extractfile(m).read().decode() for m in tar.getmembers()
                         if m.name.endswith(".txt")})
    for meta in metas:
        assert meta["texts"][0] == meta["caption"] == txts[f"{meta['key']}.txt"]
    assert ["a picture of a house in the sun", "a red house"] in [m["texts"] for m in metas]
