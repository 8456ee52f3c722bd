"""``wit train``'s options as the :class:`TrainOptions` config (importing neither torch nor
the model code, so ``wit train --help`` stays quick). :func:`training.train.train` runs it."""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.core.cliargs import (
    non_negative_float,
    non_negative_int,
    output_dir,
    positive_float,
    positive_int,
)
from pipeline.core.options import option
from training.clip.configs import CONFIGS


@dataclass
class TrainOptions:
    """A training run; every field is a ``wit train`` option, default and help included."""

    shards: str = option(
        required=True,
        help="shards: a brace pattern ('OUT/shards/{00000..00009}.tar'), a glob, a directory "
             "(every *.tar in it) or a comma-separated list; sample counts come from sizes.json "
             "or img2dataset's NNNNN_stats.json beside them")
    out: str = option(required=True, type=output_dir,
                      help="output directory for the checkpoint, tokenizer and logs")
    config: str = option("tiny", choices=sorted(CONFIGS),
                         help="model size (default: %(default)s; tiny trains in seconds on a "
                              "CPU)")
    steps: int | None = option(None, type=positive_int, exclusive="length",
                               help="optimizer steps to train (default: one epoch)")
    samples: int | None = option(None, type=positive_int, exclusive="length",
                                 help="samples to train on, i.e. steps = samples / global batch")
    batch_size: int = option(64, type=positive_int, help="batch size per process")
    lr: float = option(5e-4, type=positive_float, help="peak learning rate")
    weight_decay: float = option(0.2, type=non_negative_float,
                                 help="AdamW weight decay on weight matrices; none on gains, "
                                      "biases and the temperature")
    warmup: int | None = option(None, type=non_negative_int,
                                help="linear warmup steps (default: 5% of the steps)")
    grad_clip: float = option(1.0, type=non_negative_float,
                              help="clip the gradient norm to this; 0 disables")
    seed: int = option(0, type=non_negative_int, help="seed of the model init and data order")
    workers: int = option(2, type=non_negative_int,
                          help="DataLoader worker processes per GPU/process")
    shuffle_buffer: int = option(2000, type=non_negative_int,
                                 help="samples held in each worker's shuffle buffer")
    split_shards: bool = option(
        False, help="split the shard list between processes (nodes x GPUs) and loader workers, "
                    "reshuffled every epoch, instead of drawing shards with replacement "
                    "(resampled, the default); needs at least processes x workers shards")
    text: str = option(
        "first", choices=("first", "random"),
        help="which text of a sample to train on: first = its caption (KEY.txt, the best text); "
             "random = one of the texts in KEY.json's 'texts' (an image's alt, title, ... kept "
             "by balancing), drawn again every epoch from (seed, epoch, key)")
    samples_per_epoch: int | None = option(
        None, type=positive_int,
        help="epoch size (default: the shards' total from sizes.json / _stats.json)")
    checkpoint_every: int = option(1000, type=positive_int,
                                   help="write OUT/checkpoint.pt every N steps")
    log_every: int = option(10, type=positive_int,
                            help="log loss, temperature and samples/s every N steps")
    resume: str | None = option(
        None, help="checkpoint to continue from (model, optimizer, schedule, step, RNG); read "
                   "weights-only: a file holding other objects is refused")
    stop_at: int | None = option(
        None, type=positive_int,
        help="stop (with a checkpoint) after this step while the schedule still spans --steps: "
             "train in time-limited slots and continue with --resume")
    tokenizer: str | None = option(
        None, exclusive="tokenizer",
        help="load the BPE vocabulary from this tokenizer.json (or vocab.json with merges.txt "
             "beside it) instead of training one")
    tokenizer_samples: int = option(100_000, type=positive_int,
                                    help="captions read to train the tokenizer")
    device: str = option("auto", help="cpu, cuda, cuda:N (default: %(default)s = the GPU of "
                                      "LOCAL_RANK if any, else cpu)")
    precision: str = option("auto", choices=("auto", "bf16", "fp32"),
                            help="autocast precision (default: %(default)s = bf16 on GPU, fp32 "
                                 "on CPU)")
    grad_checkpointing: bool = option(False, help="recompute activations in backward to save "
                                                  "memory")
    compile: bool = option(False, help="torch.compile the model (the first steps then take a "
                                       "while: on a CPU even tiny compiles for about a minute)")
    compile_backend: str = option("inductor",
                                  help="torch.compile backend (default: %(default)s; "
                                       "'aot_eager' traces and checks the graph without "
                                       "generating code, in seconds)")
    image_size: int | None = option(None, type=positive_int,
                                    help="override the config's image size")
    context_length: int | None = option(None, type=positive_int,
                                        help="override the config's text context length")


@dataclass(frozen=True)
class TokenizerSwitch:
    """``--train-tokenizer`` spells out the default (no ``--tokenizer``). Not a
    :class:`TrainOptions` field, so train_options.json and checkpoints keep their keys."""

    train_tokenizer: bool = option(False, exclusive="tokenizer",
                                   help="train a byte-level BPE on the shards' captions (the "
                                        "default when --tokenizer is not given)")
