"""`wit shards` is polite at scale, end to end: loopback hosts on distinct 127.0.0.x addresses
count what they see while the stage downloads with 2 processes x 32 threads (and on Spark):
no host ever sees more requests in flight or request starts per second than the limits, nor
faster than its robots.txt Crawl-delay; a host answering 429 is backed off as a whole while
another host's rows finish at full speed, its rows end as failed_to_download:host_backoff and
`--retry-failed` fetches them later. The final shards do not depend on the limits."""

from __future__ import annotations

import glob
import json
import os
import threading
from pathlib import Path

import pandas as pd
import pytest
from helpers.politeness import CountingHost, jpeg, most_in_window
from helpers.shards import write_candidates

from pipeline.core.net import FetchConfig
from pipeline.core.net.hosts import host_key, host_lane
from pipeline.shards import job as shards_job
from pipeline.shards.download import DownloadConfig
from pipeline.shards.filters import FilterConfig
from pipeline.shards.imaging import ResizeConfig
from pipeline.shards.job import ShardsOptions
from schemas import status as st

pytestmark = pytest.mark.integration

TRUSTED = ("127.0.0.0/29",)  # 127.0.0.2 - 127.0.0.5 below (loopback, distinct hosts)


def caption(i: int) -> str:
    return f"a real photo, picture number {i}"


def options(candidates: Path, out: Path, *, processes: int = 2, shard_size: int = 10,
            stage: dict | None = None, **fetch) -> ShardsOptions:
    """2 processes x 32 threads; ``fetch``: FetchConfig fields, ``stage``: ShardsOptions'."""
    base = dict(timeout=5.0, retries=1, max_backoff=2.0, allowed_networks=TRUSTED)
    base.update(fetch)
    download = DownloadConfig(fetch=FetchConfig(**base), thread_count=32,
                              resize=ResizeConfig(image_size=64), filters=FilterConfig(
                                  preset="none", min_words=0, min_chars=0, languages=(),
                                  min_side=0, max_aspect=None))
    return ShardsOptions(candidates=str(candidates), out=str(out), download=download,
                         processes=processes, download_shard_size=shard_size,
                         samples_per_shard=50, **(stage or {}))


def interleaved(hosts: list[tuple[CountingHost, int]]) -> list[dict]:
    """Rows of every host, mixed (as a web pool mixes them): host0 row0, host1 row0, ..."""
    rows, i = [], 0
    for n in range(max(count for _, count in hosts)):
        for server, count in hosts:
            if n < count:
                rows.append({"url": server.url(f"/img/{n}.jpg"), "text": caption(i)})
                i += 1
    return rows


def statuses(out: Path) -> dict[str, str]:
    frames = [pd.read_parquet(p) for p in sorted((out / "shards").glob("*.parquet"))]
    df = pd.concat(frames, ignore_index=True)
    return dict(zip(df["url"], df["status"]))


def test_limits_hold_for_every_host_across_2_processes_x_32_threads(tmp_path):
    image = jpeg(96)
    slow = [CountingHost(f"127.0.0.{i}", image, delay=0.3) for i in (2, 3)]  # connection-bound
    fast = CountingHost("127.0.0.4", image, delay=0.005)  # rate-bound
    delayed = CountingHost("127.0.0.5", image, delay=0.005,
                           robots="User-agent: *\nCrawl-delay: 0.5\n")
    hosts = [*slow, fast, delayed]
    rows = interleaved([(slow[0], 20), (slow[1], 20), (fast, 20), (delayed, 8)])
    candidates = write_candidates(tmp_path / "candidates", rows)
    try:
        manifest = shards_job.run(options(candidates, tmp_path / "out",
                                          max_connections_per_host=3,
                                          max_requests_per_second_per_host=8), [])
    finally:
        for server in hosts:
            server.close()
    got = statuses(tmp_path / "out")
    assert len(got) == len(rows) and not any(st.is_failed_download(s) for s in got.values())
    for server in hosts:
        assert server.peak_in_flight <= 3, server.host
        # robots.txt included: every request goes through the limits
        assert most_in_window(server.starts(), 1.0) <= 8 + 2, server.host
        # each process keeps at most its share of idle keep-alive connections
        assert server.peak_open <= 3 * 2, server.host
    assert all(server.peak_in_flight == 3 for server in slow)  # the limit was reached
    # Crawl-delay 0.5 s: at most 3 image requests in any second (one every 0.5 s)
    assert most_in_window(delayed.starts(skip_robots=True), 1.0) <= 3
    assert delayed.hits["/robots.txt"] <= 2  # once per process
    hosts_counts = manifest["network"]["hosts"]
    assert hosts_counts["requests"] >= len(rows) and hosts_counts["waited"] > 0
    assert hosts_counts["deferred"] == hosts_counts["backoffs"] == 0
    stats = [json.loads(p.read_text()) for p in
             sorted((tmp_path / "out" / "shards" / "_work" / "round0").glob("*_stats.json"))]
    assert len(stats) >= 6 and all("network" in s for s in stats)
    assert not glob.glob(f"/dev/shm/wit-hosts-{os.getpid()}-*")  # the run's table is gone


