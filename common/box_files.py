"""Box files, read and checked in one place.

``test_annotation.pkl``: pickled lists of dicts with ``filename``, ``bbox`` [x, y, w, h],
``width``, ``height`` and ``area`` (REFERENCE.md section 1), read through an unpickler that
refuses any global but plain containers and numpy arrays, then checked field by field.

JSON box lists (``read_box_list``): one reader for every JSON form a user or a tool writes,
a list of ``{file_name | frame | image_id, bbox [x, y, w, h], score?, category_id?}``: this
project's ``keypoints.json``, hand-written boxes and COCO detection results
(``TEST.COCO_BBOX_FILE``, ``[{image_id, category_id, bbox, score}]``). Every box must be four
finite numbers of positive size, ids whole numbers, scores finite numbers.
"""

from __future__ import annotations

import json
import math
import pickle
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from common.io import atomic_path
from common.motion_data import DataFormatError, first_items

BOX_FIELDS = ("filename", "bbox", "width", "height", "area")

_ALLOWED_GLOBALS = {
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
    ("_codecs", "encode"),  # how protocol-2 pickles of numpy store raw bytes
}


class _RestrictedUnpickler(pickle.Unpickler):
    """Builds only plain containers, scalars and numpy arrays; any other global is refused."""

    def __init__(self, handle: Any, source: str) -> None:
        super().__init__(handle)
        self._source = source

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED_GLOBALS:
            return super().find_class(module, name)
        raise DataFormatError(
            f"{self._source}: refused to load global '{module}.{name}' (box files may hold "
            "only lists, dicts, strings, numbers and numpy arrays)"
        )


def _restricted_load(path: Path) -> Any:
    with open(path, "rb") as handle:
        try:
            return _RestrictedUnpickler(handle, str(path)).load()
        except DataFormatError:
            raise
        except Exception as error:  # a truncated or garbled file, whatever the opcode
            raise DataFormatError(f"{path}: not a readable pickle: {error}") from error


def _plain(value: Any) -> Any:
    """numpy scalars and arrays as python floats/ints/lists, recursively."""
    if isinstance(value, np.ndarray):
        return _plain(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Mapping):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value


def _finite_number(value: Any) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(float(value))
    )


def _validate_box_record(record: Any, index: int, source: str) -> dict:
    where = f"{source}: record {index}"
    if not isinstance(record, Mapping):
        raise DataFormatError(f"{where}: expected a dict, got {type(record).__name__}")
    record = _plain(record)
    missing = [field for field in BOX_FIELDS if field not in record]
    if missing:
        raise DataFormatError(f"{where}: missing fields {missing} (needs {list(BOX_FIELDS)})")
    filename = record["filename"]
    if not isinstance(filename, str) or not filename:
        raise DataFormatError(f"{where}: 'filename' must be a non-empty string, got {filename!r}")
    where = f"{where} ({filename})"
    bbox = record["bbox"]
    if not isinstance(bbox, list) or len(bbox) != 4 or not all(map(_finite_number, bbox)):
        raise DataFormatError(
            f"{where}: 'bbox' must be 4 finite numbers [x, y, w, h], got {bbox!r}"
        )
    x, y, w, h = (float(v) for v in bbox)
    if w <= 0 or h <= 0:
        raise DataFormatError(
            f"{where}: box [x, y, w, h] = {[x, y, w, h]} has zero or negative size; stage two "
            "would silently drop this image"
        )
    for field in ("width", "height", "area"):
        if not _finite_number(record[field]) or record[field] <= 0:
            raise DataFormatError(
                f"{where}: '{field}' must be a positive number, got {record[field]!r}"
            )
    record["bbox"] = [x, y, w, h]
    record["width"] = (
        int(record["width"]) if float(record["width"]).is_integer() else float(record["width"])
    )
    record["height"] = (
        int(record["height"]) if float(record["height"]).is_integer() else float(record["height"])
    )
    record["area"] = float(record["area"])
    return record


def read_box_annotations(
    path: str | Path, expected_filenames: Iterable[str] | None = None
) -> dict[str, dict]:
    """Read a box file (``test_annotation.pkl``) safely; one validated record per filename.

    With ``expected_filenames``, every expected image must have a record and no record may name
    another image.
    """
    path = Path(path)
    if not path.is_file():
        hint = " (run tools/test.py on a box config (stage one) to write it)"
        raise DataFormatError(f"box file not found: {path}{hint}")
    records = _restricted_load(path)
    if not isinstance(records, list | tuple):
        raise DataFormatError(
            f"{path}: expected a list of box records, got {type(records).__name__}"
        )
    boxes: dict[str, dict] = {}
    for index, raw in enumerate(records):
        record = _validate_box_record(raw, index, str(path))
        if record["filename"] in boxes:
            raise DataFormatError(
                f"{path}: record {index}: duplicated filename {record['filename']!r}"
            )
        boxes[record["filename"]] = record
    if expected_filenames is not None:
        expected = [str(name) for name in expected_filenames]
        lacking = [name for name in expected if name not in boxes]
        if lacking:
            raise DataFormatError(
                f"{path}: {len(lacking)} test images have no box record: {first_items(lacking)}; "
                "run tools/test.py on a box config (stage one) to write it"
            )
        expected_set = set(expected)
        unknown = [name for name in boxes if name not in expected_set]
        if unknown:
            raise DataFormatError(
                f"{path}: {len(unknown)} records name images that are not in the test set: "
                f"{first_items(unknown)}"
            )
    return boxes


