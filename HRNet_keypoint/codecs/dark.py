"""DARK (Zhang et al., CVPR 2020): unbiased sub-pixel targets (section 3.2) and the
distribution-aware decoding (section 3.1), in the official crop frame.

Decoding smooths each heatmap with a gaussian of the training sigma (a learned map is not quite
a gaussian; the smoothed one is closer), takes its log (a gaussian's log is a quadratic) and
moves from the argmax cell by one Newton step ``-H^-1 g`` of finite differences. On a log
gaussian that step is exact at any length, so it is kept however long it is: an argmax pulled
off the peak by noise or a second bump is brought back. Only an axis whose neighbourhood leaves
the map (an argmax on the first or last row or column) does not move, and the result stays on
the map.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.ndimage import gaussian_filter

from HRNet_keypoint.codecs.base import HeatmapCodec, subpixel_targets
from HRNet_keypoint.transforms import get_affine_transform

_LOG_FLOOR = 1e-10


def _sample(maps: np.ndarray, y: np.ndarray, x: np.ndarray) -> np.ndarray:
    """maps[n, j, y[n, j], x[n, j]] for index arrays of shape (N, J)."""
    num, joints = y.shape
    return maps[np.arange(num)[:, None], np.arange(joints)[None, :], y, x]


def dark_refine(heatmaps: np.ndarray, coords: np.ndarray, sigma: float) -> np.ndarray:
    """Refine integer argmax ``coords`` (N, J, 2) of ``heatmaps`` (N, J, H, W) by DARK.

    The step is taken on the log of the heatmaps smoothed by a gaussian of ``sigma`` cells
    (zero outside the map). At a border only the axis with both neighbours moves; where the
    log map is not concave (a flat or non-positive map, a saddle: no maximum to step to) that
    sample keeps its integer position. The result is clipped to the map. Returns float32.
    """
    heatmaps = np.asarray(heatmaps, dtype=np.float64)
    num, joints, height, width = heatmaps.shape
    coords = np.asarray(coords, dtype=np.float64)
    smooth = gaussian_filter(heatmaps, sigma=(0, 0, sigma, sigma), mode="constant", truncate=3.0)
    logs = np.log(np.maximum(smooth, _LOG_FLOOR))

    x = np.rint(coords[..., 0]).astype(np.int64)
    y = np.rint(coords[..., 1]).astype(np.int64)
    has_x = (x >= 1) & (x <= width - 2)
    has_y = (y >= 1) & (y <= height - 2)
    xl, xr = np.clip(x - 1, 0, width - 1), np.clip(x + 1, 0, width - 1)
    yu, yd = np.clip(y - 1, 0, height - 1), np.clip(y + 1, 0, height - 1)
    centre = _sample(logs, y, x)
    dx = 0.5 * (_sample(logs, y, xr) - _sample(logs, y, xl))
    dy = 0.5 * (_sample(logs, yd, x) - _sample(logs, yu, x))
    dxx = _sample(logs, y, xr) - 2 * centre + _sample(logs, y, xl)
    dyy = _sample(logs, yd, x) - 2 * centre + _sample(logs, yu, x)
    dxy = 0.25 * (
        _sample(logs, yd, xr) - _sample(logs, yd, xl) - _sample(logs, yu, xr)
        + _sample(logs, yu, xl)
    )  # fmt: skip
    dxy = np.where(has_x & has_y, dxy, 0.0)  # one-axis steps ignore the cross term
    dx, dxx = np.where(has_x, dx, 0.0), np.where(has_x, dxx, -1.0)
    dy, dyy = np.where(has_y, dy, 0.0), np.where(has_y, dyy, -1.0)

    det = dxx * dyy - dxy**2
    concave = (dxx < 0) & (dyy < 0) & (det > 0)
    safe_det = np.where(concave, det, 1.0)
    step = np.stack([-(dyy * dx - dxy * dy) / safe_det, -(dxx * dy - dxy * dx) / safe_det], -1)
    usable = concave & (np.max(heatmaps.reshape(num, joints, -1), axis=2) > 0)
    refined = np.where(usable[..., None], coords + step, coords)
    refined = np.clip(refined, 0.0, [width - 1.0, height - 1.0])
    return refined.astype(np.float32)


class DarkCodec(HeatmapCodec):
    """DARK in the official crop frame (``MODEL.CODEC dark``, or the old ``TEST.DECODE dark``):
    targets peaked at ``joint / stride`` with ``stride = input / heatmap``, the official crop
    (so a model trained with the official targets can still be decoded by DARK), DARK decoding.
    """

    name = "dark"

    def crop_matrix(self, center: np.ndarray, scale: np.ndarray, rotation: float,
                    output_size: Sequence[int], inv: bool = False) -> np.ndarray:  # fmt: skip
        return get_affine_transform(center, scale, rotation, output_size, inv=inv)

    def encode(self, joints: np.ndarray, joints_vis: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        stride = np.asarray(self.image_size, dtype=np.float64) / np.asarray(self.heatmap_size)
        return subpixel_targets(joints, joints_vis, stride, self.heatmap_size, self.sigma)

    def refine(self, heatmaps: np.ndarray, coords: np.ndarray) -> np.ndarray:
        return dark_refine(heatmaps, coords, self.sigma)
