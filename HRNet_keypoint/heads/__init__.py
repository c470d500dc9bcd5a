"""Stage two's heads, by ``MODEL.HEAD``: each owns its forward, its flip test
(``merge_flipped``) and its loss (``loss``).

``HEADS`` maps the name to the class (``module:Class``, imported when asked for); a head is
built as ``Head(cfg, backbone.out_channels)``. A new head is one file and one line here.
"""

from __future__ import annotations

import importlib

from torch import nn
from yacs.config import CfgNode

from common.errors import ConfigError

HEADS: dict[str, str] = {
    "heatmap": "HRNet_keypoint.heads.heatmap:HeatmapHead",
}


def head_class(cfg: CfgNode) -> type[nn.Module]:
    """The head class ``MODEL.HEAD`` names."""
    name = str(cfg.MODEL.HEAD)
    if name not in HEADS:
        raise ConfigError(f"MODEL.HEAD must be one of {sorted(HEADS)}, got {name!r}")
    module, _, cls = HEADS[name].partition(":")
    return getattr(importlib.import_module(module), cls)
