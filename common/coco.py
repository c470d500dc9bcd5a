"""COCO person-keypoint files: read and validate, one record per person, write results.

A file holds ``images`` (``id``, ``file_name``, ``width``, ``height``), ``annotations`` (``id``,
``image_id``, ``category_id``, ``keypoints`` as flat [x, y, v] triples, ``bbox`` [x, y, w, h],
``num_keypoints``, ``iscrowd``, ``area``) and ``categories`` (``id``, ``name``, ``keypoints``
names, ``skeleton`` as 1-based index pairs). Every problem is reported with the file, the
annotation (or image) id and the field.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from common.boxes import clean_box
from common.io import atomic_path
from common.keypoints import BUILTIN_SETS, KeypointSet, load_keypoint_set, parse_keypoint_set
from common.motion_data import DataFormatError


class CocoFormatError(DataFormatError):
    """A COCO file does not have the expected layout or values."""


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


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _fail(source: str, where: str, field: str, what: str) -> CocoFormatError:
    return CocoFormatError(f"{source}: {where}, field '{field}': {what}")


def read_json_file(path: str | Path, what: str, kind: type, expected: str) -> Any:
    """A JSON file whose top level is ``kind``; a missing, unreadable or other-shaped file is
    one clear error naming ``what`` it should be and what was ``expected``."""
    path = Path(path)
    if not path.is_file():
        raise CocoFormatError(f"{what} not found: {path}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise CocoFormatError(f"{path}: cannot read as JSON: {error}") from error
    if not isinstance(data, kind):
        raise CocoFormatError(f"{path}: expected {expected}")
    return data


def read_coco_json(path: str | Path) -> dict:
    """Parse a COCO file (no validation); a missing or broken file is a clear error."""
    return read_json_file(path, "COCO file", dict, "a JSON object with images/annotations")


def _check_list(data: Mapping, key: str, source: str) -> list:
    items = data.get(key)
    if not isinstance(items, list):
        raise CocoFormatError(f"{source}: field '{key}': expected a list")
    for item in items:
        if not isinstance(item, dict):
            raise CocoFormatError(f"{source}: field '{key}': every entry must be an object")
    return items


def validate_coco(data: Mapping, source: str) -> None:
    """Check the person-keypoints layout; errors name ``source``, the entry id and the field."""
    images = _check_list(data, "images", source)
    annotations = _check_list(data, "annotations", source)
    categories = _check_list(data, "categories", source)
    image_ids = set()
    for image in images:
        where = f"image id {image.get('id')!r}"
        if not isinstance(image.get("id"), int) or image["id"] in image_ids:
            raise _fail(source, where, "id", "expected a unique integer")
        image_ids.add(image["id"])
        if not isinstance(image.get("file_name"), str) or not image["file_name"]:
            raise _fail(source, where, "file_name", "expected a file name")
        for key in ("width", "height"):
            if not isinstance(image.get(key), int) or image[key] <= 0:
                got = image.get(key)
                raise _fail(source, where, key, f"expected a positive integer, got {got!r}")
    joints = {}
    for category in categories:
        where = f"category id {category.get('id')!r}"
        names = category.get("keypoints")
        if not isinstance(names, list) or not names:
            raise _fail(source, where, "keypoints", "expected the list of keypoint names")
        joints[category.get("id")] = len(names)
    for annotation in annotations:
        _validate_annotation(annotation, image_ids, joints, source)


def _validate_annotation(annotation: Mapping, image_ids: set, joints: dict, source: str) -> None:
    where = f"annotation id {annotation.get('id')!r}"
    if not isinstance(annotation.get("id"), int):
        raise _fail(source, where, "id", "expected an integer")
    if annotation.get("image_id") not in image_ids:
        raise _fail(source, where, "image_id", f"no image has id {annotation.get('image_id')!r}")
    if annotation.get("category_id") not in joints:
        raise _fail(source, where, "category_id", f"no category {annotation.get('category_id')!r}")
    count = joints[annotation["category_id"]]
    keypoints = annotation.get("keypoints")
    if not isinstance(keypoints, list) or len(keypoints) != 3 * count:
        got = len(keypoints) if isinstance(keypoints, list) else type(keypoints).__name__
        raise _fail(source, where, "keypoints", f"expected {3 * count} numbers "
                    f"([x, y, v] for each of {count} keypoints), got {got}")
    if not all(_number(value) for value in keypoints):
        raise _fail(source, where, "keypoints", "every value must be a finite number")
    if any(v not in (0, 1, 2) for v in keypoints[2::3]):
        raise _fail(source, where, "keypoints", "every visibility v must be 0, 1 or 2")
    box = annotation.get("bbox")
    if not isinstance(box, list) or len(box) != 4 or not all(_number(value) for value in box):
        raise _fail(source, where, "bbox", f"expected [x, y, w, h] numbers, got {box!r}")
    labelled = sum(1 for v in keypoints[2::3] if v > 0)
    if "num_keypoints" in annotation and annotation["num_keypoints"] != labelled:
        raise _fail(source, where, "num_keypoints", f"is {annotation['num_keypoints']!r} but "
                    f"{labelled} keypoints have v > 0")
    if annotation.get("iscrowd", 0) not in (0, 1):
        raise _fail(source, where, "iscrowd", "expected 0 or 1")


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
    for builtin in BUILTIN_SETS:
        if load_keypoint_set(builtin).names == tuple(names):
            return load_keypoint_set(builtin)
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
    for index, result in enumerate(results):
        where = f"result {index}"
        if not isinstance(result, dict):
            raise CocoFormatError(f"{path}: {where}: expected an object")
        if result.get("image_id") not in image_ids:
            raise _fail(str(path), where, "image_id",
                        f"no image of the truth has id {result.get('image_id')!r}")
        values = result.get("keypoints")
        if (not isinstance(values, list) or len(values) != 3 * joints
                or not all(_number(value) for value in values)):
            raise _fail(str(path), where, "keypoints",
                        f"expected {3 * joints} finite numbers ([x, y, score] per keypoint)")
        if not _number(result.get("score")):
            raise _fail(str(path), where, "score", "expected a finite number")
        result.setdefault("category_id", truth["categories"][0]["id"])
    return results
