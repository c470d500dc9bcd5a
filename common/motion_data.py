"""Readers and writers of the motion competition's files, with errors that say what is wrong.

Formats (REFERENCE.md section 1): keypoint CSVs (``train_df.csv``, ``sample_submission.csv``,
predictions) have an ``image`` column then ``<name>_x, <name>_y`` per keypoint in pixels of the
original image. Box files (``test_annotation.pkl``) are read and written by
``common.box_files``.
"""

from __future__ import annotations

import csv
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from common.errors import UserError
from common.io import atomic_path
from common.keypoints import MOTION_KEYPOINTS, coordinate_columns

IMAGE_COLUMN = "image"
_SHOW = 5  # how many offending names an error message lists


_LOG = logging.getLogger(__name__)
COLLAPSED_SPREAD = 1.0  # px: all of an image's keypoints closer than this means no pose


class DataFormatError(UserError, ValueError):
    """A data file or table does not have the expected layout or values."""


def first_items(items: Sequence[Any], count: int = _SHOW) -> str:
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
        raise DataFormatError(f"{source}: duplicated columns {first_items(duplicated)}")
    missing = [name for name in expected if name not in columns]
    extra = [name for name in columns if name not in expected]
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"missing columns {first_items(missing)}")
        if extra:
            parts.append(f"unexpected columns {first_items(extra)}")
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
        raise DataFormatError(f"{source}: duplicated images {first_items(duplicated)}")


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
        raise DataFormatError(f"keypoint table lacks columns {first_items(missing)}")
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


def check_predictions(path: str | Path, image_names: Sequence[str], keypoints: np.ndarray) -> None:
    """Refuse NaN or inf coordinates and warn when every keypoint of an image is on one point:
    both come from broken weights or inputs, and a file of them would still be scored."""
    bad = np.flatnonzero(~np.isfinite(keypoints).all(axis=(1, 2)))
    if bad.size:
        raise DataFormatError(
            f"{path} not written: the predictions of {bad.size} images are NaN or infinite "
            f"({first_items([image_names[i] for i in bad])}); check the model's weights and inputs"
        )
    if keypoints.shape[1] > 1:
        spread = np.ptp(keypoints, axis=1).max(axis=1)
        collapsed = np.flatnonzero(spread < COLLAPSED_SPREAD)
        if collapsed.size:
            _LOG.warning(
                "%s: every keypoint of %d of %d images lies on one point (%s): the model "
                "predicts no pose; check its weights", path, collapsed.size, len(image_names),
                first_items([image_names[i] for i in collapsed]),
            )  # fmt: skip


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
        raise DataFormatError(f"{source}: duplicated images {first_items(duplicated)}")
    truth_names = set(truth_df[IMAGE_COLUMN].astype(str))
    pred_set = set(pred_names)
    missing = sorted(truth_names - pred_set)
    if missing:
        raise DataFormatError(
            f"{source}: {len(missing)} images of the truth have no row: {first_items(missing)}"
        )
    extra = sorted(pred_set - truth_names)
    if extra:
        raise DataFormatError(
            f"{source}: {len(extra)} rows name images not in the truth: {first_items(extra)}"
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
