"""The gesture classifier's course techniques: CutMix, test-time flip, Grad-CAM pictures."""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from common.config import load_config
from common.gesture.cam import TITLE_HEIGHT, draw_cams, worst_validation_cams
from common.gesture.cutmix import cutmix_batch, mixed_loss
from common.gesture.frames import predict_frames
from common.gesture.model import build_classifier
from common.gesture.prediction import predict_gesture
from common.gesture.training import train_gesture
from common.synthetic.gesture import generate_gesture_dataset

CONFIG = Path(__file__).resolve().parents[1] / "experiments" / "gesture" / "tiny_cpu_gesture.yaml"


def _batch() -> tuple[torch.Tensor, torch.Tensor]:
    # image i is filled with the value i, so each pixel tells which image it came from
    images = torch.arange(6, dtype=torch.float32).view(6, 1, 1, 1).expand(6, 3, 20, 30).clone()
    return images, torch.tensor([0, 1, 2, 3, 4, 5])


def test_cutmix_pastes_one_rectangle_and_lam_is_its_area_share() -> None:
    images, labels = _batch()
    generator = torch.Generator().manual_seed(3)
    lams = []
    for _ in range(20):
        mixed, partners, lam = cutmix_batch(images, labels, 1.0, generator)
        lams.append(lam)
        for i in range(len(images)):
            kept = (mixed[i] == images[i, 0, 0, 0]).all(0)
            if partners[i] != labels[i]:
                assert int(kept.sum()) == round(lam * kept.numel())
                pasted = ~kept
                assert (mixed[i][:, pasted] == float(partners[i])).all()
                rows, cols = pasted.any(1), pasted.any(0)
                assert pasted.sum() == rows.sum() * cols.sum()  # one rectangle
        # the partner labels are a permutation of the batch's labels
        assert sorted(partners.tolist()) == labels.tolist()
    assert min(lams) < 0.9 and max(lams) <= 1.0


def test_cutmix_is_reproducible_and_prob_zero_leaves_the_batch() -> None:
    images, labels = _batch()
    first = cutmix_batch(images, labels, 1.0, torch.Generator().manual_seed(5))
    second = cutmix_batch(images, labels, 1.0, torch.Generator().manual_seed(5))
    assert torch.equal(first[0], second[0]) and torch.equal(first[1], second[1])
    assert first[2] == second[2]
    generator = torch.Generator().manual_seed(5)
    for _ in range(10):
        same, partners, lam = cutmix_batch(images, labels, 0.0, generator)
        assert same is images and torch.equal(partners, labels) and lam == 1.0


def test_mixed_loss_equals_cross_entropy_of_the_area_mixed_target() -> None:
    logits = torch.randn(4, 5, generator=torch.Generator().manual_seed(0))
    labels, partners, lam = torch.tensor([0, 1, 2, 3]), torch.tensor([4, 0, 2, 1]), 0.3
    target = lam * nn.functional.one_hot(labels, 5) + (1 - lam) * nn.functional.one_hot(partners, 5)
    expected = nn.functional.cross_entropy(logits, target.float())
    got = mixed_loss(nn.CrossEntropyLoss(), logits, labels, partners, lam)
    assert torch.allclose(got, expected, atol=1e-6)
    plain = mixed_loss(nn.CrossEntropyLoss(), logits, labels, partners, 1.0)
    assert torch.equal(plain, nn.functional.cross_entropy(logits, labels))


class _LeftIfBrightLeft(nn.Module):
    """Says class 0 ('left') when the image's left half is brighter, else class 1 ('right');
    class 2 (unpaired) always gets a little."""

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        half = images.shape[-1] // 2
        left = images[..., :half].mean((1, 2, 3)) > images[..., half:].mean((1, 2, 3))
        logits = torch.full((len(images), 3), -4.0)
        logits[left, 0] = 4.0
        logits[~left, 1] = 4.0
        logits[:, 2] = 0.0
        return logits


def _loader(images: torch.Tensor) -> DataLoader:
    return DataLoader(TensorDataset(images, torch.zeros(len(images))), batch_size=2)


def test_test_flip_swaps_left_and_right_before_averaging() -> None:
    image = torch.zeros(1, 3, 8, 8)
    image[..., :4] = 1.0  # bright left half: the model says 'left' here, 'right' on the mirror
    model, cpu = _LeftIfBrightLeft(), torch.device("cpu")
    plain = predict_frames([model], _loader(image), cpu)
    mirrored = predict_frames([model], _loader(image.flip(-1)), cpu)
    assert plain[0].argmax() == 0 and mirrored[0].argmax() == 1
    # the mirror's 'right' is the swapped 'left': both views agree, the average is the plain one
    flipped = predict_frames([model], _loader(image), cpu, {0: 1, 1: 0})
    np.testing.assert_allclose(flipped, plain, atol=1e-6)
    # without the swap the two views disagree and the average splits left and right
    unswapped = predict_frames([model], _loader(image), cpu, {})
    np.testing.assert_allclose(unswapped, (plain + mirrored) / 2, atol=1e-6)
    assert abs(unswapped[0, 0] - unswapped[0, 1]) < 1e-6


def test_grad_cam_pictures_have_the_panels_and_title_band(tmp_path: Path) -> None:
    model = build_classifier("resnet10t", 3)
    images = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    paths = [tmp_path / "a.png", tmp_path / "cams" / "b.png"]
    written = draw_cams(model, images, ["true 0, predicted 1", "b"], paths, [1, 2], panel=64)
    assert written == paths
    for path in paths:
        picture = cv2.imread(str(path))
        assert picture.shape == (64 + TITLE_HEIGHT, 128, 3)
        assert (picture[:TITLE_HEIGHT] < 255).any()  # the title is drawn on the white band
        # the overlay panel is the image tinted by the heat map, not a copy of it
        assert not np.array_equal(picture[TITLE_HEIGHT:, :64], picture[TITLE_HEIGHT:, 64:])


@pytest.mark.slow
def test_cutmix_training_test_flip_and_worst_clip_cams(tmp_path: Path) -> None:
    root, out = tmp_path / "gesture", tmp_path / "out"
    generate_gesture_dataset(root, train_clips=26, test_clips=4, frames=2, width=96, height=64)
    opts = ["DATASET.ROOT", str(root), "GESTURE.EPOCHS", "1", "GESTURE.WARMUP_EPOCHS", "1",
            "GESTURE.IMAGE_SIZE", "32", "GESTURE.CUTMIX_PROB", "1.0",
            "GESTURE.NUM_FOLDS", "2"]  # fmt: skip
    logger = logging.getLogger("test_gesture_course")
    metrics = train_gesture(load_config(CONFIG, opts), out, logger)
    assert np.isfinite(metrics["folds"]["0"]["logloss"])

    plain = pd.read_csv(predict_gesture(load_config(CONFIG, opts), out, logger))
    flipped_cfg = load_config(CONFIG, [*opts, "GESTURE.TEST_FLIP", "True"])
    flipped = pd.read_csv(predict_gesture(flipped_cfg, out, logger))
    assert flipped["Image_Path"].tolist() == plain["Image_Path"].tolist()
    np.testing.assert_allclose(flipped.iloc[:, 1:].sum(axis=1), 1.0, atol=1e-6)
    assert not np.allclose(flipped.iloc[:, 1:], plain.iloc[:, 1:])

    pictures = worst_validation_cams(load_config(CONFIG, opts), out, tmp_path / "cam", count=2)
    assert len(pictures) == 2 and all(path.is_file() for path in pictures)
    assert cv2.imread(str(pictures[0])).shape == (256 + TITLE_HEIGHT, 512, 3)
