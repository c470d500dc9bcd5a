"""Reading a checkpoint's state dict and loading it exactly: testing must use exactly the
trained weights, so ``load_state_dict_strict`` refuses any difference and says which config key
to check. (Loading what fits of a pretrained file is ``models.weights.load_pretrained``.)
MMPose checkpoints load into a pose HRNet through the key map of ``common/key_maps.py``, and
``.safetensors`` files are read as well as torch files."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from common.checkpoint import CheckpointError, first_non_finite, load_safely
from common.errors import MissingFileError
from common.key_maps import CLASSIFICATION, is_pose_hrnet, to_pose_layout

# Wrappers around a state dict, in the order they are tried (official checkpoint.pth,
# then other trainers' dicts).
_WRAPPER_KEYS = ("state_dict", "model")
_SHOWN = 10  # key names listed per kind in error messages


class NonFiniteWeightsError(CheckpointError):
    """A checkpoint's weights hold NaN or inf."""


class CheckpointMismatchError(CheckpointError):
    """A state dict does not fit the model exactly."""


def _is_tensor_dict(obj: Any) -> bool:
    return (isinstance(obj, Mapping) and len(obj) > 0
            and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()))


def _describe(obj: Any) -> str:
    if isinstance(obj, Mapping):
        keys = [repr(k) for k in list(obj)[:_SHOWN]]
        more = f" and {len(obj) - _SHOWN} more" if len(obj) > _SHOWN else ""
        return (f"a dict with {len(obj)} keys [{', '.join(keys)}{more}] and no state dict of "
                f"tensors in it")
    if isinstance(obj, torch.Tensor):
        return f"a single tensor of shape {tuple(obj.shape)}"
    if isinstance(obj, list | tuple):
        return f"a {type(obj).__name__} of {len(obj)} items"
    return f"an object of type {type(obj).__name__}"


def _as_state_dict(obj: Any, source: str) -> dict[str, torch.Tensor]:
    """Unwrap ``{'state_dict': ...}`` / ``{'model': ...}`` and drop DataParallel's 'module.'."""
    if not _is_tensor_dict(obj) and isinstance(obj, Mapping):
        for key in _WRAPPER_KEYS:
            if _is_tensor_dict(obj.get(key)):
                obj = obj[key]
                break
    if not _is_tensor_dict(obj):
        raise CheckpointError(
            f"{source}: expected a state dict (parameter names -> tensors), found "
            f"{_describe(obj)}")
    state = {key.removeprefix("module."): tensor for key, tensor in obj.items()}
    if len(state) != len(obj):
        raise CheckpointError(f"{source}: keys clash once the 'module.' prefix is removed")
    return state


def check_finite(state: Mapping[str, torch.Tensor], source: str) -> None:
    """Refuse weights with NaN or inf: a model built on them predicts garbage without failing."""
    bad = first_non_finite(state)
    if bad is not None:
        raise NonFiniteWeightsError(
            f"{source}: tensor {bad} holds NaN or infinite values (a diverged or damaged "
            "training run); use an earlier checkpoint or train again")


def _load_safetensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    if not path.is_file():
        raise MissingFileError(f"checkpoint not found: {path}; check the path or train first")
    try:
        return load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError) as error:
        raise CheckpointError(f"cannot read checkpoint {path}: not a readable safetensors file "
                              f"({error})") from None


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """A checkpoint file's parameters as a plain ``{name: tensor}`` dict on the CPU.

    Only tensors and plain containers are unpickled (``common.checkpoint.load_safely``), or
    the file is a ``.safetensors`` file; weights with NaN or inf are refused.
    """
    path = Path(path)
    raw = _load_safetensors(path) if path.suffix == ".safetensors" else load_safely(path)
    state = _as_state_dict(raw, str(path))
    check_finite(state, str(path))
    return state


def in_model_layout(state: dict[str, torch.Tensor], model_keys: Sequence[str],
                    source: str) -> tuple[dict[str, torch.Tensor], str | None]:
    """``state`` renamed to a pose HRNet's keys when the model is one (else unchanged), and the
    layout it was recognised in (None: the model is not a pose HRNet)."""
    if not is_pose_hrnet(list(model_keys)):
        return state, None
    return to_pose_layout(state, source)


def first_names(keys: Sequence[str]) -> str:
    shown = ", ".join(keys[:_SHOWN])
    return shown + (f", ... ({len(keys) - _SHOWN} more)" if len(keys) > _SHOWN else "")


def shape_text(key: str, ckpt_shape: tuple[int, ...], model_shape: tuple[int, ...]) -> str:
    return f"{key}: checkpoint {ckpt_shape} vs model {model_shape}"


