"""Every Beam job gives the same outputs on three runner set-ups: the in-process runner (the
default), two worker processes (``--direct_running_mode=multi_processing``), and the
PortableRunner against Beam's local job service with ``--environment_type=LOOPBACK`` — the
portable path (job service + SDK harness over gRPC) that Flink's and Spark's job servers use.

Each job runs once per set-up on small real inputs; deterministic files (the crawl's
candidates included) are compared byte for byte, other Parquet outputs by their sorted rows.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers.scaling import QUERIES_ARGS, crawl_inputs
from helpers.shards import TRUSTED, Server, served_rows, write_candidates

from pipeline.cli import main
from pipeline.core.net import FetchConfig
from pipeline.shards import job as shards_job
from pipeline.shards.download import DownloadConfig
from pipeline.shards.filters import FilterConfig
from pipeline.shards.imaging import ResizeConfig
from pipeline.shards.job import ShardsOptions

MULTI_PROCESS = ["--direct_running_mode=multi_processing", "--direct_num_workers=2"]


# Beam's stager and job service leave temporary folders behind (conftest.py)
pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("beam_temp_files")]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def job_endpoint(tmp_path_factory) -> Iterator[str]:
    """Beam's local job service on a free loopback port, stopped after the module. Its log
    goes to a file (a pipe nobody reads would block it once full)."""
    port = _free_port()
    log = tmp_path_factory.mktemp("job_service") / "log.txt"
    with open(log, "wb") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "apache_beam.runners.portability.local_job_service_main",
             "--port", str(port)], stdout=log_file, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    try:
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"local job service exited: {log.read_text()[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("local job service did not start in 60 s") from None
                time.sleep(0.2)
        yield f"localhost:{port}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def runner_setups(endpoint: str) -> dict[str, list[str]]:
    return {
        "in_process": [],
        "multi_processing": MULTI_PROCESS,
        "portable_loopback": ["--runner=PortableRunner", f"--job_endpoint={endpoint}",
                              "--environment_type=LOOPBACK"],
    }


def parquet_rows(paths: list[Path]) -> list[str]:
    """Rows of Parquet files as sorted canonical JSON (row order is not part of the output)."""
    assert paths, "no Parquet files"
    rows = pa.concat_tables(pq.read_table(p) for p in paths).to_pylist()
    return sorted(json.dumps(r, sort_keys=True, default=repr) for r in rows)


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def assert_all_equal(outputs: dict[str, dict]) -> None:
    (first_name, first), *rest = outputs.items()
    for name, other in rest:
        assert other.keys() == first.keys(), (first_name, name)
        for key in first:
            assert other[key] == first[key], f"{key}: {name} differs from {first_name}"


# -- queries ---------------------------------------------------------------------------------

def queries_outputs(out: Path) -> dict:
    folder = out / "queries"
    return {"metadata.json": (folder / "metadata.json").read_bytes(),
            "metadata.parquet": parquet_rows([folder / "metadata.parquet"])}


def test_queries_same_on_every_runner(tmp_path, wiki_sample, job_endpoint):
    outputs = {}
    for name, beam_args in runner_setups(job_endpoint).items():
        out = tmp_path / name
        assert main(["queries", "--wiki", str(wiki_sample), "--out", str(out), *QUERIES_ARGS,
                     "--", *beam_args]) == 0, name
        outputs[name] = queries_outputs(out)
    assert_all_equal(outputs)
    entries = json.loads(outputs["in_process"]["metadata.json"])
    assert len(entries) > 1000


# -- crawl -----------------------------------------------------------------------------------


def crawl_outputs(out: Path) -> dict:
    """The candidate files are canonical (pipeline/crawl/writer.py): compared byte for byte."""
    folder = out / "candidates"
    stats = json.loads((folder / "stats.json").read_text())
    found: dict = {p.name: sha(p) for p in sorted(folder.glob("*.parquet"))}
    found["rows"] = parquet_rows(sorted(folder.glob("part-*.parquet")))
    found["sources"], found["outputs"] = stats["sources"], stats["outputs"]
    return found


def test_crawl_same_on_every_runner(tmp_path, job_endpoint):
    args = crawl_inputs(tmp_path)
    outputs = {}
    for name, beam_args in runner_setups(job_endpoint).items():
        out = tmp_path / name
        assert main(["crawl", *args, "--out", str(out), "--num-shards", "3",
                     "--", *beam_args]) == 0, name
        outputs[name] = crawl_outputs(out)
    assert_all_equal(outputs)
    assert len([k for k in outputs["in_process"] if k.startswith("part-")]) == 3
    sources = outputs["in_process"]["sources"]
    assert sources["warc"]["kept"] > 0 and sources["urls"]["duplicates"] == 3
    assert 0 < sources["urls"]["kept"] < 420  # 'cat' was thinned by the seeded draw


# -- shards (Beam part) ----------------------------------------------------------------------


def shards_options(candidates: Path, out: Path) -> ShardsOptions:
    fetch = FetchConfig(timeout=5.0, retries=1, max_backoff=2.0, allowed_networks=(TRUSTED,))
    download = DownloadConfig(fetch=fetch, resize=ResizeConfig(image_size=64, max_pixels=3_000_000),
                              thread_count=4, filters=FilterConfig(max_pixels=3_000_000))
    return ShardsOptions(candidates=str(candidates), out=str(out), download=download,
                         processes=1, download_shard_size=4, samples_per_shard=3)


def shards_outputs(out: Path) -> dict:
    folder = out / "shards"
    found: dict = {p.name: sha(p) for p in sorted(folder.glob("*.tar"))}
    found["rows"] = parquet_rows(sorted(folder.glob("*.parquet")))
    found["sizes.json"] = (folder / "sizes.json").read_bytes()
    manifest = json.loads((folder / "manifest.json").read_text())
    found["statuses"] = manifest["statuses"]
    return found


def test_shards_beam_job_same_on_every_runner(tmp_path, job_endpoint):
    """One real download (img2dataset, loopback origin), then the shards Beam job (filters,
    dedup, resharding) over those same downloads on each runner set-up."""
    server = Server()
    rows = served_rows(server)
    candidates = write_candidates(tmp_path / "candidates", rows, files=2)
    downloaded = tmp_path / "downloaded"
    try:
        shards_job.run(shards_options(candidates, downloaded), [])
    finally:
        server.close()  # from here on nothing is fetched: every run reuses the downloads

    outputs = {}
    for name, beam_args in runner_setups(job_endpoint).items():
        out = tmp_path / name
        shutil.copytree(downloaded / "shards" / "_work", out / "shards" / "_work")
        shards_job.run(shards_options(candidates, out), beam_args)
        outputs[name] = shards_outputs(out)
    assert_all_equal(outputs)
    statuses = outputs["in_process"]["statuses"]
    assert statuses.get("success") == len(rows) - 2 and sum(statuses.values()) == len(rows)  # the duplicate and the 404 are not successes
    assert len([k for k in outputs["in_process"] if k.endswith(".tar")]) >= 2


# -- Makefile --------------------------------------------------------------------------------


@pytest.mark.parametrize("target", ["queries", "crawl", "shards", "demo"])
def test_makefile_passes_runner_and_beam_args(target):
    """`make TARGET RUNNER=... BEAM_ARGS=...` hands both to `wit` after `--` (printed with
    `make -n`: nothing runs)."""
    repo = Path(__file__).resolve().parents[1]
    beam_args = "--job_endpoint=localhost:8099 --environment_type=LOOPBACK"
    result = subprocess.run(
        ["make", "-n", target, "OUT=gs://bucket/out", "WIKI=dump.xml.bz2",
         "CRAWL_ARGS=--urls list.parquet", "RUNNER=PortableRunner", f"BEAM_ARGS={beam_args}"],
        cwd=repo, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    wit_lines = [line for line in result.stdout.splitlines() if f"wit {target}" in line]
    assert len(wit_lines) == 1, result.stdout
    assert wit_lines[0].endswith(f" -- --runner=PortableRunner {beam_args}")
    assert "gs://bucket/out" in wit_lines[0]
