"""Runs a checkpoint on the datasets of a zero-shot suite (``benchmark_suite.py``: the
CLIP_benchmark/DataComp webdataset format) with the zero-shot and retrieval code of
``evaluate.py``. Each dataset's tars are streamed: only image features (and labels or
captions) stay in memory."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch

from pipeline.core.errors import InputError
from training import evaluate, shard_reading
from training.benchmark_suite import (
    BenchmarkSet,
    sample_captions,
    sample_image,
    sample_label,
)
from training.clip import preprocess
from training.clip.model import CLIP
from training.clip.tokenizer import CaptionTokenizer


def _refuse(shard: str) -> Callable[[Exception], bool]:
    """A damaged benchmark tar is an error, not a shorter benchmark: a score over part of
    a set would not compare with published ones."""
    def handler(exc: Exception) -> bool:
        # webdataset appends (stream, url) to an exception's args: the first one says why
        reason = exc.args[0] if exc.args else exc
        raise InputError(f"{shard}: unreadable benchmark tar: {type(exc).__name__}: {reason}")
    return handler


def _image_batches(bench: BenchmarkSet, size: int, batch_size: int,
                   take: Callable[[dict[str, Any]], None]) -> Iterator[torch.Tensor]:
    """Decoded image batches of the set in shard order; ``take(sample)`` reads each
    sample's label or captions (and raises on a bad one) before its image is decoded."""
    chunk: list[torch.Tensor] = []
    for shard in bench.shards:
        for sample in shard_reading.iterate_shard(shard, handler=_refuse(shard), extra=("cls",)):
            raw = sample_image(sample)
            take(sample)
            try:
                chunk.append(preprocess.image_tensor(raw, size))
            except Exception as exc:  # noqa: BLE001 - Pillow raises many types for bad bytes
                raise InputError(f"{shard}: sample {sample.get('__key__')}: undecodable image: "
                                 f"{preprocess.image_error_text(exc)}") from None
            if len(chunk) == batch_size:
                yield torch.stack(chunk)
                chunk = []
    if chunk:
        yield torch.stack(chunk)


def classification(model: CLIP, tokenizer: CaptionTokenizer, bench: BenchmarkSet,
                   device: torch.device, batch_size: int = 256) -> dict[str, Any]:
    """Zero-shot top-1/top-5 and mean per-class recall with the set's own class names and
    templates."""
    labels: list[int] = []
    feats = evaluate.image_features(
        model, _image_batches(bench, model.cfg.image_size, batch_size,
                              lambda s: labels.append(sample_label(s, len(bench.classnames)))),
        device)
    classifier = evaluate.zero_shot_classifier(model, tokenizer, bench.classnames,
                                               bench.templates, device)
    result = evaluate.classification_metrics(feats @ classifier.T, np.asarray(labels),
                                             bench.classnames)
    return {**result, "templates": len(bench.templates)}


def retrieval(model: CLIP, tokenizer: CaptionTokenizer, bench: BenchmarkSet,
              device: torch.device, batch_size: int = 256) -> dict[str, Any]:
    """Image->text and text->image Recall@1/5/10, every caption of an image counted as its."""
    captions: list[str] = []
    owner: list[int] = []  # the image (its index in the set) of each caption
    images = [0]

    def take(sample: dict[str, Any]) -> None:
        for caption in sample_captions(sample):
            captions.append(caption)
            owner.append(images[0])
        images[0] += 1

    feats = evaluate.image_features(
        model, _image_batches(bench, model.cfg.image_size, batch_size, take), device)
    texts = evaluate.text_features(model, tokenizer, captions, device, batch_size)
    return evaluate.recall_at_k(feats, texts, captions, text_image=owner)


def run_benchmark(model: CLIP, tokenizer: CaptionTokenizer, bench: BenchmarkSet,
                  device: torch.device, batch_size: int = 256) -> dict[str, Any]:
    run = classification if bench.kind == "classification" else retrieval
    return run(model, tokenizer, bench, device, batch_size)
