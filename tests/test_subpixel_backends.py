"""DARK, UDP and test-time scales keep every backend within 0.05 px of plain PyTorch."""

from __future__ import annotations

import numpy as np
import pytest

from common.boxes import keypoint_extent_boxes
from common.config import load_config
from common.stage_data import load_truth_table
from HRNet_keypoint import engine as keypoint_engine
from models.backends import BACKENDS
from tests.test_backends import CPU, KEYPOINT_CFG, TOLERANCE_PX, saved_random_model


@pytest.fixture(scope="module")
def random_run(tmp_path_factory):
    return saved_random_model(KEYPOINT_CFG, tmp_path_factory.mktemp("subpixel"), [], seed=5)


@pytest.mark.parametrize("options", [
    ["TEST.DECODE", "dark", "MODEL.UDP", "True"],
    pytest.param(["TEST.DECODE", "dark", "TEST.SCALES", "[0.9, 1.0, 1.1]"],
                 marks=pytest.mark.slow),
])  # fmt: skip
def test_every_backend_gives_the_plain_keypoints_with_sub_pixel_options(
    tiny_motion, random_run, options
):
    answers = {}
    for backend in BACKENDS:
        cfg = load_config(KEYPOINT_CFG, ["DATASET.ROOT", str(tiny_motion), "TEST.BACKEND",
                                         backend, "TEST.PRECISION", "fp32", *options])  # fmt: skip
        truth = load_truth_table(cfg)
        model = keypoint_engine.load_model_for_test(cfg, random_run, CPU)
        answers[backend] = keypoint_engine.predict_boxes(
            model, cfg, truth.paths, keypoint_extent_boxes(truth.keypoints), CPU
        )
    plain = answers["torch"]
    assert np.ptp(plain) > 20
    for backend in BACKENDS[1:]:
        assert np.abs(answers[backend] - plain).max() <= TOLERANCE_PX, backend
