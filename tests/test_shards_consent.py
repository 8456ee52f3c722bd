"""`wit shards` and consent, end to end on loopback: TDMRep (the origin's tdmrep.json and the
tdm-reservation header) and X-Robots-Tag refusals as Parquet statuses, summary and report
rows; `--block-hashes` with a list of perturbed copies of real images (resized, re-encoded
as PNG) and exact sha256s: refused, counted, their hashes logged, the images written nowhere.
"""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import sys
import tarfile
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from helpers.shards import (
    TRUSTED,
    Server,
    english_caption,
    real_images,
    send,
    to_jpeg,
    wit_env,
    write_candidates,
)
from PIL import Image

from pipeline.core.errors import InputError
from pipeline.shards.blocklist import parse_line, read_blocklist
from pipeline.shards.phash import phash_bytes, to_hex

NET = ["--allow-network", TRUSTED, "--processes", "1", "--threads", "4", "--timeout", "5",
       "--retries", "0", "--filter", "none", "--image-size", "128",
       "--download-shard-size", "6", "--samples-per-shard", "4"]


def wit_shards(candidates: Path, out: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pipeline.cli", "shards", "--candidates",
                           str(candidates), "--out", str(out), *NET, *extra],
                          capture_output=True, text=True, timeout=600, env=wit_env())


def rows_of(folder: Path) -> dict[str, dict]:
    rows = {}
    for path in sorted(folder.glob("*.parquet")):
        for row in pq.read_table(path).to_pylist():
            rows[row["url"].rsplit("/", 1)[-1]] = row
    return rows


def tar_keys(folder: Path) -> set[str]:
    keys = set()
    for path in folder.rglob("*.tar"):
        with tarfile.open(path) as tar:
            keys.update(m.name.split(".", 1)[0] for m in tar.getmembers())
    return keys


