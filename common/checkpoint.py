"""Checkpoints that survive a crash and resume exactly.

Everything is written to a temporary file and renamed, so a kill during a save leaves the
previous good file. Files are read with ``weights_only=True``: a checkpoint is data, never code.
"""

from __future__ import annotations

import random
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


class CheckpointError(UserError, RuntimeError):
    """A checkpoint file is truncated, foreign, or does not fit the run."""


def save_atomic(obj: Any, path: str | Path) -> None:
    """``torch.save`` through a temporary file and a rename."""
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def load_safely(path: str | Path) -> Any:
    """``torch.load`` with ``weights_only=True`` and errors that name the file."""
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"checkpoint not found: {path}; check the path or train first")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for truncated or foreign files
        raise CheckpointError(
            f"cannot read checkpoint {path}: it is truncated, corrupt, or not a tensor-only "
            f"torch file ({type(exc).__name__}: {str(exc).splitlines()[0][:200]})"
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


def load_training_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read ``checkpoint.pth`` and check it has what a resume needs."""
    checkpoint = load_safely(path)
    if not isinstance(checkpoint, dict) or any(k not in checkpoint for k in CHECKPOINT_KEYS):
        found = sorted(checkpoint) if isinstance(checkpoint, dict) else type(checkpoint).__name__
        raise CheckpointError(
            f"{path} is not a training checkpoint of this project: expected keys "
            f"{list(CHECKPOINT_KEYS)}, found {found}"
        )
    return checkpoint
