"""Crop geometry of stage two: cleaning, center/scale, affine, flips, half body."""

from __future__ import annotations

import numpy as np
import pytest

from common.boxes import clean_box
from HRNet_keypoint.transforms import (
    affine_transform,
    box_to_center_scale,
    fliplr_joints,
    get_affine_transform,
    half_body_transform,
    swap_pairs_permutation,
)

IMAGE_SIZE = (288, 384)


class FixedNormal:
    """Stands in for a numpy Generator whose next normal draw is known."""

    def __init__(self, value: float) -> None:
        self.value = value

    def standard_normal(self) -> float:
        return self.value


@pytest.mark.parametrize("rotation", [0.0, 17.5, -63.0, 90.0])
@pytest.mark.parametrize("scale", [(0.5, 0.66), (2.7, 3.6)])
def test_affine_round_trip(rotation: float, scale: tuple[float, float]) -> None:
    rng = np.random.default_rng(0)
    center = np.array([812.25, 433.5], dtype=np.float32)
    points = rng.uniform(0, 1000, size=(50, 2))
    forward = get_affine_transform(center, scale, rotation, IMAGE_SIZE)
    backward = get_affine_transform(center, scale, rotation, IMAGE_SIZE, inv=True)
    recovered = affine_transform(affine_transform(points, forward), backward)
    np.testing.assert_allclose(recovered, points, atol=1e-3)


def test_affine_maps_center_and_scales_by_width() -> None:
    center = np.array([500.0, 300.0], dtype=np.float32)
    scale = np.array([1.44, 5.0], dtype=np.float32)  # the height component is not used
    matrix = get_affine_transform(center, scale, 0, IMAGE_SIZE)
    zoom = 288 / (1.44 * 200)
    expected = np.array([[zoom, 0, 144 - zoom * 500], [0, zoom, 192 - zoom * 300]])
    np.testing.assert_allclose(matrix, expected, atol=1e-5)
    np.testing.assert_allclose(affine_transform(center, matrix), [144, 192], atol=1e-4)


def test_affine_rotation_direction() -> None:
    center = np.array([400.0, 400.0], dtype=np.float32)
    matrix = get_affine_transform(center, [1.44, 1.92], 90, IMAGE_SIZE)
    # With +90 degrees the point half a box width right of the center goes to the top middle.
    right_of_center = center + np.array([144.0, 0.0])
    np.testing.assert_allclose(affine_transform(right_of_center, matrix), [144, 48], atol=1e-3)


def test_affine_shift_moves_source_center() -> None:
    center = np.array([400.0, 400.0], dtype=np.float32)
    matrix = get_affine_transform(center, [1.0, 1.0], 0, IMAGE_SIZE, shift=(0.1, -0.2))
    # The shifted source center (400 + 0.1*200, 400 - 0.2*200) lands on the output center.
    np.testing.assert_allclose(affine_transform([420.0, 360.0], matrix), [144, 192], atol=1e-4)


def test_affine_transform_is_vectorised_over_leading_axes() -> None:
    matrix = np.array([[2.0, 0.5, 3.0], [-1.0, 1.5, 4.0]])
    points = np.arange(24, dtype=np.float64).reshape(3, 4, 2)
    result = affine_transform(points, matrix)
    assert result.shape == (3, 4, 2)
    x, y = points[1, 2]
    np.testing.assert_allclose(result[1, 2], [2 * x + 0.5 * y + 3, -x + 1.5 * y + 4])


def test_box_to_center_scale_narrow_box_widens() -> None:
    center, scale = box_to_center_scale([100, 50, 60, 200], 0.75)
    assert center.dtype == np.float32 and scale.dtype == np.float32
    np.testing.assert_allclose(center, [130, 150])
    # w = 60 < 0.75 * 200, so w becomes 150: (150, 200) / 200 * 1.25.
    np.testing.assert_allclose(scale, [0.9375, 1.25], rtol=1e-7)


def test_box_to_center_scale_wide_box_grows_taller() -> None:
    center, scale = box_to_center_scale([10, 20, 300, 100], 0.75)
    np.testing.assert_allclose(center, [160, 70])
    # w = 300 > 0.75 * 100, so h becomes 400: (300, 400) / 200 * 1.25.
    np.testing.assert_allclose(scale, [1.875, 2.5], rtol=1e-7)


def test_box_to_center_scale_exact_aspect_and_padding() -> None:
    _, scale = box_to_center_scale([0, 0, 75, 100], 0.75, padding=1.0)
    np.testing.assert_allclose(scale, [0.375, 0.5], rtol=1e-7)


def test_clean_box_inside_loses_one_pixel() -> None:
    np.testing.assert_array_equal(clean_box([10, 20, 30, 40], 160, 120), [10, 20, 29, 39])


