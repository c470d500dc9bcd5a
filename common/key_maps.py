"""Other projects' HRNet weight files, renamed to the official pose HRNet's key names.

The official pose HRNet (and this project, ``models/hrnet.py``) names its tensors ``conv1.*``,
``bn1.*``, ``layer1.*``, ``transition1.*``, ``stage2.*`` ... ``final_layer.*``. Three other
layouts of the same network are common on users' disks:

- MMPose top-down heatmap checkpoints: the backbone under ``backbone.`` with the official
  names, the 1x1 heatmap conv as ``head.final_layer.*`` (MMPose 1.x) or
  ``keypoint_head.final_layer.*`` (0.x), all inside ``{'meta': ..., 'state_dict': ...}``.
- ImageNet classification HRNets (the official ``hrnet_w48-8ef0771d.pth`` and timm's
  ``hrnet_w48``): the backbone with the official names, plus a classification head
  (``incre_modules``, ``downsamp_modules``, a ``final_layer`` of their own, ``classifier``) and
  multi-resolution outputs of the last stage-4 module (``stage4.<last>.fuse_layers.1..3``)
  that the pose network does not have.

``to_pose_layout`` recognises these by their key names and returns the official names; it never
guesses: anything it does not recognise is returned unchanged for the strict checks of
``models/weights.py`` to report.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import torch

from common.checkpoint import CheckpointError

OFFICIAL = "official"
MMPOSE = "mmpose"
CLASSIFICATION = "imagenet-classification"

_MMPOSE_HEADS = ("head.", "keypoint_head.")
_CLASSIFICATION_HEAD = ("incre_modules.", "downsamp_modules.", "final_layer.", "classifier.")
# MMPose's normalisation buffers (unpublished checkpoints keep them): the ImageNet mean and std
# in 0-255 pixels, which is what this project's crops are normalised with.
_MMPOSE_NORMALISATION = {"data_preprocessor.mean": (123.675, 116.28, 103.53),
                         "data_preprocessor.std": (58.395, 57.12, 57.375)}
_EXTRA_FUSE = re.compile(r"^stage4\.\d+\.fuse_layers\.[1-9]\d*\.")


def is_pose_hrnet(keys: Mapping[str, object] | list[str]) -> bool:
    """Whether ``keys`` are the official pose HRNet's (what the key maps rename to)."""
    names = set(keys)
    return {"conv1.weight", "final_layer.weight"} <= names and any(
        name.startswith("stage2.") for name in names)


def layout_of(state: Mapping[str, torch.Tensor]) -> str:
    """``MMPOSE``, ``CLASSIFICATION`` or ``OFFICIAL`` (anything else, checked strictly later)."""
    names = set(state)
    if "backbone.conv1.weight" in names and any(
            f"{head}final_layer.weight" in names for head in _MMPOSE_HEADS):
        return MMPOSE
    if "conv1.weight" in names and ("classifier.weight" in names or any(
            name.startswith("incre_modules.") for name in names)):
        return CLASSIFICATION
    return OFFICIAL


def _from_mmpose(state: Mapping[str, torch.Tensor], source: str) -> dict[str, torch.Tensor]:
    renamed: dict[str, torch.Tensor] = {}
    foreign = []
    for key, tensor in state.items():
        if key.startswith("backbone."):
            renamed[key.removeprefix("backbone.")] = tensor
            continue
        if key in _MMPOSE_NORMALISATION:
            if not torch.allclose(tensor.double().flatten(),
                                  torch.tensor(_MMPOSE_NORMALISATION[key], dtype=torch.double),
                                  atol=1e-3):
                raise CheckpointError(
                    f"{source}: {key} is {tensor.flatten().tolist()}, not the ImageNet "
                    f"{list(_MMPOSE_NORMALISATION[key])} this project normalises with; the "
                    "model was trained on other inputs")
            continue
        head = next((h for h in _MMPOSE_HEADS if key.startswith(h)), None)
        if head is not None and key.startswith(f"{head}final_layer."):
            renamed[key.removeprefix(head)] = tensor
        else:
            foreign.append(key)
    if foreign:
        shown = ", ".join(foreign[:5]) + (f" ... ({len(foreign)} in all)" if len(foreign) > 5
                                          else "")
        raise CheckpointError(
            f"{source}: an MMPose checkpoint whose model is not HRNet with the plain heatmap "
            f"head (backbone.* and head.final_layer.* only): it also holds {shown}; use an "
            "MMPose td-hm_hrnet checkpoint")
    return renamed


def _backbone_of_classifier(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {key: tensor for key, tensor in state.items()
            if not key.startswith(_CLASSIFICATION_HEAD)}


def extra_fuse_keys(keys: list[str], model_keys: set[str]) -> list[str]:
    """Keys of a classification HRNet's multi-resolution stage-4 outputs that a pose model
    lacks: expected extras when such a file initialises a pose backbone."""
    return [key for key in keys if key not in model_keys and _EXTRA_FUSE.match(key)]


def to_pose_layout(state: Mapping[str, torch.Tensor], source: str) -> tuple[dict, str]:
    """``state`` with the official pose HRNet's key names, and the layout it came in.

    A classification file loses its classification head here (it has no heatmap head to
    give); its extra stage-4 fuse layers stay, for the caller to tell from real mismatches.
    """
    layout = layout_of(state)
    if layout == MMPOSE:
        return _from_mmpose(state, source), layout
    if layout == CLASSIFICATION:
        return _backbone_of_classifier(state), layout
    return dict(state), layout
