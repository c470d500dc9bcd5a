"""Hand keypoints from the two HRNet stages feeding the gesture classifier, images to submission."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from common.config import load_config
from common.gesture.data import read_clips
from common.gesture.hand_keypoints import TEST_TABLE_NAME, TRAIN_LIST_NAME, TRAIN_TABLE_NAME, main
from common.keypoints import HAND_KEYPOINTS, keypoint_set
from common.synthetic.gesture import generate_gesture_dataset
from tests.conftest import load_tool

ROOT = Path(__file__).resolve().parents[1]
HAND_CONFIGS = {
    "tiny_cpu_hand_bbox": ROOT / "experiments" / "bbox" / "tiny_cpu_hand_bbox.yaml",
    "tiny_cpu_hand_keypoint": ROOT / "experiments" / "keypoint" / "tiny_cpu_hand_keypoint.yaml",
    "w48_384x288_hand_bbox": ROOT / "experiments" / "bbox" / "w48_384x288_hand_bbox.yaml",
    "w48_384x288_hand": ROOT / "experiments" / "keypoint" / "w48_384x288_hand.yaml",
}


def test_hand_keypoint_set_splits_fingers_from_palm() -> None:
    hand = keypoint_set(21)
    assert hand["names"] == HAND_KEYPOINTS and hand["flip_pairs"] == ()
    assert sorted(hand["upper_body"] + hand["lower_body"]) == list(range(21))
    assert set(hand["lower_body"]) == {0, 1, 5, 9, 13, 17}  # wrist and finger bases
    assert 8 in hand["upper_body"] and 20 in hand["upper_body"]  # index and pinky tips


@pytest.mark.parametrize("name", sorted(HAND_CONFIGS))
def test_hand_configs_read_the_hand_tables(name: str) -> None:
    cfg = load_config(HAND_CONFIGS[name])
    assert cfg.MODEL.NUM_JOINTS == 21
    assert cfg.TASK == ("bbox" if "bbox" in name else "keypoint")
    assert (cfg.DATASET.TRAIN_CSV, cfg.DATASET.TEST_CSV) == (TRAIN_TABLE_NAME, TEST_TABLE_NAME)
    assert (cfg.DATASET.TRAIN_IMAGE_DIR, cfg.DATASET.TEST_IMAGE_DIR) == ("train", "test")
    assert cfg.DATASET.GROUP_SPLIT  # frames of one clip stay in one split


def test_hand_table_command(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    root = tmp_path / "gesture"
    generate_gesture_dataset(root, 13, 2, frames=2, width=64, height=48)
    for table in (TRAIN_TABLE_NAME, TEST_TABLE_NAME, TRAIN_LIST_NAME):
        (root / table).unlink()
    assert main(["--root", str(root)]) == 0
    assert TRAIN_TABLE_NAME in capsys.readouterr().out
    train = pd.read_csv(root / TRAIN_TABLE_NAME)
    one_hand = [c for c in read_clips(root / "train", "train") if len(c.keypoints[0]) == 21]
    assert len(train) == 2 * len(one_hand) == 2 * 11  # 171 and 191 are two-hand classes
    assert len(pd.read_csv(root / TEST_TABLE_NAME)) == 4
    assert len(pd.read_csv(root / TRAIN_LIST_NAME)) == 2 * 13


@pytest.mark.slow
def test_images_to_submission_on_regressed_keypoints(tmp_path: Path) -> None:
    """Test clips without keypoint JSON: boxes, then 21 keypoints, then the classifier."""
    report = load_tool("gesture_report").main([
        "--work", str(tmp_path / "work"), "--train-clips", "26", "--test-clips", "5",
        "--frames", "3", "--width", "96", "--height", "64", "--no-test-json",
        "--bbox-epochs", "1", "--keypoint-epochs", "1", "--gesture-epochs", "2",
        "--gesture-image-size", "32", "--folds", "2",
    ])  # fmt: skip
    data = tmp_path / "work" / "data"
    assert all(c.keypoints is None for c in read_clips(data / "test", "test"))
    assert (data / "annotations" / "test_annotation.pkl").is_file()
    result = pd.read_csv(next((tmp_path / "work" / "output").rglob("result.csv")))
    assert len(result) == 5 * 3 and result.shape[1] == 1 + 42

    submission = pd.read_csv(report["submission"])
    sample = pd.read_csv(data / "sample_submission.csv")
    assert submission.columns.tolist() == sample.columns.tolist()
    assert submission["Image_Path"].tolist() == sample["Image_Path"].tolist()
    probs = submission.iloc[:, 1:].to_numpy()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-6)

    answers = pd.read_csv(data / "test_answer.csv")
    columns = [sample.columns.get_loc(f"Label_{p}") for p in answers["pose_id"]]
    true_probs = submission.to_numpy()[np.arange(len(answers)), columns].astype(float)
    expected = -np.mean(np.log(np.clip(true_probs, 1e-15, 1 - 1e-15)))
    assert report["score_tool"] == f"logloss: {expected:.6f}"
    assert report["test_regressed"]["clips"] == 5 and "test_json" not in report
    assert math.isclose(report["test_regressed"]["logloss_refined"], expected, rel_tol=1e-6)
    # two folds, both trained: every training clip is scored once, with its fold's thresholds
    assert report["folds"] == 2 and report["validation"]["clips"] == 26
    assert report["validation"]["stage_keypoints"]["clips"] == 26
    groups = {"index", "fist", "fist_both"}  # the report keeps one- and two-hand fists apart
    assert set(report["thresholds"]) == set(report["thresholds_stages"]) == groups
    assert set(report["validation"]["stage_keypoints"]["pairs"]) <= groups

    # --rescore: the refiner refitted with other settings on the same run, nothing retrained
    model = next((tmp_path / "work" / "output").rglob("best_model.pth"))
    trained_at = model.stat().st_mtime_ns
    rescored = load_tool("gesture_report").main([
        "--work", str(tmp_path / "work"), "--rescore", "--report", "rescored.json",
        "--gesture-epochs", "2", "--gesture-image-size", "32",
        "--gesture-opts", "GESTURE.REFINER.MODE", "pair_mass", "--cam", "2",
    ])  # fmt: skip
    assert model.stat().st_mtime_ns == trained_at
    assert "cam" in report and not report["cam"]  # no --cam, no pictures
    assert [Path(p).parent for p in rescored["cam"]] == [tmp_path / "work" / "cam"] * 2
    assert all(Path(p).is_file() for p in rescored["cam"])
    assert (tmp_path / "work" / "rescored.json").is_file() and rescored["data"] == report["data"]
    assert rescored["refiner"]["mode"] == "pair_mass" and rescored["folds"] == 2
    before, after = report["validation"], rescored["validation"]
    assert after["logloss"] == before["logloss"]
    assert after["logloss_refined"] == before["logloss_refined_by_mode"]["pair_mass"]
