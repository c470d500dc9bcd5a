"""Hostile files for the leaf readers and writers: bombs, truncated images, names that must
round-trip, non-UTF-8 CSVs, full disks, impossible splits and gesture rows that are not
probability distributions (issue 15)."""

from __future__ import annotations

import struct
import sys
import zlib
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import torch

from common.box_files import read_box_annotations, write_box_annotations
from common.checkpoint import save_atomic
from common.io import AtomicWriteError, ImageReadError, check_images, image_size, read_image
from common.keypoints import MOTION_KEYPOINTS
from common.motion_data import DataFormatError, read_keypoint_csv, write_keypoint_csv
from common.splits import make_splits

ROOT = Path(__file__).resolve().parents[1]
HOSTILE_NAMES = [" leading space.jpg", "trailing space.jpg ", "com,ma.jpg", 'quo"te\'s.jpg',
                 "ünïcödé 画像.jpg", "NA", "  both  "]  # fmt: skip


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def forged_png(path: Path, width: int, height: int) -> Path:
    """A complete, tiny PNG whose header claims ``width`` x ``height`` RGB pixels."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    pixels = _chunk(b"IDAT", zlib.compress(b"\x00" * 64))
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + pixels + _chunk(b"IEND", b""))
    return path


def small_image(path: Path) -> Path:
    image = np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    assert cv2.imwrite(str(path), image)
    return path


# --------------------------------------------------------------------------- images


def test_a_decompression_bomb_is_refused_from_its_header_and_listed(tmp_path):
    bomb = forged_png(tmp_path / "bomb.png", 30000, 30000)
    assert bomb.stat().st_size < 200
    good = small_image(tmp_path / "good.jpg")
    with pytest.raises(ImageReadError, match=r"too large.*MAX_IMAGE_PIXELS.*bomb\.png"):
        read_image(bomb)
    below_pillows_limit = forged_png(tmp_path / "big.png", 12000, 10000)
    with pytest.raises(ImageReadError, match=r"12000x10000 .*MAX_IMAGE_PIXELS = 100000000.*big"):
        read_image(below_pillows_limit)
    with pytest.raises(ImageReadError, match=r"bomb\.png"):
        image_size(bomb)
    sizes, bad = check_images([good, bomb])
    assert sizes.tolist() == [[64, 48], [0, 0]]
    assert [index for index, _ in bad] == [1] and "too large" in bad[0][1]


def test_pillows_own_bomb_error_never_escapes_and_the_limit_is_a_parameter(tmp_path):
    bomb = forged_png(tmp_path / "bomb.png", 30000, 30000)
    with pytest.raises(ImageReadError, match=r"too large to decode: .*bomb\.png"):
        image_size(bomb, max_pixels=10**12)  # past our limit, PIL's DecompressionBombError
    good = small_image(tmp_path / "good.png")
    with pytest.raises(ImageReadError, match="64x48"):
        read_image(good, max_pixels=1000)
    assert read_image(good, max_pixels=64 * 48).shape == (48, 64, 3)


@pytest.mark.parametrize("suffix", [".jpg", ".png"])
def test_a_truncated_image_is_unreadable_in_the_check_and_on_reading(tmp_path, suffix):
    path = small_image(tmp_path / f"whole{suffix}")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])
    sizes, bad = check_images([path])
    assert sizes.tolist() == [[0, 0]] and len(bad) == 1
    assert "truncated image" in bad[0][1] and str(path) in bad[0][1]
    with pytest.raises(ImageReadError, match=rf"truncated image .*whole\{suffix}"):
        read_image(path)
    with pytest.raises(ImageReadError, match="truncated"):
        read_image(path, reduce=2)


def test_a_complete_image_with_trailing_bytes_is_still_read(tmp_path):
    path = small_image(tmp_path / "padded.jpg")
    path.write_bytes(path.read_bytes() + b"\x00" * 100)
    assert read_image(path).shape == (48, 64, 3)
    assert check_images([path])[1] == []


# --------------------------------------------------------------------------- names


def test_names_round_trip_exactly_through_the_keypoint_csv(tmp_path):
    path = tmp_path / "result.csv"
    keypoints = np.arange(len(HOSTILE_NAMES) * 48, dtype=np.float64).reshape(-1, 24, 2)
    write_keypoint_csv(path, HOSTILE_NAMES, keypoints)
    frame = read_keypoint_csv(path, MOTION_KEYPOINTS)
    assert frame["image"].tolist() == HOSTILE_NAMES
    assert np.array_equal(frame.iloc[:, 1:].to_numpy().reshape(-1, 24, 2), keypoints)


def test_names_round_trip_through_the_box_pickle(tmp_path):
    path = tmp_path / "boxes.pkl"
    records = [{"filename": name, "bbox": [1, 2, 3, 4], "width": 64, "height": 48}
               for name in HOSTILE_NAMES]  # fmt: skip
    write_box_annotations(path, records)
    boxes = read_box_annotations(path, expected_filenames=HOSTILE_NAMES)
    assert list(boxes) == HOSTILE_NAMES


def test_score_matches_rows_by_their_exact_names(tmp_path):
    truth, pred = tmp_path / "truth.csv", tmp_path / "pred.csv"
    keypoints = np.full((len(HOSTILE_NAMES), 24, 2), 5.0)
    write_keypoint_csv(truth, HOSTILE_NAMES, keypoints)
    write_keypoint_csv(pred, HOSTILE_NAMES[::-1], keypoints[::-1] + 1.0)
    score = _score_module()
    assert score.score_keypoints(pred, truth)["rmse"] == pytest.approx(1.0)


def test_a_csv_that_is_not_utf8_is_refused_with_offset_and_line(tmp_path, capsys):
    path = tmp_path / "result.csv"
    write_keypoint_csv(path, ["a.jpg", "b.jpg"], np.zeros((2, 24, 2)))
    lines = path.read_bytes().split(b"\n")
    lines[2] = lines[2].replace(b"b.jpg", "bé.jpg".encode("latin-1"))
    path.write_bytes(b"\n".join(lines))
    offset = len(lines[0]) + len(lines[1]) + 2 + 1  # the byte after 'b' on line 3
    expected = rf"result\.csv: not UTF-8 .*offset {offset} \(line 3\)"
    with pytest.raises(DataFormatError, match=expected):
        read_keypoint_csv(path)
    truth = tmp_path / "truth.csv"
    write_keypoint_csv(truth, ["a.jpg", "b.jpg"], np.zeros((2, 24, 2)))
    assert _score_module().main(["--pred", str(path), "--truth", str(truth)]) == 2
    assert "not UTF-8" in capsys.readouterr().err


# --------------------------------------------------------------------------- full disk


def test_a_failed_checkpoint_save_names_the_file_and_keeps_the_old_one(tmp_path, monkeypatch):
    path = tmp_path / "checkpoint.pth"
    save_atomic({"epoch": 1}, path)
    before = path.read_bytes()

    def full_disk(obj, target):
        Path(target).write_bytes(b"half")
        raise RuntimeError("[enforce fail at inline_container.cc:672] . PytorchStreamWriter "
                           "failed writing file data/0: file write failed")  # fmt: skip

    monkeypatch.setattr(torch, "save", full_disk)
    with pytest.raises(AtomicWriteError) as error:
        save_atomic({"epoch": 2}, path)
    message = str(error.value)
    assert f"could not write {path}" in message and "the previous file is intact" in message
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pth"]
    with pytest.raises(AtomicWriteError, match="no file was written"):
        save_atomic({"epoch": 2}, tmp_path / "model_best.pth")


# --------------------------------------------------------------------------- splits


def test_impossible_splits_say_what_to_change():
    with pytest.raises(ValueError, match=r"TEST_RATIO .* got 0\.0; set e\.g\. TEST_RATIO 0\.1"):
        make_splits(100, test_option=False, val_ratio=0.0, seed=0)
    with pytest.raises(ValueError, match="at least 3 samples .* got 2: add images"):
        make_splits(2, test_option=False, val_ratio=0.1, seed=0)
    with pytest.raises(ValueError, match=r"cannot split 3 images: a validation \(TEST_RATIO\)"):
        make_splits(3, test_option=False, val_ratio=0.9, seed=0)
    with pytest.raises(ValueError, match=r"cannot split 1 groups"):
        make_splits(5, test_option=False, val_ratio=0.2, seed=0, groups=["s1"] * 5)
    assert sorted(len(v) for v in make_splits(3, False, 0.1, 0).values()) == [1, 2]


# --------------------------------------------------------------------------- gesture scoring


def _score_module():
    sys.path.insert(0, str(ROOT / "tools"))
    try:
        import score
    finally:
        sys.path.remove(str(ROOT / "tools"))
    return score


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        ([0.5, 0.5, 1.5], "column 'Label_2': expected a probability between 0 and 1, got 1.5"),
        ([0.5, -0.5, 1.0], "expected a probability between 0 and 1, got -0.5"),
        ([5.0, 5.0, 0.0], None),
        ([0.0, 0.0, 0.0], "probabilities sum to 0, not 1"),
        ([0.5, 0.5, 0.01], "probabilities sum to 1.01, not 1"),
        ([0.5, float("inf"), 0.0], "got inf"),
    ],
)
def test_gesture_rows_must_be_probability_distributions(tmp_path, capsys, row, expected):
    truth, pred = tmp_path / "test_answer.csv", tmp_path / "submission.csv"
    pd.DataFrame({"Image_Path": ["./test\\1", "./test\\2"], "pose_id": [0, 2]}).to_csv(
        truth, index=False
    )
    rows = [[0.2, 0.3, 0.5], row]
    pd.DataFrame(rows, columns=["Label_0", "Label_1", "Label_2"]).assign(
        Image_Path=["./test\\1", "./test\\2"]
    )[["Image_Path", "Label_0", "Label_1", "Label_2"]].to_csv(pred, index=False)
    assert _score_module().main(["--pred", str(pred), "--truth", str(truth)]) == 2
    err = capsys.readouterr().err
    assert "submission.csv: row 2 (./test\\2)" in err
    assert (expected or "expected a probability between 0 and 1, got 5.0") in err


def test_gesture_rows_within_the_tolerance_are_scored(tmp_path, capsys):
    truth, pred = tmp_path / "test_answer.csv", tmp_path / "submission.csv"
    pd.DataFrame({"Image_Path": ["a"], "pose_id": [1]}).to_csv(truth, index=False)
    pd.DataFrame({"Image_Path": ["a"], "Label_0": [0.3333], "Label_1": [0.6667]}).to_csv(
        pred, index=False
    )
    assert _score_module().main(["--pred", str(pred), "--truth", str(truth)]) == 0
    assert "logloss:" in capsys.readouterr().out
