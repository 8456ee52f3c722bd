"""Scale harness: how each Beam stage's CPU and memory grow with its input (issue 14).

For every stage, synthetic-but-realistic inputs (bench/scale_inputs: Zipfian text, so
distinct words and bigrams grow like real text) at x1, x4 and x16, each run on the
in-process runner in a fresh subprocess. CPU seconds (user + sys) and peak RSS come from
``wait4`` on that subprocess, so other load on the machine changes them little.

  queries  plain-XML pages-articles dumps, one file per x1 (sources unigram, bigram, title;
           --min-bigram-count 1: no pruning before the global sum)
  crawl    URL-list Parquet files (url, caption) against a generated metadata.json
  shards   the Beam job of ``wit shards`` (filters, exact + near dedup, assignment, writing)
           over generated download shards (img2dataset's parquet + a stand-in image per row)

Per (stage, size) one JSON line {"stage", "size", "cpu_s", "rss_mb", "wall_s", ...}, then a
table with, per stage: the fitted exponent of CPU vs size (log-log least squares; fixed
start-up pulls it below 1), the marginal exponent log4((c16 - c4) / (c4 - c1)) (start-up
removed: 1.0 for linear growth), and RSS(x16) / RSS(x1). ``state`` in the JSON lines holds
the job's own largest per-element state, reported by the stages as Beam distributions.

Usage: python bench/scale.py [--quick | --full] [--stages queries,crawl,shards] [--work DIR]
The default is --quick (a few minutes on 2 cores); --full is >= 1 GB of XML, 4M alt texts
against 500k entries and 4M downloaded rows at x16 (hours on 2 cores).

One stage at one size (a capacity run; prints one JSON line {"stage", "size", "rows",
"cpu_s", "rss_mb", "wall_s", ...}):
  python bench/scale.py --stages shards --rows 1000000
  python bench/scale.py --stages crawl --texts 4000000      (against 500k entries)
  python bench/scale.py --stages queries --xml-mb 1024      (64 MB dump files)
``--buffers`` adds what every shuffle of the run held (bench/beam_buffers.py).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

SIZES = (1, 4, 16)
STAGES = ("queries", "crawl", "shards")
# x1 of each mode; x4 and x16 multiply the work (files or rows), never repeat it
MODES = {
    "quick": {"queries_mb": 1.5, "crawl_texts": 15_000, "crawl_entries": 50_000,
              "shards_rows": 3_000, "shard_rows": 1_000},
    "full": {"queries_mb": 64, "crawl_texts": 250_000, "crawl_entries": 500_000,
             "shards_rows": 250_000, "shard_rows": 10_000},
}
QUERIES_ARGS = {"sources": ("unigram", "bigram", "title"), "min_count": 100,
                "min_bigram_count": 1, "min_inlinks": 50}
# --min-pmi 16 at x1, + log2(size) above: N grows with the size, so a fixed threshold would
# select a growing share of the bigrams (c(a) c(b) / c(a b) <= N / 2^min_pmi); this keeps
# the selectivity of x1, as --min-pmi 30 is chosen for enwiki's 4e9 tokens. WIT_SCALE_FIXED_PMI=1
# keeps 16 at every size instead.
MIN_PMI = 16.0


# -- inputs (made once per mode and size, kept under --work) ---------------------------------


def one_size_mode(stage: str, count: float) -> tuple[dict, int]:
    """(mode, size) of a one-stage-one-size run: ``count`` rows (shards), texts (crawl) or
    MB of XML (queries) as ``size`` units of the returned mode's x1."""
    mode = dict(MODES["full"])
    if stage == "shards":
        mode["shards_rows"] = int(count)
        return mode, 1
    if stage == "crawl":
        per_file = min(int(count), mode["crawl_texts"])
        mode["crawl_texts"] = per_file
        return mode, max(1, round(count / per_file))
    per_file = min(count, mode["queries_mb"])
    mode["queries_mb"] = per_file
    return mode, max(1, round(count / per_file))


