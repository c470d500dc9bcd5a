"""Records of a COCO-format data set (``DATASET.FORMAT coco``) for both stages.

Stage two trains on every annotated person of ``TRAIN_JSON`` (official box cleaning, crowds
and people with ``num_keypoints == 0`` left out; v = 0 keypoints get target weight 0). Stage
one predicts one box per image, so it trains only on the images with exactly one person and
logs how many images with several it left out. Test people come from a detection results file
(``TEST.COCO_BBOX_FILE``), the ground-truth boxes (``TEST.USE_GT_BBOX``) or stage one's box
file. The test file is ``VAL_JSON`` when ``DATASET.TEST_SET`` is ``val``, else ``TEST_JSON``.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from yacs.config import CfgNode

from common.box_files import read_box_annotations
from common.boxes import clean_box
from common.coco import (
    CocoFormatError,
    load_coco_keypoints,
    person_records,
    read_coco_json,
    read_json_file,
    validate_coco,
)
from common.io import ImageReadError, check_images
from common.keypoint_config import config_keypoint_set
from common.keypoint_table import KeypointTable, dataset_root


def coco_file(cfg: CfgNode, key: str) -> Path:
    """``DATASET.<key>`` under ROOT; an unset or missing file is a clear error."""
    name = getattr(cfg.DATASET, key)
    if not name:
        raise CocoFormatError(f"DATASET.FORMAT is coco but DATASET.{key} is not set: give the "
                              "person-keypoints file, relative to DATASET.ROOT")
    path = dataset_root(cfg) / name
    if not path.is_file():
        raise CocoFormatError(f"DATASET.{key}: COCO file not found: {path}")
    return path


def split_file(cfg: CfgNode) -> tuple[str, Path]:
    """The split name (``DATASET.TEST_SET``) and its COCO file."""
    split = str(cfg.DATASET.TEST_SET)
    return split, coco_file(cfg, "VAL_JSON" if split == "val" else "TEST_JSON")


def coco_training_table(cfg: CfgNode, logger: logging.Logger) -> KeypointTable:
    """One row per person of ``TRAIN_JSON`` (stage two), or per single-person image (stage
    one), with images checked before training (``DATASET.SKIP_BAD_IMAGES`` as for CSVs)."""
    path = coco_file(cfg, "TRAIN_JSON")
    _, records = load_coco_keypoints(path, config_keypoint_set(cfg), training=True)
    if cfg.TASK == "bbox":
        people = Counter(r.image_id for r in person_records(read_coco_json(path), False))
        several = sorted(image for image, count in people.items() if count > 1)
        records = [r for r in records if people[r.image_id] == 1]
        if several:
            logger.info("stage one on COCO: left out %d images with several people (one box "
                        "per image is predicted); training on %d single-person images",
                        len(several), len(records))  # fmt: skip
    if not records:
        raise CocoFormatError(f"{path}: no person to train on (none with labelled keypoints)")
    image_dir = dataset_root(cfg) / cfg.DATASET.TRAIN_IMAGE_DIR
    unique = sorted({r.file_name for r in records})
    _, bad = check_images([image_dir / name for name in unique])
    skipped = [unique[index] for index, _ in bad]
    if bad and not cfg.DATASET.SKIP_BAD_IMAGES:
        raise ImageReadError(f"{path}: {len(bad)} training images are missing or unreadable: "
                             f"{bad[0][1]}; fix them or set DATASET.SKIP_BAD_IMAGES True")
    if bad:
        logger.warning("DATASET.SKIP_BAD_IMAGES: leaving out %d images: %s", len(bad), skipped)
        records = [r for r in records if r.file_name not in set(skipped)]
    return KeypointTable(
        names=[r.file_name for r in records],
        paths=[image_dir / r.file_name for r in records],
        keypoints=np.array([r.keypoints for r in records]),
        skipped=skipped,
        boxes=np.array([r.box for r in records]),
        visibility=np.array([r.visibility for r in records]),
        groups=[r.file_name for r in records],
    )


def coco_test_image_names(cfg: CfgNode) -> list[str]:
    """The images of the test file, in its order, each checked to be readable."""
    _, path = split_file(cfg)
    data = read_coco_json(path)
    validate_coco(data, str(path))
    names = [image["file_name"] for image in data["images"]]
    image_dir = dataset_root(cfg) / cfg.DATASET.TEST_IMAGE_DIR
    _, bad = check_images([image_dir / name for name in names])
    if bad:
        raise ImageReadError(f"{path}: {len(bad)} test images are missing or unreadable: "
                             f"{bad[0][1]}")
    return names


@dataclass
class PeopleToPredict:
    """The people to predict: their image, box [x, y, w, h] and box score."""

    image_ids: list[int]
    file_names: list[str]
    boxes: np.ndarray
    scores: np.ndarray
    source: str


def _detections(cfg: CfgNode, images: dict[int, dict], category_id: int) -> list[tuple]:
    path = dataset_root(cfg) / cfg.TEST.COCO_BBOX_FILE
    entries = read_json_file(path, "TEST.COCO_BBOX_FILE: detection results", list,
                             "a list of {image_id, category_id, bbox, score}")  # fmt: skip
    people = []
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict) or entry.get("image_id") not in images:
            raise CocoFormatError(f"{path}: detection {index}: image_id not in the test file")
        box, score = entry.get("bbox"), entry.get("score")
        if not (isinstance(box, list) and len(box) == 4 and isinstance(score, (int, float))):
            raise CocoFormatError(f"{path}: detection {index}: expected bbox [x, y, w, h] and "
                                  "a score")
        if entry.get("category_id", category_id) != category_id or score < cfg.TEST.IMAGE_THRE:
            continue
        image = images[entry["image_id"]]
        cleaned = clean_box(box, image["width"], image["height"])
        if cleaned is not None:
            people.append((entry["image_id"], cleaned, float(score)))
    return people


def coco_test_people(cfg: CfgNode, logger: logging.Logger) -> PeopleToPredict:
    """Boxes to predict on: detections above ``TEST.IMAGE_THRE``, ground truth, or stage one."""
    _, path = split_file(cfg)
    data = read_coco_json(path)
    validate_coco(data, str(path))
    images = {image["id"]: image for image in data["images"]}
    category_id = data["categories"][0]["id"]
    if cfg.TEST.COCO_BBOX_FILE:
        people = _detections(cfg, images, category_id)
        source = f"detections {cfg.TEST.COCO_BBOX_FILE} (score >= {cfg.TEST.IMAGE_THRE})"
    elif cfg.TEST.USE_GT_BBOX:
        people = [(r.image_id, r.box, 1.0) for r in person_records(data, training=False)]
        source = f"ground-truth boxes of {path.name}"
    else:
        names = [image["file_name"] for image in data["images"]]
        records = read_box_annotations(dataset_root(cfg) / cfg.DATASET.BOX_FILE, names)
        people = [(image["id"], np.asarray(records[image["file_name"]]["bbox"]), 1.0)
                  for image in data["images"]]
        source = f"stage one's boxes {cfg.DATASET.BOX_FILE}"
    logger.info("test people: %d from %s", len(people), source)
    return PeopleToPredict(
        image_ids=[image_id for image_id, _, _ in people],
        file_names=[images[image_id]["file_name"] for image_id, _, _ in people],
        boxes=np.array([box for _, box, _ in people], dtype=np.float64).reshape(-1, 4),
        scores=np.array([score for _, _, score in people], dtype=np.float64),
        source=source,
    )
