"""The one validation layer for COCO person-keypoint files, shared by every reader (training,
test, scoring, conversion, keypoint sets).

A file is refused with one message naming the file, the entry (image, annotation or category
id) and the field, for anything the CSV path would refuse or that would silently change a
result: ids that are not unique integers (a string ``"1"`` is not the integer 1), image names
that leave the data folder (absolute or with ``..``) or repeat, labelled keypoints far outside
their image (``common.stage_data.OUTSIDE_MARGIN``), boxes that are empty or off the image, an
``area`` that is not a number > 0, a ``num_keypoints`` that disagrees with the flags. JSON
nested too deeply to parse, a UTF-8 byte-order mark and numbers too large for a float are
handled here too.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

from common.motion_data import DataFormatError

# As far outside its image as a CSV keypoint may lie (common.stage_data.OUTSIDE_MARGIN; not
# imported, since stage_data imports this module's readers).
OUTSIDE_MARGIN = 0.25


class CocoFormatError(DataFormatError):
    """A COCO file does not have the expected layout or values."""


def is_number(value: Any) -> bool:
    """A finite int or float (not a bool, not a string, not an int too large for a float)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def is_id(value: Any) -> bool:
    """An integer id: ``True`` and ``"1"`` are not ids."""
    return isinstance(value, int) and not isinstance(value, bool)


def shown(value: Any) -> str:
    """A value as an error message shows it: its repr, cut to 40 characters."""
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:37]}..."


def fail(source: str, where: str, field: str, what: str) -> CocoFormatError:
    return CocoFormatError(f"{source}: {where}, field '{field}': {what}")


def read_json_file(path: str | Path, what: str, kind: type, expected: str) -> Any:
    """A JSON file whose top level is ``kind``; a missing, unreadable, too deeply nested or
    other-shaped file is one clear error naming ``what`` it should be and what was
    ``expected``. A UTF-8 byte-order mark is allowed."""
    path = Path(path)
    if path.is_dir():
        raise CocoFormatError(f"{path} is a folder; expected {what}, a JSON file")
    if not path.is_file():
        raise CocoFormatError(f"{what} not found: {path}")
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except RecursionError:
        raise CocoFormatError(f"{path}: cannot read as JSON: nested too deeply; expected "
                              f"{expected}") from None  # fmt: skip
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise CocoFormatError(f"{path}: cannot read as JSON: {error}") from error
    if not isinstance(data, kind):
        raise CocoFormatError(f"{path}: expected {expected}, got a JSON {type(data).__name__}")
    return data


def _check_list(data: Mapping, key: str, source: str) -> list:
    items = data.get(key)
    if not isinstance(items, list):
        raise CocoFormatError(f"{source}: field '{key}': expected a list")
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            raise CocoFormatError(f"{source}: field '{key}': entry {index} is not an object")
    return items


def check_file_name(name: Any, source: str, where: str) -> None:
    """A relative image name that stays under its image folder: no absolute path, drive or
    ``..`` part (a symlink placed inside the data folder by its owner is followed)."""
    if not isinstance(name, str) or not name.strip():
        raise fail(source, where, "file_name", f"expected a file name, got {name!r}")
    if any(ord(char) < 32 for char in name):
        raise fail(source, where, "file_name", f"{name!r} holds a control character (NUL, "
                   "newline, ...); no image file can have that name")
    posix, windows = PurePosixPath(name), PureWindowsPath(name)
    if posix.is_absolute() or windows.is_absolute() or windows.drive:
        raise fail(source, where, "file_name", f"{name!r} is an absolute path; image names "
                   "must be relative to the image folder under DATASET.ROOT")
    if ".." in posix.parts or ".." in windows.parts:
        raise fail(source, where, "file_name", f"{name!r} leaves the image folder ('..'); "
                   "image names must stay under DATASET.ROOT")


def _validate_images(images: list, source: str) -> dict[int, dict]:
    by_id: dict[int, dict] = {}
    names: dict[str, int] = {}
    for image in images:
        where = f"image id {image.get('id')!r}"
        if not is_id(image.get("id")) or image["id"] in by_id:
            raise fail(source, where, "id", "expected a unique integer")
        check_file_name(image.get("file_name"), source, where)
        if image["file_name"] in names:
            raise fail(source, where, "file_name", f"{image['file_name']!r} is also image id "
                       f"{names[image['file_name']]}; every image must be listed once")
        for key in ("width", "height"):
            if not is_id(image.get(key)) or image[key] <= 0:
                raise fail(source, where, key, f"expected a positive integer, got "
                           f"{shown(image.get(key))}")  # fmt: skip
        subject = image.get("subject")
        if "subject" in image and (not isinstance(subject, (str, int)) or subject == ""
                                   or isinstance(subject, bool)):
            raise fail(source, where, "subject",
                       f"expected a name or an integer, got {shown(subject)}")
        names[image["file_name"]] = image["id"]
        by_id[image["id"]] = image
    with_subject = sum("subject" in image for image in images)
    if 0 < with_subject < len(images):
        missing = next(image for image in images if "subject" not in image)
        raise fail(source, f"image id {missing['id']}", "subject",
                   f"missing, while {with_subject} of {len(images)} images have one; give every "
                   "image a subject or none (the folds are grouped by it)")
    return by_id


