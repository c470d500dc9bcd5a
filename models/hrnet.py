"""The official pose HRNet, rebuilt so that official checkpoints load key for key.

Module names, registration order and shapes follow the official ``pose_hrnet`` so that its
``state_dict`` keys (``stage3.0.fuse_layers.2.0.0.0.weight`` ...) match exactly; ``None``
entries (transitions that keep the width, the diagonal of the fuse matrix) own no keys but
keep their index, as in the official lists. Everything is driven by the official config keys in
``cfg.MODEL.EXTRA``; tiny test models only shrink NUM_CHANNELS / NUM_BLOCKS / NUM_MODULES.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn
from yacs.config import CfgNode

from common.errors import ConfigError, MissingFileError
from models.weights import load_pretrained

BN_MOMENTUM = 0.1
STAGE_NAMES = ("STAGE2", "STAGE3", "STAGE4")
# The official experiment files list every layer except final_layer, so a COCO checkpoint's
# 17-joint head is never loaded into a model with another number of joints.
OFFICIAL_PRETRAINED_LAYERS = (
    "conv1", "bn1", "conv2", "bn2", "layer1", "transition1", "stage2", "transition2",
    "stage3", "transition3", "stage4",
)


def _conv3x3(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)


def _conv1x1(in_channels: int, out_channels: int) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, 1, bias=False)


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, momentum=BN_MOMENTUM)


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with a residual connection (the stages' block)."""

    expansion = 1

    def __init__(self, in_channels: int, channels: int, stride: int = 1,
                 downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = _conv3x3(in_channels, channels, stride)
        self.bn1 = _bn(channels)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = _conv3x3(channels, channels)
        self.bn2 = _bn(channels)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + shortcut)


class Bottleneck(nn.Module):
    """1x1 - 3x3 - 1x1 residual block that widens by 4 (layer1's block)."""

    expansion = 4

    def __init__(self, in_channels: int, channels: int, stride: int = 1,
                 downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = _conv1x1(in_channels, channels)
        self.bn1 = _bn(channels)
        self.conv2 = _conv3x3(channels, channels, stride)
        self.bn2 = _bn(channels)
        self.conv3 = _conv1x1(channels, channels * self.expansion)
        self.bn3 = _bn(channels * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + shortcut)


BLOCKS: dict[str, type[BasicBlock] | type[Bottleneck]] = {
    "BASIC": BasicBlock,
    "BOTTLENECK": Bottleneck,
}


def _residual_layer(block: type[BasicBlock] | type[Bottleneck], in_channels: int,
                    channels: int, num_blocks: int, stride: int = 1) -> nn.Sequential:
    """``num_blocks`` blocks; the first gets a conv+BN shortcut when the shape changes."""
    out_channels = channels * block.expansion
    downsample = None
    if stride != 1 or in_channels != out_channels:
        downsample = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
            _bn(out_channels),
        )
    layers = [block(in_channels, channels, stride, downsample)]
    layers += [block(out_channels, channels) for _ in range(num_blocks - 1)]
    return nn.Sequential(*layers)


