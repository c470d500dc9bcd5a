"""CutMix for the frame classifier: paste a rectangle of another image of the batch and mix the
labels by the pasted area, so the model must use more of the hand than one telling patch."""

from __future__ import annotations

import math

import torch
from torch import nn


def cutmix_batch(
    images: torch.Tensor, labels: torch.Tensor, prob: float, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor, float]:
    """(images, partner labels, lam): with probability ``prob`` a random rectangle of each
    image is replaced by the same rectangle of image ``perm[i]`` (``torch.randperm``).

    ``lam`` is the share of each image left as it was (1.0 and the batch untouched otherwise),
    so the target is ``lam * labels + (1 - lam) * partner labels``. The rectangle's area share
    is drawn uniformly (CutMix with Beta(1, 1)), its centre uniformly, then clipped to the image.
    Every draw comes from ``generator``: a seeded run mixes the same way every time.
    """
    if prob <= 0 or torch.rand((), generator=generator).item() >= prob:
        return images, labels, 1.0
    height, width = images.shape[-2:]
    cut = math.sqrt(torch.rand((), generator=generator).item())
    cut_h, cut_w = int(height * cut), int(width * cut)
    cy = int(torch.randint(height, (), generator=generator))
    cx = int(torch.randint(width, (), generator=generator))
    top, bottom = max(cy - cut_h // 2, 0), min(cy + cut_h - cut_h // 2, height)
    left, right = max(cx - cut_w // 2, 0), min(cx + cut_w - cut_w // 2, width)
    perm = torch.randperm(len(images), generator=generator).to(images.device)
    mixed = images.clone()
    mixed[:, :, top:bottom, left:right] = images[perm, :, top:bottom, left:right]
    lam = 1.0 - (bottom - top) * (right - left) / (height * width)
    return mixed, labels[perm], lam


def mixed_loss(
    criterion: nn.Module,
    logits: torch.Tensor,
    labels: torch.Tensor,
    partner_labels: torch.Tensor,
    lam: float,
) -> torch.Tensor:
    """Cross-entropy against the area-mixed target (equal to it, as CE is linear in the
    target): ``lam * CE(labels) + (1 - lam) * CE(partner labels)``."""
    if lam == 1.0:
        return criterion(logits, labels)
    return lam * criterion(logits, labels) + (1.0 - lam) * criterion(logits, partner_labels)
