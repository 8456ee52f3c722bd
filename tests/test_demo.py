"""`wit demo` end to end at a small size: Wikipedia sample + WordNet -> queries -> crawl of the
OpenClipart mini-web on 127.0.0.1 -> shards -> tiny CLIP -> zero-shot + retrieval -> report.
The browser test renders the report in Debian's headless chromium."""

from __future__ import annotations

import base64
import contextlib
import io
import json
import re
import shutil
import socket
import subprocess
import urllib.error
import urllib.request

import pandas as pd
import pytest
from helpers.data import SHARED_DATA
from PIL import Image

from pipeline.cli import main
from pipeline.demo import heldout, miniweb

pytestmark = pytest.mark.skipif(
    not (miniweb.OPENCLIPART / "png").is_dir() or not (miniweb.OPENCLIPART / "svg").is_dir(),
    reason="Debian openclipart-png/openclipart-svg not installed (.ci/run installs them)")

SVG = """<svg xmlns="http://www.w3.org/2000/svg" xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"
 xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:cc="http://web.resource.org/cc/"><metadata>
<rdf:RDF><cc:Work><dc:title>Red  Apple</dc:title><dc:subject><rdf:Bag><rdf:li>food</rdf:li>
<rdf:li>Fruit</rdf:li><rdf:li>clipart</rdf:li></rdf:Bag></dc:subject></cc:Work></rdf:RDF>
</metadata></svg>"""


def test_svg_metadata_title_and_keywords(tmp_path):
    (tmp_path / "a.svg").write_text(SVG)
    (tmp_path / "broken.svg").write_text("<svg><metadata>")
    assert miniweb.svg_metadata(tmp_path / "a.svg") == ("Red Apple", ["food", "fruit"])
    assert miniweb.svg_metadata(tmp_path / "broken.svg") == ("", [])


def test_heldout_split_is_disjoint_and_stable():
    items = list(miniweb.clip_arts())
    first = heldout.split(items, 500, 10)
    again = heldout.split(items, 500, 10)
    assert first == again
    assert len(first.web) == 500
    assert {i.relpath for i in first.web}.isdisjoint({i.relpath for i in first.heldout})
    assert {i.category for i in first.heldout} == set(heldout.EVAL_CLASSES)


@pytest.mark.integration
def test_miniweb_serves_pages_and_images(tmp_path):
    items = list(miniweb.clip_arts())[:30]
    assert miniweb.write_site(items, tmp_path, per_page=25) == 2
    with miniweb.MiniWeb(tmp_path) as web:
        page = urllib.request.urlopen(web.url + "pages/0000.html", timeout=10).read().decode()
        assert "<figcaption>" in page and " alt='" in page
        src = re.search(r"src='([^']+)'", page).group(1)
        image = urllib.request.urlopen(web.url.rstrip("/") + src, timeout=10).read()
        assert Image.open(io.BytesIO(image)).size[0] > 0
        with pytest.raises(urllib.error.HTTPError):
            urllib.request.urlopen(web.url + "img/../../../etc/passwd", timeout=10)


@pytest.mark.integration
def test_missing_prerequisites_stop_before_anything_runs(tmp_path, capsys):
    out = tmp_path / "out"
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert main(["demo", "--out", str(out), "--openclipart", str(tmp_path / "none"),
                     "--port", str(port)]) == 1
    err = capsys.readouterr().err
    assert "apt-get install openclipart-png openclipart-svg" in err
    assert "png is missing" in err and "svg is missing" in err
    assert f"127.0.0.1:{port} is in use" in err
    assert not out.exists()


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    """The chain at a small size, run once for the end-to-end and the browser test."""
    out = tmp_path_factory.mktemp("demo")
    wiki = SHARED_DATA / "wikipedia" / "enwiki-sample-pages-articles.xml.bz2"
    argv = ["demo", "--out", str(out), "--images", "300", "--heldout-per-class", "6",
            "--steps", "30", "--batch-size", "32", "--port", "0"]
    if wiki.is_file():  # else the demo fetches the same excerpt from the gensim wheel
        argv += ["--wiki", str(wiki)]
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        code = main(argv)
    return out, code, stdout.getvalue()


