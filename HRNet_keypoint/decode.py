"""Heatmaps to coordinates: the official ``get_max_preds`` / ``get_final_preds``, vectorised."""

from __future__ import annotations

import numpy as np
import torch

from HRNet_keypoint.transforms import transform_preds


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


def decode_heatmaps(
    heatmaps: np.ndarray | torch.Tensor,
    centers: np.ndarray | torch.Tensor,
    scales: np.ndarray | torch.Tensor,
    post_process: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Official ``get_final_preds``: coordinates in original pixels (N, J, 2) and maxvals.

    Argmax, the optional quarter-cell offset, then the inverse crop transform of each sample's
    (center, scale) at rotation 0. As officially, the result is stored in float32.
    """
    heatmaps = _as_numpy(heatmaps)
    centers = _as_numpy(centers)
    scales = _as_numpy(scales)
    coords, maxvals = get_max_preds(heatmaps)
    num, _, height, width = heatmaps.shape
    if len(centers) != num or len(scales) != num:
        raise ValueError(
            f"got {num} heatmap samples but {len(centers)} centers and {len(scales)} scales"
        )
    if post_process:
        coords = quarter_offset(heatmaps, coords)
    preds = np.empty_like(coords)
    for sample in range(num):
        preds[sample] = transform_preds(
            coords[sample], centers[sample], scales[sample], [width, height]
        )
    return preds, maxvals
