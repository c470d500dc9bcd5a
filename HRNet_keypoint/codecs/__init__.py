"""Stage two's codecs, one per target representation, chosen by the config.

``CODECS`` maps ``MODEL.CODEC`` to the class that owns the representation's targets, decoding
and crop matrix (``module:Class``, imported when first asked for). A new codec is one file with
a ``HeatmapCodec`` subclass and one line here. ``MODEL.CODEC ''`` (the default) reads the older
keys: ``MODEL.UDP True`` is ``udp``, otherwise ``TEST.DECODE`` (``quarter``, the official
numerics, or ``dark``).
"""

from __future__ import annotations

import importlib

from yacs.config import CfgNode

from common.errors import ConfigError
from HRNet_keypoint.codecs.base import HeatmapCodec

CODECS: dict[str, str] = {
    "quarter": "HRNet_keypoint.codecs.quarter:QuarterCodec",
    "dark": "HRNet_keypoint.codecs.dark:DarkCodec",
    "udp": "HRNet_keypoint.codecs.udp:UdpCodec",
}


def codec_name(cfg: CfgNode) -> str:
    """``MODEL.CODEC``, or when it is empty the codec the older keys name."""
    name = str(cfg.MODEL.get("CODEC", ""))
    if name:
        if cfg.MODEL.UDP and name != "udp":
            raise ConfigError(f"MODEL.UDP True asks for the udp codec but MODEL.CODEC is "
                              f"{name!r}: set one of them")  # fmt: skip
        return name
    return "udp" if cfg.MODEL.UDP else str(cfg.TEST.DECODE)


def codec_for_config(cfg: CfgNode) -> HeatmapCodec:
    """The codec the config names (see ``codec_name``); an unknown name is a ``ConfigError``
    listing the registered ones."""
    name = codec_name(cfg)
    if name not in CODECS:
        key = "MODEL.CODEC" if cfg.MODEL.get("CODEC", "") else "TEST.DECODE"
        raise ConfigError(f"{key} must be one of {sorted(CODECS)}, got {name!r}")
    module, _, cls = CODECS[name].partition(":")
    return getattr(importlib.import_module(module), cls)(cfg)
