"""Reduced-resolution decoding for the training input: the right factor, the right geometry.

A crop read from a 1/2^k decode must show the same place as the crop from the whole image:
the tests compare both against a crop shifted by one input pixel, which is what a geometry
mistake would look like.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from common.config import get_defaults
from common.io import read_image, read_image_at_least, reduce_factor
from common.keypoints import MOTION_FLIP_PAIRS, MOTION_LOWER_BODY, MOTION_UPPER_BODY
from HRNet_bbox.dataset import WholeImageBoxDataset
from HRNet_keypoint.dataset import KeypointDataset, crop_image

WIDTH, HEIGHT = 1280, 960
IMAGE_SIZE = [48, 64]  # a small input: a person box of ~500 px allows a 1/4 decode or more
# Mean absolute difference (ImageNet-normalised units) between crops of this test's image one
# input pixel apart, measured by test_crop_from_a_reduced_decode_shows_the_same_place.
MISPLACED_NORMALISED = 0.36  # 21 grey levels; the reduced decode's crops differ by 4


@pytest.fixture(scope="module")
def textured_jpeg(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Blobs and edges at several scales, so that any misplacement changes the crop."""
    rng = np.random.default_rng(3)
    image = cv2.resize(rng.integers(0, 256, (24, 32, 3), dtype=np.uint8), (WIDTH, HEIGHT),
                       interpolation=cv2.INTER_CUBIC)  # fmt: skip
    for _ in range(60):
        centre = (int(rng.integers(0, WIDTH)), int(rng.integers(0, HEIGHT)))
        colour = [int(c) for c in rng.integers(0, 256, 3)]
        cv2.circle(image, centre, int(rng.integers(15, 60)), colour, -1)
    path = tmp_path_factory.mktemp("reduced") / "frame.jpg"
    cv2.imwrite(str(path), image, [cv2.IMWRITE_JPEG_QUALITY, 95])
    return path


def test_reduce_factor_keeps_one_decoded_pixel_per_input_pixel() -> None:
    assert reduce_factor((1920, 1080), (192, 256)) == 4  # 480x270 still covers 192x256
    assert reduce_factor((1920, 1080), (288, 384)) == 2
    assert reduce_factor((1920, 1080), (100, 100)) == 8
    assert reduce_factor((320, 180), (192, 256)) == 1
    assert reduce_factor((1920, 1080), (1000, 100)) == 1


