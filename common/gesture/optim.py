"""The classifier's optimiser (GESTURE.OPTIMIZER) and its per-iteration LR schedule."""

from __future__ import annotations

import torch
from torch import nn
from yacs.config import CfgNode


def build_optimizer(cfg: CfgNode, model: nn.Module) -> torch.optim.Optimizer:
    g = cfg.GESTURE
    name = g.OPTIMIZER.lower()
    if name == "adamw":
        return torch.optim.AdamW(model.parameters(), lr=g.WARMUP_LR, weight_decay=g.WEIGHT_DECAY)
    if name == "adam":
        return torch.optim.Adam(model.parameters(), lr=g.WARMUP_LR, weight_decay=g.WEIGHT_DECAY)
    if name == "sgd":
        return torch.optim.SGD(
            model.parameters(),
            lr=g.WARMUP_LR,
            momentum=cfg.TRAIN.MOMENTUM,
            weight_decay=g.WEIGHT_DECAY,
            nesterov=cfg.TRAIN.NESTEROV,
        )
    raise ValueError(f"GESTURE.OPTIMIZER must be adamw, adam or sgd, got {g.OPTIMIZER!r}")


class WarmupOneCycle:
    """Per-iteration LR: linear warm-up to WARMUP_LR, then OneCycleLR(MAX_LR) to the end."""

    def __init__(self, cfg: CfgNode, optimizer: torch.optim.Optimizer, iters_per_epoch: int):
        g = cfg.GESTURE
        self.optimizer = optimizer
        self.warmup_iters = max(0, g.WARMUP_EPOCHS) * iters_per_epoch
        self.cycle_iters = max(0, g.EPOCHS - g.WARMUP_EPOCHS) * iters_per_epoch
        self.warmup_lr = g.WARMUP_LR
        self.max_lr = g.MAX_LR
        self.cycle: torch.optim.lr_scheduler.OneCycleLR | None = None
        self.iteration = 0

    def before_step(self) -> None:
        if self.iteration < self.warmup_iters:
            lr = self.warmup_lr * (self.iteration + 1) / self.warmup_iters
            for group in self.optimizer.param_groups:
                group["lr"] = lr
        elif self.cycle is None and self.cycle_iters > 0:
            self.cycle = torch.optim.lr_scheduler.OneCycleLR(
                self.optimizer, max_lr=self.max_lr, total_steps=self.cycle_iters
            )

    def after_step(self) -> None:
        if self.cycle is not None and self.cycle.last_epoch < self.cycle_iters:
            self.cycle.step()
        self.iteration += 1
