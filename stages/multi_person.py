"""Images in, people out: the one path from pictures to people, for ``tools/infer.py``,
``tools/pipeline.py`` (``stages.coco_chain``, ``stages.chain``) and the benchmarks.

For each picture:

1. boxes with scores from a box source: stage one (``StageOneBoxes``: the detector, TASK
   detect, every person box it keeps; a single-box stage one, TASK bbox, its one box, score
   1), or boxes the caller gives (``stages.box_sources``: a user's box file, the whole
   picture);
2. the boxes scoring at least the threshold, best first, at most ``max_people``; boxes lying
   wholly outside their picture are left out and counted (``select_boxes``);
3. stage two on each box (keypoints and their heatmap maxima, original pixels);
4. each person rescored as the official COCO code does (box score x mean keypoint score above
   ``TEST.IN_VIS_THRE``) and, for a source that asks for it, OKS-NMS per picture at
   ``TEST.OKS_THRE`` with the keypoint set's sigmas (``HRNet_keypoint.coco_results``).

``people_in_chunks`` runs these steps on chunks of decoded pictures (a folder or a video, a
chunk at a time, so memory stays bounded) and yields each picture's ``PicturePeople``;
``find_people`` is the same on one list of images in memory. ``load_people_models`` loads both
stages once (run folders or ``TEST.MODEL_FILE``; a torchvision COCO detector straight from
``MODEL.DETECTOR.WEIGHTS``). Stage one's modules are imported only when a box model is used:
torchvision's detection models take about 1.5 s to import.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np
import torch
from torch import nn
from yacs.config import CfgNode

from common.boxes import clean_box
from common.keypoint_config import config_keypoint_set
from HRNet_keypoint import engine as keypoint_engine
from HRNet_keypoint.coco_results import oks_nms, rescore

if TYPE_CHECKING:
    from HRNet_bbox.detect_engine import Detections

PictureBoxes = tuple[np.ndarray, np.ndarray]  # one picture's boxes (K, 4) [x, y, w, h], scores (K,)


@dataclass
class Person:
    """One person found in a picture, in the picture's own pixels. ``track_id`` is for a
    tracker to set (video)."""

    box: np.ndarray  # [x, y, w, h]
    box_score: float  # the box source's score (1.0 for a single-box stage one)
    keypoints: np.ndarray  # (J, 2) x, y
    keypoint_scores: np.ndarray  # (J,) heatmap maxima
    score: float  # box score x mean keypoint score above TEST.IN_VIS_THRE
    track_id: int | None = None


@dataclass
class PicturePeople:
    """A picture (a file name, or ``frame_<n>`` of a video), its BGR pixels and its people,
    best first."""

    name: str
    image: np.ndarray
    people: list[Person] = field(default_factory=list)


@dataclass
class PeopleModels:
    """Both stages, loaded once: stage one (``box_model``, None when the caller always gives
    boxes) and stage two, with their configs and device."""

    box_cfg: CfgNode | None
    box_model: nn.Module | None
    keypoint_cfg: CfgNode
    keypoint_model: nn.Module
    device: torch.device


class BoxSource(Protocol):
    """Where each picture's boxes come from. ``describe`` says so in messages;
    ``suppress_duplicates``: OKS-NMS the people found on these boxes (a detector's overlapping
    boxes of one person), or keep one person per box (boxes a user gave)."""

    describe: str
    suppress_duplicates: bool

    def boxes(self, names: Sequence[str], images: Sequence[np.ndarray]) -> list[PictureBoxes]:
        ...


def load_people_models(box_cfg: CfgNode | None, box_output: Path | None,
                       keypoint_cfg: CfgNode, keypoint_output: Path | None,
                       device: torch.device) -> PeopleModels:  # fmt: skip
    """Stage one of ``box_cfg`` (TASK detect or bbox; None: boxes will be given) from
    ``box_output`` and stage two from ``keypoint_output`` (or each config's
    ``TEST.MODEL_FILE``)."""
    box_model = None
    if box_cfg is not None:
        if box_cfg.TASK == "detect":
            from HRNet_bbox.detect_engine import load_detector_for_test

            box_model = load_detector_for_test(box_cfg, box_output, device)
        else:
            from HRNet_bbox import engine as bbox_engine

            box_model = bbox_engine.load_model_for_test(box_cfg, box_output, device)
    keypoint_model = keypoint_engine.load_model_for_test(keypoint_cfg, keypoint_output, device)
    return PeopleModels(box_cfg, box_model, keypoint_cfg, keypoint_model, device)


def stage_one_boxes(models: PeopleModels, images: Sequence[np.ndarray],
                    paths: Sequence[Path]) -> Detections:  # fmt: skip
    """Every box stage one keeps (the detector's own ``MODEL.DETECTOR.SCORE_THRE``), or the
    single-box head's one box an image with score 1."""
    if models.box_model is None or models.box_cfg is None:
        raise ValueError("no stage one model was loaded: give the boxes")
    from HRNet_bbox import engine as bbox_engine
    from HRNet_bbox.detect_engine import Detections, detect

    if models.box_cfg.TASK == "detect":
        return detect(models.box_model, models.box_cfg, list(paths), models.device,
                      images=list(images))  # fmt: skip
    boxes = bbox_engine.predict_boxes_xywh(models.box_model, models.box_cfg, list(paths),
                                           models.device, images=list(images))  # fmt: skip
    sizes = np.array([(im.shape[1], im.shape[0]) for im in images], dtype=np.int64)
    return Detections([b[None] for b in boxes], [np.ones(1)] * len(images), sizes)


class StageOneBoxes:
    """Stage one of ``models`` as a box source; its people are OKS-NMS'd."""

    suppress_duplicates = True

    def __init__(self, models: PeopleModels, describe: str = "stage one") -> None:
        self.models, self.describe = models, describe

    def boxes(self, names: Sequence[str], images: Sequence[np.ndarray]) -> list[PictureBoxes]:
        found = stage_one_boxes(self.models, images, [Path(name) for name in names])
        return list(zip(found.boxes, found.scores, strict=True))


class _GivenDetections:
    """Detections a caller already has (e.g. a COCO detection results file), OKS-NMS'd as the
    official COCO test does."""

    suppress_duplicates = True
    describe = "the given detections"

    def __init__(self, given: Detections) -> None:
        self.given = given

    def boxes(self, names: Sequence[str], images: Sequence[np.ndarray]) -> list[PictureBoxes]:
        return list(zip(self.given.boxes, self.given.scores, strict=True))


def select_boxes(boxes: np.ndarray, scores: np.ndarray, image: np.ndarray, threshold: float,
                 max_people: int | None = None) -> tuple[PictureBoxes, int]:  # fmt: skip
    """One picture's boxes scoring at least ``threshold``, best first (stable), at most
    ``max_people``, leaving out those wholly outside the picture; and how many those were."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    height, width = image.shape[:2]
    order = [i for i in np.argsort(-scores, kind="stable") if scores[i] >= threshold]
    inside = [i for i in order if clean_box(boxes[i], width, height) is not None]
    kept = inside[:max_people] if max_people else inside
    return (boxes[kept], scores[kept]), len(order) - len(inside)


def keypoints_on_boxes(models: PeopleModels, images: Sequence[np.ndarray],
                       paths: Sequence[Path], boxes: Sequence[np.ndarray],
                       scores: Sequence[np.ndarray],
                       suppress_duplicates: bool = True) -> list[list[Person]]:  # fmt: skip
    """Stage two on every box of every image, rescored, best first; with
    ``suppress_duplicates`` OKS-NMS'd per image (steps 3 and 4)."""
    cfg = models.keypoint_cfg
    owner = np.array([i for i, image_boxes in enumerate(boxes) for _ in image_boxes],
                     dtype=np.int64)  # fmt: skip
    people: list[list[Person]] = [[] for _ in images]
    if not len(owner):
        return people
    flat_boxes = np.concatenate([np.reshape(b, (-1, 4)) for b in boxes]).astype(np.float64)
    box_scores = np.concatenate([np.reshape(s, -1) for s in scores]).astype(np.float64)
    coords, keypoint_scores = keypoint_engine.predict_boxes_scored(
        models.keypoint_model, cfg, [paths[i] for i in owner], flat_boxes, models.device,
        images=[images[i] for i in owner], desc="people",
    )  # fmt: skip
    person_scores = rescore(box_scores, keypoint_scores, cfg.TEST.IN_VIS_THRE)
    sigmas = config_keypoint_set(cfg).sigmas
    areas = flat_boxes[:, 2] * flat_boxes[:, 3]
    for image in range(len(images)):
        members = np.flatnonzero(owner == image)
        if not len(members):
            continue
        kept = (oks_nms(coords[members], person_scores[members], areas[members],
                        cfg.TEST.OKS_THRE, sigmas) if suppress_duplicates
                else range(len(members)))  # fmt: skip
        people[image] = [Person(flat_boxes[m], float(box_scores[m]), coords[m],
                                keypoint_scores[m], float(person_scores[m]))
                         for m in members[list(kept)]]  # fmt: skip
    return people


def people_in_chunks(models: PeopleModels, chunks: Iterable[list[tuple[str, np.ndarray]]],
                     source: BoxSource, threshold: float, max_people: int | None = None,
                     outside: list[str] | None = None) -> Iterator[PicturePeople]:  # fmt: skip
    """Each picture of ``chunks`` (lists of (name, BGR image)) with its people, in order: the
    source's boxes scoring at least ``threshold`` (at most ``max_people`` a picture), stage
    two, rescoring and (as the source asks) OKS-NMS. The names of pictures that had boxes
    wholly outside them are added to ``outside``."""
    for chunk in chunks:
        names, images = [name for name, _ in chunk], [image for _, image in chunk]
        chosen = []
        for name, image, (boxes, scores) in zip(names, images, source.boxes(names, images),
                                                strict=True):  # fmt: skip
            kept, missed = select_boxes(boxes, scores, image, threshold, max_people)
            chosen.append(kept)
            if missed and outside is not None:
                outside.append(name)
        people = keypoints_on_boxes(models, images, [Path(name) for name in names],
                                    [b for b, _ in chosen], [s for _, s in chosen],
                                    source.suppress_duplicates)  # fmt: skip
        yield from (PicturePeople(name, image, found)
                    for name, image, found in zip(names, images, people, strict=True))


def find_people(models: PeopleModels, images: Sequence[np.ndarray],
                paths: Sequence[Path] | None = None, score_threshold: float | None = None,
                max_people: int | None = None,
                given: Detections | None = None) -> list[list[Person]]:  # fmt: skip
    """Every person of each BGR image in memory: boxes (stage one, or ``given`` detections),
    those scoring at least ``score_threshold`` (default ``TEST.IMAGE_THRE`` of the keypoint
    config; at most ``max_people`` an image, best first), keypoints on each, rescoring,
    OKS-NMS. ``paths`` only name the images in messages (default ``image<i>``)."""
    paths = list(paths) if paths is not None else [Path(f"image{i}") for i in range(len(images))]
    if len(paths) != len(images):
        raise ValueError(f"{len(images)} images but {len(paths)} paths")
    source = _GivenDetections(given) if given is not None else StageOneBoxes(models)
    threshold = (float(models.keypoint_cfg.TEST.IMAGE_THRE) if score_threshold is None
                 else float(score_threshold))  # fmt: skip
    chunk = [(str(path), image) for path, image in zip(paths, images, strict=True)]
    return [picture.people for picture in people_in_chunks(models, [chunk], source, threshold,
                                                           max_people)]  # fmt: skip
