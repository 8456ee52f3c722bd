"""Checkpoints: one file with everything needed to continue exactly (model, optimizer,
scheduler, step, RNG states, model config, tokenizer), written atomically (temporary name,
then rename) so an interrupted save never leaves a file that looks complete."""

from __future__ import annotations

import io
import random
from typing import Any

import fsspec
import numpy as np
import torch

from pipeline.errors import InputError
from pipeline.fsio import atomic_write_bytes

# 2: text pooled at the end token's id, special tokens renumbered (pad, end, start)
FORMAT = "webimagetext-clip-2"


def rng_states() -> dict[str, Any]:
    states: dict[str, Any] = {"python": random.getstate(), "numpy": np.random.get_state(),
                              "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states: dict[str, Any]) -> None:
    random.setstate(states["python"])
    np.random.set_state(states["numpy"])
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def save_checkpoint(path: str, state: dict[str, Any]) -> None:
    buffer = io.BytesIO()
    torch.save({"format": FORMAT, **state}, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def load_checkpoint(path: str, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    try:
        with fsspec.open(path, "rb") as f:
            data = f.read()
    except (OSError, FileNotFoundError) as exc:
        raise InputError(f"{path}: cannot read checkpoint: {exc}") from exc
    try:
        # our own files hold numpy RNG state and plain dicts: not weights-only loadable
        state = torch.load(io.BytesIO(data), map_location=map_location, weights_only=False)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means a bad file
        raise InputError(f"{path}: not a readable checkpoint: {exc}") from exc
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise InputError(f"{path}: not a webimagetext checkpoint (format {FORMAT!r} expected)")
    return state
