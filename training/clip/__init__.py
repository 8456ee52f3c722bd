"""The CLIP model as a library, apart from the trainer (as open_clip keeps its model apart
from its training code): what loading and running a checkpoint needs, nothing that trains.

Modules: ``configs`` (named model sizes), ``model`` (ViT + causal text transformer),
``tokenizer`` (byte-level BPE), ``checkpoint`` (the checkpoint format: weights-only loading,
saving, ``load_model``), ``preprocess`` (inference-time image decoding and centre crop).

These modules import only torch, tokenizers, numpy, PIL, fsspec, ``pipeline.core`` and
``schemas``; never the trainer or another stage (``make lint`` checks it). The trainer,
evaluation, export and the shards stage's CLIP-score filter import this library."""
