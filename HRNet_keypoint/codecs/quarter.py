"""The official codec, bit for bit: gaussians on whole cells, the argmax moved a quarter cell
toward the higher neighbour (``TEST.POST_PROCESS``), the official 3-point crop."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from HRNet_keypoint.codecs.base import (
    HeatmapCodec,
    checked_joints,
    decode_heatmaps,
    draw_gaussians,
)
from HRNet_keypoint.transforms import get_affine_transform


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
    joints, joints_vis, known = checked_joints(joints, joints_vis)
    num_joints = len(joints)
    map_w, map_h = int(heatmap_size[0]), int(heatmap_size[1])
    stride = np.asarray(image_size, dtype=np.float64) / np.asarray(heatmap_size, dtype=np.float64)
    target_weight = joints_vis.astype(np.float32).reshape(num_joints, 1)
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
    peak = ul + (2 * radius + 1) // 2
    target = draw_gaussians(peak, ul, br, drawn, heatmap_size, sigma, np.float32)
    return target, target_weight


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


def get_final_preds(
    heatmaps: np.ndarray | torch.Tensor,
    centers: np.ndarray | torch.Tensor,
    scales: np.ndarray | torch.Tensor,
    post_process: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Official ``get_final_preds``: coordinates in original pixels (N, J, 2) and maxvals; the
    argmax moved by the quarter offset when ``post_process``."""

    def refine(heatmaps: np.ndarray, coords: np.ndarray) -> np.ndarray:
        return quarter_offset(heatmaps, coords) if post_process else coords

    return decode_heatmaps(heatmaps, centers, scales, refine, get_affine_transform)


class QuarterCodec(HeatmapCodec):
    """The official targets, decoding and crop (``MODEL.CODEC quarter``, the default)."""

    name = "quarter"

    def crop_matrix(self, center: np.ndarray, scale: np.ndarray, rotation: float,
                    output_size: Sequence[int], inv: bool = False) -> np.ndarray:  # fmt: skip
        return get_affine_transform(center, scale, rotation, output_size, inv=inv)

    def encode(self, joints: np.ndarray, joints_vis: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return generate_target(joints, joints_vis, self.image_size, self.heatmap_size, self.sigma)

    def refine(self, heatmaps: np.ndarray, coords: np.ndarray) -> np.ndarray:
        return quarter_offset(heatmaps, coords) if self.post_process else coords
