"""Canonical candidate files (pipeline/crawl/writer.py): the same inputs and seed give
byte-identical part files whatever order rows or pages arrive in, and the same rows in the
same places whatever their provenance -- URL lists with other file and row orders (each row
then names its own file and row), and two live crawls of a loopback site whose pages answer
after random delays (each page with its own fetch time) -- and the layout is the documented one: part = SHA-256(uid) mod N, rows sorted by
uid, every part written (empty ones too), N from --num-shards or from the kept count.
(In-process vs two worker processes: tests/test_crawl_balancing.py and
tests/test_scaling_runners.py.)"""

from __future__ import annotations

import hashlib
import json
import random
import re
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest
from helpers.servers import loopback_server

from pipeline.cli import main
from pipeline.core.beam import make_pipeline
from pipeline.crawl.transform import Crawl, CrawlConfig
from pipeline.crawl.writer import ROWS_PER_PART, num_parts, part_name, part_of
from schemas import CANDIDATES, read_validated


def candidate_bytes(out: Path) -> dict[str, bytes]:
    """Every Parquet file of OUT/candidates by name (stats.json names its inputs, so it is
    compared separately)."""
    folder = out / "candidates"
    return {p.name: p.read_bytes() for p in sorted(folder.glob("*.parquet"))}


def rows_except(out: Path, columns: tuple[str, ...]) -> dict[str, list[dict]]:
    """The rows of every part file by name, in file order, without ``columns``: for inputs
    that are the same but for their provenance (other list files and rows, another fetch
    time), whose part files are then the same but for those columns."""
    folder = out / "candidates"
    return {p.name: [{k: v for k, v in row.items() if k not in columns}
                     for row in pq.read_table(p).to_pylist()]
            for p in sorted(folder.glob("part-*.parquet"))}


def assert_canonical(out: Path, parts: int) -> list[dict]:
    """The documented layout; returns all rows."""
    folder = out / "candidates"
    names = sorted(p.name for p in folder.glob("part-*.parquet"))
    assert names == [part_name(p, parts) for p in range(parts)]
    rows = []
    for p, name in enumerate(names):
        part_rows = read_validated(str(folder / name), CANDIDATES).to_pylist()
        uids = [r["uid"] for r in part_rows]
        assert uids == sorted(uids), name
        # part = first 8 bytes of SHA-256(uid) mod N, computed independently here
        assert all(int(hashlib.sha256(u.encode()).hexdigest()[:16], 16) % parts == p
                   for u in uids), name
        rows.extend(part_rows)
    stats = json.loads((folder / "stats.json").read_text())
    assert stats["outputs"] == sorted(["entry_counts.parquet", *names])
    return rows


def test_part_numbering() -> None:
    assert num_parts(0) == 1 and num_parts(1) == 1
    assert num_parts(ROWS_PER_PART) == 1 and num_parts(ROWS_PER_PART + 1) == 2
    assert num_parts(10, rows_per_part=3) == 4 and num_parts(10, num_shards=7) == 7
    assert part_name(3, 12) == "part-00003-of-00012.parquet"
    uid = "0123456789abcdef0123456789abcdef"
    assert part_of(uid, 1) == 0
    assert part_of(uid, 1000) == int(hashlib.sha256(uid.encode()).hexdigest()[:16], 16) % 1000
    with pytest.raises(ValueError):
        num_parts(5, rows_per_part=0)


@pytest.mark.integration
def test_negative_num_shards_is_a_usage_error(tmp_path: Path, capsys) -> None:
    meta = tmp_path / "metadata.json"
    meta.write_text(json.dumps(["cat"]))
    lists = [write_list(tmp_path / "list.parquet", ROWS[:3])]
    with pytest.raises(SystemExit) as exit_info:
        main(["crawl", "--urls", *lists, "--metadata", str(meta), "--out", str(tmp_path),
              "--num-shards", "-1"])
    assert exit_info.value.code == 2
    assert "--num-shards: -1 must be >= 0" in capsys.readouterr().err
    assert not (tmp_path / "candidates").exists()


# -- URL lists: other file order, other row order --------------------------------------------

ROWS = ([(f"https://img{i % 7}.test/cat/{i}.jpg", f"my cat number {i}") for i in range(500)]
        + [(f"https://img{i % 5}.test/dog/{i}.jpg", f"a dog, photo {i}") for i in range(40)]
        + [(f"https://img.test/none/{i}.jpg", f"nothing here {i}") for i in range(20)]
        + [("https://img1.test/cat/1.jpg", "my cat number 1")] * 4)


def write_list(path: Path, rows: list[tuple[str, str]]) -> str:
    table = pa.table({"url": [u for u, _ in rows], "caption": [c for _, c in rows]})
    if path.suffix == ".csv":
        pcsv.write_csv(table, path)
    else:
        pq.write_table(table, path, row_group_size=64)
    return str(path)


def crawl_urls(out: Path, lists: list[str], meta: Path, *options: str) -> None:
    assert main(["crawl", "--urls", *lists, "--metadata", str(meta), "--out", str(out),
                 "--t", "100", "--seed", "3", *options]) == 0


