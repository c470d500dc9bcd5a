"""Refiner statistics, threshold fitting and the rule, on hand-made keypoint sequences."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from common.gesture.refiner import RefinerPair, parse_pairs, refine
from common.gesture.refiner_statistics import clip_statistic, max_x_range, size_change, tip_x_range
from common.gesture.refiner_thresholds import (
    fit_thresholds,
    load_thresholds,
    save_thresholds,
)
from common.metrics import multiclass_logloss


def _raised_finger(tip_xs: list[float]) -> list[np.ndarray]:
    """Frames of a hand whose topmost point (y = 10) is the tip at the given x."""
    frames = []
    for x in tip_xs:
        points = np.array([[500.0, 400.0], [520.0, 300.0], [x, 10.0], [700.0, 350.0]])
        frames.append(points)
    return frames


def _fist(max_xs: list[float]) -> list[np.ndarray]:
    return [np.array([[100.0, 200.0], [x, 250.0], [x - 40.0, 5.0]]) for x in max_xs]


def test_statistics_by_hand() -> None:
    frames = _raised_finger([600.0, 612.0, 590.0, 605.0])
    assert tip_x_range(frames) == pytest.approx(22.0)  # 612 - 590; the point at x=700 is lower
    assert max_x_range(frames) == pytest.approx(0.0)  # the largest x is always 700
    assert max_x_range(_fist([300.0, 340.0, 310.0])) == pytest.approx(40.0)
    assert tip_x_range(_fist([300.0, 340.0, 310.0])) == pytest.approx(40.0)  # topmost: x - 40
    # in reference-width pixels: a 480-wide image counts 4x
    assert clip_statistic("tip_x_range", frames, 480, 1920) == pytest.approx(88.0)


def _fist_hand(center: tuple[float, float], scale: float) -> np.ndarray:
    """A 21-point fist: a fixed irregular point pattern around ``center``, ``scale`` times its
    size (a fist pushed toward the camera looks bigger)."""
    angles = np.linspace(0.0, 2 * np.pi, 21, endpoint=False)
    radii = 30.0 + 10.0 * np.cos(3 * angles)
    pattern = np.stack([radii * np.cos(angles), radii * np.sin(angles)], axis=1)
    return np.asarray(center) + scale * pattern


def test_size_change_ignores_offsets_and_sees_a_push() -> None:
    # a still fist whose regressed position is off by up to 25 px from frame to frame (a stage-one
    # box that sits off): max_x_range counts the offsets, size_change does not
    offsets = [0.0, 25.0, -20.0, 10.0, 0.0]
    still = [_fist_hand((400.0 + dx, 300.0 - dx), 1.0) for dx in offsets]
    assert max_x_range(still) == pytest.approx(45.0)
    assert size_change(still) == pytest.approx(0.0, abs=1e-9)
    # a push: the fist grows to 1.6x and drifts a little; size_change = 100 * ln(1.6)
    pushed = [_fist_hand((400.0 + 10 * k, 300.0), 1.0 + 0.15 * k) for k in range(5)]
    assert size_change(pushed) == pytest.approx(100 * np.log(1.6))
    # no pixel unit: the image width does not rescale it (max_x_range is rescaled 4x)
    assert clip_statistic("size_change", pushed, 480, 1920) == pytest.approx(100 * np.log(1.6))
    assert clip_statistic("max_x_range", still, 480, 1920) == pytest.approx(180.0)
    # two hands far apart (42 points): each hand's size, not the span of both
    both = [np.concatenate([_fist_hand((200.0, 300.0), s), _fist_hand((900.0, 300.0), s)])
            for s in (1.0, 1.3, 1.6)]  # fmt: skip
    assert size_change(both) == pytest.approx(100 * np.log(1.6))
    # the stages find one hand per frame, sometimes the other one: same growth either way
    one_hand = [frame[:21] if k % 2 == 0 else frame[21:] for k, frame in enumerate(both)]
    assert size_change(one_hand) == pytest.approx(100 * np.log(1.6))


def test_median_frames_ignores_one_bad_frame() -> None:
    still = [_fist_hand((400.0, 300.0), 1.0) for _ in range(5)]
    still[2] = _fist_hand((400.0, 300.0), 2.0)  # one frame regressed at twice the size
    assert clip_statistic("size_change", still, 1920, 1920) == pytest.approx(100 * np.log(2.0))
    assert clip_statistic("size_change", still, 1920, 1920, median_frames=3) == pytest.approx(0.0)
    pushed = [_fist_hand((400.0, 300.0), 1.0 + 0.15 * k) for k in range(5)]
    filtered = clip_statistic("size_change", pushed, 1920, 1920, median_frames=3)
    assert filtered == pytest.approx(100 * np.log(1.6))  # a steady growth keeps its range


def test_refine_applies_the_fitted_median_filter(tmp_path: Path) -> None:
    pairs = parse_pairs([[146, 163, "size_change", "fist"]], [146, 163, 5])[0]
    fitted = fit_thresholds(pairs, [146], [{"size_change": 3.0}], 5.0, 3.0, median_frames=3)
    path = save_thresholds(tmp_path / "t.json", fitted, pairs, 1920, 5.0, 3.0)
    pairs, fitted, reference_width = load_thresholds(path)
    assert fitted["fist"].median_frames == 3 and fitted["fist"].threshold == pytest.approx(8.0)
    still = [_fist_hand((400.0, 300.0), 1.0) for _ in range(5)]
    still[2] = _fist_hand((400.0, 300.0), 2.0)
    probs = np.array([0.3, 0.6, 0.1])  # top: 163 (push); the clip's fist does not grow
    refined, decision = refine(probs, [146, 163, 5], still, 1920, pairs, fitted, reference_width)
    assert decision["chosen_id"] == 146 and decision["value"] == pytest.approx(0.0)
    assert refined.tolist() == [1.0, 0.0, 0.0]


def _pairs() -> list[RefinerPair]:
    return parse_pairs(
        [[0, 42, "tip_x_range", "index"], [10, 67, "tip_x_range", "index"],
         [146, 163, "max_x_range", "fist"], [100, 142, "tip_x_range", "index"]],
        class_ids=[0, 10, 42, 67, 146, 163, 5],
    )[0]  # fmt: skip


def test_parse_pairs_skips_absent_classes_and_rejects_bad_entries() -> None:
    pairs, notes = parse_pairs(
        [[0, 42, "tip_x_range", "index"], [100, 142, "tip_x_range", "index"]], [0, 42, 100]
    )
    assert pairs == [RefinerPair(0, 42, "tip_x_range", "index")]
    assert notes and "100/142" in notes[0]
    with pytest.raises(ValueError, match="statistic"):
        parse_pairs([[0, 42, "speed", "index"]], [0, 42])
    with pytest.raises(ValueError, match="two refiner pairs"):
        parse_pairs([[0, 42, "tip_x_range", "a"], [0, 67, "tip_x_range", "b"]], [0, 42, 67])
    with pytest.raises(ValueError, match="mixes statistics"):
        parse_pairs([[0, 42, "tip_x_range", "a"], [10, 67, "max_x_range", "a"]], [0, 10, 42, 67])


def test_fit_thresholds_pools_group_and_drops_outliers() -> None:
    pairs = _pairs()
    pose_ids = [0, 0, 10, 10, 42, 42, 146, 146, 146, 146, 146, 163]
    index_values = [10.0, 26.0, 12.0, 20.0, 9.5, 120.0]
    fist_values = [8.0, 12.0, 10.0, 218.0, 11.0, 95.0]
    stats = [{"tip_x_range": v, "max_x_range": 0.0} for v in index_values] + [
        {"tip_x_range": 0.0, "max_x_range": v} for v in fist_values
    ]
    fitted = fit_thresholds(pairs, pose_ids, stats, margin=5.0, outlier_iqr=3.0)
    # index: static values of 0 and 10 pooled (4 values, none beyond Q3 + 3 IQR): 26 + 5
    assert fitted["index"].threshold == pytest.approx(31.0)
    assert fitted["index"].moving_values == [9.5, 120.0]
    # fist: 218 lies beyond Q3 + 3 IQR of [8, 10, 11, 12, 218] (Q3 12, IQR 2) and is dropped
    assert fitted["fist"].excluded_static_values == [218.0]
    assert fitted["fist"].threshold == pytest.approx(17.0)
    # without the rule the outlier sets the threshold
    assert fit_thresholds(pairs, pose_ids, stats, 5.0, 0.0)["fist"].threshold == 223.0
    # no static clip of a group: no threshold for it
    assert "fist" not in fit_thresholds(pairs, pose_ids[:6], stats[:6], 5.0, 3.0)


def test_refine_onehot_and_pair_mass(tmp_path: Path) -> None:
    pairs = _pairs()
    class_ids = [0, 10, 42, 67, 146, 163, 5]
    fitted = fit_thresholds(
        pairs, [0, 146], [{"tip_x_range": 26.85, "max_x_range": 0.0},
                          {"tip_x_range": 0.0, "max_x_range": 29.34}], 5.0, 3.0,
    )  # fmt: skip
    path = save_thresholds(tmp_path / "refiner_thresholds.json", fitted, pairs, 1920, 5.0, 3.0)
    pairs, fitted, reference_width = load_thresholds(path)
    assert fitted["index"].threshold == pytest.approx(31.85)
    assert fitted["fist"].threshold == pytest.approx(34.34)

    probs = np.array([0.5, 0.05, 0.3, 0.05, 0.05, 0.0, 0.05])  # top: 0 (number one, left)
    wagging = _raised_finger([560.0, 640.0, 570.0, 650.0])  # range 90: a wag
    still = _raised_finger([600.0, 604.0, 598.0])  # range 6: number one
    refined, decision = refine(probs, class_ids, wagging, 1920, pairs, fitted, reference_width)
    assert refined.tolist() == [0, 0, 1, 0, 0, 0, 0]  # one-hot on 42, the wag
    assert decision["chosen_id"] == 42 and decision["value"] == pytest.approx(90.0)
    refined, _ = refine(probs, class_ids, still, 1920, pairs, fitted, reference_width)
    assert refined.tolist() == [1, 0, 0, 0, 0, 0, 0]
    soft, _ = refine(probs, class_ids, wagging, 1920, pairs, fitted, reference_width,
                     mode="pair_mass")  # fmt: skip
    np.testing.assert_allclose(soft, [0.0, 0.05, 0.8, 0.05, 0.05, 0.0, 0.05])
    # the same motion in a 4x smaller image (480 wide) is still 90 reference pixels: a wag
    small = [frame / 4.0 for frame in wagging]
    assert (
        refine(probs, class_ids, small, 480, pairs, fitted, reference_width)[1]["chosen_id"] == 42
    )
    # top class outside every pair: untouched
    other = np.array([0.1, 0.1, 0.1, 0.1, 0.1, 0.0, 0.5])
    untouched, decision = refine(other, class_ids, wagging, 1920, pairs, fitted, reference_width)
    assert decision is None and untouched.tolist() == other.tolist()
    with pytest.raises(ValueError, match="mode"):
        refine(probs, class_ids, still, 1920, pairs, fitted, reference_width, mode="soft")


def test_refiner_effect_on_logloss() -> None:
    """Three clips: the model is unsure between number one and wag; the rule settles them."""
    pairs = _pairs()
    class_ids = [0, 10, 42, 67, 146, 163, 5]
    fitted = fit_thresholds(pairs, [0, 146], [{"tip_x_range": 20.0, "max_x_range": 0.0},
                                              {"tip_x_range": 0.0, "max_x_range": 20.0}],
                            5.0, 3.0)  # fmt: skip
    probs = np.array([
        [0.55, 0.0, 0.45, 0.0, 0.0, 0.0, 0.0],  # truth 42 (wag), model says 0
        [0.40, 0.0, 0.60, 0.0, 0.0, 0.0, 0.0],  # truth 0, model says 42
        [0.0, 0.0, 0.0, 0.0, 0.7, 0.3, 0.0],  # truth 163 (push), model says fist
    ])  # fmt: skip
    labels = np.array([2, 0, 5])
    clips = [_raised_finger([560.0, 650.0]), _raised_finger([600.0, 603.0]),
             _fist([300.0, 380.0, 330.0])]  # fmt: skip
    refined = np.stack([refine(p, class_ids, c, 1920, pairs, fitted, 1920)[0]
                        for p, c in zip(probs, clips, strict=True)])  # fmt: skip
    before = multiclass_logloss(probs, labels)
    assert before == pytest.approx(-(np.log(0.45) + np.log(0.4) + np.log(0.3)) / 3)
    assert multiclass_logloss(refined, labels) == pytest.approx(-np.log(1 - 6e-15), abs=1e-12)
    # a wrong one-hot costs -log(1e-15) = 34.5 for that clip
    wrong = refined.copy()
    wrong[0] = np.eye(7)[0]
    assert multiclass_logloss(wrong, labels) == pytest.approx(34.539 / 3, abs=1e-2)


def test_score_clips_reports_each_pair_with_and_without_the_rule() -> None:
    from common.gesture.scoring import score_clips

    pairs = _pairs()
    class_ids = [0, 10, 42, 67, 146, 163, 5]
    fitted = fit_thresholds(pairs, [0, 146], [{"tip_x_range": 20.0, "max_x_range": 0.0},
                                              {"tip_x_range": 0.0, "max_x_range": 20.0}],
                            5.0, 3.0)  # fmt: skip
    probs = np.array([
        [0.55, 0.0, 0.45, 0.0, 0.0, 0.0, 0.0],  # truth 42 (wag), model says 0
        [0.0, 0.0, 0.0, 0.0, 0.7, 0.3, 0.0],  # truth 163 (push), model says fist
        [0.0, 0.0, 0.0, 0.0, 0.0, 0.2, 0.8],  # truth 5, outside every pair
    ])  # fmt: skip
    labels = np.array([2, 5, 6])
    clips = [_raised_finger([560.0, 650.0]), _fist([300.0, 380.0, 330.0]),
             _fist([300.0, 301.0])]  # fmt: skip
    scores = score_clips(probs, labels, class_ids, clips, [1920] * 3, pairs, fitted, 1920.0,
                         "pair_mass")  # fmt: skip
    assert scores["logloss"] == pytest.approx(-(np.log(0.45) + np.log(0.3) + np.log(0.8)) / 3)
    assert scores["logloss_refined"] == pytest.approx(-(np.log(0.8)) / 3, abs=1e-12)
    assert scores["accuracy"] == pytest.approx(1 / 3) and scores["accuracy_refined"] == 1.0
    index, fist = scores["pairs"]["index"], scores["pairs"]["fist"]
    assert index["clips"] == 1 and index["logloss"] == pytest.approx(-np.log(0.45))
    assert index["logloss_refined"] == pytest.approx(0.0, abs=1e-12)
    assert (index["accuracy"], index["accuracy_refined"]) == (0.0, 1.0)
    assert fist["logloss"] == pytest.approx(-np.log(0.3)) and fist["threshold"] == 25.0
    # one-hot gives the same here: both pair clips become certain and right
    assert scores["logloss_refined_by_mode"]["onehot"] == pytest.approx(-np.log(0.8) / 3)


def _thresholds_file(tmp_path: Path, group: dict, pairs: list | None = None) -> Path:
    """A thresholds file written from scratch (not by save_thresholds)."""
    content = {
        "reference_width": 1920,
        "margin": 5.0,
        "outlier_iqr": 0.0,
        "pairs": pairs
        if pairs is not None
        else [{"static_id": 146, "moving_id": 163, "statistic": "size_change", "group": "fist"}],
        "groups": {"fist": group},
    }
    path = tmp_path / "refiner_thresholds.json"
    path.write_text(json.dumps(content))
    return path


_GOOD_GROUP = {
    "group": "fist",
    "statistic": "size_change",
    "threshold": 12.0,
    "static_max": 7.0,
    "static_values": [3.0, 7.0],
    "excluded_static_values": [],
    "moving_values": [20.0],
    "confidence": 0.75,
}


def test_a_handwritten_thresholds_file_is_read(tmp_path: Path) -> None:
    pairs, fitted, reference_width = load_thresholds(_thresholds_file(tmp_path, _GOOD_GROUP))
    assert [p.group for p in pairs] == ["fist"] and reference_width == 1920.0
    assert fitted["fist"].confidence == 0.75 and fitted["fist"].median_frames == 1


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"confidence": 1.5}, "confidence"),
        ({"confidence": -0.1}, "confidence"),
        ({"threshold": float("nan")}, "threshold"),
        ({"threshold": float("inf")}, "threshold"),
        ({"threshold": "12"}, "threshold"),
        ({"chance_p": 2.0}, "chance_p"),
        ({"median_frames": 0}, "median_frames"),
        ({"confidence": None}, "confidence"),
    ],
)
def test_thresholds_file_with_a_bad_field_is_refused(
    tmp_path: Path, change: dict, field: str
) -> None:
    from common.gesture.data import GestureDataError

    path = _thresholds_file(tmp_path, {**_GOOD_GROUP, **change})
    with pytest.raises(GestureDataError, match=rf"{path}.*group 'fist': field '{field}'"):
        load_thresholds(path)


def test_thresholds_file_with_a_missing_field_or_unknown_pair_is_refused(tmp_path: Path) -> None:
    missing = {k: v for k, v in _GOOD_GROUP.items() if k != "threshold"}
    with pytest.raises(ValueError, match="group 'fist': field 'threshold' is missing"):
        load_thresholds(_thresholds_file(tmp_path, missing))
    other = [{"static_id": 0, "moving_id": 42, "statistic": "tip_x_range", "group": "index"}]
    with pytest.raises(ValueError, match="group 'fist': no refiner pair belongs to it"):
        load_thresholds(_thresholds_file(tmp_path, _GOOD_GROUP, other))
    unknown_statistic = [{**other[0], "statistic": "speed", "group": "fist"}]
    with pytest.raises(ValueError, match="field 'statistic' must be one of"):
        load_thresholds(_thresholds_file(tmp_path, _GOOD_GROUP, unknown_statistic))
