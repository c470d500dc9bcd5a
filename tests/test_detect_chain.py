"""The detector end to end on a tiny multi-person COCO set and a tiny CSV layout: trained by
tools/train.py (TASK detect), its detection results read by stage two's TEST.COCO_BBOX_FILE,
tools/pipeline.py on the COCO test set (OKS AP, right counts) and on the CSV layout (the
detector's best box as stage one's), and find_people on given boxes (OKS-NMS)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from common.config import load_config
from common.run_dir import output_dir_for
from common.synthetic.motion_coco import TEST_JSON, TRAIN_JSON, generate_motion_coco
from HRNet_bbox.detect_engine import Detections
from HRNet_keypoint.engine import build_model as build_keypoint_model
from stages.multi_person import PeopleModels, find_people
from tests.conftest import ROOT, load_tool

DETECT_CFG = "experiments/bbox/tiny_cpu_detect.yaml"
KEYPOINT_CFG = "experiments/keypoint/tiny_cpu_keypoint.yaml"


def _train(cfg: str, opts: list[str]):
    load_tool("train").main(["--cfg", str(ROOT / cfg), "--test_option", "False", *opts])
    return output_dir_for(load_config(ROOT / cfg, opts), cfg)


@pytest.mark.slow
def test_detector_trains_tests_and_chains_on_coco(tmp_path, capsys):
    root = tmp_path / "data"
    generate_motion_coco(root, 16, 6, width=320, height=180, seed=3, several_fraction=0.5)
    opts = ["OUTPUT_DIR", str(tmp_path / "runs"), "LOG_DIR", str(tmp_path / "tb"),
            "DATASET.ROOT", str(root), "DATASET.FORMAT", "coco", "DATASET.TRAIN_JSON",
            TRAIN_JSON, "DATASET.TEST_JSON", TEST_JSON, "TRAIN.END_EPOCH", "1",
            "DEBUG.NUM_SAMPLE_IMAGES", "1", "MODEL.DETECTOR.MAX_DETECTIONS", "5"]  # fmt: skip
    detector_run = _train(DETECT_CFG, opts)
    keypoint_run = _train(KEYPOINT_CFG, opts)
    log = next(detector_run.glob("*_train.log")).read_text()
    assert "val 1-bboxAP" in log and "left out" not in log, "every person is a training box"

    load_tool("test").main(["--cfg", DETECT_CFG, "--output_path", str(detector_run), *opts])
    detections = json.loads((detector_run / "detections_test_results.json").read_text())
    test_ids = {image["id"] for image in json.loads((root / TEST_JSON).read_text())["images"]}
    assert detections and {d["image_id"] for d in detections} <= test_ids
    assert all(set(d) == {"image_id", "category_id", "bbox", "score"} for d in detections)
    assert (detector_run / "test_annotation.pkl").is_file()
    assert (detector_run / "detection_scores.json").is_file()

    # Stage two reads them as any detector's results.
    load_tool("test").main(["--cfg", KEYPOINT_CFG, "--output_path", str(keypoint_run), *opts,
                            "TEST.COCO_BBOX_FILE",
                            str(detector_run / "detections_test_results.json"),
                            "TEST.IMAGE_THRE", "0.0"])  # fmt: skip
    assert (keypoint_run / "keypoints_test_results.json").is_file()

    capsys.readouterr()
    summary = load_tool("pipeline").main([
        "--bbox-cfg", DETECT_CFG, "--bbox-output", str(detector_run),
        "--keypoint-cfg", KEYPOINT_CFG, "--keypoint-output", str(keypoint_run),
        "--compare-gt-boxes", *opts, "TEST.IMAGE_THRE", "0.0"])  # fmt: skip
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[-1] == f"ap: {summary['oks_ap']:.4f}"
    assert 0.0 <= summary["bbox_ap"] <= 1.0 and 0.0 <= summary["oks_ap_gt_boxes"] <= 1.0
    assert summary["multi_person_images"] > 0
    results = json.loads((keypoint_run / "keypoints_test_results.json").read_text())
    assert len(results) == summary["people"] and {r["image_id"] for r in results} <= test_ids


@pytest.mark.slow
def test_detector_top_box_chains_on_the_csv_layout(tiny_motion, tmp_path, capsys):
    data = tmp_path / "data"
    shutil.copytree(tiny_motion, data)
    opts = ["OUTPUT_DIR", str(tmp_path / "runs"), "LOG_DIR", str(tmp_path / "tb"),
            "DATASET.ROOT", str(data), "TRAIN.END_EPOCH", "1", "DEBUG.NUM_SAMPLE_IMAGES", "1",
            "MODEL.DETECTOR.MAX_DETECTIONS", "5"]
    detector_run = _train(DETECT_CFG, opts)
    keypoint_run = _train(KEYPOINT_CFG, opts)
    summary = load_tool("pipeline").main([
        "--bbox-cfg", DETECT_CFG, "--bbox-output", str(detector_run),
        "--keypoint-cfg", KEYPOINT_CFG, "--keypoint-output", str(keypoint_run),
        "--truth", str(data / "test_df.csv"), *opts])  # fmt: skip
    assert summary["box_source"] == "detector_top_box"
    assert summary["rmse"] > 0 and (detector_run / "test_annotation.pkl").is_file()


def test_find_people_on_given_boxes_drops_duplicates_by_oks(tmp_path):
    """Two copies of one box give one person (OKS-NMS); a box below the threshold none."""
    cfg = load_config(ROOT / KEYPOINT_CFG)
    torch.manual_seed(0)
    model = build_keypoint_model(cfg, is_train=False).eval()
    models = PeopleModels(None, None, cfg, model, torch.device("cpu"))
    images = [np.random.default_rng(0).integers(0, 255, (90, 160, 3), dtype=np.uint8)] * 2
    box = np.array([40.0, 10.0, 40.0, 70.0])
    given = Detections([np.stack([box, box]), np.stack([box, box + 60])],
                       [np.array([0.9, 0.8]), np.array([0.9, 0.05])],
                       np.array([[160, 90], [160, 90]]))  # fmt: skip
    people = find_people(models, images, given=given, score_threshold=0.1)
    assert [len(p) for p in people] == [1, 1]
    person = people[0][0]
    assert person.keypoints.shape == (cfg.MODEL.NUM_JOINTS, 2) and person.box_score == 0.9
    assert 0 <= person.score <= 0.9
    strict = find_people(models, images, given=given, score_threshold=0.95)
    assert [len(p) for p in strict] == [0, 0]
    with pytest.raises(ValueError, match="no stage one model"):
        find_people(models, images)
