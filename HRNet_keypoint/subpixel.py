"""Sub-pixel options of stage two: DARK decoding and UDP (unbiased data processing).

The competition is scored in pixels, so the quarter-cell offset of the official decoding leaves
error on the table. Two published fixes, both optional and off by default:

- **DARK** (distribution-aware decoding): smooth the heatmap with a gaussian of the training
  sigma, take its log (a gaussian's log is a quadratic) and move from the integer maximum by one
  Newton step, ``-H^-1 g``, with the gradient and Hessian of finite differences.
- **UDP** (unbiased data processing): the official crop maps the box onto ``size`` pixels, so a
  flip or the heatmap stride moves points by half a pixel. UDP maps pixel *centres*: the box's
  extent onto ``size - 1``, the heatmap stride is ``(image - 1) / (heatmap - 1)``, and targets
  are gaussians on the continuous position; decoding inverts the same map.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
import torch
from scipy.ndimage import gaussian_filter
from yacs.config import CfgNode

from HRNet_keypoint.codec import get_final_preds, get_max_preds, quarter_offset
from HRNet_keypoint.transforms import PIXEL_STD, affine_transform, transform_preds

DECODE_METHODS = ("quarter", "dark")
MAX_DARK_STEP = 1.0  # cells: a Newton step larger than this is not a peak refinement
_LOG_FLOOR = 1e-10


def _sample(maps: np.ndarray, y: np.ndarray, x: np.ndarray) -> np.ndarray:
    """maps[n, j, y[n, j], x[n, j]] for index arrays of shape (N, J)."""
    num, joints = y.shape
    return maps[np.arange(num)[:, None], np.arange(joints)[None, :], y, x]


def dark_refine(heatmaps: np.ndarray, coords: np.ndarray, sigma: float) -> np.ndarray:
    """Refine integer argmax ``coords`` (N, J, 2) of ``heatmaps`` (N, J, H, W) by DARK.

    The step is taken on the log of the heatmaps smoothed by a gaussian of ``sigma`` cells
    (zero outside the map). At a border only the axis with both neighbours moves; where the
    log map is not concave (a flat or non-positive map, a saddle) or the step exceeds
    ``MAX_DARK_STEP`` on an axis, that sample keeps its integer position. Returns float32.
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
    both = has_x & has_y
    dxy = np.where(both, dxy, 0.0)  # one-axis steps ignore the cross term
    dx, dxx = np.where(has_x, dx, 0.0), np.where(has_x, dxx, -1.0)
    dy, dyy = np.where(has_y, dy, 0.0), np.where(has_y, dyy, -1.0)

    det = dxx * dyy - dxy**2
    concave = (dxx < 0) & (dyy < 0) & (det > 0)
    safe_det = np.where(concave, det, 1.0)
    step_x = -(dyy * dx - dxy * dy) / safe_det
    step_y = -(dxx * dy - dxy * dx) / safe_det
    step = np.stack([step_x, step_y], axis=-1)
    usable = concave[..., None] & (np.abs(step) <= MAX_DARK_STEP).all(axis=-1, keepdims=True)
    usable &= (np.max(heatmaps.reshape(num, joints, -1), axis=2) > 0)[..., None]
    return np.where(usable, coords + step, coords).astype(np.float32)


def udp_affine_transform(
    center: Sequence[float] | np.ndarray,
    scale: Sequence[float] | np.ndarray,
    rot_deg: float,
    output_size: Sequence[int] | np.ndarray,
    inv: bool = False,
) -> np.ndarray:
    """UDP's crop map (image -> output; output -> image when ``inv``), a 2x3 float64 matrix.

    The box (``scale * 200`` pixels) maps onto ``output_size - 1`` pixels on each axis and its
    center onto ``((output_w - 1) / 2, (output_h - 1) / 2)``, rotating by ``rot_deg`` about the
    center: pixel centres stay pixel centres at any output size, so the map to the heatmap is
    the map to the input followed by the stride ``(input - 1) / (heatmap - 1)``, and flipping
    the image (x -> width - 1 - x) flips the output exactly.
    """
    center = np.asarray(center, dtype=np.float64).reshape(2)
    scale = np.asarray(scale, dtype=np.float64).reshape(-1)
    box = np.broadcast_to(scale, (2,)) * PIXEL_STD
    out_w, out_h = float(output_size[0]), float(output_size[1])
    zoom = np.array([(out_w - 1.0) / box[0], (out_h - 1.0) / box[1]])
    theta = np.deg2rad(rot_deg)
    cos, sin = np.cos(theta), np.sin(theta)
    # Rotating the image content by +rot_deg about the center, as the official crop does.
    linear = zoom[:, None] * np.array([[cos, sin], [-sin, cos]])
    offset = np.array([(out_w - 1.0) * 0.5, (out_h - 1.0) * 0.5]) - linear @ center
    matrix = np.hstack([linear, offset[:, None]])
    if inv:
        return cv2.invertAffineTransform(matrix)
    return matrix


