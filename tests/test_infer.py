"""tools/infer.py on a folder of mixed-size PNG and JPEG images, on a short generated video
and on one image with every backend; a file that is neither image nor video is a clear error."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pandas as pd
import pytest
import torch

from common.config import load_config
from common.errors import UserError
from HRNet_bbox import engine as bbox_engine
from HRNet_keypoint import engine as keypoint_engine
from tests.conftest import ROOT, load_tool

KEYPOINT_CFG = str(ROOT / "experiments/keypoint/tiny_cpu_keypoint.yaml")
BBOX_CFG = str(ROOT / "experiments/bbox/tiny_cpu_bbox.yaml")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Randomly weighted stage-one and stage-two models saved as their run folders."""
    folder = tmp_path_factory.mktemp("runs")
    torch.manual_seed(0)
    for cfg_path, engine, name in ((KEYPOINT_CFG, keypoint_engine, "kp"),
                                   (BBOX_CFG, bbox_engine, "bbox")):
        model = engine.build_model(load_config(cfg_path), is_train=False)
        (folder / name).mkdir()
        torch.save(model.state_dict(), folder / name / "model_best.pth")
    return folder


def _picture(rng, width, height):
    image = rng.integers(0, 255, (height, width, 3), dtype=np.uint8)
    cv2.rectangle(image, (width // 3, height // 4), (2 * width // 3, 3 * height // 4),
                  (20, 200, 20), -1)
    return image


def _infer(*args):
    return load_tool("infer").main(list(args))


def test_folder_of_mixed_images_with_stage_one(runs, tmp_path):
    rng = np.random.default_rng(0)
    folder = tmp_path / "in"
    folder.mkdir()
    cv2.imwrite(str(folder / "a photo.JPG"), _picture(rng, 200, 120))
    cv2.imwrite(str(folder / "b.png"), _picture(rng, 90, 160))
    cv2.imwrite(str(folder / "c.jpeg"), _picture(rng, 321, 241))
    (folder / "notes.txt").write_text("not an image")
    out = tmp_path / "out"
    assert _infer("--input", str(folder), "--keypoint-cfg", KEYPOINT_CFG, "--keypoint-output",
                  str(runs / "kp"), "--bbox-cfg", BBOX_CFG, "--bbox-output", str(runs / "bbox"),
                  "--out", str(out)) == 0
    entries = json.loads((out / "keypoints.json").read_text())
    assert [e["file_name"] for e in entries] == ["a photo.JPG", "b.png", "c.jpeg"]
    sizes = {"a photo.JPG": (200, 120), "b.png": (90, 160), "c.jpeg": (321, 241)}
    for entry in entries:
        triples = np.array(entry["keypoints"]).reshape(24, 3)
        assert np.isfinite(triples).all() and 0 <= entry["score"] <= 1
        x, y, w, h = entry["bbox"]
        width, height = sizes[entry["file_name"]]
        assert 0 <= x and x + w <= width and 0 <= y and y + h <= height
    table = pd.read_csv(out / "keypoints.csv")
    assert list(table["image"]) == ["a photo.JPG", "b.png", "c.jpeg"] and table.shape[1] == 50
    pictures = sorted(p.name for p in (out / "pictures").iterdir())
    assert pictures == ["a photo.JPG", "b.png", "c.jpeg"]  # each under its input's name
    drawn = cv2.imread(str(out / "pictures" / "b.png"))
    assert drawn.shape[1:] == (90, 3) and drawn.shape[0] > 160  # the legend below


def test_video_with_given_boxes_writes_an_annotated_video(runs, tmp_path):
    rng = np.random.default_rng(1)
    video = tmp_path / "clip.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (160, 96))
    for _ in range(5):
        writer.write(_picture(rng, 160, 96))
    writer.release()
    boxes = tmp_path / "boxes.json"
    boxes.write_text(json.dumps([{"frame": f, "bbox": [40, 10, 60, 80], "score": 0.9}
                                 for f in range(5)] + [{"frame": 2, "bbox": [5, 5, 30, 40]}]))
    out = tmp_path / "out"
    assert _infer("--input", str(video), "--keypoint-cfg", KEYPOINT_CFG, "--keypoint-output",
                  str(runs / "kp"), "--boxes", str(boxes), "--out", str(out),
                  "TEST.BACKEND", "fused") == 0
    entries = json.loads((out / "keypoints.json").read_text())
    assert [e["frame"] for e in entries] == [0, 1, 2, 2, 3, 4]
    capture = cv2.VideoCapture(str(out / "clip_keypoints.mp4"))
    frames = 0
    while capture.read()[0]:
        frames += 1
    capture.release()
    assert frames == 5
    assert len(pd.read_csv(out / "keypoints.csv")) == 6


@pytest.mark.parametrize("backend", ["fused", "onnxruntime"])
def test_every_backend_gives_the_plain_keypoints(runs, tmp_path, backend):
    image = tmp_path / "one.png"
    cv2.imwrite(str(image), _picture(np.random.default_rng(2), 150, 110))
    boxes = tmp_path / "b.json"
    boxes.write_text(json.dumps([{"file_name": "one.png", "bbox": [30, 20, 70, 80]}]))
    points = {}
    for name in ("torch", backend):
        out = tmp_path / name
        assert _infer("--input", str(image), "--keypoint-cfg", KEYPOINT_CFG, "--keypoint-output",
                      str(runs / "kp"), "--boxes", str(boxes), "--out", str(out),
                      "TEST.BACKEND", name, "TEST.PRECISION", "fp32") == 0
        points[name] = np.array(json.loads((out / "keypoints.json").read_text())[0]["keypoints"])
    np.testing.assert_allclose(points[backend], points["torch"], atol=0.05)


def test_not_an_image_nor_a_video_is_a_user_error(runs, tmp_path):
    bad = tmp_path / "data.bin"
    bad.write_bytes(b"\x00\x01 definitely not media" * 10)
    with pytest.raises(UserError, match="neither an image nor a video"):
        _infer("--input", str(bad), "--keypoint-cfg", KEYPOINT_CFG, "--keypoint-output",
               str(runs / "kp"), "--out", str(tmp_path / "o"))
    assert not (tmp_path / "o").exists()
