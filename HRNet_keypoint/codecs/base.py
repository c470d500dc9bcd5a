"""What every heatmap codec shares: the interface (targets, decoding, crop matrix, flip shift),
the argmax, and the gaussian drawing that all target representations use.

A codec is one target representation: where a joint's gaussian sits on the heatmap (``encode``),
how a heatmap goes back to a point (``refine`` of the argmax cell, then the inverse of
``crop_matrix``), and which crop matrix maps the image to the network input. A new codec
subclasses ``HeatmapCodec`` in its own file and adds one line to ``CODECS``
(``HRNet_keypoint/codecs/__init__.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from yacs.config import CfgNode

from HRNet_keypoint.transforms import affine_transform


def as_numpy(array: np.ndarray | torch.Tensor) -> np.ndarray:
    if isinstance(array, torch.Tensor):
        return array.detach().cpu().numpy()
    return np.asarray(array)


def get_max_preds(heatmaps: np.ndarray | torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Argmax cell (x, y) of each (N, J, H, W) map and its value (official ``get_max_preds``).

    Returns coords (N, J, 2) float32, set to 0 where the maximum is <= 0, and maxvals (N, J, 1)
    in the heatmaps' dtype. Ties go to the first cell in row-major order, as np.argmax.
    """
    heatmaps = as_numpy(heatmaps)
    if heatmaps.ndim != 4:
        raise ValueError(f"heatmaps must be (N, J, H, W), got shape {heatmaps.shape}")
    num, joints, _, width = heatmaps.shape
    flat = heatmaps.reshape(num, joints, -1)
    index = np.argmax(flat, axis=2).astype(np.float32)
    maxvals = np.max(flat, axis=2).reshape(num, joints, 1)
    coords = np.stack([index % width, np.floor(index / width)], axis=-1)
    coords *= (maxvals > 0.0).astype(np.float32)
    return coords, maxvals


def checked_joints(joints: np.ndarray, joints_vis: np.ndarray) -> tuple[np.ndarray, ...]:
    """float64 joints (J, 2), visibility (J,) and which joints are finite; a visible joint
    with a non-finite coordinate is refused."""
    joints = np.asarray(joints, dtype=np.float64)
    joints_vis = np.asarray(joints_vis, dtype=np.float64).reshape(-1)
    known = np.isfinite(joints).all(axis=1)
    bad = ~known & (joints_vis > 0)
    if bad.any():
        raise ValueError(f"non-finite coordinates for visible joints {np.flatnonzero(bad).tolist()}"
                         "; expected finite input pixels")
    return joints, joints_vis, known


def draw_gaussians(
    peaks: np.ndarray,
    low: np.ndarray,
    high: np.ndarray,
    drawn: np.ndarray,
    map_size: Sequence[int],
    sigma: float,
    dtype: type = np.float32,
) -> np.ndarray:
    """(J, H, W) float32 maps: an unnormalised gaussian of ``sigma`` with peak 1 at ``peaks``
    (J, 2) cells, inside the window ``low <= cell < high`` (J, 2), for the ``drawn`` joints;
    computed in ``dtype`` (the official targets are float32 throughout)."""
    map_w, map_h = int(map_size[0]), int(map_size[1])
    cols = np.arange(map_w, dtype=dtype)
    rows = np.arange(map_h, dtype=dtype)
    peaks = peaks.astype(dtype)
    dx2 = (cols[None, :] - peaks[:, 0:1]) ** 2  # (J, W)
    dy2 = (rows[None, :] - peaks[:, 1:2]) ** 2  # (J, H)
    gaussian = np.exp(-(dx2[:, None, :] + dy2[:, :, None]) / dtype(2 * sigma**2))
    in_cols = (cols[None, :] >= low[:, 0:1]) & (cols[None, :] < high[:, 0:1])
    in_rows = (rows[None, :] >= low[:, 1:2]) & (rows[None, :] < high[:, 1:2])
    window = in_rows[:, :, None] & in_cols[:, None, :] & drawn[:, None, None]
    target = np.zeros((len(peaks), map_h, map_w), dtype=np.float32)
    target[window] = gaussian[window]
    return target


