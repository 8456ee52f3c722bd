"""Benchmark: Wikipedia dump -> counts throughput (MB of XML per CPU-second).

Side by side on the same file, in one run:
  bzcat        - bz2 decompression alone (the floor: nothing can read the dump faster)
  wikiextractor- the usual wikitext -> plain text tool (text only, no counting), 1 process
  core loop    - our per-page functions without Beam: mwxml + mwparserfromhell tokens ->
                 plain text -> nltk tokens -> unigram/bigram/link counts
  wit queries  - the whole Beam job (unigram, bigram, in-link titles; no WordNet), in-process
                 runner, including Beam start-up and the output writing

CPU seconds are user+sys of the process (or its children), so other load on the machine
does not change them much. Each variant runs on the dump (x1) and on the dump with its pages
repeated K times (xK): "MB/CPU-s" is the rate at xK, start-up included; "marginal" is
(K-1)·MB / (CPU at xK − CPU at x1), the per-MB cost without fixed start-up (Python and Beam
imports, pipeline construction). With ``--baseline DIR`` (a checkout of an earlier commit,
e.g. ``git archive HEAD | tar -x -C DIR``) the core loop and the Beam job of that code run too,
in the same rounds, so a change is measured against its base under the same machine load.
Usage: python bench/queries_speed.py [--dump FILE] [--repeat K] [--baseline DIR]
"""

from __future__ import annotations

import argparse
import bz2
import importlib.util
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from timing import run_timed

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO.parent / "shared" / "data" / "wikipedia" / "enwiki-sample-pages-articles.xml.bz2"


def child_cpu(command: list[str], **kwargs) -> tuple[float, float]:
    """(CPU seconds of the command and its children, wall seconds)."""
    timed = run_timed(command, check=True, **kwargs)
    return timed.cpu, timed.wall


def repeated_dump(source: Path, repeat: int, target: Path) -> int:
    """A dump with every page of ``source`` ``repeat`` times; returns its XML size."""
    xml = bz2.decompress(source.read_bytes()).decode("utf-8")
    first, last = xml.index("  <page>"), xml.rindex("</page>") + len("</page>\n")
    body = xml[first:last]
    data = (xml[:first] + body * repeat + xml[last:]).encode("utf-8")
    target.write_bytes(bz2.compress(data, 9))
    return len(data)


def core_loop(path: str) -> float:
    from queries.dump import iter_pages
    from queries.tokenize import count_text
    from queries.wikitext import normalize_title, to_plain_text

    start = time.process_time()
    unigrams: Counter = Counter()
    bigrams: Counter = Counter()
    links: Counter = Counter()
    for page, namespaces in iter_pages(path):
        if page.namespace or page.redirect:
            continue
        text, page_links = to_plain_text(page.text, namespaces)
        count_text(text, unigrams, bigrams)
        links.update(normalize_title(link) for link in page_links)
    return time.process_time() - start


