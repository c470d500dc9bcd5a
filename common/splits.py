"""Train / validation / test splits with the reference semantics, optionally by group."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.model_selection import GroupShuffleSplit, train_test_split

HOLDOUT_RATIO = 0.1  # the reference's --test_option True hold-out


def _split(indices: np.ndarray, ratio: float, seed: int, groups: np.ndarray | None):
    if groups is None:
        return train_test_split(indices, test_size=ratio, random_state=seed)
    splitter = GroupShuffleSplit(n_splits=1, test_size=ratio, random_state=seed)
    keep, held = next(splitter.split(indices, groups=groups[indices]))
    return indices[keep], indices[held]


def make_splits(
    num_samples: int,
    test_option: bool,
    val_ratio: float,
    seed: int,
    groups: Sequence[str] | None = None,
) -> dict[str, np.ndarray]:
    """Indices for ``train``, ``val`` and (with ``test_option``) ``test``.

    As the reference: with ``test_option`` 10% is held out first, then ``val_ratio`` of the rest
    is validation; both with ``random_state=seed``. With ``groups`` (e.g. subject ids) both
    splits keep each group on one side, so frames of one sequence never straddle them.
    """
    if num_samples < 3:
        raise ValueError(f"need at least 3 samples to split, got {num_samples}")
    group_array = None if groups is None else np.asarray(groups)
    if group_array is not None and len(group_array) != num_samples:
        raise ValueError(f"{len(group_array)} groups for {num_samples} samples")
    indices = np.arange(num_samples)
    splits: dict[str, np.ndarray] = {}
    if test_option:
        indices, splits["test"] = _split(indices, HOLDOUT_RATIO, seed, group_array)
    splits["train"], splits["val"] = _split(indices, val_ratio, seed, group_array)
    return {name: np.sort(idx) for name, idx in splits.items()}