def udp_generate_target(
    joints: np.ndarray,
    joints_vis: np.ndarray,
    image_size: Sequence[int],
    heatmap_size: Sequence[int],
    sigma: float,
) -> tuple[np.ndarray, np.ndarray]:
    """UDP gaussian targets (J, hh, hw) and weights (J, 1), float32.

    ``joints`` are in input pixels of the UDP crop; each lies at ``joints / stride`` cells with
    ``stride = (image_size - 1) / (heatmap_size - 1)``, and its gaussian (peak 1 at that
    continuous position) is drawn within 3 sigma of the nearest cell. A joint whose window
    misses the map gets weight 0; visibility <= 0.5 gives an empty map with its visibility
    as weight (as the official targets).
    """
    joints = np.asarray(joints, dtype=np.float64)
    joints_vis = np.asarray(joints_vis, dtype=np.float64).reshape(-1)
    num_joints = len(joints)
    map_w, map_h = int(heatmap_size[0]), int(heatmap_size[1])
    stride = (np.asarray(image_size, dtype=np.float64) - 1.0) / (
        np.asarray(heatmap_size, dtype=np.float64) - 1.0
    )
    target = np.zeros((num_joints, map_h, map_w), dtype=np.float32)
    weight = joints_vis.astype(np.float32).reshape(num_joints, 1)
    known = np.isfinite(joints).all(axis=1)
    bad = ~known & (joints_vis > 0)
    if bad.any():
        raise ValueError(f"non-finite coordinates for visible joints {np.flatnonzero(bad).tolist()}"
                         "; expected finite input pixels")
    mu = np.zeros((num_joints, 2))
    mu[known] = np.clip(joints[known] / stride, -(2.0**40), 2.0**40)
    nearest = np.rint(mu)
    radius = np.ceil(3 * sigma)
    low, high = nearest - radius, nearest + radius
    outside = (low[:, 0] >= map_w) | (low[:, 1] >= map_h) | (high[:, 0] < 0) | (high[:, 1] < 0)
    weight[known & outside] = 0
    drawn = known & ~outside & (joints_vis > 0.5)
    cols = np.arange(map_w, dtype=np.float64)
    rows = np.arange(map_h, dtype=np.float64)
    dx2 = (cols[None, :] - mu[:, 0:1]) ** 2
    dy2 = (rows[None, :] - mu[:, 1:2]) ** 2
    gaussian = np.exp(-(dx2[:, None, :] + dy2[:, :, None]) / (2 * sigma**2))
    in_cols = (cols[None, :] >= low[:, 0:1]) & (cols[None, :] <= high[:, 0:1])
    in_rows = (rows[None, :] >= low[:, 1:2]) & (rows[None, :] <= high[:, 1:2])
    window = in_rows[:, :, None] & in_cols[:, None, :] & drawn[:, None, None]
    target[window] = gaussian[window].astype(np.float32)
    return target, weight


def udp_transform_preds(
    coords: np.ndarray,
    center: Sequence[float] | np.ndarray,
    scale: Sequence[float] | np.ndarray,
    heatmap_size: Sequence[int],
) -> np.ndarray:
    """Heatmap cells (J, 2) of a UDP crop back to original pixels (rotation 0)."""
    return affine_transform(coords, udp_affine_transform(center, scale, 0, heatmap_size, inv=True))


def decode_subpixel(
    heatmaps: np.ndarray,
    centers: np.ndarray,
    scales: np.ndarray,
    method: str,
    sigma: float,
    udp: bool,
    post_process: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Coordinates in original pixels (N, J, 2) float32 and maxvals (N, J, 1).

    ``method`` 'quarter' applies the official quarter offset when ``post_process``; 'dark'
    always refines by DARK with the training ``sigma``. ``udp`` inverts the UDP crop instead of
    the official one.
    """
    if method not in DECODE_METHODS:
        raise ValueError(f"TEST.DECODE must be one of {list(DECODE_METHODS)}, got {method!r}")
    heatmaps = np.asarray(heatmaps)
    coords, maxvals = get_max_preds(heatmaps)
    num, _, height, width = heatmaps.shape
    if len(centers) != num or len(scales) != num:
        raise ValueError(
            f"got {num} heatmap samples but {len(centers)} centers and {len(scales)} scales"
        )
    if method == "dark":
        coords = dark_refine(heatmaps, coords, sigma)
    elif post_process:
        coords = quarter_offset(heatmaps, coords)
    back = udp_transform_preds if udp else transform_preds
    preds = np.empty_like(coords)
    for sample in range(num):
        preds[sample] = back(coords[sample], centers[sample], scales[sample], [width, height])
    return preds, maxvals


def decode_for_config(
    heatmaps: np.ndarray | torch.Tensor,
    centers: np.ndarray | torch.Tensor,
    scales: np.ndarray | torch.Tensor,
    cfg: CfgNode,
) -> tuple[np.ndarray, np.ndarray]:
    """Decode as the config says: ``TEST.DECODE``, ``MODEL.UDP``, ``TEST.POST_PROCESS``.

    The default (quarter, no UDP) is the official ``get_final_preds`` itself, bit for bit.
    """
    if cfg.TEST.DECODE == "quarter" and not cfg.MODEL.UDP:
        return get_final_preds(heatmaps, centers, scales, post_process=cfg.TEST.POST_PROCESS)
    arrays = [a.detach().cpu().numpy() if isinstance(a, torch.Tensor) else np.asarray(a)
              for a in (heatmaps, centers, scales)]  # fmt: skip
    return decode_subpixel(*arrays, cfg.TEST.DECODE, float(cfg.MODEL.SIGMA), bool(cfg.MODEL.UDP),
                           bool(cfg.TEST.POST_PROCESS))  # fmt: skip
