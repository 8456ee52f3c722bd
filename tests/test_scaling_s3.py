"""The stages read and write object stores, not just local paths: `wit queries`, `wit crawl`
and `wit shards` run (in-process runner, img2dataset download included) with every input and
output on ``s3://`` against a real S3 server (moto's, on 127.0.0.1), and their outputs equal
those of the same run on local paths, byte for byte (JSON stats compared with the paths in
them reduced to file names).

Only loopback is contacted: the endpoint comes from ``AWS_ENDPOINT_URL`` (botocore, so the
spawned img2dataset workers inherit it), credentials are dummies and the EC2 metadata lookup
is off.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from helpers.scaling import QUERIES_ARGS, crawl_inputs
from helpers.shards import TRUSTED, Server, served_rows, write_candidates

from pipeline.cli import main
from pipeline.crawl.option_values import seed_urls

BUCKET = "wit-scaling-test"

# Beam's stager and job service leave temporary folders behind (conftest.py)
pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("beam_temp_files")]


@dataclass
class S3:
    fs: Any  # s3fs.S3FileSystem

    def url(self, key: str) -> str:
        return f"s3://{BUCKET}/{key}"

    def put(self, local: Path, key: str) -> str:
        self.fs.put_file(str(local), f"{BUCKET}/{key}")
        return self.url(key)

    def files(self, key: str) -> dict[str, bytes]:
        """Every object under ``key``, by path relative to it."""
        root = f"{BUCKET}/{key}"
        self.fs.invalidate_cache()  # objects written by other processes (img2dataset)
        return {p[len(root) + 1:]: self.fs.cat_file(p) for p in sorted(self.fs.find(root))}


@pytest.fixture(scope="module")
def s3() -> Iterator[S3]:
    server_module = pytest.importorskip("moto.server", reason="moto[server] not installed "
                                        "(pip install -e .[dev])")
    s3fs = pytest.importorskip("s3fs", reason="s3fs not installed (pip install -e .[dev])")
    server = server_module.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        with pytest.MonkeyPatch.context() as env:
            for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                                "AWS_SESSION_TOKEN": "testing", "AWS_DEFAULT_REGION": "us-east-1",
                                "AWS_ENDPOINT_URL": f"http://{host}:{port}",
                                "AWS_EC2_METADATA_DISABLED": "true"}.items():
                env.setenv(name, value)
            for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL_S3", "FSSPEC_S3_ENDPOINT_URL"):
                env.delenv(name, raising=False)
            s3fs.S3FileSystem.clear_instance_cache()
            fs = s3fs.S3FileSystem(skip_instance_cache=True)
            fs.mkdir(BUCKET)
            yield S3(fs)
            s3fs.S3FileSystem.clear_instance_cache()
    finally:
        server.stop()


def local_files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def names_only(value: Any) -> Any:
    """JSON with every local or s3:// path reduced to its file name."""
    if isinstance(value, dict):
        return {k: names_only(v) for k, v in value.items()}
    if isinstance(value, list):
        return [names_only(v) for v in value]
    if isinstance(value, str) and (value.startswith(("/", "s3://"))):
        return value.rstrip("/").rsplit("/", 1)[-1]
    return value


# the folder part of an absolute local or s3:// path in a text (the dataset card's sources)
PATH_FOLDER = re.compile(r"(?:s3://|(?<![\w.])/)[^\s`|)\"']*/")


def rows_names_only(parquet: bytes) -> list[dict]:
    """A Parquet file's rows, with the provenance paths (``source_file``) reduced to names:
    the only values that differ between a run on local files and one on s3."""
    import pyarrow.parquet as pq

    return [names_only(row) for row in pq.read_table(io.BytesIO(parquet)).to_pylist()]


def assert_same_outputs(local: dict[str, bytes], remote: dict[str, bytes],
                        json_files: tuple[str, ...], skip_keys: tuple[str, ...] = ()) -> None:
    """Byte-identical files, except where an output records where its input was: JSON
    files, the Parquets' provenance column and the dataset card, compared with every path
    reduced to its file name."""
    assert remote.keys() == local.keys()  # no temporary or stale objects left either
    for name in local:
        if name.endswith(".parquet") and local[name] != remote[name]:
            assert rows_names_only(remote[name]) == rows_names_only(local[name]), name
            import pyarrow.parquet as pq

            schemas = (pq.read_schema(io.BytesIO(f[name])) for f in (local, remote))
            assert next(schemas) == next(schemas), name
        elif name.endswith("README.md"):
            mine, theirs = (PATH_FOLDER.sub("", f[name].decode()) for f in (local, remote))
            assert theirs == mine, name
        elif name in json_files:
            mine, theirs = (names_only(json.loads(f[name])) for f in (local, remote))
            for key in skip_keys:
                mine.pop(key, None)
                theirs.pop(key, None)
            assert theirs == mine, name
        else:
            assert remote[name] == local[name], name


