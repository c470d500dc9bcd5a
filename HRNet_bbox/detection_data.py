"""Images and all their boxes for the detector (TASK detect).

Each image is letterboxed to ``MODEL.IMAGE_SIZE``: scaled to fit, kept in its aspect ratio,
placed top left, the rest filled with the ImageNet mean colour (zero once torchvision's
transform normalises it). Every image of a batch then has one size, so batches stack as in the
other stages, and boxes go back to original pixels by one division. A training image's boxes
are padded to the data set's largest count, with ``count`` saying how many are real.

Training draws each image anew: with ``MODEL.DETECTOR.SCALE_JITTER`` j > 0 it is zoomed by a
factor drawn uniformly from [1 - j, 1 + j] around the letterbox scale and placed at a random
offset (boxes cut by the canvas edge are clipped; one left with under a quarter of its area is
dropped), then flipped left to right half the time. Tests and the chain always get the plain
letterbox.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset
from yacs.config import CfgNode

from common.errors import ConfigError
from common.io import read_image
from common.keypoint_table import KeypointTable, table_boxes

MEAN_BGR = (0.406 * 255, 0.456 * 255, 0.485 * 255)
MIN_VISIBLE = 0.25  # a jittered box keeps at least this share of its area, or is dropped


def boxes_by_image(table: KeypointTable) -> tuple[list[Path], list[np.ndarray]]:
    """The table's images, each once in first-seen order, with all their boxes [x, y, w, h]
    (K, 4): one row per person in a COCO table, one per image in a CSV table."""
    boxes = table_boxes(table)
    order: dict[Path, list[int]] = {}
    for row, path in enumerate(table.paths):
        order.setdefault(path, []).append(row)
    return list(order), [boxes[rows].reshape(-1, 4) for rows in order.values()]


def letterbox(image: np.ndarray, size: Sequence[int]) -> tuple[np.ndarray, float]:
    """The BGR image scaled to fit ``size`` [width, height], top left, mean-padded; its scale."""
    width, height = (int(v) for v in size)
    scale = min(width / image.shape[1], height / image.shape[0])
    new_w = max(1, min(width, round(image.shape[1] * scale)))
    new_h = max(1, min(height, round(image.shape[0] * scale)))
    resized = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_AREA)
    canvas = np.empty((height, width, 3), dtype=np.uint8)
    canvas[:] = np.round(MEAN_BGR).astype(np.uint8)
    canvas[:new_h, :new_w] = resized
    return canvas, scale


def to_model_input(image_bgr: np.ndarray) -> torch.Tensor:
    """(3, H, W) float RGB in [0, 1], as torchvision's detectors take it."""
    rgb = np.ascontiguousarray(image_bgr[:, :, ::-1])
    return torch.from_numpy(rgb).permute(2, 0, 1).float().div_(255.0)


class DetectionDataset(Dataset):
    """Letterboxed images; with ``boxes`` (training) also their boxes as corners in input
    pixels, padded. Training flips half the images left to right. ``images``: BGR decodes
    already in memory (the chain shares them with stage two)."""

    def __init__(self, cfg: CfgNode, paths: list[Path], boxes: list[np.ndarray] | None,
                 is_train: bool, images: list[np.ndarray] | None = None) -> None:  # fmt: skip
        self.paths = list(paths)
        self.boxes = boxes
        self.is_train = is_train
        self.images = images
        self.size = [int(v) for v in cfg.MODEL.IMAGE_SIZE]
        self.max_boxes = max((len(b) for b in boxes), default=0) if boxes is not None else 0
        self.jitter = float(cfg.MODEL.DETECTOR.SCALE_JITTER) if is_train else 0.0
        if not 0 <= self.jitter < 1:
            raise ConfigError(f"MODEL.DETECTOR.SCALE_JITTER must be at least 0 and below 1 (the "
                              f"zoom range [1 - j, 1 + j]), got {self.jitter}")
        self._cache: dict[int, tuple[np.ndarray, float, int, int]] = {}
        self._decoded: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.paths)

    def _letterboxed(self, index: int) -> tuple[np.ndarray, float, int, int]:
        # Training reads each image many times: keep the small letterboxed copy, not the decode.
        if index in self._cache:
            return self._cache[index]
        image = self.images[index] if self.images is not None else read_image(self.paths[index])
        canvas, scale = letterbox(image, self.size)
        item = (canvas, scale, image.shape[1], image.shape[0])
        if self.is_train:
            self._cache[index] = item
        return item

    def _jittered(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """The image zoomed around its letterbox scale and placed at random; its boxes as
        corners in input pixels, clipped, those mostly outside dropped."""
        if index not in self._decoded:
            self._decoded[index] = (self.images[index] if self.images is not None
                                    else read_image(self.paths[index]))  # fmt: skip
        image = self._decoded[index]
        width, height = self.size
        scale = min(width / image.shape[1], height / image.shape[0])
        scale *= np.random.uniform(1 - self.jitter, 1 + self.jitter)
        spare_x, spare_y = width - image.shape[1] * scale, height - image.shape[0] * scale
        offset = np.array([np.random.uniform(min(0, spare_x), max(0, spare_x)),
                           np.random.uniform(min(0, spare_y), max(0, spare_y))])  # fmt: skip
        matrix = np.array([[scale, 0, offset[0]], [0, scale, offset[1]]])
        canvas = cv2.warpAffine(image, matrix, (width, height), flags=cv2.INTER_AREA
                                if scale < 1 else cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                                borderValue=MEAN_BGR)  # fmt: skip
        real = self.boxes[index]
        corners = np.concatenate([real[:, :2], real[:, :2] + real[:, 2:]], 1) * scale
        corners += np.tile(offset, 2)
        clipped = corners.clip(0, [width, height, width, height])
        area = np.prod(corners[:, 2:] - corners[:, :2], axis=1)
        kept = np.prod(clipped[:, 2:] - clipped[:, :2], axis=1) >= MIN_VISIBLE * area
        return canvas, clipped[kept]

    def __getitem__(self, index: int):
        if self.boxes is None or not self.jitter:
            canvas, scale, width, height = self._letterboxed(index)
            meta = {"index": index, "scale": scale, "width": width, "height": height}
        if self.boxes is None:
            return to_model_input(canvas), meta
        if self.jitter:
            canvas, real = self._jittered(index)
            shown = self.size[0]  # the padding is anywhere: flip the whole canvas
            meta = {"index": index, "scale": 1.0, "width": shown, "height": self.size[1]}
        else:
            real = self.boxes[index]
            real = np.concatenate([real[:, :2], real[:, :2] + real[:, 2:]], 1) * scale
            shown = min(self.size[0], max(1, round(width * scale)))
        corners = np.zeros((self.max_boxes, 4), dtype=np.float32)
        corners[: len(real)] = real
        if self.is_train and np.random.random() < 0.5:  # the image part only: padding stays
            canvas = canvas.copy()
            canvas[:, :shown] = canvas[:, :shown][:, ::-1].copy()
            left = shown - corners[: len(real), 2]
            corners[: len(real), 2] = shown - corners[: len(real), 0]
            corners[: len(real), 0] = left
        meta["count"] = len(real)
        return to_model_input(canvas), torch.from_numpy(corners), meta


def targets_of(corners: torch.Tensor, counts: torch.Tensor, label: int) -> list[dict]:
    """torchvision's per-image targets from a padded batch of corners."""
    return [{"boxes": corners[i, : int(n)],
             "labels": torch.full((int(n),), label, dtype=torch.int64, device=corners.device)}
            for i, n in enumerate(counts)]  # fmt: skip
