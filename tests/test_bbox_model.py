"""Stage one's model: head shapes for any input size, the reference checkpoint layout, and
the experiment files' models."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from torch import nn

from common.config import load_config
from common.state_dict import load_state_dict_strict
from HRNet_bbox.codec import BoxCodec
from HRNet_bbox.model import (
    BoxRegressor,
    ReferenceBoxHead,
    SoftArgmaxBoxHead,
    build_box_model,
    heatmap_size_for,
)
from models.hrnet import PoseHighResolutionNet
from tests.bbox_setup import ROOT, SIZES, tiny_cfg


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("head", ["reference", "pooled"])
def test_head_output_shapes(head: str, size: list[int]) -> None:
    model = build_box_model(tiny_cfg(head, size), is_train=False).eval()
    width, height = size
    with torch.no_grad():
        output = model(torch.randn(2, 3, height, width))
        corners = BoxCodec(head, size).normalized_corners(output)
    assert output.shape == (2, 4)
    assert torch.isfinite(output).all()
    if head == "pooled":
        assert isinstance(model[1], SoftArgmaxBoxHead)
        assert ((corners >= 0) & (corners < 1)).all()
    else:
        assert isinstance(model[1], ReferenceBoxHead)
        assert torch.allclose(corners * torch.tensor([width, height, width, height]), output)


@pytest.mark.parametrize("size", SIZES)
def test_reference_head_input_matches_the_real_heatmaps(size: list[int]) -> None:
    cfg = tiny_cfg("reference", size)
    model = build_box_model(cfg, is_train=False).eval()
    width, height = size
    with torch.no_grad():
        heatmaps = model[0](torch.randn(1, 3, height, width))
    assert heatmaps.shape[1:] == (24, height // 4, width // 4)
    assert heatmap_size_for(size) == (height // 4, width // 4)
    assert model[1].bbox_layer.in_features == math.prod(heatmaps.shape[1:])
    with pytest.raises(ValueError, match="input size differs"):
        model[1](torch.zeros(1, 24, height // 4 + 1, width // 4))


def test_reference_w48_head_matches_the_competition_model() -> None:
    """At [288, 384] (h, w) the reference head has 663,556 + 48 (bn1) parameters; with the
    W48 backbone (63,596,088, tests/test_hrnet.py) the model has the reference's 64,259,692."""
    head = ReferenceBoxHead(24, heatmap_size_for([384, 288]))
    assert head.bbox_layer.in_features == 24 * 72 * 96 == 165888
    head_params = sum(p.numel() for p in head.parameters())
    assert head_params == 663_556 + 48
    assert 63_596_088 + head_params == 64_259_692
    state = build_box_model(tiny_cfg("reference"), is_train=False).state_dict()
    for key in ("0.conv1.weight", "0.final_layer.weight", "1.bbox_layer.weight",
                "1.bn1.running_mean"):
        assert key in state


def test_reference_checkpoint_layout_loads_strictly(tmp_path: Path) -> None:
    """A model saved as nn.Sequential(pose_hrnet, head with bbox_layer and bn1), as the
    reference saved it, loads into our reference model with no missing or extra key."""
    cfg = tiny_cfg("reference", (64, 32))

    class Head(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.bbox_layer = nn.Linear(24 * 8 * 16, 4)
            self.bn1 = nn.BatchNorm2d(24)

    foreign = nn.Sequential(PoseHighResolutionNet(cfg.MODEL.EXTRA, 24), Head())
    torch.save(foreign.state_dict(), tmp_path / "model_best.pth")
    model = build_box_model(cfg, is_train=False)
    load_state_dict_strict(model, tmp_path / "model_best.pth")
    assert torch.equal(model[1].bbox_layer.weight, foreign[1].bbox_layer.weight)


def test_pooled_head_drops_the_unused_keypoint_layer_and_is_small() -> None:
    model = build_box_model(tiny_cfg("pooled"), is_train=False)
    assert not any(key.startswith("0.final_layer") for key in model.state_dict())
    reference = build_box_model(tiny_cfg("reference", (384, 288)), is_train=False)
    assert sum(p.numel() for p in model[1].parameters()) * 20 < sum(
        p.numel() for p in reference[1].parameters())


def test_unknown_head_and_bad_input_size_are_refused() -> None:
    with pytest.raises(ValueError, match="BBOX_HEAD"):
        build_box_model(tiny_cfg("linear"), is_train=False)
    with pytest.raises(ValueError, match="multiples of 32"):
        build_box_model(tiny_cfg("pooled", (128, 72)), is_train=False)




# --------------------------------------------------------------------------- experiment files


def test_tiny_config_builds_the_pooled_model() -> None:
    cfg = load_config(ROOT / "experiments/bbox/tiny_cpu_bbox.yaml")
    assert cfg.TASK == "bbox" and cfg.MODEL.BBOX_HEAD == "pooled"
    assert cfg.DATASET.GROUP_SPLIT and cfg.DATASET.ROOT == "data/synthetic/motion"
    model = build_box_model(cfg, is_train=True)
    assert isinstance(model, BoxRegressor)
    width, height = cfg.MODEL.IMAGE_SIZE
    assert width > height  # wide, like the frames


def test_leaderboard_config_is_the_reference() -> None:
    cfg = load_config(ROOT / "experiments/bbox/w48_384x288_adam_lr1e-3_03_origin.yaml")
    assert cfg.TASK == "bbox" and cfg.MODEL.BBOX_HEAD == "reference"
    assert list(cfg.MODEL.IMAGE_SIZE) == [384, 288]  # 384 wide x 288 tall
    assert cfg.TEST_RATIO == 0.3 and cfg.INPUT_SIZE == 288 and cfg.AUTO_RESUME
    assert not cfg.DATASET.COLOR_RGB and cfg.DATASET.BBOX_AUG == "reference"
    assert cfg.DATASET.DROP_REFERENCE_ROWS and cfg.CUDNN.BENCHMARK
    assert cfg.TRAIN.END_EPOCH == 200 and list(cfg.TRAIN.LR_STEP) == [170, 200]
    assert cfg.TRAIN.BATCH_SIZE_PER_GPU == 8 and cfg.TRAIN.LR == 0.001
    assert list(cfg.MODEL.EXTRA.STAGE4.NUM_CHANNELS) == [48, 96, 192, 384]
    head = ReferenceBoxHead(cfg.MODEL.NUM_JOINTS, heatmap_size_for(cfg.MODEL.IMAGE_SIZE))
    assert head.bbox_layer.in_features == 165888
