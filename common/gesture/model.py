"""The frame classifier: any timm model, built offline (never downloads weights)."""

from __future__ import annotations

import logging
from pathlib import Path

import timm
import torch
from torch import nn

from common.checkpoint import load_safely


def _state_dict_of(content: object, path: Path) -> dict[str, torch.Tensor]:
    if isinstance(content, dict):
        for key in ("state_dict", "model", "model_state_dict"):
            if isinstance(content.get(key), dict):
                content = content[key]
                break
    if not isinstance(content, dict) or not all(
        isinstance(v, torch.Tensor) for v in content.values()
    ):
        raise ValueError(
            f"{path}: expected a state_dict (name -> tensor), possibly under "
            "'state_dict' or 'model'"
        )
    return {key.removeprefix("module."): value for key, value in content.items()}


def build_classifier(
    backbone: str,
    num_classes: int,
    drop_path_rate: float = 0.0,
    pretrained_path: str | Path = "",
    logger: logging.Logger | None = None,
) -> nn.Module:
    """``timm.create_model(backbone, pretrained=False)`` with a ``num_classes`` head.

    ``pretrained_path`` (a local file) loads every tensor whose name and shape match; the new
    head (a different class count) keeps its fresh initialisation.
    """
    if backbone not in timm.list_models():
        raise ValueError(f"unknown timm model {backbone!r} (GESTURE.BACKBONE)")
    model = timm.create_model(
        backbone, pretrained=False, num_classes=num_classes, drop_path_rate=drop_path_rate
    )
    if pretrained_path:
        path = Path(pretrained_path)
        weights = _state_dict_of(load_safely(path), path)
        own = model.state_dict()
        usable = {k: v for k, v in weights.items() if k in own and own[k].shape == v.shape}
        if not usable:
            raise ValueError(f"{path}: no tensor matches {backbone} by name and shape")
        model.load_state_dict(usable, strict=False)
        if logger is not None:
            logger.info(
                "loaded %d of %d tensors from %s (%d model tensors left as initialised)",
                len(usable),
                len(weights),
                path,
                len(own) - len(usable),
            )
    return model
