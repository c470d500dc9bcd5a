"""Stage one's codec: box post-processing, each image's own size, targets in the head's units
and the reference loss scaling."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from common.boxes import keypoint_extent_boxes
from common.stage_data import load_training_table
from HRNet_bbox import engine
from HRNet_bbox.codec import loss_weights, sanitize_boxes_xyxy
from HRNet_bbox.dataset import (
    WholeImageBoxDataset,
)
from tests.bbox_setup import ConstantCorners, tiny_cfg


def test_sanitize_clips_sorts_and_keeps_boxes_positive() -> None:
    sizes = np.array([[100, 50]] * 6)
    corners = np.array([
        [-20.0, -5.0, 130.0, 70.0],  # outside on every side
        [80.0, 40.0, 20.0, 10.0],  # inverted
        [30.0, 20.0, 30.0, 20.0],  # zero size
        [150.0, 60.0, 170.0, 90.0],  # wholly outside (bottom right)
        [-9.0, -9.0, -3.0, -2.0],  # wholly outside (top left)
        [10.0, 10.0, 60.0, 30.0],  # fine: unchanged
    ])
    boxes = sanitize_boxes_xyxy(corners, sizes)
    np.testing.assert_allclose(boxes[0], [0, 0, 99, 49])
    np.testing.assert_allclose(boxes[1], [20, 10, 60, 30])
    np.testing.assert_allclose(boxes[2], [29.5, 19.5, 1, 1])
    np.testing.assert_allclose(boxes[3], [98, 48, 1, 1])
    np.testing.assert_allclose(boxes[4], [0, 0, 1, 1])
    np.testing.assert_allclose(boxes[5], [10, 10, 50, 20])
    assert (boxes[:, 2:] >= 1).all()
    assert (boxes[:, :2] >= 0).all() and (boxes[:, :2] + boxes[:, 2:] <= sizes - 1).all()
    with pytest.raises(ValueError, match="not finite"):
        sanitize_boxes_xyxy(np.array([[0.0, np.nan, 3.0, 3.0]]), np.array([[10, 10]]))


def test_predictions_use_each_images_own_size() -> None:
    cfg = tiny_cfg("pooled")
    images = [np.zeros((50, 100, 3), np.uint8), np.zeros((300, 400, 3), np.uint8)]
    model = ConstantCorners([0.25, 0.5, 0.75, 1.2])
    boxes = engine.predict_boxes_xywh(model, cfg, [Path("a.jpg"), Path("b.jpg")],
                                      torch.device("cpu"), images=images)
    np.testing.assert_allclose(boxes[0], [25, 25, 50, 24])  # bottom clipped to pixel 49
    np.testing.assert_allclose(boxes[1], [100, 150, 200, 149])


@pytest.mark.parametrize("head", ["reference", "pooled"])
def test_targets_are_in_the_heads_units(synthetic_root: Path, head: str) -> None:
    cfg = tiny_cfg(head, (64, 32), root=synthetic_root)
    table = load_training_table(cfg)
    boxes = keypoint_extent_boxes(table.keypoints)
    dataset = WholeImageBoxDataset(cfg, table.paths, boxes, is_train=False)
    _, target, meta = dataset[0]
    x, y, w, h = boxes[0]
    corners = np.array([x / 128, y / 72, (x + w) / 128, (y + h) / 72])
    unit = np.array([64, 32, 64, 32]) if head == "reference" else np.ones(4)
    np.testing.assert_allclose(target.numpy(), corners * unit, rtol=1e-5)


def test_reference_loss_scaling() -> None:
    cfg = tiny_cfg("reference", (384, 288))
    meta = {"width": torch.tensor([1920]), "height": torch.tensor([1080])}
    cfg.INPUT_SIZE = 288  # the reference: x by 1920/288, y by 1080/288
    np.testing.assert_allclose(loss_weights(cfg, meta).numpy()[0],
                               [1920 / 288, 3.75, 1920 / 288, 3.75], rtol=1e-6)
    cfg.INPUT_SIZE = 0  # true original pixels
    np.testing.assert_allclose(loss_weights(cfg, meta).numpy()[0], [5, 3.75, 5, 3.75],
                               rtol=1e-6)
