"""Readers and writers of the motion competition's files, with errors that say what is wrong.

Formats (REFERENCE.md section 1): keypoint CSVs (``train_df.csv``, ``sample_submission.csv``,
predictions) have an ``image`` column then ``<name>_x, <name>_y`` per keypoint in pixels of the
original image; box files (``test_annotation.pkl``) are pickled lists of dicts with
``filename``, ``bbox`` [x, y, w, h], ``width``, ``height`` and ``area``.
"""

from __future__ import annotations

import csv
import math
import pickle
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from common.errors import UserError
from common.io import atomic_path
from common.keypoints import MOTION_KEYPOINTS, coordinate_columns

IMAGE_COLUMN = "image"
BOX_FIELDS = ("filename", "bbox", "width", "height", "area")
_SHOW = 5  # how many offending names an error message lists


class DataFormatError(UserError, ValueError):
    """A data file or table does not have the expected layout or values."""


def _first(items: Sequence[Any], count: int = _SHOW) -> str:
    shown = ", ".join(repr(item) for item in list(items)[:count])
    more = f" ... ({len(items)} in all)" if len(items) > count else ""
    return shown + more


# --------------------------------------------------------------------------- keypoint CSVs


def check_utf8(path: str | Path) -> None:
    """Refuse a text file that is not UTF-8, naming the first bad byte's offset and line
    (a CSV saved as Latin-1 or UTF-16 by a spreadsheet would otherwise end in a traceback)."""
    data = Path(path).read_bytes()
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        raise DataFormatError(
            f"{path}: not UTF-8 text: byte {data[error.start]:#04x} at offset {error.start} "
            f"(line {line}); save the file as UTF-8"
        ) from None


def _check_columns(columns: Sequence[str], expected: Sequence[str], source: str) -> None:
    duplicated = sorted({name for name in columns if list(columns).count(name) > 1})
    if duplicated:
        raise DataFormatError(f"{source}: duplicated columns {_first(duplicated)}")
    missing = [name for name in expected if name not in columns]
    extra = [name for name in columns if name not in expected]
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"missing columns {_first(missing)}")
        if extra:
            parts.append(f"unexpected columns {_first(extra)}")
        raise DataFormatError(
            f"{source}: {'; '.join(parts)} (expected '{IMAGE_COLUMN}' then "
            f"{len(expected) - 1} coordinate columns '<keypoint>_x', '<keypoint>_y')"
        )


def _check_image_names(names: pd.Series, source: str) -> None:
    for row, name in enumerate(names, start=1):
        if not isinstance(name, str) or not name.strip():
            raise DataFormatError(
                f"{source}: row {row}, column '{IMAGE_COLUMN}': expected an image file name, "
                f"got {name!r}"
            )
    duplicated = names[names.duplicated()].unique().tolist()
    if duplicated:
        raise DataFormatError(f"{source}: duplicated images {_first(duplicated)}")


def numeric_columns(df: pd.DataFrame, columns: Sequence[str], source: str) -> pd.DataFrame:
    """``columns`` of ``df`` as float64; the first non-finite or non-numeric cell is an error
    naming ``source``, the 1-based data row, the image and the column."""
    converted = {}
    for column in columns:
        raw = df[column]
        if pd.api.types.is_numeric_dtype(raw) and not pd.api.types.is_bool_dtype(raw):
            values = raw.astype(np.float64)
        else:
            values = pd.to_numeric(raw.astype(str).str.strip(), errors="coerce").astype(np.float64)
        bad = ~np.isfinite(values.to_numpy())
        if bad.any():
            index = int(np.flatnonzero(bad)[0])
            image = df[IMAGE_COLUMN].iloc[index] if IMAGE_COLUMN in df.columns else "?"
            got = raw.iloc[index]
            got_text = "an empty cell" if pd.isna(got) or str(got).strip() == "" else repr(got)
            raise DataFormatError(
                f"{source}: row {index + 1} (image {image!r}), column {column!r}: expected a "
                f"finite number, got {got_text} ({int(bad.sum())} bad cells in this column)"
            )
        converted[column] = values.to_numpy()
    return pd.DataFrame(converted, index=df.index)


