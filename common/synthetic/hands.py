"""Hands for the synthetic gesture set: the classes (shape, hand, view, motion), 21 keypoints
of a hand shape, a hand drawn on a cluttered scene and one clip's frames with their keypoints
(see :mod:`common.synthetic.gesture`)."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

REFERENCE_WIDTH = 1920.0  # jitter and noise below are pixels of a 1920-wide frame
STATIC_JITTER_PX = 3.0
STATIC_DRIFT_PX = 5.0
ANNOTATION_NOISE_PX = 1.5
LAZY_WAG_FRACTION = 0.1
OUTLIER_POSE_ID = 171  # its second training clip opens the fists (the reference's folder 596)


@dataclass(frozen=True)
class SyntheticPose:
    pose_id: int
    pose_name: str
    pose_name_en: str
    view_type: str
    gesture_type: str
    hand_type: str
    shape: str  # one, two, palm, fist
    motion: str  # still, wag, push


POSES: tuple[SyntheticPose, ...] = (
    SyntheticPose(0, "숫자 1", "number one", "my hand", "static", "left", "one", "still"),
    SyntheticPose(2, "숫자 2", "number two", "my hand", "static", "left", "two", "still"),
    SyntheticPose(10, "숫자 1", "number one", "my hand", "static", "right", "one", "still"),
    SyntheticPose(12, "숫자 2", "number two", "my hand", "static", "right", "two", "still"),
    SyntheticPose(
        42, "부정(검지 흔들기)", "no (index wag)", "my hand", "dynamic", "left", "one", "wag"
    ),
    SyntheticPose(
        67, "부정(검지 흔들기)", "no (index wag)", "my hand", "dynamic", "right", "one", "wag"
    ),
    SyntheticPose(105, "손바닥 펴기", "open palm", "your hand", "static", "left", "palm", "still"),
    SyntheticPose(115, "손바닥 펴기", "open palm", "your hand", "static", "right", "palm", "still"),
    SyntheticPose(122, "주먹쥐기", "fist", "your hand", "static", "left", "fist", "still"),
    SyntheticPose(146, "주먹쥐기", "fist", "your hand", "static", "right", "fist", "still"),
    SyntheticPose(
        163,
        "경고(주먹 내밀기)",
        "warning (fist push)",
        "your hand",
        "dynamic",
        "right",
        "fist",
        "push",
    ),
    SyntheticPose(171, "주먹쥐기", "fist", "your hand", "static", "both", "fist", "still"),
    SyntheticPose(
        191,
        "경고(주먹 내밀기)",
        "warning (fist push)",
        "your hand",
        "dynamic",
        "both",
        "fist",
        "push",
    ),
)

# Hand geometry in palm lengths, wrist at the origin, fingers up (-y), thumb toward +x.
_KNUCKLES = np.array([[0.30, -0.92], [0.09, -1.00], [-0.12, -0.95], [-0.31, -0.84]])
_SEGMENTS = np.array(
    [[0.42, 0.26, 0.20], [0.47, 0.29, 0.21], [0.44, 0.27, 0.20], [0.34, 0.21, 0.18]]
)
_SPREAD = np.array([0.10, 0.0, -0.08, -0.20])  # radians from vertical, toward the thumb
_THUMBS = {
    "out": np.array([[0.22, -0.18], [0.42, -0.38], [0.55, -0.55], [0.65, -0.70]]),
    "tucked": np.array([[0.22, -0.18], [0.36, -0.42], [0.28, -0.62], [0.12, -0.72]]),
    "fist": np.array([[0.22, -0.18], [0.38, -0.45], [0.30, -0.70], [0.10, -0.80]]),
}
# Straight fingers per shape: 0 thumb, 1 index, 2 middle, 3 ring, 4 pinky.
_EXTENDED = {"one": (1,), "two": (1, 2), "palm": (0, 1, 2, 3, 4), "fist": ()}
_THUMB_OF_SHAPE = {"one": "tucked", "two": "tucked", "palm": "out", "fist": "fist"}
_FINGER_WIDTH = np.array([0.19, 0.17, 0.17, 0.16, 0.14])  # thumb, index, middle, ring, pinky
_FINGER_SHADE = np.array([0.86, 1.0, 0.94, 0.88, 0.81])
_SKIN_TONES = np.array(
    [[120, 150, 200], [100, 132, 186], [80, 110, 160], [142, 170, 222], [70, 95, 140]],
    dtype=np.float64,
)  # BGR


def hand_shape_points(shape: str, thumb_sign: float, wag_angle: float = 0.0) -> np.ndarray:
    """(21, 2) keypoints of a hand shape in palm lengths (HAND_KEYPOINTS order).

    ``thumb_sign`` +1 puts the thumb toward +x; ``wag_angle`` (radians) swings the index finger
    about its knuckle.
    """
    points = np.zeros((21, 2))
    points[1:5] = _THUMBS[_THUMB_OF_SHAPE[shape]]
    for finger in range(4):
        base = 5 + 4 * finger
        knuckle = _KNUCKLES[finger]
        points[base] = knuckle
        if finger + 1 in _EXTENDED[shape]:
            angle = _SPREAD[finger] + (wag_angle if finger == 0 else 0.0)
            direction = np.array([np.sin(angle), -np.cos(angle)])
            lengths = np.cumsum(_SEGMENTS[finger])
            points[base + 1 : base + 4] = knuckle + lengths[:, None] * direction
        else:  # curled: the middle joint shows above the knuckle, the tip folds onto the palm
            points[base + 1 : base + 4] = knuckle + np.array(
                [[0.0, -0.20], [0.02, -0.03], [0.03, 0.12]]
            )
    points[:, 0] *= thumb_sign
    return points


def _place(points: np.ndarray, wrist: np.ndarray, palm_px: float, tilt: float) -> np.ndarray:
    rotation = np.array([[np.cos(tilt), -np.sin(tilt)], [np.sin(tilt), np.cos(tilt)]])
    return wrist + palm_px * points @ rotation.T


def _background(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """A cluttered indoor-like scene: gradient, muted shapes, skin-coloured distractors, noise."""
    top, bottom = rng.uniform(60, 200, 3), rng.uniform(60, 200, 3)
    ramp = np.linspace(0.0, 1.0, height)[:, None, None]
    image = (top * (1 - ramp) + bottom * ramp) * np.ones((1, width, 1))
    image = np.ascontiguousarray(image.astype(np.uint8))
    unit = max(width, height)
    for _ in range(int(rng.integers(8, 18))):
        gray = rng.uniform(60, 200)
        color = tuple(int(gray + 0.45 * (c - gray)) for c in rng.uniform(0, 255, 3))
        kind = rng.integers(4)
        x, y = int(rng.uniform(0, width)), int(rng.uniform(0, height))
        size = int(rng.uniform(0.03, 0.18) * unit)
        if kind == 0:
            cv2.rectangle(image, (x, y), (x + size, y + int(size * rng.uniform(0.3, 2))), color, -1)
        elif kind == 1:
            cv2.circle(image, (x, y), max(1, size // 2), color, -1, cv2.LINE_AA)
        elif kind == 2:
            end = (int(rng.uniform(0, width)), int(rng.uniform(0, height)))
            cv2.line(image, (x, y), end, color, max(1, int(0.006 * unit)), cv2.LINE_AA)
        else:
            polygon = (np.array([x, y]) + rng.uniform(-size, size, (5, 2))).astype(np.int32)
            cv2.fillPoly(image, [polygon], color, cv2.LINE_AA)
    for _ in range(int(rng.integers(0, 3))):  # skin-like blobs, so colour alone finds no hand
        tone = _SKIN_TONES[rng.integers(len(_SKIN_TONES))]
        center = (int(rng.uniform(0, width)), int(rng.uniform(0, height)))
        axes = (max(1, int(rng.uniform(0.02, 0.06) * unit)), max(1, int(0.03 * unit)))
        cv2.ellipse(
            image,
            center,
            axes,
            float(rng.uniform(0, 180)),
            0,
            360,
            tuple(int(c) for c in tone),
            -1,
            cv2.LINE_AA,
        )
    image = cv2.GaussianBlur(image, (3, 3), 0)
    noise = rng.normal(0, 5, image.shape)
    return np.clip(image + noise, 0, 255).astype(np.uint8)


def _color(values: np.ndarray) -> tuple[int, int, int]:
    return tuple(int(v) for v in np.clip(values, 0, 255))


def draw_hand(
    image: np.ndarray,
    points: np.ndarray,
    palm_px: float,
    skin: np.ndarray,
    palm_side: bool,
    extended: tuple[int, ...],
    sleeve_color: np.ndarray,
    sleeve_end: np.ndarray,
) -> None:
    """Draw one hand in place: sleeve, palm, curled then extended fingers.

    The palm side is lighter with creases; the back is darker with knuckles and nails. Each
    finger has its own shade, darker toward its base, so the fingers can be told apart.
    """
    outline = skin * 0.35
    base = skin * (1.12 if palm_side else 0.9)
    wrist = points[0]
    cv2.line(
        image,
        tuple(np.round(wrist).astype(int)),
        tuple(np.round(sleeve_end).astype(int)),
        _color(sleeve_color),
        max(2, int(0.55 * palm_px)),
        cv2.LINE_AA,
    )
    side = points[17] - points[5]
    palm = np.array(
        [
            wrist - 0.25 * side,
            points[1],
            points[5],
            points[9],
            points[13],
            points[17],
            wrist + 0.3 * side,
        ]
    )
    cv2.fillPoly(image, [np.round(palm).astype(np.int32)], _color(base), cv2.LINE_AA)
    cv2.polylines(
        image,
        [np.round(palm).astype(np.int32)],
        True,
        _color(outline),
        max(1, int(0.03 * palm_px)),
        cv2.LINE_AA,
    )
    if palm_side:
        for start, end in (
            (points[1] * 0.5 + points[5] * 0.5, points[13] * 0.6 + wrist * 0.4),
            (points[5] * 0.7 + wrist * 0.3, points[17] * 0.7 + wrist * 0.3),
        ):
            cv2.line(
                image,
                tuple(np.round(start).astype(int)),
                tuple(np.round(end).astype(int)),
                _color(skin * 0.7),
                max(1, int(0.025 * palm_px)),
                cv2.LINE_AA,
            )
    else:
        for knuckle in points[[5, 9, 13, 17]]:
            cv2.circle(
                image,
                tuple(np.round(knuckle).astype(int)),
                max(1, int(0.05 * palm_px)),
                _color(skin * 0.7),
                -1,
                cv2.LINE_AA,
            )
    curled_first = sorted(range(5), key=lambda f: f in extended)
    for finger in curled_first:
        chain = points[4 * finger + 1 : 4 * finger + 5]
        width = max(2, int(_FINGER_WIDTH[finger] * palm_px))
        for segment in range(3):
            start = tuple(np.round(chain[segment]).astype(int))
            end = tuple(np.round(chain[segment + 1]).astype(int))
            cv2.line(image, start, end, _color(outline), width + 3, cv2.LINE_AA)
        for segment in range(3):
            start = tuple(np.round(chain[segment]).astype(int))
            end = tuple(np.round(chain[segment + 1]).astype(int))
            shade = _FINGER_SHADE[finger] * (0.85 + 0.08 * segment)
            cv2.line(image, start, end, _color(base * shade), width, cv2.LINE_AA)
        if not palm_side and finger in extended:
            tip, before = chain[3], chain[2]
            nail = tip * 0.8 + before * 0.2
            angle = float(np.degrees(np.arctan2(*(tip - before)[::-1])))
            axes = (max(1, int(0.07 * palm_px)), max(1, int(0.05 * palm_px)))
            cv2.ellipse(
                image,
                tuple(np.round(nail).astype(int)),
                axes,
                angle,
                0,
                360,
                _color(np.array([205, 205, 240])),
                -1,
                cv2.LINE_AA,
            )


@dataclass(frozen=True)
class _Hand:
    hand: str  # left or right (the person's)
    wrist: np.ndarray
    palm_px: float
    tilt: float


def _thumb_sign(hand: str, view: str) -> float:
    """Back of the hand (my view): a right thumb points to -x; palm side (your view): to +x."""
    return 1.0 if (hand == "left") == (view == "my hand") else -1.0


def _clip_hands(
    pose: SyntheticPose, rng: np.random.Generator, width: int, height: int
) -> list[_Hand]:
    tilt = np.radians(rng.uniform(-12, 12))
    if pose.view_type == "my hand":
        palm_px = height * rng.uniform(0.17, 0.21)
        x_range = (0.25, 0.42) if pose.hand_type == "left" else (0.58, 0.75)
        wrist = np.array([rng.uniform(*x_range) * width, rng.uniform(0.9, 1.0) * height])
        return [_Hand(pose.hand_type, wrist, palm_px, tilt)]
    palm_px = height * rng.uniform(0.12, 0.15)
    wrist_y = rng.uniform(0.62, 0.75) * height
    if pose.hand_type == "both":  # the person's right hand is on the viewer's left
        center = rng.uniform(0.45, 0.55) * width
        gap = rng.uniform(0.11, 0.15) * width
        return [
            _Hand("right", np.array([center - gap, wrist_y]), palm_px, tilt),
            _Hand("left", np.array([center + gap, wrist_y]), palm_px, -tilt),
        ]
    x_range = (0.33, 0.45) if pose.hand_type == "right" else (0.55, 0.67)
    return [
        _Hand(pose.hand_type, np.array([rng.uniform(*x_range) * width, wrist_y]), palm_px, tilt)
    ]


def render_clip(
    pose: SyntheticPose,
    num_frames: int,
    width: int,
    height: int,
    rng: np.random.Generator,
    opening_outlier: bool = False,
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Frames (BGR uint8) and true keypoints ((K, 2), K = 21 per hand) of one clip."""
    px = width / REFERENCE_WIDTH
    hands = _clip_hands(pose, rng, width, height)
    skin = _SKIN_TONES[rng.integers(len(_SKIN_TONES))] * rng.uniform(0.9, 1.1)
    sleeve = rng.uniform(20, 230, 3)
    background = _background(rng, width, height)
    drift = rng.uniform(-STATIC_DRIFT_PX, STATIC_DRIFT_PX, 2) * px
    lazy = pose.motion == "wag" and rng.random() < LAZY_WAG_FRACTION
    amplitude = np.radians(rng.uniform(1.5, 4.0) if lazy else rng.uniform(15.0, 30.0))
    period = rng.uniform(2.5, 4.5)
    phase = rng.uniform(0, 2 * np.pi)
    push_gain = rng.uniform(0.5, 1.0)
    push_shift = rng.uniform(0.2, 0.5)
    frames, keypoints = [], []
    for t in range(num_frames):
        progress = t / max(1, num_frames - 1)
        offset = drift * progress + rng.normal(0, STATIC_JITTER_PX * px, 2)
        wag = amplitude * np.sin(2 * np.pi * t / period + phase) if pose.motion == "wag" else 0.0
        shape = pose.shape
        if opening_outlier and t < 2:  # the fist opens, and the hand moves while doing it
            shape, offset = "palm", offset + np.array([0.6, -0.2]) * hands[0].palm_px
        grow = 1.0 + push_gain * np.sin(np.pi * progress) if pose.motion == "push" else 1.0
        image = background.copy()
        frame_points = []
        for hand in hands:
            palm_px = hand.palm_px * grow
            # pushed toward the camera: the fist grows and drifts right and down
            shift = np.array([push_shift, 0.15]) * hand.palm_px * (grow - 1.0)
            wrist = hand.wrist + offset + shift
            local = hand_shape_points(shape, _thumb_sign(hand.hand, pose.view_type), wag)
            points = _place(local, wrist, palm_px, hand.tilt)
            sleeve_end = wrist + np.array([np.sin(hand.tilt), 1.0]) * 1.5 * palm_px
            draw_hand(
                image,
                points,
                palm_px,
                skin,
                pose.view_type == "your hand",
                _EXTENDED[shape],
                sleeve,
                sleeve_end,
            )
            frame_points.append(points)
        gain = rng.uniform(0.92, 1.08)
        noisy = image.astype(np.float64) * gain + rng.normal(0, 4, image.shape)
        frames.append(np.clip(noisy, 0, 255).astype(np.uint8))
        keypoints.append(np.concatenate(frame_points))
    return frames, keypoints
