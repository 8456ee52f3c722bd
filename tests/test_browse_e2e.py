"""`wit index` and `wit browse` end to end on a real `wit shards` output (real photos served
on loopback, one caption holding <script>/onerror markup, CLIP-scored with a checkpoint
trained in the test): the index's arrays against the model, resuming from a part, the JSON
API of a running `wit browse`, and the pages in headless Debian chromium driven by
chromedriver (search, facet, sample, upload), where the hostile caption must show as text."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import torch
from helpers.shards import (
    TRUSTED,
    Server,
    real_images,
    served_rows,
    to_jpeg,
    wit_env,
    write_candidates,
)
from helpers.tinyclip import train_tiny_checkpoint

from pipeline.browse.embed import Encoder
from pipeline.cli import main as wit
from schemas.index import MAPPING

pytestmark = pytest.mark.integration

HOSTILE = 'a photo <script>alert("xss")</script><img src=x onerror=alert(1)> of a bridge'


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """(OUT root with shards/ and index/, checkpoint)."""
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("browse")
    checkpoint = train_tiny_checkpoint(root / "clip")
    server = Server()
    try:
        rows = served_rows(server, 8)
        server.routes["/img/hostile.jpg"] = to_jpeg(real_images(9)[8][1])
        rows.append({"url": server.url("/img/hostile.jpg"), "text": HOSTILE, "matched_entry_ids": [3]})
        candidates = write_candidates(root / "candidates", rows)
        out = root / "out"
        assert wit(["shards", "--candidates", str(candidates), "--out", str(out), "--allow-network",
                    TRUSTED, "--processes", "1", "--threads", "4", "--image-size", "64",
                    "--download-shard-size", "5", "--samples-per-shard", "3",
                    "--languages", "any", "--clip-filter", str(checkpoint)]) == 0
    finally:
        server.close()
    assert wit(["index", "--shards", str(out / "shards"), "--checkpoint", str(checkpoint),
                "--out", str(out / "index"), "--batch-size", "4"]) == 0
    return out, checkpoint


def test_index_holds_every_kept_sample_with_its_embeddings(built):
    out, checkpoint = built
    shards = pd.concat([pd.read_parquet(p).assign(shard=p.stem)
                        for p in sorted((out / "shards").glob("*.parquet"))])
    kept = shards[shards["status"] == "success"].sort_values(["shard", "key"])
    mapping = pq.read_table(out / "index" / "mapping.parquet")
    assert mapping.schema.equals(MAPPING)
    rows = mapping.to_pandas()
    assert rows["index_id"].tolist() == list(range(len(kept))) and len(kept) >= 6
    assert list(zip(rows["shard"], rows["key"])) == list(zip(kept["shard"], kept["key"]))
    assert rows["clip_score"].tolist() == kept["clip_score"].tolist()
    assert HOSTILE in rows["caption"].tolist()
    info = json.loads((out / "index" / "index.json").read_text())
    assert info["kind"] == "flat" and info["count"] == len(kept) and not (out / "index" / "_parts").exists()
    # the stored vectors are the model's embeddings of the tar's image and the caption
    encoder = Encoder(str(checkpoint))
    image, text = np.load(out / "index" / "image.npy"), np.load(out / "index" / "text.npy")
    last = rows.iloc[-1]
    with open(out / "shards" / f"{last['shard']}.tar", "rb") as f:
        f.seek(last["image_offset"])
        data = f.read(last["image_size"])
    np.testing.assert_allclose(image[-1], encoder.images([encoder.image_tensor(data)])[0], atol=1e-5)
    np.testing.assert_allclose(text[-1], encoder.texts([last["caption"]])[0], atol=1e-5)
    # the stored CLIP score is the cosine of the two (the filter's model is the index's)
    assert float(image[-1] @ text[-1]) == pytest.approx(last["clip_score"], abs=1e-5)


def test_index_resumes_from_the_parts_of_a_killed_run(built, tmp_path):
    """A part left by an earlier run is used as it is: its vectors (marked here) end up in
    the index, the other shards are embedded; the HNSW kind is built on request."""
    out, checkpoint = built
    first = run_dir = tmp_path / "index"
    assert wit(["index", "--shards", str(out / "shards"), "--checkpoint", str(checkpoint),
                "--out", str(first), "--kind", "hnsw"]) == 0
    info = json.loads((first / "index.json").read_text())
    assert info["kind"] == "hnsw" and info["params"]["efSearch"] == 64
    # leave the parts of a run killed after its first shard: that shard's part, marked
    shard = next(iter(info["shards"]))
    start, count = info["shards"][shard]
    parts = run_dir / "_parts"
    parts.mkdir()
    pq.write_table(pq.read_table(first / "mapping.parquet").slice(start, count).drop(["index_id"]),
                   parts / f"{shard}.parquet")
    marker = np.full((count, info["dim"]), 1 / np.sqrt(info["dim"]), dtype=np.float32)
    np.savez(parts / f"{shard}.npz", image=marker, text=marker, skipped=np.array(0))
    stat = os.stat(checkpoint)
    (parts / "run.json").write_text(json.dumps({"checkpoint": os.path.abspath(checkpoint),
                                                "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}))
    (first / "index.json").unlink()
    done = subprocess.run([sys.executable, "-m", "pipeline.cli", "index", "--shards",
                           str(out / "shards"), "--checkpoint", str(checkpoint), "--out", str(first)],
                          capture_output=True, text=True, env=wit_env(), timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"resuming: 1 of {len(info['shards'])} shards already embedded" in done.stderr
    assert "faiss flat (Flat)" in done.stdout
    image = np.load(first / "image.npy")
    np.testing.assert_array_equal(image[start:start + count], marker)
    reference = np.load(out / "index" / "image.npy")
    others = np.r_[0:start, start + count:len(image)]
    np.testing.assert_allclose(image[others], reference[others], atol=1e-6)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def browse(built, tmp_path_factory):
    """A running `wit browse OUT` on 127.0.0.1 (its index found in OUT/index); its base URL."""
    out, _ = built
    port = _free_port()
    log = tmp_path_factory.mktemp("browse-log") / "browse.log"
    with open(log, "wb") as sink:
        proc = subprocess.Popen([sys.executable, "-m", "pipeline.cli", "browse", str(out),
                                 "--port", str(port)], stdout=sink, stderr=subprocess.STDOUT,
                                env=wit_env())
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            if proc.poll() is not None:
                pytest.fail(f"wit browse exited {proc.returncode}: {log.read_text()[-3000:]}")
            try:
                urllib.request.urlopen(base + "/", timeout=5).read()
                break
            except OSError:
                time.sleep(0.1)
        else:
            pytest.fail(f"wit browse did not answer: {log.read_text()[-3000:]}")
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert "serving http://127.0.0.1:" in log.read_text()


def _get_json(url: str):
    with urllib.request.urlopen(url, timeout=30) as response:
        return json.load(response)


def test_search_api(browse, built):
    out, _ = built
    results = _get_json(browse + "/api/search?q=a%20real%20photo&k=5")
    assert len(results) == 5
    assert all(set(r) == {"shard", "key", "url", "caption", "score"} for r in results)
    scores = [r["score"] for r in results]
    assert scores == sorted(scores, reverse=True)
    first = results[0]
    like = _get_json(browse + f"/api/search?like={first['shard']}/{first['key']}&k=3")
    # exact search: the sample itself is its own nearest image
    assert (like[0]["shard"], like[0]["key"]) == (first["shard"], first["key"])
    assert like[0]["score"] == pytest.approx(1.0, abs=1e-4)
    with pytest.raises(urllib.error.HTTPError) as bad:
        urllib.request.urlopen(browse + "/api/search?like=../../etc/passwd", timeout=30)
    assert bad.value.code == 404


CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")


@pytest.mark.skipif(CHROMIUM is None or DRIVER is None,
                    reason="Debian chromium / chromium-driver not installed (.ci/run installs them)")
def test_browser_search_facet_sample_upload(browse, built, tmp_path):
    from selenium import webdriver
    from selenium.common.exceptions import NoAlertPresentException
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    os.environ.setdefault("SE_OFFLINE", "true")  # Selenium Manager must not look for drivers
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1200,1000",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    shots = Path(os.environ.get("WIT_BROWSE_SCREENSHOTS", tmp_path))

    def no_alert() -> None:
        with pytest.raises(NoAlertPresentException):
            driver.switch_to.alert.text  # noqa: B018 - raises when no alert is open

    def images_decoded() -> bool:
        """Every image of the page decoded (waits for them, the machine may be busy: a
        broken image fails at once, ``complete`` with no width)."""
        script = ("const im = [...document.images];"
                  "return im.some(i => i.complete && i.naturalWidth === 0) ? 'broken'"
                  " : im.every(i => i.complete) ? 'ok' : null")
        return WebDriverWait(driver, 120).until(lambda d: d.execute_script(script)) == "ok"

    try:
        driver.implicitly_wait(10)
        driver.get(browse + "/")
        assert driver.find_element(By.TAG_NAME, "h1").text == "Dataset overview"
        assert driver.find_element(By.ID, "report").get_attribute("src").endswith("/report")
        driver.save_screenshot(str(shots / "browse-overview.png"))

        # search by text through the form
        driver.find_element(By.ID, "q").send_keys("a photo of a bridge")
        driver.find_element(By.ID, "search-button").click()
        results = driver.find_elements(By.CSS_SELECTOR, "#results figure")
        assert len(results) >= 6 and images_decoded()
        captions = [e.text for e in driver.find_elements(By.CSS_SELECTOR, "#results .caption")]
        assert HOSTILE in captions  # the markup is text on the page, not elements
        assert not driver.find_elements(By.CSS_SELECTOR, "#results img[src='x']")
        no_alert()
        driver.save_screenshot(str(shots / "browse-search.png"))

        # facets over every row: pick the failed downloads (the 404), then drop the pick
        driver.find_element(By.LINK_TEXT, "Facets").click()
        total = driver.find_element(By.TAG_NAME, "h1").text
        driver.find_element(By.CSS_SELECTOR, "#facet-status a[data-value='failed_to_download']").click()
        heading = driver.find_element(By.TAG_NAME, "h1").text
        assert heading.startswith("Every candidate row: 1 of ") and heading.split()[-1] == total.split()[-1]
        assert "failed_to_download" in driver.find_element(By.ID, "rows").text
        driver.find_element(By.CSS_SELECTOR, "#selection a").click()
        driver.find_element(By.CSS_SELECTOR, "#facet-reason a[data-value='exact duplicate']").click()
        driver.save_screenshot(str(shots / "browse-facets.png"))

        # the duplicate's sample page: its group and which copy was kept
        driver.find_element(By.CSS_SELECTOR, "#rows a.row-link").click()
        group = driver.find_element(By.ID, "duplicates").text
        assert "kept" in group and "duplicate_of:" in group

        # the hostile sample's page: texts shown as text, the image from the tar, no alert
        driver.get(browse + "/search?q=bridge&k=50")
        figure = next(f for f in driver.find_elements(By.CSS_SELECTOR, "#results figure")
                      if HOSTILE in f.text)
        figure.find_element(By.TAG_NAME, "a").click()
        assert driver.find_element(By.CSS_SELECTOR, "#texts .caption").text == HOSTILE
        assert images_decoded() and driver.find_element(By.ID, "sample-image").size["width"] > 0
        assert "3" in driver.find_element(By.ID, "entries").text
        no_alert()
        driver.save_screenshot(str(shots / "browse-sample.png"))

        # upload an image: its own sample's image comes back first
        upload = tmp_path / "query.jpg"
        upload.write_bytes(urllib.request.urlopen(
            driver.find_element(By.ID, "sample-image").get_attribute("src"), timeout=30).read())
        driver.find_element(By.ID, "upload").send_keys(str(upload))
        driver.find_element(By.ID, "upload-button").click()
        assert driver.find_element(By.TAG_NAME, "h1").text == "Search by image"
        first = driver.find_elements(By.CSS_SELECTOR, "#results .caption")[0].text
        assert first == HOSTILE and images_decoded()
        no_alert()
        driver.save_screenshot(str(shots / "browse-upload.png"))
        logs = driver.get_log("browser") if hasattr(driver, "get_log") else []
        assert not [e for e in logs if e.get("level") == "SEVERE"], logs
    finally:
        driver.quit()
