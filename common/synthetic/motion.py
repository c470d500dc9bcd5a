"""A synthetic stand-in for the motion competition: rendered figures with all 24 keypoints.

The real images are not public. This generator writes the competition's layout (CSV files and
``images/train_imgs``, ``images/test_imgs``) with pictures in which every keypoint can be read
from the pixels, so the whole pipeline can be trained and scored end to end.

Calibration comes from ``motion_stats.json`` (derived from the real ``train_df.csv`` by
``tools/derive_motion_stats.py``): cluster poses, bone lengths, torso size, where people stand
in the frame, which cameras see them from the front, how far joints move between frames and
how sequences and names are structured.

Pose model: a pose is a tree of bones hanging from the waist (``spine1(waist)``). A sequence
interpolates bone angles between key poses, each a cluster pose with per-bone angle and length
noise, so motion is smooth and bones keep their lengths.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from common.errors import UserError
from common.keypoints import MOTION_KEYPOINTS
from common.motion_data import MotionName, write_keypoint_csv
from common.synthetic.motion_drawing import (
    FigureStyle,
    add_sensor_noise,
    render_background,
    render_figure,
)
from common.synthetic.motion_sequences import (
    CAMERAS,
    REFERENCE_SIZE,
    PoseModel,
    load_motion_stats,
    place_sequence,
    sample_body,
    sample_motion,
)

SPLITS = {
    # split: (split number for seeding, subject id range, CSV name, image folder)
    "train": (0, (1, 648), "train_df.csv", Path("images/train_imgs")),
    "test": (1, (649, 999), "test_df.csv", Path("images/test_imgs")),
}


@dataclass(frozen=True)
class Take:
    """One subject performing one action, filmed by every camera over the same frames."""

    subject: int
    group: tuple[int, int, str, str]  # (a, b, CC, Z<k>) of the file name
    frames: int

    def name(self, camera: str, frame_index: int) -> str:
        a, b, code, zone = self.group
        parts = MotionName(f"{self.subject:03d}", a, b, code, zone, camera, 2 * frame_index + 1)
        return parts.filename()


def plan_takes(
    rng: np.random.Generator,
    stats: dict,
    split: str,
    count: int,
    max_frames: int | None = None,
) -> list[Take]:
    """Takes for ``count`` images, sorted by name, like the competition's sequences.

    Frame counts follow the real ones, but are capped for small sets so that even a handful of
    images spans several cameras and subjects; ``max_frames`` caps them further, for small
    training sets that need many poses more than long sequences.
    """
    if count <= 0:
        return []
    if split == "train":
        groups, frame_counts = stats["name_groups_train"], stats["frames_per_sequence"]
    else:
        groups = stats.get("name_groups_test", stats["name_groups_train"])
        frame_counts = stats.get("test_frames_per_sequence", stats["frames_per_sequence"])
    lengths = np.array([int(k) for k in frame_counts])
    probabilities = np.array(list(frame_counts.values()), dtype=np.float64)
    probabilities /= probabilities.sum()
    cap = max(1, math.ceil(count / (2 * len(CAMERAS))))
    if max_frames is not None:
        cap = max(1, min(cap, int(max_frames)))
    frames: list[int] = []
    while len(CAMERAS) * sum(frames) < count:
        frames.append(min(int(rng.choice(lengths, p=probabilities)), cap))

    low, high = SPLITS[split][1]
    pool = np.arange(low, high + 1)
    if len(frames) > len(pool) * len(groups):
        raise ValueError(
            f"{count} {split} images need {len(frames)} takes; names allow at most "
            f"{len(pool) * len(groups)}"
        )
    subjects = np.sort(rng.choice(pool, size=min(len(frames), len(pool)), replace=False))
    takes_per_subject = np.full(len(subjects), len(frames) // len(subjects))
    takes_per_subject[: len(frames) % len(subjects)] += 1
    pairs = []
    for subject, taken in zip(subjects, takes_per_subject, strict=True):
        chosen = np.sort(rng.choice(len(groups), size=int(taken), replace=False))
        pairs.extend((int(subject), tuple(groups[g])) for g in chosen)
    pairs.sort(key=lambda pair: Take(pair[0], pair[1], 1).name("A", 0))
    return [Take(subject, group, n) for (subject, group), n in zip(pairs, frames, strict=True)]


def _render_take(
    take: Take,
    take_index: int,
    split: str,
    seed: int,
    size: tuple[int, int],
    wanted: set[str],
    stats: dict,
    jpeg_quality: int,
) -> list[tuple[str, np.ndarray, bytes]]:
    """(name, keypoints, JPEG bytes) of the wanted images of one take."""
    split_number = SPLITS[split][0]
    rng = np.random.default_rng([seed, split_number, take_index])
    model = PoseModel.from_stats(stats)
    style = FigureStyle.sample(rng)
    motion = sample_motion(rng, model, take.frames, sample_body(rng))
    results = []
    for camera_index, camera in enumerate(CAMERAS):
        keypoints, units = place_sequence(rng, motion, stats, camera, size)
        left_in_front = bool(rng.random() < 0.5)
        names = [take.name(camera, f) for f in range(take.frames)]
        if not wanted.intersection(names):
            continue
        camera_rng = np.random.default_rng([seed, split_number, take_index, camera_index])
        background = render_background(camera_rng, size, float(keypoints[..., 1].max()))
        strength = int(camera_rng.integers(3, 9))
        for frame_index, name in enumerate(names):
            if name not in wanted:
                continue
            frame_rng = np.random.default_rng(
                [seed, split_number, take_index, camera_index, frame_index]
            )
            image = background.copy()
            render_figure(image, keypoints[frame_index], units[frame_index], style, left_in_front)
            add_sensor_noise(frame_rng, image, strength)
            ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality])
            if not ok:
                raise RuntimeError(f"JPEG encoding failed for {name}")
            results.append((name, keypoints[frame_index], encoded.tobytes()))
    return results


def _prepare_folder(folder: Path, overwrite: bool) -> None:
    old = sorted(folder.glob("*.jpg")) if folder.is_dir() else []
    if old and not overwrite:
        raise FileExistsError(
            f"{folder} already holds {len(old)} images; pass --overwrite to replace them"
        )
    for path in old:
        path.unlink()
    folder.mkdir(parents=True, exist_ok=True)


def generate_motion_dataset(
    out_dir: str | Path,
    n_train: int,
    n_test: int,
    width: int = REFERENCE_SIZE[0],
    height: int = REFERENCE_SIZE[1],
    seed: int = 0,
    overwrite: bool = False,
    jpeg_quality: int = 90,
    stats: dict | None = None,
    max_frames: int | None = None,
) -> dict[str, int]:
    """Write a synthetic data set in the competition's layout; the same seed gives the same bytes.

    Writes ``train_df.csv``, ``test_df.csv`` (the test truth), ``sample_submission.csv`` (zeros)
    and ``images/train_imgs``, ``images/test_imgs``. CSVs are written last and atomically, so a
    complete CSV means its images are all there.
    """
    if n_train < 0 or n_test < 0:
        raise UserError(f"image counts must be >= 0, got train {n_train}, test {n_test}")
    if width < 32 or height < 32:
        raise UserError(f"images must be at least 32x32, got {width}x{height}")
    out_dir = Path(out_dir)
    stats = stats or load_motion_stats()
    size = (int(width), int(height))
    csvs = [out_dir / name for name in ("train_df.csv", "test_df.csv", "sample_submission.csv")]
    existing = [path for path in csvs if path.exists()]
    if existing and not overwrite:
        raise FileExistsError(f"{existing[0]} exists; pass --overwrite to replace the data set")
    tables = {}
    for split, count in (("train", n_train), ("test", n_test)):
        split_number, _, csv_name, folder = SPLITS[split]
        _prepare_folder(out_dir / folder, overwrite)
        takes = plan_takes(
            np.random.default_rng([seed, split_number]), stats, split, count, max_frames
        )
        all_names = sorted(
            take.name(camera, f) for take in takes for camera in CAMERAS for f in range(take.frames)
        )
        wanted = set(all_names[:count])
        rows = []
        for take_index, take in enumerate(takes):
            for name, keypoints, data in _render_take(
                take, take_index, split, seed, size, wanted, stats, jpeg_quality
            ):
                (out_dir / folder / name).write_bytes(data)
                rows.append((name, keypoints))
        rows.sort(key=lambda row: row[0])
        tables[split] = rows
    for split, rows in tables.items():
        names = [name for name, _ in rows]
        keypoints = np.array([k for _, k in rows]).reshape(len(rows), len(MOTION_KEYPOINTS), 2)
        write_keypoint_csv(out_dir / SPLITS[split][2], names, keypoints)
    test_names = [name for name, _ in tables["test"]]
    write_keypoint_csv(
        out_dir / "sample_submission.csv",
        test_names,
        np.zeros((len(test_names), len(MOTION_KEYPOINTS), 2)),
    )
    return {"train": len(tables["train"]), "test": len(tables["test"])}