def decode_heatmaps(
    heatmaps: np.ndarray | torch.Tensor,
    centers: np.ndarray | torch.Tensor,
    scales: np.ndarray | torch.Tensor,
    refine: Callable[[np.ndarray, np.ndarray], np.ndarray],
    crop_matrix: Callable[..., np.ndarray],
) -> tuple[np.ndarray, np.ndarray]:
    """The argmax of each map, ``refine``d, through the inverse ``crop_matrix`` of each
    sample's (center, scale) at rotation 0: coordinates in original pixels (N, J, 2), stored
    in float32 as officially, and maxvals (N, J, 1)."""
    heatmaps, centers, scales = as_numpy(heatmaps), as_numpy(centers), as_numpy(scales)
    coords, maxvals = get_max_preds(heatmaps)
    num, _, height, width = heatmaps.shape
    if len(centers) != num or len(scales) != num:
        raise ValueError(
            f"got {num} heatmap samples but {len(centers)} centers and {len(scales)} scales"
        )
    coords = refine(heatmaps, coords)
    preds = np.empty_like(coords)
    for n in range(num):
        back = crop_matrix(centers[n], scales[n], 0, [width, height], inv=True)
        preds[n] = affine_transform(coords[n], back)
    return preds, maxvals


class HeatmapCodec:
    """One target representation of stage two (subclasses override the four hooks).

    ``encode`` turns joints in input pixels into targets and weights; ``decode`` turns heatmaps
    (N, J, H, W) into coordinates in original pixels and maxvals; ``crop_matrix`` is the
    image -> input (or heatmap) map of a box, which the datasets, the test-time scales and the
    decoding share; ``flip_shift`` says whether the flip test moves the flipped maps one
    column (the official crop is off by one pixel under a flip).
    """

    name = ""

    def __init__(self, cfg: CfgNode) -> None:
        self.image_size = [int(v) for v in cfg.MODEL.IMAGE_SIZE]
        self.heatmap_size = [int(v) for v in cfg.MODEL.HEATMAP_SIZE]
        self.sigma = float(cfg.MODEL.SIGMA)
        self.post_process = bool(cfg.TEST.POST_PROCESS)
        self.shift_heatmap = bool(cfg.TEST.SHIFT_HEATMAP)

    @property
    def flip_shift(self) -> bool:
        return self.shift_heatmap

    def crop_matrix(self, center: np.ndarray, scale: np.ndarray, rotation: float,
                    output_size: Sequence[int], inv: bool = False) -> np.ndarray:  # fmt: skip
        raise NotImplementedError

    def encode(self, joints: np.ndarray, joints_vis: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Targets (J, H, W) float32 and weights (J, 1) float32 for joints in input pixels."""
        raise NotImplementedError

    def refine(self, heatmaps: np.ndarray, coords: np.ndarray) -> np.ndarray:
        """Argmax cells (N, J, 2) -> sub-cell positions (N, J, 2) float32."""
        raise NotImplementedError

    def decode(
        self,
        heatmaps: np.ndarray | torch.Tensor,
        centers: np.ndarray | torch.Tensor,
        scales: np.ndarray | torch.Tensor,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Coordinates in original pixels (N, J, 2) float32 and maxvals (N, J, 1)."""
        return decode_heatmaps(heatmaps, centers, scales, self.refine, self.crop_matrix)


def subpixel_targets(
    joints: np.ndarray,
    joints_vis: np.ndarray,
    stride: np.ndarray,
    heatmap_size: Sequence[int],
    sigma: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian targets (J, H, W) peaked at the continuous cell ``joints / stride`` (no rounding
    to a whole cell, so a perfectly learned map decodes back to the joint), and weights (J, 1).

    The gaussian is drawn within ceil(3 sigma) cells of the nearest cell; a joint whose window
    misses the map gets weight 0; visibility <= 0.5 gives an empty map with its visibility as
    weight (as the official targets).
    """
    joints, joints_vis, known = checked_joints(joints, joints_vis)
    num_joints = len(joints)
    map_w, map_h = int(heatmap_size[0]), int(heatmap_size[1])
    weight = joints_vis.astype(np.float32).reshape(num_joints, 1)
    mu = np.zeros((num_joints, 2))
    mu[known] = np.clip(joints[known] / stride, -(2.0**40), 2.0**40)
    nearest = np.rint(mu)
    radius = np.ceil(3 * sigma)
    low, high = nearest - radius, nearest + radius
    outside = (low[:, 0] >= map_w) | (low[:, 1] >= map_h) | (high[:, 0] < 0) | (high[:, 1] < 0)
    weight[known & outside] = 0
    drawn = known & ~outside & (joints_vis > 0.5)
    return draw_gaussians(mu, low, high + 1, drawn, heatmap_size, sigma, np.float64), weight
