"""Checkpoints that survive a crash and resume exactly.

Everything is written to a temporary file and renamed, so a kill during a save leaves the
previous good file. Files are read with ``weights_only=True``: a checkpoint is data, never code.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from common.errors import MissingFileError, UserError
from common.io import atomic_path

CHECKPOINT_NAME = "checkpoint.pth"
BEST_NAME = "model_best.pth"
FINAL_NAME = "final_state.pth"
CHECKPOINT_KEYS = ("epoch", "state_dict", "optimizer", "scheduler", "best_perf", "best_epoch")


class CheckpointError(UserError, ValueError):
    """A checkpoint file is truncated, foreign, not a state dict, or does not fit the run."""


def _numpy_globals() -> list:
    """Numeric numpy scalars and arrays (training checkpoints store metrics as numpy values).

    Both numpy 2's and numpy 1's module paths, so that older files load too. No other class
    becomes loadable.
    """
    core = np._core.multiarray
    allowed: list = [np.ndarray, np.dtype]
    allowed += sorted({type(np.dtype(code)) for code in "?bBhHiIlLqQefdgFDG"}, key=str)
    for name in ("scalar", "_reconstruct"):
        function = getattr(core, name)
        allowed += [function, (function, f"numpy.core.multiarray.{name}")]
    return allowed


def _load_error_reason(err: Exception) -> str:
    """The informative part of torch.load's message, without its advice to unpickle freely."""
    text = str(err)
    for marker in ("WeightsUnpickler error:", "trusted source."):
        if marker in text:
            text = text.split(marker, 1)[1]
            text = text.split("Check the documentation", 1)[0]
            text = text.split(" Please use `torch.serialization", 1)[0]
    return " ".join(text.split())[:300]


def save_atomic(obj: Any, path: str | Path) -> None:
    """``torch.save`` through a temporary file and a rename."""
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def load_safely(path: str | Path) -> Any:
    """The one checkpoint reader: ``torch.load`` on the CPU with ``weights_only=True`` (tensors,
    plain containers and numeric numpy values only) and errors that name the file."""
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"checkpoint not found: {path}; check the path or train first")
    try:
        with torch.serialization.safe_globals(_numpy_globals()):
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for truncated or foreign files
        raise CheckpointError(
            f"cannot read checkpoint {path}: it is truncated, corrupt, or not a tensor-only "
            f"torch file ({type(exc).__name__}: {_load_error_reason(exc)})"
        ) from exc


def rng_state() -> dict[str, Any]:
    """Every generator's state, in types that ``weights_only`` loading accepts."""
    np_state = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    random.setstate(tuple(tuple(x) if isinstance(x, list) else x for x in state["python"]))
    name, keys, *rest = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), *rest))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def first_non_finite(state: Mapping[str, torch.Tensor]) -> str | None:
    """The name of the first floating-point tensor holding NaN or inf, or None."""
    for name, tensor in state.items():
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            return name
    return None


def load_training_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read ``checkpoint.pth`` and check it has what a resume needs."""
    checkpoint = load_safely(path)
    if not isinstance(checkpoint, dict) or any(k not in checkpoint for k in CHECKPOINT_KEYS):
        found = sorted(checkpoint) if isinstance(checkpoint, dict) else type(checkpoint).__name__
        raise CheckpointError(
            f"{path} is not a training checkpoint of this project: expected keys "
            f"{list(CHECKPOINT_KEYS)}, found {found}"
        )
    bad = first_non_finite(checkpoint["state_dict"])
    if bad is not None:
        raise CheckpointError(
            f"{path}: tensor {bad} holds NaN or infinite values, so the run cannot resume from "
            "it; move it away to start afresh"
        )
    return checkpoint