class HighResolutionModule(nn.Module):
    """Parallel branches, then every output branch sums all inputs resampled to its size.

    With ``multi_scale_output`` False only the highest-resolution output is built (the last
    module of stage 4), so only ``fuse_layers.0`` exists.
    """

    def __init__(self, block: type[BasicBlock] | type[Bottleneck], num_blocks: Sequence[int],
                 in_channels: Sequence[int], channels: Sequence[int],
                 multi_scale_output: bool = True) -> None:
        super().__init__()
        self.num_branches = len(channels)
        self.branches = nn.ModuleList(
            _residual_layer(block, in_channels[b], channels[b], num_blocks[b])
            for b in range(self.num_branches)
        )
        self.out_channels = [c * block.expansion for c in channels]
        num_outputs = self.num_branches if multi_scale_output else 1
        self.fuse_layers = self._make_fuse_layers(num_outputs) if self.num_branches > 1 else None
        self.relu = nn.ReLU(inplace=True)

    def _make_fuse_layers(self, num_outputs: int) -> nn.ModuleList:
        widths = self.out_channels
        rows = []
        for i in range(num_outputs):
            row: list[nn.Module | None] = []
            for j in range(self.num_branches):
                if j > i:  # lower resolution: project, then upsample
                    row.append(nn.Sequential(
                        _conv1x1(widths[j], widths[i]),
                        _bn(widths[i]),
                        nn.Upsample(scale_factor=2 ** (j - i), mode="nearest"),
                    ))
                elif j == i:
                    row.append(None)
                else:  # higher resolution: i - j stride-2 convs, widening only at the last
                    steps: list[nn.Module] = []
                    for k in range(i - j):
                        if k == i - j - 1:
                            steps.append(nn.Sequential(
                                _conv3x3(widths[j], widths[i], stride=2), _bn(widths[i])))
                        else:
                            steps.append(nn.Sequential(
                                _conv3x3(widths[j], widths[j], stride=2), _bn(widths[j]),
                                nn.ReLU(inplace=True)))
                    row.append(nn.Sequential(*steps))
            rows.append(nn.ModuleList(row))
        return nn.ModuleList(rows)

    def forward(self, inputs: list[torch.Tensor]) -> list[torch.Tensor]:
        features = [branch(x) for branch, x in zip(self.branches, inputs, strict=True)]
        if self.fuse_layers is None:
            return features
        fused = []
        for i, row in enumerate(self.fuse_layers):
            total = features[i]
            for j, resample in enumerate(row):
                if j != i:
                    total = total + resample(features[j])
            fused.append(self.relu(total))
        return fused


def _transition(in_widths: Sequence[int], out_widths: Sequence[int]) -> nn.ModuleList:
    """Adapt the previous stage's branches and create the new, lower-resolution ones.

    Entries that keep the width are ``None`` (no keys, index kept). A new branch is made by
    stride-2 convs from the lowest-resolution existing branch.
    """
    entries: list[nn.Module | None] = []
    for i, width in enumerate(out_widths):
        if i < len(in_widths):
            if width == in_widths[i]:
                entries.append(None)
            else:
                entries.append(nn.Sequential(
                    _conv3x3(in_widths[i], width), _bn(width), nn.ReLU(inplace=True)))
        else:
            steps = []
            num_steps = i + 1 - len(in_widths)
            for k in range(num_steps):
                source = in_widths[-1]
                target = width if k == num_steps - 1 else source
                steps.append(nn.Sequential(
                    _conv3x3(source, target, stride=2), _bn(target), nn.ReLU(inplace=True)))
            entries.append(nn.Sequential(*steps))
    return nn.ModuleList(entries)


def _stage_spec(extra: Mapping[str, Any], name: str) -> dict[str, Any]:
    """Read and check one ``MODEL.EXTRA.STAGEn`` block."""
    if name not in extra:
        raise ConfigError(f"MODEL.EXTRA.{name} is missing (the official HRNet needs STAGE2..4)")
    spec = extra[name]
    branches = int(spec["NUM_BRANCHES"])
    blocks = [int(b) for b in spec["NUM_BLOCKS"]]
    channels = [int(c) for c in spec["NUM_CHANNELS"]]
    if len(blocks) != branches or len(channels) != branches:
        raise ConfigError(
            f"MODEL.EXTRA.{name}: NUM_BRANCHES is {branches} but NUM_BLOCKS has {len(blocks)} "
            f"and NUM_CHANNELS {len(channels)} entries")
    block_name = str(spec["BLOCK"])
    if block_name not in BLOCKS:
        raise ConfigError(f"MODEL.EXTRA.{name}.BLOCK is {block_name!r}; expected one of "
                         f"{sorted(BLOCKS)}")
    fuse_method = str(spec.get("FUSE_METHOD", "SUM"))
    if fuse_method != "SUM":
        raise ConfigError(f"MODEL.EXTRA.{name}.FUSE_METHOD is {fuse_method!r}; only 'SUM' exists")
    modules = int(spec["NUM_MODULES"])
    if modules < 1:
        raise ConfigError(f"MODEL.EXTRA.{name}.NUM_MODULES must be >= 1, got {modules}")
    return {"modules": modules, "block": BLOCKS[block_name], "blocks": blocks,
            "channels": channels}