@pytest.mark.integration
def test_shuffled_url_lists_give_identical_files(tmp_path: Path) -> None:
    meta = tmp_path / "metadata.json"
    meta.write_text(json.dumps(["cat", "dog", "bird"]))
    one = write_list(tmp_path / "in-order.parquet", ROWS)
    shuffled = ROWS.copy()
    random.Random(7).shuffle(shuffled)
    # other files, other formats, and the file that sorts first holds the later rows
    split = [write_list(tmp_path / "a-rest.csv", shuffled[200:]),
             write_list(tmp_path / "b-start.parquet", shuffled[:200])]
    crawl_urls(tmp_path / "one", [one], meta, "--num-shards", "4")
    crawl_urls(tmp_path / "split", split, meta, "--num-shards", "4")

    # the same rows in the same files and order; only their provenance (file, row) differs
    provenance = ("source_file", "source_offset")
    assert rows_except(tmp_path / "one", provenance) == rows_except(tmp_path / "split",
                                                                    provenance)
    assert (candidate_bytes(tmp_path / "one")["entry_counts.parquet"]
            == candidate_bytes(tmp_path / "split")["entry_counts.parquet"])
    lists = {path: pq.read_table(path).to_pylist() if path.endswith(".parquet")
             else pcsv.read_csv(path).to_pylist() for path in split}
    for row in assert_canonical(tmp_path / "split", 4):  # each row points at its list row
        listed = lists[row["source_file"]][row["source_offset"]]
        assert (listed["url"], listed["caption"]) == (row["url"], row["text"])
    crawl_urls(tmp_path / "again", split, meta, "--num-shards", "4")  # same inputs: same bytes
    assert candidate_bytes(tmp_path / "again") == candidate_bytes(tmp_path / "split")
    rows = assert_canonical(tmp_path / "one", 4)
    stats = json.loads((tmp_path / "one" / "candidates" / "stats.json").read_text())
    assert len(rows) == stats["sources"]["urls"]["kept"]
    assert 100 < len(rows) < 540  # 'cat' (500 > t) was thinned, so the draw decided rows
    # the shards stage takes the parts in part order (its sample keys follow this row order)
    from pipeline.shards.reader import candidate_files
    found = candidate_files(str(tmp_path / "one" / "candidates"))
    assert [Path(f).name for f in found] == [part_name(p, 4) for p in range(4)]


@pytest.mark.integration
def test_empty_parts_written_and_default_part_count(tmp_path: Path) -> None:
    meta = tmp_path / "metadata.json"
    meta.write_text(json.dumps(["dog"]))
    lists = [write_list(tmp_path / "list.parquet", ROWS)]
    # 40 dog rows over 64 parts: most parts are empty, and still written with the schema
    crawl_urls(tmp_path / "many", lists, meta, "--num-shards", "64")
    rows = assert_canonical(tmp_path / "many", 64)
    assert len(rows) == 40
    empty = [p for p in (tmp_path / "many" / "candidates").glob("part-*.parquet")
             if pq.read_metadata(p).num_rows == 0]
    assert len(empty) >= 64 - 40
    assert pq.read_schema(empty[0]).remove_metadata() == CANDIDATES
    # a rerun into the same folder with fewer parts leaves none of the old ones behind
    crawl_urls(tmp_path / "many", lists, meta, "--num-shards", "2")
    assert len(assert_canonical(tmp_path / "many", 2)) == 40

    # --num-shards 0: ceil(kept / rows_per_part) parts (rows_per_part made small here)
    out = tmp_path / "auto"
    pipeline = make_pipeline([])
    _ = pipeline | Crawl(CrawlConfig(metadata=str(meta), out=str(out / "candidates"),
                                     url_lists=lists, rows_per_part=15))
    pipeline.run().wait_until_finish()
    assert len(assert_canonical(out, 3)) == 40  # ceil(40 / 15)


# -- live crawl: pages arrive in a different order every run ---------------------------------

PAGES, IMAGES_PER_PAGE = 12, 6


def site_page(n: int) -> bytes:
    images = "".join(f'<img src="/img/{n}-{i}.jpg" alt="photo {i} of page {n}">'
                     for i in range(IMAGES_PER_PAGE))
    # the same image and text on every page: dedup must keep one copy, whichever page won
    shared = '<img src="/img/logo.png" alt="site logo photo">'
    return f"<html><body>{images}{shared}</body></html>".encode()


@pytest.fixture()
def jittery_site() -> Iterator[str]:
    """A loopback site whose pages answer after a random 0-40 ms, so they reach the crawler
    (3 requests in flight) in a different order on every run."""
    jitter = random.Random()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            if self.path == "/":
                links = "".join(f'<a href="/p/{n}.html">{n}</a>' for n in range(PAGES))
                body = f"<html><body>{links}</body></html>".encode()
            elif self.path.startswith("/p/"):
                time.sleep(jitter.uniform(0, 0.04))
                body = site_page(int(self.path.split("/")[2].split(".")[0]))
            else:
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            pass

    with loopback_server(Handler) as base:
        yield base + "/"


@pytest.mark.integration
def test_live_crawl_twice_gives_identical_files(jittery_site: str, tmp_path: Path) -> None:
    meta = tmp_path / "metadata.json"
    meta.write_text(json.dumps(["photo", "logo"]))
    for run in ("first", "second"):
        assert main(["crawl", "--seeds", jittery_site, "--metadata", str(meta),
                     "--out", str(tmp_path / run), "--allow-network", "127.0.0.0/8",
                     "--delay", "0", "--concurrency", "3", "--timeout", "10",
                     "--num-shards", "3"]) == 0
    # identical but for the pages' fetch times (the bytes too when both ran in one second)
    assert rows_except(tmp_path / "first", ("fetch_time",)) == rows_except(
        tmp_path / "second", ("fetch_time",))
    rows = assert_canonical(tmp_path / "first", 3)
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", r["fetch_time"]) for r in rows)
    assert {r["source"] for r in rows} == {"live"} and {r["source_file"] for r in rows} == {None}
    assert len(rows) == PAGES * IMAGES_PER_PAGE + 1
    logo = [r for r in rows if r["text"] == "site logo photo"]
    # of the copies, the one from the smallest page URL is kept (not the first to arrive)
    assert [r["page_url"] for r in logo] == [jittery_site + "p/0.html"]
