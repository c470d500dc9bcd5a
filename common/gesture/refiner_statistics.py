"""The refiner's clip statistics: the range of a per-frame series of the keypoints (see
:mod:`common.gesture.refiner` for what each measures and why)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from common.gesture.data import POINTS_PER_HAND


def tip_x(points: np.ndarray) -> float:
    """The x of the frame's topmost point (smallest y)."""
    return float(points[np.argmin(points[:, 1]), 0])


def max_x(points: np.ndarray) -> float:
    """The frame's largest x."""
    return float(points[:, 0].max())


def log_hand_size(points: np.ndarray) -> float:
    """100 * log of the hand size: root-mean-square distance of a hand's points from their mean,
    geometric mean over the hands when the frame holds several (21 points each)."""
    hands = len(points) // POINTS_PER_HAND if len(points) % POINTS_PER_HAND == 0 else 1
    logs = []
    for hand in np.split(np.asarray(points, dtype=np.float64), max(1, hands)):
        radius = np.sqrt(np.mean(np.sum((hand - hand.mean(axis=0)) ** 2, axis=1)))
        logs.append(np.log(max(float(radius), 1e-6)))
    return 100.0 * float(np.mean(logs))


@dataclass(frozen=True)
class Statistic:
    """A per-frame value whose range over the clip is the statistic; ``in_pixels`` ones are
    rescaled to the reference width."""

    per_frame: Callable[[np.ndarray], float]
    in_pixels: bool


STATISTICS = {
    "tip_x_range": Statistic(tip_x, in_pixels=True),
    "max_x_range": Statistic(max_x, in_pixels=True),
    "size_change": Statistic(log_hand_size, in_pixels=False),
}


def median_filter(series: Sequence[float], window: int) -> np.ndarray:
    """Running median over ``window`` frames, centred; the ends repeat the first and last value,
    so a steady rise keeps its full range."""
    values = np.asarray(series, dtype=np.float64)
    if window <= 1:
        return values
    half = window // 2
    padded = np.pad(values, half, mode="edge")
    return np.array([np.median(padded[i : i + 2 * half + 1]) for i in range(len(values))])


def series_range(name: str, frames: Sequence[np.ndarray], median_frames: int = 1) -> float:
    """max - min over frames of statistic ``name``'s per-frame value (median-filtered first)."""
    series = median_filter([STATISTICS[name].per_frame(points) for points in frames], median_frames)
    return float(series.max() - series.min())


def tip_x_range(frames: Sequence[np.ndarray]) -> float:
    """max - min over frames of the x of each frame's topmost point (reference ver1)."""
    return series_range("tip_x_range", frames)


def max_x_range(frames: Sequence[np.ndarray]) -> float:
    """max - min over frames of each frame's largest x (reference ver2)."""
    return series_range("max_x_range", frames)


def size_change(frames: Sequence[np.ndarray]) -> float:
    """100 * (max - min) over frames of the log hand size."""
    return series_range("size_change", frames)


def clip_statistic(
    name: str,
    frames: Sequence[np.ndarray],
    image_width: float,
    reference_width: float,
    median_frames: int = 1,
) -> float:
    """A statistic of one clip's (K, 2) keypoint frames (pixel ones in reference-width pixels)."""
    if len(frames) == 0:
        raise ValueError("a clip statistic needs at least one frame")
    value = series_range(name, frames, median_frames)
    if STATISTICS[name].in_pixels:
        value *= float(reference_width) / float(image_width)
    return value
