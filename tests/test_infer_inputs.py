"""tools/infer.py run as a user runs it (a subprocess) on careless and hostile inputs: box and
detection files, names that match nothing, colliding picture names, a broken image among good
ones, weights that do not fit, and failures that must leave no output folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from common.config import load_config
from HRNet_keypoint import engine as keypoint_engine
from tests.conftest import ROOT

pytestmark = pytest.mark.slow

KP_CFG = ROOT / "experiments/keypoint/tiny_cpu_keypoint.yaml"


def infer(*args: object) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "tools/infer.py"), *map(str, args)],
                          capture_output=True, text=True, cwd=ROOT, timeout=300,
                          env={**os.environ, "HRNET_DEBUG": ""})


def assert_user_error(result: subprocess.CompletedProcess, *named: str) -> str:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, result.stderr
    for text in named:
        assert text in lines[0], lines[0]
    return lines[0]


def _picture(seed: int, width: int = 160, height: int = 120) -> np.ndarray:
    image = np.random.default_rng(seed).integers(0, 255, (height, width, 3), dtype=np.uint8)
    cv2.rectangle(image, (width // 3, height // 4), (2 * width // 3, 3 * height // 4),
                  (20, 200, 20), -1)
    return image


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("infer_inputs")
    torch.manual_seed(0)
    cfg = load_config(KP_CFG)
    torch.save(keypoint_engine.build_model(cfg, is_train=False).state_dict(), root / "kp.pth")
    cfg17 = load_config(KP_CFG, ["MODEL.NUM_JOINTS", "17"])
    torch.save(keypoint_engine.build_model(cfg17, is_train=False).state_dict(), root / "kp17.pth")
    photos = root / "photos"
    photos.mkdir()
    cv2.imwrite(str(photos / "a.jpg"), _picture(1))
    cv2.imwrite(str(photos / "a.png"), _picture(2, 90, 150))
    cv2.imwrite(str(photos / "b.jpg"), _picture(3))
    video = root / "clip.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (160, 96))
    for index in range(4):
        writer.write(_picture(10 + index, 160, 96))
    writer.release()
    return root


def _boxes(work: Path, name: str, entries) -> Path:
    path = work / name
    path.write_text(json.dumps(entries) if not isinstance(entries, str) else entries)
    return path


def test_same_stem_two_pictures_and_whole_picture_boxes(work, tmp_path) -> None:
    out = tmp_path / "out"
    result = infer("--input", work / "photos", "--cfg", KP_CFG, "--weights", work / "kp.pth",
                   "--out", out)
    assert result.returncode == 0, result.stderr
    assert "boxes: the whole picture" in result.stderr
    assert sorted(p.name for p in (out / "pictures").iterdir()) == ["a.jpg", "a.png", "b.jpg"]
    drawn = cv2.imread(str(out / "pictures/a.png"))
    assert drawn.shape[1:] == (90, 3) and drawn.shape[0] > 150  # its own pixels, legend below
    entries = json.loads((out / "keypoints.json").read_text())
    assert [e["file_name"] for e in entries] == ["a.jpg", "a.png", "b.jpg"]
    assert entries[1]["bbox"] == [0.0, 0.0, 90.0, 150.0]


def test_truncated_jpeg_after_good_images_keeps_their_results(work, tmp_path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    for index in range(3):
        cv2.imwrite(str(folder / f"good{index}.jpg"), _picture(index))
    data = (folder / "good0.jpg").read_bytes()
    (folder / "z_broken.jpg").write_bytes(data[: len(data) // 2])
    out = tmp_path / "out"
    result = infer("--input", folder, "--cfg", KP_CFG, "--weights", work / "kp.pth",
                   "--out", out)
    assert_user_error(result, "z_broken.jpg", "1 of 4", str(out))
    entries = json.loads((out / "keypoints.json").read_text())
    assert [e["file_name"] for e in entries] == ["good0.jpg", "good1.jpg", "good2.jpg"]
    assert len(list((out / "pictures").iterdir())) == 3


@pytest.mark.parametrize(("entries", "named"), [
    ([{"file_name": "a.jpg", "bbox": [10, 10, 50, 60], "score": float("nan")}], "'score'"),
    ([{"file_name": "a.jpg", "bbox": [10, "10", 50, 60]}], "'bbox'"),
    ([{"file_name": "a.jpg", "bbox": [100, 90, -50, -60]}], "negative"),
    ([{"image_id": 1.5, "bbox": [1, 1, 5, 5]}], "'image_id'"),
    ([{"image_id": 1, "category_id": "1", "bbox": [1, 1, 5, 5], "score": 0.9}], "'category_id'"),
    ([{"file_name": "a.jpg", "frame": 0, "bbox": [1, 1, 5, 5]}], "exactly one of"),
    ("[" * 100000 + "]" * 100000, "nested too deeply"),
    ({"file_name": "a.jpg"}, "expected a JSON list"),
])
def test_bad_box_files_are_one_line_errors_and_leave_no_folder(work, tmp_path, entries,
                                                                named) -> None:
    out = tmp_path / "out"
    path = _boxes(tmp_path, "boxes.json", entries)
    result = infer("--input", work / "photos", "--cfg", KP_CFG, "--weights", work / "kp.pth",
                   "--boxes", path, "--out", out)
    assert_user_error(result, str(path), named)
    assert not out.exists() and not list(tmp_path.glob(".out.partial-*"))


def test_boxes_that_match_no_picture_are_refused_by_name(work, tmp_path) -> None:
    misspelt = _boxes(tmp_path, "m.json", [{"file_name": "a.jpeg", "bbox": [1, 1, 50, 50]}])
    result = infer("--input", work / "photos", "--cfg", KP_CFG, "--weights", work / "kp.pth",
                   "--boxes", misspelt, "--out", tmp_path / "o1")
    assert_user_error(result, "none of its 1 boxes", "'a.jpeg'")
    by_name = _boxes(tmp_path, "n.json", [{"file_name": "a.jpg", "bbox": [1, 1, 50, 50]}])
    result = infer("--input", work / "clip.mp4", "--cfg", KP_CFG, "--weights", work / "kp.pth",
                   "--boxes", by_name, "--out", tmp_path / "o2")
    assert_user_error(result, "is a video", "'frame'")
    assert not (tmp_path / "o1").exists() and not (tmp_path / "o2").exists()


def test_partly_matching_boxes_warn_and_coco_detections_work(work, tmp_path) -> None:
    folder = tmp_path / "coco"
    folder.mkdir()
    cv2.imwrite(str(folder / "000000000139.jpg"), _picture(4))
    detections = [{"image_id": 139, "category_id": 1, "bbox": [20, 10, 60, 90], "score": 0.9},
                  {"image_id": 139, "category_id": 1, "bbox": [5, 5, 40, 50], "score": 0.4},
                  {"image_id": 139, "category_id": 3, "bbox": [5, 5, 40, 50], "score": 0.8},
                  {"image_id": 785, "category_id": 1, "bbox": [5, 5, 40, 50], "score": 0.8}]
    path = _boxes(tmp_path, "det.json", detections)
    result = infer("--input", folder, "--cfg", KP_CFG, "--weights", work / "kp.pth",
                   "--boxes", path, "--out", tmp_path / "o")
    assert_user_error(result, "2 categories", "--category-id")
    out = tmp_path / "o"
    result = infer("--input", folder, "--cfg", KP_CFG, "--weights", work / "kp.pth",
                   "--boxes", path, "--category-id", "1", "--max-people", "1", "--out", out)
    assert result.returncode == 0, result.stderr
    assert "warning: --boxes" in result.stderr and "785" in result.stderr
    entries = json.loads((out / "keypoints.json").read_text())
    assert [e["bbox"] for e in entries] == [[20.0, 10.0, 60.0, 90.0]]
    result = infer("--input", folder, "--cfg", KP_CFG, "--weights", work / "kp.pth",
                   "--boxes", path, "--category-id", "1", "--det-thr", "0.95", "--out", out)
    assert result.returncode == 0 and json.loads((out / "keypoints.json").read_text()) == []


def test_video_with_frame_boxes_and_out_of_range_frames(work, tmp_path) -> None:
    path = _boxes(tmp_path, "f.json", [{"frame": f, "bbox": [30, 10, 60, 70], "score": 0.8}
                                       for f in (0, 3, 9)])
    out = tmp_path / "out"
    result = infer("--input", work / "clip.mp4", "--cfg", KP_CFG, "--weights", work / "kp.pth",
                   "--boxes", path, "--out", out)
    assert result.returncode == 0, result.stderr
    assert "warning" in result.stderr and "9" in result.stderr
    assert [e["frame"] for e in json.loads((out / "keypoints.json").read_text())] == [0, 3]
    assert (out / "clip_keypoints.mp4").is_file()


def test_weights_that_do_not_fit_are_one_line_errors(work, tmp_path) -> None:
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes((work / "kp.pth").read_bytes()[:5000])
    evil = tmp_path / "evil.pth"  # a pickle that would call os.system when unpickled freely
    torch.save({"state_dict": {"w": torch.zeros(1)}, "hook": os.system}, evil)
    photo = tmp_path / "photo.jpg"
    cv2.imwrite(str(photo), _picture(5))
    cases = [(work / "kp17.pth", "17 joints"), (truncated, "truncated"),
             (evil, "system"), (photo, "photo.jpg"), (tmp_path / "none.pth", "not found")]
    for weights, named in cases:
        out = tmp_path / "out"
        result = infer("--input", work / "photos", "--cfg", KP_CFG, "--weights", weights,
                       "--out", out)
        assert_user_error(result, named)
        assert not out.exists()


def test_leaderboard_config_prints_no_warnings_for_keys_infer_ignores(work, tmp_path) -> None:
    cfg = ROOT / "experiments/keypoint/w48_384x288_adam_lr1e-3_02.yaml"
    result = infer("--input", work / "photos", "--cfg", cfg, "--weights", work / "kp.pth",
                   "--out", tmp_path / "o", "TEST.COCO_BBOX_FILE", "det.json")
    assert "has no effect here" in result.stderr and "TEST.COCO_BBOX_FILE" in result.stderr
    assert result.stderr.count("has no effect here") == 1, result.stderr
    assert_user_error(result, "does not fit")  # tiny weights under the W48 config


def test_a_detector_config_finds_the_people(work, tmp_path) -> None:
    """--bbox-cfg of TASK detect: every person the detector keeps (random weights here, so the
    count is whatever it finds; the path, its message and the outputs are what is checked)."""
    from HRNet_bbox.detector import build_detector

    detect_cfg = ROOT / "experiments/bbox/tiny_cpu_detect.yaml"
    run = tmp_path / "detector"
    run.mkdir()
    torch.manual_seed(0)
    torch.save(build_detector(load_config(detect_cfg), is_train=False).state_dict(),
               run / "model_best.pth")
    out = tmp_path / "out"
    result = infer("--input", work / "photos", "--cfg", KP_CFG, "--weights", work / "kp.pth",
                   "--bbox-cfg", detect_cfg, "--bbox-output", run, "--max-people", "2",
                   "--out", out)
    assert result.returncode == 0, result.stderr
    assert "boxes: the person detector of" in result.stderr
    entries = json.loads((out / "keypoints.json").read_text())
    for name in ("a.jpg", "a.png", "b.jpg"):
        assert sum(e["file_name"] == name for e in entries) <= 2
