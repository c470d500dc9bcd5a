"""A synthetic stand-in for the gesture competition data: rendered hands on cluttered scenes.

Thirteen classes (real pose ids, so the refiner config of the reference applies) differ by hand
shape (one finger, two fingers, open palm, fist), hand (left, right, both), view (``my hand``:
the back of the hand seen from behind, entering from the bottom; ``your hand``: the palm of
someone facing the camera) and motion. Two confusable pairs are built as in the real data:

* number one (0 left / 10 right) vs index wag (42 / 67): identical hand shape; in a wag the
  index finger swings about its knuckle, so the tip's x oscillates over the frames;
* fist (146 right, 171 both hands) vs fist push (163 / 191): identical shape; in a push the fist
  grows and moves, so the largest x changes over the frames.

Like the real data, about one wag clip in ten barely moves, and (with at least four training
clips per class) one two-fist training clip opens its hands for two frames, as the reference's
folder 596 did: the refiner's outlier rule must cope with both.

Everything is written with the real names and layout (see ``common.gesture.data``), plus
``test_answer.csv`` (``Image_Path``, ``pose_id``) for local scoring and the hand tables of the
two HRNet stages (``common.gesture.hand_keypoints``). Every clip draws from its
own generator seeded by (seed, split, clip index), so a seed fixes the data exactly.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from common.cli import bounded_int
from common.gesture.data import POSE_COLUMNS
from common.gesture.hand_keypoints import export_hand_tables
from common.gesture.submission import IMAGE_PATH_COLUMN, LABEL_PREFIX, submission_image_path
from common.io import atomic_path, atomic_write_bytes, atomic_write_text
from common.synthetic.hands import (
    ANNOTATION_NOISE_PX,
    OUTLIER_POSE_ID,
    POSES,
    REFERENCE_WIDTH,
    SyntheticPose,
    render_clip,
)


def _clip_json(
    pose: SyntheticPose | None,
    keypoints: list[np.ndarray],
    actor: str,
    rng: np.random.Generator,
    width: int,
    height: int,
) -> str:
    noise = ANNOTATION_NOISE_PX * width / REFERENCE_WIDTH
    annotations = []
    for index, points in enumerate(keypoints):
        noisy = points + rng.normal(0, noise, points.shape)
        depth = rng.normal(0, 0.02, len(points))
        data = [
            [round(float(x), 3), round(float(y), 3), round(float(z), 4)]
            for (x, y), z in zip(noisy, depth, strict=True)
        ]
        annotations.append({"data": data, "image_id": index})
    content: dict = {}
    if pose is not None:
        content["action"] = [pose.pose_id, pose.pose_name]
    content.update(
        {"actor": actor, "image": {"width": width, "height": height}, "annotations": annotations}
    )
    return json.dumps(content, ensure_ascii=False)


def _write_csv(path: Path, table: pd.DataFrame) -> None:
    with atomic_path(path) as tmp:
        table.to_csv(tmp, index=False)


def pose_table() -> pd.DataFrame:
    """The synthetic hand_gesture_pose.csv."""
    rows = [
        {
            "pose_id": p.pose_id,
            "pose_name": p.pose_name,
            "view_type": p.view_type,
            "gesture_type": p.gesture_type,
            "hand_type": p.hand_type,
            "pose_name_en": p.pose_name_en,
        }
        for p in POSES
    ]
    return pd.DataFrame(rows, columns=[*POSE_COLUMNS, "pose_name_en"])


def _class_sequence(num_clips: int, rng: np.random.Generator) -> list[SyntheticPose]:
    """Classes as evenly as possible, in a shuffled folder order."""
    order = [POSES[i % len(POSES)] for i in range(num_clips)]
    return [order[i] for i in rng.permutation(num_clips)]


def generate_gesture_dataset(
    out: Path,
    train_clips: int = 104,
    test_clips: int = 26,
    frames: int = 6,
    width: int = 320,
    height: int = 180,
    seed: int = 0,
    test_json: bool = True,
    overwrite: bool = False,
) -> dict:
    """Write the whole data set under ``out``; returns a summary.

    Train folders are numbered 0.., test folders continue after them (as the competition's
    0..648 and 649..865). ``test_json`` writes keypoint JSONs (no ``action``) for the test clips,
    which the reference's inference read; without it the test keypoints must come from the
    stages (``GESTURE.KEYPOINT_SOURCE stages``).
    """
    if train_clips < 1 or test_clips < 1 or frames < 2:
        raise ValueError("need at least 1 train clip, 1 test clip and 2 frames per clip")
    if width < 32 or height < 32:
        raise ValueError(f"image size {width}x{height} is too small (minimum 32x32)")
    out = Path(out)
    for name in ("train", "test"):
        existing = out / name
        if existing.exists() and any(existing.iterdir()):
            if not overwrite:
                raise FileExistsError(f"{existing} is not empty (pass overwrite to replace it)")
            shutil.rmtree(existing)
    outlier_folder = None
    answers = []
    counts: dict[int, int] = {}
    for split, num_clips, first in (("train", train_clips, 0), ("test", test_clips, train_clips)):
        split_code = 0 if split == "train" else 1
        sequence = _class_sequence(num_clips, np.random.default_rng([seed, split_code, 10**6]))
        for index, pose in enumerate(sequence):
            rng = np.random.default_rng([seed, split_code, index])
            folder = str(first + index)
            counts[pose.pose_id] = counts.get(pose.pose_id, 0) + (split == "train")
            opening = (
                split == "train"
                and pose.pose_id == OUTLIER_POSE_ID
                and counts[pose.pose_id] == 2
                and train_clips >= 4 * len(POSES)
            )
            if opening:
                outlier_folder = folder
            images, keypoints = render_clip(pose, frames, width, height, rng, opening)
            clip_dir = out / split / folder
            for n, image in enumerate(images):
                ok, encoded = cv2.imencode(".png", image)
                if not ok:
                    raise RuntimeError(f"cannot encode frame {n} of {clip_dir}")
                atomic_write_bytes(clip_dir / f"{n}.png", encoded.tobytes())
            actor = f"A{int(rng.integers(1, 60)):03d}"
            if split == "train" or test_json:
                text = _clip_json(
                    pose if split == "train" else None, keypoints, actor, rng, width, height
                )
                atomic_write_text(clip_dir / f"{folder}.json", text)
            if split == "test":
                answers.append((submission_image_path(folder), pose.pose_id))
    table = pose_table()
    _write_csv(out / "hand_gesture_pose.csv", table)
    class_ids = sorted(table["pose_id"].tolist())
    submission = pd.DataFrame(
        0.0, index=range(len(answers)), columns=[f"{LABEL_PREFIX}{c}" for c in class_ids]
    )
    submission.insert(0, IMAGE_PATH_COLUMN, [path for path, _ in answers])
    _write_csv(out / "sample_submission.csv", submission)
    _write_csv(
        out / "test_answer.csv", pd.DataFrame(answers, columns=[IMAGE_PATH_COLUMN, "pose_id"])
    )
    hand_tables = export_hand_tables(out)
    return {
        "out": str(out),
        "train_clips": train_clips,
        "test_clips": test_clips,
        "frames": frames,
        "size": [width, height],
        "classes": len(class_ids),
        "opening_outlier_folder": outlier_folder,
        "test_json": test_json,
        "hand_tables": [str(path) for path in hand_tables],
    }


def add_data_arguments(parser: argparse.ArgumentParser) -> None:
    """The options that describe a synthetic gesture set (its size, frames and seed), shared
    by tools/make_synthetic.py and tools/gesture_report.py."""
    parser.add_argument("--train-clips", type=bounded_int(1), default=104,
                        help="training clips (folders)")
    parser.add_argument("--test-clips", type=bounded_int(1), default=26,
                        help="test clips (folders)")
    parser.add_argument("--frames", type=bounded_int(2), default=6, help="frames per clip")
    parser.add_argument("--width", type=bounded_int(32), default=320,
                        help="frame width in pixels")
    parser.add_argument("--height", type=bounded_int(32), default=180,
                        help="frame height in pixels")
    parser.add_argument("--seed", type=int, default=0, help="fixes the data set exactly")
    parser.add_argument(
        "--no-test-json",
        dest="test_json",
        action="store_false",
        help="write no keypoint JSON for test clips (only the stages' keypoints exist)",
    )


def add_cli_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``gesture`` subcommand's options of tools/make_synthetic.py."""
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("data/synthetic/gesture"),
        help="output folder (train/, test/ and the CSVs go here)",
    )
    add_data_arguments(parser)
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace existing train/ and test/ folders under --out",
    )


def run_from_args(args: argparse.Namespace) -> dict:
    """Generate the data set described by :func:`add_cli_arguments`'s options."""
    summary = generate_gesture_dataset(
        args.out,
        args.train_clips,
        args.test_clips,
        args.frames,
        args.width,
        args.height,
        args.seed,
        args.test_json,
        args.overwrite,
    )
    print(json.dumps(summary))
    return summary
