"""Cheaper-FLOP inference (issue 16): the int8 onnxruntime backend and bfloat16 autocast.

Their answers differ from fp32 by rounding, so they are held to a loose bound on the network's
outputs, relative to the part of the outputs that depends on the image, a bound that a
wrongly calibrated graph does not meet.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from common.boxes import keypoint_extent_boxes
from common.config import load_config
from common.errors import ConfigError
from common.stage_data import load_truth_table
from HRNet_bbox import engine as bbox_engine
from HRNet_bbox.dataset import WholeImageBoxDataset
from HRNet_keypoint import engine as keypoint_engine
from HRNet_keypoint.dataset import BoxDataset
from models.backends import (
    Bfloat16,
    ChannelsLast,
    OnnxRuntimeModel,
    cached_export_path,
    input_shape_for,
)
from models.calibration import calibration_table
from models.openvino_backend import OpenVinoModel
from models.quantize import calibration_indices, quantize_export, quantized_path
from tests.conftest import ROOT
from tests.test_backends import BBOX_CFG, CPU, KEYPOINT_CFG, saved_random_model

CALIBRATION = ["TEST.INT8_CALIBRATION_IMAGES", "8"]
# See relative_error: on the tiny random keypoint model int8 gives about 0.33 and bf16 0.17;
# an int8 graph calibrated on blank inputs gives 1.3.
RELATIVE_BOUND = 0.6


def relative_error(output: torch.Tensor, reference: torch.Tensor) -> float:
    """Mean |output - reference| over the mean |reference - its mean over the batch|: random
    weights give outputs that are mostly a constant, and only the rest tells images apart."""
    spread = (reference - reference.mean(dim=0)).abs().mean()
    return float((output - reference).abs().mean() / spread)


@pytest.fixture(scope="module")
def keypoint_run(tmp_path_factory) -> Path:
    return saved_random_model(KEYPOINT_CFG, tmp_path_factory.mktemp("int8_keypoint"), [], seed=3)


def keypoint_cfg(root: Path, backend: str, *extra: str):
    return load_config(KEYPOINT_CFG, ["DATASET.ROOT", str(root), "TEST.BACKEND", backend,
                                      *CALIBRATION, *extra])  # fmt: skip


def held_out_crops(cfg) -> torch.Tensor:
    """The test images cropped on their true boxes: inputs the int8 graph was not fitted on."""
    truth = load_truth_table(cfg)
    dataset = BoxDataset(cfg, truth.paths, keypoint_extent_boxes(truth.keypoints))
    return torch.stack([dataset[i][0] for i in range(len(dataset))])


def forward(model: torch.nn.Module, images: torch.Tensor) -> torch.Tensor:
    with torch.inference_mode():
        return model(images)


def test_int8_keypoints_are_close_to_fp32_and_quantised_once(tiny_motion, keypoint_run,
                                                             monkeypatch):  # fmt: skip
    fp32_cfg = keypoint_cfg(tiny_motion, "onnxruntime")
    images = held_out_crops(fp32_cfg)
    fp32 = forward(keypoint_engine.load_model_for_test(fp32_cfg, keypoint_run, CPU), images)
    cfg = keypoint_cfg(tiny_motion, "onnxruntime-int8")
    model = keypoint_engine.load_model_for_test(cfg, keypoint_run, CPU)
    assert isinstance(model, OnnxRuntimeModel)
    int8 = forward(model, images)
    assert int8.shape == fp32.shape and int8.dtype == torch.float32
    assert torch.isfinite(int8).all()
    assert 0 < relative_error(int8, fp32) <= RELATIVE_BOUND

    export = cached_export_path(keypoint_run / "model_best.pth", cfg, input_shape_for(cfg))
    graph = quantized_path(export, cfg)
    assert graph.is_file() and graph.parent == export.parent  # beside the fp32 export
    assert [p for p in keypoint_run.glob("*.int8-*.onnx") if ".optimized-" not in p.name] == [graph]
    made_at = graph.stat().st_mtime_ns

    def must_not_quantise(*args, **kwargs) -> None:
        raise AssertionError("quantised again although the int8 graph is cached")

    monkeypatch.setattr("onnxruntime.quantization.quantize_static", must_not_quantise)
    monkeypatch.setattr("models.calibration.load_training_table", must_not_quantise)
    again = keypoint_engine.load_model_for_test(cfg, keypoint_run, CPU)
    assert torch.equal(forward(again, images), int8)
    assert graph.stat().st_mtime_ns == made_at
    # Other calibration settings are another graph.
    other = keypoint_cfg(tiny_motion, "onnxruntime-int8", "TEST.INT8_CALIBRATION_IMAGES", "4")
    assert quantized_path(export, other) != graph


def test_a_graph_calibrated_on_blank_inputs_fails_the_bound(tiny_motion, keypoint_run, tmp_path):
    """The bound above can fail: ranges measured on blank crops clip every real activation."""
    cfg = keypoint_cfg(tiny_motion, "onnxruntime")
    images = held_out_crops(cfg)
    fp32 = keypoint_engine.load_model_for_test(cfg, keypoint_run, CPU)
    export = cached_export_path(keypoint_run / "model_best.pth", cfg, input_shape_for(cfg))
    blank = quantize_export(export, tmp_path / "blank.onnx",
                            np.zeros((4, *images.shape[1:]), np.float32))  # fmt: skip
    assert relative_error(forward(OnnxRuntimeModel(blank), images),
                          forward(fp32, images)) > RELATIVE_BOUND  # fmt: skip


def test_int8_boxes_are_close_to_fp32(tiny_motion, tmp_path):
    run = saved_random_model(BBOX_CFG, tmp_path, [], seed=5)
    opts = ["DATASET.ROOT", str(tiny_motion), *CALIBRATION, "TEST.BACKEND"]
    fp32_cfg = load_config(BBOX_CFG, [*opts, "onnxruntime"])
    paths = load_truth_table(fp32_cfg).paths
    dataset = WholeImageBoxDataset(fp32_cfg, paths, None, is_train=False)
    images = torch.stack([dataset[i][0] for i in range(len(dataset))])
    fp32 = forward(bbox_engine.load_model_for_test(fp32_cfg, run, CPU), images)
    int8_cfg = load_config(BBOX_CFG, [*opts, "onnxruntime-int8"])
    int8 = forward(bbox_engine.load_model_for_test(int8_cfg, run, CPU), images)
    assert int8.shape == fp32.shape and torch.isfinite(int8).all()
    assert relative_error(int8, fp32) <= RELATIVE_BOUND
    assert len([p for p in run.glob("*.int8-*.onnx") if ".optimized-" not in p.name]) == 1


def test_the_calibration_draw_is_seeded_and_from_the_training_table(tiny_motion):
    assert np.array_equal(calibration_indices(50, 8, 3), calibration_indices(50, 8, 3))
    assert not np.array_equal(calibration_indices(50, 8, 3), calibration_indices(50, 8, 4))
    assert np.array_equal(calibration_indices(5, 8, 3), np.arange(5))  # fewer rows: all
    with pytest.raises(ConfigError, match="INT8_CALIBRATION_IMAGES"):
        calibration_indices(50, 0, 3)
    table = calibration_table(keypoint_cfg(tiny_motion, "onnxruntime-int8"))
    assert len(table.names) == 8
    assert all("train" in str(path.parent) for path in table.paths)


@pytest.mark.slow
def test_int8_without_training_data_is_a_one_line_error(tiny_motion, tmp_path):
    run = saved_random_model(BBOX_CFG, tmp_path / "run", [], seed=5)
    result = subprocess.run(
        [sys.executable, "tools/test.py", "--cfg", BBOX_CFG, "--output_path", str(run),
         "DATASET.ROOT", str(tiny_motion), "DATASET.TRAIN_CSV", "absent.csv",
         "TEST.BACKEND", "onnxruntime-int8"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: TEST.BACKEND onnxruntime-int8")
    assert "DATASET.ROOT" in lines[0] and "absent.csv" in lines[0]
    assert not list(run.glob("*.int8-*.onnx"))


def test_openvino_runs_the_cached_int8_graph(tiny_motion, keypoint_run):
    fp32_cfg = keypoint_cfg(tiny_motion, "openvino")
    images = held_out_crops(fp32_cfg)
    fp32 = forward(keypoint_engine.load_model_for_test(fp32_cfg, keypoint_run, CPU), images)
    cfg = keypoint_cfg(tiny_motion, "openvino-int8")
    model = keypoint_engine.load_model_for_test(cfg, keypoint_run, CPU)
    assert isinstance(model, OpenVinoModel) and model.precision == "f32"
    int8 = forward(model, images)
    assert int8.shape == fp32.shape and torch.isfinite(int8).all()
    assert 0 < relative_error(int8, fp32) <= RELATIVE_BOUND
    # the same QDQ graph as onnxruntime-int8's, quantised once beside the export
    assert len([p for p in keypoint_run.glob("*.int8-*.onnx") if ".optimized-" not in p.name]) == 1


@pytest.mark.parametrize("backend", ["torch", "fused", "openvino"])
def test_bf16_is_close_to_fp32(tiny_motion, keypoint_run, backend):
    cfg = keypoint_cfg(tiny_motion, backend, "TEST.PRECISION", "fp32")
    images = held_out_crops(cfg)
    fp32 = forward(keypoint_engine.load_model_for_test(cfg, keypoint_run, CPU), images)
    bf16_cfg = keypoint_cfg(tiny_motion, backend, "TEST.BF16", "True")
    model = keypoint_engine.load_model_for_test(bf16_cfg, keypoint_run, CPU)
    if backend == "openvino":
        assert isinstance(model, OpenVinoModel) and model.precision == "bf16"
    else:
        assert isinstance(model, Bfloat16)
        assert isinstance(model.model, ChannelsLast) == (backend == "fused")
    bf16 = forward(model, images)
    assert bf16.dtype == torch.float32 and bf16.shape == fp32.shape
    assert 0 < relative_error(bf16, fp32) <= RELATIVE_BOUND


@pytest.mark.parametrize("backend", ["onnxruntime", "onnxruntime-int8", "openvino-int8"])
def test_bf16_is_refused_with_onnxruntime(tiny_motion, keypoint_run, backend):
    cfg = keypoint_cfg(tiny_motion, backend, "TEST.BF16", "True")
    with pytest.raises(ConfigError, match="TEST.BF16 .* no bfloat16 convolutions"):
        keypoint_engine.load_model_for_test(cfg, keypoint_run, CPU)
