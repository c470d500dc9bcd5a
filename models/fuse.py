"""Fold BatchNorm into the preceding convolution for faster inference.

In eval mode a BatchNorm is an affine map per channel, so it can be absorbed into the conv's
weights and bias; HRNet has one BN after nearly every conv, so this removes about half of the
layers an inference pass visits.
"""

from __future__ import annotations

import copy
import re

import torch
from torch import nn

_CONV_NAME = re.compile(r"conv(\d*)")


def _fold_into_conv(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> None:
    """conv <- bn(conv(.)) with bn's running statistics."""
    scale = torch.rsqrt(bn.running_var + bn.eps)
    shift = -bn.running_mean * scale
    if bn.affine:
        scale = scale * bn.weight
        shift = shift * bn.weight + bn.bias
    with torch.no_grad():
        bias = conv.bias if conv.bias is not None else torch.zeros_like(shift)
        conv.weight.mul_(scale.reshape(-1, 1, 1, 1).to(conv.weight.dtype))
        conv.bias = nn.Parameter((bias * scale + shift).to(conv.weight.dtype))


def _foldable(conv: nn.Module | None, bn: nn.Module | None) -> bool:
    return (isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d)
            and bn.running_mean is not None and bn.num_features == conv.out_channels)


def _conv_bn_pairs(module: nn.Module) -> list[tuple[str, str]]:
    """Child name pairs (conv, bn) where the module applies bn directly to conv's output.

    In a Sequential that is a conv followed by a BN; in other modules it is the naming
    convention ``convK`` / ``bnK`` (blocks and the HRNet stem apply them back to back).
    """
    children = dict(module.named_children())
    names = list(children)
    if isinstance(module, nn.Sequential):
        candidates = list(zip(names, names[1:], strict=False))
    else:
        candidates = [(name, "bn" + match.group(1)) for name in names
                      if (match := _CONV_NAME.fullmatch(name))]
    return [(c, b) for c, b in candidates if _foldable(children.get(c), children.get(b))]


def fuse_conv_bn(model: nn.Module, inplace: bool = False) -> nn.Module:
    """An eval-mode copy of ``model`` with each BN that follows a conv folded into it.

    The folded BNs become ``nn.Identity``; the original model is left untouched unless
    ``inplace`` (which saves a copy of the weights when the original is not needed again).
    """
    fused = (model if inplace else copy.deepcopy(model)).eval()
    for module in list(fused.modules()):
        for conv_name, bn_name in _conv_bn_pairs(module):
            _fold_into_conv(getattr(module, conv_name), getattr(module, bn_name))
            setattr(module, bn_name, nn.Identity())
    return fused