def write_box_annotations(path: str | Path, records: Iterable[Mapping[str, Any]]) -> None:
    """Pickle box records atomically as plain python types (no numpy), readable anywhere."""
    plain = []
    for record in records:
        item = _plain(record)
        if "area" not in item and "bbox" in item:
            item["area"] = float(item["bbox"][2]) * float(item["bbox"][3])
        if "bbox" in item:
            item["bbox"] = [float(v) for v in item["bbox"]]
        plain.append(item)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            pickle.dump(plain, handle, protocol=4)


# --------------------------------------------------------------------------- JSON box lists

BOX_KEYS = ("file_name", "frame", "image_id")  # what a JSON box names its picture by


@dataclass(frozen=True)
class GivenBox:
    """One box of a JSON box list: the picture it belongs to (a file name, or a frame or image
    id), [x, y, w, h] in that picture's pixels, its score and category (None: not given)."""

    key: str | int
    box: tuple[float, float, float, float]
    score: float
    category_id: int | None


@dataclass
class BoxList:
    """A JSON box list: what its boxes are keyed by (one of ``BOX_KEYS``) and the boxes."""

    source: str
    key_kind: str
    boxes: list[GivenBox]


def _whole_number(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def read_json_text(path: Path, what: str) -> Any:
    """Parse a JSON file; missing, unreadable, non-UTF-8, malformed or absurdly nested files
    are one ``DataFormatError`` naming ``what`` the file was given as."""
    if not path.is_file():
        problem = "is a folder, not a file" if path.is_dir() else "not found"
        raise DataFormatError(f"{what} {problem}: {path}; check the path")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise DataFormatError(f"{what} {path}: cannot read as JSON: {error}") from None
    except RecursionError:
        raise DataFormatError(f"{what} {path}: JSON nested too deeply to be a box list") from None


def _box_entry(entry: Any, where: str) -> tuple[str, GivenBox]:
    if not isinstance(entry, Mapping):
        raise DataFormatError(f"{where}: expected an object {{file_name | frame | image_id, "
                              f"bbox [x, y, w, h], score}}, got {type(entry).__name__}")
    kinds = [key for key in BOX_KEYS if key in entry]
    if len(kinds) != 1:
        found = f"both {' and '.join(kinds)}" if kinds else f"fields {sorted(entry)[:8]}"
        raise DataFormatError(f"{where}: needs exactly one of {', '.join(BOX_KEYS)} to name "
                              f"its picture, found {found}")
    kind = kinds[0]
    key = entry[kind]
    if kind == "file_name":
        if not isinstance(key, str) or not key:
            raise DataFormatError(f"{where}: 'file_name' must be a non-empty string, got "
                                  f"{key!r}")
    elif not _whole_number(key) or key < 0:
        raise DataFormatError(f"{where}: '{kind}' must be a whole number >= 0, got {key!r}")
    box = entry.get("bbox")
    if not isinstance(box, list) or len(box) != 4 or not all(map(_finite_number, box)):
        raise DataFormatError(f"{where}: 'bbox' must be 4 finite numbers [x, y, w, h], got "
                              f"{box!r}")
    if box[2] <= 0 or box[3] <= 0:
        raise DataFormatError(f"{where}: 'bbox' {box} has zero or negative width or height; "
                              "boxes are [x, y, width, height] with positive sizes")
    score = entry.get("score", 1.0)
    if not _finite_number(score):
        raise DataFormatError(f"{where}: 'score' must be a finite number, got {score!r}")
    category = entry.get("category_id")
    if category is not None and not _whole_number(category):
        raise DataFormatError(f"{where}: 'category_id' must be a whole number, got "
                              f"{category!r}")
    return kind, GivenBox(key, tuple(float(v) for v in box), float(score), category)


def read_box_list(path: str | Path, what: str = "box file") -> BoxList:
    """Read and check a JSON box list (see the module docstring); one error names the file,
    the entry and the field."""
    path = Path(path)
    entries = read_json_text(path, what)
    if not isinstance(entries, list):
        raise DataFormatError(f"{what} {path}: expected a JSON list of boxes {{file_name | "
                              f"frame | image_id, bbox [x, y, w, h], score}}, got a JSON "
                              f"{type(entries).__name__}")
    boxes, kinds = [], set()
    for index, entry in enumerate(entries):
        kind, box = _box_entry(entry, f"{what} {path}: entry {index}")
        kinds.add(kind)
        if len(kinds) > 1:
            raise DataFormatError(f"{what} {path}: entry {index} names its picture by '{kind}' "
                                  f"and earlier ones by '{next(iter(kinds - {kind}))}': use one "
                                  "kind of key in a file")
        boxes.append(box)
    return BoxList(str(path), kinds.pop() if kinds else "file_name", boxes)
