"""The folds' mean of the gesture metrics when a fold could not fit a refiner pair."""

import pytest

from common.gesture.scoring import mean_metrics


def _fold(accuracy: float, threshold: float | None, confidence: float | None) -> dict:
    return {
        "clips": 4,
        "accuracy": accuracy,
        "pairs": {
            "fist": {
                "clips": 2,
                "accuracy_refined": accuracy,
                "threshold": threshold,
                "confidence": confidence,
            }
        },
    }


def test_a_pair_without_threshold_in_one_fold_is_averaged_over_the_folds_that_refined_it() -> None:
    mean = mean_metrics([_fold(0.5, 10.0, 0.75), _fold(1.0, None, None)])
    assert mean["accuracy"] == pytest.approx(0.75)
    fist = mean["pairs"]["fist"]
    assert fist["accuracy_refined"] == pytest.approx(0.75)
    assert fist["threshold"] == pytest.approx(10.0) and fist["threshold_folds"] == 1
    assert fist["confidence"] == pytest.approx(0.75) and fist["confidence_folds"] == 1
    # the same when the first fold is the one without
    assert mean_metrics([_fold(1.0, None, None), _fold(0.5, 8.0, 0.5)])["pairs"]["fist"][
        "threshold"
    ] == pytest.approx(8.0)


def test_a_pair_without_threshold_in_every_fold_gets_no_mean_threshold() -> None:
    fist = mean_metrics([_fold(0.5, None, None), _fold(1.0, None, None)])["pairs"]["fist"]
    assert "threshold" not in fist and "confidence" not in fist
    assert fist["clips"] == 2.0


def test_folds_with_every_threshold_are_averaged_as_before() -> None:
    fist = mean_metrics([_fold(0.5, 10.0, 0.75), _fold(1.0, 14.0, 0.25)])["pairs"]["fist"]
    assert fist["threshold"] == pytest.approx(12.0) and "threshold_folds" not in fist
