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

# Keys whose test-time value must equal the training value.
TRAINED_KEYS = ("MODEL.UDP",)


def _value(tree: dict, key: str) -> object:
    node: object = tree
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def check_trained_with(cfg: object, weights: Path, logger: logging.Logger | None = None) -> None:
    """Refuse a test config whose ``TRAINED_KEYS`` differ from the ``config.yaml`` beside
    ``weights`` (a run or fold folder); weights without one are not checked (logged)."""
    record = Path(weights).parent / "config.yaml"
    if not record.is_file():
        if logger is not None:
            logger.info("no %s beside %s: cannot check that %s match training", record.name,
                        weights, ", ".join(TRAINED_KEYS))  # fmt: skip
        return
    try:
        trained = yaml.safe_load(record.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
        raise ConfigError(f"{record}: cannot read the training config ({error}); restore it or "
                          "test the weights from another folder with TEST.MODEL_FILE") from None
    if not isinstance(trained, dict):
        raise ConfigError(f"{record}: expected the training config as a YAML mapping")
    for key in TRAINED_KEYS:
        was = _value(trained, key)
        now = _value(cfg, key)  # a yacs CfgNode is a dict
        if was is not None and was != now:
            raise ConfigError(
                f"{key} is {now} at test time but {weights} was trained with {key} {was} "
                f"({record}); it changes the crop and decode geometry and would move every "
                f"prediction: set {key} {was} (or drop the override)"
            )
