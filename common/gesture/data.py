"""The gesture data as the competition ships it, read with checks that name the broken part.

Layout under the data root::

    train/<folder>/<n>.png          frames 0..N-1 of one clip
    train/<folder>/<folder>.json    {"action": [pose_id, name], "actor": ..., "image": ...,
                                     "annotations": [{"data": [[x, y, z], ...], "image_id": ..}]}
    test/<folder>/<n>.png           (optionally test/<folder>/<folder>.json without "action")
    hand_gesture_pose.csv           pose_id, pose_name, view_type, gesture_type, hand_type, ...
    sample_submission.csv           Image_Path (``./test\\<folder>``), Label_<pose_id> ascending

``annotations[i]`` belongs to ``<i>.png``; each holds 21 (one hand) or 42 (two hands) points.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from common.errors import UserError

POINTS_PER_HAND = 21
VALID_POINT_COUNTS = (POINTS_PER_HAND, 2 * POINTS_PER_HAND)
POSE_COLUMNS = ("pose_id", "pose_name", "view_type", "gesture_type", "hand_type")
HAND_TYPES = ("left", "right", "both")
_FRAME_NAME = re.compile(r"^(\d+)\.png$")


class GestureDataError(UserError, ValueError):
    """A gesture file or folder does not have the competition's format."""


@dataclass(frozen=True)
class GestureClip:
    """One folder: its frames in order and, where a JSON exists, its label and keypoints.

    ``keypoints[i]`` is the (K, 2) array of ``frame_paths[i]`` in image pixels (K = 21 or 42).
    """

    split: str
    folder: str
    frame_paths: tuple[Path, ...]
    pose_id: int | None
    keypoints: tuple[np.ndarray, ...] | None
    actor: str | None = None

    @property
    def num_frames(self) -> int:
        return len(self.frame_paths)


def natural_key(name: str) -> tuple:
    """Sort key that puts ``2`` before ``10`` (digit runs compare as numbers)."""
    return tuple(int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name))


