"""Targets, decoding, loss and flip test of stage two, against plain per-joint loops."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from common.config import get_defaults
from HRNet_keypoint.codecs import codec_for_config
from HRNet_keypoint.codecs.base import get_max_preds
from HRNet_keypoint.codecs.quarter import generate_target, get_final_preds, quarter_offset
from HRNet_keypoint.inference import flip_back, predict_heatmaps, predict_keypoints
from HRNet_keypoint.loss import JointsMSELoss
from HRNet_keypoint.transforms import affine_transform, get_affine_transform

IMAGE_SIZE = (288, 384)
HEATMAP_SIZE = (72, 96)


def loop_target(joints, joints_vis, image_size, heatmap_size, sigma):
    """The official gaussian written as a plain loop over joints and window cells."""
    num = len(joints)
    map_w, map_h = heatmap_size
    target = np.zeros((num, map_h, map_w), dtype=np.float32)
    weight = np.asarray(joints_vis, dtype=np.float32).reshape(num, 1).copy()
    radius = sigma * 3
    size = int(2 * radius + 1)
    for j in range(num):
        stride_x = image_size[0] / map_w
        stride_y = image_size[1] / map_h
        mu_x = int(joints[j][0] / stride_x + 0.5)
        mu_y = int(joints[j][1] / stride_y + 0.5)
        left, top = int(mu_x - radius), int(mu_y - radius)
        right, bottom = int(mu_x + radius + 1), int(mu_y + radius + 1)
        if left >= map_w or top >= map_h or right < 0 or bottom < 0:
            weight[j] = 0
            continue
        if weight[j] <= 0.5:
            continue
        for dy in range(size):
            for dx in range(size):
                col, row = left + dx, top + dy
                if 0 <= col < min(right, map_w) and 0 <= row < min(bottom, map_h):
                    squared = np.float32((dx - size // 2) ** 2 + (dy - size // 2) ** 2)
                    value = np.exp(-squared / np.float32(2 * sigma**2), dtype=np.float32)
                    target[j, row, col] = value
    return target, weight


def loop_final_preds(heatmaps, centers, scales, post_process):
    """Argmax, quarter offset and back-transform, one joint at a time."""
    num, joints, height, width = heatmaps.shape
    coords = np.zeros((num, joints, 2), dtype=np.float32)
    maxvals = np.zeros((num, joints, 1), dtype=heatmaps.dtype)
    for n in range(num):
        for j in range(joints):
            hm = heatmaps[n, j]
            flat_index = int(np.argmax(hm))
            maxvals[n, j, 0] = hm.reshape(-1)[flat_index]
            if maxvals[n, j, 0] > 0:
                coords[n, j] = [flat_index % width, flat_index // width]
            if post_process:
                px = int(math.floor(coords[n, j, 0] + 0.5))
                py = int(math.floor(coords[n, j, 1] + 0.5))
                if 1 < px < width - 1 and 1 < py < height - 1:
                    diff = np.array(
                        [hm[py, px + 1] - hm[py, px - 1], hm[py + 1, px] - hm[py - 1, px]]
                    )
                    coords[n, j] += np.sign(diff) * 0.25
    preds = np.zeros_like(coords)
    for n in range(num):
        matrix = get_affine_transform(centers[n], scales[n], 0, [width, height], inv=True)
        for j in range(joints):
            point = np.array([coords[n, j, 0], coords[n, j, 1], 1.0])
            preds[n, j] = np.dot(matrix, point)[:2]
    return preds, maxvals


@pytest.mark.parametrize("sigma", [2, 3, 2.5])
def test_generate_target_equals_loop(sigma: float) -> None:
    rng = np.random.default_rng(5)
    joints = rng.uniform(-60, 420, size=(40, 2))
    joints[0] = [-44.0, 100.0]  # window ends exactly at column 0 (br == 0): weight kept, empty
    joints[1] = [400.0, 500.0]  # fully outside
    joints[2] = [144.0, 192.0]
    visible = np.ones(40)
    visible[3] = 0
    target, weight = generate_target(joints, visible, IMAGE_SIZE, HEATMAP_SIZE, sigma)
    expected_target, expected_weight = loop_target(joints, visible, IMAGE_SIZE, HEATMAP_SIZE, sigma)
    assert target.dtype == np.float32 and weight.dtype == np.float32
    assert target.shape == (40, 96, 72) and weight.shape == (40, 1)
    np.testing.assert_array_equal(target, expected_target)
    np.testing.assert_array_equal(weight, expected_weight)


def test_generate_target_values() -> None:
    joints = np.array([[144.0, 192.0], [-44.0, 100.0], [400.0, 500.0], [1.0, 1.0]])
    target, weight = generate_target(joints, np.ones(4), IMAGE_SIZE, HEATMAP_SIZE, 3)
    assert target[0, 48, 36] == 1.0
    assert target[0].sum() > 1  # a blob, not a single cell
    np.testing.assert_allclose(target[0, 48, 37], np.exp(-1 / 18), rtol=1e-6)
    np.testing.assert_allclose(target[0, 50, 39], np.exp(-13 / 18), rtol=1e-6)
    assert target[0, 48, 46] == 0.0  # beyond the 3-sigma window
    assert target[0, 48, 45] > 0.0
    assert weight[1, 0] == 1.0 and not target[1].any()  # the br == 0 quirk
    assert weight[2, 0] == 0.0 and not target[2].any()
    assert target[3, 0, 0] == 1.0  # mu = int(0.25 + 0.5) = 0
    with pytest.raises(ValueError, match="visible joints"):
        generate_target(np.array([[np.nan, 1.0]]), np.ones(1), IMAGE_SIZE, HEATMAP_SIZE, 3)


def test_get_max_preds() -> None:
    heatmaps = np.zeros((2, 2, 5, 7), dtype=np.float32)
    heatmaps[0, 0, 3, 4] = 0.9
    heatmaps[0, 1] = -1.0
    heatmaps[0, 1, 2, 2] = -0.5  # maximum <= 0: coordinates reset to 0
    heatmaps[1, 0, 4, 6] = 2.0
    coords, maxvals = get_max_preds(heatmaps)
    np.testing.assert_array_equal(coords[0, 0], [4, 3])
    np.testing.assert_array_equal(coords[0, 1], [0, 0])
    np.testing.assert_array_equal(coords[1, 0], [6, 4])
    np.testing.assert_array_equal(coords[1, 1], [0, 0])
    np.testing.assert_allclose(maxvals[:, :, 0], [[0.9, -0.5], [2.0, 0.0]])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_vectorised_decode_equals_loop(dtype: type) -> None:
    rng = np.random.default_rng(11)
    # Small integer values make ties and zero differences common; some maps are all negative.
    heatmaps = rng.integers(-3, 4, size=(6, 24, 9, 8)).astype(dtype)
    heatmaps[0, :4] -= 10
    heatmaps += rng.uniform(0, 0.01, size=heatmaps.shape) * (rng.random(heatmaps.shape) < 0.3)
    centers = rng.uniform(100, 900, size=(6, 2)).astype(np.float32)
    scales = rng.uniform(0.5, 3.0, size=(6, 2)).astype(np.float32)
    for post_process in (True, False):
        preds, maxvals = get_final_preds(heatmaps, centers, scales, post_process)
        expected, expected_maxvals = loop_final_preds(heatmaps, centers, scales, post_process)
        assert preds.dtype == np.float32
        np.testing.assert_array_equal(preds, expected)
        np.testing.assert_array_equal(maxvals, expected_maxvals)


def test_quarter_offset_directions() -> None:
    heatmaps = np.zeros((1, 3, 6, 6), dtype=np.float32)
    heatmaps[0, 0, 3, 3] = 1.0
    heatmaps[0, 0, 3, 4] = 0.5  # right neighbour higher
    heatmaps[0, 0, 2, 3] = 0.5  # upper neighbour higher
    heatmaps[0, 1, 1, 3] = 1.0  # py = 1: no offset
    heatmaps[0, 2, 3, 4] = 1.0  # px = 4 = W-2: offset allowed; left higher
    heatmaps[0, 2, 3, 3] = 0.2
    coords, _ = get_max_preds(heatmaps)
    shifted = quarter_offset(heatmaps, coords)
    np.testing.assert_array_equal(shifted[0], [[3.25, 2.75], [3.0, 1.0], [3.75, 3.0]])


def test_quarter_codec_is_the_official_decode_and_targets() -> None:
    rng = np.random.default_rng(4)
    heatmaps = rng.random((2, 3, 8, 6)).astype(np.float32)
    centers, scales = rng.random((2, 2)) * 100, rng.random((2, 2)) + 0.5
    cfg = get_defaults()
    cfg.MODEL.IMAGE_SIZE, cfg.MODEL.HEATMAP_SIZE, cfg.MODEL.SIGMA = [24, 32], [6, 8], 2
    for post in (False, True):
        cfg.TEST.POST_PROCESS = post
        codec = codec_for_config(cfg)
        assert codec.name == "quarter"
        got = codec.decode(torch.from_numpy(heatmaps), centers, scales)
        want = get_final_preds(heatmaps, centers, scales, post)
        for a, b in zip(got, want, strict=True):
            assert a.dtype == b.dtype and np.array_equal(a, b)
    joints = rng.uniform(0, 30, (5, 2))
    for a, b in zip(codec.encode(joints, np.ones(5)),
                    generate_target(joints, np.ones(5), [24, 32], [6, 8], 2), strict=True):
        assert a.dtype == b.dtype and np.array_equal(a, b)  # fmt: skip


def test_target_decode_round_trip_exact_cells() -> None:
    center = np.array([612.0, 377.5], dtype=np.float32)
    scale = np.array([1.7, 2.2666667], dtype=np.float32)
    cells = np.array([[36, 48], [10, 20], [60, 90], [2, 2]], dtype=np.float64)
    to_input = get_affine_transform(center, scale, 0, IMAGE_SIZE)
    from_input = get_affine_transform(center, scale, 0, IMAGE_SIZE, inv=True)
    original = affine_transform(cells * 4, from_input)
    target, weight = generate_target(
        affine_transform(original, to_input), np.ones(4), IMAGE_SIZE, HEATMAP_SIZE, 3
    )
    assert weight.all()
    preds, maxvals = get_final_preds(target[None], center[None], scale[None], True)
    np.testing.assert_allclose(maxvals, 1.0)
    # The symmetric gaussian gives no quarter offset: exact cell, exact pixel (float32 output).
    np.testing.assert_allclose(preds[0], original, rtol=0, atol=2e-4)


def test_target_decode_round_trip_within_half_stride() -> None:
    rng = np.random.default_rng(3)
    center = np.array([960.0, 540.0], dtype=np.float32)
    scale = np.array([3.0, 4.0], dtype=np.float32)
    to_input = get_affine_transform(center, scale, 0, IMAGE_SIZE)
    from_input = get_affine_transform(center, scale, 0, IMAGE_SIZE, inv=True)
    input_points = rng.uniform(20, 260, size=(24, 2))
    original = affine_transform(input_points, from_input)
    target, _ = generate_target(input_points, np.ones(24), IMAGE_SIZE, HEATMAP_SIZE, 3)
    preds, _ = get_final_preds(target[None], center[None], scale[None], True)
    error_in_input = np.abs(affine_transform(preds[0], to_input) - input_points)
    assert error_in_input.max() <= 2.0 + 1e-3  # stride / 2
    pixels_per_input_pixel = scale[0] * 200 / IMAGE_SIZE[0]
    assert np.abs(preds[0] - original).max() <= 2.0 * pixels_per_input_pixel + 1e-2


def test_transform_preds_matches_decode_for_single_sample() -> None:
    heatmaps = np.zeros((1, 1, 96, 72), dtype=np.float32)
    heatmaps[0, 0, 40, 30] = 1.0
    center = np.array([[500.0, 400.0]], dtype=np.float32)
    scale = np.array([[2.0, 2.6666667]], dtype=np.float32)
    preds, _ = get_final_preds(torch.from_numpy(heatmaps), center, scale, post_process=False)
    back = get_affine_transform(center[0], scale[0], 0, (72, 96), inv=True)
    expected = affine_transform(np.array([[30.0, 40.0]]), back)
    np.testing.assert_allclose(preds[0], expected, rtol=1e-6)


def test_joints_mse_loss_equals_per_joint_loop() -> None:
    generator = torch.Generator().manual_seed(0)
    output = torch.rand(3, 5, 6, 4, generator=generator)
    target = torch.rand(3, 5, 6, 4, generator=generator)
    weight = torch.rand(3, 5, 1, generator=generator)
    mse = nn.MSELoss()
    plain = sum(0.5 * mse(output[:, j], target[:, j]) for j in range(5)) / 5
    weighted = (
        sum(
            0.5 * mse(output[:, j] * weight[:, j, :, None], target[:, j] * weight[:, j, :, None])
            for j in range(5)
        )
        / 5
    )
    torch.testing.assert_close(JointsMSELoss(False)(output, target, weight), plain)
    torch.testing.assert_close(JointsMSELoss(True)(output, target, weight), weighted)
    assert not torch.isclose(plain, weighted)


PAIRS = ((0, 1), (3, 4))


def test_flip_back_swaps_and_mirrors() -> None:
    heatmaps = np.random.default_rng(0).random((2, 5, 4, 6)).astype(np.float32)
    flipped = flip_back(heatmaps, PAIRS)
    np.testing.assert_array_equal(flipped[:, 0], heatmaps[:, 1, :, ::-1])
    np.testing.assert_array_equal(flipped[:, 1], heatmaps[:, 0, :, ::-1])
    np.testing.assert_array_equal(flipped[:, 2], heatmaps[:, 2, :, ::-1])
    np.testing.assert_array_equal(flipped[:, 4], heatmaps[:, 3, :, ::-1])
    np.testing.assert_array_equal(flip_back(flipped, PAIRS), heatmaps)
    tensor = torch.from_numpy(heatmaps)
    np.testing.assert_array_equal(flip_back(tensor, PAIRS).numpy(), flipped)
    torch.testing.assert_close(flip_back(flip_back(tensor, PAIRS), PAIRS), tensor)
    assert flip_back(tensor, PAIRS) is not tensor


class StridedConv(nn.Module):
    """A stand-in pose network: 5 heatmaps at stride 4."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 5, kernel_size=5, stride=4, padding=2)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.conv(images)


