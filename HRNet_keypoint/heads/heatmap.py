"""The official heatmap head: one convolution from the backbone's stride-4 features to one
heatmap per joint (``final_layer``, the official key), its flip test and its loss."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn
from yacs.config import CfgNode

from HRNet_keypoint.loss import JointsMSELoss
from HRNet_keypoint.transforms import swap_pairs_permutation
from models.hrnet import heatmap_conv


def flip_back(
    heatmaps: np.ndarray | torch.Tensor, flip_pairs: Sequence[Sequence[int]]
) -> np.ndarray | torch.Tensor:
    """Heatmaps of a mirrored input back to the unmirrored frame: mirror width, swap pairs.

    Works on (N, J, H, W) numpy arrays and torch tensors (kept on their device); returns a new
    array of the same kind.
    """
    if heatmaps.ndim != 4:
        raise ValueError(f"heatmaps must be (N, J, H, W), got shape {tuple(heatmaps.shape)}")
    order = swap_pairs_permutation(heatmaps.shape[1], flip_pairs)
    if isinstance(heatmaps, torch.Tensor):
        index = torch.as_tensor(order, device=heatmaps.device)
        return heatmaps.flip(3).index_select(1, index)
    return np.ascontiguousarray(heatmaps[:, order, :, ::-1])


class HeatmapHead(nn.Module):
    """Features (N, C, H/4, W/4) -> heatmaps (N, J, H/4, W/4) (``MODEL.HEAD heatmap``)."""

    def __init__(self, cfg: CfgNode, in_channels: int) -> None:
        super().__init__()
        kernel = int(cfg.MODEL.EXTRA.get("FINAL_CONV_KERNEL", 1))
        self.final_layer = heatmap_conv(in_channels, int(cfg.MODEL.NUM_JOINTS), kernel)
        self.criterion = JointsMSELoss(bool(cfg.LOSS.USE_TARGET_WEIGHT))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.final_layer(features)

    def loss(self, output: torch.Tensor, target: torch.Tensor,
             target_weight: torch.Tensor) -> torch.Tensor:  # fmt: skip
        """The official JointsMSELoss against the codec's targets."""
        return self.criterion(output, target, target_weight)

    @staticmethod
    def merge_flipped(
        output: torch.Tensor, flipped: torch.Tensor, flip_pairs: Sequence[Sequence[int]],
        shift: bool,
    ) -> torch.Tensor:
        """The official flip test: the mirrored input's maps flipped back, shifted one column
        right when ``shift`` (column 0 keeps its value), averaged with the plain output."""
        flipped = flip_back(flipped, flip_pairs)
        if shift:
            flipped[:, :, :, 1:] = flipped.clone()[:, :, :, :-1]
        return (output + flipped) * 0.5
