"""The whole test-time chain in one command: boxes (stage one), keypoints on those boxes
(stage two), ``result.csv``, and the score when the truth is given.

``python tools/pipeline.py --bbox-cfg B.yaml --bbox-output DIR1 --keypoint-cfg K.yaml
--keypoint-output DIR2 [--truth test_df.csv] [--compare-gt-boxes] [KEY VALUE ...]``

Each test image is decoded once, in chunks, and shared by both stages. The chain writes the same
files as the two-step way: ``DIR1/test_annotation.pkl`` and ``DIR2/result.csv``.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import _bootstrap  # noqa: F401
import numpy as np
import torch
from tqdm import tqdm
from yacs.config import CfgNode

from common.config import load_config
from common.io import atomic_write_text, read_image
from common.keypoint_config import config_keypoint_set
from common.metrics import box_iou, mean_pose_prediction, rmse
from common.motion_data import keypoints_array, read_keypoint_csv, write_keypoint_csv
from common.run_dir import create_logger
from common.seed import seed_everything
from common.stage_data import (
    dataset_root,
    keypoint_extent_boxes,
    load_training_table,
    test_image_names,
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
    names = test_image_names(keypoint_cfg)
    paths = [dataset_root(keypoint_cfg) / keypoint_cfg.DATASET.TEST_IMAGE_DIR / n for n in names]
    box_model = bbox_engine.load_model_for_test(bbox_cfg, bbox_output, device)
    keypoint_model = keypoint_engine.load_model_for_test(keypoint_cfg, keypoint_output, device)
    truth = None
    if truth_csv is not None:
        kp_names = config_keypoint_set(keypoint_cfg).names
        frame = read_keypoint_csv(truth_csv, kp_names).set_index("image")
        missing = [n for n in names if n not in frame.index]
        if missing:
            raise ValueError(f"{truth_csv} lacks {len(missing)} test images, e.g. {missing[:3]}")
        truth = keypoints_array(frame.loc[names].reset_index(), kp_names)

    joints = keypoint_cfg.MODEL.NUM_JOINTS
    boxes = np.zeros((len(names), 4))
    sizes = np.zeros((len(names), 2), dtype=np.int64)
    coords = np.zeros((len(names), joints, 2))
    coords_gt_boxes = np.zeros_like(coords) if compare_gt_boxes and truth is not None else None
    for start in tqdm(range(0, len(names), CHUNK), desc="chain", unit="chunk"):
        part = slice(start, start + CHUNK)
        images = [read_image(p) for p in paths[part]]
        sizes[part] = [(im.shape[1], im.shape[0]) for im in images]
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
    write_keypoint_csv(result, names, coords, kp_names)
    logger.info("wrote %s and %s", box_file, result)
    summary: dict = {"box_file": str(box_file), "result": str(result), "images": len(names)}
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


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bbox-cfg", required=True)
    parser.add_argument("--bbox-output", type=Path, required=True, help="stage one's run folder")
    parser.add_argument("--keypoint-cfg", required=True)
    parser.add_argument("--keypoint-output", type=Path, required=True,
                        help="stage two's run folder")  # fmt: skip
    parser.add_argument("--truth", type=Path, help="test_df.csv: score the result against it")
    parser.add_argument("--compare-gt-boxes", action="store_true",
                        help="also predict on ground-truth boxes (needs --truth)")  # fmt: skip
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="KEY VALUE for both configs")
    args = parser.parse_args(argv)
    bbox_cfg = load_config(args.bbox_cfg, args.opts)
    keypoint_cfg = load_config(args.keypoint_cfg, args.opts)
    seed_everything(keypoint_cfg.RANDOMSEED, keypoint_cfg)
    for folder in (args.bbox_output, args.keypoint_output):
        if not folder.is_dir():
            raise FileNotFoundError(f"{folder} does not exist: train that stage first")
    logger, _, _ = create_logger(keypoint_cfg, args.keypoint_cfg, "pipeline",
                                 output_dir=args.keypoint_output)  # fmt: skip
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    summary = run_chain(bbox_cfg, args.bbox_output, keypoint_cfg, args.keypoint_output, device,
                        logger, args.truth, args.compare_gt_boxes)  # fmt: skip
    if "rmse" in summary:
        print(f"box IoU (predicted vs truth extent): {summary['box_iou']:.3f}")
        print(f"mean-pose baseline (in true boxes):  {summary['mean_pose_rmse']:.2f} px")
        if "rmse_gt_boxes" in summary:
            print(f"keypoints on ground-truth boxes:     {summary['rmse_gt_boxes']:.2f} px")
            print(f"predicted / ground-truth box RMSE:   "
                  f"{summary['rmse_ratio_predicted_to_gt_boxes']:.2f}x")  # fmt: skip
        print(f"rmse: {summary['rmse']:.4f}")
    return summary


if __name__ == "__main__":
    main()
