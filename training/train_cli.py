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
from dataclasses import fields

from pipeline.core.cliargs import (
    non_negative_float,
    non_negative_int,
    output_dir,
    positive_float,
    positive_int,
)
from training.clip.configs import CONFIGS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    a = parser.add_argument
    a("--shards", required=True,
      help="shards: a brace pattern ('OUT/shards/{00000..00009}.tar'), a glob, a directory "
           "(every *.tar in it) or a comma-separated list; sample counts come from sizes.json "
           "or img2dataset's NNNNN_stats.json beside them")
    a("--out", required=True, type=output_dir, help="output directory for the checkpoint, tokenizer and logs")
    a("--config", default="tiny", choices=sorted(CONFIGS),
      help="model size (default: %(default)s; tiny trains in seconds on a CPU)")
    length = parser.add_mutually_exclusive_group()
    length.add_argument("--steps", type=positive_int, help="optimizer steps to train (default: one epoch)")
    length.add_argument("--samples", type=positive_int,
                        help="samples to train on, i.e. steps = samples / global batch")
    a("--batch-size", type=positive_int, default=64, help="batch size per process (default: %(default)s)")
    a("--lr", type=positive_float, default=5e-4, help="peak learning rate (default: %(default)s)")
    a("--weight-decay", type=non_negative_float, default=0.2,
      help="AdamW weight decay on weight matrices; none on gains, biases and the "
           "temperature (default: %(default)s)")
    a("--warmup", type=non_negative_int, help="linear warmup steps (default: 5%% of the steps)")
    a("--grad-clip", type=non_negative_float, default=1.0,
      help="clip the gradient norm to this; 0 disables (default: %(default)s)")
    a("--seed", type=non_negative_int, default=0, help="seed of the model init and data order (default: %(default)s)")
    a("--workers", type=non_negative_int, default=2,
      help="DataLoader worker processes per GPU/process (default: %(default)s)")
    a("--shuffle-buffer", type=non_negative_int, default=2000,
      help="samples held in each worker's shuffle buffer (default: %(default)s)")
    a("--split-shards", action="store_true",
      help="split the shard list between processes (nodes x GPUs) and loader workers, "
           "reshuffled every epoch, instead of drawing shards with replacement (resampled, the "
           "default); needs at least processes x workers shards")
    a("--text", choices=("first", "random"), default="first",
      help="which text of a sample to train on: first = its caption (KEY.txt, the best text); "
           "random = one of the texts in KEY.json's 'texts' (an image's alt, title, ... kept "
           "by balancing), drawn again every epoch from (seed, epoch, key) "
           "(default: %(default)s)")
    a("--samples-per-epoch", type=positive_int,
      help="epoch size (default: the shards' total from sizes.json / _stats.json)")
    a("--checkpoint-every", type=positive_int, default=1000,
      help="write OUT/checkpoint.pt every N steps (default: %(default)s)")
    a("--log-every", type=positive_int, default=10,
      help="log loss, temperature and samples/s every N steps (default: %(default)s)")
    a("--stop-at", type=positive_int,
      help="stop (with a checkpoint) after this step while the schedule still spans --steps: "
           "train in time-limited slots and continue with --resume")
    a("--resume", help="checkpoint to continue from (model, optimizer, schedule, step, RNG); "
                       "read weights-only: a file holding other objects is refused")
    tok = parser.add_mutually_exclusive_group()
    tok.add_argument("--tokenizer",
                     help="load the BPE vocabulary from this tokenizer.json (or vocab.json "
                          "with merges.txt beside it) instead of training one")
    tok.add_argument("--train-tokenizer", action="store_true",
                     help="train a byte-level BPE on the shards' captions (the default "
                          "when --tokenizer is not given)")
    a("--tokenizer-samples", type=positive_int, default=100_000,
      help="captions read to train the tokenizer (default: %(default)s)")
    a("--device", default="auto",
      help="cpu, cuda, cuda:N (default: %(default)s = the GPU of LOCAL_RANK if any, else cpu)")
    a("--precision", default="auto", choices=["auto", "bf16", "fp32"],
      help="autocast precision (default: %(default)s = bf16 on GPU, fp32 on CPU)")
    a("--grad-checkpointing", action="store_true",
      help="recompute activations in backward to save memory")
    a("--compile", action="store_true",
      help="torch.compile the model (the first steps then take a while: on a CPU even tiny "
           "compiles for about a minute)")
    a("--compile-backend", default="inductor",
      help="torch.compile backend (default: %(default)s; 'aot_eager' traces and checks the "
           "graph without generating code, in seconds)")
    a("--image-size", type=positive_int, help="override the config's image size")
    a("--context-length", type=positive_int, help="override the config's text context length")


def run(args: argparse.Namespace, beam_args: list[str]) -> int:
    from training.train import TrainOptions, train

    names = {f.name for f in fields(TrainOptions)}
    opts = TrainOptions(**{k: v for k, v in vars(args).items() if k in names})
    result = train(opts)
    if result.world_size == 1 or _rank() == 0:
        print(f"wit train: {result.steps} steps, {result.samples:,} samples, "
              f"{result.parameters:,} parameters, final loss {result.final_loss:.4f}, "
              f"{result.samples_per_s:.1f} samples/s -> {result.checkpoint}")
        if result.skipped:
            print("wit train: samples skipped (rank 0): " + ", ".join(
                f"{k.replace('_', ' ')}: {v}" for k, v in sorted(result.skipped.items())))
    return 0


def _rank() -> int:
    import os
    return int(os.environ.get("RANK", 0))
