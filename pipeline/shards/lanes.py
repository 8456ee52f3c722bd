"""Host lanes: the per-host limits cluster-wide on Spark.

The host table (:mod:`pipeline.core.net.hosts`) bounds what one host sees from every
process of *one machine*. On a Spark cluster of M machines each machine has its own table,
so a host whose rows sit in every download shard could see M times the limits. Lanes close
that gap without any traffic between machines:

- every input row goes to lane ``host_lane(host, L)`` (a hash of its host name), and every
  download shard holds the rows of one lane only (``reader.write_input_shards(lanes=L)``:
  shard id ``n * L + lane``);
- each Spark job runs one task per lane, and that task downloads its lane's shards one
  after another (:func:`run_spark_lanes`); jobs run one after another.

So all of one host's rows are downloaded by one task at a time cluster-wide, i.e. by one
Python process on one machine, where the host table bounds every thread of it: what the host
sees cluster-wide is what it would see from that one process. The conditions, checked where
they can be: ``spark.speculation`` off (a speculative copy of a task would run a lane twice
at once; refused), and no task attempt outliving its successor (Spark starts a retry only
after the failed attempt ended or its executor was declared lost). Requests that follow a
redirect to *another* host run in the lane of the row's host: those are bounded per
machine only (docs/scaling.md).

The final shards do not change: the Beam job orders rows by key, never by download shard.
"""

from __future__ import annotations

import itertools
import os
import sys
from collections.abc import Callable, Iterable, Iterator

from pipeline.core.errors import InputError

Row = tuple[int, str]  # (shard id, input file)
SUBJOB_SHARDS = 1000  # shards per Spark job (img2dataset's subjob size)


def lane_groups(shards: Iterable[Row], lanes: int) -> list[tuple[int, list[Row]]]:
    """``(lane, its shards in id order)`` for every lane that has shards, in lane order;
    ``lanes`` = 1 (no lanes): every shard a task of its own, as img2dataset's distributor."""
    if lanes <= 1:
        return [(0, [row]) for row in sorted(shards)]
    groups: dict[int, list[Row]] = {}
    for row in shards:
        groups.setdefault(row[0] % lanes, []).append(row)
    return [(lane, sorted(groups[lane])) for lane in sorted(groups)]


class LaneTask:
    """One Spark task: a lane's shards, one after another; ``[(ok, row)]`` per shard."""

    def __init__(self, run_shard: Callable[[Row], tuple[bool, Row]]):
        self.run_shard = run_shard

    def __call__(self, group: tuple[int, list[Row]]) -> list[tuple[bool, Row]]:
        return [self.run_shard(row) for row in group[1]]


def check_no_speculation(conf_get: Callable[[str, str], str]) -> None:
    """Refuse a Spark session that would run a copy of a task speculatively."""
    if conf_get("spark.speculation", "false").strip().lower() == "true":
        raise InputError("--distributor pyspark: spark.speculation is on; a speculative copy "
                         "of a download task would fetch its hosts twice at once, past the "
                         "per-host limits (set spark.speculation=false)")


def run_spark_lanes(run_shard: Callable[[Row], tuple[bool, Row]], shards: Iterator[Row],
                    lanes: int, processes: int, spark_master: str | None,
                    max_shard_retry: int = 1) -> list[Row]:
    """Download ``shards`` (cut with ``lanes`` lanes) on Spark, one task per lane per job;
    returns the shards that still failed after ``max_shard_retry`` more tries. Uses the
    session of ``spark_master``, else the active one, else a local[``processes``] one."""
    from pyspark.sql import SparkSession

    # local Spark workers must run this interpreter (the one with this package)
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    session = None if spark_master else SparkSession.getActiveSession()
    owned = session is None
    if session is None:
        session = (SparkSession.builder.master(spark_master or f"local[{processes}]")
                   .appName("wit-shards").config("spark.ui.enabled", "false")
                   .config("spark.speculation", "false").getOrCreate())
    try:
        context = session.sparkContext
        check_no_speculation(context.getConf().get)
        task = LaneTask(run_shard)

        def run(rows: Iterable[Row]) -> list[Row]:
            failed: list[Row] = []
            rows = iter(rows)
            while batch := list(itertools.islice(rows, SUBJOB_SHARDS)):
                groups = lane_groups(batch, lanes)
                # one partition per lane: a lane's shards never run in two tasks at once
                results = context.parallelize(groups, len(groups)).map(task).collect()
                failed += [row for done in results for ok, row in done if not ok]
            return failed

        failed = run(shards)
        for _ in range(max_shard_retry):
            if not failed:
                break
            failed = run(failed)
        return sorted(failed)
    finally:
        if owned:
            session.stop()
