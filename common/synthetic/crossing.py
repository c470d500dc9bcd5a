"""A synthetic video with known motion: two people walk across the frame in opposite
directions and pass each other (one in front), with their true keypoints in every frame.

It is what tracking and the ``--smooth`` filter are measured on
(``benchmarks/video_tracking.py``) and tested with: the two people overlap at the crossing,
so a tracker that matches by position alone swaps them. The poses come from the motion set's
pose model (:mod:`common.synthetic.motion_sequences`), slowed to video speed (a new key pose
every ``slow`` x 2-3 frames), the figures, background and sensor noise from
:mod:`common.synthetic.motion_drawing`. The same seed gives the same frames.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from common.metrics import box_iou
from common.synthetic.motion_drawing import (
    FigureStyle,
    add_sensor_noise,
    render_background,
    render_figure,
)
from common.synthetic.motion_sequences import (
    PoseModel,
    load_motion_stats,
    sample_body,
    sample_motion,
)

HIDDEN_SCORE, SEEN_SCORE = 0.1, 0.9


@dataclass
class CrossingVideo:
    """``keypoints`` (F, 2, J, 2): person p's true keypoints in frame f (person 0 starts on
    the left and walks right, in front; person 1 walks left, behind); ``units`` (F, 2): body
    sizes in pixels (the drawing's torso length); ``frames``: the F BGR pictures."""

    keypoints: np.ndarray
    units: np.ndarray
    frames: list[np.ndarray]
    fps: float

    def boxes(self) -> np.ndarray:
        """(F, 2, 4) the people's true boxes [x, y, w, h]: their keypoints' extent plus a
        margin of 0.4 body sizes on each side (the head and limbs are drawn wider)."""
        low, high = self.keypoints.min(axis=2), self.keypoints.max(axis=2)
        margin = 0.4 * self.units[..., None]
        return np.concatenate([low - margin, high - low + 2 * margin], axis=-1)


def _slowed_motion(rng: np.random.Generator, model: PoseModel, frames: int,
                   slow: int) -> np.ndarray:
    """(frames, J, 2) normalised poses moving ``slow`` times slower than the motion set's,
    upright (the motion set also lies and kneels): the most upright of a few tries."""
    tries = [sample_motion(rng, model, frames // slow + 2, sample_body(rng)) for _ in range(12)]
    keys = max(tries, key=lambda poses: float(np.min(np.ptp(poses[..., 1], axis=1)
                                                     / np.ptp(poses[..., 0], axis=1))))
    times = np.arange(frames) / slow
    low = np.floor(times).astype(int)
    t = (times - low)[:, None, None]
    return (1.0 - t) * keys[low] + t * keys[low + 1]


def crossing_video(frames: int = 48, width: int = 480, height: int = 270, seed: int = 0,
                   slow: int = 4, fps: float = 25.0) -> CrossingVideo:
    """Two people crossing in ``frames`` frames of ``width`` x ``height``; ``slow`` slows
    their limbs' motion (the motion set changes key pose every 2-3 frames)."""
    if frames < 2 or width < 64 or height < 64 or slow < 1:
        raise ValueError(f"need >= 2 frames of at least 64x64 and slow >= 1, got {frames} "
                         f"frames of {width}x{height}, slow {slow}")
    rng = np.random.default_rng([seed, 7])
    stats = load_motion_stats()
    model = PoseModel.from_stats(stats)
    torso = height / 7.0
    start, end = 0.2 * width, 0.8 * width
    path = np.linspace(0.0, 1.0, frames)
    keypoints = np.empty((frames, 2, 24, 2))
    for person, (x0, x1, ground) in enumerate(((start, end, 0.5), (end, start, 0.46))):
        poses = _slowed_motion(rng, model, frames, slow)
        poses = poses / max(float(np.ptp(poses[..., 1], axis=1).max()) / 3.5, 1e-6)
        placed = poses * torso
        placed[..., 0] += (x0 + (x1 - x0) * path)[:, None]
        placed[..., 1] += ground * height
        keypoints[:, person] = placed
    # Keep every figure inside the frame: shift up or down by what sticks out.
    margin = 0.5 * torso
    low, high = keypoints[..., 1].min(), keypoints[..., 1].max()
    keypoints[..., 1] += max(margin - low, 0.0) - max(high - (height - 1 - margin), 0.0)
    units = np.full((frames, 2), torso)
    background = render_background(rng, (width, height), float(keypoints[..., 1].max()))
    styles = [FigureStyle.sample(rng) for _ in range(2)]
    strength = int(rng.integers(3, 7))
    pictures = []
    for frame in range(frames):
        image = background.copy()
        for person in (1, 0):  # person 0 in front
            render_figure(image, keypoints[frame, person], torso, styles[person])
        add_sensor_noise(np.random.default_rng([seed, 7, frame]), image, strength)
        pictures.append(image)
    return CrossingVideo(keypoints, units, pictures, fps)


def write_crossing_video(video: CrossingVideo, out_dir: str | Path) -> tuple[Path, Path]:
    """``OUT/crossing.mp4`` and ``OUT/crossing_truth.json`` (one entry per person and frame:
    ``frame``, ``person``, ``bbox``, ``keypoints`` [x, y, 2] triples, ``score`` 1: the format
    ``tools/infer.py --boxes`` reads)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    video_path, truth_path = out_dir / "crossing.mp4", out_dir / "crossing_truth.json"
    height, width = video.frames[0].shape[:2]
    writer = cv2.VideoWriter(str(video_path), cv2.VideoWriter_fourcc(*"mp4v"), video.fps,
                             (width, height))
    try:
        for picture in video.frames:
            writer.write(picture)
    finally:
        writer.release()
    boxes = video.boxes()
    entries = [{"frame": frame, "person": person, "bbox": boxes[frame, person].tolist(),
                "keypoints": np.concatenate([video.keypoints[frame, person],
                                             np.full((24, 1), 2.0)], axis=1).ravel().tolist(),
                "score": 1.0}
               for frame in range(len(video.frames)) for person in range(2)]
    truth_path.write_text(json.dumps(entries), encoding="utf-8")
    return video_path, truth_path


def simulated_detections(video: CrossingVideo, noise: float, miss_iou: float,
                     seed: int) -> list[tuple[int, int, np.ndarray, np.ndarray, np.ndarray]]:
    """(frame, true person, box, keypoints, joint scores) of every person a keypoint model
    would find, in frame order: each joint the truth plus Gaussian noise of sd ``noise`` x
    the body size (score 0.9), three times that for the back person's joints hidden in the
    front person's box (score 0.1), each box side moved by 2% of its size, and the back person
    missed where the true boxes overlap with IoU >= ``miss_iou``."""
    rng = np.random.default_rng([seed, 11])
    boxes = video.boxes()
    found = []
    for frame in range(len(video.frames)):
        overlap = float(box_iou(boxes[frame, :1], boxes[frame, 1:])[0])
        x, y, w, h = boxes[frame, 0]
        for person in range(2):
            if person == 1 and overlap >= miss_iou:
                continue
            truth = video.keypoints[frame, person]
            sd = noise * video.units[frame, person]
            hidden = np.zeros(len(truth), bool)
            if person == 1:
                hidden = ((truth[:, 0] >= x) & (truth[:, 0] <= x + w)
                          & (truth[:, 1] >= y) & (truth[:, 1] <= y + h))
            spread = sd * np.where(hidden, 3.0, 1.0)[:, None]
            points = truth + rng.normal(0.0, 1.0, truth.shape) * spread
            size = np.tile(boxes[frame, person, 2:], 2)
            box = boxes[frame, person] + rng.normal(0.0, 0.02, 4) * size
            found.append((frame, person, box, points, np.where(hidden, HIDDEN_SCORE, SEEN_SCORE)))
    return found
