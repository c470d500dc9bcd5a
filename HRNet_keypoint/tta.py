"""Test-time augmentation beyond flip, and heatmap ensembles of several models.

``TEST.SCALES`` lists box scale factors: each image is cropped at every factor, each crop goes
through every model (with the flip test when ``TEST.FLIP_TEST``), and each heatmap is warped
into the heatmap frame of the factor-1.0 crop, where all are averaged before one decoding. The
average is weighted by coverage: cells that a smaller crop does not see take the others' mean.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import nn
from yacs.config import CfgNode

from common.keypoint_config import config_keypoint_set
from common.loaders import make_loader
from common.progress import batch_size, progress
from HRNet_keypoint.codecs import HeatmapCodec, codec_for_config
from HRNet_keypoint.dataset import BoxDataset, crop_image, normalize_crop
from HRNet_keypoint.inference import predict_heatmaps


class MultiScaleBoxDataset(BoxDataset):
    """``BoxDataset`` whose items hold one crop per scale factor: (S, 3, H, W) and meta with
    the factor-1.0 ``center`` and ``scale``."""

    def __init__(
        self,
        cfg: CfgNode,
        image_paths: Sequence[Path | str],
        boxes_xywh: np.ndarray,
        factors: Sequence[float],
        images: Sequence[np.ndarray] | None = None,
    ) -> None:
        super().__init__(cfg, image_paths, boxes_xywh, images)
        if not factors or min(factors) <= 0:
            raise ValueError(f"TEST.SCALES must be positive box scale factors, got {factors}")
        self.factors = [float(f) for f in factors]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, dict]:
        image = self.load_image(index)
        center, scale = self._center_scale(index, self.boxes[index], image.shape[1::-1], "box")
        crops = [
            normalize_crop(crop_image(image, center, scale * np.float32(factor), 0.0,
                                      self.image_size, crop_matrix=self.codec.crop_matrix)[0],
                                 self.color_rgb)
            for factor in self.factors
        ]  # fmt: skip
        meta = {"index": index, "center": torch.from_numpy(center),
                "scale": torch.from_numpy(scale)}  # fmt: skip
        return torch.stack(crops), meta


def to_reference_frame(
    heatmaps: np.ndarray,
    centers: np.ndarray,
    scales: np.ndarray,
    factor: float,
    codec: HeatmapCodec,
) -> tuple[np.ndarray, np.ndarray]:
    """Warp heatmaps (N, J, H, W) of crops at ``scales * factor`` into the frame of the crops at
    ``scales`` (by the codec's crop matrix, the one its decoding inverts); returns the warped
    maps and their coverage (N, 1, H, W) in [0, 1]."""
    num, joints, height, width = heatmaps.shape
    if factor == 1.0:
        return heatmaps, np.ones((num, 1, height, width), dtype=heatmaps.dtype)
    warped = np.empty_like(heatmaps)
    coverage = np.empty((num, 1, height, width), dtype=heatmaps.dtype)
    ones = np.ones((height, width), dtype=heatmaps.dtype)
    size = (width, height)
    for n in range(num):
        scaled = np.asarray(scales[n], dtype=np.float32) * np.float32(factor)
        to_image = np.vstack([codec.crop_matrix(centers[n], scaled, 0, size, inv=True),
                              [0, 0, 1]])  # fmt: skip
        matrix = codec.crop_matrix(centers[n], scales[n], 0, size) @ to_image
        maps = np.ascontiguousarray(heatmaps[n].transpose(1, 2, 0))
        out = cv2.warpAffine(maps, matrix, size, flags=cv2.INTER_LINEAR,
                             borderMode=cv2.BORDER_CONSTANT, borderValue=0)  # fmt: skip
        warped[n] = out.reshape(height, width, joints).transpose(2, 0, 1)
        coverage[n, 0] = cv2.warpAffine(ones, matrix, size, flags=cv2.INTER_LINEAR,
                                        borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return warped, coverage


def average_heatmaps(
    models: Sequence[nn.Module],
    crops: torch.Tensor,
    centers: np.ndarray,
    scales: np.ndarray,
    factors: Sequence[float],
    cfg: CfgNode,
    flip_pairs: Sequence[Sequence[int]],
    model_weights: Sequence[float] | None = None,
) -> np.ndarray:
    """The coverage-weighted mean heatmap (N, J, H, W) over models (weighted by
    ``model_weights``, equal by default) and scale factors, in the frame of the factor-1.0
    crops; ``crops`` is (N, S, 3, H, W) as ``MultiScaleBoxDataset``."""
    codec = codec_for_config(cfg)
    model_weights = [1.0] * len(models) if model_weights is None else list(model_weights)
    total, weight = None, None
    for k, factor in enumerate(factors):
        for model, share in zip(models, model_weights, strict=True):
            maps = predict_heatmaps(model, crops[:, k], cfg.TEST.FLIP_TEST, flip_pairs,
                                    codec.flip_shift)  # fmt: skip
            warped, coverage = to_reference_frame(maps.float().cpu().numpy(), centers, scales,
                                                  factor, codec)  # fmt: skip
            if share != 1.0:
                coverage = coverage * np.float32(share)
            total = warped * coverage if total is None else total + warped * coverage
            weight = coverage if weight is None else weight + coverage
    return (total / np.maximum(weight, 1e-6)).astype(np.float32)


def predict_boxes_tta(
    models: Sequence[nn.Module],
    cfg: CfgNode,
    paths: list[Path],
    boxes: np.ndarray,
    device: torch.device,
    images: list[np.ndarray] | None = None,
    desc: str = "keypoints",
    model_weights: Sequence[float] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Keypoints (N, J, 2) in original pixels from the heatmaps averaged over ``models`` and
    ``TEST.SCALES``, decoded once as the config says, and their scores (N, J): the averaged
    heatmaps' maxima."""
    flip_pairs = config_keypoint_set(cfg).flip_pairs
    factors = [float(f) for f in cfg.TEST.SCALES]
    dataset = MultiScaleBoxDataset(cfg, paths, boxes, factors, images=images)
    codec = dataset.codec
    coords = np.zeros((len(paths), cfg.MODEL.NUM_JOINTS, 2), dtype=np.float64)
    scores = np.zeros((len(paths), cfg.MODEL.NUM_JOINTS), dtype=np.float64)
    for model in models:
        model.eval()
    with torch.no_grad():
        batches = make_loader(dataset, cfg, train=False)
        for crops, meta in progress(batches, desc, len(dataset), "images", batch_size):
            centers, scales = meta["center"].numpy(), meta["scale"].numpy()
            heatmaps = average_heatmaps(models, crops.to(device), centers, scales, factors, cfg,
                                        flip_pairs, model_weights)  # fmt: skip
            index = meta["index"].numpy()
            coords[index], maxvals = codec.decode(heatmaps, centers, scales)
            scores[index] = np.asarray(maxvals).reshape(len(index), -1)
    return coords, scores