def _validate_categories(categories: list, source: str) -> dict[int, int]:
    joints: dict[int, int] = {}
    for category in categories:
        where = f"category id {category.get('id')!r}"
        if not is_id(category.get("id")) or category["id"] in joints:
            raise fail(source, where, "id", "expected a unique integer")
        names = category.get("keypoints")
        if (not isinstance(names, list) or not names
                or not all(isinstance(name, str) and name.strip() for name in names)):
            raise fail(source, where, "keypoints", "expected the list of keypoint names")
        if len(set(names)) != len(names):
            raise fail(source, where, "keypoints", "keypoint names must be unique")
        joints[category["id"]] = len(names)
    return joints


def validate_coco(data: Mapping, source: str) -> None:
    """Check the person-keypoints layout and values; errors name ``source``, the entry id and
    the field."""
    images = _validate_images(_check_list(data, "images", source), source)
    joints = _validate_categories(_check_list(data, "categories", source), source)
    seen: set[int] = set()
    for annotation in _check_list(data, "annotations", source):
        _validate_annotation(annotation, images, joints, source)
        if annotation["id"] in seen:
            raise fail(source, f"annotation id {annotation['id']}", "id",
                       "used by another annotation too; ids must be unique")
        seen.add(annotation["id"])


def _validate_annotation(annotation: Mapping, images: dict, joints: dict, source: str) -> None:
    where = f"annotation id {annotation.get('id')!r}"
    if not is_id(annotation.get("id")):
        raise fail(source, where, "id", f"expected an integer, got {annotation.get('id')!r}")
    image_id, category_id = annotation.get("image_id"), annotation.get("category_id")
    if not is_id(image_id) or image_id not in images:
        raise fail(source, where, "image_id", f"no image has id {image_id!r} (an integer)")
    if not is_id(category_id) or category_id not in joints:
        raise fail(source, where, "category_id", f"no category has id {category_id!r} "
                   f"(an integer; the file has {sorted(joints)})")
    count = joints[category_id]
    keypoints = annotation.get("keypoints")
    if not isinstance(keypoints, list) or len(keypoints) != 3 * count:
        got = len(keypoints) if isinstance(keypoints, list) else type(keypoints).__name__
        raise fail(source, where, "keypoints", f"expected {3 * count} numbers "
                   f"([x, y, v] for each of {count} keypoints), got {got}")
    bad = next((i for i, value in enumerate(keypoints) if not is_number(value)), None)
    if bad is not None:
        raise fail(source, where, "keypoints", f"value {bad} is {shown(keypoints[bad])}; every "
                   "value must be a finite number")
    if any(v not in (0, 1, 2) for v in keypoints[2::3]):
        raise fail(source, where, "keypoints", "every visibility v must be 0, 1 or 2")
    image = images[image_id]
    _check_keypoints_in_image(keypoints, image, source, where)
    labelled = sum(1 for v in keypoints[2::3] if v > 0)
    crowd = annotation.get("iscrowd", 0)
    if crowd not in (0, 1) or isinstance(crowd, float):
        raise fail(source, where, "iscrowd", f"expected 0 or 1, got {crowd!r}")
    _check_box(annotation.get("bbox"), image, source, where, empty_ok=bool(crowd) or not labelled)
    if "num_keypoints" in annotation and annotation["num_keypoints"] != labelled:
        raise fail(source, where, "num_keypoints", f"is {annotation['num_keypoints']!r} but "
                   f"{labelled} keypoints have v > 0")
    if "area" in annotation:
        area = annotation["area"]
        if not is_number(area) or area < 0 or (area == 0 and labelled and not crowd):
            raise fail(source, where, "area", f"expected a number > 0 (the person's area in "
                       f"pixels, the OKS scale), got {shown(area)}")


def _check_keypoints_in_image(keypoints: list, image: Mapping, source: str, where: str) -> None:
    """Labelled keypoints further than OUTSIDE_MARGIN of the image outside it are refused, as
    in a keypoint CSV; unlabelled (v = 0) ones are never read."""
    width, height = image["width"], image["height"]
    for joint in range(len(keypoints) // 3):
        x, y, v = keypoints[3 * joint: 3 * joint + 3]
        if v > 0 and not (-OUTSIDE_MARGIN * width <= x < (1 + OUTSIDE_MARGIN) * width
                          and -OUTSIDE_MARGIN * height <= y < (1 + OUTSIDE_MARGIN) * height):
            raise fail(source, where, "keypoints",
                       f"keypoint {joint} at ({x}, {y}) lies far outside its {width}x{height} "
                       f"image {image['file_name']!r} (more than {OUTSIDE_MARGIN:.0%} of its "
                       "size); do the annotations belong to this image (same resolution, x "
                       "before y)?")


def _check_box(box: Any, image: Mapping, source: str, where: str, empty_ok: bool) -> None:
    """[x, y, w, h] of finite numbers, w and h >= 0 (> 0 for a person with labelled keypoints),
    overlapping its image."""
    if not isinstance(box, list) or len(box) != 4 or not all(is_number(v) for v in box):
        raise fail(source, where, "bbox", f"expected [x, y, w, h] numbers, got {shown(box)}")
    x, y, w, h = box
    if w < 0 or h < 0 or (not empty_ok and (w == 0 or h == 0)):
        raise fail(source, where, "bbox", f"expected a width and height > 0, got {box!r}")
    if w > 0 and h > 0 and (x > image["width"] - 1 or y > image["height"] - 1 or x + w <= 0
                            or y + h <= 0):
        raise fail(source, where, "bbox", f"{box!r} lies outside its {image['width']}x"
                   f"{image['height']} image {image['file_name']!r}")
