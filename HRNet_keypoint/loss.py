"""Heatmap loss of stage two."""

from __future__ import annotations

import torch
from torch import nn


class JointsMSELoss(nn.Module):
    """Official JointsMSELoss: mean over joints of 0.5 * MSE(pred_j, gt_j).

    Every joint map has the same number of cells, so this equals 0.5 * the mean of all squared
    differences. With ``use_target_weight`` both maps are multiplied by the joint's weight first
    (the reference solution ran with it off; see LOSS.USE_TARGET_WEIGHT).
    """

    def __init__(self, use_target_weight: bool) -> None:
        super().__init__()
        self.use_target_weight = use_target_weight

    def forward(
        self, output: torch.Tensor, target: torch.Tensor, target_weight: torch.Tensor
    ) -> torch.Tensor:
        batch, joints = output.shape[:2]
        pred = output.reshape(batch, joints, -1)
        gt = target.reshape(batch, joints, -1)
        if self.use_target_weight:
            weight = target_weight.reshape(batch, joints, 1)
            pred = pred * weight
            gt = gt * weight
        return 0.5 * torch.mean((pred - gt) ** 2)
