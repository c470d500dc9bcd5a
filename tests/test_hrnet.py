"""The HRNet rebuild: official key names, shapes and counts; forward shapes; init; BN folding."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from common.config import get_defaults
from models.fuse import fuse_conv_bn
from models.hrnet import PoseHighResolutionNet, build_pose_hrnet, hrnet_extra, init_weights

TINY_WIDTHS = [8, 16, 32, 64]


def official_on_meta(width: int, joints: int) -> PoseHighResolutionNet:
    """A full-size official model without memory or init cost: shapes only."""
    with torch.device("meta"):
        return PoseHighResolutionNet(hrnet_extra([width, 2 * width, 4 * width, 8 * width]),
                                     joints)


def tiny_model(joints: int = 24, **extra_options) -> PoseHighResolutionNet:
    return PoseHighResolutionNet(hrnet_extra(TINY_WIDTHS, blocks=1, modules=(1, 1, 1),
                                             **extra_options), joints)


def tiny_cfg(pretrained: str = "", joints: int = 24):
    cfg = get_defaults()
    cfg.MODEL.EXTRA = hrnet_extra(TINY_WIDTHS, blocks=1, modules=(1, 1, 1))
    cfg.MODEL.NUM_JOINTS = joints
    cfg.MODEL.PRETRAINED = pretrained
    return cfg


@pytest.mark.parametrize(("width", "joints", "params"), [
    (48, 24, 63_596_088), (48, 17, 63_595_745), (32, 24, 28_536_344), (32, 17, 28_536_113),
])
def test_official_sizes(width: int, joints: int, params: int) -> None:
    model = official_on_meta(width, joints)
    state = model.state_dict()
    assert len(state) == 1754
    assert sum(not k.endswith("num_batches_tracked") for k in state) == 1462
    assert sum(k.endswith("num_batches_tracked") for k in state) == 292
    assert sum(p.numel() for p in model.parameters()) == params
    assert model.out_channels == width


def test_official_key_names_and_shapes_w48() -> None:
    state = official_on_meta(48, 24).state_dict()
    expected = {
        "conv1.weight": (64, 3, 3, 3),
        "bn2.running_var": (64,),
        "layer1.0.downsample.0.weight": (256, 64, 1, 1),
        "layer1.0.downsample.1.weight": (256,),
        "layer1.0.conv1.weight": (64, 64, 1, 1),
        "layer1.3.conv1.weight": (64, 256, 1, 1),
        "layer1.3.conv3.weight": (256, 64, 1, 1),
        "transition1.0.0.weight": (48, 256, 3, 3),
        "transition1.0.1.weight": (48,),
        "transition1.1.0.0.weight": (96, 256, 3, 3),
        "transition1.1.0.1.running_mean": (96,),
        "transition2.2.0.0.weight": (192, 96, 3, 3),
        "transition3.3.0.0.weight": (384, 192, 3, 3),
        "stage2.0.branches.1.3.conv2.weight": (96, 96, 3, 3),
        "stage2.0.fuse_layers.0.1.0.weight": (48, 96, 1, 1),
        "stage2.0.fuse_layers.1.0.0.0.weight": (96, 48, 3, 3),
        "stage3.3.branches.2.0.bn1.weight": (192,),
        "stage3.0.fuse_layers.2.0.0.0.weight": (48, 48, 3, 3),
        "stage3.0.fuse_layers.2.0.1.0.weight": (192, 48, 3, 3),
        "stage3.0.fuse_layers.2.1.0.0.weight": (192, 96, 3, 3),
        "stage3.0.fuse_layers.0.2.1.weight": (48,),
        "stage4.1.fuse_layers.3.0.2.0.weight": (384, 48, 3, 3),
        "stage4.1.fuse_layers.3.2.0.1.num_batches_tracked": (),
        "stage4.2.fuse_layers.0.3.0.weight": (48, 384, 1, 1),
        "stage4.2.branches.3.3.conv2.weight": (384, 384, 3, 3),
        "final_layer.weight": (24, 48, 1, 1),
        "final_layer.bias": (24,),
    }
    for key, shape in expected.items():
        assert key in state, key
        assert tuple(state[key].shape) == shape, key
    # None entries own no keys; the last module keeps only the high-resolution output.
    for prefix in ("transition2.0.", "transition2.1.", "transition3.2.",
                   "stage2.0.fuse_layers.0.0.", "stage4.2.fuse_layers.1.", "stage4.3.",
                   "stage3.4.", "layer1.1.downsample"):
        assert not any(k.startswith(prefix) for k in state), prefix
    assert "conv1.bias" not in state


def test_output_stride_4_for_384x288() -> None:
    model = tiny_model().eval()
    with torch.no_grad():
        heatmaps = model(torch.randn(1, 3, 384, 288))
        features = model.forward_features(torch.randn(1, 3, 384, 288))
    assert heatmaps.shape == (1, 24, 96, 72)
    assert features.shape == (1, 8, 96, 72)
    assert model.out_channels == 8


def test_final_conv_kernel_3_keeps_size() -> None:
    model = tiny_model(joints=5, final_conv_kernel=3).eval()
    assert model.final_layer.weight.shape == (5, 8, 3, 3)
    with torch.no_grad():
        assert model(torch.randn(1, 3, 64, 32)).shape == (1, 5, 16, 8)


def test_bottleneck_stage_widens_by_four() -> None:
    extra = hrnet_extra(TINY_WIDTHS, blocks=1, modules=(1, 1, 1))
    extra.STAGE4.BLOCK = "BOTTLENECK"
    model = PoseHighResolutionNet(extra, 3).eval()
    assert model.out_channels == 32
    assert model.state_dict()["stage4.0.branches.0.0.conv3.weight"].shape == (32, 8, 1, 1)
    with torch.no_grad():
        assert model(torch.randn(1, 3, 64, 64)).shape == (1, 3, 16, 16)


def test_every_parameter_reaches_the_output() -> None:
    model = tiny_model(joints=3)
    model(torch.randn(2, 3, 64, 64)).square().sum().backward()
    unused = [name for name, p in model.named_parameters()
              if p.grad is None or not p.grad.abs().sum() > 0]
    assert unused == []


def test_input_size_must_divide_by_32() -> None:
    with pytest.raises(ValueError, match="100x64"):
        tiny_model()(torch.randn(1, 3, 100, 64))


def test_inconsistent_stage_config_names_the_key() -> None:
    extra = hrnet_extra(TINY_WIDTHS, blocks=1, modules=(1, 1, 1))
    extra.STAGE3.NUM_CHANNELS = [8, 16]
    with pytest.raises(ValueError, match="MODEL.EXTRA.STAGE3"):
        PoseHighResolutionNet(extra, 24)
    extra = hrnet_extra(TINY_WIDTHS, blocks=1, modules=(1, 1, 1))
    extra.STAGE2.BLOCK = "RES"
    with pytest.raises(ValueError, match="STAGE2.BLOCK"):
        PoseHighResolutionNet(extra, 24)


def test_init_weights_is_official() -> None:
    model = tiny_model()
    init_weights(model)
    conv_weights = torch.cat([m.weight.flatten() for m in model.modules()
                              if isinstance(m, nn.Conv2d)])
    assert 0.0009 < conv_weights.std().item() < 0.0011
    assert abs(conv_weights.mean().item()) < 1e-4
    assert torch.count_nonzero(model.final_layer.bias) == 0
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            assert torch.all(module.weight == 1) and torch.all(module.bias == 0)
            assert module.momentum == 0.1


def test_building_on_meta_skips_the_init_and_stays_light() -> None:
    """A test-time model is built on the meta device and then given its weights; the init must
    not run there, since normal_ on meta tensors imports torch._dynamo (about 1 s a process)."""
    code = (
        "import sys, torch\n"
        "from common.config import load_config\n"
        "from HRNet_bbox.engine import build_model\n"
        "for cfg_path in ('experiments/bbox/w48_384x288_adam_lr1e-3_03_origin.yaml',\n"
        "                 'experiments/bbox/tiny_cpu_bbox.yaml'):\n"
        "    cfg = load_config(cfg_path, ['MODEL.PRETRAINED', ''])\n"
        "    with torch.device('meta'):\n"
        "        model = build_model(cfg, is_train=False)\n"
        "    assert next(model.parameters()).is_meta\n"
        "print('dynamo' if 'torch._dynamo' in sys.modules else 'light')\n"
    )
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(root)}, check=True)  # fmt: skip
    assert done.stdout.strip().splitlines()[-1] == "light"


def test_build_uses_config_and_ignores_pretrained_at_test_time(tmp_path) -> None:
    missing = str(tmp_path / "absent.pth")
    model = build_pose_hrnet(tiny_cfg(missing, joints=7), is_train=False)
    assert model.final_layer.weight.shape == (7, 8, 1, 1)
    assert model.final_layer.weight.abs().max().item() < 0.01  # official init, std 0.001
    cfg = tiny_cfg(missing)
    cfg.MODEL.INIT_WEIGHTS = False
    build_pose_hrnet(cfg, is_train=True)


def test_build_missing_pretrained_names_path_and_key(tmp_path) -> None:
    missing = tmp_path / "absent.pth"
    with pytest.raises(FileNotFoundError) as info:
        build_pose_hrnet(tiny_cfg(str(missing)), is_train=True)
    assert str(missing) in str(info.value) and "MODEL.PRETRAINED" in str(info.value)


def test_build_loads_pretrained_layers_but_not_the_head(tmp_path) -> None:
    source = tiny_model(joints=24)
    path = tmp_path / "pose.pth"
    torch.save(source.state_dict(), path)
    model = build_pose_hrnet(tiny_cfg(str(path)), is_train=True)
    target = model.state_dict()
    for key, tensor in source.state_dict().items():
        if key.startswith("final_layer."):
            # PRETRAINED_LAYERS leaves out final_layer even where the shapes fit.
            assert not torch.equal(target[key], tensor), key
        else:
            assert torch.equal(target[key], tensor), key


def _randomise_bn(model: nn.Module, generator: torch.Generator) -> None:
    """Non-trivial BN statistics, so that folding is really exercised."""
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            n = module.num_features
            module.running_mean.copy_(torch.randn(n, generator=generator) * 0.2)
            module.running_var.copy_(torch.rand(n, generator=generator) + 0.5)
            module.weight.data.copy_(torch.rand(n, generator=generator) + 0.5)
            module.bias.data.copy_(torch.randn(n, generator=generator) * 0.1)


def test_fuse_conv_bn_matches_eval_model() -> None:
    generator = torch.Generator().manual_seed(0)
    model = tiny_model(joints=5)  # PyTorch default init keeps activations at a useful scale
    _randomise_bn(model, generator)
    model.eval()
    fused = fuse_conv_bn(model)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in fused.modules())
    assert any(isinstance(m, nn.BatchNorm2d) for m in model.modules())  # original untouched
    assert fused.conv1.bias is not None and fused.stage2[0].fuse_layers[0][1][0].bias is not None
    x = torch.randn(2, 3, 64, 96, generator=generator)
    with torch.no_grad():
        expected = model(x)
        got = fused(x)
        features_expected = model.forward_features(x)
        features_got = fused.forward_features(x)
    assert expected.abs().max() > 1e-2
    scale = expected.abs().max()
    assert (got - expected).abs().max() <= 1e-4 * scale
    assert (features_got - features_expected).abs().max() <= 1e-4 * features_expected.abs().max()


def test_fuse_conv_bn_handles_biased_conv_and_plain_modules() -> None:
    generator = torch.Generator().manual_seed(1)
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1, bias=True), nn.BatchNorm2d(4),
                        nn.ReLU(), nn.Conv2d(4, 4, 1), nn.ReLU(), nn.BatchNorm2d(4))
    _randomise_bn(net, generator)
    fused = fuse_conv_bn(net.train())
    assert isinstance(fused[1], nn.Identity)
    assert isinstance(fused[5], nn.BatchNorm2d)  # follows a ReLU, not a conv: kept
    assert not fused.training
    x = torch.randn(1, 3, 8, 8, generator=generator)
    with torch.no_grad():
        torch.testing.assert_close(fused(x), net.eval()(x), rtol=1e-4, atol=1e-5)
