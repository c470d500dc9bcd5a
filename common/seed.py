"""One call that makes a run repeatable: Python, NumPy, torch (CPU and CUDA), workers, cuDNN."""

from __future__ import annotations

import os
import random

import numpy as np
import torch
from yacs.config import CfgNode


def seed_everything(seed: int, cfg: CfgNode | None = None) -> None:
    """Seed every generator and set the determinism flags from ``cfg``.

    ``CUBLAS_WORKSPACE_CONFIG`` must be set before CUDA is first used, so this is called at the
    very start of every tool. An already set value (from the user's shell) wins.
    """
    workspace = ":16:8"
    deterministic_algorithms = False
    if cfg is not None:
        workspace = cfg.REPRODUCIBILITY.CUBLAS_WORKSPACE_CONFIG
        deterministic_algorithms = cfg.REPRODUCIBILITY.DETERMINISTIC_ALGORITHMS
    if workspace:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", workspace)
    os.environ["PYTHONHASHSEED"] = str(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)
    if cfg is not None:
        torch.backends.cudnn.benchmark = cfg.CUDNN.BENCHMARK
        torch.backends.cudnn.deterministic = cfg.CUDNN.DETERMINISTIC
        torch.backends.cudnn.enabled = cfg.CUDNN.ENABLED
    if torch.are_deterministic_algorithms_enabled() != deterministic_algorithms:
        # Only when it changes something: on this torch the call imports dynamo and inductor,
        # about 2 s in every process.
        torch.use_deterministic_algorithms(deterministic_algorithms, warn_only=False)


def seed_worker(worker_id: int) -> None:
    """DataLoader ``worker_init_fn``: derive NumPy and ``random`` seeds from torch's worker seed."""
    worker_seed = torch.initial_seed() % 2**32
    np.random.seed(worker_seed)
    random.seed(worker_seed)


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    """The DataLoader generator of one epoch.

    Shuffling and every worker's augmentation seed derive from it, so an epoch's randomness
    depends only on (seed, epoch): a resumed run replays exactly what the uninterrupted run saw.
    """
    generator = torch.Generator()
    generator.manual_seed(seed * 1000003 + epoch)
    return generator
