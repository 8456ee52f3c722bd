"""Reading a training stream in tests."""

from __future__ import annotations

from training import batch_stream


def first_batches(cfg: batch_stream.StreamConfig, tokenizer, n: int, workers: int) -> list:
    """The first ``n`` batches of the loader built from ``cfg``; fails if the stream ends first."""
    loader = batch_stream.make_loader(cfg, tokenizer, workers=workers, pin_memory=False)
    out = []
    for batch in loader:
        out.append(batch)
        if len(out) == n:
            return out
    raise AssertionError("stream ended")
