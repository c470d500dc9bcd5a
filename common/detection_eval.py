"""Scores of person detections: pycocotools' bbox AP/AR, and how often the right number of
people is found (each true box matched by a detection with IoU >= 0.5, nothing extra)."""

from __future__ import annotations

import contextlib
import io
from collections.abc import Sequence

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from common.metrics import box_iou

BBOX_AP_NAMES = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs",
                 "ARm", "ARl")  # fmt: skip


def detection_results(image_ids: Sequence[int], boxes: Sequence[np.ndarray],
                      scores: Sequence[np.ndarray], category_id: int = 1) -> list[dict]:
    """COCO detection results ``[{image_id, category_id, bbox [x, y, w, h], score}]``."""
    return [{"image_id": int(image_id), "category_id": int(category_id),
             "bbox": [round(float(v), 2) for v in box], "score": round(float(score), 5)}
            for image_id, image_boxes, image_scores in zip(image_ids, boxes, scores, strict=True)
            for box, score in zip(image_boxes, image_scores, strict=True)]  # fmt: skip


def bbox_ap(truth_boxes: Sequence[np.ndarray], results: list[dict]) -> dict[str, float]:
    """COCOeval's bbox AP/AR (``BBOX_AP_NAMES``) of ``results`` (image ids 1..N) against the
    true boxes [x, y, w, h] of images 1..N (one (K, 4) array each)."""
    images = [{"id": i + 1, "width": 1, "height": 1} for i in range(len(truth_boxes))]
    people = [(i + 1, box) for i, boxes in enumerate(truth_boxes) for box in boxes]
    annotations = [{"id": n, "image_id": image_id, "category_id": 1, "iscrowd": 0,
                    "bbox": [float(v) for v in box], "area": float(box[2] * box[3])}
                   for n, (image_id, box) in enumerate(people, start=1)]
    if not results or not annotations:
        return dict.fromkeys(BBOX_AP_NAMES, 0.0)
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress
        coco_truth = COCO()
        coco_truth.dataset = {"images": images, "annotations": annotations,
                              "categories": [{"id": 1, "name": "person"}]}
        coco_truth.createIndex()
        evaluation = COCOeval(coco_truth, coco_truth.loadRes(list(results)), "bbox")
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    return {name: float(v) for name, v in zip(BBOX_AP_NAMES, evaluation.stats, strict=True)}


def right_count(truth: np.ndarray, found: np.ndarray, iou: float = 0.5) -> bool:
    """True when ``found`` has exactly as many boxes as ``truth`` and they pair one to one
    with IoU >= ``iou`` (greedy by IoU)."""
    truth, found = np.reshape(truth, (-1, 4)), np.reshape(found, (-1, 4))
    if len(truth) != len(found):
        return False
    pairs = sorted(((-float(box_iou(t[None], f[None])[0]), i, j)
                    for i, t in enumerate(truth) for j, f in enumerate(found)))
    used_truth, used_found = set(), set()
    for negative_iou, i, j in pairs:
        if -negative_iou >= iou and i not in used_truth and j not in used_found:
            used_truth.add(i)
            used_found.add(j)
    return len(used_truth) == len(truth)


def count_threshold(truth: Sequence[np.ndarray], boxes: Sequence[np.ndarray],
                    scores: Sequence[np.ndarray], candidates: Sequence[float]
                    ) -> tuple[float, float]:  # fmt: skip
    """The score threshold of ``candidates`` under which ``right_count`` holds on the most
    images (the lowest such threshold on a tie), and that share. Pick it on validation images:
    the threshold then carries to the test images without looking at them."""
    best, share = float(candidates[0]), -1.0
    for threshold in candidates:
        hits = [right_count(t, np.reshape(b, (-1, 4))[np.reshape(s, -1) >= threshold])
                for t, b, s in zip(truth, boxes, scores, strict=True)]  # fmt: skip
        if float(np.mean(hits)) > share:
            best, share = float(threshold), float(np.mean(hits))
    return best, share
