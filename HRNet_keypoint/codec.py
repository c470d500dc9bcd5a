"""Stage two's codec: keypoints to heatmap targets (encode) and heatmaps back to keypoints
(decode), with the official numerics.

Encoding is the official unnormalised gaussian, computed for all joints at once. Decoding is the
official ``get_max_preds`` / ``get_final_preds``, vectorised: the argmax cell, refined by a
decoder of ``DECODERS`` (the official quarter-cell offset is ``'quarter'``), then the inverse
crop transform to original pixels. A new decoder is a function from heatmaps (N, J, H, W) to
coordinates in heatmap cells (N, J, 2) and maxvals (N, J, 1), added to ``DECODERS``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from HRNet_keypoint.transforms import transform_preds


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


def _as_numpy(array: np.ndarray | torch.Tensor) -> np.ndarray:
    if isinstance(array, torch.Tensor):
        return array.detach().cpu().numpy()
    return np.asarray(array)


def get_max_preds(heatmaps: np.ndarray | torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Argmax cell (x, y) of each (N, J, H, W) map and its value.

    Returns coords (N, J, 2) float32, set to 0 where the maximum is <= 0, and maxvals (N, J, 1)
    in the heatmaps' dtype. Ties go to the first cell in row-major order, as np.argmax.
    """
    heatmaps = _as_numpy(heatmaps)
    if heatmaps.ndim != 4:
        raise ValueError(f"heatmaps must be (N, J, H, W), got shape {heatmaps.shape}")
    num, joints, _, width = heatmaps.shape
    flat = heatmaps.reshape(num, joints, -1)
    index = np.argmax(flat, axis=2).astype(np.float32)
    maxvals = np.max(flat, axis=2).reshape(num, joints, 1)
    coords = np.stack([index % width, np.floor(index / width)], axis=-1)
    coords *= (maxvals > 0.0).astype(np.float32)
    return coords, maxvals


def quarter_offset(heatmaps: np.ndarray, coords: np.ndarray) -> np.ndarray:
    """Move each argmax a quarter cell toward its higher neighbour (official post-processing).

    Applied only where 1 < px < W-1 and 1 < py < H-1 with px = floor(x + 0.5); each axis moves
    by 0.25 * sign(next - previous). Returns new float32 coords; the inputs are not modified.
    """
    num, joints, height, width = heatmaps.shape
    px = np.floor(coords[..., 0].astype(np.float64) + 0.5).astype(np.int64)
    py = np.floor(coords[..., 1].astype(np.float64) + 0.5).astype(np.int64)
    inside = (px > 1) & (px < width - 1) & (py > 1) & (py < height - 1)
    # Clipped indices keep the gathers legal; the offsets they give outside are discarded.
    cx = np.clip(px, 1, width - 2)
    cy = np.clip(py, 1, height - 2)
    n_idx = np.arange(num)[:, None]
    j_idx = np.arange(joints)[None, :]
    diff_x = heatmaps[n_idx, j_idx, cy, cx + 1] - heatmaps[n_idx, j_idx, cy, cx - 1]
    diff_y = heatmaps[n_idx, j_idx, cy + 1, cx] - heatmaps[n_idx, j_idx, cy - 1, cx]
    offset = (np.sign(np.stack([diff_x, diff_y], axis=-1)) * 0.25).astype(np.float32)
    coords = coords.astype(np.float32)
    return np.where(inside[..., None], coords + offset, coords)


def _quarter(heatmaps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The official decoding: argmax, then a quarter cell toward the higher neighbour."""
    coords, maxvals = get_max_preds(heatmaps)
    return quarter_offset(heatmaps, coords), maxvals


Decoder = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]
# Heatmaps (N, J, H, W) -> coordinates in heatmap cells (N, J, 2) float32 and maxvals (N, J, 1).
DECODERS: dict[str, Decoder] = {"quarter": _quarter}


def decode_heatmaps(
    heatmaps: np.ndarray | torch.Tensor, method: str = "quarter"
) -> tuple[np.ndarray, np.ndarray]:
    """Coordinates in heatmap cells (N, J, 2) and maxvals (N, J, 1) by the decoder ``method``."""
    if method not in DECODERS:
        raise ValueError(f"heatmap decoder must be one of {sorted(DECODERS)}, got {method!r}")
    heatmaps = _as_numpy(heatmaps)
    if heatmaps.ndim != 4:
        raise ValueError(f"heatmaps must be (N, J, H, W), got shape {heatmaps.shape}")
    return DECODERS[method](heatmaps)


def get_final_preds(
    heatmaps: np.ndarray | torch.Tensor,
    centers: np.ndarray | torch.Tensor,
    scales: np.ndarray | torch.Tensor,
    post_process: bool = True,
    method: str = "quarter",
) -> tuple[np.ndarray, np.ndarray]:
    """Official ``get_final_preds``: coordinates in original pixels (N, J, 2) and maxvals.

    The argmax, refined by the decoder ``method`` when ``post_process``, then the inverse crop
    transform of each sample's (center, scale) at rotation 0. As officially, the result is
    stored in float32.
    """
    heatmaps = _as_numpy(heatmaps)
    centers = _as_numpy(centers)
    scales = _as_numpy(scales)
    if post_process:
        coords, maxvals = decode_heatmaps(heatmaps, method)
    else:
        coords, maxvals = get_max_preds(heatmaps)
    num, _, height, width = heatmaps.shape
    if len(centers) != num or len(scales) != num:
        raise ValueError(
            f"got {num} heatmap samples but {len(centers)} centers and {len(scales)} scales"
        )
    preds = np.empty_like(coords)
    for sample in range(num):
        preds[sample] = transform_preds(
            coords[sample], centers[sample], scales[sample], [width, height]
        )
    return preds, maxvals
