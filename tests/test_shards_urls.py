"""`wit shards --urls`: an existing URL list downloaded as it is, img2dataset's job.

The main test serves a LAION-style Parquet (URL, TEXT, extra columns, a sha256 column with
some wrong hashes) and its images from loopback, runs the real `wit shards --urls` and the
real img2dataset on the same list, and compares every row's outcome. The others cover the
text formats (csv, tsv, jsonl, txt, compressed, folders), retry rounds and the errors.
"""

from __future__ import annotations

import bz2
import gzip
import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers.shards import TRUSTED, Server, real_images, send, to_jpeg, wit_env

from pipeline.cli import main
from pipeline.core.url_lists import UrlListError
from pipeline.shards.url_lists import (
    UrlListOptions,
    column_names,
    hash_mismatch,
    input_tables,
    open_url_lists,
)
from schemas.candidates import make_uid
from schemas.shards import EXPECTED_HASH, INPUT_ERROR, SAMPLES

IMG2DATASET = Path(sys.executable).with_name("img2dataset")
# what both tools are told: one process, few threads, short timeouts, no retries
WIT_NET = ["--allow-network", TRUSTED, "--processes", "1", "--threads", "4", "--timeout", "5",
           "--retries", "0"]


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def shard_rows(folder: Path) -> list[dict]:
    rows = []
    for path in sorted(folder.glob("[0-9]*.parquet")):
        rows.extend(pq.read_table(path).to_pylist())
    return rows


def tar_members(folder: Path) -> dict[str, bytes]:
    members = {}
    for path in sorted(folder.glob("[0-9]*.tar")):
        with tarfile.open(path) as tar:
            for member in tar.getmembers():
                handle = tar.extractfile(member)
                assert handle is not None
                members[member.name] = handle.read()
    return members


# ---------------------------------------------------------------- against img2dataset


@pytest.fixture(scope="module")
def laion(tmp_path_factory):
    """A LAION-style Parquet and the server of its images: (path, server, expected
    img2dataset outcome by SAMPLE_ID)."""
    root = tmp_path_factory.mktemp("laion")
    server = Server()
    images = [to_jpeg(image) for _, image in real_images(10)]
    rows, expected = [], {}

    def row(sample_id: int, url: str | None, text: str | None, digest: str | None,
            outcome: str) -> None:
        rows.append({"SAMPLE_ID": sample_id, "URL": url, "TEXT": text,
                     "similarity": round(0.25 + sample_id / 1000, 4),
                     "LICENSE": "?" if sample_id % 2 else "cc-by", "sha256": digest})
        expected[sample_id] = outcome

    for i, data in enumerate(images[:8]):
        server.routes[f"/img/{i}.jpg"] = data
        row(100 + i, server.url(f"/img/{i}.jpg"), f"a real photo, picture number {i}",
            sha256(data), "success")
    server.routes["/img/8.jpg"] = images[8]
    row(108, server.url("/img/8.jpg"), None, sha256(images[8]), "success")  # no caption
    row(109, server.url("/img/0.jpg"), "the first photo again", sha256(images[0]),
        "success")  # the same image twice: a duplicate for wit, a second sample for img2dataset
    server.routes["/img/9.jpg"] = images[9]
    row(110, server.url("/img/9.jpg"), "a photo with a wrong hash", "0" * 64, "hash mismatch")
    row(111, server.url("/img/1.jpg"), "another wrong hash", sha256(images[2]), "hash mismatch")
    row(112, server.url("/img/2.jpg"), "a row without a hash", None, "hash mismatch")
    row(113, server.url("/gone.jpg"), "a URL that 404s", "ab" * 32, "failed_to_download")
    row(114, None, "a row without a URL", None, "failed_to_download")
    corrupt = bytes(range(256)) * 40
    server.routes["/img/corrupt.jpg"] = corrupt
    row(115, server.url("/img/corrupt.jpg"), "bytes that are not an image", sha256(corrupt),
        "failed_to_resize")
    path = root / "laion.parquet"
    schema = pa.schema([("SAMPLE_ID", pa.int64()), ("URL", pa.string()), ("TEXT", pa.string()),
                        ("similarity", pa.float64()), ("LICENSE", pa.string()),
                        ("sha256", pa.string())])
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), path, row_group_size=5)
    yield path, server, expected
    server.close()