def test_clean_box_clips_like_the_official_code() -> None:
    # A negative x is moved to 0 without shortening the box (official behaviour).
    np.testing.assert_array_equal(clean_box([-10, 5, 50, 40], 100, 80), [0, 5, 49, 39])
    # The far edge is clipped to width-1 / height-1.
    np.testing.assert_array_equal(clean_box([90, 70, 50, 30], 100, 80), [90, 70, 9, 9])
    # Sub-pixel width: area > 0 and x2 == x1, kept with width 0.
    np.testing.assert_array_equal(clean_box([3, 4, 0.5, 10], 100, 80), [3, 4, 0, 9])


@pytest.mark.parametrize(
    "box",
    [
        [150, 10, 20, 20],  # starts right of the image
        [10, 90, 20, 20],  # starts below the image
        [10, 10, 0, 20],  # zero area
        [10, 10, 20, -5],  # negative area
        [np.nan, 10, 20, 20],  # not a number
    ],
)
def test_clean_box_rejects(box: list[float]) -> None:
    assert clean_box(box, 100, 80) is None


def test_fliplr_joints_mirrors_and_swaps_pairs() -> None:
    joints = np.array([[10.0, 1.0], [20.0, 2.0], [30.0, 3.0], [40.0, 4.0]])
    visible = np.array([1.0, 1.0, 1.0, 0.0])
    flipped, flipped_vis = fliplr_joints(joints, visible, 100, [(1, 2)])
    np.testing.assert_array_equal(flipped, [[89, 1], [69, 3], [79, 2], [0, 0]])
    np.testing.assert_array_equal(flipped_vis, [1, 1, 1, 0])
    assert joints[0, 0] == 10.0  # the input is untouched


def test_fliplr_joints_twice_is_identity() -> None:
    joints = np.random.default_rng(1).uniform(0, 100, size=(24, 2))
    pairs = [(1, 2), (3, 4), (5, 6), (22, 23)]
    once, vis = fliplr_joints(joints, np.ones(24), 160, pairs)
    twice, _ = fliplr_joints(once, vis, 160, pairs)
    np.testing.assert_allclose(twice, joints)


def test_swap_pairs_permutation() -> None:
    np.testing.assert_array_equal(swap_pairs_permutation(5, [(0, 3), (1, 2)]), [3, 2, 1, 0, 4])


def _body(num: int = 24) -> tuple[np.ndarray, tuple[int, ...], tuple[int, ...]]:
    joints = np.stack([np.arange(num) * 10.0 + 5, np.arange(num) * 3.0 + 100], axis=1)
    upper = tuple(range(16))
    lower = tuple(range(16, num))
    return joints, upper, lower


def test_half_body_upper_when_normal_draw_below_half() -> None:
    joints, upper, lower = _body()
    center, scale = half_body_transform(joints, np.ones(24), upper, lower, 0.75, FixedNormal(0.4))
    chosen = joints[list(upper)]
    np.testing.assert_allclose(center, chosen.mean(axis=0), rtol=1e-6)
    width, height = np.ptp(chosen, axis=0)  # 150 x 45: too wide, height becomes 200
    assert width > 0.75 * height
    np.testing.assert_allclose(scale, [width / 200 * 1.5, width / 0.75 / 200 * 1.5], rtol=1e-6)


def test_half_body_lower_when_normal_draw_above_half() -> None:
    joints, upper, lower = _body()
    center, _ = half_body_transform(joints, np.ones(24), upper, lower, 0.75, FixedNormal(0.6))
    np.testing.assert_allclose(center, joints[list(lower)].mean(axis=0), rtol=1e-6)


def test_half_body_falls_back_and_gives_up() -> None:
    joints, upper, lower = _body()
    visible = np.zeros(24)
    visible[[0, 1, 2, 20, 21]] = 1  # 3 upper, 2 lower visible
    center, _ = half_body_transform(joints, visible, upper, lower, 0.75, FixedNormal(0.9))
    np.testing.assert_allclose(center, joints[[0, 1, 2]].mean(axis=0), rtol=1e-6)
    visible = np.zeros(24)
    visible[[3]] = 1
    assert half_body_transform(joints, visible, upper, lower, 0.75, FixedNormal(0.0)) == (
        None,
        None,
    )


def test_the_inverse_crop_inverts_the_heatmap_crop() -> None:
    center = np.array([700.5, 520.25], dtype=np.float32)
    scale = np.array([2.1, 2.8], dtype=np.float32)
    original = np.array([[650.0, 480.0], [760.0, 600.0]])
    heatmap_matrix = get_affine_transform(center, scale, 0, (72, 96))
    on_heatmap = affine_transform(original, heatmap_matrix)
    np.testing.assert_allclose(
        affine_transform(on_heatmap, get_affine_transform(center, scale, 0, (72, 96), inv=True)),
        original, atol=1e-3,
    )