@pytest.mark.parametrize("shift", [True, False])
def test_predict_heatmaps_flip_test(shift: bool) -> None:
    model = StridedConv().eval()
    images = torch.randn(2, 3, 32, 24, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        plain = model(images)
        mirrored = model(images.flip(3)).flip(3)[:, [1, 0, 2, 4, 3]]
    if shift:
        mirrored = torch.cat([mirrored[..., :1], mirrored[..., :-1]], dim=3)
    expected = (plain + mirrored) * 0.5
    result = predict_heatmaps(model, images, True, PAIRS, shift)
    assert result.shape == (2, 5, 8, 6)
    assert not result.requires_grad
    torch.testing.assert_close(result, expected, rtol=0, atol=0)
    torch.testing.assert_close(predict_heatmaps(model, images, False, PAIRS, shift), plain)


def test_predict_heatmaps_takes_last_of_several_outputs() -> None:
    conv = StridedConv().eval()

    class TwoStage(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = conv

        def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
            return [torch.zeros(1), self.inner(images)]

    images = torch.randn(1, 3, 32, 24)
    torch.testing.assert_close(
        predict_heatmaps(TwoStage(), images, True, PAIRS, True),
        predict_heatmaps(conv, images, True, PAIRS, True),
    )


def test_predict_keypoints_combines_heatmaps_and_decode() -> None:
    cfg = get_defaults()
    cfg.TEST.FLIP_TEST = True
    cfg.TEST.SHIFT_HEATMAP = True
    cfg.TEST.POST_PROCESS = True
    model = StridedConv().eval()
    images = torch.randn(2, 3, 32, 24, generator=torch.Generator().manual_seed(2))
    centers = torch.tensor([[100.0, 80.0], [60.0, 50.0]])
    scales = torch.tensor([[0.5, 0.6666667], [0.3, 0.4]])
    coords, maxvals = predict_keypoints(model, images, centers, scales, cfg, PAIRS)
    heatmaps = predict_heatmaps(model, images, True, PAIRS, True)
    expected, expected_maxvals = get_final_preds(heatmaps, centers, scales, True)
    assert coords.shape == (2, 5, 2) and maxvals.shape == (2, 5, 1)
    np.testing.assert_array_equal(coords, expected)
    np.testing.assert_array_equal(maxvals, expected_maxvals)
