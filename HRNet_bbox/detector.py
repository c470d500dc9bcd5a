"""Stage one for every person: a torchvision detector (FCOS, RetinaNet or Faster R-CNN, with
their own losses, anchors or centres, box coding and NMS) on the project's HRNet.

``MODEL.DETECTOR.NAME`` picks it:

- ``'fcos'``, ``'retinanet'``, ``'fasterrcnn'``: the HRNet of ``MODEL.EXTRA`` as backbone. Its
  stride-4 map (already the sum of all four branches, upsampled) is average-pooled to the
  strides the detector expects, as HRNetV2p's HRFPN does, and fed to torchvision's
  ``FeaturePyramidNetwork`` (FCOS, RetinaNet: P3-P5 + P6/P7; Faster R-CNN: P2-P5 + pool).
  Two classes: background and the data set's one category (label 1). The backbone's keys are
  ``backbone.body.<official HRNet key>``, so ``MODEL.PRETRAINED`` loads into it as into stage
  two's HRNet.
- a torchvision builder name (``TORCHVISION_DETECTORS``): that model with its own ResNet or
  MobileNet backbone and COCO's 91 classes, whose label 1 is COCO's person, so that
  torchvision's COCO-trained weights from ``MODEL.DETECTOR.WEIGHTS`` (a file the user has: never
  a download) find people as they are, and fine-tune with the same label.

``MODEL.DETECTOR.NMS_THRE`` is the IoU of the detector's own NMS (0: torchvision's default, 0.6
for FCOS, 0.5 for the others); ``SCORE_THRE`` and ``MAX_DETECTIONS`` what it keeps.

Inputs are RGB in [0, 1] letterboxed to ``MODEL.IMAGE_SIZE`` (``HRNet_bbox.detection_data``);
torchvision's transform normalises them and leaves their size alone.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F
from torchvision.models import detection
from torchvision.ops.feature_pyramid_network import (
    ExtraFPNBlock,
    FeaturePyramidNetwork,
    LastLevelMaxPool,
    LastLevelP6P7,
)
from yacs.config import CfgNode

from common.errors import ConfigError, MissingFileError
from common.state_dict import load_state_dict_strict
from models.hrnet import PoseHighResolutionNet, build_pose_hrnet

HRNET_DETECTORS = ("fcos", "retinanet", "fasterrcnn")
TORCHVISION_DETECTORS: dict[str, Callable[..., nn.Module]] = {
    "fcos_resnet50_fpn": detection.fcos_resnet50_fpn,
    "retinanet_resnet50_fpn": detection.retinanet_resnet50_fpn,
    "retinanet_resnet50_fpn_v2": detection.retinanet_resnet50_fpn_v2,
    "fasterrcnn_resnet50_fpn": detection.fasterrcnn_resnet50_fpn,
    "fasterrcnn_resnet50_fpn_v2": detection.fasterrcnn_resnet50_fpn_v2,
    "fasterrcnn_mobilenet_v3_large_fpn": detection.fasterrcnn_mobilenet_v3_large_fpn,
    "fasterrcnn_mobilenet_v3_large_320_fpn": detection.fasterrcnn_mobilenet_v3_large_320_fpn,
}
COCO_CLASSES = 91  # torchvision's COCO detectors: background, 80 categories, 10 unused ids
PERSON_LABEL = 1  # the one category here; COCO's person in torchvision's COCO detectors
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# Pooling factors of the HRNet stride-4 map for each detector's pyramid inputs.
_POOLING = {"fcos": (2, 4, 8), "retinanet": (2, 4, 8), "fasterrcnn": (1, 2, 4, 8)}


class HRNetPyramid(nn.Module):
    """HRNet -> its stride-4 map pooled to several strides -> torchvision's FPN.

    ``forward`` gives the ``OrderedDict`` of equal-width maps torchvision's detectors take;
    ``out_channels`` is their width, as they require."""

    def __init__(self, hrnet: PoseHighResolutionNet, pooling: tuple[int, ...],
                 out_channels: int, extra_blocks: ExtraFPNBlock) -> None:  # fmt: skip
        super().__init__()
        hrnet.final_layer = nn.Identity()  # the keypoint head is not used
        self.body = hrnet
        self.pooling = pooling
        self.fpn = FeaturePyramidNetwork([hrnet.out_channels] * len(pooling), out_channels,
                                         extra_blocks)  # fmt: skip
        self.out_channels = out_channels

    def forward(self, images: torch.Tensor) -> OrderedDict[str, torch.Tensor]:
        features = self.body.forward_features(images)
        levels = OrderedDict(
            (str(level), F.avg_pool2d(features, factor) if factor > 1 else features)
            for level, factor in enumerate(self.pooling)
        )
        return self.fpn(levels)


def _detector_options(cfg: CfgNode) -> dict:
    """Size, normalisation and output settings shared by every detector."""
    width, height = (int(v) for v in cfg.MODEL.IMAGE_SIZE)
    det = cfg.MODEL.DETECTOR
    options = {"min_size": min(width, height), "max_size": max(width, height),
               "image_mean": list(IMAGENET_MEAN), "image_std": list(IMAGENET_STD)}
    nms = float(det.NMS_THRE)
    if not 0 <= nms <= 1:
        raise ConfigError(f"MODEL.DETECTOR.NMS_THRE must be between 0 and 1 (the box IoU above "
                          f"which NMS drops the lower-scored box; 0: the detector's own), got "
                          f"{det.NMS_THRE}")
    if det.NAME.startswith("fasterrcnn"):
        options.update(box_score_thresh=float(det.SCORE_THRE),
                       box_detections_per_img=int(det.MAX_DETECTIONS))  # fmt: skip
        if nms:
            options["box_nms_thresh"] = nms
    else:
        options.update(score_thresh=float(det.SCORE_THRE),
                       detections_per_img=int(det.MAX_DETECTIONS))  # fmt: skip
        if nms:
            options["nms_thresh"] = nms
    return options


def _hrnet_detector(cfg: CfgNode, is_train: bool, logger: logging.Logger | None) -> nn.Module:
    name = cfg.MODEL.DETECTOR.NAME
    hrnet = build_pose_hrnet(cfg, is_train=is_train, logger=logger)
    width, height = (int(v) for v in cfg.MODEL.IMAGE_SIZE)
    if width % hrnet.size_divisor or height % hrnet.size_divisor:
        raise ConfigError(f"MODEL.IMAGE_SIZE [width, height] = [{width}, {height}]: both sides "
                          f"must be multiples of {hrnet.size_divisor} for this HRNet")
    channels = int(cfg.MODEL.DETECTOR.FPN_CHANNELS)
    if channels < 32 or channels % 32:
        raise ConfigError(f"MODEL.DETECTOR.FPN_CHANNELS must be a positive multiple of 32 (the "
                          f"detectors' heads use 32-group GroupNorm), got {channels}")
    extra: ExtraFPNBlock = (LastLevelMaxPool() if name == "fasterrcnn"
                            else LastLevelP6P7(channels, channels))  # fmt: skip
    backbone = HRNetPyramid(hrnet, _POOLING[name], channels, extra)
    model_class = {"fcos": detection.FCOS, "retinanet": detection.RetinaNet,
                   "fasterrcnn": detection.FasterRCNN}[name]  # fmt: skip
    return model_class(backbone, num_classes=2, **_detector_options(cfg))


def _torchvision_detector(cfg: CfgNode) -> nn.Module:
    """A torchvision COCO detector, built without any download; ``MODEL.DETECTOR.WEIGHTS``
    loaded strictly when set (a checkpoint of another builder is one clear error)."""
    det = cfg.MODEL.DETECTOR
    model = TORCHVISION_DETECTORS[det.NAME](weights=None, weights_backbone=None,
                                            num_classes=COCO_CLASSES,
                                            **_detector_options(cfg))  # fmt: skip
    if det.WEIGHTS:
        if not Path(det.WEIGHTS).is_file():
            raise MissingFileError(f"MODEL.DETECTOR.WEIGHTS file not found: {det.WEIGHTS} (a "
                                   f"torchvision {det.NAME} state dict, e.g. from "
                                   "torch.hub's cache; or set it to '')")
        load_state_dict_strict(model, det.WEIGHTS)
    return model


def build_detector(cfg: CfgNode, is_train: bool, logger: logging.Logger | None = None
                   ) -> nn.Module:
    """The detector of ``MODEL.DETECTOR.NAME``; ``MODEL.PRETRAINED`` (HRNet) and
    ``MODEL.DETECTOR.WEIGHTS`` (torchvision builders) are read only when training or, for the
    latter, when no trained file replaces them (``is_train`` False skips both)."""
    name = cfg.MODEL.DETECTOR.NAME
    if name in HRNET_DETECTORS:
        return _hrnet_detector(cfg, is_train, logger)
    if name in TORCHVISION_DETECTORS:
        if not is_train:
            weights, cfg = cfg.MODEL.DETECTOR.WEIGHTS, cfg.clone()
            cfg.defrost()
            cfg.MODEL.DETECTOR.WEIGHTS = ""
            if logger is not None and weights:
                logger.info("MODEL.DETECTOR.WEIGHTS %s not read: the trained weights follow",
                            weights)  # fmt: skip
        return _torchvision_detector(cfg)
    raise ConfigError(f"MODEL.DETECTOR.NAME must be one of {list(HRNET_DETECTORS)} (HRNet "
                      f"backbone) or {sorted(TORCHVISION_DETECTORS)}, got {name!r}")