def _make_stage(spec: dict[str, Any], in_channels: Sequence[int],
                multi_scale_output: bool) -> tuple[nn.Sequential, list[int]]:
    modules = []
    widths = list(in_channels)
    for m in range(spec["modules"]):
        last = m == spec["modules"] - 1
        module = HighResolutionModule(spec["block"], spec["blocks"], widths, spec["channels"],
                                      multi_scale_output=multi_scale_output or not last)
        modules.append(module)
        widths = module.out_channels
    return nn.Sequential(*modules), widths


class HighResolutionNet(nn.Module):
    """The HRNet backbone of the official pose model: its stride-4, highest-resolution
    features (``out_channels`` wide), with the official module names (no head)."""

    def __init__(self, extra: Mapping[str, Any]) -> None:
        super().__init__()
        self.conv1 = _conv3x3(3, 64, stride=2)
        self.bn1 = _bn(64)
        self.conv2 = _conv3x3(64, 64, stride=2)
        self.bn2 = _bn(64)
        self.relu = nn.ReLU(inplace=True)
        # layer1 is 4 Bottlenecks of width 64 in the official pose model; an optional STAGE1
        # (the key HRNet's classification configs use) makes it narrower for tiny CPU models.
        stage1 = extra.get("STAGE1", {})
        stage1_block = BLOCKS[stage1.get("BLOCK", "BOTTLENECK")]
        stage1_width = int(stage1.get("NUM_CHANNELS", [64])[0])
        self.layer1 = _residual_layer(
            stage1_block, 64, stage1_width, int(stage1.get("NUM_BLOCKS", [4])[0])
        )

        widths = [stage1_width * stage1_block.expansion]
        specs = [_stage_spec(extra, name) for name in STAGE_NAMES]
        for index, spec in enumerate(specs, start=1):
            out_widths = [c * spec["block"].expansion for c in spec["channels"]]
            setattr(self, f"transition{index}", _transition(widths, out_widths))
            stage, widths = _make_stage(spec, out_widths,
                                        multi_scale_output=index < len(specs))
            setattr(self, f"stage{index + 1}", stage)

        self.out_channels = widths[0]
        # Stride of the lowest-resolution branch: input sides must divide by it so that the
        # upsampled branches line up again.
        self.size_divisor = 4 * 2 ** (max(len(s["channels"]) for s in specs) - 1)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The stage-4 high-resolution map (N, out_channels, H/4, W/4) before any head."""
        height, width = x.shape[-2:]
        if height % self.size_divisor or width % self.size_divisor:
            raise ValueError(f"input size {height}x{width} (HxW) must be a multiple of "
                             f"{self.size_divisor} on both sides")
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.relu(self.bn2(self.conv2(x)))
        features = [self.layer1(x)]
        for transition, stage in ((self.transition1, self.stage2),
                                  (self.transition2, self.stage3),
                                  (self.transition3, self.stage4)):
            inputs = []
            for i, adapt in enumerate(transition):
                # Existing branches are adapted in place; new ones grow from the lowest one.
                source = features[i] if i < len(features) else features[-1]
                inputs.append(source if adapt is None else adapt(source))
            features = stage(inputs)
        return features[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_features(x)


def heatmap_conv(in_channels: int, num_joints: int, kernel: int) -> nn.Conv2d:
    """The official ``final_layer``: features to one heatmap per joint."""
    return nn.Conv2d(in_channels, num_joints, kernel, stride=1, padding=1 if kernel == 3 else 0)


class PoseHighResolutionNet(HighResolutionNet):
    """The official pose HRNet in one module (stage one's backbone, whose reference box head
    reads its heatmaps; stage two composes the backbone and its head instead,
    ``HRNet_keypoint/model.py``)."""

    def __init__(self, extra: Mapping[str, Any], num_joints: int) -> None:
        super().__init__(extra)
        self.final_layer = heatmap_conv(self.out_channels, num_joints,
                                        int(extra.get("FINAL_CONV_KERNEL", 1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Heatmaps (N, joints, H/4, W/4)."""
        return self.final_layer(self.forward_features(x))