def read_keypoint_csv(path: str | Path, names: Sequence[str] = MOTION_KEYPOINTS) -> pd.DataFrame:
    """Read and validate a keypoint CSV; columns come back as ``image`` + coordinate columns.

    Every cell is checked so that a bad file fails here, with its row and column, rather than
    as a NaN loss or a silent misalignment later.
    """
    path = Path(path)
    if not path.is_file():
        raise DataFormatError(f"keypoint CSV not found: {path}")
    source = str(path)
    check_utf8(path)
    with open(path, newline="", encoding="utf-8-sig") as handle:
        header = next(csv.reader(handle), None)
    if not header:
        raise DataFormatError(f"{source}: empty file (expected a header line)")
    header = [name.strip() for name in header]
    if header[0] != IMAGE_COLUMN:
        raise DataFormatError(
            f"{source}: the first column must be '{IMAGE_COLUMN}', got {header[0]!r}"
        )
    coords = coordinate_columns(tuple(names))
    _check_columns(header, [IMAGE_COLUMN, *coords], source)
    try:
        raw = pd.read_csv(
            path,
            dtype=str,
            keep_default_na=False,
            na_filter=False,
            encoding="utf-8-sig",
        )  # no skipinitialspace: a name's leading spaces are part of it
    except (pd.errors.ParserError, ValueError) as error:
        raise DataFormatError(f"{source}: cannot parse as CSV: {error}") from error
    raw.columns = header
    _check_image_names(raw[IMAGE_COLUMN], source)
    values = numeric_columns(raw, coords, source)
    frame = pd.concat([raw[[IMAGE_COLUMN]].astype(str), values], axis=1)
    return frame.reset_index(drop=True)


def keypoints_array(df: pd.DataFrame, names: Sequence[str] = MOTION_KEYPOINTS) -> np.ndarray:
    """The coordinates of a keypoint table as an (N, J, 2) float64 array."""
    columns = coordinate_columns(tuple(names))
    missing = [name for name in columns if name not in df.columns]
    if missing:
        raise DataFormatError(f"keypoint table lacks columns {_first(missing)}")
    return df[columns].to_numpy(dtype=np.float64).reshape(len(df), len(names), 2)


def write_keypoint_csv(
    path: str | Path,
    image_names: Sequence[str],
    keypoints: np.ndarray,
    names: Sequence[str] = MOTION_KEYPOINTS,
) -> None:
    """Write ``image`` + ``x0, y0, x1, y1 ...`` atomically, in the competition's layout."""
    keypoints = np.asarray(keypoints, dtype=np.float64)
    if keypoints.shape != (len(image_names), len(names), 2):
        raise ValueError(
            f"keypoints must have shape ({len(image_names)}, {len(names)}, 2) for "
            f"{len(image_names)} images, got {keypoints.shape}"
        )
    columns = coordinate_columns(tuple(names))
    frame = pd.DataFrame(keypoints.reshape(len(image_names), len(columns)), columns=columns)
    frame.insert(0, IMAGE_COLUMN, [str(name) for name in image_names])
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)


def validate_submission(
    pred_df: pd.DataFrame, truth_df: pd.DataFrame, source: str = "prediction"
) -> None:
    """Refuse a prediction table that cannot be scored against ``truth_df``.

    Checks columns (same names, same order), then rows (same image set, no duplicates), then
    values (finite numbers), and names the first problem found; ``source`` names the table
    (e.g. its file) in the message.
    """
    expected = list(truth_df.columns)
    got = [str(name) for name in pred_df.columns]
    if IMAGE_COLUMN not in expected:
        raise DataFormatError(f"the truth table has no '{IMAGE_COLUMN}' column")
    _check_columns(got, expected, source)
    if got != expected:
        position = next(i for i, (a, b) in enumerate(zip(got, expected, strict=True)) if a != b)
        raise DataFormatError(
            f"{source}: columns are in a different order than the truth: column "
            f"{position + 1} is {got[position]!r}, expected {expected[position]!r}"
        )
    pred_names = pred_df[IMAGE_COLUMN].astype(str)
    duplicated = pred_names[pred_names.duplicated()].unique().tolist()
    if duplicated:
        raise DataFormatError(f"{source}: duplicated images {_first(duplicated)}")
    truth_names = set(truth_df[IMAGE_COLUMN].astype(str))
    pred_set = set(pred_names)
    missing = sorted(truth_names - pred_set)
    if missing:
        raise DataFormatError(
            f"{source}: {len(missing)} images of the truth have no row: {_first(missing)}"
        )
    extra = sorted(pred_set - truth_names)
    if extra:
        raise DataFormatError(
            f"{source}: {len(extra)} rows name images not in the truth: {_first(extra)}"
        )
    numeric_columns(pred_df, [name for name in expected if name != IMAGE_COLUMN], source)


