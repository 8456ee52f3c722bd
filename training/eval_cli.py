"""Evaluate a CLIP checkpoint of `wit train`: zero-shot classification, a linear probe and
image<->text retrieval. Results go to OUT/eval.json and are printed as a table.

  wit eval --checkpoint OUT/train/checkpoint.pt --zeroshot DIGITS/labels.csv \\
      --linear-probe DIGITS/labels.csv --retrieval 'OUT/heldout/{00000..00001}.tar' --out OUT/eval

A labelled set is an image folder per class (DIR/CLASS/IMAGE) or a CSV/Parquet table with
columns path,label (paths relative to the table). Zero-shot prompts name each class by its
folder name/label with "_" read as a space (golden_retriever -> "golden retriever"), or by
--classnames / a classnames.txt or classnames.csv in the set's folder.
"""

from __future__ import annotations

import argparse
from dataclasses import fields
from typing import Any

from pipeline.core.cliargs import non_negative_int, output_dir, positive_float, positive_int
from training import eval_job
from training.eval_job import EvalOptions

# the defaults live in EvalOptions alone
_DEFAULTS: dict[str, Any] = {f.name: f.default for f in fields(EvalOptions)}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    a = parser.add_argument
    a("--checkpoint", required=True, help="checkpoint.pt written by `wit train`")
    a("--out", required=True, type=output_dir, help="output directory for eval.json")
    a("--zeroshot", help="labelled set for zero-shot classification (folder per class, or "
                         "CSV/Parquet with path,label)")
    a("--classnames", help="display names of the --zeroshot classes: a .csv with columns "
                           "label,name, or a text file with one name per line in the order of the "
                           "sorted labels (default: DIR/classnames.txt or .csv of a folder set, "
                           "else the labels with '_' as a space)")
    a("--templates", help="prompt templates, one per line with {} for the class name "
                          "(default: 'a photo of a {}.' and 7 more CLIP templates)")
    a("--linear-probe", help="labelled set for the linear probe (split 60/20/20 into "
                             "train/validation/test, stratified)")
    a("--probe-c", default=",".join(f"{c:g}" for c in _DEFAULTS["probe_c"]), type=_c_values,
      help="inverse regularisation strengths C swept on the validation split, comma-separated "
           "(default: %(default)s)")
    a("--retrieval", help="held-out shards (brace pattern, glob, directory) for "
                          "image<->text Recall@1/5/10")
    a("--retrieval-samples", type=positive_int, default=_DEFAULTS["retrieval_samples"],
      help="the first N samples of --retrieval are used (default: %(default)s)")
    a("--batch-size", type=positive_int, default=_DEFAULTS["batch_size"], help="images per forward pass (default: %(default)s)")
    a("--seed", type=non_negative_int, default=_DEFAULTS["seed"], help="seed of the linear-probe split (default: %(default)s)")
    a("--device", default=_DEFAULTS["device"], help="cpu, cuda, cuda:N (default: %(default)s)")


def run(args: argparse.Namespace, beam_args: list[str]) -> int:
    names = {f.name for f in fields(EvalOptions)}
    values = {k: v for k, v in vars(args).items() if k in names}
    eval_job.run(EvalOptions(**{**values, "probe_c": tuple(args.probe_c)}))
    return 0


def _c_values(text: str) -> list[float]:
    """An argparse type: comma-separated positive finite numbers."""
    values = [positive_float(v.strip()) for v in text.split(",") if v.strip()]
    if not values:
        raise argparse.ArgumentTypeError(f"{text!r}: expected comma-separated positive numbers")
    return values
