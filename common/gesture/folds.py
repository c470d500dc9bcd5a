"""Cross-validation folds of the training frames."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold


def assign_folds(
    labels: Sequence[int], groups: Sequence[str], num_folds: int, seed: int, group_split: bool
) -> np.ndarray:
    """Fold number of every frame: StratifiedKFold(shuffle) per frame, or by group."""
    labels = np.asarray(labels)
    folds = np.full(len(labels), -1)
    if group_split:
        splitter = StratifiedGroupKFold(n_splits=num_folds, shuffle=True, random_state=seed)
        splits = splitter.split(np.zeros(len(labels)), labels, groups=np.asarray(groups))
    else:
        splitter = StratifiedKFold(n_splits=num_folds, shuffle=True, random_state=seed)
        splits = splitter.split(np.zeros(len(labels)), labels)
    for fold, (_, val_index) in enumerate(splits):
        folds[val_index] = fold
    return folds
