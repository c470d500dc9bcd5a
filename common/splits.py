"""Train / validation / test splits with the reference semantics, optionally by group."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from common.errors import ConfigError

HOLDOUT_RATIO = 0.1  # the reference's --test_option True hold-out


def _split(
    indices: np.ndarray, ratio: float, seed: int, groups: np.ndarray | None, held_name: str
):
    # scikit-learn takes about 1.4 s to import: only training runs pay it.
    from sklearn.model_selection import GroupShuffleSplit, train_test_split

    units = len(indices) if groups is None else len(np.unique(groups[indices]))
    what = "images" if groups is None else "groups (subjects)"
    if math.ceil(ratio * units) >= units:  # scikit-learn's own rounding of the held-out share
        raise ConfigError(
            f"cannot split {units} {what}: a {held_name} share of {ratio} leaves no training "
            f"{what}; add images to the training set or lower the share"
        )
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
        raise ConfigError(
            f"need at least 3 samples to split into training and validation, got {num_samples}: "
            "add images to the training set"
        )
    if not 0.0 < val_ratio < 1.0:
        raise ConfigError(
            f"TEST_RATIO (the validation share) must lie strictly between 0 and 1, got "
            f"{val_ratio}; set e.g. TEST_RATIO 0.1"
        )
    group_array = None if groups is None else np.asarray(groups)
    if group_array is not None and len(group_array) != num_samples:
        raise ValueError(f"{len(group_array)} groups for {num_samples} samples")
    indices = np.arange(num_samples)
    splits: dict[str, np.ndarray] = {}
    if test_option:
        indices, splits["test"] = _split(
            indices, HOLDOUT_RATIO, seed, group_array, "hold-out (--test_option)"
        )
    splits["train"], splits["val"] = _split(
        indices, val_ratio, seed, group_array, "validation (TEST_RATIO)"
    )
    return {name: np.sort(idx) for name, idx in splits.items()}
