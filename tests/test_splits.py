"""Split semantics: the reference's two-step split, and group-aware splits."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.model_selection import train_test_split

from common.splits import make_splits
from common.stage_data import split_groups


def test_single_split_matches_reference_train_test_split():
    splits = make_splits(4091, test_option=False, val_ratio=0.2, seed=42)
    assert set(splits) == {"train", "val"}
    assert (len(splits["train"]), len(splits["val"])) == (3272, 819)
    _, val_ref = train_test_split(np.arange(4091), test_size=0.2, random_state=42)
    assert np.array_equal(splits["val"], np.sort(val_ref))


def test_test_option_holds_out_ten_percent_first():
    splits = make_splits(4091, test_option=True, val_ratio=0.3, seed=42)
    rest, test_ref = train_test_split(np.arange(4091), test_size=0.1, random_state=42)
    _, val_ref = train_test_split(rest, test_size=0.3, random_state=42)
    assert np.array_equal(splits["test"], np.sort(test_ref))
    assert np.array_equal(splits["val"], np.sort(val_ref))
    everything = np.concatenate([splits["train"], splits["val"], splits["test"]])
    assert np.array_equal(np.sort(everything), np.arange(4091))


def test_group_split_keeps_each_subject_on_one_side():
    names = [f"{s:03d}-1-1-01-Z17_{cam}-{f:07d}.jpg" for s in range(1, 21)
             for cam in "ABCDE" for f in (1, 3, 5)]  # fmt: skip
    groups = split_groups(names)
    splits = make_splits(len(names), test_option=True, val_ratio=0.2, seed=42, groups=groups)
    sides = [{groups[i] for i in splits[k]} for k in ("train", "val", "test")]
    assert sides[0].isdisjoint(sides[1]) and sides[0].isdisjoint(sides[2])
    assert sides[1].isdisjoint(sides[2])
    assert all(sides)


def test_split_groups_of_gesture_frames_are_folders():
    assert split_groups(["12/0.png", "12/1.png", "7/0.png"]) == ["12", "12", "7"]


def test_too_few_samples_is_an_error():
    with pytest.raises(ValueError, match="at least 3"):
        make_splits(2, test_option=False, val_ratio=0.5, seed=0)