def make_inputs(stage: str, size: int, mode: dict, folder: Path) -> Path:
    import scale_inputs as gen

    done = folder / "_done"
    if done.exists():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    if stage == "queries":
        per_file = int(mode["queries_mb"] * 1e6)
        articles = size * per_file // 3000 + 1
        for i in range(size):  # one dump file per x1, like enwiki's pages-articles1..27
            gen.write_dump(folder / f"part{i:02d}.xml", per_file, seed=i,
                           first_article=i * (per_file // 1500), articles=articles)
    elif stage == "crawl":
        gen.write_metadata(folder / "metadata.json", mode["crawl_entries"], seed=0)
        for i in range(size):
            gen.write_url_list(folder / f"urls{i:02d}.parquet", mode["crawl_texts"], seed=i + 1)
    else:
        rows, per_shard = mode["shards_rows"] * size, mode["shard_rows"]
        for shard, first in enumerate(range(0, rows, per_shard)):
            gen.write_download_shard(folder, shard, gen.downloaded_rows(
                first, min(per_shard, rows - first), seed=shard))
    done.write_text("")
    return folder


# -- the stage runs (in the child process) ---------------------------------------------------


def run_queries(inputs: Path, out: Path, mode: dict):
    from queries.sharding import shards_for
    from queries.transform import BuildQueries, QueryConfig

    files = sorted(inputs.glob("*.xml"))
    # the shard count `wit queries` picks (shards_for: 256 up to 64 GB of XML, then growing);
    # WIT_SCALE_SHARDS_PER_FILE=k makes it grow with the input here too (k per file)
    per_file = int(os.environ.get("WIT_SCALE_SHARDS_PER_FILE", "0"))
    shards = per_file * len(files) if per_file else shards_for(
        (str(p), p.stat().st_size) for p in files)
    fixed = os.environ.get("WIT_SCALE_FIXED_PMI") == "1"
    min_pmi = MIN_PMI if fixed else MIN_PMI + math.log2(len(files))
    config = QueryConfig(wiki=tuple(str(p) for p in files), shards=shards,
                         min_pmi=min_pmi, out=str(out), **QUERIES_ARGS)
    (out / "queries").mkdir(parents=True, exist_ok=True)
    return lambda p: p | BuildQueries(config, [])


def run_crawl(inputs: Path, out: Path, mode: dict):
    from pipeline.crawl.transform import Crawl, CrawlConfig

    config = CrawlConfig(metadata=str(inputs / "metadata.json"), out=str(out / "candidates"),
                         url_lists=[str(p) for p in sorted(inputs.glob("urls*.parquet"))])
    (out / "candidates").mkdir(parents=True, exist_ok=True)
    return lambda p: p | Crawl(config)


def run_shards(inputs: Path, out: Path, mode: dict):
    from pipeline.shards.job import ShardsOptions, transform_config
    from pipeline.shards.transform import BuildShards, DownloadedShard

    shards = [DownloadedShard(0, str(inputs), p.name[:-len(".parquet")])
              for p in sorted(inputs.glob("*.parquet"))]
    # the stage's defaults, with the generated inputs' download shard size
    # WIT_SCALE_SAMPLES_PER_SHARD: output shards smaller than blocks (the compare check)
    per_shard = int(os.environ.get("WIT_SCALE_SAMPLES_PER_SHARD", "10000"))
    config = transform_config(ShardsOptions(candidates=str(inputs), out=str(out),
                                            download_shard_size=mode["shard_rows"],
                                            samples_per_shard=per_shard))
    return lambda p: p | BuildShards(config, shards, [])


def child(stage: str, inputs: Path, out: Path, mode: dict, buffers: bool) -> None:
    from pipeline.core.beam import make_pipeline

    if buffers:
        import beam_buffers

        beam_buffers.install()
    if os.environ.get("WIT_SCALE_NO_GC") == "1":  # experiment: Python's GC cost vs heap size
        import gc

        gc.disable()

    build = {"queries": run_queries, "crawl": run_crawl, "shards": run_shards}[stage]
    apply = build(inputs, out, mode)
    pipeline = make_pipeline([])
    apply(pipeline)
    result = pipeline.run()
    result.wait_until_finish()
    state = {}
    for dist in result.metrics().query()["distributions"]:
        value = dist.committed or dist.attempted
        if value is not None and value.count:
            state[dist.key.metric.name] = {"max": value.max, "sum": value.sum,
                                           "n": value.count}
    found = {"state": state, "facts": facts(stage, out)}
    if buffers:
        found["buffers"] = beam_buffers.report()
    print("STATE " + json.dumps(found, sort_keys=True), flush=True)


def facts(stage: str, out: Path) -> dict:
    """A few counts of the run's own outputs, for per-unit costs (tokens, texts, rows)."""
    if stage == "queries":
        stats = json.loads((out / "queries" / "stats.json").read_text())
        return {"tokens": stats["inputs"]["tokens"], "entries": stats["entries"],
                **{f"{k}_candidates": v["candidates"]
                   for k, v in stats["entries_per_source"].items()}}
    if stage == "crawl":
        totals = json.loads((out / "candidates" / "stats.json").read_text())["totals"]
        return {k: totals.get(k, 0) for k in ("rows", "with_text", "matched", "duplicates",
                                              "kept")}
    import pyarrow.parquet as pq

    statuses: dict[str, int] = {}
    for path in (out / "shards").glob("*.parquet"):
        for status in pq.read_table(path, columns=["status"]).column("status").to_pylist():
            group = status.split(":", 1)[0]
            statuses[group] = statuses.get(group, 0) + 1
    return statuses


# -- measuring (in the parent) ---------------------------------------------------------------


def measure(stage: str, size: int, inputs: Path, out: Path, mode: dict,
            buffers: bool = False) -> dict:
    command = [sys.executable, __file__, "--child", stage, "--inputs", str(inputs),
               "--out", str(out), "--mode-json", json.dumps(mode),
               *(["--buffers"] if buffers else [])]
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True,
                               env={**os.environ, "WIT_PROGRESS": "0"})
    try:
        stdout = process.stdout.read() if process.stdout else ""
        _, status, usage = os.wait4(process.pid, 0)
    except BaseException:
        process.kill()
        raise
    process.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - start
    if process.returncode:
        raise SystemExit(f"{stage} x{size}: child failed ({process.returncode})")
    found: dict = {}
    for line in stdout.splitlines():
        if line.startswith("STATE "):
            found = json.loads(line[len("STATE "):])
    inputs_bytes = sum(p.stat().st_size for p in inputs.iterdir() if p.is_file())
    return {"stage": stage, "size": size, "cpu_s": round(usage.ru_utime + usage.ru_stime, 2),
            "rss_mb": round(usage.ru_maxrss / 1024, 1), "wall_s": round(wall, 2),
            "input_mb": round(inputs_bytes / 1e6, 2), **found}


def exponents(rows: list[dict]) -> dict:
    """Fitted log-log slope of CPU vs size, the marginal exponent, RSS(x16)/RSS(x1)."""
    sizes = [r["size"] for r in rows]
    xs, ys = [math.log(s) for s in sizes], [math.log(r["cpu_s"]) for r in rows]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)
    by = {r["size"]: r for r in rows}
    found = {"cpu_exponent": round(slope, 3)}
    if {1, 4, 16} <= by.keys():
        low, high = by[4]["cpu_s"] - by[1]["cpu_s"], by[16]["cpu_s"] - by[4]["cpu_s"]
        if low > 0 and high > 0:
            found["marginal_exponent"] = round(math.log(high / low, 4), 3)
        found["rss_ratio"] = round(by[16]["rss_mb"] / by[1]["rss_mb"], 2)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    speed = parser.add_mutually_exclusive_group()
    speed.add_argument("--quick", action="store_true", help="small x1 (default)")
    speed.add_argument("--full", action="store_true", help="x16 = 1 GB XML / 4M texts / 4M rows")
    parser.add_argument("--stages", default=",".join(STAGES))
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)))
    parser.add_argument("--work", default=str(REPO / "bench" / ".scale-work"),
                        help="inputs are generated here once per mode and size, and kept")
    one = parser.add_mutually_exclusive_group()
    one.add_argument("--rows", type=int, help="one run of --stages shards at this many rows")
    one.add_argument("--texts", type=int, help="one run of --stages crawl at this many texts")
    one.add_argument("--xml-mb", type=float, help="one run of --stages queries at this many MB")
    parser.add_argument("--buffers", action="store_true",
                        help="report what each shuffle held (bench/beam_buffers.py)")
    parser.add_argument("--child", choices=STAGES, help=argparse.SUPPRESS)
    parser.add_argument("--inputs", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--mode-json", help=argparse.SUPPRESS)
    args = parser.parse_args()
    mode_name = "full" if args.full else "quick"
    mode = MODES[mode_name]
    if args.child:
        child(args.child, Path(args.inputs), Path(args.out), json.loads(args.mode_json),
              args.buffers)
        return
    import shutil

    count = next(((s, c) for s, c in (("shards", args.rows), ("crawl", args.texts),
                                       ("queries", args.xml_mb)) if c is not None), None)
    if count is not None:
        stage, amount = count
        if args.stages != stage:
            parser.error(f"--rows/--texts/--xml-mb go with --stages {stage}")
        one_mode, size = one_size_mode(stage, amount)
        tag = f"{stage}-{amount:g}" + ("" if stage != "crawl" else f"-{one_mode['crawl_entries']}")
        inputs = make_inputs(stage, size, one_mode, Path(args.work) / "one" / tag)
        out = Path(args.work) / "one" / f"{tag}-out"
        shutil.rmtree(out, ignore_errors=True)
        row = measure(stage, size, inputs, out, one_mode, args.buffers)
        shutil.rmtree(out, ignore_errors=True)
        units = {"shards": ("rows", int(amount)), "crawl": ("texts", size * one_mode["crawl_texts"]),
                 "queries": ("xml_mb", size * one_mode["queries_mb"])}[stage]
        print(json.dumps({"stage": stage, "size": amount, "rows": units[1], "unit": units[0],
                          **{k: v for k, v in row.items() if k not in ("stage", "size")},
                          "load_average": os.getloadavg()}), flush=True)
        return

    work = Path(args.work) / mode_name
    print(f"# {platform.node()} {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cores, load average {os.getloadavg()}, mode {mode_name}")
    results: dict[str, list[dict]] = {}
    for stage in [s for s in args.stages.split(",") if s]:
        for size in [int(s) for s in args.sizes.split(",")]:
            inputs = make_inputs(stage, size, mode, work / f"{stage}-x{size}")
            out = work / f"{stage}-x{size}-out"
            shutil.rmtree(out, ignore_errors=True)
            row = measure(stage, size, inputs, out, mode, args.buffers)
            shutil.rmtree(out, ignore_errors=True)
            print(json.dumps(row), flush=True)
            results.setdefault(stage, []).append(row)
    print(f"\n# load average after: {os.getloadavg()}")
    print(f"{'stage':8} {'size':>4} {'input MB':>9} {'CPU s':>8} {'RSS MB':>8} {'wall s':>8}")
    for stage, rows in results.items():
        for r in rows:
            print(f"{stage:8} {'x' + str(r['size']):>4} {r['input_mb']:9.1f} {r['cpu_s']:8.1f} "
                  f"{r['rss_mb']:8.0f} {r['wall_s']:8.1f}")
        if len(rows) > 1:
            print(f"{stage:8} growth {json.dumps(exponents(rows))}")
            print(json.dumps({"stage": stage, "growth": exponents(rows)}))


if __name__ == "__main__":
    main()
