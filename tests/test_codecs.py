"""The codecs of HRNet_keypoint/codecs/ (DARK, UDP, the registry) against analytic heatmaps."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from common.config import get_defaults
from HRNet_keypoint.codecs import codec_for_config
from HRNet_keypoint.codecs.base import get_max_preds
from HRNet_keypoint.codecs.dark import dark_refine
from HRNet_keypoint.codecs.udp import udp_affine_transform
from HRNet_keypoint.dataset import crop_image
from HRNet_keypoint.inference import predict_heatmaps, predict_keypoints
from HRNet_keypoint.transforms import affine_transform, get_affine_transform

WIDTH, HEIGHT = 24, 32


def codec(name: str, sigma: float = 2.0, decode: str = "quarter", image=(96, 128),
          heatmap=(24, 32)):  # fmt: skip
    cfg = get_defaults()
    cfg.MODEL.CODEC, cfg.TEST.DECODE, cfg.MODEL.SIGMA = name, decode, sigma
    cfg.MODEL.IMAGE_SIZE, cfg.MODEL.HEATMAP_SIZE = list(image), list(heatmap)
    return codec_for_config(cfg)


def udp_transform_preds(coords, center, scale, heatmap_size):
    return affine_transform(coords, udp_affine_transform(center, scale, 0, heatmap_size, inv=True))


def gaussian_maps(peaks: np.ndarray, sigma: float, size=(WIDTH, HEIGHT)) -> np.ndarray:
    """(1, J, H, W) gaussians with peak 1 at the sub-pixel positions ``peaks`` (J, 2)."""
    cols = np.arange(size[0])[None, None, :]
    rows = np.arange(size[1])[None, :, None]
    px, py = peaks[:, 0, None, None], peaks[:, 1, None, None]
    maps = np.exp(-((cols - px) ** 2 + (rows - py) ** 2) / (2 * sigma**2))
    return maps[None].astype(np.float32)


@pytest.mark.parametrize("sigma", [1.0, 2.0, 3.0])
def test_dark_recovers_a_sub_pixel_peak_within_two_hundredths_of_a_cell(sigma: float) -> None:
    rng = np.random.default_rng(0)
    peaks = np.column_stack([rng.uniform(7, WIDTH - 8, 20), rng.uniform(7, HEIGHT - 8, 20)])
    heatmaps = gaussian_maps(peaks, sigma)
    coords, _ = get_max_preds(heatmaps)
    refined = dark_refine(heatmaps, coords, sigma)
    assert np.abs(refined[0] - peaks).max() < 0.02
    assert np.abs(refined[0] - peaks).max() < np.abs(coords[0] - peaks).max() / 5


def test_dark_at_borders_and_on_flat_maps_keeps_the_integer_cell_where_it_cannot_step() -> None:
    sigma = 2.0
    peaks = np.array([[0.0, 10.3], [WIDTH - 1.0, 20.6], [12.4, 0.0]])
    heatmaps = gaussian_maps(peaks, sigma)
    flat = np.full((1, 2, HEIGHT, WIDTH), 0.5, dtype=np.float32)
    flat[0, 1] = 0.0  # an empty map: argmax at the origin, maxval 0
    coords, _ = get_max_preds(np.concatenate([heatmaps, flat], axis=1))
    refined = dark_refine(np.concatenate([heatmaps, flat], axis=1), coords, sigma)
    # x on the left/right border stays; y (with both neighbours) is refined, and vice versa.
    assert refined[0, 0, 0] == 0.0 and abs(refined[0, 0, 1] - 10.3) < 0.1
    assert refined[0, 1, 0] == WIDTH - 1 and abs(refined[0, 1, 1] - 20.6) < 0.1
    assert refined[0, 2, 1] == 0.0 and abs(refined[0, 2, 0] - 12.4) < 0.1
    np.testing.assert_array_equal(refined[0, 3:], coords[0, 3:])
    assert np.isfinite(refined).all()


def test_dark_on_a_plateau_and_a_ridge() -> None:
    heatmaps = np.zeros((1, 1, HEIGHT, WIDTH), dtype=np.float32)
    heatmaps[0, 0, 10, 10] = 1.0
    heatmaps[0, 0, 10, 11] = 1.0  # a plateau of two cells after smoothing is still concave
    heatmaps[0, 0, 5, :] = 0.9  # a ridge elsewhere does not disturb the peak
    coords, _ = get_max_preds(heatmaps)
    refined = dark_refine(heatmaps, coords, 1.0)
    assert abs(refined[0, 0, 0] - 10.5) < 0.05 and abs(refined[0, 0, 1] - 10) < 0.05
    ridge = np.zeros((1, 1, HEIGHT, WIDTH), dtype=np.float32)
    ridge[0, 0, 12, :] = 1.0  # constant along x: no curvature in x, no step
    coords, _ = get_max_preds(ridge)
    np.testing.assert_array_equal(dark_refine(ridge, coords, 1.0), coords)


def test_udp_affine_maps_pixel_centres_and_matches_the_official_linear_part() -> None:
    center, scale, size = np.array([100.0, 80.0]), np.array([0.6, 0.8]), (48, 64)
    matrix = udp_affine_transform(center, scale, 0, size)
    corner = center - np.array([60.0, 80.0])  # the box's top-left corner: 0.6 x 0.8 * 200 / 2
    np.testing.assert_allclose(affine_transform(center, matrix), [23.5, 31.5])
    np.testing.assert_allclose(affine_transform(corner, matrix), [0.0, 0.0], atol=1e-9)
    for rotation in (0.0, 17.0, -30.0):
        # Where the box's aspect is the output's, the official map to size - 1 has the same
        # linear part (the official one is isotropic).
        official = get_affine_transform(center, scale, rotation, (size[0] - 1, size[1] - 1))
        udp = udp_affine_transform(center, np.array([0.6, 0.6 * 63 / 47]), rotation, size)
        np.testing.assert_allclose(udp[:, :2], official[:, :2], atol=1e-5)
        udp = udp_affine_transform(center, scale, rotation, size)
        inverse = udp_affine_transform(center, scale, rotation, size, inv=True)
        np.testing.assert_allclose(affine_transform(affine_transform(corner, udp), inverse),
                                   corner, atol=1e-9)  # fmt: skip


def test_udp_heatmap_map_is_the_input_map_followed_by_the_stride() -> None:
    center, scale = np.array([210.0, 150.0]), np.array([1.2, 1.6], dtype=np.float32)
    points = np.array([[180.0, 120.0], [251.3, 77.7]])
    image_size, heatmap_size = (96, 128), (24, 32)
    to_input = affine_transform(points, udp_affine_transform(center, scale, 0, image_size))
    stride = (np.array(image_size) - 1.0) / (np.array(heatmap_size) - 1.0)
    direct = affine_transform(points, udp_affine_transform(center, scale, 0, heatmap_size))
    np.testing.assert_allclose(to_input / stride, direct, atol=1e-9)
    np.testing.assert_allclose(udp_transform_preds(direct, center, scale, heatmap_size), points,
                               atol=1e-9)  # fmt: skip


def test_udp_flip_is_exact() -> None:
    """Mirroring the image (x -> width - 1 - x, center likewise) mirrors the crop exactly."""
    rng = np.random.default_rng(1)
    image = rng.integers(0, 255, (60, 90, 3), dtype=np.uint8)
    center, scale, size = np.array([40.0, 30.0], dtype=np.float32), np.array([0.3, 0.4]), (24, 32)
    crop, _ = crop_image(image, center, scale, 0.0, size, crop_matrix=udp_affine_transform)
    mirrored_center = np.array([90 - 1 - center[0], center[1]], dtype=np.float32)
    mirrored, _ = crop_image(image[:, ::-1], mirrored_center, scale, 0.0, size,
                             crop_matrix=udp_affine_transform)  # fmt: skip
    np.testing.assert_array_equal(mirrored[:, ::-1], crop)


@pytest.mark.parametrize("method", ["quarter", "dark"])
def test_udp_round_trip_encodes_and_decodes_the_same_point(method: str) -> None:
    image_size, heatmap_size, sigma = (96, 128), (24, 32), 2.0
    center, scale = np.array([310.0, 200.0]), np.array([1.2, 1.6])
    rng = np.random.default_rng(2)
    points = np.column_stack([rng.uniform(270, 350, 12), rng.uniform(130, 270, 12)])
    to_input = udp_affine_transform(center, scale, 0, image_size)
    udp = codec("udp", sigma, method, image_size, heatmap_size)
    target, weight = udp.encode(affine_transform(points, to_input), np.ones(12))
    assert target.shape == (12, 32, 24) and (weight == 1).all()
    udp.post_process = True
    preds, _ = udp.decode(target[None], center[None], scale[None])
    error = np.abs(preds[0] - points).max() / (1.2 * 200 / 23)  # in heatmap cells
    # The target is cut at 3 sigma around the nearest cell, which biases DARK a little.
    assert error < (0.07 if method == "dark" else 0.5)


def test_udp_targets_outside_the_map_get_weight_zero_and_invisible_an_empty_map() -> None:
    joints = np.array([[50.0, 60.0], [-500.0, 60.0], [50.0, 60.0]])
    target, weight = codec("udp").encode(joints, np.array([1.0, 1.0, 0.0]))
    assert weight.ravel().tolist() == [1.0, 0.0, 0.0]
    assert target[0].max() > 0.9 and target[1].max() == 0 and target[2].max() == 0


def test_predict_keypoints_with_dark_and_udp_runs_the_configured_decoding() -> None:
    cfg = get_defaults()
    cfg.TEST.FLIP_TEST, cfg.TEST.SHIFT_HEATMAP = True, True
    cfg.TEST.DECODE, cfg.MODEL.UDP, cfg.MODEL.SIGMA = "dark", True, 2
    model = torch.nn.Conv2d(3, 2, 1)
    images = torch.randn(2, 3, 16, 12)
    centers, scales = np.array([[50.0, 60.0]] * 2), np.array([[0.3, 0.4]] * 2)
    coords, _ = predict_keypoints(model, images, centers, scales, cfg, [(0, 1)])
    heatmaps = predict_heatmaps(model, images, True, [(0, 1)], shift_heatmap=False)
    want, _ = codec("udp", 2.0, "dark").decode(heatmaps.numpy(), centers, scales)
    np.testing.assert_array_equal(coords, want)
    # UDP decoding inverts the UDP map: the heatmap's centre cell is the box centre.
    np.testing.assert_allclose(udp_transform_preds(np.array([[1.0, 1.5]]), centers[0], scales[0],
                                                   (3, 4)), centers[:1], atol=1e-9)  # fmt: skip
