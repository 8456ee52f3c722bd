"""`wit shards` end to end on a loopback server: the fault matrix, filters, exact/near
duplicates, decontamination, and the output formats (webdataset, pandas, sizes.json)."""

from __future__ import annotations

import io
import json
import tarfile
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest
from helpers.shards import (
    Server,
    english_caption,
    fault_routes,
    huge_png,
    options,
    png_header_bomb,
    real_images,
    to_jpeg,
    write_candidates,
)
from PIL import Image, ImageEnhance

from pipeline.shards import job as shards_job

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("shards")
    images = real_images(15)
    origin, private = Server(), Server("127.0.0.1")
    private.routes["/img.jpg"] = to_jpeg(images[0][1])
    expected: dict[str, str] = {}
    rows: list[dict] = []

    def add(path: str, body: bytes | None, status: str, text: str = "a real picture of things"):
        if body is not None:
            origin.routes[path] = body
        rows.append({"url": origin.url(path), "text": text})
        expected[origin.url(path)] = status

    for i, (_, image) in enumerate(images[:10]):
        add(f"/img/{i}.jpg", to_jpeg(image), "success", english_caption(i))
    base0, base1, base2, base3 = (images[i][1] for i in range(4))
    add("/img/exact-copy.jpg", to_jpeg(base0), "duplicate_of", "the same bytes again")
    add("/img/resized.jpg", to_jpeg(base1.resize((base1.width * 2 // 3, base1.height * 2 // 3))),
        "duplicate_of", "a smaller copy")
    add("/img/brighter.jpg", to_jpeg(ImageEnhance.Brightness(base2).enhance(1.15), 70),
        "duplicate_of", "a brighter copy")
    w, h = base3.size
    add("/img/cropped.jpg", to_jpeg(base3.crop((w // 50, h // 50, w - w // 50, h - h // 50))),
        "duplicate_of", "a slightly cropped copy")
    add("/img/small.jpg", to_jpeg(images[10][1].resize((120, 120))), "filtered:min_side")
    wide = images[11][1].resize((900, 250))
    add("/img/wide.jpg", to_jpeg(wide), "filtered:aspect_ratio")
    add("/img/tiny-bytes.jpg", to_jpeg(Image.new("RGB", (300, 300), "white")), "filtered:min_bytes")
    add("/img/one-word.jpg", to_jpeg(images[12][1]), "filtered:caption_words", "word")
    add("/img/two-words.jpg", to_jpeg(images[12][1]), "filtered:caption_words", "two words")
    add("/img/five-chars.jpg", to_jpeg(images[12][1]), "filtered:caption_chars", "a b c")
    add("/img/german.jpg", to_jpeg(images[12][1]), "filtered:language",
        "Ein kleiner Hund spielt im Garten mit einem roten Ball")
    add("/img/eval-copy.jpg", to_jpeg(images[13][1]), "contaminated")
    eval_dir = tmp / "eval"
    eval_dir.mkdir()
    images[13][1].resize((200, 200)).save(eval_dir / "e0.png")

    faults = fault_routes(origin, to_jpeg(images[14][1]), private.url("/img.jpg"),
                          huge_png(2000, 2000), png_header_bomb())
    for path, status in faults.items():
        add(path, None, status)
    add("/missing-on-server.jpg", None, "failed_to_download")
    candidates = write_candidates(tmp / "candidates", rows, files=2)
    out = tmp / "out"
    try:
        manifest = shards_job.run(options(candidates, out, eval_images=[str(eval_dir)]), [])
    finally:
        origin.close()
        private.close()
    return {"out": out, "manifest": manifest, "expected": expected, "rows": rows,
            "origin_hits": origin.hits, "private_hits": private.hits}


def read_parquets(out: Path) -> pd.DataFrame:
    return pd.concat([pd.read_parquet(p) for p in sorted((out / "shards").glob("*.parquet"))],
                     ignore_index=True)


def test_every_row_has_the_expected_status(run):
    df = read_parquets(run["out"])
    assert len(df) == len(run["rows"])
    assert df["key"].is_unique
    got = dict(zip(df["url"], df["status"]))
    for url, want in run["expected"].items():
        assert got[url].startswith(want), (url, got[url], df.set_index("url").loc[url, "error_message"])
    failed = df[df["status"] != "success"]
    assert failed["error_message"].notna().all()


def test_download_stats_have_the_final_shape_and_count_every_status(run):
    """The download rounds' _stats.json have the final shards' keys (plus img2dataset's
    timings and the shard's network counters) and count the download Parquet's statuses: one
    shape for both."""
    work = run["out"] / "shards" / "_work" / "round0"
    statuses = Counter(s for p in sorted(work.glob("*.parquet"))
                       for s in pd.read_parquet(p, columns=["status"])["status"])
    stats = [json.loads(p.read_text()) for p in sorted(work.glob("*_stats.json"))]
    final = json.loads((run["out"] / "shards" / "00000_stats.json").read_text())
    assert stats and all(list(s) == [*final, "duration", "start_time", "end_time", "network"]
                         for s in stats)
    network = run["manifest"]["network"]
    # one origin, named by its address: no DNS query; every request had a lease
    assert network["dns"]["queries"] == 0 and network["hosts"]["requests"] > 0
    assert network["hosts"]["busy_answers"] == network["hosts"]["backoffs"] == 1  # the 429
    assert sum((Counter(s["status_dict"]) for s in stats), Counter()) == statuses
    assert sum(s["filtered"] for s in stats) == sum(n for k, n in statuses.items()
                                                    if k.startswith("filtered:")) > 0
    assert sum(s["failed_to_download"] for s in stats) == statuses["failed_to_download"] > 0


def test_guard_never_reached_the_private_target_and_robots_fetched_once(run):
    assert run["private_hits"]["/img.jpg"] == 0
    assert run["origin_hits"]["/robots.txt"] == 1
    assert run["origin_hits"]["/private/secret.jpg"] == 0
    assert run["origin_hits"]["/f/429.jpg"] == 2  # 429 + Retry-After, then success


def test_caption_rules_run_before_fetching_and_language_after(run):
    hits = run["origin_hits"]
    assert hits["/img/one-word.jpg"] == hits["/img/two-words.jpg"] == 0
    assert hits["/img/five-chars.jpg"] == 0
    assert hits["/img/german.jpg"] == 1  # language ID runs in the Beam job
    manifest = json.loads((run["out"] / "shards" / "manifest.json").read_text())
    assert manifest["filtered"]["language"] == 1 and manifest["filtered"]["caption_words"] == 2
    assert manifest["config"]["filters"]["languages"] == ["en"]
    assert manifest["config"]["filter_changes"] == {"min_bytes": {"value": 5000, "preset": 0}}


def test_duplicates_point_to_their_original(run):
    df = read_parquets(run["out"]).set_index("url")
    origin = run["rows"][0]["url"].rsplit("/img/", 1)[0]
    for copy, original in (("exact-copy", 0), ("resized", 1), ("brighter", 2), ("cropped", 3)):
        keeper = df.loc[f"{origin}/img/{original}.jpg", "key"]
        row = df.loc[f"{origin}/img/{copy}.jpg"]
        # the keeper rule prefers more pixels: the original (or an equal copy with smaller key)
        assert row["duplicate_of"] == keeper, (copy, row["status"])
    manifest = run["manifest"]
    assert manifest["duplicates"] == {"exact": 1, "near": 3}


def test_shards_read_by_webdataset_and_sizes(run):
    import webdataset as wds

    shards = run["out"] / "shards"
    sizes = json.loads((shards / "sizes.json").read_text())
    tars = sorted(shards.glob("*.tar"))
    assert [t.name for t in tars] == sorted(sizes)
    assert all(v == 5 for v in list(sizes.values())[:-1])
    df = read_parquets(run["out"])
    kept = df[df["status"] == "success"].sort_values("key")
    assert sum(sizes.values()) == len(kept) == run["manifest"]["counts"]["kept"]
    dataset = wds.WebDataset([str(t) for t in tars], shardshuffle=False).decode("pil").to_tuple(
        "__key__", "jpg;png", "txt", "json")
    samples = list(dataset)
    assert [s[0] for s in samples] == kept["key"].tolist()
    for key, image, text, meta in samples:
        assert isinstance(image, Image.Image) and min(image.size) == 128
        assert text == meta["caption"] and meta["status"] == "success" and meta["key"] == key
    with tarfile.open(tars[0]) as tar:
        names = tar.getnames()
    assert names[:3] == [f"{samples[0][0]}.jpg", f"{samples[0][0]}.txt", f"{samples[0][0]}.json"]


def test_manifest_and_report(run):
    shards = run["out"] / "shards"
    manifest = json.loads((shards / "manifest.json").read_text())
    counts = manifest["counts"]
    assert counts["candidates"] == len(run["rows"])
    assert counts["candidates"] >= counts["downloaded"] >= counts["after_filters"] \
        >= counts["after_decontamination"] >= counts["after_exact_dedup"] >= counts["kept"]
    assert manifest["statuses"]["contaminated"] == 1
    assert manifest["filtered"]["max_pixels"] == 2
    assert manifest["inputs"][0]["sha256"]
    assert manifest["versions"]["img2dataset"]
    html = (shards / "report.html").read_text()
    # side, caption, licences, source domains, statuses
    assert html.count("<svg") == 5 and "data:image/jpeg;base64" in html
    assert "Licences of the kept samples" in html and "127.0.0.2" in html
    assert manifest["licenses"] == {"(none)": counts["kept"]}  # no licence on these pages
    assert f">{manifest['statuses']['contaminated']}</text>" in html  # bar values as text
    stats = json.loads((shards / "00000_stats.json").read_text())
    assert stats["count"] >= stats["successes"] == 5
    image = Image.open(io.BytesIO(next(iter(tarfile.open(sorted(shards.glob("*.tar"))[0]).extractfile(m).read()
                                             for m in tarfile.open(sorted(shards.glob("*.tar"))[0]).getmembers()
                                             if m.name.endswith(".jpg")))))
    assert image.format == "JPEG"
