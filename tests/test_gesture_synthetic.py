"""The synthetic gesture set: layout the readers accept, determinism, separable pairs."""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from common.gesture.data import read_clips, read_pose_table
from common.gesture.poses import build_flip_pairs
from common.gesture.refiner_statistics import max_x_range, tip_x_range
from common.gesture.submission import read_sample_submission
from common.synthetic.gesture import add_cli_arguments, generate_gesture_dataset, run_from_args
from common.synthetic.hands import POSES, hand_shape_points, render_clip


def _digest(root: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        if path.is_file():
            digest.update(path.relative_to(root).as_posix().encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


def test_layout_is_readable_and_deterministic(tmp_path: Path) -> None:
    parser = argparse.ArgumentParser()
    add_cli_arguments(parser)
    args = parser.parse_args(["--out", str(tmp_path / "a"), "--train-clips", "13",
                              "--test-clips", "4", "--frames", "3", "--width", "64",
                              "--height", "48", "--seed", "3"])  # fmt: skip
    summary = run_from_args(args)
    assert summary["classes"] == len(POSES) == 13
    root = tmp_path / "a"
    table = read_pose_table(root / "hand_gesture_pose.csv")
    clips = read_clips(root / "train", "train", table["pose_id"].tolist())
    assert [c.folder for c in clips] == [str(i) for i in range(13)]
    assert sorted(c.pose_id for c in clips) == sorted(p.pose_id for p in POSES)  # one each
    assert all(c.num_frames == 3 for c in clips)
    both = next(c for c in clips if c.pose_id == 171)
    assert both.keypoints[0].shape == (42, 2)
    layout = read_sample_submission(root / "sample_submission.csv")
    assert layout.folders == ("13", "14", "15", "16")
    assert list(layout.class_ids) == table["pose_id"].tolist()
    answers = pd.read_csv(root / "test_answer.csv")
    assert answers.columns.tolist() == ["Image_Path", "pose_id"]
    assert answers["Image_Path"].tolist() == list(layout.image_paths)
    test = read_clips(root / "test", "test")
    assert all(c.keypoints is not None and c.pose_id is None for c in test)  # no label leak
    pairs, notes = build_flip_pairs(table)
    assert pairs == [(0, 10), (2, 12), (42, 67), (105, 115), (122, 146)] and notes == []

    generate_gesture_dataset(tmp_path / "b", 13, 4, 3, 64, 48, seed=3)
    assert _digest(root) == _digest(tmp_path / "b")
    generate_gesture_dataset(tmp_path / "c", 13, 4, 3, 64, 48, seed=4, test_json=False)
    assert _digest(root) != _digest(tmp_path / "c")
    assert not list((tmp_path / "c" / "test").rglob("*.json"))
    with pytest.raises(FileExistsError, match="not empty"):
        generate_gesture_dataset(root, 13, 4, 3, 64, 48, seed=3)


def test_thumb_side_and_shapes() -> None:
    one = hand_shape_points("one", thumb_sign=1.0)
    assert np.argmin(one[:, 1]) == 8  # the index tip is the topmost point
    assert one[4, 0] > 0 and hand_shape_points("one", -1.0)[4, 0] < 0
    palm = hand_shape_points("palm", 1.0)
    assert (palm[[8, 12, 16, 20], 1] < -1.3).all()  # all four fingertips up
    fist = hand_shape_points("fist", 1.0)
    assert (fist[[8, 12, 16, 20], 1] > -1.0).all()  # fingertips folded onto the palm


@pytest.mark.slow
def test_confusable_pairs_differ_in_motion_only() -> None:
    """Keypoint statistics (in 1920-wide pixels) of the static and moving classes separate."""
    by_id = {pose.pose_id: pose for pose in POSES}
    scale = 1920 / 320

    def stats(pose_id: int, statistic, seed: int) -> list[float]:
        rng = np.random.default_rng(seed)
        clips = [render_clip(by_id[pose_id], 8, 320, 180, rng)[1] for _ in range(8)]
        return [statistic(keypoints) * scale for keypoints in clips]

    still, wag = stats(0, tip_x_range, 0), stats(42, tip_x_range, 1)
    assert max(still) < 30.0 and np.median(wag) > 60.0
    fist, push = stats(146, max_x_range, 2), stats(163, max_x_range, 3)
    assert max(fist) < 30.0 and min(push) > 30.0
