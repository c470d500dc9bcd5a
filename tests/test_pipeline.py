"""The two-stage chain on a tiny synthetic set: one command gives the same files as the two-step
way of the reference README, a valid submission, the score, pictures and training samples."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from common.box_files import read_box_annotations
from common.config import load_config
from common.motion_data import keypoints_array, read_keypoint_csv
from common.run_dir import output_dir_for
from tests.conftest import ROOT, load_tool

pytestmark = pytest.mark.slow  # training, the chain, DDP or the benchmark

BBOX_CFG = "experiments/bbox/tiny_cpu_bbox.yaml"
KEYPOINT_CFG = "experiments/keypoint/tiny_cpu_keypoint.yaml"


def train_one_epoch(cfg: str, data: Path, out: Path) -> Path:
    opts = ["OUTPUT_DIR", str(out), "LOG_DIR", str(out / "tb"), "DATASET.ROOT", str(data),
            "TRAIN.END_EPOCH", "1", "DEBUG.NUM_SAMPLE_IMAGES", "2"]  # fmt: skip
    load_tool("train").main(["--cfg", str(ROOT / cfg), "--test_option", "False", *opts])
    return output_dir_for(load_config(ROOT / cfg, opts), cfg)


def test_chain_matches_the_two_step_way_and_scores(tiny_motion, tmp_path, capsys):
    data = tmp_path / "data"
    shutil.copytree(tiny_motion, data)
    bbox_out = train_one_epoch(BBOX_CFG, data, tmp_path / "runs")
    keypoint_out = train_one_epoch(KEYPOINT_CFG, data, tmp_path / "runs")
    samples = sorted((tmp_path / "runs" / "tb").rglob("samples/epoch_000.jpg"))
    assert len(samples) == 2, "each stage writes its validation pictures next to its curves"

    summary = load_tool("pipeline").main([
        "--bbox-cfg", BBOX_CFG, "--bbox-output", str(bbox_out),
        "--keypoint-cfg", KEYPOINT_CFG, "--keypoint-output", str(keypoint_out),
        "--truth", str(data / "test_df.csv"), "--compare-gt-boxes", "DATASET.ROOT", str(data),
    ])  # fmt: skip
    assert capsys.readouterr().out.strip().splitlines()[-1] == f"rmse: {summary['rmse']:.4f}"
    template = pd.read_csv(data / "sample_submission.csv")
    chained = read_keypoint_csv(keypoint_out / "result.csv")
    assert list(chained.columns) == list(template.columns)
    assert list(chained["image"]) == list(template["image"])
    records = read_box_annotations(bbox_out / "test_annotation.pkl", list(template["image"]))
    for record in records.values():
        x, y, w, h = record["bbox"]
        assert w >= 1 and h >= 1 and x >= 0 and y >= 0
        assert x + w <= record["width"] and y + h <= record["height"]
    assert 0.0 <= summary["box_iou"] <= 1.0 and summary["rmse_gt_boxes"] > 0

    # The reference's two steps: copy the box file into the data set, then tools/test.py.
    chained_coords = keypoints_array(chained)
    (data / "annotations").mkdir()
    shutil.copy(bbox_out / "test_annotation.pkl", data / "annotations")
    (keypoint_out / "result.csv").unlink()
    # TEST.USE_GT_BBOX True as in the leaderboard configs: still stage one's copied boxes,
    # although this set has a test_df.csv
    load_tool("test").main(["--cfg", KEYPOINT_CFG, "--output_path", str(keypoint_out),
                            "DATASET.ROOT", str(data), "TEST.USE_GT_BBOX", "True"])  # fmt: skip
    two_step = keypoints_array(read_keypoint_csv(keypoint_out / "result.csv"))
    assert np.abs(two_step - chained_coords).max() < 1e-3
    test_log = next(keypoint_out.glob("*_test.log")).read_text()
    assert f"boxes (TEST.BOX_SOURCE file): {data / 'annotations/test_annotation.pkl'}" in test_log
    pipeline_log = next(keypoint_out.glob("*_pipeline.log")).read_text()
    assert f"boxes: stage one's predictions, model of {bbox_out}" in pipeline_log
    assert summary["box_source"] == "stage_one"

    score = load_tool("score").main(["--pred", str(keypoint_out / "result.csv"),
                                     "--truth", str(data / "test_df.csv")])  # fmt: skip
    assert capsys.readouterr().out.strip().splitlines()[-1].startswith("rmse: ")
    assert score == 0

    pictures = load_tool("visualize").main([
        "--pred", str(keypoint_out / "result.csv"), "--images", str(data / "images/test_imgs"),
        "--truth", str(data / "test_df.csv"), "--boxes", str(bbox_out / "test_annotation.pkl"),
        "--out", str(tmp_path / "pictures"), "--limit", "4",
    ])  # fmt: skip
    assert Path(pictures["contact_sheet"]).is_file()
    assert len(list((tmp_path / "pictures").glob("*_pred.jpg"))) == 4
