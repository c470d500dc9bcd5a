"""Box files (``test_annotation.pkl``): pickled lists of dicts with ``filename``, ``bbox``
[x, y, w, h], ``width``, ``height`` and ``area`` (REFERENCE.md section 1), read through an
unpickler that refuses any global but plain containers and numpy arrays, then checked field by
field."""

from __future__ import annotations

import math
import pickle
from collections.abc import Iterable, Mapping
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
