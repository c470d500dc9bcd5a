"""COCO person-keypoint files: read and validate, one record per person, write results.

A file holds ``images`` (``id``, ``file_name``, ``width``, ``height``), ``annotations`` (``id``,
``image_id``, ``category_id``, ``keypoints`` as flat [x, y, v] triples, ``bbox`` [x, y, w, h],
``num_keypoints``, ``iscrowd``, ``area``) and ``categories`` (``id``, ``name``, ``keypoints``
names, ``skeleton`` as 1-based index pairs). Every problem is reported with the file, the
annotation (or image) id and the field.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from common.boxes import clean_box
from common.coco_validate import (
    CocoFormatError,
    fail,
    is_id,
    is_number,
    read_json_file,
    shown,
    validate_coco,
)
from common.io import atomic_path
from common.keypoints import KeypointSet, builtin_set_for_names, parse_keypoint_set


def read_coco_json(path: str | Path) -> dict:
    """Parse a COCO file (no validation); a missing or broken file is a clear error."""
    return read_json_file(path, "COCO file", dict, "a JSON object with images/annotations")


@dataclass(frozen=True)
class PersonRecord:
    """One annotated person: ``box`` is the cleaned [x, y, w, h], ``keypoints`` (J, 2) and
    ``visibility`` (J,) the COCO v flag (0 unlabelled, 1 labelled but hidden, 2 visible)."""

    image_id: int
    file_name: str
    width: int
    height: int
    annotation_id: int
    box: np.ndarray
    keypoints: np.ndarray
    visibility: np.ndarray
    area: float


def coco_keypoint_set(data: Mapping, source: str, expected: KeypointSet | None = None,
                      category_id: int | None = None) -> KeypointSet:
    """The keypoint set of a file's (only, or given) category; a set that differs from
    ``expected`` by its names is an error. Sigmas and flip pairs come from ``expected`` when
    given; otherwise from the built-in set with the same names, if any; otherwise the file's
    set gets a uniform sigma of 0.025 (COCO's smallest) and no flip pairs."""
    categories = [c for c in data["categories"] if category_id in (None, c.get("id"))]
    if len(categories) != 1:
        raise CocoFormatError(f"{source}: field 'categories': expected one keypoint category, "
                              f"found {len(categories)} (give the category id)")
    category = categories[0]
    names = list(category["keypoints"])
    if expected is not None:
        if tuple(names) != expected.names:
            raise CocoFormatError(
                f"{source}: category {category.get('name')!r} has keypoints {names} but the "
                f"keypoint set '{expected.name}' has {list(expected.names)}: choose the set that "
                "matches the file (DATASET.KEYPOINTS)"
            )
        return expected
    builtin = builtin_set_for_names(names)
    if builtin is not None:
        return builtin
    skeleton = []
    for pair in category.get("skeleton") or []:
        if (not isinstance(pair, list) or len(pair) != 2
                or not all(isinstance(i, int) and 1 <= i <= len(names) for i in pair)):
            raise CocoFormatError(f"{source}: category {category.get('id')!r}, field "
                                  f"'skeleton': expected 1-based index pairs, got {pair!r}")
        skeleton.append([names[pair[0] - 1], names[pair[1] - 1]])
    fields = {"names": names, "skeleton": skeleton, "sigmas": [0.025] * len(names)}
    return parse_keypoint_set(fields, source, str(category.get("name", "coco")))


def person_records(data: Mapping, training: bool = True) -> list[PersonRecord]:
    """One record per person of a validated file, in annotation order. Boxes are cleaned the
    official way (common.boxes.clean_box; a box left empty drops its person);
    for training, crowd annotations and people with no labelled keypoint
    (``num_keypoints == 0``) are left out, as in the official COCO training set."""
    images = {image["id"]: image for image in data["images"]}
    records = []
    for annotation in data["annotations"]:
        image = images[annotation["image_id"]]
        triples = np.asarray(annotation["keypoints"], dtype=np.float64).reshape(-1, 3)
        if training and (annotation.get("iscrowd", 0) or not (triples[:, 2] > 0).any()):
            continue
        box = clean_box(annotation["bbox"], image["width"], image["height"])
        if box is None:
            continue
        records.append(PersonRecord(
            image_id=image["id"], file_name=image["file_name"], width=image["width"],
            height=image["height"], annotation_id=annotation["id"],
            box=box, keypoints=triples[:, :2].copy(),
            visibility=triples[:, 2].astype(np.int64),
            area=float(annotation.get("area", annotation["bbox"][2] * annotation["bbox"][3])),
        ))
    return records


def load_coco_keypoints(path: str | Path, expected: KeypointSet | None = None,
                        training: bool = True) -> tuple[KeypointSet, list[PersonRecord]]:
    """Read, validate and flatten a person-keypoints file: its keypoint set and its people."""
    data = read_coco_json(path)
    validate_coco(data, str(path))
    return coco_keypoint_set(data, str(path), expected), person_records(data, training)


def coco_category(kp_set: KeypointSet, category_id: int = 1, name: str = "person") -> dict:
    """The ``categories`` entry of a keypoint set (skeleton 1-based, as COCO writes it)."""
    return {"id": category_id, "name": name, "supercategory": name,
            "keypoints": list(kp_set.names),
            "skeleton": [[a + 1, b + 1] for a, b in kp_set.skeleton]}


def keypoint_annotation(annotation_id: int, image_id: int, keypoints: np.ndarray,
                        box: Sequence[float], visibility: np.ndarray | None = None,
                        category_id: int = 1) -> dict:
    """An ``annotations`` entry; every keypoint visible (v = 2) unless ``visibility`` says."""
    keypoints = np.asarray(keypoints, dtype=np.float64)
    vis = np.full(len(keypoints), 2) if visibility is None else np.asarray(visibility)
    triples = [
        value
        for (x, y), v in zip(keypoints.tolist(), vis.tolist(), strict=True)
        for value in (x, y, int(v))
    ]
    box = [float(value) for value in box]
    return {"id": annotation_id, "image_id": image_id, "category_id": category_id,
            "keypoints": triples, "num_keypoints": int((vis > 0).sum()), "bbox": box,
            "area": box[2] * box[3], "iscrowd": 0}


def write_json(path: str | Path, data: Any) -> None:
    """Write a JSON file atomically (a COCO set or a results list)."""
    with atomic_path(path) as tmp:
        Path(tmp).write_text(json.dumps(data), encoding="utf-8")


def keypoint_results(image_ids: Iterable[int], keypoints: np.ndarray, scores: np.ndarray,
                     box_scores: np.ndarray | None = None, category_id: int = 1) -> list[dict]:
    """A COCO keypoint results list: one entry per person, ``keypoints`` as [x, y, score]
    triples (``scores`` (N, J)), ``score`` the person's (``box_scores`` or the mean)."""
    keypoints = np.asarray(keypoints, dtype=np.float64)
    scores = np.asarray(scores, dtype=np.float64)
    person = scores.mean(axis=1) if box_scores is None else np.asarray(box_scores, np.float64)
    results = []
    for index, image_id in enumerate(image_ids):
        flat = np.concatenate([keypoints[index], scores[index][:, None]], axis=1).ravel()
        results.append({"image_id": int(image_id), "category_id": category_id,
                        "keypoints": flat.tolist(), "score": float(person[index])})
    return results


def read_keypoint_results(path: str | Path, truth: Mapping, joints: int) -> list[dict]:
    """Read and check a COCO keypoint results file against its (validated) truth: a list of
    ``{image_id, category_id, keypoints (3 * joints numbers), score}``, every image known."""
    results = read_json_file(path, "results file", list, "a list of keypoint results")
    image_ids = {image["id"] for image in truth["images"]}
    category_id = truth["categories"][0]["id"]
    for index, result in enumerate(results):
        where = f"result {index}"
        if not isinstance(result, dict):
            raise CocoFormatError(f"{path}: {where}: expected an object")
        if not is_id(result.get("image_id")) or result["image_id"] not in image_ids:
            raise fail(str(path), where, "image_id",
                       f"no image of the truth has id {result.get('image_id')!r} (an integer)")
        if result.setdefault("category_id", category_id) != category_id or not is_id(
                result["category_id"]):
            raise fail(str(path), where, "category_id", f"expected the truth's keypoint "
                       f"category {category_id} (an integer), got {result['category_id']!r}")
        values = result.get("keypoints")
        if (not isinstance(values, list) or len(values) != 3 * joints
                or not all(is_number(value) for value in values)):
            raise fail(str(path), where, "keypoints",
                       f"expected {3 * joints} finite numbers ([x, y, score] per keypoint)")
        if not is_number(result.get("score")):
            raise fail(str(path), where, "score",
                       f"expected a finite number, got {shown(result.get('score'))}")
    return results
