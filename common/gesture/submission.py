"""The competition's submission files: sample_submission.csv (the test rows in order, as
``Image_Path`` = ``./test\\<folder>``, and ``Label_<pose_id>`` columns ascending), the test
answers (``Image_Path``, ``pose_id``) and the submission writer."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from common.gesture.data import GestureDataError
from common.io import atomic_path

IMAGE_PATH_COLUMN = "Image_Path"
LABEL_PREFIX = "Label_"


@dataclass(frozen=True)
class SubmissionLayout:
    """What sample_submission.csv fixes: the test rows (in order) and the class columns."""

    image_paths: tuple[str, ...]
    folders: tuple[str, ...]
    class_ids: tuple[int, ...]

    @property
    def columns(self) -> list[str]:
        return [IMAGE_PATH_COLUMN] + [f"{LABEL_PREFIX}{pose_id}" for pose_id in self.class_ids]


def submission_image_path(folder: str) -> str:
    """The competition's ``Image_Path`` of a test folder: ``./test\\<folder>``."""
    return f"./test\\{folder}"


def folder_from_image_path(image_path: str) -> str:
    """The folder name at the end of an ``Image_Path`` (either slash)."""
    parts = [part for part in re.split(r"[\\/]", str(image_path).strip()) if part not in ("", ".")]
    if not parts:
        raise GestureDataError(f"cannot read a folder name from Image_Path {image_path!r}")
    return parts[-1]


def read_sample_submission(path: str | Path) -> SubmissionLayout:
    """The test rows and class columns of sample_submission.csv, checked."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"sample submission not found: {path}")
    header = pd.read_csv(path, nrows=0).columns.tolist()
    if not header or header[0] != IMAGE_PATH_COLUMN:
        raise GestureDataError(
            f"{path}: the first column must be {IMAGE_PATH_COLUMN!r}, got {header[:1]}"
        )
    class_ids = []
    for column in header[1:]:
        if not column.startswith(LABEL_PREFIX) or not column[len(LABEL_PREFIX) :].isdigit():
            raise GestureDataError(f"{path}: column {column!r} is not Label_<pose_id>")
        class_ids.append(int(column[len(LABEL_PREFIX) :]))
    if not class_ids:
        raise GestureDataError(f"{path}: no Label_<pose_id> columns")
    if class_ids != sorted(set(class_ids)):
        raise GestureDataError(f"{path}: Label_<pose_id> columns must be unique and ascending")
    image_paths = pd.read_csv(path, usecols=[IMAGE_PATH_COLUMN], dtype=str)[IMAGE_PATH_COLUMN]
    if image_paths.isna().any():
        row = int(np.flatnonzero(image_paths.isna().to_numpy())[0]) + 2
        raise GestureDataError(f"{path}: row {row}, column {IMAGE_PATH_COLUMN} is empty")
    folders = [folder_from_image_path(value) for value in image_paths]
    repeated = sorted({f for f in folders if folders.count(f) > 1})
    if repeated:
        raise GestureDataError(f"{path}: test folders listed more than once: {repeated[:10]}")
    return SubmissionLayout(tuple(image_paths), tuple(folders), tuple(class_ids))


def read_test_answers(path: str | Path) -> dict[str, int]:
    """test_answer.csv (``Image_Path``, ``pose_id``) as {folder: pose_id}."""
    path = Path(path)
    table = pd.read_csv(path, dtype={IMAGE_PATH_COLUMN: str})
    for column in (IMAGE_PATH_COLUMN, "pose_id"):
        if column not in table.columns:
            raise GestureDataError(f"{path}: missing column {column!r}")
    pose_ids = pd.to_numeric(table["pose_id"], errors="coerce")
    answers = {}
    for row, (image_path, pose_id) in enumerate(
        zip(table[IMAGE_PATH_COLUMN], pose_ids, strict=True)
    ):
        if pd.isna(pose_id) or float(pose_id) != int(pose_id):
            raise GestureDataError(
                f"{path}: row {row + 2}, column pose_id: expected an integer, "
                f"got {table['pose_id'].iloc[row]!r}"
            )
        answers[folder_from_image_path(image_path)] = int(pose_id)
    return answers


def write_submission(path: str | Path, layout: SubmissionLayout, probabilities: np.ndarray) -> Path:
    """Write rows in the sample submission's order and columns, atomically."""
    probabilities = np.asarray(probabilities, dtype=np.float64)
    expected = (len(layout.image_paths), len(layout.class_ids))
    if probabilities.shape != expected:
        raise ValueError(f"probabilities {probabilities.shape}, expected {expected}")
    table = pd.DataFrame(probabilities, columns=layout.columns[1:])
    table.insert(0, IMAGE_PATH_COLUMN, list(layout.image_paths))
    path = Path(path)
    with atomic_path(path) as tmp:
        table.to_csv(tmp, index=False)
    return path
