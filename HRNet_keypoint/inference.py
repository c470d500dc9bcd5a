"""Model to heatmaps, with the flip test of the head (the official one by default)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from HRNet_keypoint.heads.heatmap import HeatmapHead


def _model_placement(model: nn.Module, images: torch.Tensor) -> tuple[torch.device, torch.dtype]:
    """Device and float type of the model's weights (the images' device and float32 if none)."""
    parameter = next(model.parameters(), None)
    if parameter is None:
        return images.device, torch.float32
    return parameter.device, parameter.dtype


def _last_output(outputs: torch.Tensor | Sequence[torch.Tensor]) -> torch.Tensor:
    """Models that return several heatmap stages are read at the last one (official)."""
    if isinstance(outputs, (list, tuple)):
        return outputs[-1]
    return outputs


def predict_heatmaps(
    model: nn.Module,
    images: torch.Tensor,
    flip_test: bool,
    flip_pairs: Sequence[Sequence[int]],
    shift_heatmap: bool,
    head: type[nn.Module] = HeatmapHead,
) -> torch.Tensor:
    """Heatmaps (N, J, H, W) for a batch of normalised crops, on the model's device.

    With ``flip_test`` the width-flipped batch is also run and merged with the plain output
    by the ``head``'s ``merge_flipped`` (the heatmap head's: flipped back, shifted one column
    right when ``shift_heatmap``, averaged). The caller puts the model in eval mode.
    """
    device, dtype = _model_placement(model, images)
    images = images.to(device=device, dtype=dtype)
    with torch.no_grad():
        output = _last_output(model(images))
        if flip_test:
            flipped = _last_output(model(images.flip(3)))
            output = head.merge_flipped(output, flipped, flip_pairs, shift_heatmap)
    return output
