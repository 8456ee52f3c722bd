"""Restoring a run from its checkpoint (``wit train --resume``): the optimizer, schedule,
step, RNG states and loader positions a checkpoint holds, each checked before it is used.

A checkpoint is a file from anywhere. Its model part is checked by
``training.clip.checkpoint.check_model_state``; here the rest: optimizer moments of the
weights' shapes, hyperparameters and schedule values of the kinds a fresh optimizer and
schedule hold (a schedule's state is written into its attributes, so a key it does not have
is refused), a whole step count, RNG states their setters accept. Anything else is an
:class:`InputError` naming the file and the part, never a traceback at the first step."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from pipeline.core.errors import InputError
from training.rng_state import set_rng_states


def _like(saved: Any, fresh: Any, where: str) -> None:
    """``saved`` is a plain value of the kind ``fresh`` is (bools, finite numbers, None,
    sequences of those); a ValueError naming ``where`` otherwise."""
    if isinstance(fresh, bool) or fresh is None:
        if not (saved is None or isinstance(saved, bool)):
            raise ValueError(f"{where} is {saved!r}, not a flag")
    elif isinstance(fresh, (int, float)):
        if (not isinstance(saved, (int, float)) or isinstance(saved, bool)
                or not math.isfinite(saved)):
            raise ValueError(f"{where} is {saved!r}, not a finite number")
    elif isinstance(fresh, (list, tuple)):
        if not isinstance(saved, (list, tuple)) or len(saved) != len(fresh):
            raise ValueError(f"{where} is not a sequence of {len(fresh)}")
        for i, (s, f) in enumerate(zip(saved, fresh)):
            _like(s, f, f"{where}[{i}]")
    elif isinstance(fresh, str):
        if not isinstance(saved, str):
            raise ValueError(f"{where} is {type(saved).__name__}, not text")


def _check_optimizer(saved: Any, optimizer: torch.optim.Optimizer) -> None:
    if not isinstance(saved, dict) or not isinstance(saved.get("param_groups"), list) \
            or not isinstance(saved.get("state"), dict):
        raise ValueError("optimizer state is not a mapping with 'state' and 'param_groups'")
    fresh_groups = optimizer.param_groups
    if len(saved["param_groups"]) != len(fresh_groups):
        raise ValueError(f"{len(saved['param_groups'])} optimizer parameter groups, "
                         f"{len(fresh_groups)} expected")
    for i, (group, fresh) in enumerate(zip(saved["param_groups"], fresh_groups)):
        if not isinstance(group, dict):
            raise ValueError(f"optimizer group {i} is not a mapping")
        for key, value in fresh.items():
            if key != "params" and key in group:
                _like(group[key], value, f"optimizer group {i} {key}")


def _check_moments(optimizer: torch.optim.Optimizer) -> None:
    """After loading: every per-weight state tensor (AdamW's moments) has its weight's shape
    and holds finite values; torch checks neither."""
    for group in optimizer.param_groups:
        for param in group["params"]:
            for key, value in optimizer.state.get(param, {}).items():
                if not isinstance(value, torch.Tensor):
                    raise ValueError(f"optimizer state {key} is {type(value).__name__}, not a tensor")
                if value.dim() and value.shape != param.shape:
                    raise ValueError(f"optimizer state {key} has shape {list(value.shape)} for a "
                                     f"weight of shape {list(param.shape)}")
                if not bool(torch.isfinite(value).all()):
                    raise ValueError(f"optimizer state {key} holds NaN or infinite values")


def _check_scheduler(saved: Any, scheduler: Any) -> None:
    if not isinstance(saved, dict):
        raise ValueError("scheduler state is not a mapping")
    fresh = scheduler.state_dict()
    unknown = sorted(str(k) for k in saved if k not in fresh)
    if unknown:
        raise ValueError(f"scheduler state has unknown keys {unknown[:5]}")
    for key, value in saved.items():
        _like(value, fresh[key], f"scheduler {key}")


def _positions(state: dict[str, Any], rank: int, world: int, workers: int
               ) -> dict[int, tuple[int, int]]:
    """This rank's loader stream positions saved in a checkpoint (none: another layout of
    ranks and workers, whose streams differ anyway)."""
    if state.get("world_size", 1) != world or state.get("workers") != workers:
        return {}
    saved = state.get("stream_positions") or {}
    mine = saved[rank] if isinstance(saved, list) else saved
    positions = {}
    for worker, (epoch, position) in mine.items():
        values = (worker, epoch, position)
        if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in values):
            raise ValueError(f"stream position {values!r} is not three whole numbers >= 0")
        positions[worker] = (epoch, position)
    return positions


def _reason(exc: BaseException) -> str:
    if isinstance(exc, KeyError):
        return f"it has no {exc.args[0]!r}" if exc.args else "a part is missing"
    text = " ".join(str(exc).split())[:200]
    return text or type(exc).__name__


def restore(path: str, state: dict[str, Any], model: nn.Module, optimizer: torch.optim.Optimizer,
            scheduler: Any, rank: int, world: int, workers: int
            ) -> tuple[int, dict[int, tuple[int, int]]]:
    """Load ``state`` (checked by ``check_model_state``) into the fresh ``model``,
    ``optimizer`` and ``scheduler``, set the RNG states; (step, this rank's loader
    positions)."""
    model.load_state_dict(state["model"])
    try:
        _check_optimizer(state["optimizer"], optimizer)
        optimizer.load_state_dict(state["optimizer"])
        _check_moments(optimizer)
        _check_scheduler(state["scheduler"], scheduler)
        scheduler.load_state_dict(state["scheduler"])
        step = state["step"]
        if not isinstance(step, int) or isinstance(step, bool) or step < 0:
            raise ValueError(f"step {step!r} is not a whole number >= 0")
        rngs = state["rng"]
        set_rng_states(rngs[rank] if isinstance(rngs, list) else rngs)
        positions = _positions(state, rank, world, workers)
    except (KeyError, TypeError, ValueError, RuntimeError, IndexError, AttributeError,
            OverflowError) as exc:
        raise InputError(f"{path}: cannot resume from this checkpoint: {_reason(exc)}") from None
    return step, positions
