"""Motion sequences for the synthetic motion set: poses as trees of bones from the waist,
calibrated by ``motion_stats.json``, interpolated between key poses and placed in the frame
(see :mod:`common.synthetic.motion`)."""

from __future__ import annotations

import json
import math
from collections import deque
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from common.keypoints import MOTION_KEYPOINTS, MOTION_SKELETON

STATS_PATH = Path(__file__).with_name("motion_stats.json")
REFERENCE_SIZE = (1920, 1080)  # (width, height) of the frames the statistics come from
CAMERAS = ("A", "B", "C", "D", "E")

J = {name: index for index, name in enumerate(MOTION_KEYPOINTS)}
WAIST, NECK = J["spine1(waist)"], J["neck"]
LEFT_SIDE = (J["left_shoulder"], J["left_hip"])
RIGHT_SIDE = (J["right_shoulder"], J["right_hip"])


def skeleton_tree(root: int = WAIST) -> list[tuple[int, int]]:
    """The skeleton's edges as (parent, child), parents first, in a walk from ``root``."""
    neighbours: dict[int, list[int]] = {index: [] for index in range(len(MOTION_KEYPOINTS))}
    for a, b in MOTION_SKELETON:
        neighbours[a].append(b)
        neighbours[b].append(a)
    bones, seen, queue = [], {root}, deque([root])
    while queue:
        parent = queue.popleft()
        for child in neighbours[parent]:
            if child not in seen:
                seen.add(child)
                bones.append((parent, child))
                queue.append(child)
    if len(seen) != len(MOTION_KEYPOINTS):
        raise ValueError("the motion skeleton does not connect every keypoint")
    return bones


BONES = skeleton_tree()


def torso_lengths(keypoints: np.ndarray) -> np.ndarray:
    """(N,) neck to waist distance, the body's size unit."""
    return np.linalg.norm(keypoints[:, NECK] - keypoints[:, WAIST], axis=-1)


def facing_front(keypoints: np.ndarray) -> np.ndarray:
    """(N,) True where the person faces the camera: their left side is on the image's right."""
    left = keypoints[:, list(LEFT_SIDE), 0].sum(axis=1)
    right = keypoints[:, list(RIGHT_SIDE), 0].sum(axis=1)
    return left >= right


def normalise_poses(keypoints: np.ndarray) -> np.ndarray:
    """Poses centred on the waist, in torso units, mirrored so that all face the camera.

    Mirroring the x axis (labels kept) turns a back view into a front view, so front and back
    views of one posture share a cluster.
    """
    centred = keypoints - keypoints[:, WAIST : WAIST + 1]
    poses = centred / torso_lengths(keypoints)[:, None, None]
    back = ~facing_front(keypoints)
    poses[back, :, 0] *= -1.0
    return poses


@lru_cache(maxsize=4)
def _load_stats(path: str) -> dict:
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def load_motion_stats(path: str | Path = STATS_PATH) -> dict:
    """The calibration statistics (a shared, read-only dict)."""
    return _load_stats(str(path))


# --------------------------------------------------------------------------- poses


