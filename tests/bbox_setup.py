"""Shared set-up of stage one's tests: a tiny config for any head and input size, and a
stand-in model with constant corners."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from common.config import get_defaults
from models.hrnet import hrnet_extra

ROOT = Path(__file__).resolve().parents[1]
TINY_WIDTHS = [8, 16, 32, 64]
SIZES = [[384, 288], [288, 384], [256, 256], [160, 96]]  # [width, height]


def tiny_cfg(head: str = "pooled", size=(64, 32), root: Path | None = None):
    cfg = get_defaults()
    cfg.MODEL.EXTRA = hrnet_extra(TINY_WIDTHS, blocks=1, modules=(1, 1, 1))
    cfg.MODEL.BBOX_HEAD = head
    cfg.MODEL.IMAGE_SIZE = list(size)
    cfg.WORKERS = 0
    cfg.TRAIN.BATCH_SIZE_PER_GPU = 4
    cfg.TEST.BATCH_SIZE_PER_GPU = 3
    if root is not None:
        cfg.DATASET.ROOT = str(root)
    return cfg


class ConstantCorners(nn.Module):
    """A stand-in model that always predicts the same normalised corners."""

    def __init__(self, corners: list[float]) -> None:
        super().__init__()
        self.corners = torch.tensor(corners)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.corners.expand(len(inputs), 4)
