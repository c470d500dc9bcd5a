"""DARK as published (HRNet_keypoint/codecs/dark.py): the decoding brings a maximum displaced by a
second bump and noise back to the analytic peak, and the targets are sub-pixel."""

from __future__ import annotations

import numpy as np
import pytest

from common.config import get_defaults
from HRNet_keypoint.codecs import codec_for_config
from HRNet_keypoint.codecs.base import get_max_preds
from HRNet_keypoint.codecs.dark import dark_refine
from HRNet_keypoint.transforms import affine_transform, get_affine_transform

WIDTH, HEIGHT = 48, 64


def gaussian(peak: np.ndarray, sigma: float, amplitude: float = 1.0) -> np.ndarray:
    cols, rows = np.arange(WIDTH)[None, :], np.arange(HEIGHT)[:, None]
    return amplitude * np.exp(-((cols - peak[0]) ** 2 + (rows - peak[1]) ** 2) / (2 * sigma**2))


def bumped_maps(sigma: float, rng: np.random.Generator, count: int, place_bump) -> tuple:
    """(1, count, H, W) maps: a gaussian of ``sigma`` at a random sub-pixel peak, a narrow second
    bump (sigma 0.3-0.5 cells) from ``place_bump(peak) -> (centre, amplitude, bump sigma)`` and
    gaussian noise (sd 0.005); and the analytic peaks (count, 2)."""
    peaks = np.column_stack([rng.uniform(12, WIDTH - 12, count),
                             rng.uniform(12, HEIGHT - 12, count)])  # fmt: skip
    maps = []
    for peak in peaks:
        centre, amplitude, bump_sigma = place_bump(peak)
        noise = rng.normal(0.0, 0.005, (HEIGHT, WIDTH))
        maps.append(gaussian(peak, sigma) + gaussian(centre, bump_sigma, amplitude) + noise)
    return np.asarray(maps, dtype=np.float32)[None], peaks


def random_direction(rng: np.random.Generator) -> np.ndarray:
    angle = rng.uniform(0, 2 * np.pi)
    return np.array([np.cos(angle), np.sin(angle)])


@pytest.mark.parametrize("sigma", [1.0, 2.0, 3.0])
def test_dark_finds_the_peak_under_a_second_bump_up_to_two_cells_away_and_noise(
    sigma: float,
) -> None:
    rng = np.random.default_rng(int(sigma * 10))

    def bump(peak: np.ndarray):  # a tenth of the peak's height, anywhere within two cells
        return peak + rng.uniform(0, 2) * random_direction(rng), 0.1, 0.5

    maps, peaks = bumped_maps(sigma, rng, 100, bump)
    coords, _ = get_max_preds(maps)
    refined = dark_refine(maps, coords, sigma)
    assert np.abs(refined[0] - peaks).max() < 0.05
    assert np.abs(coords[0] - peaks).max() > 0.4  # the argmax alone is off by up to half a cell


def test_dark_keeps_a_newton_step_longer_than_a_cell() -> None:
    """sigma 3 (the default) with a narrow bump 1.5-2 cells off, just high enough to pull the
    argmax onto itself: the argmax is more than a cell off, the Newton step (on the map smoothed
    by sigma, where the bump hardly counts) brings it back."""
    sigma, rng = 3.0, np.random.default_rng(7)

    def bump(peak: np.ndarray):
        centre = np.rint(peak + rng.uniform(1.5, 2.0) * random_direction(rng))
        return centre, 1.01 - gaussian(peak, sigma)[int(centre[1]), int(centre[0])], 0.3

    maps, peaks = bumped_maps(sigma, rng, 100, bump)
    coords, _ = get_max_preds(maps)
    refined = dark_refine(maps, coords, sigma)
    assert (np.abs(coords[0] - peaks).max(axis=1) > 1.0).mean() > 0.5
    assert np.abs(refined[0] - peaks).max() < 0.05


def test_dark_does_not_step_off_the_map() -> None:
    maps = np.zeros((1, 2, HEIGHT, WIDTH), dtype=np.float32)
    maps[0, 0] = gaussian(np.array([-3.0, 20.4]), 2.0)  # peak left of the map: argmax at x = 0
    maps[0, 1] = gaussian(np.array([1.0, 20.0]), 2.0) + gaussian(np.array([-6.0, 20.0]), 2.0, 3)
    coords, _ = get_max_preds(maps)
    refined = dark_refine(maps, coords, 2.0)
    assert refined[0, 0, 0] == 0.0 and abs(refined[0, 0, 1] - 20.4) < 0.05
    assert refined[0, 1, 0] >= 0.0 and np.isfinite(refined).all()


def dark_codec(sigma: float):
    cfg = get_defaults()
    cfg.MODEL.CODEC, cfg.MODEL.SIGMA = "dark", sigma
    cfg.MODEL.IMAGE_SIZE, cfg.MODEL.HEATMAP_SIZE = [96, 128], [24, 32]
    return codec_for_config(cfg)


@pytest.mark.parametrize("sigma", [1.0, 2.0, 3.0])
def test_dark_targets_are_sub_pixel_and_decode_back_to_the_joint(sigma: float) -> None:
    codec = dark_codec(sigma)
    center, scale = np.array([310.0, 200.0], dtype=np.float32), np.array([1.2, 1.6], np.float32)
    rng = np.random.default_rng(2)
    points = np.column_stack([rng.uniform(270, 350, 12), rng.uniform(130, 270, 12)])
    to_input = get_affine_transform(center, scale, 0, codec.image_size)
    on_input = affine_transform(points, to_input)
    target, weight = codec.encode(on_input, np.ones(12))
    assert target.shape == (12, 32, 24) and (weight == 1).all()
    # Sub-pixel: the map's centre of mass near the peak is the joint / stride, not a whole cell.
    cols, rows = np.meshgrid(np.arange(24), np.arange(32))
    mass = target.sum(axis=(1, 2))
    centroid = np.stack([(target * cols).sum(axis=(1, 2)), (target * rows).sum(axis=(1, 2))], 1)
    inside = (on_input / 4 > 3 * sigma + 1).all(1) & (on_input / 4 < [24 - 3 * sigma - 2,
                                                                      32 - 3 * sigma - 2]).all(1)
    np.testing.assert_allclose((centroid / mass[:, None])[inside], on_input[inside] / 4, atol=0.02)
    preds, _ = codec.decode(target[None], center[None], scale[None])
    error = np.abs(affine_transform(preds[0], to_input) - on_input).max() / 4  # in cells
    assert error < 0.05