def normal_init_(tensor: torch.Tensor, std: float) -> None:
    """``nn.init.normal_`` except on meta tensors (a model built only to receive loaded
    weights): they hold nothing, and normal_ on them imports torch._dynamo, about 1 s."""
    if not tensor.is_meta:
        nn.init.normal_(tensor, std=std)


def init_weights(model: nn.Module) -> None:
    """The official initialisation: convs normal(0, 0.001) with zero bias, BN identity."""
    for module in model.modules():
        if isinstance(module, nn.Conv2d | nn.ConvTranspose2d):
            normal_init_(module.weight, std=0.001)
            if module.bias is not None:
                nn.init.constant_(module.bias, 0)
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.constant_(module.weight, 1)
            nn.init.constant_(module.bias, 0)


def hrnet_extra(widths: Sequence[int], blocks: int = 4, modules: Sequence[int] = (1, 4, 3),
                final_conv_kernel: int = 1) -> CfgNode:
    """``MODEL.EXTRA`` for an HRNet with the four branch widths given (W48: [48,96,192,384]).

    Stage n (2..4) has n branches with ``blocks`` BasicBlocks each and ``modules[n-2]``
    modules; the defaults are the official ones.
    """
    if len(widths) != 4 or len(modules) != 3:
        raise ValueError(f"need 4 widths and 3 module counts, got {list(widths)} and "
                         f"{list(modules)}")
    extra = CfgNode()
    extra.PRETRAINED_LAYERS = list(OFFICIAL_PRETRAINED_LAYERS)
    extra.FINAL_CONV_KERNEL = final_conv_kernel
    for branches, (name, num_modules) in enumerate(zip(STAGE_NAMES, modules, strict=True),
                                                   start=2):
        stage = CfgNode()
        stage.NUM_MODULES = int(num_modules)
        stage.NUM_BRANCHES = branches
        stage.BLOCK = "BASIC"
        stage.NUM_BLOCKS = [int(blocks)] * branches
        stage.NUM_CHANNELS = [int(w) for w in widths[:branches]]
        stage.FUSE_METHOD = "SUM"
        extra[name] = stage
    return extra


def build_pose_hrnet(cfg: CfgNode, is_train: bool,
                     logger: logging.Logger | None = None) -> PoseHighResolutionNet:
    """Build from ``cfg.MODEL``; for training, start from ``MODEL.PRETRAINED`` when set.

    At test time PRETRAINED is never read: the trained weights are loaded afterwards.
    """
    model = PoseHighResolutionNet(cfg.MODEL.EXTRA, int(cfg.MODEL.NUM_JOINTS))
    init_weights(model)
    if is_train:
        load_configured_pretrained(model, cfg, logger)
    return model


def build_hrnet_backbone(cfg: CfgNode) -> HighResolutionNet:
    """The HRNet backbone of ``MODEL.EXTRA`` (the composed model gets the official
    initialisation, ``init_weights``, once its head is on)."""
    return HighResolutionNet(cfg.MODEL.EXTRA)


def load_configured_pretrained(model: nn.Module, cfg: CfgNode,
                               logger: logging.Logger | None = None) -> None:  # fmt: skip
    """Start training from ``MODEL.PRETRAINED`` (its ``MODEL.EXTRA.PRETRAINED_LAYERS``) when
    set and ``MODEL.INIT_WEIGHTS``."""
    pretrained = str(cfg.MODEL.PRETRAINED)
    if not (cfg.MODEL.INIT_WEIGHTS and pretrained):
        return
    if not Path(pretrained).is_file():
        raise MissingFileError(
            f"MODEL.PRETRAINED file not found: {pretrained} (set MODEL.PRETRAINED '' to "
            "train from the official random init)")
    layers = tuple(cfg.MODEL.EXTRA.get("PRETRAINED_LAYERS", ("*",)))
    load_pretrained(model, pretrained, layers=layers, logger=logger)