def run_img2dataset(url_list: Path, out: Path) -> None:
    if not IMG2DATASET.exists():
        pytest.skip(f"{IMG2DATASET} missing (pip install img2dataset)")
    done = subprocess.run(
        [str(IMG2DATASET), "--url_list", str(url_list), "--input_format", "parquet",
         "--url_col", "URL", "--caption_col", "TEXT", "--output_format", "webdataset",
         "--output_folder", str(out), "--processes_count", "1", "--thread_count", "4",
         "--image_size", "64", "--timeout", "5", "--retries", "0", "--enable_wandb", "False",
         "--save_additional_columns", '["SAMPLE_ID","similarity","LICENSE"]',
         "--verify_hash", '["sha256","sha256"]'],
        capture_output=True, text=True, timeout=300,
        env={**os.environ, "NO_ALBUMENTATIONS_UPDATE": "1"})
    assert done.returncode == 0, done.stderr[-3000:]


def as_img2dataset(row: dict) -> str:
    """wit's status in img2dataset's words: a duplicate was downloaded fine; a hash mismatch
    is img2dataset's failed_to_download with error "hash mismatch"."""
    status = row["status"]
    if status.startswith("duplicate_of:"):
        return "success"
    if status == "hash_mismatch":
        return "hash mismatch"
    return status


@pytest.mark.integration
def test_laion_parquet_outcomes_match_img2dataset(laion, tmp_path):
    path, _, expected = laion
    out = tmp_path / "wit"
    done = subprocess.run(
        [sys.executable, "-m", "pipeline.cli", "shards", "--urls", str(path), "--out", str(out),
         "--url-col", "URL", "--caption-col", "TEXT",
         "--save-additional-columns", "SAMPLE_ID,similarity,LICENSE",
         "--verify-hash-col", "sha256", "--verify-hash-type", "sha256", "--filter", "none",
         "--image-size", "64", "--download-shard-size", "6", "--samples-per-shard", "4",
         *WIT_NET],
        capture_output=True, text=True, timeout=600, env=wit_env())
    assert done.returncode == 0, done.stderr[-3000:]
    assert "of 16 list rows kept" in done.stdout
    i2d = tmp_path / "i2d"
    run_img2dataset(path, i2d)

    ours = {r["SAMPLE_ID"]: r for r in shard_rows(out / "shards")}
    theirs = {r["SAMPLE_ID"]: r for r in shard_rows(i2d)}
    assert sorted(ours) == sorted(theirs) == sorted(expected)  # every row, once
    for sample_id, row in theirs.items():
        outcome = "hash mismatch" if row["error_message"] == "hash mismatch" else row["status"]
        assert outcome == expected[sample_id], (sample_id, row)
        assert as_img2dataset(ours[sample_id]) == outcome, (sample_id, ours[sample_id])
        for column in ("similarity", "LICENSE"):  # the additional columns, as in the list
            assert ours[sample_id][column] == row[column], (sample_id, column)
        if outcome == "success":  # the same bytes were downloaded and measured
            mine = ours[sample_id]
            assert mine["sha256"] == row["sha256"], sample_id
            assert (mine["original_width"], mine["original_height"]) == (
                row["original_width"], row["original_height"]), sample_id
    duplicate = ours[109]
    assert duplicate["status"] == f"duplicate_of:{ours[100]['key']}"
    assert ours[114]["url"] == "" and ours[114]["error_message"] == "no URL in the list row"
    assert ours[110]["error_message"].startswith("hash mismatch: sha256 of the downloaded bytes")
    assert ours[108]["caption"] == ""  # no caption: an empty KEY.txt, as img2dataset writes

    # img2dataset's layout: KEY.jpg/KEY.txt/KEY.json members, a Parquet and _stats.json per
    # shard, sizes.json; the additional columns in each sample's JSON; the same captions
    shards = out / "shards"
    members, their_members = tar_members(shards), tar_members(i2d)
    assert {Path(n).suffix for n in members} == {Path(n).suffix for n in their_members} == {
        ".jpg", ".txt", ".json"}
    kept = [r for r in ours.values() if r["status"] == "success"]
    sizes = json.loads((shards / "sizes.json").read_text())
    assert sum(sizes.values()) == len(kept) == 9
    for tar in sizes:
        stats = json.loads((shards / tar.replace(".tar", "_stats.json")).read_text())
        assert stats["successes"] == sizes[tar]
    their_texts = {json.loads(their_members[n[:-3] + "json"])["SAMPLE_ID"]: v.decode()
                   for n, v in their_members.items() if n.endswith(".txt")}
    for row in kept:
        sample = json.loads(members[f"{row['key']}.json"])
        assert {c: sample[c] for c in ("SAMPLE_ID", "similarity", "LICENSE")} == {
            c: row[c] for c in ("SAMPLE_ID", "similarity", "LICENSE")}
        assert members[f"{row['key']}.txt"].decode() == their_texts[row["SAMPLE_ID"]]
    table = pq.read_table(next(shards.glob("0*.parquet")))
    assert table.column_names == [*SAMPLES.names, "SAMPLE_ID", "similarity", "LICENSE"]
    assert table.schema.field("SAMPLE_ID").type == pa.int64()
    manifest = json.loads((shards / "manifest.json").read_text())
    assert manifest["statuses"]["hash_mismatch"] == 3
    assert manifest["counts"]["candidates"] == 16 and manifest["counts"]["downloaded"] == 10
    assert manifest["config"]["url_list"]["verify_hash_col"] == "sha256"


