"""Derive the synthetic generator's calibration (motion_stats.json) from the real train_df.csv.

Only small summaries leave the real file: distributions, cluster centre poses in torso units,
and the structure of the file names. No row is copied.

    python tools/derive_motion_stats.py --train-csv ../shared/data/dacon_motion/train_df.csv \
        --submission-csv ../shared/data/dacon_motion/sample_submission.csv
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import _bootstrap  # noqa: F401
import numpy as np
from sklearn.cluster import KMeans

from common.cli import ToolParser, run_tool
from common.io import atomic_write_text
from common.keypoints import MOTION_KEYPOINTS
from common.motion_data import (
    keypoints_array,
    parse_motion_filename,
    read_keypoint_csv,
)
from common.synthetic.motion_sequences import (
    BONES,
    CAMERAS,
    STATS_PATH,
    facing_front,
    normalise_poses,
    torso_lengths,
)

DIGITS = 3


def summary(values: np.ndarray) -> dict:
    """mean, std, min, max and a few quantiles, rounded."""
    values = np.asarray(values, dtype=np.float64)
    quantiles = np.quantile(values, [0.05, 0.5, 0.95])
    return {
        "mean": round(float(values.mean()), DIGITS),
        "std": round(float(values.std()), DIGITS),
        "min": round(float(values.min()), DIGITS),
        "max": round(float(values.max()), DIGITS),
        "q05": round(float(quantiles[0]), DIGITS),
        "q50": round(float(quantiles[1]), DIGITS),
        "q95": round(float(quantiles[2]), DIGITS),
    }


def rounded(array: np.ndarray) -> list:
    return np.round(np.asarray(array, dtype=np.float64), DIGITS).tolist()


def name_groups(names: list[str]) -> list[list]:
    """The distinct (a, b, CC, Z<k>) action groups, sorted."""
    groups = {(p.a, p.b, p.code, p.zone) for p in map(parse_motion_filename, names)}
    return [list(group) for group in sorted(groups)]


def sequence_motion(names: list[str], keypoints: np.ndarray) -> np.ndarray:
    """Per consecutive frame pair of a sequence: mean joint displacement in torso units."""
    parsed = [parse_motion_filename(name) for name in names]
    by_sequence: dict[str, list[int]] = {}
    for index, name in enumerate(parsed):
        by_sequence.setdefault(name.sequence_key(), []).append(index)
    steps = []
    for indices in by_sequence.values():
        indices.sort(key=lambda i: parsed[i].frame)
        sequence = keypoints[indices]
        torso = float(np.mean(torso_lengths(sequence)))
        moves = np.linalg.norm(np.diff(sequence, axis=0), axis=2).mean(axis=1) / torso
        steps.extend(moves.tolist())
    return np.asarray(steps)


def derive(train_csv: Path, submission_csv: Path | None, clusters: int, seed: int) -> dict:
    frame = read_keypoint_csv(train_csv)
    names = frame["image"].tolist()
    keypoints = keypoints_array(frame)
    parsed = [parse_motion_filename(name) for name in names]

    torso = torso_lengths(keypoints)
    usable = torso > 0.3 * np.median(torso)  # a collapsed torso makes torso units meaningless
    poses = normalise_poses(keypoints[usable])

    bones = []
    for parent, child in BONES:
        lengths = np.linalg.norm(poses[:, child] - poses[:, parent], axis=1)
        bones.append(
            {
                "parent": MOTION_KEYPOINTS[parent],
                "child": MOTION_KEYPOINTS[child],
                "mean": round(float(lengths.mean()), DIGITS),
                "std": round(float(lengths.std()), DIGITS),
            }
        )

    kmeans = KMeans(n_clusters=clusters, n_init=10, random_state=seed)
    labels = kmeans.fit_predict(poses.reshape(len(poses), -1))
    centres, spreads, weights = [], [], []
    for cluster in np.argsort(-np.bincount(labels, minlength=clusters)):
        members = poses[labels == cluster]
        centres.append(rounded(members.mean(axis=0)))
        spreads.append(rounded(members.std(axis=0).mean(axis=1)))
        weights.append(round(len(members) / len(poses), 4))

    lows, highs = keypoints.min(axis=1), keypoints.max(axis=1)
    extent = highs - lows
    centre = (lows + highs) / 2.0
    front = facing_front(keypoints)
    cameras = np.array([p.camera for p in parsed])
    subjects = Counter(p.subject for p in parsed)
    cameras_per_subject = Counter(
        len({p.camera for p in parsed if p.subject == subject}) for subject in subjects
    )
    frames_per_sequence = Counter(Counter(p.sequence_key() for p in parsed).values())

    stats = {
        "about": (
            "Derived from the DACON motion train_df.csv by tools/derive_motion_stats.py: "
            "summaries only, no rows. Pixels of 1920x1080 frames; poses in torso units "
            "(neck to spine1(waist)), centred on the waist, mirrored to face the camera."
        ),
        "rows": len(frame),
        "image_size": [1920, 1080],
        "keypoints": list(MOTION_KEYPOINTS),
        "torso_px": summary(torso),
        "person_height_px": summary(extent[:, 1]),
        "person_width_px": summary(extent[:, 0]),
        "box_center_x_px": summary(centre[:, 0]),
        "box_center_y_px": summary(centre[:, 1]),
        "keypoint_x_px": summary(keypoints[..., 0].ravel()),
        "keypoint_y_px": summary(keypoints[..., 1].ravel()),
        "bones": bones,
        "facing_front_by_camera": {
            camera: round(float(front[cameras == camera].mean()), DIGITS)
            for camera in CAMERAS
            if (cameras == camera).any()
        },
        "motion_step_torso": summary(sequence_motion(names, keypoints)),
        "pose_clusters": {"weights": weights, "centres": centres, "spread": spreads},
        "frames_per_sequence": {str(k): v for k, v in sorted(frames_per_sequence.items())},
        "cameras_per_subject": {str(k): v for k, v in sorted(cameras_per_subject.items())},
        "subjects": len(subjects),
        "name_groups_train": name_groups(names),
    }
    if submission_csv is not None:
        test_names = read_keypoint_csv(submission_csv)["image"].tolist()
        stats["name_groups_test"] = name_groups(test_names)
        test_parsed = [parse_motion_filename(name) for name in test_names]
        stats["test_subjects"] = len({p.subject for p in test_parsed})
        stats["test_frames_per_sequence"] = {
            str(k): v
            for k, v in sorted(
                Counter(Counter(p.sequence_key() for p in test_parsed).values()).items()
            )
        }
    return stats


def main(argv: list[str] | None = None) -> int:
    parser = ToolParser(description=__doc__.split("\n")[0])
    parser.add_argument("--train-csv", type=Path, required=True, help="the real train_df.csv")
    parser.add_argument(
        "--submission-csv",
        type=Path,
        default=None,
        help="the real sample_submission.csv (test name structure)",
    )
    parser.add_argument("--out", type=Path, default=STATS_PATH)
    parser.add_argument("--clusters", type=int, default=12, help="k-means pose clusters (<= 16)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if not 1 <= args.clusters <= 16:
        parser.error("--clusters must lie in 1..16")
    stats = derive(args.train_csv, args.submission_csv, args.clusters, args.seed)
    text = json.dumps(stats, indent=1, ensure_ascii=True) + "\n"
    atomic_write_text(args.out, text)
    print(f"wrote {args.out} ({len(text) / 1024:.1f} KB)")
    return 0


if __name__ == "__main__":
    run_tool(main)
