"""Gesture folder, JSON and CSV readers: what they accept and how they report broken input."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from common.gesture.data import GestureDataError, list_frames, read_clips, read_pose_table
from common.gesture.hand_keypoints import export_hand_tables, read_stage_keypoints
from common.gesture.submission import (
    folder_from_image_path,
    read_sample_submission,
    read_test_answers,
    submission_image_path,
    write_submission,
)
from common.keypoints import HAND_KEYPOINTS, coordinate_columns


def _hand(offset: float) -> list[list[float]]:
    return [[offset + i, 100.0 + 2 * i, 0.01] for i in range(21)]


def _make_clip(root: Path, split: str, folder: str, frames: int, content: dict | None) -> Path:
    clip = root / split / folder
    clip.mkdir(parents=True)
    for n in range(frames):
        cv2.imwrite(str(clip / f"{n}.png"), np.full((24, 32, 3), 40 * n % 255, np.uint8))
    if content is not None:
        (clip / f"{folder}.json").write_text(json.dumps(content, ensure_ascii=False))
    return clip


def _content(pose_id: int, frames: int, points: int = 21) -> dict:
    def data() -> list[list[float]]:
        return _hand(10.0) if points == 21 else _hand(10.0) + _hand(200.0)

    return {
        "action": [pose_id, "숫자 1"],
        "actor": "A001",
        "image": {"width": 32, "height": 24},
        "annotations": [{"data": data(), "image_id": n} for n in range(frames)],
    }


def test_read_clips_natural_order_and_keypoints(tmp_path: Path) -> None:
    for folder in ("10", "2", "1"):
        _make_clip(tmp_path, "train", folder, 12, _content(0, 12, 42 if folder == "2" else 21))
    clips = read_clips(tmp_path / "train", "train", known_pose_ids=[0, 10])
    assert [c.folder for c in clips] == ["1", "2", "10"]
    clip = clips[0]
    assert clip.pose_id == 0 and clip.actor == "A001" and clip.num_frames == 12
    # frames sort by number: 10.png comes after 9.png, not after 1.png
    assert [p.name for p in clip.frame_paths][:3] == ["0.png", "1.png", "2.png"]
    assert clip.frame_paths[10].name == "10.png"
    assert clip.keypoints[5].shape == (21, 2)
    assert clip.keypoints[5][3].tolist() == [13.0, 106.0]
    assert clips[1].keypoints[0].shape == (42, 2)


def test_test_clips_may_lack_json(tmp_path: Path) -> None:
    _make_clip(tmp_path, "test", "649", 3, None)
    content = _content(0, 2)
    del content["action"]
    _make_clip(tmp_path, "test", "650", 2, content)
    clips = read_clips(tmp_path / "test", "test")
    assert clips[0].keypoints is None and clips[0].pose_id is None
    assert clips[1].keypoints is not None and clips[1].pose_id is None


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda c: c["annotations"].pop(), "2 annotations for 3 frames"),
        (lambda c: c["annotations"][1]["data"].pop(), "annotation 1 (frame 1.png): 20 points"),
        (lambda c: c["annotations"][2]["data"][4].__setitem__(0, "x"), "point 4: coordinate x"),
        (lambda c: c["annotations"][0]["data"][0].__setitem__(1, None), "coordinate y"),
        (lambda c: c.__setitem__("action", [77, "?"]), "unknown pose id 77"),
        (lambda c: c.__setitem__("action", ["one", "?"]), "pose id is not an integer"),
        (lambda c: c.pop("action"), "'action' must be [pose_id, name]"),
        (lambda c: c.pop("annotations"), "'annotations' must be a list"),
    ],
)
def test_bad_json_names_folder_and_frame(tmp_path: Path, change, message: str) -> None:
    content = _content(0, 3)
    change(content)
    _make_clip(tmp_path, "train", "7", 3, content)
    with pytest.raises(GestureDataError, match=r"7\.json") as error:
        read_clips(tmp_path / "train", "train", known_pose_ids=[0])
    assert message in str(error.value)


def test_frame_and_folder_errors(tmp_path: Path) -> None:
    clip = _make_clip(tmp_path, "train", "3", 3, _content(0, 3))
    (clip / "1.png").unlink()
    with pytest.raises(GestureDataError, match=r"missing \[1\]"):
        list_frames(clip)
    (clip / "1.png").write_bytes(b"")
    (clip / "frame.png").write_bytes(b"")
    with pytest.raises(GestureDataError, match="frame.png"):
        list_frames(clip)
    (clip / "frame.png").unlink()
    (clip / "3.json").unlink()
    with pytest.raises(GestureDataError, match="training folder without 3.json"):
        read_clips(tmp_path / "train", "train")


def test_invalid_json_text(tmp_path: Path) -> None:
    clip = _make_clip(tmp_path, "train", "4", 1, None)
    (clip / "4.json").write_text("{not json")
    with pytest.raises(GestureDataError, match="cannot read JSON"):
        read_clips(tmp_path / "train", "train")


def test_pose_table_checks(tmp_path: Path) -> None:
    path = tmp_path / "hand_gesture_pose.csv"
    rows = "pose_id,pose_name,view_type,gesture_type,hand_type\n"
    path.write_text(rows + "10,a,my hand,static,right\n0,a,my hand,static,left\n")
    assert read_pose_table(path)["pose_id"].tolist() == [0, 10]
    path.write_text(rows + "0,a,my hand,static,up\n")
    with pytest.raises(GestureDataError, match="row 2, column hand_type"):
        read_pose_table(path)
    path.write_text(rows + "0,a,my hand,static,left\n0,b,my hand,static,right\n")
    with pytest.raises(GestureDataError, match=r"repeated: \[0\]"):
        read_pose_table(path)
    path.write_text(rows + "x,a,my hand,static,left\n")
    with pytest.raises(GestureDataError, match="row 2, column pose_id"):
        read_pose_table(path)
    path.write_text("pose_id,pose_name\n0,a\n")
    with pytest.raises(GestureDataError, match="missing columns"):
        read_pose_table(path)


def test_sample_submission_and_writer(tmp_path: Path) -> None:
    assert submission_image_path("649") == "./test\\649"
    assert folder_from_image_path("./test\\649") == "649"
    assert folder_from_image_path("./test/650") == "650"
    path = tmp_path / "sample_submission.csv"
    path.write_text("Image_Path,Label_0,Label_10,Label_42\n./test\\649,0,0,0\n./test\\650,0,0,0\n")
    layout = read_sample_submission(path)
    assert layout.folders == ("649", "650") and layout.class_ids == (0, 10, 42)
    probs = np.array([[0.2, 0.3, 0.5], [1.0, 0.0, 0.0]])
    out = write_submission(tmp_path / "out" / "submission.csv", layout, probs)
    written = pd.read_csv(out)
    assert written.columns.tolist() == ["Image_Path", "Label_0", "Label_10", "Label_42"]
    assert written["Image_Path"].tolist() == ["./test\\649", "./test\\650"]
    np.testing.assert_allclose(written.iloc[:, 1:].to_numpy(), probs)
    with pytest.raises(ValueError, match=r"expected \(2, 3\)"):
        write_submission(tmp_path / "bad.csv", layout, probs[:1])
    path.write_text("Image_Path,Label_10,Label_0\n./test\\649,0,0\n")
    with pytest.raises(GestureDataError, match="ascending"):
        read_sample_submission(path)
    path.write_text("Image_Path,Label_0,Score\n./test\\649,0,0\n")
    with pytest.raises(GestureDataError, match="'Score' is not Label_<pose_id>"):
        read_sample_submission(path)
    answers = tmp_path / "test_answer.csv"
    answers.write_text("Image_Path,pose_id\n./test\\649,10\n./test\\650,zero\n")
    with pytest.raises(GestureDataError, match="row 3, column pose_id"):
        read_test_answers(answers)


def test_hand_tables_and_stage_keypoints(tmp_path: Path) -> None:
    _make_clip(tmp_path, "train", "0", 2, _content(0, 2))
    _make_clip(tmp_path, "train", "1", 2, _content(0, 2, points=42))  # two hands: left out
    _make_clip(tmp_path, "test", "2", 3, None)
    train_csv, test_csv, train_list = export_hand_tables(tmp_path)
    assert pd.read_csv(train_list)["image"].tolist() == ["0/0.png", "0/1.png", "1/0.png", "1/1.png"]
    train = pd.read_csv(train_csv)
    columns = ["image", *coordinate_columns(HAND_KEYPOINTS)]
    assert train.columns.tolist() == columns and len(columns) == 43
    assert train["image"].tolist() == ["0/0.png", "0/1.png"]
    assert train["thumb_2_x"].tolist() == [12.0, 12.0]
    assert train["thumb_2_y"].tolist() == [104.0, 104.0]
    test = pd.read_csv(test_csv)
    assert test["image"].tolist() == ["2/0.png", "2/1.png", "2/2.png"]
    assert (test.iloc[:, 1:].to_numpy() == 0).all()

    result = test.copy()
    result.iloc[:, 1:] = np.arange(3 * 42, dtype=float).reshape(3, 42)
    result = result.iloc[[2, 0, 1]]  # any row order
    result_path = tmp_path / "result.csv"
    result.to_csv(result_path, index=False)
    keypoints = read_stage_keypoints(result_path)
    assert list(keypoints) == ["2"] and keypoints["2"].shape == (3, 21, 2)
    assert keypoints["2"][1, 0].tolist() == [42.0, 43.0]
    result.iloc[[0, 2]].to_csv(result_path, index=False)  # frames 2 and 1: 0 missing
    with pytest.raises(GestureDataError, match=r"folder 2 lacks frames \[0\]"):
        read_stage_keypoints(result_path)
    bad = result.astype(object)
    bad.iloc[0, 5] = "nan?"
    bad.to_csv(result_path, index=False)
    with pytest.raises(GestureDataError, match="row 2, column"):
        read_stage_keypoints(result_path)
