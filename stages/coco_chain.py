"""The chain on a COCO-format test set (several people an image): stage one's boxes (every
detection, or the single-box head's one box), ``stages.multi_person.find_people``'s steps on
each chunk of decoded images, COCO results files and their scores.

Writes ``<bbox_output>/detections_<split>_results.json`` (every box stage one kept, for
``TEST.COCO_BBOX_FILE``) and ``<keypoint_output>/keypoints_<split>_results.json`` (the people
left after OKS-NMS). With the test file's people: bbox AP, OKS AP, and the share of images in
which the chain found the right number of people (``common.detection_eval.right_count``), over
all images and over those with several people; ``compare_gt_boxes`` adds the OKS AP of stage
two on the true boxes.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import torch
from yacs.config import CfgNode

from common.coco import keypoint_results, read_coco_json, write_json
from common.coco_data import split_file
from common.coco_eval import score_coco_results
from common.detection_eval import bbox_ap, detection_results, right_count
from common.io import atomic_write_text, read_image
from common.keypoint_config import config_keypoint_set
from common.progress import progress
from common.stage_data import test_image_names, test_image_paths
from stages.multi_person import (
    Person,
    keypoints_on_boxes,
    load_people_models,
    stage_one_boxes,
)

CHUNK = 32  # images decoded at a time


def _true_boxes(truth: dict, image_ids: list[int]) -> list[np.ndarray]:
    by_id: dict[int, list] = {image_id: [] for image_id in image_ids}
    for annotation in truth["annotations"]:
        if not annotation.get("iscrowd", 0) and annotation["image_id"] in by_id:
            by_id[annotation["image_id"]].append(annotation["bbox"])
    return [np.array(by_id[i], dtype=np.float64).reshape(-1, 4) for i in image_ids]


def _people_results(image_ids: list[int], people: list[list[Person]]) -> list[dict]:
    flat = [(image_id, p) for image_id, image_people in zip(image_ids, people, strict=True)
            for p in image_people]  # fmt: skip
    if not flat:
        return []
    return keypoint_results([i for i, _ in flat], np.array([p.keypoints for _, p in flat]),
                            np.array([p.keypoint_scores for _, p in flat]),
                            box_scores=np.array([p.score for _, p in flat]))  # fmt: skip


def run_coco_chain(bbox_cfg: CfgNode, bbox_output: Path, keypoint_cfg: CfgNode,
                   keypoint_output: Path, device: torch.device, logger: logging.Logger,
                   compare_gt_boxes: bool = False) -> dict:  # fmt: skip
    """Both stages on every image of the COCO test file; write both results files; score."""
    names = test_image_names(keypoint_cfg)
    paths = test_image_paths(keypoint_cfg, names)
    split, truth_path = split_file(keypoint_cfg)
    truth = read_coco_json(truth_path)
    ids = {image["file_name"]: image["id"] for image in truth["images"]}
    image_ids = [ids[name] for name in names]
    true_boxes = _true_boxes(truth, image_ids)
    threshold = float(keypoint_cfg.TEST.IMAGE_THRE)
    logger.info("people: stage one (TASK %s) of %s, boxes scoring >= %.2f (TEST.IMAGE_THRE)",
                bbox_cfg.TASK, bbox_output, threshold)  # fmt: skip
    models = load_people_models(bbox_cfg, bbox_output, keypoint_cfg, keypoint_output, device)

    found_boxes, found_scores, people, on_truth = [], [], [], []
    for start in progress(range(0, len(names), CHUNK), "chain", len(names), "images",
                          lambda s: len(paths[s:][:CHUNK])):  # fmt: skip
        part = slice(start, start + CHUNK)
        images = [read_image(p) for p in paths[part]]
        found = stage_one_boxes(models, images, paths[part])
        found_boxes += found.boxes
        found_scores += found.scores
        kept = found.above(threshold)
        people += keypoints_on_boxes(models, images, paths[part], kept.boxes, kept.scores)
        if compare_gt_boxes:
            on_truth += keypoints_on_boxes(models, images, paths[part], true_boxes[part],
                                           [np.ones(len(b)) for b in true_boxes[part]])

    category = truth["categories"][0]["id"]
    detections = detection_results(image_ids, found_boxes, found_scores, category)
    detection_file = bbox_output / f"detections_{split}_results.json"
    write_json(detection_file, detections)
    results = _people_results(image_ids, people)
    result = keypoint_output / f"keypoints_{split}_results.json"
    write_json(result, results)
    logger.info("wrote %s (%d boxes) and %s (%d people in %d images)", detection_file,
                len(detections), result, len(results), len(names))  # fmt: skip
    summary: dict = {"detections": str(detection_file), "result": str(result),
                     "images": len(names), "people": len(results), "box_task": bbox_cfg.TASK,
                     "threshold": threshold}  # fmt: skip
    if truth["annotations"]:
        sigmas = config_keypoint_set(keypoint_cfg).sigmas
        summary["bbox_ap"] = bbox_ap(true_boxes, detection_results(
            range(1, len(names) + 1), found_boxes, found_scores))["AP"]  # fmt: skip
        summary["oks_ap"] = score_coco_results(truth, results, sigmas)["AP"]
        counts = [right_count(t, np.array([p.box for p in found]).reshape(-1, 4))
                  for t, found in zip(true_boxes, people, strict=True)]  # fmt: skip
        several = [c for c, t in zip(counts, true_boxes, strict=True) if len(t) > 1]
        summary["right_count"] = float(np.mean(counts)) if counts else 0.0
        summary["right_count_multi"] = float(np.mean(several)) if several else 0.0
        summary["multi_person_images"] = len(several)
        if compare_gt_boxes:
            summary["oks_ap_gt_boxes"] = score_coco_results(
                truth, _people_results(image_ids, on_truth), sigmas)["AP"]  # fmt: skip
        logger.info("bbox AP %.4f, OKS AP %.4f%s, right number of people on %.1f%% of the "
                    "images (%.1f%% of the %d with several)", summary["bbox_ap"],
                    summary["oks_ap"], f" (true boxes: {summary['oks_ap_gt_boxes']:.4f})"
                    if compare_gt_boxes else "", 100 * summary["right_count"],
                    100 * summary["right_count_multi"], len(several))  # fmt: skip
    atomic_write_text(keypoint_output / "pipeline_summary.json", json.dumps(summary, indent=1))
    return summary
