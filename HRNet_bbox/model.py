"""Stage one's model: an HRNet backbone and a head that regresses one person box per image.

The model is laid out as ``nn.Sequential(backbone, head)``, like the reference, so its keys are
``0.<official HRNet key>`` and ``1.<head key>``: the reference's ``model_best.pth`` loads into
the 'reference' head strictly, and official HRNet checkpoints load into the backbone.

Two heads (``MODEL.BBOX_HEAD``):

- ``'reference'``: the competition head. The 24 keypoint heatmaps are flattened (C, H, W order)
  into one ``Linear(in, 4)`` giving x1, y1, x2, y2 in pixels of the resized input. ``in`` comes
  from the real heatmap size of ``MODEL.IMAGE_SIZE`` (the reference used a size table that was
  right for only a few sizes). The unused ``bn1`` of the reference is kept so that its
  checkpoints load strictly.
- ``'pooled'``: spatial-softmax pooling. A small conv block turns the stride-4 features into four
  maps; each map is softmax-normalised over the image and pools the x grid (left, right edge) or
  the y grid (top, bottom edge) into one coordinate, as a fraction of the input width or height.
  It has no size-dependent layer, so it works for any input size, and is 1/30 of the reference
  head's size at 384x288 (W48).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence

import torch
from torch import nn
from yacs.config import CfgNode

from common.errors import ConfigError
from models.hrnet import PoseHighResolutionNet, build_pose_hrnet, normal_init_

REFERENCE_HEAD = "reference"
POOLED_HEAD = "pooled"
BOX_HEADS = (REFERENCE_HEAD, POOLED_HEAD)


def heatmap_size_for(image_size: Sequence[int]) -> tuple[int, int]:
    """(height, width) of the backbone's stride-4 output for an input ``[width, height]``.

    The stem is two 3x3 stride-2 convolutions with padding 1, each giving ceil(n / 2).
    """
    width, height = (int(v) for v in image_size)
    return math.ceil(math.ceil(height / 2) / 2), math.ceil(math.ceil(width / 2) / 2)


class ReferenceBoxHead(nn.Module):
    """Flattened heatmaps -> Linear -> (x1, y1, x2, y2) in input pixels (the competition head)."""

    def __init__(self, num_joints: int, heatmap_hw: tuple[int, int]) -> None:
        super().__init__()
        self.heatmap_shape = (num_joints, *heatmap_hw)
        # Never called, as in the reference; kept so that its checkpoints load strictly. Frozen,
        # since DistributedDataParallel refuses trainable parameters that get no gradient.
        self.bn1 = nn.BatchNorm2d(num_joints).requires_grad_(False)
        self.bbox_layer = nn.Linear(math.prod(self.heatmap_shape), 4)
        nn.init.xavier_uniform_(self.bbox_layer.weight)

    def forward(self, heatmaps: torch.Tensor) -> torch.Tensor:
        if tuple(heatmaps.shape[1:]) != self.heatmap_shape:
            raise ValueError(
                f"the reference box head was built for heatmaps {self.heatmap_shape} (C, H, W) "
                f"but got {tuple(heatmaps.shape[1:])}: the input size differs from "
                "MODEL.IMAGE_SIZE"
            )
        return self.bbox_layer(heatmaps.flatten(1))


class SoftArgmaxBoxHead(nn.Module):
    """Stride-4 features -> four softmax maps -> (x1, y1, x2, y2) as fractions of the input.

    Grid cell ``j`` of a map with ``w`` columns stands for ``j / w`` of the input width: the
    stem's two stride-2 convolutions centre cell ``j`` on input pixel ``4 j``.
    """

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        self.refine = nn.Sequential(
            nn.Conv2d(in_channels, in_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(in_channels),
            nn.ReLU(inplace=True),
        )
        self.corner_logits = nn.Conv2d(in_channels, 4, 1)
        normal_init_(self.refine[0].weight, std=0.01)
        # Unit-variance logits from the start: a near-uniform softmax would sit at the image
        # centre and learn slowly.
        normal_init_(self.corner_logits.weight, std=in_channels**-0.5)
        nn.init.zeros_(self.corner_logits.bias)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        logits = self.corner_logits(self.refine(features))
        batch, maps, height, width = logits.shape
        prob = logits.flatten(2).softmax(dim=-1).view(batch, maps, height, width)
        grid_x = torch.arange(width, device=logits.device, dtype=prob.dtype) / width
        grid_y = torch.arange(height, device=logits.device, dtype=prob.dtype) / height
        expected_x = (prob.sum(dim=2) * grid_x).sum(dim=-1)  # (N, 4)
        expected_y = (prob.sum(dim=3) * grid_y).sum(dim=-1)
        return torch.stack(
            [expected_x[:, 0], expected_y[:, 1], expected_x[:, 2], expected_y[:, 3]], dim=1
        )


class BoxRegressor(nn.Sequential):
    """``0`` = HRNet backbone, ``1`` = box head; ``forward`` gives the head's output (N, 4),
    which ``HRNet_bbox.codec`` decodes into boxes."""

    def __init__(self, backbone: PoseHighResolutionNet, head_name: str,
                 image_size: Sequence[int], num_joints: int) -> None:
        if head_name == REFERENCE_HEAD:
            head: nn.Module = ReferenceBoxHead(num_joints, heatmap_size_for(image_size))
        elif head_name == POOLED_HEAD:
            # The keypoint head is not used: the backbone then returns its features.
            backbone.final_layer = nn.Identity()
            head = SoftArgmaxBoxHead(backbone.out_channels)
        else:
            raise ConfigError(
                f"MODEL.BBOX_HEAD must be one of {list(BOX_HEADS)}, got {head_name!r}"
            )
        super().__init__(backbone, head)


def build_box_model(cfg: CfgNode, is_train: bool,
                    logger: logging.Logger | None = None) -> BoxRegressor:
    """Backbone from ``build_pose_hrnet`` (pretrained layers only when training) + the head of
    ``MODEL.BBOX_HEAD``; refuses an input size the backbone cannot take."""
    backbone = build_pose_hrnet(cfg, is_train=is_train, logger=logger)
    width, height = (int(v) for v in cfg.MODEL.IMAGE_SIZE)
    divisor = backbone.size_divisor
    if width % divisor or height % divisor:
        raise ConfigError(
            f"MODEL.IMAGE_SIZE [width, height] = [{width}, {height}]: both sides must be "
            f"multiples of {divisor} for this HRNet"
        )
    return BoxRegressor(backbone, cfg.MODEL.BBOX_HEAD, (width, height),
                        int(cfg.MODEL.NUM_JOINTS))
