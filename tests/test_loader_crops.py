"""A mirrored training crop read through the mirror (no copy of the decode) against the
official crop of the mirrored copy: within one grey level, whole and reduced decodes."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from common.io import read_image_at_least
from HRNet_keypoint.dataset import crop_image
from HRNet_keypoint.transforms import get_affine_transform

SIZE = (96, 128)


def smooth_image(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """A textured BGR image: noise blurred, so that bilinear weights matter."""
    noise = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    return cv2.GaussianBlur(noise, (0, 0), 2.0)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_mirror_through_the_warp_is_the_official_flip_within_one_level(seed):
    rng = np.random.default_rng(seed)
    image = smooth_image(rng, 400, 300)
    for _ in range(20):
        center = rng.uniform([40, 30], [360, 270]).astype(np.float32)
        scale = (rng.uniform(0.5, 2.0) * np.array([0.75, 1.0])).astype(np.float32)
        rotation = float(rng.uniform(-60, 60))
        official, matrix = crop_image(image[:, ::-1], center, scale, rotation, SIZE)
        ours, same = crop_image(image, center, scale, rotation, SIZE, mirror=True)
        assert np.array_equal(matrix, same)
        diff = np.abs(official.astype(int) - ours.astype(int))
        assert diff.max() <= 1
        assert (diff > 0).mean() < 0.05  # rounding, not another crop
    unmirrored, _ = crop_image(image, center, scale, rotation, SIZE)
    assert np.abs(unmirrored.astype(int) - ours.astype(int)).max() > 10  # it does mirror


def test_mirror_of_a_reduced_decode(tmp_path):
    rng = np.random.default_rng(5)
    path = tmp_path / "image.jpg"
    cv2.imwrite(str(path), smooth_image(rng, 800, 600), [cv2.IMWRITE_JPEG_QUALITY, 95])
    reduced, to_original = read_image_at_least(path, (800, 600), (200, 150))
    assert reduced.shape[1] == 200
    center, scale = np.array([420.0, 310.0], np.float32), np.array([3.0, 4.0], np.float32)
    official, _ = crop_image(reduced[:, ::-1], center, scale, 10.0, SIZE, to_original)
    ours, _ = crop_image(reduced, center, scale, 10.0, SIZE, to_original, get_affine_transform,
                         mirror=True)  # fmt: skip
    assert np.abs(official.astype(int) - ours.astype(int)).max() <= 1