@pytest.mark.integration
def test_demo_end_to_end(demo_run):
    out, code, text = demo_run
    assert code == 0, text[-3000:]
    assert "demo summary" in text
    assert re.search(r"zero-shot top-1 \(10 held-out classes, n=60\)\s+[01]\.\d{3} "
                     r"\(chance 0\.100\)", text)
    assert re.search(r"retrieval image to text R@1 / R@5 \(n=60\)", text)
    # what the demo relaxes is printed: DataComp's basic filter and MetaCLIP's thresholds
    assert re.search(r"filter datacomp-basic\s+changed: min_words 1 \(preset 3\), min_chars 3 "
                     r"\(preset 6\), min_side 32 \(preset 200\), min_bytes 500 \(preset 0\)", text)
    assert re.search(r"entries from numeral\s+100\n", text)
    assert re.search(r"thresholds changed for the sample\s+min_count 20 \(default 100\), "
                     r"min_pmi 12 \(default 30\), min_bigram_count 5 \(default 1\)", text)
    # every candidate of the crawl has a status in the shards' Parquet
    crawl = json.loads((out / "candidates" / "stats.json").read_text())
    assert crawl["sources"]["live"]["images"] == 300
    statuses = pd.concat(pd.read_parquet(p) for p in (out / "shards").glob("*.parquet"))
    assert len(statuses) == crawl["totals"]["kept"]
    # nothing held out reached the shards
    held = {i.png for i in heldout.split(list(miniweb.clip_arts()), 300, 6).heldout}
    urls = statuses["url"].str.split("/img/", n=1).str[1]
    assert held.isdisjoint(set(urls))
    ev = json.loads((out / "eval" / "eval.json").read_text())
    assert ev["zeroshot"]["n"] == 60 and ev["zeroshot"]["classes"] == 10
    report = (out / "demo" / "report.html").read_text()
    assert "id='training-curve'" in report and "id='dataset-card'" in report
    for src in re.findall(r"src='data:image/[a-z]+;base64,([^']+)'", report):
        Image.open(io.BytesIO(base64.b64decode(src))).verify()


CHROMIUM = shutil.which("chromium")


@pytest.mark.skipif(CHROMIUM is None, reason="Debian chromium not installed (.ci/run installs it)")
@pytest.mark.integration
def test_report_renders_in_headless_chromium(demo_run, tmp_path):
    out, code, text = demo_run
    assert code == 0, text[-3000:]
    report = out / "demo" / "report.html"
    flags = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}",
             "--enable-logging=stderr", "--v=0", "--virtual-time-budget=5000",
             "--window-size=1200,1600"]
    url = report.resolve().as_uri()
    dom = subprocess.run([*flags, "--dump-dom", url], capture_output=True, text=True,
                         timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert not re.search(r"CONSOLE.*(Uncaught|Error)|Failed to load resource", dom.stderr)
    body = re.search(r"<body[^>]*>", dom.stdout).group(0)
    total = int(re.search(r'data-images-total="(\d+)"', body).group(1))
    decoded = int(re.search(r'data-images-decoded="(\d+)"', body).group(1))
    assert total >= 3 and decoded == total  # training curve, card plots, sample images
    assert "id=\"training-curve\"" in dom.stdout and "class=\"grid\"" in dom.stdout
    shot = tmp_path / "report.png"
    done = subprocess.run([*flags, f"--screenshot={shot}", url], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0 and shot.is_file(), done.stderr[-2000:]
    image = Image.open(shot).convert("RGB")
    assert image.size == (1200, 1600)
    colours = image.getcolors(maxcolors=1 << 16)
    assert colours is None or len(colours) > 50  # not blank: text, plots and images drawn