def test_reduced_decode_maps_back_to_original_pixels(textured_jpeg: Path) -> None:
    full = read_image(textured_jpeg)
    image, to_original = read_image_at_least(textured_jpeg, (WIDTH, HEIGHT), (300, 200))
    assert image.shape == (HEIGHT // 4, WIDTH // 4, 3)
    np.testing.assert_allclose(to_original, [[4, 0, 1.5], [0, 4, 1.5]])
    # A decoded pixel is the mean of the 4x4 original pixels it covers.
    blocks = full.reshape(HEIGHT // 4, 4, WIDTH // 4, 4, 3).mean(axis=(1, 3))
    assert np.abs(blocks - image).mean() < 2.0

    whole, identity = read_image_at_least(textured_jpeg, (WIDTH, HEIGHT), (WIDTH, HEIGHT))
    assert whole.shape == full.shape
    np.testing.assert_array_equal(identity, [[1, 0, 0], [0, 1, 0]])


def _mean_abs(a: np.ndarray | torch.Tensor, b: np.ndarray | torch.Tensor) -> float:
    return float(np.abs(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)).mean())


def test_crop_from_a_reduced_decode_shows_the_same_place(textured_jpeg: Path) -> None:
    full = read_image(textured_jpeg)
    center, scale = np.array([700.0, 420.0]), np.array([2.4, 3.2])  # 480x640 px -> 48x64
    image, to_original = read_image_at_least(
        textured_jpeg, (WIDTH, HEIGHT), np.array([WIDTH, HEIGHT]) * 48 / 480
    )
    assert image.shape[0] == HEIGHT // 8
    for rotation in (0.0, 30.0):
        reference, matrix = crop_image(full, center, scale, rotation, IMAGE_SIZE)
        reduced, reduced_matrix = crop_image(image, center, scale, rotation, IMAGE_SIZE,
                                             to_original)  # fmt: skip
        np.testing.assert_array_equal(matrix, reduced_matrix)  # geometry in original pixels
        shifted, _ = crop_image(full, center + [10.0, 0.0], scale, rotation, IMAGE_SIZE)
        misplaced = _mean_abs(reference, shifted)  # one input pixel is 10 original pixels
        assert _mean_abs(reference, reduced) < 0.35 * misplaced


def _keypoint_dataset(path: Path, reduced: bool) -> KeypointDataset:
    cfg = get_defaults()
    cfg.MODEL.IMAGE_SIZE = IMAGE_SIZE
    cfg.MODEL.HEATMAP_SIZE = [12, 16]
    cfg.MODEL.NUM_JOINTS = 24
    cfg.DATASET.SCALE_FACTOR = 0.3
    cfg.DATASET.ROT_FACTOR = 30
    rng = np.random.default_rng(5)
    keypoints = np.stack([rng.uniform(300, 600, 24), rng.uniform(250, 750, 24)], axis=-1)
    return KeypointDataset(cfg, [path], keypoints[None], True, MOTION_FLIP_PAIRS,
                           MOTION_UPPER_BODY, MOTION_LOWER_BODY,
                           reduced_decode=reduced)  # fmt: skip


def test_training_crops_with_reduced_decode_match_full_decode(textured_jpeg: Path) -> None:
    """Same seed: the same augmentation (mirror included), the same targets, and crops of the
    same place; the decode is reduced because the crop is much smaller than the image."""
    full_set = _keypoint_dataset(textured_jpeg, reduced=False)
    reduced_set = _keypoint_dataset(textured_jpeg, reduced=True)
    assert reduced_set._load_reduced(0, (WIDTH, HEIGHT), np.array([1.9, 2.5]))[0].shape[0] < HEIGHT
    mirrored = 0
    for seed in range(8):
        torch.manual_seed(seed)
        crop, target, weight, meta = full_set[0]
        torch.manual_seed(seed)
        crop_r, target_r, weight_r, meta_r = reduced_set[0]
        torch.testing.assert_close(target, target_r)
        torch.testing.assert_close(weight, weight_r)
        torch.testing.assert_close(meta["center"], meta_r["center"])
        mirrored += int(meta["center"][0] > WIDTH / 2)  # unmirrored, the box is on the left
        assert _mean_abs(crop, crop_r) < MISPLACED_NORMALISED / 3
    assert 0 < mirrored < 8  # both kinds of sample were compared


def test_box_dataset_reduced_decode_keeps_targets_and_sizes(textured_jpeg: Path) -> None:
    cfg = get_defaults()
    cfg.MODEL.IMAGE_SIZE = [96, 128]
    cfg.MODEL.HEATMAP_SIZE = [24, 32]
    box = np.array([[400.0, 200.0, 300.0, 500.0]])
    full = WholeImageBoxDataset(cfg, [textured_jpeg], box, is_train=False)
    reduced = WholeImageBoxDataset(cfg, [textured_jpeg], box, is_train=False,
                                   reduced_decode=True)  # fmt: skip
    image, target, meta = full[0]
    image_r, target_r, meta_r = reduced[0]
    assert reduced._load(0)[0].shape[0] == HEIGHT // 4  # 320x240 still covers 96x128
    assert (meta_r["width"], meta_r["height"]) == (WIDTH, HEIGHT) == (meta["width"], meta["height"])
    torch.testing.assert_close(target, target_r, atol=1e-4, rtol=0)
    assert _mean_abs(image, image_r) < 0.1  # normalised units: about 6 grey levels of 255
