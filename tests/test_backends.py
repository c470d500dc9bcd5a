"""Inference backends (models/backends.py): every backend gives the plain PyTorch answers.

Models get random weights with random batch-norm statistics (``randomize_weights``), so BN
folding changes every convolution and the heatmaps have clear peaks.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from common.boxes import keypoint_extent_boxes
from common.config import load_config
from common.stage_data import load_truth_table
from HRNet_bbox import engine as bbox_engine
from HRNet_bbox.codec import BoxCodec
from HRNet_bbox.dataset import WholeImageBoxDataset
from HRNet_keypoint import engine as keypoint_engine
from models.backends import (
    BACKENDS,
    ChannelsLast,
    OnnxRuntimeModel,
    cached_export_path,
    input_shape_for,
    load_inference_model,
    randomize_weights,
)
from models.onnxruntime_backend import optimized_graph_path
from models.openvino_backend import OpenVinoModel
from tests.conftest import load_tool

KEYPOINT_CFG = "experiments/keypoint/tiny_cpu_keypoint.yaml"
BBOX_CFG = "experiments/bbox/tiny_cpu_bbox.yaml"
TOLERANCE_PX = 0.05
CPU = torch.device("cpu")


def saved_random_model(cfg_path: str, folder: Path, opts: list[str], seed: int) -> Path:
    """``folder/model_best.pth`` of a randomly weighted model of the config."""
    cfg = load_config(cfg_path, opts)
    engine = keypoint_engine if cfg.TASK == "keypoint" else bbox_engine
    model = randomize_weights(engine.build_model(cfg, is_train=False), seed)
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), folder / "model_best.pth")
    return folder


@pytest.fixture(scope="module")
def keypoint_run(tmp_path_factory) -> Path:
    return saved_random_model(KEYPOINT_CFG, tmp_path_factory.mktemp("keypoint"), [], seed=3)


def keypoint_predictions(root: Path, run_dir: Path, backend: str) -> tuple[nn.Module, np.ndarray]:
    cfg = load_config(KEYPOINT_CFG, ["DATASET.ROOT", str(root), "TEST.BACKEND", backend,
                                     "TEST.PRECISION", "fp32"])  # fmt: skip
    assert cfg.TEST.FLIP_TEST and cfg.TEST.SHIFT_HEATMAP and cfg.TEST.POST_PROCESS
    truth = load_truth_table(cfg)
    model = keypoint_engine.load_model_for_test(cfg, run_dir, CPU)
    return model, keypoint_engine.predict_boxes(
        model, cfg, truth.paths, keypoint_extent_boxes(truth.keypoints), CPU
    )


@pytest.mark.slow
def test_every_backend_gives_the_plain_keypoints(tiny_motion, keypoint_run):
    plain_model, plain = keypoint_predictions(tiny_motion, keypoint_run, "torch")
    assert any(isinstance(m, nn.BatchNorm2d) for m in plain_model.modules())
    assert np.ptp(plain) > 20  # real, varied keypoints, not the zeros of empty heatmaps
    for backend in BACKENDS[1:]:
        model, coords = keypoint_predictions(tiny_motion, keypoint_run, backend)
        assert np.abs(coords - plain).max() <= TOLERANCE_PX, backend
        if backend == "fused":
            assert isinstance(model, ChannelsLast)
            assert not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
            conv1 = model.model.backbone.conv1
            assert conv1.weight.is_contiguous(memory_format=torch.channels_last)
        elif backend == "onnxruntime":
            assert isinstance(model, OnnxRuntimeModel)
        else:  # float32 asked for: OpenVINO's default on this CPU family is bfloat16
            assert isinstance(model, OpenVinoModel) and model.precision == "f32"
    # The export is cached beside the weights, keyed by their digest, and so is onnxruntime's
    # optimised graph of it for this machine.
    exports = [p for p in keypoint_run.glob("model_best.*.onnx") if ".optimized-" not in p.name]
    assert any((keypoint_run / "openvino-cache").iterdir())  # OpenVINO's compiled blob
    assert len(exports) == 1
    optimized = optimized_graph_path(exports[0])
    assert optimized.is_file() and optimized.with_name(optimized.name + ".data").is_file()
    assert not list(keypoint_run.glob(".optimizing-*"))  # the temporary folder is gone


def corners_px(model: nn.Module, cfg, paths: list[Path]) -> np.ndarray:
    """Raw predicted corners (N, 4) in image pixels, before any clipping."""
    dataset = WholeImageBoxDataset(cfg, paths, None, is_train=False)
    items = [dataset[i] for i in range(len(dataset))]
    sizes = np.array([[meta["width"], meta["height"]] for _, _, meta in items])
    with torch.inference_mode():
        output = model(torch.stack([item[0] for item in items]))
        corners = BoxCodec.from_cfg(cfg).normalized_corners(output)
    return corners.double().numpy() * np.tile(sizes, 2)


@pytest.mark.parametrize("head", ["pooled", "reference"])
@pytest.mark.slow
def test_every_backend_gives_the_plain_boxes(tiny_motion, tmp_path, head):
    opts = ["DATASET.ROOT", str(tiny_motion), "MODEL.BBOX_HEAD", head]
    cfg = load_config(BBOX_CFG, opts)
    model = randomize_weights(bbox_engine.build_model(cfg, is_train=False), seed=5)
    last = model[1].corner_logits if head == "pooled" else model[1].bbox_layer
    with torch.no_grad():
        last.weight.mul_(30)  # a sharper head, so that the corners move with the image
    torch.save(model.state_dict(), tmp_path / "model_best.pth")
    paths = load_truth_table(cfg).paths
    corners, boxes = {}, {}
    for backend in BACKENDS:
        cfg = load_config(BBOX_CFG, [*opts, "TEST.BACKEND", backend, "TEST.PRECISION", "fp32"])
        model = bbox_engine.load_model_for_test(cfg, tmp_path, CPU)
        corners[backend] = corners_px(model, cfg, paths)
        boxes[backend] = bbox_engine.predict_boxes_xywh(model, cfg, paths, CPU)
    assert np.ptp(corners["torch"], axis=0).max() > 0.5  # the corners depend on the image
    for backend in BACKENDS[1:]:
        assert np.abs(corners[backend] - corners["torch"]).max() <= TOLERANCE_PX, backend
        assert np.abs(boxes[backend] - boxes["torch"]).max() <= TOLERANCE_PX, backend


@pytest.mark.slow
def test_export_onnx_tool_and_onnx_file(tiny_motion, keypoint_run, tmp_path):
    onnx_path = tmp_path / "exported" / "model.onnx"
    export = load_tool("export_onnx").main([
        "--cfg", KEYPOINT_CFG, "--weights", str(keypoint_run / "model_best.pth"),
        "--out", str(onnx_path),
    ])  # fmt: skip
    assert onnx_path.is_file() and export["max_abs_difference"] < 1e-4

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    shutil.copy(keypoint_run / "model_best.pth", run_dir)
    opts = ["DATASET.ROOT", str(tiny_motion), "TEST.ONNX_FILE", str(onnx_path)]
    plain_cfg = load_config(KEYPOINT_CFG, [*opts, "TEST.BACKEND", "torch"])
    plain = keypoint_engine.load_model_for_test(plain_cfg, run_dir, CPU)
    cfg = load_config(KEYPOINT_CFG, [*opts, "TEST.BACKEND", "onnxruntime"])
    runner = keypoint_engine.load_model_for_test(cfg, run_dir, CPU)
    assert not list(run_dir.glob("*.onnx"))  # the given file is used, nothing exported
    images = torch.randn(3, 3, 128, 96)  # a batch size other than the export's
    with torch.inference_mode():
        assert torch.allclose(runner(images), plain(images), atol=1e-4)

    wrong = load_config(KEYPOINT_CFG, [*opts, "TEST.BACKEND", "onnxruntime",
                                       "MODEL.IMAGE_SIZE", "[64, 96]"])  # fmt: skip
    with pytest.raises(ValueError, match="re-export it"):
        keypoint_engine.load_model_for_test(wrong, run_dir, CPU)


@pytest.mark.slow
def test_a_cached_export_is_used_without_building_the_model(keypoint_run):
    cfg = load_config(KEYPOINT_CFG, ["TEST.BACKEND", "onnxruntime"])
    weights = keypoint_run / "model_best.pth"
    built = keypoint_engine.load_model_for_test(cfg, keypoint_run, CPU)  # exports on a miss
    assert cached_export_path(weights, cfg, input_shape_for(cfg)).is_file()

    def must_not_build() -> nn.Module:
        raise AssertionError("the PyTorch model was built although the export is cached")

    optimized = optimized_graph_path(cached_export_path(weights, cfg, input_shape_for(cfg)))
    assert optimized.is_file()  # saved when the export was first opened
    saved_at = optimized.stat().st_mtime_ns
    cached = load_inference_model(must_not_build, cfg, weights, CPU)
    assert isinstance(cached, OnnxRuntimeModel)
    assert optimized.stat().st_mtime_ns == saved_at  # reopened, not optimised and saved again
    images = torch.randn(2, 3, 128, 96)
    assert torch.equal(cached(images), built(images))
    other = load_config(KEYPOINT_CFG, ["TEST.BACKEND", "onnxruntime",
                                       "MODEL.SIGMA", str(cfg.MODEL.SIGMA + 1)])  # fmt: skip
    assert cached_export_path(weights, other, input_shape_for(other)) != cached_export_path(
        weights, cfg, input_shape_for(cfg))


def test_rewritten_weights_get_a_new_export(tmp_path):
    cfg = load_config(KEYPOINT_CFG, ["TEST.BACKEND", "onnxruntime"])
    run_dir = saved_random_model(KEYPOINT_CFG, tmp_path, [], seed=3)
    weights = run_dir / "model_best.pth"
    first = cached_export_path(weights, cfg, input_shape_for(cfg))
    assert cached_export_path(weights, cfg, input_shape_for(cfg)) == first
    saved_random_model(KEYPOINT_CFG, tmp_path / "retrained", [], seed=4)
    os.replace(tmp_path / "retrained" / "model_best.pth", weights)  # as checkpoints are saved
    assert cached_export_path(weights, cfg, input_shape_for(cfg)) != first


def test_unknown_backend_is_a_clear_error(keypoint_run):
    cfg = load_config(KEYPOINT_CFG, ["TEST.BACKEND", "tensorrt"])
    with pytest.raises(ValueError, match=r"TEST.BACKEND must be one of \['torch', 'fused'"):
        keypoint_engine.load_model_for_test(cfg, keypoint_run, CPU)


@pytest.mark.slow
def test_auto_picks_a_measured_engine_once_and_gives_the_plain_keypoints(tiny_motion, tmp_path,
                                                                         monkeypatch):  # fmt: skip
    run = saved_random_model(KEYPOINT_CFG, tmp_path / "run", [], seed=3)
    _, plain = keypoint_predictions(tiny_motion, run, "torch")
    model, coords = keypoint_predictions(tiny_motion, run, "auto")
    assert np.abs(coords - plain).max() <= TOLERANCE_PX
    [record] = run.glob("model_best.*.auto-*.json")
    measured = json.loads(record.read_text())
    assert set(measured["seconds_per_batch"]) == set(BACKENDS)
    assert measured["backend"] == min(measured["seconds_per_batch"],
                                      key=measured["seconds_per_batch"].get)  # fmt: skip

    def must_not_time(*args, **kwargs) -> None:
        raise AssertionError("timed again although the choice is cached")

    monkeypatch.setattr("models.auto_backend.fastest", must_not_time)
    again, coords_again = keypoint_predictions(tiny_motion, run, "auto")
    assert type(again) is type(model) and np.array_equal(coords_again, coords)
    # a damaged record is measured again, not an error
    monkeypatch.undo()
    record.write_text("{not json")
    keypoint_predictions(tiny_motion, run, "auto")
    assert json.loads(record.read_text())["backend"] in BACKENDS