def png(image: Image.Image, scale: float) -> bytes:
    buffer = io.BytesIO()
    image.resize((round(image.width * scale), round(image.height * scale))).save(buffer, "PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def origin(tmp_path_factory):
    """The image origin: 5 plain photos, a TDMRep-reserved path and header, an X-Robots-Tag
    image, an exact listed copy and two perturbed copies of a listed photo; the blocklist."""
    root = tmp_path_factory.mktemp("consent")
    server = Server()
    photos = real_images(8)
    served: dict[str, bytes] = {}
    for i, (_, image) in enumerate(photos[:5]):
        served[f"{i}.jpg"] = to_jpeg(image)
    served["tdm-header.jpg"] = to_jpeg(photos[5][1])
    served["reserved.jpg"] = to_jpeg(photos[5][1].rotate(90, expand=True))
    served["noai.jpg"] = to_jpeg(photos[5][1].transpose(Image.Transpose.FLIP_LEFT_RIGHT))
    listed = to_jpeg(photos[6][1])  # on the list by pHash: served only perturbed
    served["listed-small.jpg"] = to_jpeg(photos[6][1].resize(
        (photos[6][1].width * 3 // 5, photos[6][1].height * 3 // 5)), quality=70)
    served["listed-big.png"] = png(photos[6][1], 1.25)
    served["listed-exact.jpg"] = to_jpeg(photos[7][1])  # on the list by sha256
    for name, data in served.items():
        if name in ("tdm-header.jpg", "noai.jpg"):
            header = {"tdm-header.jpg": {"tdm-reservation": "1"},
                      "noai.jpg": {"X-Robots-Tag": "noimageai"}}[name]
            server.routes[f"/img/{name}"] = lambda h, d=data, x=header: send(h, 200, d, headers=x)
        elif name == "reserved.jpg":
            server.routes[f"/private/{name}"] = data
        else:
            server.routes[f"/img/{name}"] = data
    server.routes["/.well-known/tdmrep.json"] = lambda h: send(h, 200, json.dumps(
        [{"location": "/private/", "tdm-reservation": 1}]).encode(), "application/json")
    rows = [{"url": server.url(("/private/" if n == "reserved.jpg" else "/img/") + n),
             "text": english_caption(i)} for i, n in enumerate(served)]
    candidates = write_candidates(root / "candidates", rows)
    blocklist = root / "blocklist.txt"
    blocklist.write_text(
        "# known-bad images of this test\n\n"
        f"sha256:{hashlib.sha256(served['listed-exact.jpg']).hexdigest()}\n"
        f"{hashlib.sha256(b'some other image').hexdigest()}  # a bare sha256\n"
        f"phash:{to_hex(phash_bytes(listed))} 8\n", encoding="utf-8")
    yield server, candidates, blocklist, served
    server.close()


@pytest.mark.integration
def test_opt_out_and_blocklist_refusals_are_statuses_counts_and_never_written(origin, tmp_path):
    server, candidates, blocklist, served = origin
    out = tmp_path / "out"
    done = wit_shards(candidates, out, "--block-hashes", str(blocklist))
    assert done.returncode == 0, done.stderr[-3000:]
    rows = rows_of(out / "shards")
    statuses = {name: row["status"] for name, row in rows.items()}
    assert statuses == {
        **{f"{i}.jpg": "success" for i in range(5)},
        "tdm-header.jpg": "filtered:tdm_reservation",
        "reserved.jpg": "filtered:tdm_reservation",
        "noai.jpg": "filtered:x_robots_tag",
        "listed-small.jpg": "filtered:blocklist",
        "listed-big.png": "filtered:blocklist",
        "listed-exact.jpg": "filtered:blocklist",
    }
    assert server.hits["/private/reserved.jpg"] == 0  # tdmrep.json: never requested
    assert server.hits["/.well-known/tdmrep.json"] == 1
    exact = rows["listed-exact.jpg"]
    assert exact["sha256"] == hashlib.sha256(served["listed-exact.jpg"]).hexdigest()
    assert exact["error_message"] == "blocklist: sha256 on line 3 of --block-hashes"
    assert exact["phash"] is None  # refused before decoding
    for name in ("listed-small.jpg", "listed-big.png"):
        assert rows[name]["error_message"].startswith("blocklist: phash on line 5"), rows[name]
        assert rows[name]["phash"] and rows[name]["width"] is None
    # only the hashes are logged; the images are in no tar (work folder included)
    blocked_keys = {rows[n]["key"] for n in rows if statuses[n] == "filtered:blocklist"}
    kept_keys = {rows[n]["key"] for n in rows if statuses[n] == "success"}
    keys = tar_keys(out)
    assert kept_keys <= keys and not blocked_keys & keys
    for name in ("listed-exact.jpg", "listed-small.jpg", "listed-big.png"):
        assert f"sha256 {rows[name]['sha256']}" in done.stderr
    written = b"".join(p.read_bytes() for p in out.rglob("*") if p.is_file())
    assert not any(served[n] in written for n in ("listed-exact.jpg", "listed-small.jpg"))
    # the summary and the report have a row for every refusal
    assert ("opt-out: 3 image(s) refused (robots_txt 0, x_robots_tag 1, tdm_reservation 2); "
            "blocklist: 3 image(s) refused (hashes only kept); tdmrep.json fetched from 1 "
            "origin(s) (rules 1)") in done.stdout
    manifest = json.loads((out / "shards" / "manifest.json").read_text())
    assert manifest["filtered"]["blocklist"] == 3
    assert manifest["filtered"]["tdm_reservation"] == 2
    assert manifest["network"]["tdmrep"]["rules"] == 1
    report = (out / "shards" / "report.html").read_text()
    assert "<h2>Consent</h2>" in report
    assert "<tr><td>tdm_reservation</td><td>2</td></tr>" in report
    assert "<tr><td>blocklist</td><td>3</td></tr>" in report


@pytest.mark.integration
def test_ignore_tdmrep_downloads_reserved_images(origin, tmp_path):
    server, candidates, _, _ = origin
    done = wit_shards(candidates, tmp_path / "out", "--ignore-tdmrep")
    assert done.returncode == 0, done.stderr[-3000:]
    statuses = {n: r["status"] for n, r in rows_of(tmp_path / "out" / "shards").items()}
    assert statuses["tdm-header.jpg"] == "success"
    assert statuses["reserved.jpg"] == "success"
    assert statuses["noai.jpg"] == "filtered:x_robots_tag"  # its own switch
    assert "ignored by option: TDMRep" in done.stdout


@pytest.mark.integration
def test_a_bad_blocklist_line_stops_the_run_before_any_download(origin, tmp_path):
    server, candidates, _, _ = origin
    bad = tmp_path / "bad.txt"
    bad.write_text("# list\nsha256:" + "a" * 64 + "\nphash:12345 4\n", encoding="utf-8")
    before = sum(server.hits.values())
    done = wit_shards(candidates, tmp_path / "out", "--block-hashes", str(bad))
    assert done.returncode == 1
    assert f"{bad}: line 3:" in done.stderr and "Traceback" not in done.stderr
    assert sum(server.hits.values()) == before


@pytest.mark.parametrize("line,expected", [
    ("sha256:" + "Ab" * 32, ("sha256", bytes.fromhex("ab" * 32))),
    ("ab" * 32 + "  # bare", ("sha256", bytes.fromhex("ab" * 32))),
    ("phash:00ff00ff00ff00ff", ("phash", (0x00ff00ff00ff00ff, 4))),
    ("phash:00ff00ff00ff00ff 12", ("phash", (0x00ff00ff00ff00ff, 12))),
    ("# comment", None),
    ("   ", None),
])
def test_blocklist_lines(line, expected) -> None:
    assert parse_line(line) == expected


@pytest.mark.parametrize("line", ["sha256:abc", "md5:" + "a" * 32, "phash:00ff00ff00ff00ff 17",
                                  "phash:xyz", "https://example.com/x.jpg"])
def test_bad_blocklist_lines_name_file_and_line(tmp_path, line) -> None:
    path = tmp_path / "list.txt"
    path.write_text("# ok\n" + line + "\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"list\.txt: line 2: "):
        read_blocklist(str(path))
