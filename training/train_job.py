"""`wit train`'s job: run the training loop (:func:`training.train.train`) and print the
summary, on rank 0 only under ``torchrun``.

Torch and the model code are imported inside ``run``: the CLI reads ``TrainOptions`` (its
options) without paying for them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pipeline.core.jobs import print_summary

if TYPE_CHECKING:
    from training.train import TrainResult
    from training.train_options import TrainOptions


def summary_text(result: TrainResult) -> str:
    lines = [f"wit train: {result.steps} steps, {result.samples:,} samples, "
             f"{result.parameters:,} parameters, final loss {result.final_loss:.4f}, "
             f"{result.samples_per_s:.1f} samples/s -> {result.checkpoint}"]
    if result.skipped:
        lines.append("wit train: samples skipped (rank 0): " + ", ".join(
            f"{k.replace('_', ' ')}: {v}" for k, v in sorted(result.skipped.items())))
    return "\n".join(lines)


def run(opts: TrainOptions) -> TrainResult:
    """Train, print the summary (one process prints it) and return the result."""
    from training.batch_stream import environment_world
    from training.train import train

    rank, _, _ = environment_world()  # checked first: a bad RANK or WORLD_SIZE is one line
    result = train(opts)
    if result.world_size == 1 or rank == 0:
        print_summary(summary_text(result))
    return result
