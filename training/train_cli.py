"""Train a CLIP model (ViT image encoder + causal text transformer, symmetric contrastive
loss) on WebDataset shards, e.g. those of `wit shards` or img2dataset.

  wit train --shards 'OUT/shards/{00000..00009}.tar' --config tiny --steps 200 --out OUT/train
  torchrun --nproc_per_node 8 -m pipeline.cli train --shards OUT/shards --config ViT-B-32 ...

Writes OUT/checkpoint.pt (every --checkpoint-every steps and at the end, atomically),
OUT/tokenizer.json, OUT/log.jsonl, OUT/train_options.json and, when TensorBoard is
installed, OUT/tensorboard/. --resume OUT/checkpoint.pt continues a run exactly.
"""

from __future__ import annotations

import argparse

from pipeline.core.options import add_options, from_args
from training.train_options import TokenizerSwitch, TrainOptions


def add_arguments(parser: argparse.ArgumentParser) -> None:
    # every option, its type, default and help: TrainOptions' fields
    add_options(parser, TrainOptions, TokenizerSwitch)


def run(args: argparse.Namespace, beam_args: list[str]) -> int:
    from training import train_job

    train_job.run(from_args(TrainOptions, args))
    return 0
