"""Person identities across video frames: each frame's people matched to the tracks of the
frames before by box IoU and keypoint similarity (OKS), with an optimal assignment.

A track remembers its person's last box and keypoints and the box centre's speed, so it is
matched where its person should be now (constant velocity), which keeps two people apart when
they cross. A track that finds no one survives ``max_missed`` frames (8 by default, a third
of a second at 25 fps: a person hidden behind another for a few frames keeps its id). With
``smoothing`` settings each track carries its own One Euro pose filter
(:mod:`common.smoothing`) and the returned keypoints are filtered.
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

from common.metrics import box_iou
from common.smoothing import OneEuroSettings, PoseSmoother


@dataclass(frozen=True)
class TrackerSettings:
    """``max_missed``: frames a track survives without a match; ``min_similarity``: the least
    similarity (0..1) of a match; ``iou_weight``: the share of box IoU in the similarity (the
    rest is OKS)."""

    max_missed: int = 8
    min_similarity: float = 0.2
    iou_weight: float = 0.5

    def __post_init__(self) -> None:
        if self.max_missed < 0:
            raise ValueError(f"max_missed must be >= 0, got {self.max_missed}")
        if not 0.0 <= self.min_similarity <= 1.0 or not 0.0 <= self.iou_weight <= 1.0:
            raise ValueError("min_similarity and iou_weight must lie in [0, 1], got "
                             f"{self.min_similarity} and {self.iou_weight}")


@dataclass
class _Track:
    track_id: int
    box: np.ndarray  # (4,) x, y, w, h at last_frame
    keypoints: np.ndarray  # (J, 2) as detected at last_frame
    last_frame: int
    velocity: np.ndarray | None = None  # px per frame of the box centre, once matched
    smoother: PoseSmoother | None = None

    def shift(self, frame: int) -> np.ndarray:
        """(2,) where the person has moved since ``last_frame``, at constant velocity."""
        return np.zeros(2) if self.velocity is None else self.velocity * (frame - self.last_frame)

    def follow(self, box: np.ndarray, keypoints: np.ndarray, frame: int) -> None:
        """The person found again at ``frame``: new position, speed averaged with the last."""
        moved = (box[:2] + box[2:] / 2 - self.box[:2] - self.box[2:] / 2)
        moved = moved / (frame - self.last_frame)
        self.velocity = moved if self.velocity is None else 0.5 * (self.velocity + moved)
        self.box, self.keypoints, self.last_frame = box, keypoints, frame


def keypoint_similarity(a: np.ndarray, b: np.ndarray, area: float, sigmas: np.ndarray,
                        weights: np.ndarray) -> float:
    """COCO's object keypoint similarity of two (J, 2) poses, each joint's term weighted (by
    its score: an unsure joint is often a wrong one and should not spoil a match)."""
    variances = (2.0 * sigmas) ** 2
    squared = ((a - b) ** 2).sum(axis=1)
    terms = np.exp(-squared / variances / (2.0 * max(area, 1.0)))
    weights = np.clip(weights, 0.0, None) + 1e-6
    return float((terms * weights).sum() / weights.sum())


class PeopleTracker:
    """Give every person of every frame a track id (1, 2, ...), frame after frame.

    ``sigmas``: the keypoint set's OKS sigmas; ``fps``: the video's frame rate (the filter's
    time base)."""

    def __init__(self, sigmas, settings: TrackerSettings | None = None,
                 smoothing: OneEuroSettings | None = None, fps: float = 25.0) -> None:
        self.sigmas = np.asarray(sigmas, dtype=np.float64)
        self.settings = settings or TrackerSettings()
        self.smoothing = smoothing
        self.fps = float(fps)
        self._tracks: list[_Track] = []
        self._next_id = 1
        self._last_frame: int | None = None

    def _similarity(self, track: _Track, box: np.ndarray, keypoints: np.ndarray,
                    scores: np.ndarray, frame: int) -> float:
        shift = track.shift(frame)
        moved_box = track.box + np.array([shift[0], shift[1], 0.0, 0.0])
        iou = float(box_iou(moved_box[None], box[None])[0])
        area = float(box[2] * box[3])
        similarity = keypoint_similarity(track.keypoints + shift, keypoints, area, self.sigmas,
                                         scores)
        weight = self.settings.iou_weight
        return weight * iou + (1.0 - weight) * similarity

    def update(self, frame: int, boxes: np.ndarray, keypoints: np.ndarray,
               scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Track ids (N,) of the N people of ``frame`` (boxes (N, 4) xywh, keypoints (N, J, 2),
        joint scores (N, J)) and their keypoints, filtered when smoothing is on. Frames must
        come in order."""
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        keypoints = np.asarray(keypoints, dtype=np.float64).reshape(len(boxes), -1, 2)
        scores = np.asarray(scores, dtype=np.float64).reshape(len(boxes), -1)
        if self._last_frame is not None and frame <= self._last_frame:
            raise ValueError(f"frames must come in order: {frame} after {self._last_frame}")
        self._last_frame = frame
        self._tracks = [t for t in self._tracks
                        if frame - t.last_frame <= self.settings.max_missed + 1]
        pairs: list[tuple[int, int]] = []
        if self._tracks and len(boxes):
            similarity = np.array([[self._similarity(t, b, k, s, frame)
                                    for b, k, s in zip(boxes, keypoints, scores, strict=True)]
                                   for t in self._tracks])
            rows, columns = linear_sum_assignment(-similarity)
            pairs = [(r, c) for r, c in zip(rows, columns, strict=True)
                     if similarity[r, c] >= self.settings.min_similarity]
        track_of = {column: self._tracks[row] for row, column in pairs}
        ids = np.zeros(len(boxes), dtype=np.int64)
        out = keypoints.copy()
        for index, (box, points) in enumerate(zip(boxes, keypoints, strict=True)):
            track = track_of.get(index)
            if track is None:
                track = _Track(self._next_id, box, points, frame,
                               smoother=PoseSmoother(self.smoothing) if self.smoothing else None)
                self._next_id += 1
                self._tracks.append(track)
            else:
                track.follow(box, points, frame)
            ids[index] = track.track_id
            if track.smoother is not None:
                out[index] = track.smoother(points, frame / self.fps,
                                            float(np.sqrt(max(box[2] * box[3], 1.0))))
        return ids, out


