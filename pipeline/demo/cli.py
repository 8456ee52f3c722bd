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

from pipeline.core.options import add_options, from_args
from pipeline.demo.chain import DemoConfig, run_demo

USES_BEAM = True


def add_arguments(parser: argparse.ArgumentParser) -> None:
    # every option, its type, default and help: DemoConfig's fields
    add_options(parser, DemoConfig)


def run(args: argparse.Namespace, beam_args: list[str]) -> int:
    return run_demo(from_args(DemoConfig, args), beam_args, sys.stdout)
