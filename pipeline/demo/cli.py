"""Run webimagetext end to end on inputs the demo prepares itself (cached for the next run):
the real English Wikipedia excerpt shipped in the gensim wheel + WordNet -> the query list;
a mini-web of Debian's OpenClipart (HTML pages with <img alt> and <figure><figcaption>) served
on 127.0.0.1 -> crawl -> shards -> a tiny CLIP trained on CPU -> zero-shot classification of
OpenClipart categories held out of the mini-web + retrieval -> OUT/demo/report.html.

Needs (checked before anything runs): Debian packages openclipart-png, openclipart-svg and
wordnet-base (or nltk's wordnet data), and PyPI reachable on the first run (gensim wheel).
Thresholds are scaled to the sample and printed; the real-scale defaults stay the defaults of
each command. Details: docs/demo.md."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pipeline.core.cliargs import bounded, output_dir, positive_int
from pipeline.demo.chain import DemoConfig, run_demo

USES_BEAM = True


def add_arguments(parser: argparse.ArgumentParser) -> None:
    d = DemoConfig
    parser.add_argument("--out", default="out", metavar="DIR", type=output_dir,
                        help="output root (default: %(default)s)")
    parser.add_argument("--cache", default=None, metavar="DIR",
                        help="where prepared inputs are kept between runs "
                             "(default: $WIT_CACHE or ~/.cache/webimagetext/demo)")
    parser.add_argument("--wiki", default=None, metavar="DUMP",
                        help="use this dump instead of the gensim sample")
    parser.add_argument("--images", type=positive_int, default=d.images,
                        help="OpenClipart images on the mini-web, at most all ~7,700 not held out "
                             "(default: %(default)s)")
    parser.add_argument("--heldout-per-class", type=positive_int, default=d.heldout_per_class,
                        help="held-out images per evaluation class (default: %(default)s)")
    parser.add_argument("--steps", type=positive_int, default=d.steps,
                        help="training steps of the tiny CLIP (default: %(default)s)")
    parser.add_argument("--batch-size", type=positive_int, default=d.batch_size,
                        help="training batch size (default: %(default)s)")
    parser.add_argument("--port", type=bounded(int, 0, 65535), default=d.port,
                        help="port of the mini-web on 127.0.0.1; fixed so that reruns give the "
                             "same shards, 0 = any free port (default: %(default)s)")
    parser.add_argument("--openclipart", default=str(d.openclipart), metavar="DIR",
                        help="OpenClipart root with png/ and svg/ (default: %(default)s)")


def run(args: argparse.Namespace, beam_args: list[str]) -> int:
    config = DemoConfig(out=Path(args.out), cache=Path(args.cache) if args.cache else None,
                        wiki=args.wiki, images=args.images,
                        heldout_per_class=args.heldout_per_class, steps=args.steps,
                        batch_size=args.batch_size, openclipart=Path(args.openclipart),
                        port=args.port)
    return run_demo(config, beam_args, sys.stdout)