# ---------------------------------------------------------------- formats (no download)


def write_text(path: Path, text: str) -> Path:
    data = text.encode("utf-8")
    if path.name.endswith(".gz"):
        data = gzip.compress(data, mtime=0)
    elif path.name.endswith(".bz2"):
        data = bz2.compress(data)
    path.write_bytes(data)
    return path


def rows_of(patterns: list[str], **options) -> list[dict]:
    plan = open_url_lists(patterns, UrlListOptions(**options))
    return [r for t in input_tables(plan, batch_rows=2) for r in t.to_pylist()]


CSV = 'url,caption,score\nhttps://e.com/a.jpg,"a red fox, running",0.5\n,no url,1\nftp://e.com/b.jpg,,x\n'


@pytest.mark.parametrize("name, text", [
    ("l.csv", CSV),
    ("l.csv.gz", CSV),
    ("l.tsv", CSV.replace(",", "\t").replace('"a red fox\t running"', "a red fox, running")),
    ("l.tsv.bz2", CSV.replace(",", "\t").replace('"a red fox\t running"', "a red fox, running")),
    ("l.jsonl", '{"url": "https://e.com/a.jpg", "caption": "a red fox, running", "score": 0.5}\n'
                '{"url": null, "caption": "no url", "score": 1}\n'
                '{"url": "ftp://e.com/b.jpg", "caption": "", "score": "x"}\n'),
    ("l.json.gz", '{"url": "https://e.com/a.jpg", "caption": "a red fox, running", "score": 0.5}\n'
                  '{"caption": "no url", "score": 1}\n'
                  '{"url": "ftp://e.com/b.jpg", "caption": null, "score": "x"}\n'),
])
def test_text_formats_give_every_row(tmp_path, name, text):
    path = write_text(tmp_path / name, text)
    rows = rows_of([str(path)], save_additional_columns=("score",))
    assert [r["key"] for r in rows] == ["0000000000", "0000000001", "0000000002"]
    assert [r["url"] for r in rows] == ["https://e.com/a.jpg", "", "ftp://e.com/b.jpg"]
    assert [r["caption"] for r in rows] == ["a red fox, running", "no url", ""]
    assert [r["texts"] for r in rows] == [["a red fox, running"], ["no url"], []]
    # CSV has no types; JSON values that are not strings are kept as their JSON text
    assert [r["score"] for r in rows] == ["0.5", "1", "x"]
    assert [r[INPUT_ERROR] for r in rows] == [
        None, "no URL in the list row", "not an http(s) URL: 'ftp://e.com/b.jpg'"]
    assert rows[0]["uid"] == make_uid("https://e.com/a.jpg", "a red fox, running")
    assert {r["source"] for r in rows} == {"urls"} and all(r["page_url"] is None for r in rows)