def track_people(tracker: PeopleTracker, frames: np.ndarray, boxes: np.ndarray,
                 keypoints: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Several frames' people at once (``frames[k]`` is person k's frame number, ascending):
    their track ids (K,) and keypoints (K, J, 2), filtered when the tracker smooths."""
    frames = np.asarray(frames)
    ids = np.zeros(len(frames), dtype=np.int64)
    out = np.array(keypoints, dtype=np.float64, copy=True)
    for frame in dict.fromkeys(frames.tolist()):
        members = np.flatnonzero(frames == frame)
        ids[members], out[members] = tracker.update(int(frame), boxes[members],
                                                    keypoints[members], scores[members])
    return ids, out


def _number(low: float, low_allowed: bool, high: float = math.inf):
    """An argparse type: a finite number above ``low`` (or equal, if allowed), up to ``high``."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not (math.isfinite(value) and (value > low or (low_allowed and value == low))
                and value <= high):
            raise argparse.ArgumentTypeError(
                f"expected a number {'>=' if low_allowed else '>'} {low:g}"
                + (f" and <= {high:g}" if math.isfinite(high) else "") + f", got {text!r}")
        return value
    return parse


def _count(text: str) -> int:
    if not text.strip().isdigit():
        raise argparse.ArgumentTypeError(f"expected a whole number >= 0, got {text!r}")
    return int(text)


def add_video_arguments(parser: argparse.ArgumentParser) -> None:
    """``tools/infer.py``'s options for video (tracking, ``--smooth``) and people pictures."""
    defaults, tracking = OneEuroSettings(), TrackerSettings()
    group = parser.add_argument_group("video and pictures")
    group.add_argument("--smooth", action="store_true",
                       help="video: One Euro filter on each tracked person's keypoints")
    group.add_argument("--smooth-min-cutoff", type=_number(0.0, False),
                       default=defaults.min_cutoff, help="Hz, the cutoff at rest: lower is "
                       f"smoother (default {defaults.min_cutoff})")
    group.add_argument("--smooth-beta", type=_number(0.0, True), default=defaults.beta,
                       help="how fast the cutoff rises with speed: higher lags less "
                       f"(default {defaults.beta})")
    group.add_argument("--smooth-d-cutoff", type=_number(0.0, False),
                       default=defaults.d_cutoff,
                       help=f"Hz, the speed estimate's cutoff (default {defaults.d_cutoff})")
    group.add_argument("--track-max-missed", type=_count, default=tracking.max_missed,
                       help="video: frames a person may go unseen and keep its track id "
                       f"(default {tracking.max_missed})")
    group.add_argument("--kp-thr", type=_number(0.0, True, 1.0), default=0.3,
                       help="pictures: joints scored below this are drawn faint (default 0.3)")


def tracker_from_arguments(args: argparse.Namespace, sigmas, fps: float) -> PeopleTracker:
    """The tracker (and filter, with ``--smooth``) the options of ``add_video_arguments`` ask."""
    smoothing = OneEuroSettings(args.smooth_min_cutoff, args.smooth_beta,
                                args.smooth_d_cutoff) if args.smooth else None
    return PeopleTracker(sigmas, TrackerSettings(max_missed=args.track_max_missed), smoothing,
                         fps)
