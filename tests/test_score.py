"""Metrics against hand computations, and tools/score.py's output and refusals."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from common.keypoints import MOTION_KEYPOINTS
from common.metrics import (
    box_iou,
    corner_error,
    multiclass_logloss,
    per_image_rmse,
    per_keypoint_rmse,
    rmse,
)
from common.motion_data import write_keypoint_csv

ROOT = Path(__file__).resolve().parents[1]
NAMES = [f"649-2-4-32-Z148_{camera}-0000001.jpg" for camera in "ABC"]


def _load_score_module():
    sys.path.insert(0, str(ROOT / "tools"))
    try:
        import score
    finally:
        sys.path.remove(str(ROOT / "tools"))
    return score


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "tools/score.py", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


# --------------------------------------------------------------------------- metrics


def test_rmse_family_by_hand() -> None:
    truth = np.zeros((2, 3, 2))
    pred = truth.copy()
    pred[0, 0] = (3.0, 4.0)  # squared errors 9 and 16
    pred[1, 2, 1] = 2.0  # squared error 4
    assert rmse(pred, truth) == pytest.approx(math.sqrt(29 / 12))
    np.testing.assert_allclose(
        per_keypoint_rmse(pred, truth), [math.sqrt(25 / 4), 0.0, math.sqrt(4 / 4)]
    )
    np.testing.assert_allclose(per_image_rmse(pred, truth), [math.sqrt(25 / 6), math.sqrt(4 / 6)])
    with pytest.raises(ValueError, match="shape"):
        rmse(pred[:1], truth)


def test_logloss_by_hand() -> None:
    probs = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8], [0.5, 0.5, 0.0]])
    labels = np.array([0, 2, 2])
    # Row 3's true class has p = 0: clipped to 1e-15, and the row renormalised.
    third = 1e-15 / (1.0 + 1e-15)
    expected = -(math.log(0.7) + math.log(0.8) + math.log(third)) / 3
    assert multiclass_logloss(probs, labels) == pytest.approx(expected, rel=1e-12)
    # Rows that do not sum to one are renormalised: [2, 2] is [0.5, 0.5].
    assert multiclass_logloss(np.array([[2.0, 2.0]]), np.array([1])) == pytest.approx(math.log(2))
    with pytest.raises(ValueError, match="labels must lie"):
        multiclass_logloss(probs, np.array([0, 1, 3]))


def test_box_iou_and_corner_error_by_hand() -> None:
    a = np.array([[0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 10, 10], [5, 5, 0, 0]], float)
    b = np.array([[0, 0, 10, 10], [5, 0, 10, 10], [20, 20, 5, 5], [5, 5, 0, 0]], float)
    # identical; half overlap: 50 / (100 + 100 - 50); disjoint; two empty boxes
    np.testing.assert_allclose(box_iou(a, b), [1.0, 50 / 150, 0.0, 0.0])
    np.testing.assert_allclose(box_iou(b, a), box_iou(a, b))
    c = np.array([[3, 4, 10, 10]], float)  # both corners moved by (3, 4): 5 px
    np.testing.assert_allclose(corner_error(a[:1], c), [5.0])
    d = np.array([[0, 0, 13, 14]], float)  # top-left 0, bottom-right 5: mean 2.5
    np.testing.assert_allclose(corner_error(a[:1], d), [2.5])


# --------------------------------------------------------------------------- keypoints


@pytest.fixture
def truth_csv(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    keypoints = rng.uniform(0, 1000, (len(NAMES), len(MOTION_KEYPOINTS), 2))
    path = tmp_path / "test_df.csv"
    write_keypoint_csv(path, NAMES, keypoints)
    return path


def _shifted_prediction(truth_csv: Path, path: Path) -> pd.DataFrame:
    """x + 3 on every keypoint of the first image, rows in reverse order."""
    table = pd.read_csv(truth_csv)
    table.loc[0, [c for c in table.columns if c.endswith("_x")]] += 3.0
    table = table.iloc[::-1]
    table.to_csv(path, index=False)
    return table


@pytest.mark.slow
def test_score_prints_table_worst_images_and_rmse_last(truth_csv: Path, tmp_path: Path) -> None:
    pred = tmp_path / "result.csv"
    _shifted_prediction(truth_csv, pred)
    result = _run("--pred", str(pred), "--truth", str(truth_csv))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    # 24 x errors of 3 px over 3 images x 48 values: sqrt(24 * 9 / 144)
    assert lines[-1] == f"rmse: {math.sqrt(24 * 9 / 144):.6f}"
    nose = next(line for line in lines if line.strip().startswith("nose "))
    assert float(nose.split()[-1]) == pytest.approx(math.sqrt(9 / 6), abs=1e-4)
    worst = lines.index(next(line for line in lines if line.startswith("worst")))
    assert lines[worst + 1].split()[0] == NAMES[0]
    assert float(lines[worst + 1].split()[1]) == pytest.approx(math.sqrt(24 * 9 / 48), abs=1e-4)


def test_score_keypoints_is_importable(truth_csv: Path, tmp_path: Path) -> None:
    score = _load_score_module()
    pred = tmp_path / "result.csv"
    _shifted_prediction(truth_csv, pred)
    result = score.score_keypoints(pred, truth_csv)
    assert result["rmse"] == pytest.approx(math.sqrt(1.5))
    assert result["per_image"][NAMES[1]] == 0.0
    assert result["worst"][0][0] == NAMES[0]
    assert result["images"] == 3 and len(result["per_keypoint"]) == 24
    perfect = score.score_keypoints(truth_csv, truth_csv)
    assert perfect["rmse"] == 0.0


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda t: t.drop(columns=["neck_x"]), "missing columns 'neck_x'"),
        (lambda t: t.iloc[:2], f"1 images of the truth have no row: '{NAMES[2]}'"),
        (
            lambda t: pd.concat([t, t.iloc[:1].assign(image="x.jpg")]),
            "rows name images not in the truth: 'x.jpg'",
        ),
        (lambda t: pd.concat([t, t.iloc[:1]]), "duplicated images"),
        (lambda t: t.assign(nose_y=[1.0, np.nan, 2.0]), "row 2 (image"),
        (lambda t: t.assign(left_hip_x=["1", "2", "oops"]), "column 'left_hip_x'"),
    ],
)
@pytest.mark.slow
def test_score_refuses_bad_predictions(truth_csv: Path, tmp_path: Path, change, expected) -> None:
    pred = tmp_path / "bad.csv"
    change(pd.read_csv(truth_csv)).to_csv(pred, index=False)
    result = _run("--pred", str(pred), "--truth", str(truth_csv))
    assert result.returncode == 2
    assert expected in result.stderr and "bad.csv" in result.stderr
    assert "rmse:" not in result.stdout


@pytest.mark.slow
def test_score_refuses_a_missing_file(truth_csv: Path, tmp_path: Path) -> None:
    result = _run("--pred", str(tmp_path / "none.csv"), "--truth", str(truth_csv))
    assert result.returncode == 2 and "not found" in result.stderr


# --------------------------------------------------------------------------- gestures


def _gesture_files(tmp_path: Path) -> tuple[Path, Path]:
    truth = tmp_path / "test_answer.csv"
    pd.DataFrame({"Image_Path": ["./test\\649", "./test\\650"], "pose_id": [10, 0]}).to_csv(
        truth, index=False
    )
    pred = tmp_path / "submission.csv"
    pd.DataFrame(
        {
            "Image_Path": ["./test\\650", "./test\\649"],  # rows in another order
            "Label_0": [0.6, 0.3],
            "Label_2": [0.4, 0.2],
            "Label_10": [0.0, 0.5],
        }
    ).to_csv(pred, index=False)
    return pred, truth


@pytest.mark.slow
def test_gesture_logloss_and_accuracy(tmp_path: Path) -> None:
    pred, truth = _gesture_files(tmp_path)
    result = _run("--pred", str(pred), "--truth", str(truth))
    assert result.returncode == 0, result.stderr
    expected = -(math.log(0.5) + math.log(0.6)) / 2
    lines = result.stdout.strip().splitlines()
    assert lines[-1] == f"logloss: {expected:.6f}"
    assert "accuracy: 1.000000" in result.stdout
    score = _load_score_module()
    assert score.score_gesture(pred, truth)["logloss"] == pytest.approx(expected)


@pytest.mark.slow
def test_gesture_refusals(tmp_path: Path) -> None:
    pred, truth = _gesture_files(tmp_path)
    table = pd.read_csv(pred)
    table.drop(columns=["Label_10"]).to_csv(pred, index=False)
    result = _run("--pred", str(pred), "--truth", str(truth))
    assert result.returncode == 2 and "no probability column for true pose ids [10]" in (
        result.stderr
    )
    table.iloc[:1].to_csv(pred, index=False)
    result = _run("--pred", str(pred), "--truth", str(truth))
    assert result.returncode == 2 and "1 missing rows" in result.stderr
    table.assign(Label_2=[0.1, np.nan]).to_csv(pred, index=False)
    result = _run("--pred", str(pred), "--truth", str(truth))
    assert result.returncode == 2 and "column 'Label_2'" in result.stderr
    table.rename(columns={"Label_2": "score"}).to_csv(pred, index=False)
    result = _run("--pred", str(pred), "--truth", str(truth))
    assert result.returncode == 2 and "'score'" in result.stderr


def test_mean_pose_prediction_recovers_a_rigid_pose_in_its_boxes():
    import numpy as np

    from common.metrics import mean_pose_prediction

    unit = np.array([[0.0, 0.0], [1.0, 0.5], [0.5, 1.0]])
    offsets = np.array([[10.0, 20.0], [200.0, 50.0]])
    sizes = np.array([[40.0, 80.0], [20.0, 10.0]])
    train = offsets[:, None] + unit[None] * sizes[:, None]
    boxes = np.array([[5.0, 5.0, 100.0, 50.0]])
    pred = mean_pose_prediction(train, boxes)
    assert np.allclose(pred[0], [[5, 5], [105, 30], [55, 55]])