def check_keypoints_inside(
    keypoints: np.ndarray,
    image_names: Sequence[str],
    sizes: Sequence[tuple[int, int]] | np.ndarray | tuple[int, int],
    tolerance: float = 0.0,
    names: Sequence[str] = MOTION_KEYPOINTS,
) -> None:
    """Raise if a keypoint lies outside its image (0 <= x < w, 0 <= y < h, +- ``tolerance``).

    ``sizes`` is one (width, height) per image, or a single pair for all of them.
    """
    keypoints = np.asarray(keypoints, dtype=np.float64)
    sizes_array = np.asarray(sizes, dtype=np.float64)
    if sizes_array.shape == (2,):
        sizes_array = np.broadcast_to(sizes_array, (len(keypoints), 2))
    if sizes_array.shape != (len(keypoints), 2) or len(image_names) != len(keypoints):
        raise ValueError(
            f"need one name and one (width, height) per image: {len(keypoints)} keypoint rows, "
            f"{len(image_names)} names, sizes of shape {sizes_array.shape}"
        )
    low = -tolerance
    high = sizes_array[:, None, :] + tolerance
    inside = (keypoints >= low) & (keypoints < high)
    outside = ~inside.all(axis=2)
    if outside.any():
        rows, joints = np.nonzero(outside)
        described = [
            f"{image_names[r]}: {names[j] if j < len(names) else j} at "
            f"({keypoints[r, j, 0]:.1f}, {keypoints[r, j, 1]:.1f}) outside "
            f"{int(sizes_array[r, 0])}x{int(sizes_array[r, 1])}"
            for r, j in zip(rows[:_SHOW], joints[:_SHOW], strict=True)
        ]
        raise DataFormatError(
            f"{len(rows)} keypoints lie outside their images (tolerance {tolerance} px): "
            + "; ".join(described)
        )


# --------------------------------------------------------------------------- file names

_NAME_PATTERN = re.compile(
    r"^(?P<subject>\d{3})-(?P<a>\d+)-(?P<b>\d+)-(?P<code>\d{2})-(?P<zone>Z\d+)_"
    r"(?P<camera>[A-Z])-(?P<frame>\d{7})\.jpg$"
)


@dataclass(frozen=True)
class MotionName:
    """The parts of a competition image name ``NNN-a-b-CC-Z<k>_<cam>-<frame>.jpg``."""

    subject: str
    a: int
    b: int
    code: str
    zone: str
    camera: str
    frame: int

    def sequence_key(self) -> str:
        return f"{self.subject}-{self.a}-{self.b}-{self.code}-{self.zone}_{self.camera}"

    def filename(self) -> str:
        return f"{self.sequence_key()}-{self.frame:07d}.jpg"


def parse_motion_filename(name: str) -> MotionName:
    """Split an image name (a bare name or a path) into subject, action, camera and frame."""
    base = Path(str(name)).name
    match = _NAME_PATTERN.match(base)
    if match is None:
        raise ValueError(
            f"image name {name!r} does not follow the pattern NNN-a-b-CC-Z<k>_<camera>-"
            "<7-digit frame>.jpg (e.g. 001-1-1-01-Z17_A-0000001.jpg)"
        )
    return MotionName(
        subject=match["subject"],
        a=int(match["a"]),
        b=int(match["b"]),
        code=match["code"],
        zone=match["zone"],
        camera=match["camera"],
        frame=int(match["frame"]),
    )


def sequence_key(name: str) -> str:
    """``NNN-a-b-CC-Zk_cam``: the frames of one subject filmed by one camera."""
    return parse_motion_filename(name).sequence_key()


# --------------------------------------------------------------------------- box pickles

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
                f"{path}: {len(lacking)} test images have no box record: {_first(lacking)}; "
                "run tools/test.py on a box config (stage one) to write it"
            )
        expected_set = set(expected)
        unknown = [name for name in boxes if name not in expected_set]
        if unknown:
            raise DataFormatError(
                f"{path}: {len(unknown)} records name images that are not in the test set: "
                f"{_first(unknown)}"
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
