"""Images in, people out: the multi-person chain as a function.

``find_people(models, images)`` runs, on BGR images already in memory (photos, video frames):

1. stage one: the detector (TASK detect) gives every person box scoring at least the
   threshold (``TEST.IMAGE_THRE`` of the keypoint config unless given), at most ``max_people``
   an image, best first; a single-box stage one (TASK bbox) gives its one box, score 1; or the
   caller gives the boxes (``given``, e.g. read from a COCO detection results file);
2. stage two on each box (keypoints and their heatmap maxima, original pixels);
3. each person rescored as the official COCO code does (box score x mean keypoint score above
   ``TEST.IN_VIS_THRE``) and OKS-NMS per image at ``TEST.OKS_THRE`` with the keypoint set's
   sigmas (``HRNet_keypoint.coco_results``).

It returns one list of ``Person`` per image, best score first. ``load_people_models`` loads
both stages once (run folders or ``TEST.MODEL_FILE``; a torchvision COCO detector straight from
``MODEL.DETECTOR.WEIGHTS``). ``stages.chain`` (``tools/pipeline.py``) and ``tools/infer.py``
call these two.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from yacs.config import CfgNode

from common.keypoint_config import config_keypoint_set
from HRNet_bbox import engine as bbox_engine
from HRNet_bbox.detect_engine import Detections, detect, load_detector_for_test
from HRNet_keypoint import engine as keypoint_engine
from HRNet_keypoint.coco_results import oks_nms, rescore


@dataclass
class Person:
    """One person found in an image, in the image's own pixels."""

    box: np.ndarray  # [x, y, w, h]
    box_score: float  # stage one's score (1.0 for a single-box stage one)
    keypoints: np.ndarray  # (J, 2) x, y
    keypoint_scores: np.ndarray  # (J,) heatmap maxima
    score: float  # box score x mean keypoint score above TEST.IN_VIS_THRE


@dataclass
class PeopleModels:
    """Both stages, loaded once: stage one (``box_model``, None when the caller always gives
    boxes) and stage two, with their configs and device."""

    box_cfg: CfgNode | None
    box_model: nn.Module | None
    keypoint_cfg: CfgNode
    keypoint_model: nn.Module
    device: torch.device


def load_people_models(box_cfg: CfgNode | None, box_output: Path | None,
                       keypoint_cfg: CfgNode, keypoint_output: Path | None,
                       device: torch.device) -> PeopleModels:  # fmt: skip
    """Stage one of ``box_cfg`` (TASK detect or bbox; None: boxes will be given) from
    ``box_output`` and stage two from ``keypoint_output`` (or each config's
    ``TEST.MODEL_FILE``)."""
    box_model = None
    if box_cfg is not None:
        if box_cfg.TASK == "detect":
            box_model = load_detector_for_test(box_cfg, box_output, device)
        else:
            box_model = bbox_engine.load_model_for_test(box_cfg, box_output, device)
    keypoint_model = keypoint_engine.load_model_for_test(keypoint_cfg, keypoint_output, device)
    return PeopleModels(box_cfg, box_model, keypoint_cfg, keypoint_model, device)


def stage_one_boxes(models: PeopleModels, images: Sequence[np.ndarray],
                    paths: Sequence[Path]) -> Detections:  # fmt: skip
    """Every box stage one keeps (the detector's own ``MODEL.DETECTOR.SCORE_THRE``), or the
    single-box head's one box an image with score 1."""
    if models.box_model is None or models.box_cfg is None:
        raise ValueError("no stage one model was loaded: give the boxes")
    if models.box_cfg.TASK == "detect":
        return detect(models.box_model, models.box_cfg, list(paths), models.device,
                      images=list(images))  # fmt: skip
    boxes = bbox_engine.predict_boxes_xywh(models.box_model, models.box_cfg, list(paths),
                                           models.device, images=list(images))  # fmt: skip
    sizes = np.array([(im.shape[1], im.shape[0]) for im in images], dtype=np.int64)
    return Detections([b[None] for b in boxes], [np.ones(1)] * len(images), sizes)


def keypoints_on_boxes(models: PeopleModels, images: Sequence[np.ndarray],
                       paths: Sequence[Path], found: Detections) -> list[list[Person]]:
    """Stage two on every box, rescored and OKS-NMS'd per image (steps 2 and 3)."""
    cfg = models.keypoint_cfg
    owner = np.array([i for i, boxes in enumerate(found.boxes) for _ in boxes], dtype=np.int64)
    people: list[list[Person]] = [[] for _ in images]
    if not len(owner):
        return people
    boxes = np.concatenate([np.reshape(b, (-1, 4)) for b in found.boxes])
    box_scores = np.concatenate([np.reshape(s, -1) for s in found.scores]).astype(np.float64)
    coords, keypoint_scores = keypoint_engine.predict_boxes_scored(
        models.keypoint_model, cfg, [paths[i] for i in owner], boxes, models.device,
        images=[images[i] for i in owner], desc="people",
    )  # fmt: skip
    scores = rescore(box_scores, keypoint_scores, cfg.TEST.IN_VIS_THRE)
    sigmas = config_keypoint_set(cfg).sigmas
    areas = boxes[:, 2] * boxes[:, 3]
    for image in range(len(images)):
        members = np.flatnonzero(owner == image)
        if not len(members):
            continue
        kept = oks_nms(coords[members], scores[members], areas[members], cfg.TEST.OKS_THRE,
                       sigmas)  # fmt: skip
        people[image] = [Person(boxes[m], float(box_scores[m]), coords[m], keypoint_scores[m],
                                float(scores[m])) for m in members[kept]]  # fmt: skip
    return people


def find_people(models: PeopleModels, images: Sequence[np.ndarray],
                paths: Sequence[Path] | None = None, score_threshold: float | None = None,
                max_people: int | None = None,
                given: Detections | None = None) -> list[list[Person]]:  # fmt: skip
    """Every person of each BGR image: boxes (stage one, or ``given``), those scoring at least
    ``score_threshold`` (default ``TEST.IMAGE_THRE`` of the keypoint config; at most
    ``max_people`` an image, best first), keypoints on each, rescoring, OKS-NMS. ``paths``
    only name the images in messages (default ``image<i>``)."""
    paths = list(paths) if paths is not None else [Path(f"image{i}") for i in range(len(images))]
    if len(paths) != len(images):
        raise ValueError(f"{len(images)} images but {len(paths)} paths")
    found = given if given is not None else stage_one_boxes(models, images, paths)
    threshold = (float(models.keypoint_cfg.TEST.IMAGE_THRE) if score_threshold is None
                 else float(score_threshold))  # fmt: skip
    return keypoints_on_boxes(models, images, paths, found.above(threshold, max_people))
