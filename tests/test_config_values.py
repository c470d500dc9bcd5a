"""The value checks of ``common/config_values.py``: every shipped experiment file passes them,
each refusal names the key and where the value came from, and each choice list equals the
registry of the stage that implements the key (``common`` cannot import the stages)."""

from __future__ import annotations

import pytest

from common.config import load_config
from common.config_values import CHOICES, LOWERCASED_CHOICES
from common.errors import ConfigError
from HRNet_bbox.dataset import BBOX_AUGMENTATIONS
from HRNet_bbox.model import BOX_HEADS
from HRNet_keypoint.codecs.udp import REFINEMENTS as DECODE_METHODS
from HRNet_keypoint.engine import BOX_SOURCES
from models.reduced_precision import PRECISIONS
from stages import STAGE_MODULES
from tests.conftest import ROOT


def test_each_choice_list_is_the_registry_that_implements_it():
    assert set(CHOICES["TEST.DECODE"]) == set(DECODE_METHODS)
    assert set(CHOICES["TASK"]) == set(STAGE_MODULES)
    assert set(CHOICES["TEST.BOX_SOURCE"]) == set(BOX_SOURCES)
    assert set(CHOICES["TEST.PRECISION"]) == set(PRECISIONS)
    assert set(CHOICES["MODEL.BBOX_HEAD"]) == set(BOX_HEADS)
    assert set(CHOICES["DATASET.BBOX_AUG"]) == set(BBOX_AUGMENTATIONS)


@pytest.mark.parametrize("path", sorted((ROOT / "experiments").rglob("*.yaml")),
                         ids=lambda path: path.name)  # fmt: skip
def test_every_experiment_file_passes_the_value_checks(path):
    load_config(path)


@pytest.mark.parametrize("key", [*CHOICES, *LOWERCASED_CHOICES])
def test_a_value_outside_a_choice_list_is_refused_with_the_list(key):
    with pytest.raises(ConfigError, match=rf"{key} in the command line must be one of \["):
        load_config(None, [key, "surely_not_a_choice"])


def test_optimizer_names_are_compared_as_the_stages_compare_them():
    assert load_config(None, ["TRAIN.OPTIMIZER", "Adam"]).TRAIN.OPTIMIZER == "Adam"


@pytest.mark.parametrize("opts, key", [
    (["TEST.SCALES", "['a']"], "TEST.SCALES"),
    (["TEST.SCALES", "[1.0, -0.5]"], "TEST.SCALES"),
    (["MODEL.SIGMA", "0"], "MODEL.SIGMA"),
    (["TRAIN.BATCH_SIZE_PER_GPU", "0"], "TRAIN.BATCH_SIZE_PER_GPU"),
    (["WORKERS", "-1"], "WORKERS"),
    (["MODEL.HEATMAP_SIZE", "[24]"], "MODEL.HEATMAP_SIZE"),
    (["MODEL.IMAGE_SIZE", "[96.5, 128]"], "MODEL.IMAGE_SIZE"),
    (["GESTURE.FOLDS", "[0, 0]"], "GESTURE.FOLDS"),
    (["GESTURE.FOLDS", "[]"], "GESTURE.FOLDS"),
    (["GESTURE.REFINER.MAX_CHANCE_P", "1.5"], "GESTURE.REFINER.MAX_CHANCE_P"),
    (["GESTURE.REFINER.PAIRS", "[[0, 42, 'tip_x_range']]"], "GESTURE.REFINER.PAIRS"),
])  # fmt: skip
def test_a_value_no_stage_can_use_is_refused_at_load(opts, key):
    with pytest.raises(ConfigError, match=rf"^{key} in the command line must be"):
        load_config(None, opts)


def test_a_default_made_unusable_by_another_key_is_named_as_the_default():
    with pytest.raises(ConfigError, match=r"GESTURE.FOLDS in the defaults .* = 1, got \[0, 1, 2"):
        load_config(None, ["GESTURE.NUM_FOLDS", "2"])