def read_pose_table(path: str | Path) -> pd.DataFrame:
    """hand_gesture_pose.csv with its required columns checked; sorted by pose_id."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"pose table not found: {path}")
    table = pd.read_csv(
        path, dtype={"pose_name": str, "view_type": str, "gesture_type": str, "hand_type": str}
    )
    missing = [column for column in POSE_COLUMNS if column not in table.columns]
    if missing:
        raise GestureDataError(f"{path}: missing columns {missing} (found {list(table.columns)})")
    ids = pd.to_numeric(table["pose_id"], errors="coerce")
    bad = [
        i
        for i, (raw, value) in enumerate(zip(table["pose_id"], ids, strict=True))
        if pd.isna(value) or float(value) != int(value) or isinstance(raw, bool)
    ]
    if bad:
        raise GestureDataError(
            f"{path}: row {bad[0] + 2}, column pose_id: expected an integer, "
            f"got {table['pose_id'].iloc[bad[0]]!r}"
        )
    table["pose_id"] = ids.astype(int)
    duplicated = table["pose_id"][table["pose_id"].duplicated()].tolist()
    if duplicated:
        raise GestureDataError(f"{path}: pose_id values repeated: {sorted(set(duplicated))}")
    for row, hand in enumerate(table["hand_type"]):
        if hand not in HAND_TYPES:
            raise GestureDataError(
                f"{path}: row {row + 2}, column hand_type: expected one of {HAND_TYPES}, "
                f"got {hand!r}"
            )
    return table.sort_values("pose_id", kind="stable").reset_index(drop=True)


def list_frames(folder: Path) -> list[Path]:
    """The ``<n>.png`` frames of a clip folder in frame order; they must be 0..N-1."""
    numbered = []
    for path in folder.glob("*.png"):
        match = _FRAME_NAME.match(path.name)
        if match is None:
            raise GestureDataError(f"{path}: frame files must be named <n>.png (n = 0, 1, ...)")
        numbered.append((int(match.group(1)), path))
    if not numbered:
        raise GestureDataError(f"{folder}: no <n>.png frames")
    numbered.sort()
    numbers = [n for n, _ in numbered]
    if numbers != list(range(len(numbers))):
        missing = sorted(set(range(max(numbers) + 1)) - set(numbers))
        raise GestureDataError(
            f"{folder}: frames must be numbered 0..{len(numbers) - 1} without gaps; "
            f"missing {missing[:10]}"
        )
    return [path for _, path in numbered]


def _parse_point_list(data: object, where: str) -> np.ndarray:
    if not isinstance(data, list) or not data:
        raise GestureDataError(f"{where}: 'data' must be a non-empty list of [x, y, z] points")
    if len(data) not in VALID_POINT_COUNTS:
        raise GestureDataError(
            f"{where}: {len(data)} points; expected {POINTS_PER_HAND} (one hand) or "
            f"{2 * POINTS_PER_HAND} (two hands)"
        )
    points = np.empty((len(data), 2), dtype=np.float64)
    for index, point in enumerate(data):
        if not isinstance(point, list | tuple) or len(point) not in (2, 3):
            raise GestureDataError(f"{where}, point {index}: expected [x, y, z], got {point!r}")
        for axis in range(2):
            value = point[axis]
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise GestureDataError(
                    f"{where}, point {index}: coordinate {'xy'[axis]} is not a number: {value!r}"
                )
            if not math.isfinite(value):
                raise GestureDataError(
                    f"{where}, point {index}: coordinate {'xy'[axis]} is not finite: {value!r}"
                )
            points[index, axis] = value
    return points


def read_clip_json(
    json_path: Path,
    num_frames: int,
    known_pose_ids: Sequence[int] | None = None,
    require_action: bool = True,
) -> tuple[int | None, tuple[np.ndarray, ...], str | None]:
    """(pose_id, per-frame (K, 2) keypoints, actor) of one clip's JSON, checked against its
    frame count and (when given) the known pose ids."""
    try:
        content = json.loads(json_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise GestureDataError(f"{json_path}: cannot read JSON ({exc})") from exc
    if not isinstance(content, dict):
        raise GestureDataError(f"{json_path}: expected a JSON object at the top level")
    pose_id = None
    if require_action or "action" in content:
        action = content.get("action")
        if not isinstance(action, list) or len(action) < 1:
            raise GestureDataError(f"{json_path}: 'action' must be [pose_id, name], got {action!r}")
        raw_id = action[0]
        if isinstance(raw_id, bool) or not isinstance(raw_id, int | float | str):
            raise GestureDataError(f"{json_path}: action pose id is not an integer: {raw_id!r}")
        try:
            pose_id = int(raw_id)
        except ValueError as exc:
            raise GestureDataError(
                f"{json_path}: action pose id is not an integer: {raw_id!r}"
            ) from exc
        if known_pose_ids is not None and pose_id not in set(known_pose_ids):
            raise GestureDataError(
                f"{json_path}: unknown pose id {pose_id} (not in the pose table)"
            )
    annotations = content.get("annotations")
    if not isinstance(annotations, list):
        raise GestureDataError(f"{json_path}: 'annotations' must be a list (one entry per frame)")
    if len(annotations) != num_frames:
        raise GestureDataError(
            f"{json_path}: {len(annotations)} annotations for {num_frames} frames "
            f"(0.png..{num_frames - 1}.png); annotation i must describe frame i"
        )
    keypoints = []
    for index, entry in enumerate(annotations):
        where = f"{json_path}: annotation {index} (frame {index}.png)"
        if not isinstance(entry, dict) or "data" not in entry:
            raise GestureDataError(f"{where}: expected an object with 'data'")
        keypoints.append(_parse_point_list(entry["data"], where))
    actor = content.get("actor")
    return pose_id, tuple(keypoints), None if actor is None else str(actor)


def _clip_folders(split_dir: Path) -> list[Path]:
    if not split_dir.is_dir():
        raise FileNotFoundError(f"gesture folder not found: {split_dir}")
    folders = [path for path in split_dir.iterdir() if path.is_dir()]
    if not folders:
        raise GestureDataError(f"{split_dir}: no clip folders")
    return sorted(folders, key=lambda path: natural_key(path.name))


def read_clips(
    split_dir: str | Path,
    split: str,
    known_pose_ids: Sequence[int] | None = None,
) -> list[GestureClip]:
    """Every clip folder of ``train`` or ``test`` in natural order.

    Train folders must hold ``<folder>.json`` with an action; test folders may hold one
    (keypoints only; an action there is read but not needed).
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    clips = []
    for folder in _clip_folders(Path(split_dir)):
        frames = list_frames(folder)
        json_path = folder / f"{folder.name}.json"
        if json_path.is_file():
            pose_id, keypoints, actor = read_clip_json(
                json_path, len(frames), known_pose_ids, require_action=split == "train"
            )
        elif split == "train":
            raise GestureDataError(f"{folder}: training folder without {json_path.name}")
        else:
            pose_id, keypoints, actor = None, None, None
        clips.append(GestureClip(split, folder.name, tuple(frames), pose_id, keypoints, actor))
    return clips
