"""Geometry of stage two: box cleaning, box to center/scale, the crop affine, flips, half body.

Every function reproduces the official HRNet arithmetic (including its float32/float64 mix), so
that a model trained with the official code sees the same crops and decodes to the same
coordinates here. ``scale`` is the box size in units of ``pixel_std`` (200) pixels, as there.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

PIXEL_STD = 200.0


def _extent_to_scale(w: float, h: float, aspect_ratio: float, pixel_std: float) -> np.ndarray:
    """Grow the short side so that w/h equals the input aspect; size in pixel_std units."""
    if w > aspect_ratio * h:
        h = w * 1.0 / aspect_ratio
    elif w < aspect_ratio * h:
        w = h * aspect_ratio
    return np.array([w * 1.0 / pixel_std, h * 1.0 / pixel_std], dtype=np.float32)


def box_to_center_scale(
    box_xywh: Sequence[float] | np.ndarray,
    aspect_ratio: float,
    padding: float = 1.25,
    pixel_std: float = PIXEL_STD,
) -> tuple[np.ndarray, np.ndarray]:
    """Official ``_xywh2cs``: box center, and the aspect-fixed box size / pixel_std * padding.

    ``aspect_ratio`` is input width / input height (288/384 = 0.75). Both results are float32;
    the padding multiplies the float32 scale, as in the official code.
    """
    x, y, w, h = (float(v) for v in np.asarray(box_xywh, dtype=np.float64).reshape(4))
    center = np.array([x + w * 0.5, y + h * 0.5], dtype=np.float32)
    scale = _extent_to_scale(w, h, aspect_ratio, pixel_std) * padding
    return center, scale.astype(np.float32)


def _rotate(point: Sequence[float], rot_rad: float) -> np.ndarray:
    sin, cos = np.sin(rot_rad), np.cos(rot_rad)
    return np.array(
        [point[0] * cos - point[1] * sin, point[0] * sin + point[1] * cos], dtype=np.float64
    )


def _perpendicular_point(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """b + (a - b) turned by +90 degrees: the third point fixing a similarity transform."""
    direction = a - b
    return b + np.array([-direction[1], direction[0]], dtype=np.float32)


def get_affine_transform(
    center: Sequence[float] | np.ndarray,
    scale: Sequence[float] | np.ndarray,
    rot_deg: float,
    output_size: Sequence[int] | np.ndarray,
    shift: Sequence[float] | np.ndarray = (0.0, 0.0),
    inv: bool = False,
) -> np.ndarray:
    """The official 3-point crop transform (image -> input; input -> image when ``inv``).

    The center goes to the output center, and the point half a box width above it (rotated by
    ``rot_deg``) goes to half an output width above the output center: an isotropic scale of
    output_w / (scale_w * 200); scale_h is not used. Returns the 2x3 float64 matrix that
    cv2.getAffineTransform gives (the official code uses it unconverted).
    """
    center = np.asarray(center, dtype=np.float32)
    scale = np.asarray(scale, dtype=np.float32)
    if scale.ndim == 0:
        scale = np.array([scale, scale], dtype=np.float32)
    shift = np.asarray(shift, dtype=np.float32)
    scale_px = scale * np.float32(PIXEL_STD)
    src_w = scale_px[0]
    dst_w, dst_h = float(output_size[0]), float(output_size[1])

    rot_rad = np.pi * rot_deg / 180
    src_dir = _rotate([0.0, src_w * np.float32(-0.5)], rot_rad)
    dst_dir = np.array([0.0, dst_w * -0.5], dtype=np.float32)

    src = np.zeros((3, 2), dtype=np.float32)
    dst = np.zeros((3, 2), dtype=np.float32)
    src[0] = center + scale_px * shift
    src[1] = center + src_dir + scale_px * shift
    dst[0] = [dst_w * 0.5, dst_h * 0.5]
    dst[1] = np.array([dst_w * 0.5, dst_h * 0.5]) + dst_dir
    src[2] = _perpendicular_point(src[0], src[1])
    dst[2] = _perpendicular_point(dst[0], dst[1])
    if inv:
        return cv2.getAffineTransform(dst, src)
    return cv2.getAffineTransform(src, dst)


def affine_transform(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Apply a 2x3 affine matrix to points of shape (..., 2); float64 result."""
    points = np.asarray(points, dtype=np.float64)
    matrix = np.asarray(matrix, dtype=np.float64)
    x, y = points[..., 0], points[..., 1]
    new_x = matrix[0, 0] * x + matrix[0, 1] * y + matrix[0, 2]
    new_y = matrix[1, 0] * x + matrix[1, 1] * y + matrix[1, 2]
    return np.stack([new_x, new_y], axis=-1)


def swap_pairs_permutation(num_joints: int, flip_pairs: Sequence[Sequence[int]]) -> np.ndarray:
    """Index array exchanging each left/right pair (applied in order, as the official loop)."""
    order = np.arange(num_joints)
    for left, right in flip_pairs:
        order[left], order[right] = order[right], order[left]
    return order


def fliplr_joints(
    joints: np.ndarray,
    joints_vis: np.ndarray,
    width: int,
    flip_pairs: Sequence[Sequence[int]],
) -> tuple[np.ndarray, np.ndarray]:
    """Mirror joints for a horizontally flipped image: x' = width - x - 1, pairs swapped.

    As officially, joints that are not visible come back as (0, 0). Inputs are not modified.
    """
    joints = np.array(joints, dtype=np.float64)
    joints_vis = np.asarray(joints_vis, dtype=np.float64).reshape(-1)
    joints[:, 0] = width - joints[:, 0] - 1
    order = swap_pairs_permutation(len(joints), flip_pairs)
    joints = joints[order]
    joints_vis = joints_vis[order]
    return joints * joints_vis[:, None], joints_vis


def half_body_transform(
    joints: np.ndarray,
    joints_vis: np.ndarray,
    upper_ids: Sequence[int],
    lower_ids: Sequence[int],
    aspect_ratio: float,
    rng: np.random.Generator,
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Official half-body crop: center/scale of the visible upper or lower joints, x1.5.

    The official code picks the upper body when ``randn() < 0.5`` (a normal draw, not a uniform
    one, so about 69% upper instead of 50%); this quirk is kept on purpose so that training
    statistics match the reference. A set needs more than 2 joints to be chosen; (None, None)
    when fewer than 2 joints are left. (The official code puts every non-upper joint in the
    lower set; the keypoint sets used here split all joints between the two lists, so using
    ``lower_ids`` is the same.)
    """
    joints = np.asarray(joints, dtype=np.float64)
    visible = np.asarray(joints_vis, dtype=np.float64).reshape(-1) > 0
    upper_set, lower_set = set(upper_ids), set(lower_ids)
    upper = [joints[j] for j in range(len(joints)) if visible[j] and j in upper_set]
    lower = [joints[j] for j in range(len(joints)) if visible[j] and j in lower_set]

    if rng.standard_normal() < 0.5 and len(upper) > 2:
        selected = upper
    else:
        selected = lower if len(lower) > 2 else upper
    if len(selected) < 2:
        return None, None

    points = np.array(selected, dtype=np.float32)
    center = points.mean(axis=0)[:2]
    extent = points.max(axis=0) - points.min(axis=0)
    scale = _extent_to_scale(float(extent[0]), float(extent[1]), aspect_ratio, PIXEL_STD)
    return center, (scale * 1.5).astype(np.float32)
