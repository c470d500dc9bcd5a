"""UDP (unbiased data processing, Huang et al., CVPR 2020): the crop maps pixel *centres*.

The official crop maps the box onto ``size`` pixels, so a flip or the heatmap stride moves
points by half a pixel. UDP maps the box's extent onto ``size - 1``: the heatmap stride is
``(input - 1) / (heatmap - 1)``, targets are gaussians on the continuous position, flips are
exact (no one-column shift), and decoding inverts the same map. The refinement of the argmax is
``TEST.DECODE``'s: the quarter offset (with ``TEST.POST_PROCESS``) or DARK.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
from yacs.config import CfgNode

from common.errors import ConfigError
from HRNet_keypoint.codecs.base import HeatmapCodec, subpixel_targets
from HRNet_keypoint.codecs.dark import dark_refine
from HRNet_keypoint.codecs.quarter import quarter_offset
from HRNet_keypoint.transforms import PIXEL_STD

REFINEMENTS = ("quarter", "dark")


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


class UdpCodec(HeatmapCodec):
    """UDP's crop, targets and decoding (``MODEL.CODEC udp``, or the old ``MODEL.UDP True``)."""

    name = "udp"

    def __init__(self, cfg: CfgNode) -> None:
        super().__init__(cfg)
        self.refinement = str(cfg.TEST.DECODE)
        if self.refinement not in REFINEMENTS:
            raise ConfigError(f"TEST.DECODE must be one of {list(REFINEMENTS)}, got "
                              f"{self.refinement!r}")  # fmt: skip

    @property
    def flip_shift(self) -> bool:
        return False  # UDP's flip is exact

    def crop_matrix(self, center: np.ndarray, scale: np.ndarray, rotation: float,
                    output_size: Sequence[int], inv: bool = False) -> np.ndarray:  # fmt: skip
        return udp_affine_transform(center, scale, rotation, output_size, inv=inv)

    def encode(self, joints: np.ndarray, joints_vis: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        image, heatmap = np.asarray(self.image_size, float), np.asarray(self.heatmap_size, float)
        stride = (image - 1.0) / (heatmap - 1.0)
        return subpixel_targets(joints, joints_vis, stride, self.heatmap_size, self.sigma)

    def refine(self, heatmaps: np.ndarray, coords: np.ndarray) -> np.ndarray:
        if self.refinement == "dark":
            return dark_refine(heatmaps, coords, self.sigma)
        return quarter_offset(heatmaps, coords) if self.post_process else coords
