"""The backbones a stage can be built on, by ``MODEL.BACKBONE``.

``BACKBONES`` maps the name to a builder ``(cfg) -> nn.Module`` (``module:function``, imported
when asked for) whose module has an ``out_channels`` attribute and returns its features at
stride 4; a new backbone is one file and one line here. HRNet's width (W32, W48, the tiny CPU
ones) comes from ``MODEL.EXTRA``, with the official module names, so official checkpoints load.
"""

from __future__ import annotations

import importlib

from torch import nn
from yacs.config import CfgNode

from common.errors import ConfigError

BACKBONES: dict[str, str] = {
    "hrnet": "models.hrnet:build_hrnet_backbone",
}


def build_backbone(cfg: CfgNode) -> nn.Module:
    """The backbone ``MODEL.BACKBONE`` names (initialised by the model that composes it)."""
    name = str(cfg.MODEL.BACKBONE)
    if name not in BACKBONES:
        raise ConfigError(f"MODEL.BACKBONE must be one of {sorted(BACKBONES)}, got {name!r}")
    module, _, builder = BACKBONES[name].partition(":")
    return getattr(importlib.import_module(module), builder)(cfg)
