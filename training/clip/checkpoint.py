"""The checkpoint format: one file with everything needed to continue exactly (model,
optimizer, scheduler, step, RNG states, model config, tokenizer), written atomically
(temporary name, then rename) so an interrupted save never leaves a file that looks complete;
``load_model`` builds the model and tokenizer a checkpoint holds (evaluation, export, the
CLIP-score filter).

A checkpoint is a file from anywhere (downloaded, shared): it is read with
``torch.load(weights_only=True)``, whose unpickler only builds tensors and plain values
(dict, list, tuple, str, numbers, None) and refuses any other object *before* creating it,
so a pickle that would run code on load is rejected with a one-line :class:`InputError`.
Everything we save is therefore tensors and plain values: the numpy RNG state is stored as
a tensor plus numbers, not as numpy objects (``training/rng_state.py``)."""

from __future__ import annotations

import io
import pickle
import warnings
from typing import Any

import fsspec
import torch

from pipeline.core.errors import InputError
from pipeline.core.fsio import atomic_write_bytes
from training.clip.configs import ModelConfig
from training.clip.model import CLIP
from training.clip.tokenizer import CaptionTokenizer

# 2: text pooled at the end token's id, special tokens renumbered (pad, end, start)
# 3: weights-only loadable (no numpy objects); files of earlier formats are refused
FORMAT = "webimagetext-clip-3"


def save_checkpoint(path: str, state: dict[str, Any]) -> None:
    buffer = io.BytesIO()
    torch.save({"format": FORMAT, **state}, buffer)
    atomic_write_bytes(path, buffer.getvalue())


_BOILERPLATE = ("Weights only load failed", "Please file an issue", "Check the documentation",
                "Re-running `torch.load`")


def _refusal(exc: BaseException) -> str:
    """One line out of torch's multi-line weights-only message: the line naming what was
    refused (a global such as ``posix.system``, an opcode)."""
    text = str(exc).split("WeightsUnpickler error:", 1)[-1]
    lines = [line.strip() for line in text.splitlines()]
    useful = [line for line in lines if line and not line.startswith(_BOILERPLATE)]
    return (useful[0] if useful else type(exc).__name__)[:200]


def load_checkpoint(path: str, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    try:
        with fsspec.open(path, "rb") as f:
            data = f.read()
    except (OSError, FileNotFoundError) as exc:
        raise InputError(f"{path}: cannot read checkpoint: {exc}") from exc
    try:
        # weights_only: tensors and plain values only; any other object is refused unbuilt
        with warnings.catch_warnings():  # e.g. "Detected pickle protocol 4": not actionable
            warnings.simplefilter("ignore")
            state = torch.load(io.BytesIO(data), map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        raise InputError(f"{path}: not a readable checkpoint, refused without running it: "
                         f"{_refusal(exc)} (files older than format {FORMAT!r} hold numpy "
                         "objects and are refused too: retrain)") from exc
    except Exception as exc:  # noqa: BLE001 - any other failure to read means a bad file
        raise InputError(f"{path}: not a readable checkpoint: {_refusal(exc)}") from exc
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        found = state.get("format") if isinstance(state, dict) else None
        raise InputError(f"{path}: not a webimagetext checkpoint (format {FORMAT!r} expected, "
                         f"found {found!r}" + ("; written by an older version: retrain or "
                                               "resave it" if found else "") + ")")
    return state


def load_model(checkpoint: str, device: str | torch.device = "cpu"
               ) -> tuple[CLIP, CaptionTokenizer]:
    """The checkpoint's model (in eval mode, on ``device``) and tokenizer."""
    state = load_checkpoint(checkpoint)
    tokenizer = CaptionTokenizer.from_json(state["tokenizer"])
    model = CLIP(ModelConfig.from_dict(state["model_config"]), tokenizer.vocab_size,
                 tokenizer.eot_id)
    model.load_state_dict(state["model"])
    return model.to(device).eval(), tokenizer
