"""CLIP-score filtering (DataComp's CLIP-score baseline, LAION's main filter): the cosine
similarity of a sample's image and caption embeddings under a checkpoint of `wit train`,
stored per sample as ``clip_score`` (rounded to 1e-6), and ``filtered:clip_score`` for the
samples below ``--min-clip-score`` or outside the ``--clip-top-fraction`` best.

Scores are computed where the images are first read, one download shard at a time, in
batches, with the model loaded once per worker process (``apache_beam.utils.shared``). Only
rows that pass the download and the basic filters are scored. The top-fraction threshold is
exact and deterministic: a global histogram of the quantised scores (a fixed 2,000,001-bin
array, so memory does not grow with the dataset) gives the k-th best score."""

from __future__ import annotations

import math
import tarfile
from collections.abc import Iterator, Sequence
from typing import Any, NamedTuple

import apache_beam as beam
import fsspec
import numpy as np
from apache_beam.utils import shared

from pipeline.shards.clip_options import ClipFilterConfig
from pipeline.shards.elements import Record
from pipeline.shards.transform import (
    DownloadedShard,
    ReadDownloadedShard,
    TransformConfig,
    apply_filters,
    is_success,
)
from schemas import status as st

SCALE = 1_000_000  # scores are stored and compared as multiples of 1e-6
BINS = 2 * SCALE + 1  # cosine similarity in [-1, 1]


class Scored(NamedTuple):
    """One image-caption pair: its score, or why it has none (the image does not decode)."""
    score: float | None
    error: str | None


def quantize(score: float) -> int:
    return int(round(min(1.0, max(-1.0, score)) * SCALE))


class ClipScorer:
    """A checkpoint's model and tokenizer; image-caption cosine similarity of batches."""

    def __init__(self, checkpoint: str, device: str = "cpu"):
        import torch

        from training.clip.checkpoint import load_model

        self.device = torch.device(("cuda" if torch.cuda.is_available() else "cpu")
                                   if device == "auto" else device)
        self.model, self.tokenizer = load_model(checkpoint, self.device)

    def scores(self, images: Sequence[bytes], captions: Sequence[str]) -> list[Scored]:
        """One :class:`Scored` per pair."""
        import torch

        from training.clip.preprocess import image_error_text, image_tensor

        size = self.model.cfg.image_size
        tensors: list[torch.Tensor] = []
        results: list[Scored] = []
        for raw in images:
            try:
                tensors.append(image_tensor(raw, size))
                results.append(Scored(0.0, None))
            except Exception as exc:  # noqa: BLE001 - an undecodable image is a row status
                results.append(Scored(None, f"CLIP score: undecodable image: {image_error_text(exc)}"))
        ok = [i for i, scored in enumerate(results) if scored.error is None]
        if not ok:
            return results
        with torch.no_grad():
            image = self.model.encode_image(torch.stack(tensors).to(self.device))
            tokens = self.tokenizer.encode([captions[i] for i in ok], self.model.cfg.context_length)
            text = self.model.encode_text(tokens.to(self.device))
            cosine = (image * text).sum(dim=1).float().cpu().tolist()
        for i, value in zip(ok, cosine):
            results[i] = Scored(quantize(value) / SCALE, None)
        return results


def _tar_images(path: str, encode_format: str, wanted: set[str]) -> Iterator[tuple[str, bytes]]:
    """(key, image bytes) of the ``wanted`` keys in tar order, streaming: one image in memory."""
    suffix = "." + encode_format
    with fsspec.open(path, "rb") as f, tarfile.open(fileobj=f, mode="r|") as tar:
        for member in tar:
            key = member.name[: -len(suffix)]
            if member.isfile() and member.name.endswith(suffix) and key in wanted:
                handle = tar.extractfile(member)
                if handle is not None:
                    yield key, handle.read()


