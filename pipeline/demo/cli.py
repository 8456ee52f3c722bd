"""Run webimagetext end to end on inputs the demo prepares itself (cached for the next run):
the real English Wikipedia excerpt shipped in the gensim wheel and WordNet -> the query list.
The later stages join the demo as they land. Thresholds are scaled to the sample and printed;
the real-scale defaults stay the defaults of each command."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from pipeline.demo.inputs import wikipedia_sample
from queries.wordnet import cache_dir

USES_BEAM = True

# Thresholds for the 106-article sample (the CLI defaults are for a full Wikipedia).
SAMPLE_QUERY_ARGS = ["--min-count", "20", "--min-pmi", "12", "--min-bigram-count", "5",
                     "--min-inlinks", "3"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="out", metavar="DIR",
                        help="output root (default: %(default)s)")
    parser.add_argument("--cache", default=None, metavar="DIR",
                        help="where prepared inputs are kept between runs "
                             "(default: $WIT_CACHE or ~/.cache/webimagetext/demo)")
    parser.add_argument("--wiki", default=None, metavar="DUMP",
                        help="use this dump instead of the gensim sample")


def _stage(name: str) -> float:
    print(f"== {name}", file=sys.stderr, flush=True)
    return time.perf_counter()


def run(args: argparse.Namespace, beam_args: list[str]) -> int:
    from pipeline.cli import main as wit

    cache = Path(args.cache) if args.cache else cache_dir() / "demo"
    start = _stage("inputs: Wikipedia sample (gensim wheel) and WordNet")
    wiki = args.wiki or str(wikipedia_sample(cache))
    print(f"   wiki: {wiki}", file=sys.stderr)
    timings = {"inputs": time.perf_counter() - start}

    start = _stage("queries: thresholds for the sample: " + " ".join(SAMPLE_QUERY_ARGS))
    code = wit(["queries", "--wiki", wiki, "--out", args.out, *SAMPLE_QUERY_ARGS, "--",
                *beam_args])
    timings["queries"] = time.perf_counter() - start
    if code:
        return code

    print("\ndemo summary", file=sys.stdout)
    for stage, seconds in timings.items():
        print(f"  {stage:<10}{seconds:>8.1f} s")
    print(f"  outputs under {args.out}/ (queries/metadata.json, metadata.parquet, stats.json)")
    return 0
