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

from common.box_files import read_box_annotations, read_box_list
from common.boxes import clean_box
from common.coco import (
    CocoFormatError,
    coco_keypoint_set,
    person_records,
    read_coco_json,
    validate_coco,
)
from common.io import ImageReadError, check_images
from common.keypoint_config import config_keypoint_set
from common.keypoint_table import KeypointTable, dataset_root
from common.motion_data import first_items


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


def check_coco_images(path: Path, images: list[dict], image_dir: Path, what: str,
                      skip_bad: bool = False) -> list[str]:
    """Every image of ``images`` readable under ``image_dir``, its header's size the declared
    ``width`` x ``height`` (keypoints and boxes are in those pixels). Missing or unreadable
    images are refused, or with ``skip_bad`` returned by name; a size mismatch is always
    refused."""
    _, bad = check_images([image_dir / image["file_name"] for image in images])
    if bad and not skip_bad:
        more = "; fix them or set DATASET.SKIP_BAD_IMAGES True" if what == "training" else ""
        raise ImageReadError(f"{path}: {len(bad)} {what} images are missing or unreadable: "
                             f"{bad[0][1]}{more}")  # fmt: skip
    skipped = {index for index, _ in bad}
    kept = [image for index, image in enumerate(images) if index not in skipped]
    sizes, _ = check_images([image_dir / image["file_name"] for image in kept])
    for image, (width, height) in zip(kept, sizes.tolist(), strict=True):
        if (width, height) != (image["width"], image["height"]):
            raise CocoFormatError(
                f"{path}: image id {image['id']} ({image['file_name']}), fields 'width'/'height': "
                f"declared {image['width']}x{image['height']} but the image file is "
                f"{width}x{height}; its keypoints and boxes would be in other pixels: fix the "
                "entry or the image"
            )
    return [images[index]["file_name"] for index, _ in bad]


def _split_groups(data: dict) -> tuple[dict[int, str], str]:
    """Each image's split group: its ``subject`` when the file gives one, else the image."""
    if data["images"] and all("subject" in image for image in data["images"]):
        return ({image["id"]: f"subject {image['subject']}" for image in data["images"]},
                "the file's subject field")  # fmt: skip
    return {image["id"]: image["file_name"] for image in data["images"]}, "image"


def coco_training_table(cfg: CfgNode, logger: logging.Logger) -> KeypointTable:
    """One row per person of ``TRAIN_JSON`` (stage two), or per single-person image (stage
    one), with images checked before training (``DATASET.SKIP_BAD_IMAGES`` as for CSVs).
    Splits and folds are grouped by the file's ``subject`` field, or else by image."""
    path = coco_file(cfg, "TRAIN_JSON")
    data = read_coco_json(path)
    validate_coco(data, str(path))
    coco_keypoint_set(data, str(path), config_keypoint_set(cfg))
    records = person_records(data, training=True)
    if cfg.TASK == "bbox":
        people = Counter(r.image_id for r in person_records(data, False))
        several = sorted(image for image, count in people.items() if count > 1)
        records = [r for r in records if people[r.image_id] == 1]
        if several:
            logger.info("stage one on COCO: left out %d images with several people (one box "
                        "per image is predicted); training on %d single-person images",
                        len(several), len(records))  # fmt: skip
    if not records:
        raise CocoFormatError(f"{path}: no person to train on (none with labelled keypoints)")
    image_dir = dataset_root(cfg) / cfg.DATASET.TRAIN_IMAGE_DIR
    used = {r.image_id for r in records}
    images = [image for image in data["images"] if image["id"] in used]
    skipped = check_coco_images(path, images, image_dir, "training", cfg.DATASET.SKIP_BAD_IMAGES)
    if skipped:
        logger.warning("DATASET.SKIP_BAD_IMAGES: leaving out %d images: %s", len(skipped),
                       skipped)  # fmt: skip
        records = [r for r in records if r.file_name not in set(skipped)]
    groups, grouped_by = _split_groups(data)
    return KeypointTable(
        names=[r.file_name for r in records],
        paths=[image_dir / r.file_name for r in records],
        keypoints=np.array([r.keypoints for r in records]),
        skipped=skipped,
        boxes=np.array([r.box for r in records]),
        visibility=np.array([r.visibility for r in records]),
        groups=[groups[r.image_id] for r in records],
        grouped_by=grouped_by,
        areas=np.array([r.area for r in records], dtype=np.float64),
    )


def _test_file(cfg: CfgNode) -> tuple[Path, dict]:
    """The validated test file (``DATASET.TEST_SET``) with its images checked."""
    _, path = split_file(cfg)
    data = read_coco_json(path)
    validate_coco(data, str(path))
    check_coco_images(path, data["images"], dataset_root(cfg) / cfg.DATASET.TEST_IMAGE_DIR,
                      "test")  # fmt: skip
    return path, data


def coco_test_image_names(cfg: CfgNode) -> list[str]:
    """The images of the test file, in its order, each checked to be readable."""
    return [image["file_name"] for image in _test_file(cfg)[1]["images"]]


@dataclass
class PeopleToPredict:
    """The people to predict: their image, box [x, y, w, h] and box score."""

    image_ids: list[int]
    file_names: list[str]
    boxes: np.ndarray
    scores: np.ndarray
    source: str


def _detections(cfg: CfgNode, images: dict[int, dict], category_id: int) -> list[tuple]:
    """The detections of the test file's category scoring at least ``TEST.IMAGE_THRE``,
    cleaned the official way; the file is read and checked by ``common.box_files``."""
    path = dataset_root(cfg) / cfg.TEST.COCO_BBOX_FILE
    detections = read_box_list(path, "TEST.COCO_BBOX_FILE: detection results")
    if detections.boxes and detections.key_kind != "image_id":
        raise CocoFormatError(f"{path}: detections must name their image by 'image_id' (COCO "
                              f"detection results), not '{detections.key_kind}'")
    unknown = [d.key for d in detections.boxes if d.key not in images]
    if unknown:
        raise CocoFormatError(f"{path}: {len(unknown)} detections name image ids that are not in "
                              f"the test file: {first_items(unknown)}")
    categories = {d.category_id for d in detections.boxes}
    if detections.boxes and category_id not in categories and None not in categories:
        raise CocoFormatError(f"{path}: no detection has the test file's category_id "
                              f"{category_id} (found {first_items(sorted(categories))})")
    people = []
    for detection in detections.boxes:
        if detection.category_id not in (None, category_id):
            continue
        if detection.score < cfg.TEST.IMAGE_THRE:
            continue
        image = images[detection.key]
        cleaned = clean_box(detection.box, image["width"], image["height"])
        if cleaned is not None:
            people.append((detection.key, cleaned, detection.score))
    return people


def coco_test_people(cfg: CfgNode, logger: logging.Logger) -> PeopleToPredict:
    """Boxes to predict on: detections above ``TEST.IMAGE_THRE``, ground truth, or stage one."""
    path, data = _test_file(cfg)
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