def baseline_core_loop(baseline: Path, path: str) -> float:
    """CPU seconds of the baseline's core loop (a child process importing its packages)."""
    result = subprocess.run(
        [sys.executable, __file__, "--core-loop-only", path], check=True, capture_output=True,
        text=True, cwd=baseline, env={**os.environ, "PYTHONPATH": str(baseline)})
    return float(result.stdout.split()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dump", type=Path, default=SAMPLE,
                        help="a pages-articles .xml.bz2 (default: the shared sample)")
    parser.add_argument("--repeat", type=int, default=4,
                        help="repeat the dump's pages K times so start-up costs matter less")
    parser.add_argument("--rounds", type=int, default=3,
                        help="run every variant this many times and keep the fastest")
    parser.add_argument("--baseline", type=Path, default=None, metavar="DIR",
                        help="also run the core loop and Beam job of the code in DIR (a "
                             "checkout of an earlier commit); default: none")
    parser.add_argument("--core-loop-only", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.core_loop_only:  # the child process of baseline_core_loop
        print(core_loop(args.core_loop_only))
        return 0
    if not args.dump.exists():
        print(f"bench/queries_speed.py: {args.dump} not found; pass --dump", file=sys.stderr)
        return 2
    env = {**os.environ, "WIT_PROGRESS": "0"}
    with tempfile.TemporaryDirectory() as tmp:
        small, big = Path(tmp) / "x1.xml.bz2", Path(tmp) / "xk.xml.bz2"
        small_mb = repeated_dump(args.dump, 1, small) / 1e6
        xml_mb = repeated_dump(args.dump, args.repeat, big) / 1e6

        def variants(dump: Path, tag: str) -> list[tuple[str, float, float]]:
            rows = []
            with open(os.devnull, "wb") as null:
                rows.append(("bzcat", *child_cpu(["bzcat", str(dump)], stdout=null)))
            if importlib.util.find_spec("wikiextractor") is not None:
                rows.append(("wikiextractor", *child_cpu(
                    [sys.executable, "-m", "wikiextractor.WikiExtractor", str(dump), "-o",
                     f"{tmp}/we{tag}", "--processes", "1", "-q"],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)))
            start = time.perf_counter()
            rows.append(("core loop", core_loop(str(dump)), time.perf_counter() - start))
            job = [sys.executable, "-m", "pipeline.cli", "queries", "--wiki", str(dump), "--out",
                   f"{tmp}/out{tag}", "--sources", "unigram,bigram,title", "--min-count", "20",
                   "--min-bigram-count", "5"]
            rows.append(("wit queries (Beam)", *child_cpu(
                job, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)))
            if args.baseline:
                start = time.perf_counter()
                rows.append(("core loop (base)", baseline_core_loop(args.baseline, str(dump)),
                             time.perf_counter() - start))
                job[job.index("--out") + 1] = f"{tmp}/base{tag}"
                rows.append(("wit queries (base)", *child_cpu(
                    job, cwd=args.baseline, env={**env, "PYTHONPATH": str(args.baseline)},
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)))
            return rows

        if importlib.util.find_spec("wikiextractor") is None:
            print("wikiextractor not installed (pip install -e .[bench]); row skipped")
        # Rounds alternate the variants; the minimum CPU of each is kept (this machine's CPU
        # time varies by up to 2x with load from neighbours).
        rows_small: dict[str, float] = {}
        best: dict[str, tuple[float, float]] = {}
        for _ in range(args.rounds):
            for name, cpu, _wall in variants(small, "1"):
                rows_small[name] = min(cpu, rows_small.get(name, cpu))
            for name, cpu, wall in variants(big, "k"):
                if name not in best or cpu < best[name][0]:
                    best[name] = (cpu, wall)
        rows = [(name, cpu, wall) for name, (cpu, wall) in best.items()]
    rates = {name: xml_mb / cpu for name, cpu, _ in rows}
    marginal = {name: (xml_mb - small_mb) / (cpu - rows_small[name]) for name, cpu, _ in rows}
    cpu_model = "unknown"
    if Path("/proc/cpuinfo").exists():
        found = re.search(r"model name\s*:\s*(.+)", Path("/proc/cpuinfo").read_text())
        cpu_model = found.group(1) if found else cpu_model
    print(f"dump: {args.dump.name} x{args.repeat} = {xml_mb:.1f} MB XML, best of "
          f"{args.rounds} rounds; "
          f"{os.cpu_count()} cores ({cpu_model}), Python {platform.python_version()}")
    print(f"{'':<20}{'CPU s':>8}{'wall s':>8}{'MB/CPU-s':>10}{'vs bzcat':>10}"
          f"{'vs wikiextr.':>14}{'marginal':>10}{'vs bzcat':>10}{'vs wikiextr.':>14}")
    for name, cpu, wall in rows:
        we, we_m = rates.get("wikiextractor"), marginal.get("wikiextractor")
        print(f"{name:<20}{cpu:>8.2f}{wall:>8.2f}{rates[name]:>10.2f}"
              f"{rates[name] / rates['bzcat']:>9.2f}x"
              f"{(f'{rates[name] / we:.2f}x' if we else '-'):>14}"
              f"{marginal[name]:>10.2f}{marginal[name] / marginal['bzcat']:>9.2f}x"
              f"{(f'{marginal[name] / we_m:.2f}x' if we_m else '-'):>14}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
