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

import json
import math
from collections import deque
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

from common.keypoints import MOTION_KEYPOINTS, MOTION_SKELETON
from common.motion_data import MotionName, write_keypoint_csv

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


# --------------------------------------------------------------------------- rendering

_SHIFT = 4  # cv2 sub-pixel bits: coordinates drawn to 1/16 pixel
_ONE = 1 << _SHIFT


def _fixed(points: np.ndarray) -> np.ndarray:
    return np.round(np.asarray(points, dtype=np.float64) * _ONE).astype(np.int32)


def _hsv(hue: float, saturation: float, value: float) -> tuple[int, int, int]:
    """A BGR colour from OpenCV hue (0-180), saturation and value (0-255)."""
    pixel = np.uint8([[[int(hue) % 180, int(saturation), int(value)]]])
    b, g, r = cv2.cvtColor(pixel, cv2.COLOR_HSV2BGR)[0, 0]
    return int(b), int(g), int(r)


def _shade(colour: tuple[int, int, int], factor: float) -> tuple[int, int, int]:
    return tuple(int(np.clip(c * factor, 0, 255)) for c in colour)


def _disc(image: np.ndarray, centre: np.ndarray, radius: float, colour: tuple) -> None:
    cv2.circle(
        image,
        tuple(_fixed(centre)),
        max(int(round(radius * _ONE)), _ONE // 2),
        colour,
        -1,
        cv2.LINE_AA,
        _SHIFT,
    )


def _ring(
    image: np.ndarray, centre: np.ndarray, radius: float, colour: tuple, thickness: int
) -> None:
    cv2.circle(
        image,
        tuple(_fixed(centre)),
        max(int(round(radius * _ONE)), _ONE),
        colour,
        max(thickness, 1),
        cv2.LINE_AA,
        _SHIFT,
    )


def _tapered(
    image: np.ndarray,
    start: np.ndarray,
    end: np.ndarray,
    width_start: float,
    width_end: float,
    colour: tuple,
) -> None:
    """A limb: a quadrilateral from ``start`` to ``end`` with round ends, narrowing."""
    direction = end - start
    length = float(np.hypot(*direction))
    if length > 1e-6:
        normal = np.array([-direction[1], direction[0]]) / length
        corners = np.array(
            [
                start + normal * width_start / 2,
                end + normal * width_end / 2,
                end - normal * width_end / 2,
                start - normal * width_start / 2,
            ]
        )
        cv2.fillConvexPoly(image, _fixed(corners), colour, cv2.LINE_AA, _SHIFT)
    _disc(image, start, width_start / 2, colour)
    _disc(image, end, width_end / 2, colour)


def _shaded_limb(
    image: np.ndarray,
    start: np.ndarray,
    end: np.ndarray,
    width_start: float,
    width_end: float,
    colour: tuple,
) -> None:
    """A limb with a dark rim and a lit middle stripe, so it reads as a rounded solid."""
    _tapered(image, start, end, width_start, width_end, _shade(colour, 0.55))
    _tapered(image, start, end, width_start * 0.72, width_end * 0.72, colour)
    _tapered(image, start, end, width_start * 0.25, width_end * 0.25, _shade(colour, 1.25))


@dataclass(frozen=True)
class FigureStyle:
    """Colours of one subject. Left limbs are always warm (red-yellow), right limbs cool."""

    left_arm: tuple[int, int, int]
    left_leg: tuple[int, int, int]
    right_arm: tuple[int, int, int]
    right_leg: tuple[int, int, int]
    torso: tuple[int, int, int]
    skin: tuple[int, int, int]
    hair: tuple[int, int, int]

    @classmethod
    def sample(cls, rng: np.random.Generator) -> FigureStyle:
        warm = rng.uniform(0, 14)  # OpenCV hue: red..orange
        cool = rng.uniform(98, 118)  # blue..azure
        saturation = rng.uniform(170, 250)
        torso_hue = rng.choice([rng.uniform(40, 80), rng.uniform(135, 165)])  # green or purple
        skin = rng.uniform(0.55, 1.0)
        return cls(
            left_arm=_hsv(warm, saturation, rng.uniform(200, 255)),
            left_leg=_hsv(warm + 12, saturation, rng.uniform(150, 210)),
            right_arm=_hsv(cool, saturation, rng.uniform(200, 255)),
            right_leg=_hsv(cool - 12, saturation, rng.uniform(150, 210)),
            torso=_hsv(torso_hue, rng.uniform(60, 160), rng.uniform(90, 200)),
            skin=(int(150 * skin + 40), int(175 * skin + 40), int(205 * skin + 45)),
            hair=_hsv(rng.uniform(0, 30), rng.uniform(40, 160), rng.uniform(20, 90)),
        )


def render_figure(
    image: np.ndarray,
    keypoints: np.ndarray,
    body_unit: float,
    style: FigureStyle,
    left_in_front: bool = True,
) -> None:
    """Draw one person in place so that each of the 24 keypoints can be read off the pixels.

    Joints sit at the centres of darker joint discs, palms and insteps are blobs at the ends of
    hands and feet, the neck and spine points are ringed marks on a stripe down the torso, and
    the face has ears (coloured by side), eyes (iris coloured by side) and a red nose.
    ``body_unit`` (pixels, about a torso length) sets widths and the head's size.
    """
    k = np.asarray(keypoints, dtype=np.float64)
    t = max(float(body_unit), 4.0)
    sides = {
        "left": (style.left_arm, style.left_leg),
        "right": (style.right_arm, style.right_leg),
    }
    order = ("right", "left") if left_in_front else ("left", "right")

    def leg(side: str) -> None:
        colour = sides[side][1]
        hip, knee, ankle, instep = (J[f"{side}_{n}"] for n in ("hip", "knee", "ankle", "instep"))
        _shaded_limb(image, k[hip], k[knee], 0.38 * t, 0.28 * t, colour)
        _shaded_limb(image, k[knee], k[ankle], 0.28 * t, 0.18 * t, _shade(colour, 0.85))
        _shaded_limb(image, k[ankle], k[instep], 0.17 * t, 0.13 * t, _shade(colour, 0.7))
        _disc(image, k[knee], 0.085 * t, _shade(colour, 0.45))
        _disc(image, k[ankle], 0.06 * t, _shade(colour, 0.45))
        _disc(image, k[instep], 0.075 * t, (40, 40, 40))
        _disc(image, k[instep], 0.045 * t, _shade(colour, 1.3))

    def arm(side: str) -> None:
        colour = sides[side][0]
        shoulder, elbow, wrist, palm = (
            J[f"{side}_{n}"] for n in ("shoulder", "elbow", "wrist", "palm")
        )
        _shaded_limb(image, k[shoulder], k[elbow], 0.26 * t, 0.2 * t, colour)
        _shaded_limb(image, k[elbow], k[wrist], 0.2 * t, 0.15 * t, _shade(colour, 0.85))
        _tapered(image, k[wrist], k[palm], 0.13 * t, 0.16 * t, style.skin)
        _disc(image, k[shoulder], 0.08 * t, _shade(colour, 0.45))
        _disc(image, k[elbow], 0.065 * t, _shade(colour, 0.45))
        _disc(image, k[wrist], 0.05 * t, _shade(colour, 0.45))
        _disc(image, k[palm], 0.08 * t, _shade(style.skin, 0.6))
        _disc(image, k[palm], 0.05 * t, _shade(colour, 1.3))

    for side in order:
        leg(side)
    # Torso: a body between shoulders and hips, plus a thick spine so a side view has a body.
    body = k[[J["left_shoulder"], J["right_shoulder"], J["right_hip"], J["left_hip"]]]
    hull = cv2.convexHull(_fixed(body))
    cv2.fillConvexPoly(image, hull, style.torso, cv2.LINE_AA, _SHIFT)
    _tapered(image, k[NECK], k[J["spine2(back)"]], 0.62 * t, 0.56 * t, style.torso)
    _tapered(image, k[J["spine2(back)"]], k[WAIST], 0.56 * t, 0.52 * t, style.torso)
    for side in ("left", "right"):
        _tapered(image, k[NECK], k[J[f"{side}_shoulder"]], 0.3 * t, 0.28 * t, style.torso)
        _tapered(image, k[WAIST], k[J[f"{side}_hip"]], 0.4 * t, 0.4 * t, style.torso)
        _disc(image, k[J[f"{side}_hip"]], 0.09 * t, _shade(sides[side][1], 0.5))
    stripe = _shade(style.torso, 0.45)
    _tapered(image, k[NECK], k[J["spine2(back)"]], 0.05 * t, 0.05 * t, stripe)
    _tapered(image, k[J["spine2(back)"]], k[WAIST], 0.05 * t, 0.05 * t, stripe)
    for index, mark in (
        (NECK, (255, 255, 255)),
        (J["spine2(back)"], (0, 220, 255)),
        (WAIST, (255, 0, 255)),
    ):
        _disc(image, k[index], 0.075 * t, stripe)
        _disc(image, k[index], 0.045 * t, mark)

    for side in order:
        arm(side)

    # Head: a skull around the face points, a neck up to it, then the face marks.
    face = k[[J["nose"], J["left_eye"], J["right_eye"], J["left_ear"], J["right_ear"]]]
    centre = face.mean(axis=0)
    radius = max(0.3 * t, 1.25 * float(np.max(np.linalg.norm(face - centre, axis=1))))
    _tapered(image, k[NECK], centre, 0.22 * t, 0.2 * t, _shade(style.skin, 0.85))
    _disc(image, centre, radius, _shade(style.hair, 1.0))
    _disc(image, centre, radius * 0.86, style.skin)
    for side, colour in (("left", style.left_arm), ("right", style.right_arm)):
        ear, eye = k[J[f"{side}_ear"]], k[J[f"{side}_eye"]]
        _disc(image, ear, 0.075 * t, _shade(colour, 0.6))
        _disc(image, ear, 0.045 * t, colour)
        _disc(image, eye, 0.05 * t, (250, 250, 250))
        _disc(image, eye, 0.03 * t, colour)
        _disc(image, eye, 0.012 * t, (10, 10, 10))
    _disc(image, k[J["nose"]], 0.045 * t, (30, 30, 120))
    _disc(image, k[J["nose"]], 0.03 * t, (40, 40, 235))


def render_background(
    rng: np.random.Generator, size: tuple[int, int], feet_y: float | None = None
) -> np.ndarray:
    """A cluttered room: a blotchy gradient wall, a floor with seams, shapes, lines and text.

    ``feet_y`` (pixels), the lowest point of the person, puts the wall's foot above it, so the
    person stands or lies on the floor rather than floating in front of the wall.
    """
    width, height = size
    small = (max(width // 32, 2), max(height // 32, 2))
    top = rng.uniform(30, 230, 3)
    bottom = rng.uniform(30, 230, 3)
    ramp = np.linspace(0.0, 1.0, small[1])[:, None, None]
    wall = top * (1 - ramp) + bottom * ramp + rng.normal(0, 12, (small[1], small[0], 3))
    image = cv2.resize(
        np.clip(wall, 0, 255).astype(np.uint8), (width, height), interpolation=cv2.INTER_CUBIC
    )

    horizon = rng.uniform(0.55, 0.8) * height
    if feet_y is not None:
        horizon = float(np.clip(feet_y - rng.uniform(0.05, 0.2) * height, 0.3 * height, horizon))
    floor = tuple(float(v) for v in rng.uniform(40, 200, 3))
    corners = _fixed(
        [
            [0, horizon],
            [width, horizon + rng.normal(0, 0.02) * height],
            [width, height],
            [0, height],
        ]
    )
    cv2.fillConvexPoly(image, corners, floor, cv2.LINE_AA, _SHIFT)
    vanishing = np.array([rng.uniform(0.2, 0.8) * width, horizon - rng.uniform(0.1, 0.5) * height])
    seam = _shade(floor, rng.uniform(0.6, 0.85))
    reach = (horizon - vanishing[1]) / (height - vanishing[1])  # where the seams meet the wall
    for x in np.linspace(-width, 2 * width, int(rng.integers(6, 14))):
        start = vanishing + (np.array([x, height]) - vanishing) * reach
        cv2.line(
            image,
            tuple(_fixed(start)),
            tuple(_fixed([x, height])),
            seam,
            max(1, height // 400),
            cv2.LINE_AA,
            _SHIFT,
        )

    scale = min(width, height)
    for _ in range(int(rng.integers(12, 30))):
        colour = tuple(float(v) for v in rng.uniform(0, 255, 3))
        kind = rng.integers(0, 6)
        centre = rng.uniform([0, 0], [width, height])
        extent = rng.uniform(0.02, 0.25) * scale
        thickness = int(rng.choice([-1, max(1, scale // 200), max(2, scale // 80)]))
        if kind == 0:
            corner = centre + rng.uniform(0.5, 2.0, 2) * extent
            cv2.rectangle(
                image,
                tuple(_fixed(centre)),
                tuple(_fixed(corner)),
                colour,
                thickness,
                cv2.LINE_AA,
                _SHIFT,
            )
        elif kind == 1 and thickness > 0:
            _ring(image, centre, extent / 2, colour, thickness)
        elif kind == 1:
            _disc(image, centre, extent / 2, colour)
        elif kind == 2:
            end = centre + rng.normal(0, 1.5, 2) * extent
            cv2.line(
                image,
                tuple(_fixed(centre)),
                tuple(_fixed(end)),
                colour,
                max(1, abs(thickness)),
                cv2.LINE_AA,
                _SHIFT,
            )
        elif kind == 3:
            points = centre + rng.normal(0, 1.0, (int(rng.integers(3, 7)), 2)) * extent
            cv2.polylines(
                image,
                [_fixed(points)],
                bool(rng.integers(0, 2)),
                colour,
                max(1, abs(thickness)),
                cv2.LINE_AA,
                _SHIFT,
            )
        elif kind == 4:
            axes = rng.uniform(0.3, 1.0, 2) * extent
            cv2.ellipse(
                image,
                tuple(_fixed(centre)),
                tuple(_fixed(axes)),
                float(rng.uniform(0, 180)),
                0.0,
                360.0,
                colour,
                thickness,
                cv2.LINE_AA,
                _SHIFT,
            )
        else:
            letters = "".join(rng.choice(list("ABCDEFGHKMNPRSTUVWXYZ0123456789"), 5))
            cv2.putText(
                image,
                letters,
                tuple(int(v) for v in centre),
                cv2.FONT_HERSHEY_SIMPLEX,
                extent / 40.0,
                colour,
                max(1, scale // 300),
                cv2.LINE_AA,
            )
    return image


def add_sensor_noise(rng: np.random.Generator, image: np.ndarray, strength: float) -> None:
    """Grain and a light blur, in place: the camera's look, and no perfectly sharp edges."""
    height, width = image.shape[:2]
    grain = rng.integers(-strength, strength + 1, size=(height, width, 1), dtype=np.int16)
    noisy = image.astype(np.int16) + grain
    np.clip(noisy, 0, 255, out=noisy)
    cv2.GaussianBlur(noisy.astype(np.uint8), (3, 3), 0.6, dst=image)


# --------------------------------------------------------------------------- data set

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
        raise ValueError(f"image counts must be >= 0, got train {n_train}, test {n_test}")
    if width < 32 or height < 32:
        raise ValueError(f"images must be at least 32x32, got {width}x{height}")
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
