"""Killing `wit shards` part-way and rerunning (on 2 Beam worker processes) gives the same
final shards as one uninterrupted in-process run; `--retry-failed` re-downloads only the rows
that failed."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from helpers.shards import (
    TRUSTED,
    Server,
    english_caption,
    options,
    real_images,
    send,
    to_jpeg,
    wit_env,
    write_candidates,
)

from pipeline.shards import job as shards_job

pytestmark = pytest.mark.integration


def wit_shards(candidates: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "pipeline.cli", "shards", "--candidates", str(candidates),
            "--out", str(out), "--allow-network", TRUSTED, "--processes", "1", "--threads", "2",
            "--download-shard-size", "3", "--samples-per-shard", "4", "--image-size", "64",
            "--timeout", "5"]


def fingerprint(out: Path) -> dict[str, str]:
    shards = out / "shards"
    found = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(shards.glob("*.tar"))}
    for p in sorted(shards.glob("*.parquet")):
        found[p.name] = pd.read_parquet(p).to_json()
    found["sizes.json"] = (shards / "sizes.json").read_text()
    return found


def test_kill_and_rerun_gives_the_same_shards(tmp_path):
    images = real_images(14)
    server = Server()
    rows = []
    for i, (_, image) in enumerate(images):
        body = to_jpeg(image)

        def slow(h, body=body):
            time.sleep(0.3)
            send(h, 200, body)

        server.routes[f"/img/{i}.jpg"] = slow
        rows.append({"url": server.url(f"/img/{i}.jpg"), "text": english_caption(i)})
    rows.append(rows[2])  # an exact duplicate row
    candidates = write_candidates(tmp_path / "candidates", rows, files=2)
    try:
        reference = tmp_path / "reference"
        subprocess.run(wit_shards(candidates, reference), check=True, env=wit_env(),
                       capture_output=True, timeout=240)

        killed = tmp_path / "killed"
        process = subprocess.Popen(wit_shards(candidates, killed), env=wit_env(),
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                   start_new_session=True)
        round0 = killed / "shards" / "_work" / "round0"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and len(list(round0.glob("*_stats.json"))) < 2:
            time.sleep(0.05)
        os.killpg(process.pid, signal.SIGKILL)  # the CLI and its download workers
        process.wait()
        finished = len(list(round0.glob("*_stats.json")))
        assert 2 <= finished < 5, finished  # really killed part-way through the download
        assert not (killed / "shards" / "manifest.json").exists()

        # the rerun also uses another runner setup (2 Beam worker processes): same shards
        beam = ["--", "--direct_running_mode=multi_processing", "--direct_num_workers=2"]
        result = subprocess.run(wit_shards(candidates, killed) + beam, env=wit_env(),
                                capture_output=True, text=True, timeout=240)
        assert result.returncode == 0, result.stderr[-3000:]
    finally:
        server.close()
    assert fingerprint(killed) == fingerprint(reference)
    df = pd.concat(pd.read_parquet(p) for p in sorted((killed / "shards").glob("*.parquet")))
    assert len(df) == len(rows) and df["key"].is_unique
    assert (df["status"] == "success").sum() == len(images)
    assert "kept in" in result.stdout  # the summary, on stdout like every stage


def test_retry_failed_redownloads_only_failed_rows(tmp_path):
    images = real_images(4)
    server = Server()
    calls = {"n": 0}

    def flaky(h):  # fails through the first run's retries, then recovers
        calls["n"] += 1
        if calls["n"] <= 2:
            send(h, 503, b"busy", "text/plain")
        else:
            send(h, 200, to_jpeg(images[3][1]))

    for i in range(3):
        server.routes[f"/img/{i}.jpg"] = to_jpeg(images[i][1])
    server.routes["/flaky.jpg"] = flaky
    rows = [{"url": server.url(f"/img/{i}.jpg"), "text": f"picture number {i}"} for i in range(3)]
    rows += [{"url": server.url("/flaky.jpg"), "text": "a flaky host"},
             {"url": server.url("/gone.jpg"), "text": "a missing image"}]
    candidates = write_candidates(tmp_path / "candidates", rows)
    out = tmp_path / "out"
    try:
        first = shards_job.run(options(candidates, out), [])
        assert first["statuses"] == {"failed_to_download": 2, "success": 3}
        second = shards_job.run(options(candidates, out, retry_failed=True), [])
    finally:
        server.close()
    assert second["statuses"] == {"failed_to_download": 1, "success": 4}
    df = pd.concat(pd.read_parquet(p) for p in sorted((out / "shards").glob("*.parquet")))
    by_url = df.set_index("url")
    assert by_url.loc[server.url("/flaky.jpg"), "attempts"] == 2
    assert by_url.loc[server.url("/gone.jpg"), "attempts"] == 2
    assert by_url.loc[server.url("/img/0.jpg"), "attempts"] == 1
    assert all(server.hits[f"/img/{i}.jpg"] == 1 for i in range(3))
    assert server.hits["/gone.jpg"] == 2
    assert second["config"]["download_rounds"] == [0, 1]
