"""Host lanes (pipeline/shards/lanes.py): the per-host limits cluster-wide on Spark.

The cut: every row in exactly one download shard, each shard of one lane (its id modulo the
lane count), rows in input order, the same shards on a rerun; one lane is today's cut.
On Spark local[2] with a host table private to each Python worker -- each worker then stands
for a machine of its own, as on a cluster -- loopback hosts on 127.0.0.2-.5 count requests
in flight and arrival times: with lanes no host ever sees more than the limits, without them
(the control) the two workers together pass them."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.ipc as ipc
import pytest
from helpers.politeness import CountingHost, jpeg, most_in_window

from pipeline.core.errors import InputError
from pipeline.core.net import FetchConfig
from pipeline.core.net.hosts import host_key, host_lane
from pipeline.shards import reader
from pipeline.shards.download import DownloadConfig, GuardedDownloader, run_distributor
from pipeline.shards.filters import FilterConfig
from pipeline.shards.imaging import ResizeConfig
from pipeline.shards.job import ShardsOptions, host_lanes
from pipeline.shards.lanes import check_no_speculation, lane_groups
from pipeline.shards.reader import format_key, write_input_shards

TRUSTED = ("127.0.0.0/29",)


def input_rows(urls: list[str]) -> pa.Table:
    n = len(urls)
    return pa.table({"key": [format_key(i) for i in range(n)], "url": urls,
                     "caption": [f"a real photo, picture number {i}" for i in range(n)],
                     "texts": [[f"a real photo, picture number {i}"] for i in range(n)]})


def read_shard(path: str) -> pa.Table:
    with open(path, "rb") as f:
        return ipc.open_file(f).read_all()


def web_urls(n: int) -> list[str]:
    hosts = [f"img{h}.example.org" for h in range(7)] + ["cdn.example.net"]
    urls = [f"https://{hosts[(i * i) % len(hosts)]}/p/{i}.jpg" for i in range(n)]
    urls[5] = "not a url"  # no host: goes by its key
    return urls


def cut(tmp: Path, urls: list[str], lanes: int, size: int, done: set[int] | None = None,
        batch: int = 17) -> tuple[dict[int, pa.Table], set[int]]:
    table = input_rows(urls)
    batches = [table.slice(i, batch) for i in range(0, table.num_rows, batch)]
    ids: set[int] = set()
    shards = write_input_shards(iter(batches), str(tmp), size, done or set(), lanes, ids)
    return {shard_id: read_shard(path) for shard_id, path in shards}, ids


def test_lanes_cut_each_host_into_shards_of_its_own_lane(tmp_path):
    urls = web_urls(200)
    shards, ids = cut(tmp_path / "a", urls, lanes=3, size=10)
    assert ids == set(shards)
    keys = [k for t in shards.values() for k in t.column("key").to_pylist()]
    assert sorted(keys) == [format_key(i) for i in range(200)]  # every row exactly once
    for shard_id, table in shards.items():
        assert table.num_rows <= 10
        got = table.column("key").to_pylist()
        assert got == sorted(got)  # input order within the shard
        for key, url in zip(got, table.column("url").to_pylist()):
            host = host_key(url)
            lane = host_lane(host, 3) if host else int(key) % 3
            assert lane == shard_id % 3, (shard_id, url)
    # per lane: full shards but the last; ids n * lanes + lane, with no gap
    for lane in range(3):
        mine = sorted(s for s in shards if s % 3 == lane)
        assert mine == [n * 3 + lane for n in range(len(mine))]
        assert all(shards[s].num_rows == 10 for s in mine[:-1])
    # a rerun (other batch sizes) cuts the same shards; done ones are not written again
    again, again_ids = cut(tmp_path / "b", urls, lanes=3, size=10, done={0, 4}, batch=64)
    assert again_ids == ids and set(again) == ids - {0, 4}
    assert all(again[s].equals(shards[s]) for s in again)


def test_the_lane_buffers_are_bounded_and_the_cut_stays_the_same(tmp_path, monkeypatch):
    monkeypatch.setattr(reader, "MAX_LANE_ROWS", 25)  # past 25 rows the fullest lane goes
    urls = web_urls(300)
    shards, ids = cut(tmp_path / "a", urls, lanes=4, size=20)
    again, _ = cut(tmp_path / "b", urls, lanes=4, size=20)  # the same input batches
    assert set(again) == set(shards) == ids and all(again[s].equals(shards[s]) for s in ids)
    keys = sorted(k for t in shards.values() for k in t.column("key").to_pylist())
    assert keys == [format_key(i) for i in range(300)]
    assert any(t.num_rows < 20 for s, t in shards.items()
               if s + 4 in shards)  # a lane's shard cut short before its last one
    for shard_id, table in shards.items():
        for key, url in zip(table.column("key").to_pylist(), table.column("url").to_pylist()):
            host = host_key(url)
            assert (host_lane(host, 4) if host else int(key) % 4) == shard_id % 4


def test_one_lane_is_the_plain_cut_in_input_order(tmp_path):
    urls = web_urls(45)
    shards, ids = cut(tmp_path, urls, lanes=1, size=10)
    assert sorted(shards) == sorted(ids) == [0, 1, 2, 3, 4]
    for shard_id, table in shards.items():
        assert table.column("key").to_pylist() == [format_key(i) for i in
                                                   range(shard_id * 10, min(45, shard_id * 10 + 10))]


def test_lane_groups_and_spark_settings():
    rows = [(s, f"{s}.arrow") for s in (7, 0, 3, 4, 1, 6)]
    assert lane_groups(rows, 3) == [(0, [(0, "0.arrow"), (3, "3.arrow"), (6, "6.arrow")]),
                                    (1, [(1, "1.arrow"), (4, "4.arrow"), (7, "7.arrow")])]
    assert lane_groups(rows[:2], 1) == [(0, [(0, "0.arrow")]), (0, [(7, "7.arrow")])]
    check_no_speculation({}.get)  # Spark's default: off
    check_no_speculation({"spark.speculation": "false"}.get)
    with pytest.raises(InputError, match="spark.speculation"):
        check_no_speculation({"spark.speculation": "true"}.get)


def test_host_lanes_follow_the_distributor(tmp_path):
    base = dict(candidates=str(tmp_path), out=str(tmp_path / "out"), processes=3)
    assert host_lanes(ShardsOptions(**base)) == 1
    assert host_lanes(ShardsOptions(**base, distributor="pyspark")) == 3
    assert host_lanes(ShardsOptions(**base, distributor="pyspark", host_lanes=5)) == 5
    with pytest.raises(InputError, match="--host-lanes"):
        ShardsOptions(**base, host_lanes=2)


# -- Spark: a host's limits cluster-wide --------------------------------------------------------

def spark_round(tmp: Path, rows: list[str], lanes: int, conns: int, rate: float) -> None:
    """One download round on Spark local[2], a host table private to each Python worker
    (``host_table=None``: each worker a machine of its own)."""
    config = DownloadConfig(
        fetch=FetchConfig(timeout=5.0, retries=1, allowed_networks=TRUSTED,
                          max_connections_per_host=conns, max_requests_per_second_per_host=rate),
        thread_count=32, resize=ResizeConfig(image_size=64),
        filters=FilterConfig(preset="none", min_words=0, min_chars=0, languages=(), min_side=0,
                             max_aspect=None))
    ids: set[int] = set()
    shards = write_input_shards(iter([input_rows(rows)]), str(tmp / "in"), 40, set(), lanes, ids)
    downloader = GuardedDownloader(config, str(tmp / "out"), host_table=None)
    assert run_distributor(downloader, shards, "pyspark", 2, "local[2]", lanes=lanes) == []
    assert len(list((tmp / "out").glob("*_stats.json"))) == len(ids) >= 2


def interleaved(hosts: list[CountingHost], per_host: int) -> list[str]:
    return [h.url(f"/img/{n}.jpg") for n in range(per_host) for h in hosts]


@pytest.mark.integration
def test_lanes_hold_each_host_to_its_limits_across_spark_workers(tmp_path):
    pytest.importorskip("pyspark")
    image = jpeg(64)
    hosts = [CountingHost(f"127.0.0.{i}", image, delay=0.4) for i in (2, 3, 4, 5)]
    # the four hosts must fall in both lanes (else one lane, one worker: no contest)
    assert {host_lane(h.host, 2) for h in hosts} == {0, 1}
    try:
        spark_round(tmp_path / "lanes", interleaved(hosts, 24), lanes=2, conns=2, rate=5)
        limited = [(h.peak_in_flight, most_in_window(h.starts(), 1.0)) for h in hosts]
        counts = [sum(h.hits.values()) for h in hosts]
        for h in hosts:
            h.peak_in_flight = 0
        # the control: no lanes, each download shard holds every host and the two workers
        # download two shards at once, each within its own (private) limits
        spark_round(tmp_path / "plain", interleaved(hosts, 24), lanes=1, conns=2, rate=0)
        control = [h.peak_in_flight for h in hosts]
    finally:
        for h in hosts:
            h.close()
    assert all(n >= 24 for n in counts)  # every row fetched (and robots.txt)
    for peak, per_second in limited:
        assert peak <= 2  # the connection limit, cluster-wide
        assert per_second <= 5 + 2  # the rate (closed 1 s windows, arrival jitter)
    assert max(peak for peak, _ in limited) == 2  # reached
    assert max(control) > 2  # without lanes two "machines" pass one host's limit
