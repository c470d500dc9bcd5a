"""Stage-two datasets on tiny generated images."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from common.boxes import clean_box
from common.config import get_defaults
from common.io import read_image
from common.keypoints import MOTION_FLIP_PAIRS, MOTION_LOWER_BODY, MOTION_UPPER_BODY
from HRNet_keypoint.codecs.quarter import get_final_preds
from HRNet_keypoint.dataset import BoxDataset, KeypointDataset
from HRNet_keypoint.transforms import (
    affine_transform,
    box_to_center_scale,
    fliplr_joints,
    get_affine_transform,
)

IMAGE_SIZE = [48, 64]
HEATMAP_SIZE = [12, 16]
STRIDE = 4
WIDTH, HEIGHT = 160, 120


def make_cfg(**dataset_overrides: object):
    cfg = get_defaults()
    cfg.MODEL.IMAGE_SIZE = IMAGE_SIZE
    cfg.MODEL.HEATMAP_SIZE = HEATMAP_SIZE
    cfg.MODEL.SIGMA = 2
    cfg.MODEL.NUM_JOINTS = 24
    cfg.DATASET.COLOR_RGB = True
    cfg.DATASET.FLIP = True
    cfg.DATASET.SCALE_FACTOR = 0.35
    cfg.DATASET.ROT_FACTOR = 45
    cfg.DATASET.PROB_HALF_BODY = 0.3
    cfg.DATASET.NUM_JOINTS_HALF_BODY = 8
    for key, value in dataset_overrides.items():
        setattr(cfg.DATASET, key, value)
    return cfg


@pytest.fixture
def samples(tmp_path: Path) -> tuple[list[Path], np.ndarray]:
    rng = np.random.default_rng(7)
    paths = []
    for index in range(4):
        image = rng.integers(0, 256, size=(HEIGHT, WIDTH, 3), dtype=np.uint8)
        image = cv2.GaussianBlur(image, (5, 5), 0)
        path = tmp_path / f"img_{index}.png"
        cv2.imwrite(str(path), image)
        paths.append(path)
    keypoints = np.stack([rng.uniform(40, 120, size=24), rng.uniform(25, 95, size=24)], axis=-1)[
        None
    ].repeat(4, axis=0) + rng.uniform(-5, 5, size=(4, 24, 2))
    return paths, keypoints


def make_dataset(paths, keypoints, is_train: bool, **dataset_overrides: object):
    return KeypointDataset(
        make_cfg(**dataset_overrides),
        paths,
        keypoints,
        is_train,
        MOTION_FLIP_PAIRS,
        MOTION_UPPER_BODY,
        MOTION_LOWER_BODY,
    )


def input_cells(joints: np.ndarray, center, scale, rotation: float) -> np.ndarray:
    """Heatmap cell of each joint: int(input coordinate / stride + 0.5)."""
    matrix = get_affine_transform(np.asarray(center), np.asarray(scale), rotation, IMAGE_SIZE)
    return np.trunc(affine_transform(joints, matrix) / STRIDE + 0.5).astype(int)


def peaks_at(target: np.ndarray, cells: np.ndarray) -> bool:
    """True when every joint whose cell is on the map has its peak (1.0) there."""
    inside = (
        (cells[:, 0] >= 0)
        & (cells[:, 0] < HEATMAP_SIZE[0])
        & (cells[:, 1] >= 0)
        & (cells[:, 1] < HEATMAP_SIZE[1])
    )
    joint_ids = np.flatnonzero(inside)
    return bool(np.all(target[joint_ids, cells[inside, 1], cells[inside, 0]] == 1.0))


def test_validation_sample_shapes_and_meta(samples) -> None:
    paths, keypoints = samples
    dataset = make_dataset(paths, keypoints, is_train=False)
    assert len(dataset) == 4
    image, target, weight, meta = dataset[2]
    assert image.shape == (3, 64, 48) and image.dtype == torch.float32
    assert target.shape == (24, 16, 12) and target.dtype == torch.float32
    assert weight.shape == (24, 1) and torch.all(weight == 1)
    assert set(meta) == {"index", "center", "scale", "rotation", "joints"}
    assert meta["index"] == 2 and meta["rotation"] == 0.0
    np.testing.assert_allclose(meta["joints"].numpy(), keypoints[2], rtol=1e-6)
    box = keypoints[2].min(axis=0).tolist() + np.ptp(keypoints[2], axis=0).tolist()
    center, scale = box_to_center_scale(clean_box(box, WIDTH, HEIGHT), 48 / 64)
    np.testing.assert_array_equal(meta["center"].numpy(), center)
    np.testing.assert_array_equal(meta["scale"].numpy(), scale)


def test_validation_targets_peak_at_mapped_keypoints(samples) -> None:
    paths, keypoints = samples
    dataset = make_dataset(paths, keypoints, is_train=False)
    for index in range(len(dataset)):
        _, target, _, meta = dataset[index]
        center, scale = meta["center"].numpy(), meta["scale"].numpy()
        cells = input_cells(keypoints[index], center, scale, 0.0)
        # The padded box keeps every keypoint inside the crop.
        assert (cells >= 0).all() and (cells < HEATMAP_SIZE).all()
        assert peaks_at(target.numpy(), cells)
        preds, _ = get_final_preds(target[None], center[None], scale[None], post_process=True)
        pixels_per_input_pixel = scale[0] * 200 / IMAGE_SIZE[0]
        error = np.abs(preds[0] - keypoints[index]).max()
        assert error <= STRIDE / 2 * pixels_per_input_pixel + 1e-3


def test_input_is_official_crop_and_normalisation(samples) -> None:
    transforms = pytest.importorskip("torchvision.transforms")
    paths, keypoints = samples
    dataset = make_dataset(paths, keypoints, is_train=False)
    image, _, _, meta = dataset[1]
    rgb = cv2.cvtColor(read_image(paths[1]), cv2.COLOR_BGR2RGB)
    matrix = get_affine_transform(meta["center"].numpy(), meta["scale"].numpy(), 0, IMAGE_SIZE)
    crop = cv2.warpAffine(rgb, matrix, (48, 64), flags=cv2.INTER_LINEAR)
    normalise = transforms.Compose(
        [
            transforms.ToTensor(),
            transforms.Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225]),
        ]
    )
    torch.testing.assert_close(image, normalise(crop), rtol=0, atol=0)


def test_bgr_input_when_color_rgb_off(samples) -> None:
    paths, keypoints = samples
    rgb_image = make_dataset(paths, keypoints, False)[0][0]
    bgr_image = make_dataset(paths, keypoints, False, COLOR_RGB=False)[0][0]
    mean = torch.tensor([0.485, 0.456, 0.406])[:, None, None]
    std = torch.tensor([0.229, 0.224, 0.225])[:, None, None]
    # Undo the normalisation; the channels must be the same pixels in reverse order.
    torch.testing.assert_close(
        (rgb_image * std + mean).flip(0), (bgr_image * std + mean), atol=1e-6, rtol=0
    )


def test_training_targets_follow_the_augmentation(samples) -> None:
    paths, keypoints = samples
    dataset = make_dataset(paths, keypoints, is_train=True)
    torch.manual_seed(0)
    rotations = []
    for _ in range(6):
        for index in range(len(dataset)):
            _, target, weight, meta = dataset[index]
            center, scale = meta["center"].numpy(), meta["scale"].numpy()
            rotation = float(meta["rotation"])
            rotations.append(rotation)
            plain = input_cells(keypoints[index], center, scale, rotation)
            mirrored_joints, _ = fliplr_joints(
                keypoints[index], np.ones(24), WIDTH, MOTION_FLIP_PAIRS
            )
            mirrored = input_cells(mirrored_joints, center, scale, rotation)
            assert peaks_at(target.numpy(), plain) or peaks_at(target.numpy(), mirrored)
            assert target.numpy().max() == 1.0
            assert set(np.unique(weight.numpy())) <= {0.0, 1.0}
    rotations = np.array(rotations)
    assert (rotations == 0).any() and (rotations != 0).any()
    assert np.abs(rotations).max() <= 90


def test_augmentation_is_deterministic_under_manual_seed(samples) -> None:
    paths, keypoints = samples
    dataset = make_dataset(paths, keypoints, is_train=True)

    def draw(seed: int) -> list:
        torch.manual_seed(seed)
        return [dataset[index % 4] for index in range(8)]

    first, second, other = draw(123), draw(123), draw(124)
    for a, b in zip(first, second, strict=True):
        torch.testing.assert_close(a[0], b[0], rtol=0, atol=0)
        torch.testing.assert_close(a[1], b[1], rtol=0, atol=0)
        torch.testing.assert_close(a[3]["center"], b[3]["center"], rtol=0, atol=0)
        assert a[3]["rotation"] == b[3]["rotation"]
    assert any(
        not torch.equal(a[3]["scale"], c[3]["scale"]) for a, c in zip(first, other, strict=True)
    )


@pytest.mark.slow
def test_worker_seeding_makes_loader_deterministic(samples) -> None:
    paths, keypoints = samples
    dataset = make_dataset(paths, keypoints, is_train=True)

    def scales(seed: int) -> torch.Tensor:
        torch.manual_seed(seed)
        loader = DataLoader(dataset, batch_size=2, shuffle=True, num_workers=2)
        return torch.cat([meta["scale"] for _, _, _, meta in loader])

    torch.testing.assert_close(scales(5), scales(5), rtol=0, atol=0)
    assert not torch.equal(scales(5), scales(6))


def test_half_body_crops_center_on_a_body_half(samples) -> None:
    paths, keypoints = samples
    dataset = make_dataset(
        paths, keypoints, True, PROB_HALF_BODY=1.0, SCALE_FACTOR=0.0, ROT_FACTOR=0, FLIP=False
    )
    upper_mean = keypoints[0, list(MOTION_UPPER_BODY)].astype(np.float32).mean(axis=0)
    lower_mean = keypoints[0, list(MOTION_LOWER_BODY)].astype(np.float32).mean(axis=0)
    torch.manual_seed(1)
    halves = []
    for _ in range(20):
        center = dataset[0][3]["center"].numpy()
        if np.allclose(center, upper_mean, atol=1e-4):
            halves.append("upper")
        elif np.allclose(center, lower_mean, atol=1e-4):
            halves.append("lower")
        else:
            raise AssertionError(f"center {center} is neither half's mean")
    assert set(halves) == {"upper", "lower"}


def test_keypoint_box_is_cleaned_with_the_image_size(tmp_path: Path) -> None:
    path = tmp_path / "small.png"
    cv2.imwrite(str(path), np.full((90, 200, 3), 128, dtype=np.uint8))
    keypoints = np.random.default_rng(0).uniform(20, 80, size=(1, 24, 2))
    keypoints[0, 0] = [150.0, 130.0]  # below the 90-pixel-high image
    dataset = make_dataset([path], keypoints, is_train=False)
    box = keypoints[0].min(axis=0).tolist() + np.ptp(keypoints[0], axis=0).tolist()
    center, _ = box_to_center_scale(clean_box(box, 200, 90), 0.75)
    np.testing.assert_array_equal(dataset[0][3]["center"].numpy(), center)
    assert center[1] < (box[1] + box[1] + box[3]) / 2  # clipping at row 89 moved it up


def test_keypoint_dataset_rejects_bad_input(samples) -> None:
    paths, keypoints = samples
    with pytest.raises(ValueError, match="keypoints must be"):
        make_dataset(paths, keypoints[:, :10], is_train=False)
    broken = keypoints.copy()
    broken[2, 5, 1] = np.nan
    with pytest.raises(ValueError, match=r"img_2\.png \(row 2\): keypoint 5"):
        make_dataset(paths, broken, is_train=False)


def test_box_dataset_crops_and_meta(samples) -> None:
    paths, _ = samples
    boxes = np.array([[30, 20, 60, 80], [-10, -5, 100, 50], [100, 60, 200, 200], [5, 5, 2, 3]])
    dataset = BoxDataset(make_cfg(), paths, boxes)
    for index, box in enumerate(boxes):
        image, meta = dataset[index]
        assert image.shape == (3, 64, 48)
        assert set(meta) == {"index", "center", "scale"} and meta["index"] == index
        center, scale = box_to_center_scale(clean_box(box, WIDTH, HEIGHT), 0.75)
        np.testing.assert_array_equal(meta["center"].numpy(), center)
        np.testing.assert_array_equal(meta["scale"].numpy(), scale)


def test_box_dataset_uses_given_decoded_images(samples) -> None:
    paths, _ = samples
    boxes = np.array([[30, 20, 60, 80]] * 4, dtype=np.float64)
    decoded = [read_image(path) for path in paths]
    from_disk = BoxDataset(make_cfg(), paths, boxes)
    from_memory = BoxDataset(make_cfg(), paths, boxes, images=decoded)
    for index in range(4):
        torch.testing.assert_close(from_disk[index][0], from_memory[index][0], rtol=0, atol=0)
    decoded[3] = np.zeros((10, 10), dtype=np.uint8)
    with pytest.raises(ValueError, match="img_3.png"):
        BoxDataset(make_cfg(), paths, boxes, images=decoded)[3]


def test_box_dataset_rejected_box_names_the_image(samples) -> None:
    paths, _ = samples
    boxes = np.array([[30, 20, 60, 80], [170, 10, 30, 30], [30, 20, 0, 80], [1, 1, 5, 5]])
    dataset = BoxDataset(make_cfg(), paths, boxes)
    dataset[0]
    with pytest.raises(ValueError, match=r"img_1\.png \(row 1\).*160x120"):
        dataset[1]
    with pytest.raises(ValueError, match=r"img_2\.png"):
        dataset[2]
    with pytest.raises(ValueError, match="boxes must be"):
        BoxDataset(make_cfg(), paths, boxes[:3])