def pose_to_bones(pose: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(angles, lengths) of every bone of BONES for one (J, 2) pose."""
    vectors = np.array([pose[child] - pose[parent] for parent, child in BONES])
    return np.arctan2(vectors[:, 1], vectors[:, 0]), np.linalg.norm(vectors, axis=1)


def bones_to_poses(angles: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """(F, J, 2) poses with the waist at the origin from (F, B) bone angles and lengths."""
    angles = np.atleast_2d(angles)
    lengths = np.atleast_2d(lengths)
    poses = np.zeros((angles.shape[0], len(MOTION_KEYPOINTS), 2))
    for bone, (parent, child) in enumerate(BONES):
        step = np.stack([np.cos(angles[:, bone]), np.sin(angles[:, bone])], axis=1)
        poses[:, child] = poses[:, parent] + lengths[:, bone : bone + 1] * step
    return poses


def _mirror_partner() -> np.ndarray:
    """For each bone, the index of its left/right counterpart (itself on the midline)."""
    swap = {}
    for name, index in J.items():
        if name.startswith("left_"):
            swap[index] = J["right_" + name[5:]]
            swap[J["right_" + name[5:]]] = index
    index_of = {(parent, child): bone for bone, (parent, child) in enumerate(BONES)}
    return np.array(
        [index_of[(swap.get(parent, parent), swap.get(child, child))] for parent, child in BONES]
    )


BONE_PARTNER = _mirror_partner()


def typical_bone_lengths(stats: dict) -> np.ndarray:
    """(B,) mean length of each bone of BONES over the real poses, torso units."""
    mean_length = {(b["parent"], b["child"]): b["mean"] for b in stats["bones"]}
    return np.array([mean_length[(MOTION_KEYPOINTS[p], MOTION_KEYPOINTS[c])] for p, c in BONES])


LIMB_BONES = [
    BONES.index((J[f"{side}_{a}"], J[f"{side}_{b}"]))
    for side in ("left", "right")
    for a, b in (("shoulder", "elbow"), ("elbow", "wrist"), ("hip", "knee"), ("knee", "ankle"))
]


@dataclass(frozen=True)
class PoseModel:
    """The calibration as arrays: cluster poses as bones, and the noise each may take."""

    weights: np.ndarray  # (K,)
    angles: np.ndarray  # (K, B) bone angles of the cluster centres
    lengths: np.ndarray  # (K, B) bone lengths, torso units
    angle_noise: np.ndarray  # (K, B) radians

    @classmethod
    def from_stats(cls, stats: dict) -> PoseModel:
        clusters = stats["pose_clusters"]
        centres = np.asarray(clusters["centres"], dtype=np.float64)
        spread = np.asarray(clusters["spread"], dtype=np.float64)
        typical = typical_bone_lengths(stats)
        angles, lengths = zip(*(pose_to_bones(centre) for centre in centres), strict=True)
        # A cluster mean shortens bones that point different ways in its members: pull the
        # lengths half way back to the typical bone length.
        lengths = 0.5 * np.asarray(lengths) + 0.5 * typical
        children = [child for _, child in BONES]
        # Angle noise as large as a joint's spread in its cluster: key poses then differ about
        # as much as the real frames of a sequence do (median joint move ~0.1-0.2 torso/step).
        angle_noise = np.clip(spread[:, children], 0.1, 0.7)
        weights = np.asarray(clusters["weights"], dtype=np.float64)
        return cls(
            weights=weights / weights.sum(),
            angles=np.asarray(angles),
            lengths=lengths,
            angle_noise=angle_noise,
        )

    def key_pose(
        self, rng: np.random.Generator, cluster: int, body: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Bone (angles, lengths) of a pose around a cluster centre, for a body's proportions."""
        angles = self.angles[cluster] + rng.normal(0.0, 1.0, len(BONES)) * self.angle_noise[cluster]
        lengths = self.lengths[cluster] * body * np.exp(rng.normal(0.0, 0.05, len(BONES)))
        return angles, lengths


def sample_body(rng: np.random.Generator) -> np.ndarray:
    """Per-bone length factors of one subject, equal on the left and right."""
    factors = np.exp(rng.normal(0.0, 0.08, len(BONES)))
    return np.sqrt(factors * factors[BONE_PARTNER])


def sample_motion(
    rng: np.random.Generator, model: PoseModel, frames: int, body: np.ndarray
) -> np.ndarray:
    """(frames, J, 2) normalised poses that move smoothly between random key poses."""
    cluster = int(rng.choice(len(model.weights), p=model.weights))
    key_times, keys = [0], [model.key_pose(rng, cluster, body)]
    while key_times[-1] < frames - 1:
        if rng.random() < 0.25:
            cluster = int(rng.choice(len(model.weights), p=model.weights))
        key_times.append(key_times[-1] + int(rng.integers(2, 4)))
        keys.append(model.key_pose(rng, cluster, body))
    angles = np.empty((frames, len(BONES)))
    lengths = np.empty((frames, len(BONES)))
    for frame in range(frames):
        if len(keys) == 1:
            angles[frame], lengths[frame] = keys[0]
            continue
        k = min(int(np.searchsorted(key_times, frame, side="right")) - 1, len(keys) - 2)
        t = (frame - key_times[k]) / (key_times[k + 1] - key_times[k])
        t = t * t * (3.0 - 2.0 * t)  # ease in and out: no jerk at key poses
        (a0, l0), (a1, l1) = keys[k], keys[k + 1]
        turn = (a1 - a0 + np.pi) % (2.0 * np.pi) - np.pi  # the short way round
        angles[frame] = a0 + t * turn
        lengths[frame] = l0 + t * (l1 - l0)
    return bones_to_poses(angles, lengths)


# --------------------------------------------------------------------------- placement


def _truncated_normal(
    rng: np.random.Generator, summary: dict, low_key: str = "min", high_key: str = "max"
) -> float:
    value = rng.normal(summary["mean"], summary["std"])
    return float(np.clip(value, summary[low_key], summary[high_key]))


def place_sequence(
    rng: np.random.Generator,
    poses: np.ndarray,
    stats: dict,
    camera: str,
    size: tuple[int, int],
) -> tuple[np.ndarray, np.ndarray]:
    """One camera's view of a normalised motion, in pixels of a ``size`` (w, h) image.

    Returns (F, J, 2) keypoints and (F,) body units: the pixel length of an unforeshortened
    torso, which sets limb widths and head size (a torso seen end-on is short, the body is not).
    The camera sees the person from the front or the back (calibrated per camera), a little
    turned (x squashed) and tilted; the person stands where the real people stand, drifts a
    little, and stays inside the frame with room for the drawn body.
    """
    width, height = size
    scale = min(width / REFERENCE_SIZE[0], height / REFERENCE_SIZE[1])
    typical = typical_bone_lengths(stats)
    ratios = np.array([pose_to_bones(pose)[1] for pose in poses])[:, LIMB_BONES]
    body = np.maximum(1.0, np.median(ratios / typical[LIMB_BONES], axis=1))

    front = rng.random() < stats["facing_front_by_camera"].get(camera, 0.5)
    view = poses.copy()
    view[..., 0] *= rng.uniform(0.7, 1.0) * (1.0 if front else -1.0)
    tilt = rng.normal(0.0, 0.04)
    rotation = np.array([[math.cos(tilt), -math.sin(tilt)], [math.sin(tilt), math.cos(tilt)]])
    view = view @ rotation.T
    drift = rng.normal(0.0, [0.08, 0.02]) * np.arange(len(view))[:, None]
    view = view + drift[:, None, :]

    torso_px = _truncated_normal(rng, stats["torso_px"], "q05", "q95") * scale
    pixels = view * torso_px
    centre = np.array(
        [
            _truncated_normal(rng, stats["box_center_x_px"]) * width / REFERENCE_SIZE[0],
            _truncated_normal(rng, stats["box_center_y_px"]) * height / REFERENCE_SIZE[1],
        ]
    )
    low, high = pixels.reshape(-1, 2).min(axis=0), pixels.reshape(-1, 2).max(axis=0)
    pixels = pixels + (centre - (low + high) / 2.0)

    # Keep the whole drawn figure (head, limb widths) inside the frame: shrink, then shift.
    units = torso_px * body
    frame_size = np.array([width, height], dtype=np.float64)
    margin = 0.4 * float(units.max()) + 1.0
    low, high = pixels.reshape(-1, 2).min(axis=0), pixels.reshape(-1, 2).max(axis=0)
    room = np.maximum(frame_size - 1.0 - 2.0 * margin, 1.0)
    shrink = min(1.0, float(np.min(room / np.maximum(high - low, 1e-6))))
    if shrink < 1.0:
        middle = (low + high) / 2.0
        pixels = middle + (pixels - middle) * shrink
        units = units * shrink
        margin = 0.4 * float(units.max()) + 1.0
        low, high = pixels.reshape(-1, 2).min(axis=0), pixels.reshape(-1, 2).max(axis=0)
    limit = frame_size - 1.0 - margin
    shift = np.maximum(margin - low, 0.0) - np.maximum(high - limit, 0.0)
    return pixels + shift, units
