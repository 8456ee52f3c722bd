"""Artifacts of the ``train`` and ``eval`` stages (``OUT/train/``, ``OUT/eval/``).

- ``log.jsonl``: one JSON object per logged step, columns :data:`TRAIN_LOG` (plus
  ``skipped_<reason>`` counts once a sample has been skipped); pandas/pyarrow read it.
- ``eval.json``: a JSON object with :data:`EVAL_KEYS` present for the evaluations that ran.
"""

import pyarrow as pa

TRAIN_LOG = pa.schema(
    [
        pa.field("step", pa.int64(), nullable=False),
        # Unix time of the log line
        pa.field("time", pa.float64(), nullable=False),
        # rank 0's loss at this step (the mean over ranks is the global-batch loss)
        pa.field("loss", pa.float64(), nullable=False),
        pa.field("lr", pa.float64(), nullable=False),
        # 1 / exp(logit_scale), and exp(logit_scale) itself
        pa.field("temperature", pa.float64(), nullable=False),
        pa.field("logit_scale", pa.float64(), nullable=False),
        # samples seen so far over all ranks, and the rate since the previous line
        pa.field("samples", pa.int64(), nullable=False),
        pa.field("samples_per_s", pa.float64(), nullable=False),
        pa.field("epoch", pa.int64(), nullable=False),
    ]
)

EVAL_KEYS = ("checkpoint", "zeroshot", "linear_probe", "retrieval", "benchmark")