def _wrapping_prefix(wrapped: list[str], bare: list[str]) -> str:
    """The one prefix ``P`` such that ``P.<key>`` in ``wrapped`` accounts for most ``bare`` keys
    (a model inside a wrapper), or ''."""
    bare_keys = set(bare)
    counts: dict[str, int] = {}
    for key in wrapped:
        prefix, _, rest = key.partition(".")
        if rest in bare_keys:
            counts[prefix] = counts.get(prefix, 0) + 1
    best = max(counts, key=counts.__getitem__, default="")
    return best if best and 2 * counts[best] > len(bare_keys) else ""


def mismatch_hints(unexpected: list[str], missing: list[str],
                    shapes: list[tuple[str, tuple[int, ...], tuple[int, ...]]]) -> list[str]:
    hints = []
    for key, ckpt_shape, model_shape in shapes:
        if key.startswith("final_layer.") and ckpt_shape[0] != model_shape[0]:
            hints.append(f"the checkpoint has {ckpt_shape[0]} joints, the config "
                         f"MODEL.NUM_JOINTS says {model_shape[0]}")
            break
    for key, ckpt_shape, model_shape in shapes:
        if key == "final_layer.weight" and ckpt_shape[2:] != model_shape[2:]:
            hints.append(f"the checkpoint's final_layer kernel is {ckpt_shape[2]}, the config "
                         f"MODEL.EXTRA.FINAL_CONV_KERNEL says {model_shape[2]}")
    if any(not key.startswith("final_layer.") or ckpt_shape[1:2] != model_shape[1:2]
           for key, ckpt_shape, model_shape in shapes):
        hints.append("widths differ: check MODEL.EXTRA.STAGE*.NUM_CHANNELS")
    wrapped_checkpoint = _wrapping_prefix(unexpected, missing)
    wrapped_model = _wrapping_prefix(missing, unexpected)
    if wrapped_checkpoint:
        hints.append(f"the checkpoint's keys carry the prefix '{wrapped_checkpoint}.': it holds "
                     "a wrapped model (e.g. stage one's box model) and the config builds a bare "
                     "HRNet (stage two): pass the config it was trained with")
    elif wrapped_model:
        hints.append(f"the model's keys carry the prefix '{wrapped_model}.': the config builds "
                     "a wrapped model (e.g. stage one's box model) and the checkpoint holds a "
                     "bare HRNet (e.g. stage two's keypoint model): pass the config it was "
                     "trained with")
    elif any(key.startswith(("stage", "transition")) for key in missing + unexpected):
        hints.append("the structure differs: check MODEL.EXTRA.STAGE*.NUM_MODULES, "
                     "NUM_BRANCHES and NUM_BLOCKS")
    return hints


def load_state_dict_strict(model: nn.Module,
                           path_or_state_dict: str | Path | Mapping[str, torch.Tensor],
                           assign: bool = False) -> None:  # fmt: skip
    """Load trained weights for testing; any missing, extra or reshaped tensor is an error.

    Only BN ``num_batches_tracked`` counters may be absent (older files lack them; they do not
    change an evaluation). ``assign``: the model's tensors become the loaded ones instead of
    being copied into, for a model built on the meta device; counters the
    file lacks are then made as zeros.
    """
    if isinstance(path_or_state_dict, Mapping):
        source = "the state dict"
        state = _as_state_dict(path_or_state_dict, source)
    else:
        source = str(path_or_state_dict)
        state = read_state_dict(path_or_state_dict)
    model_state = model.state_dict()
    state, layout = in_model_layout(state, list(model_state), source)
    if layout == CLASSIFICATION:
        raise CheckpointMismatchError(
            f"{source} is an ImageNet classification HRNet: it has no keypoint head, so it "
            "cannot predict keypoints; train from it with MODEL.PRETRAINED, or give a pose "
            "checkpoint (the official pose_hrnet_*.pth or an MMPose td-hm_hrnet one)")
    missing = [key for key in model_state
               if key not in state and not key.endswith("num_batches_tracked")]
    unexpected = [key for key in state if key not in model_state]
    shapes = [(key, tuple(tensor.shape), tuple(model_state[key].shape))
              for key, tensor in state.items()
              if key in model_state and tensor.shape != model_state[key].shape]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing keys: {first_names(missing)}")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected keys: {first_names(unexpected)}")
        if shapes:
            texts = [shape_text(*mismatch) for mismatch in shapes]
            parts.append(f"{len(shapes)} shape mismatches: {first_names(texts)}")
        hints = mismatch_hints(unexpected, missing, shapes)
        message = f"{source} does not fit the model: " + "; ".join(parts)
        if hints:
            message += ". Hint: " + "; ".join(hints)
        raise CheckpointMismatchError(message)
    model.load_state_dict(state, strict=False, assign=assign)
    if assign:
        for module in model.modules():
            for name, buffer in module.named_buffers(recurse=False):
                if buffer.is_meta:
                    module.register_buffer(name, torch.zeros(buffer.shape, dtype=buffer.dtype))