def test_queries_on_s3(tmp_path, wiki_sample, s3):
    dump = s3.put(wiki_sample, "queries-in/wiki/" + wiki_sample.name)
    assert main(["queries", "--wiki", str(wiki_sample), "--out", str(tmp_path / "out"),
                 *QUERIES_ARGS]) == 0
    assert main(["queries", "--wiki", dump.rsplit("/", 1)[0] + "/*.xml.bz2",
                 "--out", s3.url("queries-out"), *QUERIES_ARGS]) == 0
    local = local_files(tmp_path / "out")
    assert set(local) == {"queries/metadata.json", "queries/metadata.parquet",
                          "queries/stats.json"}
    assert_same_outputs(local, s3.files("queries-out"), ("queries/stats.json",))
    assert len(json.loads(local["queries/metadata.json"])) > 1000


def test_crawl_on_s3(tmp_path, s3):
    """WARC, WAT, URL list and metadata on s3; a first run with more part files shows that
    the stale parts of an earlier run are removed from the bucket too."""
    args = crawl_inputs(tmp_path)
    remote_args = [s3.put(Path(a), "crawl-in/" + Path(a).name) if a.startswith("/") else a
                   for a in args]
    assert main(["crawl", *args, "--out", str(tmp_path / "out"), "--num-shards", "3"]) == 0
    out = s3.url("crawl-out")
    assert main(["crawl", *remote_args, "--out", out, "--num-shards", "5"]) == 0
    assert main(["crawl", *remote_args, "--out", out, "--num-shards", "3"]) == 0
    local = local_files(tmp_path / "out")
    assert len([n for n in local if n.startswith("candidates/part-")]) == 3
    assert_same_outputs(local, s3.files("crawl-out"), ("candidates/stats.json",))
    stats = json.loads(local["candidates/stats.json"])
    assert stats["sources"]["warc"]["kept"] > 0 and stats["sources"]["urls"]["kept"] > 0


def test_seed_file_on_s3(s3):
    s3.fs.pipe_file(f"{BUCKET}/seeds/list.txt",
                    b"# seeds\nhttp://127.0.0.2:1/a.html\n\nhttps://site.test/\n")
    assert seed_urls([s3.url("seeds/list.txt"), "http://127.0.0.2:1/b.html"]) == (
        "http://127.0.0.2:1/a.html", "https://site.test/", "http://127.0.0.2:1/b.html")


SHARDS_ARGS = ["--allow-network", TRUSTED, "--processes", "1", "--threads", "4",
               "--samples-per-shard", "3", "--download-shard-size", "4", "--image-size", "64",
               "--timeout", "5", "--retries", "1", "--max-backoff", "2", "--retry-failed"]
# the download rounds' own files hold timings and img2dataset's tar mtimes
VARYING = ("shards/_work/",)


def test_shards_on_s3(tmp_path, s3):
    """Candidates on s3, img2dataset downloading into the bucket (plus a retry round), then
    the shards Beam job and the report reading back from it; a rerun on s3 after the image
    server is gone resumes from the bucket and gives the same shards."""
    server = Server()
    rows = served_rows(server)
    candidates = write_candidates(tmp_path / "candidates", rows, files=2)
    for part in sorted(candidates.glob("*.parquet")):
        s3.put(part, "shards-in/candidates/" + part.name)
    try:
        assert main(["shards", "--candidates", str(candidates), "--out", str(tmp_path / "out"),
                     *SHARDS_ARGS]) == 0
        assert main(["shards", "--candidates", s3.url("shards-in/candidates"),
                     "--out", s3.url("shards-out"), *SHARDS_ARGS]) == 0
    finally:
        server.close()
    local = local_files(tmp_path / "out")
    first = s3.files("shards-out")
    assert sorted(first) == sorted(local)  # no temporary objects left in the bucket
    final = {n: b for n, b in local.items() if not n.startswith(VARYING)}
    # like seconds, the network counters (DNS cache hits, rows that waited for their host's
    # turn) depend on thread timing, not on the inputs
    assert_same_outputs(final, {n: first[n] for n in final}, ("shards/manifest.json",),
                        skip_keys=("seconds", "network"))
    manifest = json.loads(local["shards/manifest.json"])
    assert manifest["statuses"] == {"duplicate": 1, "failed_to_download": 1, "success": 7}
    assert manifest["config"]["download_rounds"] == [0, 1]  # the retry round ran too
    assert len([n for n in final if n.endswith(".tar")]) == 3

    assert main(["shards", "--candidates", s3.url("shards-in/candidates"),
                 "--out", s3.url("shards-out"), *SHARDS_ARGS[:-1]]) == 0
    again = s3.files("shards-out")
    assert sorted(again) == sorted(first)
    for name in final:
        if name != "shards/manifest.json":
            assert again[name] == first[name], name
