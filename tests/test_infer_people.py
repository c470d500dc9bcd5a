"""tools/infer.py rides the chain's one path (``stages.multi_person``): a detector's two
heavily overlapping boxes of one person come out as one person (OKS-NMS), two people apart stay
two, a user's own boxes are kept one person each, and a single person's numbers are stage two's
on its box, unchanged by the chain."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch

from common.config import load_config
from HRNet_bbox import detect_engine
from HRNet_bbox.detect_engine import Detections
from HRNet_bbox.detector import build_detector
from HRNet_keypoint import engine as keypoint_engine
from HRNet_keypoint.coco_results import rescore
from tests.conftest import ROOT, load_tool

pytestmark = pytest.mark.slow

KEYPOINT_CFG = str(ROOT / "experiments/keypoint/tiny_cpu_keypoint.yaml")
DETECT_CFG = str(ROOT / "experiments/bbox/tiny_cpu_detect.yaml")
ONE = np.array([[40.0, 20.0, 60.0, 110.0], [41.0, 21.0, 60.0, 109.0]])  # IoU 0.95: one person
APART = np.array([[10.0, 20.0, 50.0, 100.0], [140.0, 25.0, 50.0, 100.0]])  # IoU 0: two people


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    """Randomly weighted keypoint and detector runs; a keypoint run that sees one pose in
    every box (its last layer zeroed: flat heatmaps, every joint at the crop's corner), so
    that two boxes of one person give one pose, as a trained model's do; two pictures."""
    folder = tmp_path_factory.mktemp("infer_people")
    torch.manual_seed(0)
    keypoint_model = keypoint_engine.build_model(load_config(KEYPOINT_CFG), False)
    flat = {**keypoint_model.state_dict()}
    flat["final_layer.weight"] = torch.zeros_like(flat["final_layer.weight"])
    flat["final_layer.bias"] = torch.full_like(flat["final_layer.bias"], 0.5)
    for name, state in (("kp", keypoint_model.state_dict()), ("flat", flat),
                        ("det", build_detector(load_config(DETECT_CFG), False).state_dict())):
        (folder / name).mkdir()
        torch.save(state, folder / name / "model_best.pth")
    (folder / "in").mkdir()
    rng = np.random.default_rng(0)
    for name in ("one.png", "two.png"):
        image = rng.integers(0, 255, (140, 200, 3), dtype=np.uint8)
        cv2.rectangle(image, (50, 30), (90, 120), (20, 200, 20), -1)
        cv2.imwrite(str(folder / "in" / name), image)
    return folder


def _infer(work, out, *extra, run: str = "kp") -> list[dict]:
    assert load_tool("infer").main(["--input", str(work / "in"), "--keypoint-cfg", KEYPOINT_CFG,
                                    "--keypoint-output", str(work / run), "--out", str(out),
                                    *extra]) == 0  # fmt: skip
    return json.loads((out / "keypoints.json").read_text())


def _count(entries: list[dict]) -> dict[str, int]:
    return {name: sum(e["file_name"] == name for e in entries) for name in ("one.png", "two.png")}


def test_detector_duplicates_are_one_person_and_people_apart_stay_two(work, tmp_path,
                                                                      monkeypatch):
    """The detector's boxes (faked: its random weights find nothing useful) go through
    OKS-NMS: the overlapping pair is one person, the best scored; the pair apart two."""

    def detect(model, cfg, paths, device, images=None, desc="detections"):
        chosen = {"one.png": ONE, "two.png": APART}
        return Detections([chosen[p.name] for p in paths], [np.array([0.9, 0.8])] * len(paths),
                          np.array([(im.shape[1], im.shape[0]) for im in images]))

    monkeypatch.setattr(detect_engine, "detect", detect)
    entries = _infer(work, tmp_path / "out", "--bbox-cfg", DETECT_CFG, "--bbox-output",
                     str(work / "det"), run="flat")
    assert _count(entries) == {"one.png": 1, "two.png": 2}
    kept = next(e for e in entries if e["file_name"] == "one.png")
    assert kept["bbox"] == ONE[0].tolist()
    two = [e for e in entries if e["file_name"] == "two.png"]
    assert sorted(e["bbox"] for e in two) == sorted(APART.tolist())
    assert two[0]["score"] >= two[1]["score"]  # best first


def test_given_boxes_are_kept_one_person_each(work, tmp_path):
    """The same overlapping boxes, given with --boxes, are two people (the same pose twice):
    no OKS-NMS on a user's boxes."""
    boxes = tmp_path / "boxes.json"
    boxes.write_text(json.dumps([{"file_name": name, "bbox": box.tolist(), "score": score}
                                 for name, pair in (("one.png", ONE), ("two.png", APART))
                                 for box, score in zip(pair, (0.9, 0.8), strict=True)]))
    entries = _infer(work, tmp_path / "out", "--boxes", str(boxes), run="flat")
    assert _count(entries) == {"one.png": 2, "two.png": 2}
    assert [e["bbox"] for e in entries if e["file_name"] == "one.png"] == ONE.tolist()


@pytest.mark.parametrize("boxes", [None, [30.0, 15.0, 70.0, 115.0]])
def test_one_person_is_stage_two_on_its_box(work, tmp_path, boxes):
    """One person a picture (the whole picture, or one given box): keypoints.json holds stage
    two's keypoints on that box, bit for bit, and the person's score is the rescored box
    score."""
    extra = []
    if boxes is not None:
        (tmp_path / "b.json").write_text(json.dumps([{"file_name": n, "bbox": boxes, "score": 0.7}
                                                     for n in ("one.png", "two.png")]))
        extra = ["--boxes", str(tmp_path / "b.json")]
    entries = _infer(work, tmp_path / "out", *extra)
    cfg = load_config(KEYPOINT_CFG)
    model = keypoint_engine.load_model_for_test(cfg, work / "kp", torch.device("cpu"))
    paths = [work / "in" / "one.png", work / "in" / "two.png"]
    box = np.array(boxes if boxes is not None else [0.0, 0.0, 200.0, 140.0])
    coords, scores = keypoint_engine.predict_boxes_scored(model, cfg, paths,
                                                          np.stack([box, box]), torch.device("cpu"))
    assert [e["file_name"] for e in entries] == ["one.png", "two.png"]
    for entry, xy, score in zip(entries, coords, scores, strict=True):
        expected = np.concatenate([xy, score[:, None]], axis=1).ravel()
        assert entry["keypoints"] == expected.tolist() and entry["bbox"] == box.tolist()
        box_score = 0.7 if boxes is not None else 1.0
        assert entry["score"] == float(rescore(np.array([box_score]), score[None],
                                               cfg.TEST.IN_VIS_THRE)[0])