class ReadAndScore(ReadDownloadedShard):
    """``ReadDownloadedShard`` plus the CLIP score of every row that passes the basic filters."""

    def __init__(self, config: TransformConfig, clip: ClipFilterConfig):
        super().__init__(config)
        self.clip = clip
        self._shared = shared.Shared()
        self._scorer: ClipScorer | None = None

    def setup(self) -> None:
        clip = self.clip
        self._scorer = self._shared.acquire(lambda: ClipScorer(clip.checkpoint, clip.device))

    def process(self, shard: DownloadedShard) -> Iterator[Record]:
        assert self._scorer is not None
        records = {r["key"]: r for r in super().process(shard)}
        # the caption scored is the filtered one: the first text that passes the caption rules
        captions = {key: filtered["caption"] for key, r in records.items() if is_success(r)
                    and is_success(filtered := apply_filters(r, self.config.filters))}
        wanted = set(captions)
        batch: list[tuple[str, bytes]] = []

        def flush() -> None:
            assert self._scorer is not None
            keys = [k for k, _ in batch]
            scored = self._scorer.scores([b for _, b in batch], [captions[k] for k in keys])
            for key, (score, error) in zip(keys, scored):
                if error is None:
                    records[key] = {**records[key], "clip_score": score}
                else:
                    records[key] = {**records[key], "status": st.FAILED_TO_RESIZE,
                                    "error_message": error}
            batch.clear()

        base = f"{shard.folder}/{shard.name}"
        for key, image in _tar_images(base + ".tar", self.config.encode_format, wanted):
            batch.append((key, image))
            if len(batch) == self.clip.batch_size:
                flush()
        if batch:
            flush()
        yield from records.values()


def top_fraction_threshold(histogram: np.ndarray, fraction: float) -> int | None:
    """The quantised score of the ``ceil(fraction * n)``-th best row (rows tied with it are
    kept too); None for no rows."""
    n = int(histogram.sum())
    if n == 0:
        return None
    k = max(1, math.ceil(fraction * n))
    from_top = np.cumsum(histogram[::-1])
    return int(BINS - 1 - np.searchsorted(from_top, k)) - SCALE


class TopFractionThreshold(beam.CombineFn):
    """Scores of the rows still kept -> ``top_fraction_threshold`` of their histogram."""

    def __init__(self, fraction: float):
        self.fraction = fraction

    def create_accumulator(self) -> np.ndarray:
        return np.zeros(BINS, dtype=np.int64)

    def add_input(self, acc: np.ndarray, score: float) -> np.ndarray:
        acc[quantize(score) + SCALE] += 1
        return acc

    def merge_accumulators(self, accs) -> np.ndarray:
        accs = iter(accs)
        total = next(accs).copy()
        for acc in accs:
            total += acc
        return total

    def extract_output(self, acc: np.ndarray) -> int | None:
        return top_fraction_threshold(acc, self.fraction)


def clip_reason(record: Record, clip: ClipFilterConfig, threshold: int | None) -> str | None:
    """Why a scored, kept row fails the CLIP-score filter, or None."""
    score = record.get("clip_score")
    if score is None:
        return None
    if clip.min_score is not None and quantize(score) < quantize(clip.min_score):
        return f"CLIP score {score:.6f} < --min-clip-score {clip.min_score:g}"
    if threshold is not None and quantize(score) < threshold:
        return (f"CLIP score {score:.6f} below the best {clip.top_fraction:g} "
                f"(threshold {threshold / SCALE:.6f})")
    return None


def apply_clip_filter(record: Record, clip: ClipFilterConfig, threshold: int | None) -> Record:
    if not is_success(record):
        return record
    message = clip_reason(record, clip, threshold)
    return record if message is None else {**record, "status": st.filtered(st.CLIP_SCORE),
                                           "error_message": message}


class ClipFilter(beam.PTransform):
    """Records (scored by ``ReadAndScore``, after the basic filters and decontamination) ->
    the same records, the failing ones ``filtered:clip_score``."""

    def __init__(self, clip: ClipFilterConfig):
        super().__init__()
        self.clip = clip

    def expand(self, records):
        clip = self.clip
        if clip.top_fraction is None:
            return records | "ClipMin" >> beam.Map(apply_clip_filter, clip, None)
        threshold = (
            records
            | "KeptScores" >> beam.FlatMap(lambda r: [r["clip_score"]] if is_success(r)
                                           and r.get("clip_score") is not None
                                           and clip_reason(r, clip, None) is None else [])
            | "TopFraction" >> beam.CombineGlobally(TopFractionThreshold(clip.top_fraction))
        )
        return records | "ClipTop" >> beam.Map(apply_clip_filter, clip,
                                               beam.pvalue.AsSingleton(threshold))


def check_checkpoint(path: str) -> dict[str, Any]:
    """Fail before any download when the checkpoint would not load: everything
    ``load_model`` checks (format, model config, tokenizer, weight names, shapes and
    finiteness: ``check_model_state``), without building the model. Its config for the
    manifest."""
    from training.clip.checkpoint import check_model_state, load_checkpoint

    state = load_checkpoint(path)
    cfg, _ = check_model_state(path, state)
    return cfg.to_dict()
