"""Keypoint definitions of the two data sets: names, order, flip pairs, body halves."""

from __future__ import annotations

MOTION_KEYPOINTS: tuple[str, ...] = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
    "left_wrist", "right_wrist", "left_hip", "right_hip", "left_knee", "right_knee",
    "left_ankle", "right_ankle", "neck", "left_palm", "right_palm",
    "spine2(back)", "spine1(waist)", "left_instep", "right_instep",
)  # fmt: skip
MOTION_FLIP_PAIRS: tuple[tuple[int, int], ...] = (
    (1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16), (18, 19), (22, 23),
)  # fmt: skip
MOTION_UPPER_BODY: tuple[int, ...] = (0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 17, 18, 19, 20, 21)
MOTION_LOWER_BODY: tuple[int, ...] = (11, 12, 13, 14, 15, 16, 22, 23)
# Lines drawn for the skeleton in pictures and in the synthetic renderer.
MOTION_SKELETON: tuple[tuple[int, int], ...] = (
    (0, 1), (0, 2), (1, 3), (2, 4), (0, 17), (17, 5), (17, 6), (5, 7), (7, 9), (9, 18),
    (6, 8), (8, 10), (10, 19), (17, 20), (20, 21), (21, 11), (21, 12), (11, 13), (13, 15),
    (15, 22), (12, 14), (14, 16), (16, 23),
)  # fmt: skip

# One hand, in the usual 21-point order: wrist, then four points per finger from the base out.
HAND_KEYPOINTS: tuple[str, ...] = ("wrist",) + tuple(
    f"{finger}_{joint}"
    for finger in ("thumb", "index", "middle", "ring", "pinky")
    for joint in (1, 2, 3, 4)
)
# A mirrored hand keeps its joint names (the image of a left hand looks like a right hand), so
# flipping swaps no joints.
HAND_FLIP_PAIRS: tuple[tuple[int, int], ...] = ()
# The "halves" of the half-body augmentation: the fingers beyond their bases, and the palm
# (wrist and the five finger bases); together they hold every joint once.
HAND_FINGERS: tuple[int, ...] = tuple(
    base + joint for base in (1, 5, 9, 13, 17) for joint in (1, 2, 3)
)
HAND_PALM: tuple[int, ...] = (0, 1, 5, 9, 13, 17)
HAND_SKELETON: tuple[tuple[int, int], ...] = tuple(
    pair
    for base in (1, 5, 9, 13, 17)
    for pair in ((0, base), (base, base + 1), (base + 1, base + 2), (base + 2, base + 3))
)


def coordinate_columns(names: tuple[str, ...] = MOTION_KEYPOINTS) -> list[str]:
    """The 2N coordinate column names in file order: ``<name>_x, <name>_y`` per keypoint."""
    return [f"{name}_{axis}" for name in names for axis in ("x", "y")]


def keypoint_set(num_joints: int) -> dict:
    """Names, flip pairs and body halves for a joint count (24 motion, 21 hand)."""
    if num_joints == len(MOTION_KEYPOINTS):
        return {
            "names": MOTION_KEYPOINTS,
            "flip_pairs": MOTION_FLIP_PAIRS,
            "upper_body": MOTION_UPPER_BODY,
            "lower_body": MOTION_LOWER_BODY,
            "skeleton": MOTION_SKELETON,
        }
    if num_joints == len(HAND_KEYPOINTS):
        return {
            "names": HAND_KEYPOINTS,
            "flip_pairs": HAND_FLIP_PAIRS,
            "upper_body": HAND_FINGERS,
            "lower_body": HAND_PALM,
            "skeleton": HAND_SKELETON,
        }
    raise ValueError(f"no keypoint set has {num_joints} joints (motion has 24, hands 21)")
