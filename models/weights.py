"""Loading a pretrained checkpoint into a model, with reports instead of silent surprises.

Training starts from a pretrained file that rarely matches exactly (COCO has 17 joints, ImageNet
files carry classifier modules): ``load_pretrained`` loads what fits and says what it skipped.
Testing must use exactly the trained weights: ``common.state_dict.load_state_dict_strict``.
MMPose checkpoints and ImageNet classification HRNets (the official ``hrnet_w48-8ef0771d.pth``,
timm's ``hrnet_w48``) are renamed to the pose HRNet's keys first (``common/key_maps.py``); an
ImageNet file must then give the whole backbone.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path

from torch import nn

from common.key_maps import CLASSIFICATION, extra_fuse_keys
from common.state_dict import (
    CheckpointMismatchError,
    first_names,
    in_model_layout,
    mismatch_hints,
    read_state_dict,
    shape_text,
)

_LOG = logging.getLogger(__name__)


def load_pretrained(model: nn.Module, path: str | Path, layers: Iterable[str] = ("*",),
                    logger: logging.Logger | None = None) -> dict[str, list]:
    """Load the tensors of ``path`` that fit ``model``; report and log everything left out.

    ``layers``: first key components to take (``MODEL.EXTRA.PRETRAINED_LAYERS``); ``'*'`` first
    takes all. A tensor whose shape differs from the model's (a 17-joint head into a 24-joint
    model) keeps the model's init. Returns ``loaded`` (keys), ``skipped_shape`` ((key,
    checkpoint shape, model shape)), ``skipped_layer`` (outside ``layers``), ``unexpected``
    (selected but not in the model, e.g. an ImageNet classifier) and ``missing`` (model keys of
    the selected layers that the file lacks; BN ``num_batches_tracked`` counters are ignored).
    """
    log = logger or _LOG
    layers = tuple(layers)
    if not layers:
        raise ValueError("layers is empty, so nothing would load; use ('*',) for all layers")
    take_all = layers[0] == "*"
    model_state = model.state_dict()
    state, layout = in_model_layout(read_state_dict(path), list(model_state), str(path))
    if layout is not None:
        log.info("%s: %s layout", path, layout)

    def selected(key: str) -> bool:
        return take_all or key.split(".", 1)[0] in layers

    report: dict[str, list] = {"loaded": [], "skipped_shape": [], "skipped_layer": [],
                               "unexpected": [], "missing": []}
    to_load = {}
    for key, tensor in state.items():
        if not selected(key):
            report["skipped_layer"].append(key)
        elif key not in model_state:
            report["unexpected"].append(key)
        elif tensor.shape != model_state[key].shape:
            mismatch = (key, tuple(tensor.shape), tuple(model_state[key].shape))
            report["skipped_shape"].append(mismatch)
            log.warning("%s, kept the model's init", shape_text(*mismatch))
        else:
            to_load[key] = tensor
            report["loaded"].append(key)
    report["missing"] = [key for key in model_state
                         if selected(key) and key not in state
                         and not key.endswith("num_batches_tracked")]
    if not to_load:
        raise CheckpointMismatchError(
            f"{path}: no tensor fits the model (layers {list(layers)}); "
            f"{len(report['skipped_shape'])} with another shape, "
            f"{len(report['unexpected'])} not in the model, first keys: "
            f"{first_names(list(state))}")
    if layout == CLASSIFICATION:
        _check_classification_backbone(path, report, set(model_state))
    model.load_state_dict(to_load, strict=False)

    log.info("%s: loaded %d tensors; skipped %d outside the pretrained layers, %d not in the "
             "model, %d with another shape", path, len(report["loaded"]),
             len(report["skipped_layer"]), len(report["unexpected"]),
             len(report["skipped_shape"]))
    if report["unexpected"]:
        log.info("not in the model: %s", first_names(report["unexpected"]))
    if report["missing"]:
        log.warning("%s lacks %d tensors of the selected layers, kept the model's init: %s",
                    path, len(report["missing"]), first_names(report["missing"]))
    return report


def _check_classification_backbone(path: str | Path, report: dict[str, list],
                                   model_keys: set[str]) -> None:
    """An ImageNet HRNet gives a pose model its whole backbone or nothing: a missing or
    reshaped backbone tensor means another width or depth than the config's."""
    missing = [key for key in report["missing"] if not key.startswith("final_layer.")]
    shapes = [mismatch for mismatch in report["skipped_shape"]
              if not mismatch[0].startswith("final_layer.")]
    extras = set(extra_fuse_keys(report["unexpected"], model_keys))
    unknown = [key for key in report["unexpected"] if key not in extras]
    if not (missing or shapes or unknown):
        return
    parts = []
    if shapes:
        parts.append(f"{len(shapes)} shape mismatches: "
                     f"{first_names([shape_text(*m) for m in shapes])}")
    if missing:
        parts.append(f"{len(missing)} backbone tensors missing: {first_names(missing)}")
    if unknown:
        parts.append(f"{len(unknown)} unknown tensors: {first_names(unknown)}")
    hints = mismatch_hints(unknown, missing, shapes) or [
        "check MODEL.EXTRA.STAGE*.NUM_CHANNELS and NUM_MODULES against the file's HRNet"]
    raise CheckpointMismatchError(
        f"{path}: an ImageNet HRNet whose backbone does not fit the model: "
        + "; ".join(parts) + ". Hint: " + "; ".join(hints))