def test_txt_and_parquet_lists_folders_and_globs(tmp_path):
    folder = tmp_path / "lists"
    folder.mkdir()
    write_text(folder / "b.txt.gz", "https://e.com/1.jpg\n\n  https://e.com/2.jpg  \n")
    pq.write_table(pa.table({"URL": ["https://e.com/3.jpg"], "TEXT": ["three"],
                             "n": pa.array([3], pa.int32())}), folder / "a.parquet")
    pq.write_table(pa.table({"URL": ["https://e.com/4.jpg"], "TEXT": ["four"],
                             "n": pa.array([4], pa.int64())}), folder / "c.parquet")
    (folder / "notes.md").write_text("not a list")
    # a .txt list is URLs only: no caption asked of it; Parquet types kept, int32+int64 -> int64
    plan = open_url_lists([str(folder)], UrlListOptions(url_col="URL", caption_col="TEXT"))
    assert [Path(p).name for p in plan.files] == ["a.parquet", "b.txt.gz", "c.parquet"]
    rows = [r for t in input_tables(plan) for r in t.to_pylist()]
    assert [(r["url"], r["caption"]) for r in rows] == [
        ("https://e.com/3.jpg", "three"), ("https://e.com/1.jpg", ""),
        ("https://e.com/2.jpg", ""), ("https://e.com/4.jpg", "four")]
    assert [r["key"] for r in rows] == [f"{i:010d}" for i in range(4)]
    plan = open_url_lists([str(folder / "*.parquet")],
                          UrlListOptions(url_col="URL", caption_col="TEXT",
                                         save_additional_columns=("n",)))
    assert plan.extra == pa.schema([("n", pa.int64())])
    assert [r["n"] for t in input_tables(plan) for r in t.to_pylist()] == [3, 4]
    with pytest.raises(UrlListError, match="b.txt.gz: a .txt list holds only URLs"):
        open_url_lists([str(folder)], UrlListOptions(url_col="URL", caption_col="TEXT",
                                                     save_additional_columns=("n",)))


def test_listed_uid_fills_the_uid_and_hashes_are_typed(tmp_path):
    path = tmp_path / "pool.parquet"
    pq.write_table(pa.table({"uid": ["u1", None], "url": ["https://e.com/1.jpg"] * 2,
                             "text": ["one", "two"],
                             "sha256": [" ABCDEF ", None],
                             "md5": pa.array([b"\x01\x02", None], pa.binary())}), path)
    rows = rows_of([str(path)], caption_col="text", save_additional_columns=("uid",),
                   verify_hash_col="sha256")
    assert [r["uid"] for r in rows] == ["u1", make_uid("https://e.com/1.jpg", "two")]
    assert [r[EXPECTED_HASH] for r in rows] == ["sha256:abcdef", "sha256:"]
    rows = rows_of([str(path)], caption_col="text", verify_hash_col="md5",
                   verify_hash_type="md5")
    assert [r[EXPECTED_HASH] for r in rows] == ["md5:0102", "md5:"]
    assert hash_mismatch(b"abc", "sha256:" + sha256(b"abc")) is None
    assert hash_mismatch(b"abc", "md5:" + hashlib.md5(b"abc").hexdigest()) is None
    assert hash_mismatch(b"abc", "sha256:").startswith("hash mismatch: the list gives no sha256")
    assert hash_mismatch(b"abd", "sha256:" + sha256(b"abc")).startswith("hash mismatch: sha256")


def test_jsonl_bad_lines_are_rows_and_big_lists_stream(tmp_path):
    path = write_text(tmp_path / "l.jsonl.gz", '{"url": "https://e.com/1.jpg", "caption": "a"}\n'
                      '{broken\n[1, 2]\n{"url": 7, "caption": ["x"]}\n')
    rows = rows_of([str(path)])
    assert [r[INPUT_ERROR] for r in rows] == [
        None, "unreadable list line: not a JSON object", "unreadable list line: not a JSON object",
        "not an http(s) URL: '7'"]
    assert rows[3]["caption"] == '["x"]'
    # 25,000 rows in batches: no batch holds more than asked
    big = tmp_path / "big.csv"
    big.write_text("url,caption\n" + "".join(f"https://e.com/{i}.jpg,c{i}\n" for i in range(25_000)))
    plan = open_url_lists([str(big)], UrlListOptions())
    sizes = [t.num_rows for t in input_tables(plan, batch_rows=10_000)]
    assert sizes == [10_000, 10_000, 5_000]


def test_column_names_option():
    assert column_names("a, b,a") == ("a", "b")
    assert column_names('["SAMPLE_ID", "similarity"]') == ("SAMPLE_ID", "similarity")
    import argparse
    for bad in ("", "[1]", "status", "a,width", "_expected_hash"):
        with pytest.raises(argparse.ArgumentTypeError):
            column_names(bad)


