"""Between the competition layout (one person per image, a keypoint CSV) and COCO
person-keypoints files, both ways, so either kind of data trains with either recipe."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from common.boxes import keypoint_extent_boxes
from common.coco import CocoFormatError, coco_category, keypoint_annotation, validate_coco
from common.io import ImageReadError, check_images
from common.keypoints import (
    KeypointSet,
    builtin_set_for_names,
    load_keypoint_set,
    parse_keypoint_set,
)
from common.motion_data import keypoints_array, read_keypoint_csv


def keypoint_set_for_names(names: Sequence[str], spec: str | Path | None = None) -> KeypointSet:
    """The set ``spec`` names (its names must be ``names``), else the built-in set with these
    names, else a set of just the names (no skeleton, COCO's smallest sigma)."""
    if spec:
        kp_set = load_keypoint_set(spec)
        if kp_set.names != tuple(names):
            raise CocoFormatError(f"keypoint set '{kp_set.name}' has keypoints "
                                  f"{list(kp_set.names)}, the CSV {list(names)}")
        return kp_set
    builtin = builtin_set_for_names(names)
    if builtin is not None:
        return builtin
    return parse_keypoint_set({"names": list(names), "sigmas": [0.025] * len(names)},
                              "CSV header", "custom")


def csv_to_coco(csv_path: str | Path, image_dir: str | Path, names: Sequence[str],
                kp_set: KeypointSet) -> dict:
    """A COCO person-keypoints set of a keypoint CSV: image ids in row order, ``file_name`` the
    CSV's name exactly, sizes from the image headers, every keypoint visible (v = 2), the box
    the keypoints' extent (as both stages use it)."""
    frame = read_keypoint_csv(csv_path, names)
    file_names = frame["image"].astype(str).tolist()
    sizes, bad = check_images([Path(image_dir) / name for name in file_names])
    if bad:
        raise ImageReadError(f"{csv_path}: {len(bad)} images are missing or unreadable under "
                             f"{image_dir}: {bad[0][1]}")
    keypoints = keypoints_array(frame, names)
    boxes = keypoint_extent_boxes(keypoints)
    images, annotations = [], []
    for index, name in enumerate(file_names):
        width, height = (int(v) for v in sizes[index])
        images.append({"id": index + 1, "file_name": name, "width": width, "height": height})
        annotations.append(keypoint_annotation(index + 1, index + 1, keypoints[index],
                                               boxes[index]))
    return {"images": images, "annotations": annotations, "categories": [coco_category(kp_set)]}


def coco_to_table(data: dict, source: str) -> tuple[list[str], list[str], np.ndarray]:
    """Keypoint names, image names and keypoints (N, J, 2) of a COCO set with one person per
    image, in image order. An image with no person or several, or an unlabelled (v = 0)
    keypoint, is an error: the competition layout has exactly one person per row and every
    keypoint as a real point."""
    validate_coco(data, source)
    if len(data["categories"]) != 1:
        raise CocoFormatError(
            f"{source}: field 'categories' holds {len(data['categories'])} categories; a keypoint "
            "CSV has one keypoint list: keep the one category to convert in the file"
        )
    if not data["images"]:
        raise CocoFormatError(f"{source}: field 'images' is empty: there is nothing to convert")
    category = data["categories"][0]
    people: dict[int, list[dict]] = {}
    for annotation in data["annotations"]:
        people.setdefault(annotation["image_id"], []).append(annotation)
    names, rows = [], []
    for image in data["images"]:
        found = people.get(image["id"], [])
        if len(found) != 1:
            raise CocoFormatError(
                f"{source}: image id {image['id']} ({image['file_name']}) has {len(found)} "
                "annotated people; a keypoint CSV holds exactly one person per image (split "
                "the file, or train on it as DATASET.FORMAT coco)"
            )
        triples = np.asarray(found[0]["keypoints"], dtype=np.float64).reshape(-1, 3)
        unlabelled = np.flatnonzero(triples[:, 2] == 0)
        if unlabelled.size:
            raise CocoFormatError(
                f"{source}: annotation id {found[0]['id']} ({image['file_name']}), field "
                f"'keypoints': {unlabelled.size} keypoints are unlabelled (v = 0), e.g. "
                f"{category['keypoints'][unlabelled[0]]!r}; a keypoint CSV has no visibility and "
                "would hold them as real points: label them, or train on the file as "
                "DATASET.FORMAT coco"
            )
        names.append(image["file_name"])
        rows.append(triples[:, :2])
    joints = len(category["keypoints"])
    return list(category["keypoints"]), names, np.array(rows).reshape(len(rows), joints, 2)
