"""Test-time scales and heatmap averaging (HRNet_keypoint/tta.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from common.config import get_defaults
from HRNet_keypoint.codecs import codec_for_config
from HRNet_keypoint.codecs.dark import dark_refine
from HRNet_keypoint.codecs.udp import udp_affine_transform
from HRNet_keypoint.engine import predict_boxes
from HRNet_keypoint.transforms import affine_transform, get_affine_transform
from HRNet_keypoint.tta import predict_boxes_tta, to_reference_frame

FACTORS = [0.9, 1.0, 1.1]


class BlobFinder(nn.Module):
    """A fixed 'model': the brightness of the crop, pooled to the heatmap stride, per joint
    (+2 lifts the normalised black, about -1.99, just above zero)."""

    def __init__(self, joints: int, stride: int = 4) -> None:
        super().__init__()
        self.joints = joints
        self.pool = nn.AvgPool2d(stride)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.pool(images.mean(dim=1, keepdim=True) + 2.0).repeat(1, self.joints, 1, 1)


def blob_images(points: np.ndarray, size=(200, 160)) -> list[np.ndarray]:
    """Black BGR images with one bright gaussian blob (sigma 5 px) at each point."""
    cols, rows = np.meshgrid(np.arange(size[0]), np.arange(size[1]))
    images = []
    for x, y in points:
        blob = 255 * np.exp(-((cols - x) ** 2 + (rows - y) ** 2) / (2 * 5.0**2))
        images.append(np.repeat(blob[:, :, None], 3, axis=2).round().astype(np.uint8))
    return images


def tiny_cfg(scales, udp=False, decode="dark"):
    cfg = get_defaults()
    cfg.MODEL.NUM_JOINTS = 24
    cfg.MODEL.IMAGE_SIZE, cfg.MODEL.HEATMAP_SIZE, cfg.MODEL.SIGMA = [48, 64], [12, 16], 1
    cfg.TEST.SCALES, cfg.MODEL.UDP, cfg.TEST.DECODE = scales, udp, decode
    cfg.TEST.FLIP_TEST, cfg.TEST.POST_PROCESS, cfg.TEST.SHIFT_HEATMAP = True, True, True
    cfg.WORKERS, cfg.TEST.BATCH_SIZE_PER_GPU = 0, 4
    return cfg


@pytest.mark.parametrize("udp", [False, True])
def test_a_peak_warped_from_every_scale_lands_on_the_same_image_point(udp: bool) -> None:
    size, sigma = (24, 32), 1.5
    center, scale = np.array([[120.0, 90.0]]), np.array([[0.9, 1.2]], dtype=np.float32)
    point = np.array([131.3, 77.8])
    make = udp_affine_transform if udp else get_affine_transform
    cols, rows = np.meshgrid(np.arange(size[0]), np.arange(size[1]))
    found = []
    for factor in FACTORS:
        cell = affine_transform(point, make(center[0], scale[0] * np.float32(factor), 0, size))
        maps = np.exp(-((cols - cell[0]) ** 2 + (rows - cell[1]) ** 2) / (2 * sigma**2))
        maps = np.repeat(maps[None, None], 2, axis=1).astype(np.float32)
        codec = codec_for_config(tiny_cfg([1.0], udp))
        warped, coverage = to_reference_frame(maps, center, scale, factor, codec)
        assert coverage.shape == (1, 1, 32, 24) and coverage.max() == pytest.approx(1.0)
        peak = np.array(np.unravel_index(np.argmax(warped[0, 0]), warped[0, 0].shape))[::-1]
        refined = dark_refine(warped, np.broadcast_to(peak, (1, 2, 2)).astype(np.float32), 2.0)
        found.append(affine_transform(refined[0, 0], make(center[0], scale[0], 0, size, inv=True)))
    np.testing.assert_allclose(np.array(found), np.broadcast_to(point, (3, 2)), atol=0.6)


def test_scales_one_is_the_plain_prediction_bit_for_bit() -> None:
    points = np.array([[90.0, 70.0], [110.5, 85.2]])
    images = blob_images(points)
    boxes = np.array([[60.0, 40.0, 60.0, 80.0], [80.0, 50.0, 55.0, 75.0]])
    paths = [f"image{i}.png" for i in range(2)]
    model = BlobFinder(24)
    for decode in ("quarter", "dark"):
        cfg = tiny_cfg([1.0], decode=decode)
        plain = predict_boxes(model, cfg, paths, boxes, torch.device("cpu"), images=images)
        tta, _ = predict_boxes_tta([model], cfg, paths, boxes, torch.device("cpu"), images=images)
        np.testing.assert_array_equal(tta, plain)


@pytest.mark.parametrize("udp", [False, True])
def test_three_scales_find_the_blob_where_one_scale_does(udp: bool) -> None:
    points = np.array([[90.0, 70.0], [110.5, 85.2], [97.3, 92.6]])
    images = blob_images(points)
    boxes = np.array([[60.0, 40.0, 60.0, 80.0], [80.0, 50.0, 55.0, 75.0], [70, 60, 50, 70]])
    paths = [f"image{i}.png" for i in range(3)]
    device = torch.device("cpu")
    one = predict_boxes(BlobFinder(24), tiny_cfg([1.0], udp), paths, boxes, device, images)
    three = predict_boxes(BlobFinder(24), tiny_cfg(FACTORS, udp), paths, boxes, device, images)
    assert not np.array_equal(one, three)  # the engine took the multi-scale path
    # Pooling by 4 puts each cell's centre 1.5 input pixels off the crop's grid, so the blob is
    # found about 2 px off by any scale; the scales must agree much more closely than that.
    assert np.abs(one - points[:, None, :]).max() < 3.0
    assert np.abs(three - one).max() < 0.25  # without the warp: 2 px


def test_bad_scales_are_refused() -> None:
    cfg = tiny_cfg([0.0, 1.0])
    image = np.zeros((50, 50, 3), np.uint8)
    with pytest.raises(ValueError, match="TEST.SCALES must be positive"):
        predict_boxes_tta([BlobFinder(24)], cfg, ["a.png"], np.array([[5.0, 5, 20, 20]]),
                          torch.device("cpu"), images=[image])  # fmt: skip
