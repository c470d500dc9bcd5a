"""The test-time chain as library code: boxes (stage one), keypoints on those boxes (stage
two), ``result.csv``, and the score when the truth is given.

Stage one is the single-box head (TASK bbox) or the detector (TASK detect), whose best box an
image then stands in for the single box. A COCO-format test set (``DATASET.FORMAT coco``) takes
the multi-person chain of ``stages.coco_chain`` instead.

Each test image is decoded once, in chunks, and shared by both stages. The chain writes the same
files as the two-step way: ``<bbox_output>/test_annotation.pkl`` and ``<keypoint_output>/
result.csv``. ``tools/pipeline.py`` and ``benchmarks/`` call ``run_chain``.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import torch
from yacs.config import CfgNode

from common.boxes import keypoint_extent_boxes
from common.io import atomic_write_text, read_image
from common.keypoint_config import config_keypoint_set
from common.metrics import box_iou, mean_pose_prediction, rmse
from common.motion_data import check_predictions, write_keypoint_csv
from common.progress import progress
from common.stage_data import (
    load_training_table,
    read_truth_table,
    test_image_names,
    test_image_paths,
    truth_by_name,
)
from HRNet_bbox import engine as bbox_engine
from HRNet_keypoint import engine as keypoint_engine

CHUNK = 32  # images decoded at a time: bounded memory, one decode per image for both stages


def run_chain(
    bbox_cfg: CfgNode,
    bbox_output: Path,
    keypoint_cfg: CfgNode,
    keypoint_output: Path,
    device: torch.device,
    logger: logging.Logger,
    truth_csv: Path | None = None,
    compare_gt_boxes: bool = False,
) -> dict:
    """Run both stages on every test image; write the box file and ``result.csv``; score."""
    if keypoint_cfg.DATASET.FORMAT == "coco":
        from stages.coco_chain import run_coco_chain

        return run_coco_chain(bbox_cfg, bbox_output, keypoint_cfg, keypoint_output, device,
                              logger, compare_gt_boxes)  # fmt: skip
    names = test_image_names(keypoint_cfg)
    paths = test_image_paths(keypoint_cfg, names)
    logger.info("boxes: stage one's predictions, model of %s (the chain ignores "
                "TEST.BOX_SOURCE)", bbox_output)  # fmt: skip
    detector = bbox_cfg.TASK == "detect"
    if detector:  # torchvision's detection models take ~1 s to import: only when they are used
        from HRNet_bbox.detect_engine import detect, load_detector_for_test
    box_model = (load_detector_for_test(bbox_cfg, bbox_output, device) if detector
                 else bbox_engine.load_model_for_test(bbox_cfg, bbox_output, device))
    keypoint_model = keypoint_engine.load_model_for_test(keypoint_cfg, keypoint_output, device)
    for stage, cfg, model in (("one", bbox_cfg, box_model), ("two", keypoint_cfg, keypoint_model)):
        if hasattr(model, "runs_in"):
            logger.info("stage %s: TEST.BACKEND %s in %s", stage, cfg.TEST.BACKEND, model.runs_in)
    truth = None
    if truth_csv is not None:
        truth = truth_by_name(read_truth_table(keypoint_cfg, truth_csv), names, truth_csv)

    joints = keypoint_cfg.MODEL.NUM_JOINTS
    boxes = np.zeros((len(names), 4))
    sizes = np.zeros((len(names), 2), dtype=np.int64)
    coords = np.zeros((len(names), joints, 2))
    coords_gt_boxes = np.zeros_like(coords) if compare_gt_boxes and truth is not None else None
    chunks = range(0, len(names), CHUNK)
    for start in progress(chunks, "chain", len(names), "images", lambda s: len(paths[s:][:CHUNK])):
        part = slice(start, start + CHUNK)
        images = [read_image(p) for p in paths[part]]
        sizes[part] = [(im.shape[1], im.shape[0]) for im in images]
        if detector:
            boxes[part] = detect(box_model, bbox_cfg, paths[part], device, images).top_boxes()
        else:
            boxes[part] = bbox_engine.predict_boxes_xywh(
                box_model, bbox_cfg, paths[part], device, images=images
            )
        coords[part] = keypoint_engine.predict_boxes(
            keypoint_model, keypoint_cfg, paths[part], boxes[part], device, images=images
        )
        if coords_gt_boxes is not None:
            coords_gt_boxes[part] = keypoint_engine.predict_boxes(
                keypoint_model, keypoint_cfg, paths[part],
                keypoint_extent_boxes(truth[part]), device, images=images,
            )  # fmt: skip

    box_file = bbox_engine.write_test_annotation(bbox_output, names, boxes, sizes)
    result = keypoint_output / "result.csv"
    kp_names = config_keypoint_set(keypoint_cfg).names
    check_predictions(result, names, coords)
    write_keypoint_csv(result, names, coords, kp_names)
    logger.info("wrote %s and %s", box_file, result)
    summary: dict = {"box_file": str(box_file), "result": str(result), "images": len(names),
                     "box_source": "detector_top_box" if detector else "stage_one"}
    if truth is not None:
        gt_boxes = keypoint_extent_boxes(truth)
        train = load_training_table(keypoint_cfg)
        summary["box_iou"] = float(np.mean(box_iou(boxes, gt_boxes)))
        summary["rmse"] = rmse(coords, truth)
        summary["mean_pose_rmse"] = rmse(mean_pose_prediction(train.keypoints, gt_boxes), truth)
        if coords_gt_boxes is not None:
            write_keypoint_csv(keypoint_output / "result_gt_boxes.csv", names, coords_gt_boxes,
                               kp_names)  # fmt: skip
            summary["rmse_gt_boxes"] = rmse(coords_gt_boxes, truth)
            summary["rmse_ratio_predicted_to_gt_boxes"] = summary["rmse"] / summary["rmse_gt_boxes"]
    atomic_write_text(keypoint_output / "pipeline_summary.json", json.dumps(summary, indent=1))
    return summary
