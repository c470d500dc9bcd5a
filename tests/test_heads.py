"""Stage two's network from parts (HRNet_keypoint/model.py): a backbone and a head from their
registries, under the official key names, and a new head as one file plus one registry line."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from common.errors import ConfigError
from common.keypoint_table import KeypointTable
from common.state_dict import load_state_dict_strict
from HRNet_keypoint.engine import build_model, build_stage
from HRNet_keypoint.heads import HEADS, head_class
from HRNet_keypoint.inference import predict_heatmaps
from HRNet_keypoint.model import PoseModel, build_pose_model
from models.hrnet import PoseHighResolutionNet, build_pose_hrnet, hrnet_extra
from tests.test_hrnet import tiny_cfg

NEW_HEAD = '''
import torch
from torch import nn


class CoordinateHead(nn.Module):
    """Features -> per-joint heatmaps by a 3x3 conv, a soft-argmax loss on them."""

    def __init__(self, cfg, in_channels):
        super().__init__()
        self.joint_maps = nn.Conv2d(in_channels, int(cfg.MODEL.NUM_JOINTS), 3, padding=1)

    def forward(self, features):
        return self.joint_maps(features)

    def loss(self, output, target, target_weight):
        return ((output.softmax(-1) - target.softmax(-1)) ** 2).mean()

    @staticmethod
    def merge_flipped(output, flipped, flip_pairs, shift):
        return torch.maximum(output, flipped.flip(3))
'''


@pytest.mark.parametrize("width", [32, 48])
def test_the_composed_model_keeps_the_official_keys_and_loads_official_files_strictly(
    width: int,
) -> None:
    cfg = tiny_cfg(joints=17)
    cfg.MODEL.EXTRA = hrnet_extra([width, 2 * width, 4 * width, 8 * width])
    with torch.device("meta"):
        official = PoseHighResolutionNet(cfg.MODEL.EXTRA, 17)
        model = build_pose_model(cfg, is_train=False)
    assert isinstance(model, PoseModel) and hasattr(model, "backbone") and hasattr(model, "head")
    assert list(model.state_dict()) == list(official.state_dict())
    assert {k: v.shape for k, v in model.state_dict().items()} == {
        k: v.shape for k, v in official.state_dict().items()}  # fmt: skip


@pytest.mark.slow
def test_official_weights_give_the_official_heatmaps_and_round_trip() -> None:
    cfg = tiny_cfg(joints=7)
    torch.manual_seed(0)
    official = build_pose_hrnet(cfg, is_train=False).eval()
    model = build_pose_model(cfg, is_train=False).eval()
    load_state_dict_strict(model, official.state_dict())
    images = torch.randn(2, 3, 64, 32)
    with torch.no_grad():
        torch.testing.assert_close(model(images), official(images), rtol=0, atol=0)
    back = build_pose_hrnet(cfg, is_train=False)
    load_state_dict_strict(back, model.state_dict())  # and the official code reads ours
    for key, tensor in official.state_dict().items():
        assert torch.equal(back.state_dict()[key], tensor), key


@pytest.mark.slow
def test_the_stage_trains_through_the_heads_loss(tmp_path) -> None:
    cfg = tiny_cfg(joints=24)
    cfg.MODEL.IMAGE_SIZE, cfg.MODEL.HEATMAP_SIZE, cfg.WORKERS = [32, 64], [8, 16], 0
    paths = []
    for i in range(2):
        paths.append(tmp_path / f"{i}.png")
        cv2.imwrite(str(paths[-1]), np.full((80, 60, 3), 40 * i, np.uint8))
    points = np.random.default_rng(0).uniform(10, 50, (2, 24, 2))
    table = KeypointTable([p.name for p in paths], paths, points)
    model = build_model(cfg, is_train=True)
    calls = []
    model.head.loss = lambda *args: calls.append(args) or torch.zeros((), requires_grad=True)
    stage = build_stage(cfg, model, table, table, torch.device("cpu"))
    stage.train_step(model, next(iter(stage.make_train_loader(torch.Generator()))))
    assert len(calls) == 1 and calls[0][0].shape[1:] == (24, 16, 8)


@pytest.mark.slow
def test_a_new_head_is_one_file_and_one_registry_line(tmp_path, monkeypatch) -> None:
    (tmp_path / "coordinate_head.py").write_text(NEW_HEAD)  # the one file
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(HEADS, "coordinate", "coordinate_head:CoordinateHead")  # the one line
    cfg = tiny_cfg(joints=3)
    cfg.MODEL.HEAD, cfg.TEST.FLIP_TEST = "coordinate", True
    model = build_pose_model(cfg, is_train=False).eval()
    assert "joint_maps.weight" in model.state_dict() and "conv1.weight" in model.state_dict()
    images = torch.randn(2, 3, 64, 32)
    with torch.no_grad():
        maps = model(images)
        merged = torch.maximum(maps, model(images.flip(3)).flip(3))
    loss = model.head.loss(maps, torch.zeros_like(maps), torch.ones(2, 3, 1))
    assert loss.ndim == 0
    with torch.no_grad():  # its own flip test
        got = predict_heatmaps(model, images, True, [(0, 1)], False, head_class(cfg))
    torch.testing.assert_close(got, merged, rtol=0, atol=0)


def test_an_unknown_head_or_backbone_is_a_config_error() -> None:
    cfg = tiny_cfg()
    cfg.MODEL.HEAD = "simcc"
    with pytest.raises(ConfigError, match="MODEL.HEAD must be one of"):
        build_pose_model(cfg, is_train=False)
    cfg.MODEL.HEAD, cfg.MODEL.BACKBONE = "heatmap", "resnet"
    with pytest.raises(ConfigError, match="MODEL.BACKBONE must be one of"):
        build_pose_model(cfg, is_train=False)
