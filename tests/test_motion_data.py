"""Readers and writers of the motion files: real files accepted, bad ones refused by name."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from common.keypoints import MOTION_KEYPOINTS, coordinate_columns
from common.motion_data import (
    DataFormatError,
    MotionName,
    check_keypoints_inside,
    keypoints_array,
    parse_motion_filename,
    read_keypoint_csv,
    sequence_key,
    validate_submission,
    write_keypoint_csv,
)

NAMES = ["001-1-1-01-Z17_A-0000001.jpg", "001-1-1-01-Z17_A-0000003.jpg"]


def _keypoints(rows: int = 2) -> np.ndarray:
    base = np.arange(rows * 48, dtype=np.float64).reshape(rows, 24, 2)
    return base + 0.25


def _write_text_csv(path: Path, rows: list[list[str]]) -> Path:
    header = ["image", *coordinate_columns()]
    lines = [",".join(header)] + [",".join(row) for row in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


def _good_rows() -> list[list[str]]:
    return [[name] + [f"{v}" for v in _keypoints(2)[i].ravel()] for i, name in enumerate(NAMES)]


# --------------------------------------------------------------------------- real files


def test_reads_real_train_and_submission_unchanged(real_motion_dir: Path) -> None:
    train = read_keypoint_csv(real_motion_dir / "train_df.csv")
    assert train.shape == (4195, 49)
    assert list(train.columns) == ["image", *coordinate_columns()]
    keypoints = keypoints_array(train)
    assert keypoints.shape == (4195, 24, 2) and keypoints.dtype == np.float64
    assert 480 < keypoints[..., 0].min() and keypoints[..., 0].max() < 1445
    assert 155 < keypoints[..., 1].min() and keypoints[..., 1].max() < 975
    check_keypoints_inside(keypoints, train["image"].tolist(), (1920, 1080))
    # The values are the file's text exactly (no float parsing shortcuts).
    raw = pd.read_csv(real_motion_dir / "train_df.csv")
    np.testing.assert_array_equal(train.iloc[:, 1:].to_numpy(), raw.iloc[:, 1:].to_numpy())

    submission = read_keypoint_csv(real_motion_dir / "sample_submission.csv")
    assert submission.shape == (1600, 49)
    assert (submission.iloc[:, 1:].to_numpy() == 0).all()
    assert submission["image"].iloc[0] == "649-2-4-32-Z148_A-0000001.jpg"


def test_real_names_parse(real_motion_dir: Path) -> None:
    names = read_keypoint_csv(real_motion_dir / "train_df.csv")["image"]
    parsed = [parse_motion_filename(name) for name in names]
    assert len({p.subject for p in parsed}) == 53
    assert {p.camera for p in parsed} == set("ABCDE")
    assert all(p.frame % 2 == 1 for p in parsed)
    assert len({p.sequence_key() for p in parsed}) == 265


# --------------------------------------------------------------------------- keypoint CSVs


def test_write_then_read_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "out" / "pred.csv"
    write_keypoint_csv(path, NAMES, _keypoints())
    frame = read_keypoint_csv(path)
    assert frame["image"].tolist() == NAMES
    np.testing.assert_array_equal(keypoints_array(frame), _keypoints())
    # x0, y0, x1, y1 ... in file order
    assert frame["nose_x"].iloc[1] == _keypoints()[1, 0, 0]
    assert frame["right_instep_y"].iloc[0] == _keypoints()[0, 23, 1]
    assert not list(path.parent.glob(".*.tmp"))  # the atomic writer left nothing behind


def test_missing_column_is_named(tmp_path: Path) -> None:
    frame = pd.read_csv(_write_text_csv(tmp_path / "a.csv", _good_rows()))
    frame.drop(columns=["neck_y"]).to_csv(tmp_path / "b.csv", index=False)
    with pytest.raises(DataFormatError, match=r"b\.csv.*missing columns 'neck_y'"):
        read_keypoint_csv(tmp_path / "b.csv")


def test_extra_column_is_named(tmp_path: Path) -> None:
    frame = pd.read_csv(_write_text_csv(tmp_path / "a.csv", _good_rows()))
    frame["score"] = 1.0
    frame.to_csv(tmp_path / "b.csv", index=False)
    with pytest.raises(DataFormatError, match=r"unexpected columns 'score'"):
        read_keypoint_csv(tmp_path / "b.csv")


def test_empty_cell_names_row_image_and_column(tmp_path: Path) -> None:
    rows = _good_rows()
    rows[1][1 + 2 * 17] = ""  # neck_x of the second data row
    path = _write_text_csv(tmp_path / "nan.csv", rows)
    with pytest.raises(DataFormatError) as error:
        read_keypoint_csv(path)
    message = str(error.value)
    assert "nan.csv" in message and "row 2" in message
    assert NAMES[1] in message and "'neck_x'" in message


def test_nan_and_text_are_refused(tmp_path: Path) -> None:
    rows = _good_rows()
    rows[0][3] = "nan"  # left_eye_x
    with pytest.raises(DataFormatError, match=r"row 1 .*'left_eye_x'"):
        read_keypoint_csv(_write_text_csv(tmp_path / "a.csv", rows))
    rows = _good_rows()
    rows[1][48] = "abc"  # right_instep_y
    with pytest.raises(DataFormatError, match=r"row 2 .*'right_instep_y'.*'abc'"):
        read_keypoint_csv(_write_text_csv(tmp_path / "b.csv", rows))
    rows = _good_rows()
    rows[0][5] = "inf"
    with pytest.raises(DataFormatError, match=r"row 1 .*'right_eye_x'"):
        read_keypoint_csv(_write_text_csv(tmp_path / "c.csv", rows))


def test_duplicated_image_and_missing_file(tmp_path: Path) -> None:
    rows = _good_rows()
    rows[1][0] = rows[0][0]
    with pytest.raises(DataFormatError, match="duplicated images"):
        read_keypoint_csv(_write_text_csv(tmp_path / "dup.csv", rows))
    with pytest.raises(DataFormatError, match="not found"):
        read_keypoint_csv(tmp_path / "absent.csv")


def test_check_keypoints_inside(tmp_path: Path) -> None:
    keypoints = np.full((2, 24, 2), 10.0)
    check_keypoints_inside(keypoints, NAMES, [(20, 20), (11, 11)])
    keypoints[1, 9] = (11.0, 5.0)  # x == width is outside
    with pytest.raises(DataFormatError, match=r"0000003\.jpg: left_wrist at \(11\.0, 5\.0\)"):
        check_keypoints_inside(keypoints, NAMES, [(20, 20), (11, 11)])
    check_keypoints_inside(keypoints, NAMES, [(20, 20), (11, 11)], tolerance=0.5)
    keypoints[0, 0] = (-0.2, 3.0)
    with pytest.raises(DataFormatError, match=r"0000001\.jpg: nose"):
        check_keypoints_inside(keypoints, NAMES, (20, 20))


# --------------------------------------------------------------------------- names


def test_parse_motion_filename() -> None:
    parsed = parse_motion_filename("images/test_imgs/649-2-4-32-Z148_A-0000031.jpg")
    assert parsed == MotionName("649", 2, 4, "32", "Z148", "A", 31)
    assert parsed.filename() == "649-2-4-32-Z148_A-0000031.jpg"
    assert sequence_key("001-1-1-01-Z17_E-0000003.jpg") == "001-1-1-01-Z17_E"
    for bad in (
        "001-1-1-01-Z17_A-01.jpg",
        "1-1-1-01-Z17_A-0000001.jpg",
        "x.jpg",
        "001-1-1-01-Z17_A-0000001.png",
    ):
        with pytest.raises(ValueError, match="does not follow the pattern"):
            parse_motion_filename(bad)


# --------------------------------------------------------------------------- submissions


def _truth() -> pd.DataFrame:
    frame = pd.DataFrame(_keypoints().reshape(2, -1), columns=coordinate_columns())
    frame.insert(0, "image", NAMES)
    return frame


def test_validate_submission_accepts_reordered_rows() -> None:
    validate_submission(_truth().iloc[::-1].reset_index(drop=True), _truth())


def test_validate_submission_names_the_problem() -> None:
    truth = _truth()
    with pytest.raises(DataFormatError, match="missing columns 'nose_x'"):
        validate_submission(truth.drop(columns=["nose_x"]), truth)
    with pytest.raises(DataFormatError, match="unexpected columns 'extra'"):
        validate_submission(truth.assign(extra=1.0), truth)
    swapped = truth[["image", "nose_y", "nose_x", *coordinate_columns()[2:]]]
    with pytest.raises(DataFormatError, match="different order"):
        validate_submission(swapped, truth)
    with pytest.raises(DataFormatError, match=r"1 images of the truth have no row: .*0000003"):
        validate_submission(truth.iloc[:1], truth)
    extra = pd.concat([truth, truth.iloc[:1].assign(image="x.jpg")], ignore_index=True)
    with pytest.raises(DataFormatError, match=r"not in the truth: 'x\.jpg'"):
        validate_submission(extra, truth)
    with pytest.raises(DataFormatError, match="duplicated images"):
        validate_submission(pd.concat([truth, truth.iloc[:1]], ignore_index=True), truth)
    bad = truth.copy()
    bad.loc[1, "left_knee_y"] = np.nan
    with pytest.raises(
        DataFormatError,
        match=r"row 2 \(image '001.*0000003\.jpg'\), column "
        r"'left_knee_y'",
    ):
        validate_submission(bad, truth)


def test_keypoints_array_order() -> None:
    array = keypoints_array(_truth())
    assert array.shape == (2, len(MOTION_KEYPOINTS), 2)
    assert array[0, 1, 0] == _truth()["left_eye_x"].iloc[0]