# ---------------------------------------------------------------- errors: one line, exit 2


def wit_shards(args: list[str], out: Path, capsys) -> tuple[int, str]:
    try:
        code = main(["shards", *args, "--out", str(out), *WIT_NET])
    except SystemExit as exc:  # usage errors from argparse
        code = int(exc.code or 0)
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    return code, lines[0]


def bad_lists(d: Path) -> list[tuple[list[str], str, str]]:
    """(args, file named in the error, why) per case."""
    write_text(d / "cols.csv", "link,caption\nhttps://e.com/a.jpg,fox\n")
    pq.write_table(pa.table({"url": ["https://e.com/a.jpg"], "text": ["fox"]}), d / "cols.parquet")
    write_text(d / "cols.jsonl", '{"link": "https://e.com/a.jpg", "caption": "fox"}\n')
    (d / "garbage.parquet").write_bytes(b"not parquet at all")
    (d / "garbage.csv.gz").write_bytes(b"not gzip at all")
    pq.write_table(pa.table({"url": pa.array([1], pa.int64()), "caption": ["fox"]}),
                   d / "ints.parquet")
    write_text(d / "l.xlsx", "url\n")
    write_text(d / "urls.txt", "https://e.com/a.jpg\n")
    pq.write_table(pa.table({"url": ["https://e.com/a.jpg"], "caption": ["a"], "n": [1]}),
                   d / "n1.parquet")
    pq.write_table(pa.table({"url": ["https://e.com/b.jpg"], "caption": ["b"], "n": ["x"]}),
                   d / "n2.parquet")
    return [
        (["--urls", str(d / "cols.csv")], "cols.csv", "needs columns 'url' and 'caption'"),
        (["--urls", str(d / "cols.parquet")], "cols.parquet", "needs columns 'url' and 'caption'"),
        (["--urls", str(d / "cols.jsonl")], "cols.jsonl", "needs columns 'url' and 'caption'"),
        (["--urls", str(d / "cols.csv"), "--url-col", "link", "--verify-hash-col", "sha"],
         "cols.csv", "needs columns 'link', 'caption' and 'sha'"),
        (["--urls", str(d / "garbage.parquet")], "garbage.parquet", "not a readable Parquet"),
        (["--urls", str(d / "garbage.csv.gz")], "garbage.csv.gz", "not a readable csv file"),
        (["--urls", str(d / "ints.parquet")], "ints.parquet", "column 'url' is int64"),
        (["--urls", str(d / "missing.parquet")], "missing.parquet", "no such URL-list file"),
        (["--urls", str(d / "none-*.csv")], "none-*.csv", "no such URL-list file"),
        (["--urls", str(d / "l.xlsx")], "l.xlsx", "unknown URL-list format"),
        (["--urls", str(d / "urls.txt"), "--save-additional-columns", "a"], "urls.txt",
         "a .txt list holds only URLs"),
        (["--urls", str(d / "n1.parquet"), str(d / "n2.parquet"),
          "--save-additional-columns", "n"], "n2.parquet", "column 'n' is string, but int64"),
    ]


@pytest.mark.integration
def test_bad_lists_are_one_line_errors_naming_the_file(tmp_path, capsys):
    for args, name, why in bad_lists(tmp_path):
        out = tmp_path / "out"
        code, line = wit_shards(args, out, capsys)
        assert code == 2, (args, line)
        assert line.startswith("wit shards: error: ") and name in line and why in line, line
        assert not (out / "shards" / "_work" / "round0").exists()  # nothing downloaded


@pytest.mark.integration
def test_usage_errors_exit_2(tmp_path, capsys):
    lst = write_text(tmp_path / "l.csv", "url,caption\n")
    cases = [
        ([], "one of the arguments --candidates --urls is required"),
        (["--urls", str(lst), "--candidates", str(tmp_path)], "not allowed with argument"),
        (["--urls", str(lst), "--save-additional-columns", "status,x"], "'status'"),
        (["--urls", str(lst), "--verify-hash-type", "crc32"], "invalid choice: 'crc32'"),
    ]
    for args, why in cases:
        code, line = wit_shards(args, tmp_path / "out", capsys)
        assert code == 2 and why in line, (args, line)


