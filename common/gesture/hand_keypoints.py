"""Hand keypoints from the two HRNet stages, for test clips that come without keypoint JSON.

:func:`export_hand_tables` writes, under the gesture data root, the tables the stage tools
read: ``hand_train_df.csv`` (every annotated one-hand training frame), ``hand_test_list.csv``
(every test frame, coordinates 0) and ``hand_train_list.csv`` (every training frame,
coordinates 0). All have the column ``image`` = ``<folder>/<n>.png`` and 42 columns
``<name>_x, <name>_y`` in the order of ``common.keypoints.HAND_KEYPOINTS`` (the JSON point
order). Train and predict the stages on them
with the hand configs (``experiments/{bbox,keypoint}/*hand*.yaml``), which set::

    DATASET.ROOT <root> DATASET.TRAIN_CSV hand_train_df.csv DATASET.TEST_CSV hand_test_list.csv
    DATASET.TRAIN_IMAGE_DIR train DATASET.TEST_IMAGE_DIR test MODEL.NUM_JOINTS 21

Write the tables with ``python -m common.gesture.hand_keypoints --root <root>``
(``tools/make_synthetic.py gesture`` writes them with the synthetic set).

Stage two's ``result.csv`` (same columns, one row per test frame) is then read back by
:func:`read_stage_keypoints`; the gesture config selects it with
``GESTURE.KEYPOINT_SOURCE stages GESTURE.STAGE_RESULT_CSV <path of result.csv>``. Predicting
the training frames the same way (``DATASET.TEST_CSV hand_train_list.csv
DATASET.TEST_IMAGE_DIR train``) gives ``GESTURE.TRAIN_STAGE_RESULT_CSV``, on which the refiner's
thresholds for stage keypoints are fitted. Two-hand (42-point) training frames are left out of
the hand table; the stages predict one hand per frame, so two-hand clips are cropped and refined
on one hand (their classes and pairs suffer with stage keypoints).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from common.cli import ToolParser
from common.gesture.data import POINTS_PER_HAND, GestureClip, GestureDataError, read_clips
from common.io import atomic_path
from common.keypoints import HAND_KEYPOINTS, coordinate_columns

TRAIN_TABLE_NAME = "hand_train_df.csv"
TEST_TABLE_NAME = "hand_test_list.csv"
TRAIN_LIST_NAME = "hand_train_list.csv"
_IMAGE_NAME = re.compile(r"^(?:.*[\\/])?([^\\/]+)[\\/](\d+)\.png$")


def _write_table(path: Path, images: list[str], coords: np.ndarray) -> None:
    table = pd.DataFrame(coords, columns=coordinate_columns(HAND_KEYPOINTS))
    table.insert(0, "image", images)
    with atomic_path(path) as tmp:
        table.to_csv(tmp, index=False)


def _write_frame_list(path: Path, clips: list[GestureClip]) -> Path:
    names = [f"{clip.folder}/{frame.name}" for clip in clips for frame in clip.frame_paths]
    _write_table(path, names, np.zeros((len(names), 2 * POINTS_PER_HAND)))
    return path


def export_hand_tables(
    gesture_root: Path, train_dir: str = "train", test_dir: str = "test"
) -> tuple[Path, Path, Path]:
    """Write ``hand_train_df.csv``, ``hand_test_list.csv`` and ``hand_train_list.csv`` under
    ``gesture_root``; returns their paths in that order."""
    gesture_root = Path(gesture_root)
    train_clips = read_clips(gesture_root / train_dir, "train")
    names: list[str] = []
    rows: list[np.ndarray] = []
    for clip in train_clips:
        for frame_path, points in zip(clip.frame_paths, clip.keypoints or (), strict=True):
            if len(points) == POINTS_PER_HAND:
                names.append(f"{clip.folder}/{frame_path.name}")
                rows.append(points.reshape(-1))
    if not rows:
        raise GestureDataError(f"{gesture_root / train_dir}: no one-hand (21-point) frames")
    train_path = gesture_root / TRAIN_TABLE_NAME
    _write_table(train_path, names, np.stack(rows))
    test_clips = read_clips(gesture_root / test_dir, "test")
    return (
        train_path,
        _write_frame_list(gesture_root / TEST_TABLE_NAME, test_clips),
        _write_frame_list(gesture_root / TRAIN_LIST_NAME, train_clips),
    )


def read_stage_keypoints(result_csv: str | Path) -> dict[str, np.ndarray]:
    """{folder: (frames, 21, 2)} from a stage-two result.csv on ``<folder>/<n>.png`` images.

    Frames of each folder must be 0..N-1 without gaps (as the clip folders are).
    """
    result_csv = Path(result_csv)
    if not result_csv.is_file():
        raise FileNotFoundError(f"stage keypoint file not found: {result_csv}")
    table = pd.read_csv(result_csv, dtype={"image": str})
    columns = coordinate_columns(HAND_KEYPOINTS)
    missing = [c for c in ["image", *columns] if c not in table.columns]
    if missing:
        raise GestureDataError(
            f"{result_csv}: missing columns {missing[:6]} (a hand result "
            f"has image + {len(columns)} coordinate columns)"
        )
    values = table[columns].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=np.float64)
    bad = np.argwhere(~np.isfinite(values))
    if len(bad):
        row, col = bad[0]
        raise GestureDataError(
            f"{result_csv}: row {row + 2}, column {columns[col]}: "
            f"expected a number, got {table[columns[col]].iloc[row]!r}"
        )
    frames: dict[str, dict[int, np.ndarray]] = {}
    for row, image in enumerate(table["image"]):
        match = _IMAGE_NAME.match(str(image))
        if match is None:
            raise GestureDataError(
                f"{result_csv}: row {row + 2}, column image: expected "
                f"<folder>/<n>.png, got {image!r}"
            )
        folder, number = match.group(1), int(match.group(2))
        if number in frames.setdefault(folder, {}):
            raise GestureDataError(f"{result_csv}: row {row + 2}: {image} appears twice")
        frames[folder][number] = values[row].reshape(POINTS_PER_HAND, 2)
    keypoints = {}
    for folder, by_number in frames.items():
        numbers = sorted(by_number)
        if numbers != list(range(len(numbers))):
            missing_frames = sorted(set(range(numbers[-1] + 1)) - set(numbers))
            raise GestureDataError(
                f"{result_csv}: folder {folder} lacks frames {missing_frames[:10]}"
            )
        keypoints[folder] = np.stack([by_number[n] for n in numbers])
    return keypoints


def main(argv: list[str] | None = None) -> int:
    """``python -m common.gesture.hand_keypoints --root DIR``: write the two hand tables."""
    parser = ToolParser(description="Write the hand tables of the two stages.")
    parser.add_argument("--root", type=Path, required=True, help="gesture data root")
    parser.add_argument("--train-dir", default="train", help="training folders under --root")
    parser.add_argument("--test-dir", default="test", help="test folders under --root")
    args = parser.parse_args(argv)
    paths = export_hand_tables(args.root, args.train_dir, args.test_dir)
    print("wrote " + ", ".join(str(path) for path in paths))
    return 0


def stage_keypoints_of_clips(
    result_csv: str | Path, clips: Sequence[GestureClip], split: str
) -> dict[str, list[np.ndarray]]:
    """{folder: frames} of stage two's result.csv, which must cover every frame of the clips."""
    stage = read_stage_keypoints(result_csv)
    keypoints = {}
    for clip in clips:
        if clip.folder not in stage or len(stage[clip.folder]) != clip.num_frames:
            found = len(stage[clip.folder]) if clip.folder in stage else 0
            raise GestureDataError(
                f"{result_csv}: {split} folder {clip.folder} has {clip.num_frames} frames "
                f"but {found} keypoint rows"
            )
        keypoints[clip.folder] = list(stage[clip.folder])
    return keypoints


if __name__ == "__main__":
    raise SystemExit(main())
