"""Stage one's engine: training plumbing and the test_annotation.pkl round trip."""

from __future__ import annotations

import logging
import math
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from common import stage_data
from common.box_files import read_box_annotations
from common.io import read_image
from common.stage_data import load_training_table
from common.trainer import fit
from HRNet_bbox import engine
from HRNet_bbox.model import (
    build_box_model,
)
from tests.bbox_setup import tiny_cfg

pytestmark = pytest.mark.slow  # training, the chain, DDP or the benchmark

LOGGER = logging.getLogger("test_bbox")


def test_one_epoch_then_test_writes_valid_records(synthetic_root: Path, tmp_path: Path) -> None:
    cfg = tiny_cfg("pooled", root=synthetic_root)
    cfg.DATASET.BBOX_AUG = "mild"
    cfg.TRAIN.END_EPOCH = 1
    table = load_training_table(cfg)
    model = engine.build_model(cfg, is_train=True)
    stage = engine.build_stage(cfg, model, table.subset(np.arange(4)),
                               table.subset(np.arange(4, 6)), torch.device("cpu"))
    summary = fit(cfg, stage, tmp_path, LOGGER)
    assert summary["best_epoch"] == 0 and math.isfinite(summary["best_perf"])
    scores = engine.evaluate(cfg, model, table.subset(np.arange(4, 6)), torch.device("cpu"))
    assert scores["corner_error"] == pytest.approx(summary["best_perf"])
    assert 0.0 <= scores["iou"] <= 1.0

    result = engine.run_test(cfg, tmp_path, LOGGER, torch.device("cpu"))
    names = stage_data.test_image_names(cfg)  # the submission order
    records = read_box_annotations(result, expected_filenames=names)
    assert len(records) == 5
    for name in names:
        record = records[name]
        x, y, w, h = record["bbox"]
        assert record["width"] == 128 and record["height"] == 72
        assert w >= 1 and h >= 1 and x >= 0 and y >= 0 and x + w <= 128 and y + h <= 72
        assert record["area"] == pytest.approx(w * h)


def test_reference_head_trains_on_scaled_pixels(synthetic_root: Path) -> None:
    cfg = tiny_cfg("reference", root=synthetic_root)
    cfg.DATASET.BBOX_AUG = "reference"
    table = load_training_table(cfg)
    model = engine.build_model(cfg, is_train=True)
    stage = engine.build_stage(cfg, model, table.subset(np.arange(4)),
                               table.subset(np.arange(4, 6)), torch.device("cpu"))
    torch.manual_seed(0)
    batch = next(iter(stage.make_train_loader(torch.Generator().manual_seed(0))))
    loss = stage.train_step(model, batch)
    # An untrained head predicts about 0, so the loss is near the mean squared target corner
    # in original pixels: x times 128/64, y times 72/32.
    _, target, _ = batch
    in_original_pixels = target * torch.tensor([2.0, 2.25, 2.0, 2.25])
    assert loss.item() == pytest.approx(float(in_original_pixels.pow(2).mean()), rel=0.05)
    loss.backward()
    grad = model[1].bbox_layer.weight.grad
    assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0
    metrics = stage.validate(model, 0)
    assert set(metrics) == {"metric", "iou", "corner_error"}
    assert metrics["metric"] == metrics["corner_error"] > 0


def test_run_test_round_trip_with_a_random_model(synthetic_root: Path, tmp_path: Path) -> None:
    cfg = tiny_cfg("pooled", root=synthetic_root)
    model = build_box_model(cfg, is_train=False)
    torch.save(model.state_dict(), tmp_path / "model_best.pth")
    result = engine.run_test(cfg, tmp_path, LOGGER, torch.device("cpu"))
    assert result == tmp_path / "test_annotation.pkl"
    names = stage_data.test_image_names(cfg)  # the submission order
    raw = read_box_annotations(result, expected_filenames=names)
    with open(result, "rb") as handle:
        plain = pickle.load(handle)  # our own file: plain python types only
    assert [record["filename"] for record in plain] == names
    for record in plain:
        assert type(record["width"]) is int and type(record["height"]) is int
        assert all(type(v) is float for v in record["bbox"]) and type(record["area"]) is float
    decoded = [read_image(synthetic_root / cfg.DATASET.TEST_IMAGE_DIR / n) for n in names]
    paths = [synthetic_root / cfg.DATASET.TEST_IMAGE_DIR / n for n in names]
    shared = engine.predict_boxes_xywh(model, cfg, paths, torch.device("cpu"), images=decoded)
    np.testing.assert_allclose(shared, [raw[n]["bbox"] for n in names], rtol=1e-6)

    other = tmp_path / "elsewhere"
    other.mkdir()
    cfg.TEST.MODEL_FILE = str(tmp_path / "model_best.pth")
    assert engine.run_test(cfg, other, LOGGER, torch.device("cpu")).is_file()
    wrong = build_box_model(tiny_cfg("reference"), is_train=False)
    torch.save(wrong.state_dict(), other / "wrong.pth")
    cfg.TEST.MODEL_FILE = str(other / "wrong.pth")
    with pytest.raises(ValueError, match="does not fit"):
        engine.run_test(cfg, other, LOGGER, torch.device("cpu"))
