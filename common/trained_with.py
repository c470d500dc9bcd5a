"""Test-time settings that must be the ones a model was trained with.

``MODEL.UDP`` changes the crop and heatmap geometry, so a model trained without it and tested
with it (or the reverse) moves every prediction by a couple of pixels without any error. The
run folder's ``config.yaml`` (written by every training run and fold) says what the model was
trained with; a test config that differs there is refused, naming both values and the file.
"""

from __future__ import annotations

import logging
from pathlib import Path

import yaml

from common.errors import ConfigError


def _value(tree: dict, key: str) -> object:
    node: object = tree
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def _unbiased(tree: dict) -> bool:
    """Whether a config crops in the UDP frame: ``MODEL.UDP``, or ``MODEL.CODEC udp`` (the
    codec registry's name for the same geometry)."""
    return bool(_value(tree, "MODEL.UDP")) or _value(tree, "MODEL.CODEC") == "udp"


def _describe(on: bool) -> str:
    return "on (MODEL.UDP True or MODEL.CODEC udp)" if on else "off"


def read_training_config(folder: Path) -> dict | None:
    """The config a run or fold folder was trained with (its ``config.yaml``) as a mapping;
    None when there is none, refused in one line when it cannot be read."""
    record = Path(folder) / "config.yaml"
    if not record.is_file():
        return None
    try:
        trained = yaml.safe_load(record.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
        raise ConfigError(f"{record}: cannot read the training config ({error}); restore it or "
                          "test the weights from another folder with TEST.MODEL_FILE") from None
    if not isinstance(trained, dict):
        raise ConfigError(f"{record}: expected the training config as a YAML mapping")
    return trained


def check_trained_with(cfg: object, weights: Path, logger: logging.Logger | None = None) -> None:
    """Refuse a test config whose UDP geometry differs from the ``config.yaml`` beside
    ``weights`` (a run or fold folder); weights without one are not checked (logged)."""
    record = Path(weights).parent / "config.yaml"
    trained = read_training_config(record.parent)
    if trained is None:
        if logger is not None:
            logger.info("no %s beside %s: cannot check that MODEL.UDP matches training",
                        record.name, weights)  # fmt: skip
        return
    was, now = _unbiased(trained), _unbiased(cfg)  # a yacs CfgNode is a dict
    if was != now:
        raise ConfigError(
            f"MODEL.UDP is {now} at test time but {weights} was trained with MODEL.UDP {was} "
            f"(unbiased data processing {_describe(was)}, {record}); it changes the crop and "
            f"decode geometry and would move every prediction: set MODEL.UDP {was}"
            + ("" if was else " and MODEL.CODEC other than udp") + " (or drop the override)"
        )
