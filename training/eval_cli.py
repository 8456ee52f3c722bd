"""Evaluate a CLIP checkpoint of `wit train`: zero-shot classification, a linear probe and
image<->text retrieval. Results go to OUT/eval.json and are printed as a table.

  wit eval --checkpoint OUT/train/checkpoint.pt --zeroshot DIGITS/labels.csv \\
      --linear-probe DIGITS/labels.csv --retrieval 'OUT/heldout/{00000..00001}.tar' --out OUT/eval

A labelled set is an image folder per class (DIR/CLASS/IMAGE) or a CSV/Parquet table with
columns path,label (paths relative to the table). Zero-shot prompts name each class by its
folder name/label with "_" read as a space (golden_retriever -> "golden retriever"), or by
--classnames / a classnames.txt or classnames.csv in the set's folder.

A standard suite in CLIP_benchmark's/DataComp's webdataset format, one folder per dataset:

  wit eval --checkpoint CK --benchmark SUITE/wds_cifar10_test SUITE/wds_mscoco_retrieval --out OUT/eval

prints one table across the datasets with DataComp's average (also OUT/benchmark.md/.csv/.json).
"""

from __future__ import annotations

import argparse

from pipeline.core.options import add_options, from_args
from training import eval_job
from training.eval_job import EvalOptions


def add_arguments(parser: argparse.ArgumentParser) -> None:
    # every option, its type, default and help: EvalOptions' fields
    add_options(parser, EvalOptions)


def run(args: argparse.Namespace, beam_args: list[str]) -> int:
    eval_job.run(from_args(EvalOptions, args))
    return 0
