"""Stage one's data set: the augmentation fallback, seeded items, the colour order."""

from __future__ import annotations

from pathlib import Path

import albumentations as A
import numpy as np
import pytest
import torch

from common.boxes import keypoint_extent_boxes
from common.stage_data import load_training_table
from HRNet_bbox.dataset import (
    BOX_LABEL,
    WholeImageBoxDataset,
    build_transforms,
    transform_with_fallback,
)
from tests.bbox_setup import tiny_cfg


def test_augmentation_falls_back_when_the_box_is_dropped() -> None:
    image = np.random.default_rng(0).integers(0, 255, (60, 80, 3), dtype=np.uint8)
    box = np.array([50.0, 30.0, 20.0, 20.0])
    params = A.BboxParams(format="coco", min_visibility=0.05, label_fields=["labels"])
    plain = A.Compose([A.Resize(height=32, width=64)], bbox_params=params)
    loses_box = A.Compose([A.Resize(height=32, width=64),
                           A.Crop(x_min=0, y_min=0, x_max=16, y_max=16)], bbox_params=params)
    keeps_box = A.Compose([A.Resize(height=32, width=64), A.HorizontalFlip(p=1.0)],
                          bbox_params=params)
    out, out_box, fell_back = transform_with_fallback(loses_box, plain, image, box, seed=1)
    expected = plain(image=image, bboxes=[list(box)], labels=[BOX_LABEL])
    assert fell_back
    assert out.shape == (32, 64, 3) and np.array_equal(out, expected["image"])
    np.testing.assert_allclose(out_box, [40.0, 16.0, 16.0, 32 * 20 / 60], rtol=1e-6)
    out, out_box, fell_back = transform_with_fallback(keeps_box, plain, image, box, seed=1)
    assert not fell_back
    np.testing.assert_allclose(out_box, [64 - 40.0 - 16.0, 16.0, 16.0, 32 * 20 / 60], rtol=1e-6)


@pytest.mark.parametrize("augmentation", ["reference", "mild"])
def test_training_items_are_seeded_and_boxes_stay_valid(synthetic_root: Path,
                                                        augmentation: str) -> None:
    cfg = tiny_cfg("pooled", root=synthetic_root)
    cfg.DATASET.BBOX_AUG = augmentation
    table = load_training_table(cfg)
    dataset = WholeImageBoxDataset(cfg, table.paths, keypoint_extent_boxes(table.keypoints),
                                   is_train=True)
    items = []
    for _ in range(2):
        torch.manual_seed(5)
        items.append([dataset[i] for i in range(len(dataset))])
    for (x1, t1, _), (x2, t2, meta) in zip(*items, strict=True):
        assert torch.equal(x1, x2) and torch.equal(t1, t2)
        assert x1.shape == (3, 32, 64)
        assert meta["width"] == 128 and meta["height"] == 72
        assert (t1[2:] > t1[:2]).all() and (t1 >= 0).all() and (t1 <= 1).all()
    cfg.DATASET.BBOX_AUG = "heavy"
    with pytest.raises(ValueError, match="BBOX_AUG"):
        build_transforms(cfg, is_train=True)


def test_colour_order_follows_the_config(synthetic_root: Path) -> None:
    cfg = tiny_cfg(root=synthetic_root)
    path = load_training_table(cfg).paths[0]
    bgr = WholeImageBoxDataset(cfg, [path], None, is_train=False)[0][0]
    cfg.DATASET.COLOR_RGB = True
    rgb = WholeImageBoxDataset(cfg, [path], None, is_train=False)[0][0]
    mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
    pixels_bgr = bgr.numpy() * std[:, None, None] + mean[:, None, None]
    pixels_rgb = rgb.numpy() * std[:, None, None] + mean[:, None, None]
    np.testing.assert_allclose(pixels_rgb, pixels_bgr[::-1], atol=1e-5)
    assert not np.allclose(pixels_bgr[0], pixels_bgr[2], atol=0.05)