def test_a_host_answering_429_is_backed_off_as_a_whole(tmp_path):
    image = jpeg(96)
    state = {"busy": True}
    lock = threading.Lock()

    def busy_route(path: str) -> tuple[int, bytes, dict[str, str]]:
        if path == "/robots.txt":
            return 404, b"", {"Content-Type": "text/plain"}
        with lock:
            if state["busy"]:
                return 429, b"slow down", {"Content-Type": "text/plain"}
        return 200, image, {}

    busy = CountingHost("127.0.0.2", route=busy_route, delay=0.01)
    fine = CountingHost("127.0.0.3", image, delay=0.02)
    rows = interleaved([(busy, 30), (fine, 30)])
    candidates = write_candidates(tmp_path / "candidates", rows)
    limits = dict(max_connections_per_host=2, max_requests_per_second_per_host=0,
                  backoff_base=0.3, max_backoff=1.5, retries=1)
    out = tmp_path / "out"
    try:
        # one download shard per process, both at once: each mixes the two hosts
        manifest = shards_job.run(options(candidates, out, shard_size=30, **limits), [])
        got = statuses(out)
        busy_rows = [r["url"] for r in rows if busy.host in r["url"]]
        fine_rows = [r["url"] for r in rows if fine.host in r["url"]]
        assert all(st.status_group(got[u]) in (st.SUCCESS, st.DUPLICATE) for u in fine_rows)
        assert all(st.is_failed_download(got[u]) for u in busy_rows)
        deferred = [u for u in busy_rows if got[u] == st.FAILED_HOST_BACKOFF]
        assert len(deferred) >= 20
        # 30 rows x 2 tries would be 60 requests; backed off as a whole, the host got a few
        # rounds of at most 2 (pauses 0.3, 0.6, 1.2 s, then 2.4 s > --max-backoff)
        image_hits = sum(n for p, n in busy.hits.items() if p != "/robots.txt")
        assert image_hits <= 12, busy.hits
        # the other host's rows did not wait for it: all done while the busy host was still
        # being backed off (its pauses alone add up to 0.3 + 0.6 + 1.2 s)
        assert max(fine.starts(skip_robots=True)) < max(busy.starts(skip_robots=True))
        counts = manifest["network"]["hosts"]
        assert counts["busy_answers"] == image_hits and 1 <= counts["backoffs"] <= 6
        assert counts["deferred"] >= 1
        assert "failed_to_download:host_backoff" in manifest["statuses"]

        with lock:
            state["busy"] = False  # the host is back: --retry-failed fetches its rows
        retried = shards_job.run(options(candidates, out, shard_size=30,
                                         stage={"retry_failed": True}, **limits), [])
    finally:
        busy.close()
        fine.close()
    assert retried["statuses"] == {"success": 1, "duplicate": len(rows) - 1}  # one image
    assert retried["config"]["download_rounds"] == [0, 1]


def test_limits_hold_on_spark_and_the_shards_do_not_depend_on_them(tmp_path):
    pytest.importorskip("pyspark")
    image_a, image_b = jpeg(96, seed=1), jpeg(96, seed=2)
    a = CountingHost("127.0.0.2", image_a, delay=0.2)
    b = CountingHost("127.0.0.3", image_b, delay=0.2)
    rows = interleaved([(a, 12), (b, 12)])
    candidates = write_candidates(tmp_path / "candidates", rows)
    try:
        limited = shards_job.run(options(candidates, tmp_path / "spark", shard_size=6,
                                         stage={"distributor": "pyspark",
                                                "spark_master": "local[2]"},
                                         max_connections_per_host=2,
                                         max_requests_per_second_per_host=0), [])
        peaks = (a.peak_in_flight, b.peak_in_flight)
        free = shards_job.run(options(candidates, tmp_path / "free", shard_size=6,
                                      max_connections_per_host=0,
                                      max_requests_per_second_per_host=0), [])
    finally:
        a.close()
        b.close()
    assert peaks == (2, 2)  # reached, never passed, by 2 Spark workers x 32 threads
    # on Spark every download shard holds the rows of one host lane (one per process); the
    # final shards below are byte-identical all the same
    for path in (tmp_path / "spark" / "shards" / "_work" / "round0").glob("*.parquet"):
        lane = int(path.stem) % 2
        assert {host_lane(host_key(u), 2) for u in pd.read_parquet(path)["url"]} == {lane}
    assert limited["statuses"] == free["statuses"] == {"success": 2, "duplicate": 22}
    for run in ("spark", "free"):
        assert len(list((tmp_path / run / "shards").glob("*.tar"))) == 1
    spark, free_dir = tmp_path / "spark" / "shards", tmp_path / "free" / "shards"
    assert (spark / "00000.tar").read_bytes() == (free_dir / "00000.tar").read_bytes()
    assert (spark / "sizes.json").read_text() == (free_dir / "sizes.json").read_text()
    assert pd.read_parquet(spark / "00000.parquet").to_json() == \
        pd.read_parquet(free_dir / "00000.parquet").to_json()
