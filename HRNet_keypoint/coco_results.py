"""Stage two on a COCO test file: keypoints for every test person, rescored and OKS-NMS'd the
official way, written as ``keypoints_<split>_results.json`` and scored when the file has truth.

Rescoring (official HRNet): a person's score is its box score times the mean score of its
keypoints above ``TEST.IN_VIS_THRE``. OKS-NMS per image keeps the best-scoring person and drops
the others whose OKS with it reaches ``TEST.OKS_THRE`` (the official code's key for OKS-NMS;
``TEST.NMS_THRE`` is unused there too), with the keypoint set's sigmas.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
from yacs.config import CfgNode

from common.coco import keypoint_results, read_coco_json, write_json
from common.coco_data import split_file
from common.coco_eval import oks, score_coco_results
from common.keypoint_config import config_keypoint_set


def rescore(box_scores: np.ndarray, keypoint_scores: np.ndarray, in_vis_thre: float) -> np.ndarray:
    """(N,) box score x mean of the keypoint scores above ``in_vis_thre`` (0 when none is)."""
    above = keypoint_scores > in_vis_thre
    counts = above.sum(axis=1)
    means = np.where(counts > 0, (keypoint_scores * above).sum(axis=1) / np.maximum(counts, 1), 0)
    return box_scores * means


def oks_nms(keypoints: np.ndarray, scores: np.ndarray, areas: np.ndarray, threshold: float,
            sigmas: tuple[float, ...]) -> list[int]:
    """Indices kept by greedy OKS-NMS over one image's people, best score first."""
    order = list(np.argsort(-scores, kind="stable"))
    everyone = np.ones(keypoints.shape[1])
    keep = []
    while order:
        best = order.pop(0)
        keep.append(int(best))
        order = [other for other in order
                 if oks(keypoints[other], keypoints[best], everyone,
                        (areas[best] + areas[other]) / 2.0, sigmas) < threshold]
    return keep


def write_coco_results(cfg: CfgNode, output_dir: Path, people: Any, coords: np.ndarray,
                       keypoint_scores: np.ndarray, logger: logging.Logger) -> Path:
    """Rescore and OKS-NMS the predicted people; write the results file; log the OKS AP when
    the test file holds truth."""
    kp_set = config_keypoint_set(cfg)
    split, truth_path = split_file(cfg)
    scores = rescore(people.scores, keypoint_scores, cfg.TEST.IN_VIS_THRE)
    image_ids = np.asarray(people.image_ids)
    areas = people.boxes[:, 2] * people.boxes[:, 3]
    kept = []
    for image_id in dict.fromkeys(people.image_ids):
        members = np.flatnonzero(image_ids == image_id)
        chosen = oks_nms(coords[members], scores[members], areas[members], cfg.TEST.OKS_THRE,
                         kp_set.sigmas)
        kept.extend(int(members[i]) for i in chosen)
    kept.sort()
    results = keypoint_results(image_ids[kept], coords[kept], keypoint_scores[kept],
                               box_scores=scores[kept])
    result = output_dir / f"keypoints_{split}_results.json"
    write_json(result, results)
    logger.info("wrote %s: %d people of %d (OKS-NMS at %.2f; boxes: %s)", result, len(kept),
                len(people.image_ids), cfg.TEST.OKS_THRE, people.source)  # fmt: skip
    truth = read_coco_json(truth_path)
    if truth["annotations"]:
        ap = score_coco_results(truth, results, kp_set.sigmas)
        logger.info("OKS AP %.4f, AP50 %.4f, AR %.4f, PCK@0.1 %.4f on %s", ap["AP"], ap["AP50"],
                    ap["AR"], ap["pck@0.1"], truth_path)  # fmt: skip
    return result
