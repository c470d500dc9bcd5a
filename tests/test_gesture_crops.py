"""Keypoint crops: margins, the extra bottom margin, scaling with width, clipping."""

from __future__ import annotations

import random

import numpy as np
import torch

from common.gesture.crops import CropMargins, build_transform, crop_box, crop_image, to_model_input

REFERENCE = CropMargins(margin=50, bottom_margin=100, extra_margin=50, random_prob=0.5,
                        reference_width=1920)  # fmt: skip
POINTS = np.array([[800.0, 400.0], [900.0, 300.0], [1000.0, 500.0]])


def test_evaluation_crop_is_the_reference_test_crop() -> None:
    # extent 800..1000 x 300..500; -100/+100 each side, +200 at the bottom
    assert crop_box(POINTS, 1920, 1080, REFERENCE) == (700, 200, 1100, 700)


def test_margins_scale_with_width_and_clip_to_image() -> None:
    small = POINTS / 4.0  # the same scene at 480x270
    assert crop_box(small, 480, 270, REFERENCE) == (175, 50, 275, 175)
    near_edge = np.array([[5.0, 10.0], [60.0, 250.0]])
    assert crop_box(near_edge, 480, 270, REFERENCE) == (0, 0, 85, 270)
    outside = np.array([[-500.0, -500.0], [-400.0, -450.0]])
    assert crop_box(outside, 480, 270, REFERENCE) == (0, 0, 480, 270)  # empty: whole image


def test_training_margins_vary_between_the_two_extremes() -> None:
    rng = random.Random(0)
    boxes = {crop_box(POINTS, 1920, 1080, REFERENCE, rng) for _ in range(200)}
    assert len(boxes) == 16  # each side with or without its extra margin
    assert min(b[0] for b in boxes) == 700 and max(b[0] for b in boxes) == 750
    assert min(b[3] for b in boxes) == 650 and max(b[3] for b in boxes) == 700


def test_crop_and_transform_shapes() -> None:
    image = np.zeros((1080, 1920, 3), np.uint8)
    image[200:700, 700:1100] = 255
    crop = crop_image(image, POINTS, REFERENCE)
    assert crop.shape == (500, 400, 3) and crop.min() == 255
    assert crop_image(image, None, REFERENCE).shape == image.shape
    tensor = to_model_input(crop, build_transform(32, train=True, augment=True))
    assert tensor.shape == (3, 32, 32) and tensor.dtype == torch.float32
    plain = to_model_input(crop, build_transform(32, train=False, augment=True))
    assert torch.allclose(plain, torch.full_like(plain, 1.0) * plain[:, :1, :1])  # uniform white
