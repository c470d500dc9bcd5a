"""Model to heatmaps to coordinates, with the official flip test."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn
from yacs.config import CfgNode

from HRNet_keypoint.codecs import HeatmapCodec, codec_for_config
from HRNet_keypoint.transforms import swap_pairs_permutation


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
) -> torch.Tensor:
    """Heatmaps (N, J, H, W) for a batch of normalised crops, on the model's device.

    With ``flip_test`` the width-flipped batch is also run; its maps are flipped back, shifted
    one column right when ``shift_heatmap`` (column 0 keeps its value, as officially) and
    averaged with the plain output. The caller puts the model in eval mode.
    """
    device, dtype = _model_placement(model, images)
    images = images.to(device=device, dtype=dtype)
    with torch.no_grad():
        output = _last_output(model(images))
        if flip_test:
            flipped = flip_back(_last_output(model(images.flip(3))), flip_pairs)
            if shift_heatmap:
                flipped[:, :, :, 1:] = flipped.clone()[:, :, :, :-1]
            output = (output + flipped) * 0.5
    return output


def predict_keypoints(
    model: nn.Module,
    images: torch.Tensor,
    centers: np.ndarray | torch.Tensor,
    scales: np.ndarray | torch.Tensor,
    cfg: CfgNode,
    flip_pairs: Sequence[Sequence[int]],
    codec: HeatmapCodec | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Coordinates in original pixels (N, J, 2) and maxvals (N, J, 1) for a batch of crops.

    TEST.FLIP_TEST decides the flip test; the codec (the config's when not given) whether the
    flipped maps shift one column, and the decoding.
    """
    codec = codec or codec_for_config(cfg)
    heatmaps = predict_heatmaps(model, images, cfg.TEST.FLIP_TEST, flip_pairs, codec.flip_shift)
    return codec.decode(heatmaps, centers, scales)
