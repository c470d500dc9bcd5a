"""Heatmap targets: the official unnormalised gaussian, computed for all joints at once."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def generate_target(
    joints: np.ndarray,
    joints_vis: np.ndarray,
    image_size: Sequence[int],
    heatmap_size: Sequence[int],
    sigma: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian heatmaps (J, hh, hw) and weights (J, 1), float32, equal to the official ones.

    ``joints`` are in input pixels. The peak sits on the integer cell mu = int(coord / stride +
    0.5) (truncation, as ``int()``), with value 1 and a window of radius 3*sigma. A joint whose
    window starts past the map or ends before column/row 0 gets weight 0 and an empty map; as
    officially, a window ending exactly at 0 (br == 0) keeps weight 1 with an empty map, and a
    joint with visibility <= 0.5 gets an empty map with its visibility as weight.
    """
    joints = np.asarray(joints, dtype=np.float64)
    joints_vis = np.asarray(joints_vis, dtype=np.float64).reshape(-1)
    num_joints = len(joints)
    map_w, map_h = int(heatmap_size[0]), int(heatmap_size[1])
    stride = np.asarray(image_size, dtype=np.float64) / np.asarray(heatmap_size, dtype=np.float64)

    target_weight = joints_vis.astype(np.float32).reshape(num_joints, 1)
    target = np.zeros((num_joints, map_h, map_w), dtype=np.float32)
    known = np.isfinite(joints).all(axis=1)
    bad = ~known & (joints_vis > 0)
    if bad.any():
        joint_ids = np.flatnonzero(bad).tolist()
        raise ValueError(f"non-finite coordinates for visible joints {joint_ids}")

    radius = sigma * 3
    # Window [ul, br) in map cells; the gaussian is centred on ul + (2*radius + 1) // 2.
    mu = np.zeros((num_joints, 2), dtype=np.int64)
    # The clip only keeps absurd coordinates from overflowing int64; they stay far outside.
    cells = np.clip(joints[known] / stride + 0.5, -(2.0**40), 2.0**40)
    mu[known] = np.trunc(cells).astype(np.int64)
    ul = np.trunc(mu - radius).astype(np.int64)
    br = np.trunc(mu + radius + 1).astype(np.int64)
    outside = (ul[:, 0] >= map_w) | (ul[:, 1] >= map_h) | (br[:, 0] < 0) | (br[:, 1] < 0)
    target_weight[known & outside] = 0
    drawn = known & ~outside & (joints_vis > 0.5)
    if not drawn.any():
        return target, target_weight

    peak = (ul + (2 * radius + 1) // 2).astype(np.float32)
    cols = np.arange(map_w, dtype=np.float32)
    rows = np.arange(map_h, dtype=np.float32)
    dx2 = (cols[None, :] - peak[:, 0:1]) ** 2  # (J, W)
    dy2 = (rows[None, :] - peak[:, 1:2]) ** 2  # (J, H)
    gaussian = np.exp(-(dx2[:, None, :] + dy2[:, :, None]) / np.float32(2 * sigma**2))
    in_cols = (cols[None, :] >= ul[:, 0:1]) & (cols[None, :] < br[:, 0:1])
    in_rows = (rows[None, :] >= ul[:, 1:2]) & (rows[None, :] < br[:, 1:2])
    window = in_rows[:, :, None] & in_cols[:, None, :] & drawn[:, None, None]
    target[window] = gaussian[window]
    return target, target_weight
