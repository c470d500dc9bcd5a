"""Stage two's network: a backbone (``models/backbones.py``, by ``MODEL.BACKBONE``) and a head
(``HRNet_keypoint/heads/``, by ``MODEL.HEAD``), composed.

The two are separate modules (``model.backbone``, ``model.head``), but the state dict keeps the
official flat names (``conv1.weight`` ... ``stage4.…``, ``final_layer.weight``): the parts'
prefixes are dropped when saving and restored when loading, so every official and earlier
checkpoint loads strictly, and checkpoints written now load into the official code.
"""

from __future__ import annotations

import logging

import torch
from torch import nn
from yacs.config import CfgNode

from common.errors import ConfigError
from HRNet_keypoint.heads import head_class
from models.backbones import build_backbone
from models.hrnet import init_weights, load_configured_pretrained

_PARTS = ("backbone.", "head.")


class PoseModel(nn.Module):
    """``head(backbone(images))``, saved and loaded under the official flat key names."""

    def __init__(self, backbone: nn.Module, head: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head
        clash = set(backbone.state_dict()) & set(head.state_dict())
        if clash:
            raise ConfigError(f"the backbone and the head both have the keys {sorted(clash)[:5]}"
                              "; rename the head's modules")  # fmt: skip
        self.register_state_dict_post_hook(_flatten_keys)
        self.register_load_state_dict_pre_hook(_nest_keys)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(images))


def _flatten_keys(module: PoseModel, state: dict, prefix: str, local_metadata) -> None:
    """``<prefix>backbone.conv1.weight`` -> ``<prefix>conv1.weight`` (order kept)."""
    for key in [k for k in state if k.startswith(prefix)]:
        rest = key[len(prefix):]
        part = next((p for p in _PARTS if rest.startswith(p)), "")
        state[prefix + rest[len(part):]] = state.pop(key)


def _nest_keys(module: PoseModel, state: dict, prefix: str, *args) -> None:
    """The reverse of ``_flatten_keys`` for the keys each part owns."""
    owners = {**{k: "backbone." for k in module.backbone.state_dict()},
              **{k: "head." for k in module.head.state_dict()}}  # fmt: skip
    for key in [k for k in state if k.startswith(prefix)]:
        rest = key[len(prefix):]
        if rest in owners:
            state[prefix + owners[rest] + rest] = state.pop(key)


def build_pose_model(cfg: CfgNode, is_train: bool,
                     logger: logging.Logger | None = None) -> PoseModel:  # fmt: skip
    """Backbone and head from the config with the official initialisation; for training,
    ``MODEL.PRETRAINED`` loaded into both (its ``PRETRAINED_LAYERS``). At test time the trained
    weights are loaded afterwards."""
    backbone = build_backbone(cfg)
    model = PoseModel(backbone, head_class(cfg)(cfg, backbone.out_channels))
    init_weights(model)  # official: every module built first, then initialised in order
    if is_train:
        load_configured_pretrained(model, cfg, logger)
    return model
