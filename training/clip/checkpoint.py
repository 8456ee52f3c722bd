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
a tensor plus numbers, not as numpy objects (``training/rng_state.py``).

A file that unpickles but is wrong is refused the same way, before anything is built from it
(:func:`check_model_state`): the model config's values are checked and the parameter count
estimated before a tensor is allocated (a config of 2^20 widths would ask for terabytes), the
tokenizer must be a tokenizer.json, every weight must be there with the shape the config
implies, and no weight may be NaN or infinite (a diverged run's checkpoint evaluates to
noise)."""

from __future__ import annotations

import io
import pickle
import warnings
from typing import Any

import fsspec
import torch

from pipeline.core.errors import InputError
from pipeline.core.fsio import atomic_write_bytes
from training.clip.configs import ModelConfig, check_size
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


def expected_shapes(cfg: ModelConfig, tokenizer: CaptionTokenizer) -> dict[str, torch.Size]:
    """The weight names and shapes of the model a checkpoint of ``cfg`` holds, from a model
    built on the meta device (no memory); ``cfg`` must have passed ``check_size``."""
    with torch.device("meta"):
        model = CLIP(cfg, tokenizer.vocab_size, tokenizer.eot_id)
    return {name: tensor.shape for name, tensor in model.state_dict().items()}


def check_model_state(path: str, state: dict[str, Any]) -> tuple[ModelConfig, CaptionTokenizer]:
    """The model config and tokenizer of a loaded checkpoint, once its model config, tokenizer
    and weights have been checked (see the module docstring); an :class:`InputError`
    naming ``path`` and the first problem otherwise. Allocates nothing beyond the tokenizer."""
    try:
        cfg = ModelConfig.from_dict(state.get("model_config"))
    except InputError as exc:
        raise InputError(f"{path}: not a usable checkpoint: {exc}") from None
    text = state.get("tokenizer")
    if not isinstance(text, str):
        raise InputError(f"{path}: not a usable checkpoint: no tokenizer (a tokenizer.json text "
                         f"expected, found {type(text).__name__})")
    try:
        tokenizer = CaptionTokenizer.from_json(text)
    except Exception as exc:  # noqa: BLE001 - tokenizers raises plain Exceptions
        reason = " ".join(str(exc).split())[:200] or type(exc).__name__
        raise InputError(f"{path}: not a usable checkpoint: its tokenizer is not a "
                         f"tokenizer.json ({reason})") from None
    try:
        check_size(cfg, tokenizer.vocab_size)
    except InputError as exc:
        raise InputError(f"{path}: not a usable checkpoint: {exc}") from None
    weights = state.get("model")
    if not isinstance(weights, dict) or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in weights.items()):
        raise InputError(f"{path}: not a usable checkpoint: 'model' is not a mapping of names "
                         "to tensors")
    expected = expected_shapes(cfg, tokenizer)
    missing = [name for name in expected if name not in weights]
    unexpected = [name for name in weights if name not in expected]
    if missing or unexpected:
        parts = [f"{len(missing)} weight(s) missing ({', '.join(missing[:3])})" if missing else "",
                 f"{len(unexpected)} unknown ({', '.join(unexpected[:3])})" if unexpected else ""]
        raise InputError(f"{path}: not a usable checkpoint: "
                         + "; ".join(p for p in parts if p) + " for its model config")
    for name, shape in expected.items():
        tensor = weights[name]
        if tensor.shape != shape:
            raise InputError(f"{path}: not a usable checkpoint: weight {name} has shape "
                             f"{list(tensor.shape)}, its model config implies {list(shape)}")
        if not tensor.is_floating_point():
            raise InputError(f"{path}: not a usable checkpoint: weight {name} is {tensor.dtype}, "
                             "not floating point")
    bad = [name for name, tensor in weights.items() if not bool(torch.isfinite(tensor).all())]
    if bad:
        raise InputError(f"{path}: refused: {len(bad)} of {len(weights)} weight tensors hold NaN "
                         f"or infinite values ({', '.join(bad[:3])}{' ...' if len(bad) > 3 else ''})"
                         ": the run diverged; evaluate or resume an earlier checkpoint")
    return cfg, tokenizer


def load_model(checkpoint: str, device: str | torch.device = "cpu"
               ) -> tuple[CLIP, CaptionTokenizer]:
    """The checkpoint's model (in eval mode, on ``device``) and tokenizer; the checkpoint is
    checked first (:func:`check_model_state`)."""
    state = load_checkpoint(checkpoint)
    cfg, tokenizer = check_model_state(checkpoint, state)
    model = CLIP(cfg, tokenizer.vocab_size, tokenizer.eot_id)
    model.load_state_dict(state["model"])
    return model.to(device).eval(), tokenizer
