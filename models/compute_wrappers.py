"""Test-time wrappers that change how a PyTorch model computes, not what it is: batch norm on
each batch's statistics (``TEST.BN_BATCH_STATS``) and bfloat16 autocast (``TEST.BF16``)."""

from __future__ import annotations

import torch
from torch import nn


class BatchStatistics(nn.Module):
    """Runs ``model`` with its batch norm on each batch's own statistics whatever ``eval()``
    says: what the competition's test scripts did by never calling ``model.eval()``
    (``TEST.BN_BATCH_STATS``, for reproducing them)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.train(False)

    def train(self, mode: bool = True) -> BatchStatistics:
        super().train(mode)
        for module in self.model.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.train(True)
        return self

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model(images)


class Bfloat16(nn.Module):
    """Runs ``model`` under bfloat16 autocast (convolutions and matmuls in bf16, where the CPU
    has bf16 dot products about three times the fp32 rate); the output is float32 again, so the
    decoding downstream is the same."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        with torch.autocast(images.device.type, dtype=torch.bfloat16):
            return self.model(images).float()