@pytest.mark.integration
def test_a_file_broken_past_its_header_stops_the_run_naming_it(tmp_path, capsys):
    """The header is fine, the gzip stream breaks later: found while the download reads it."""
    data = gzip.compress(("url,caption\n" + "".join(
        f"http://127.0.0.2:9/{i}.jpg,c\n" for i in range(20000))).encode(), mtime=0)
    path = tmp_path / "cut.csv.gz"
    path.write_bytes(data[: len(data) // 2])
    code, line = wit_shards(["--urls", str(path), "--download-shard-size", "100000"],
                            tmp_path / "out", capsys)
    assert code == 2 and "cut.csv.gz: not a readable csv file" in line, line


# ---------------------------------------------------------------- a run over text formats


@pytest.mark.integration
def test_text_lists_end_to_end_every_row_with_a_status(tmp_path, capsys):
    server = Server()
    try:
        images = [to_jpeg(image) for _, image in real_images(4)]
        for i, data in enumerate(images):
            server.routes[f"/i/{i}.jpg"] = data
        url = server.url
        lists = tmp_path / "lists"
        lists.mkdir()
        write_text(lists / "a.csv", f"url,caption\n{url('/i/0.jpg')},a photo zero\n,no url\n")
        write_text(lists / "b.tsv.gz", f"url\tcaption\n{url('/i/1.jpg')}\ta photo one\n"
                                       f"{url('/404.jpg')}\tmissing\n")
        write_text(lists / "c.jsonl.bz2", json.dumps({"url": url("/i/2.jpg"), "caption": "two"})
                   + "\n{broken\n")
        write_text(lists / "d.txt", f"{url('/i/3.jpg')}\n")
        out = tmp_path / "out"
        code = main(["shards", "--urls", str(lists), "--out", str(out), "--filter", "none",
                     "--image-size", "64", *WIT_NET])
        assert code == 0, capsys.readouterr().err
    finally:
        server.close()
    rows = shard_rows(out / "shards")
    assert [(r["key"], r["status"], r["caption"]) for r in rows] == [
        ("0000000000", "success", "a photo zero"),
        ("0000000001", "failed_to_download", "no url"),
        ("0000000002", "success", "a photo one"),
        ("0000000003", "failed_to_download", "missing"),
        ("0000000004", "success", "two"),
        ("0000000005", "failed_to_download", ""),
        ("0000000006", "success", ""),
    ]
    assert rows[5]["error_message"] == "unreadable list line: not a JSON object"
    members = tar_members(out / "shards")
    assert members["0000000006.txt"] == b""
    assert Counter(Path(n).suffix for n in members) == {".jpg": 4, ".txt": 4, ".json": 4}


@pytest.mark.integration
def test_retry_failed_keeps_the_additional_columns_and_skips_rows_without_url(tmp_path):
    server = Server()
    image = to_jpeg(real_images(1)[0][1])
    calls = Counter()

    def flaky(handler):
        calls["flaky"] += 1
        if calls["flaky"] == 1:
            send(handler, 503, b"busy", "text/plain")
        else:
            send(handler, 200, image)

    server.routes["/flaky.jpg"] = flaky
    try:
        path = tmp_path / "l.parquet"
        pq.write_table(pa.table({"url": [server.url("/flaky.jpg"), None],
                                 "caption": ["a flaky photo", "nothing"],
                                 "id": ["x1", "x2"]}), path)
        base = ["shards", "--urls", str(path), "--out", str(tmp_path / "out"), "--filter", "none",
                "--save-additional-columns", "id", *WIT_NET]
        assert main(base) == 0
        first = shard_rows(tmp_path / "out" / "shards")
        assert [r["status"] for r in first] == ["failed_to_download"] * 2
        assert main([*base, "--retry-failed"]) == 0
    finally:
        server.close()
    rows = shard_rows(tmp_path / "out" / "shards")
    assert [(r["status"], r["attempts"], r["id"]) for r in rows] == [
        ("success", 2, "x1"), ("failed_to_download", 1, "x2")]
    assert calls["flaky"] == 2
    members = tar_members(tmp_path / "out" / "shards")
    assert json.loads(members["0000000000.json"])["id"] == "x1"
    assert io.BytesIO(members["0000000000.jpg"]).read(2) == b"\xff\xd8"
