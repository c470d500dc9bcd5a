"""Value checks behind ``common.config.load_config``: a config whose keys and types are right can
still hold a value no stage can use (``TEST.DECODE darkk``, ``TEST.SCALES [0.0, 1.0]``,
``GESTURE.NUM_FOLDS 1``, a NaN learning rate). Each is refused when the config is loaded, before
any data is read or a model is built, as one ``ConfigError`` naming the key, where the value came
from (a file or the command line), what is expected and what was given, instead of a traceback
after an epoch of training.

The choice lists of keys a stage package implements (decoders, box heads, the tasks) are kept
here because ``common`` imports no stage; ``tests/test_config_values.py`` checks that each list
equals the registry that implements it.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable, Mapping

from yacs.config import CfgNode

from common.dataset_format import DATASET_FORMATS
from common.errors import ConfigError
from common.gesture.refiner import MODES as REFINER_MODES
from common.gesture.refiner_statistics import STATISTICS as REFINER_STATISTICS

# Keys with a fixed set of values (compared after ``str.lower()`` where the stage lowercases).
CHOICES: dict[str, tuple[str, ...]] = {
    "TASK": ("keypoint", "bbox", "detect", "gesture"),  # stages.STAGE_MODULES
    "TEST.DECODE": ("quarter", "dark"),  # HRNet_keypoint.codecs.udp.REFINEMENTS
    "TEST.BOX_SOURCE": ("file", "truth"),  # HRNet_keypoint.engine.BOX_SOURCES
    "TEST.PRECISION": ("auto", "fp32", "bf16"),  # models.reduced_precision.PRECISIONS
    "MODEL.BBOX_HEAD": ("reference", "pooled"),  # HRNet_bbox.model.BOX_HEADS
    "DATASET.BBOX_AUG": ("reference", "mild"),  # HRNet_bbox.dataset.BBOX_AUGMENTATIONS
    "DATASET.FORMAT": DATASET_FORMATS,
    "TRAIN.AMP_DTYPE": ("float16", "bfloat16"),
    "GESTURE.KEYPOINT_SOURCE": ("json", "stages"),
    "GESTURE.REFINER.MODE": tuple(REFINER_MODES),
}
LOWERCASED_CHOICES: dict[str, tuple[str, ...]] = {
    "TRAIN.OPTIMIZER": ("adam", "sgd"),
    "GESTURE.OPTIMIZER": ("adamw", "adam", "sgd"),
}
_POSITIVE = ("MODEL.SIGMA", "TRAIN.LR", "TRAIN.BATCH_SIZE_PER_GPU", "TEST.BATCH_SIZE_PER_GPU",
             "MODEL.NUM_JOINTS", "DATASET.MAX_IMAGE_PIXELS", "GESTURE.REFERENCE_WIDTH",
             "GESTURE.IMAGE_SIZE", "GESTURE.BATCH_SIZE", "GESTURE.MAX_LR",
             "GESTURE.REFINER.MEDIAN_FRAMES")  # fmt: skip
_NOT_NEGATIVE = ("WORKERS", "TRAIN.BEGIN_EPOCH", "TRAIN.END_EPOCH", "TRAIN.PATIENCE", "TRAIN.WD",
                 "DATASET.SCALE_FACTOR", "DATASET.ROT_FACTOR", "DEBUG.NUM_SAMPLE_IMAGES",
                 "TEST.INT8_CALIBRATION_IMAGES", "GESTURE.MARGIN", "GESTURE.BOTTOM_MARGIN",
                 "GESTURE.EXTRA_MARGIN", "GESTURE.WEIGHT_DECAY", "GESTURE.WARMUP_EPOCHS",
                 "GESTURE.WARMUP_LR", "GESTURE.EPOCHS", "GESTURE.PATIENCE", "GESTURE.GRAD_CLIP",
                 "GESTURE.REFINER.OUTLIER_IQR")  # fmt: skip
_PROBABILITIES = ("DATASET.PROB_HALF_BODY", "GESTURE.FLIP_PROB", "GESTURE.RANDOM_MARGIN_PROB",
                  "GESTURE.CUTMIX_PROB", "GESTURE.REFINER.MAX_CHANCE_P")  # fmt: skip


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _get(cfg: CfgNode, key: str) -> object:
    for part in key.split("."):
        cfg = cfg[part]
    return cfg


def _leaves(node: CfgNode, prefix: str = ""):
    for name, value in node.items():
        if isinstance(value, CfgNode):
            yield from _leaves(value, f"{prefix}{name}.")
        else:
            yield f"{prefix}{name}", value


def _check_choices(cfg: CfgNode, fail: Callable[[str, str], None]) -> None:
    for table, lower in ((CHOICES, False), (LOWERCASED_CHOICES, True)):
        for key, allowed in table.items():
            value = _get(cfg, key)
            if (str(value).lower() if lower else value) not in allowed:
                close = difflib.get_close_matches(str(value), allowed, n=1, cutoff=0.6)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                fail(key, f"one of {list(allowed)}{hint}")


def _check_numbers(cfg: CfgNode, fail: Callable[[str, str], None]) -> None:
    for key, value in _leaves(cfg):  # no NaN or infinity anywhere, lists included
        items = value if isinstance(value, list | tuple) else [value]
        if any(isinstance(v, float) and not math.isfinite(v) for v in items):
            fail(key, "finite numbers (no NaN or infinity)")
    for key in _POSITIVE:
        if not _get(cfg, key) > 0:
            fail(key, "a number above 0")
    for key in _NOT_NEGATIVE:
        if not _get(cfg, key) >= 0:
            fail(key, "a number of 0 or more")
    for key in _PROBABILITIES:
        if not 0 <= _get(cfg, key) <= 1:
            fail(key, "a probability between 0 and 1")
    if not 0 <= cfg.TEST_RATIO < 1:
        fail("TEST_RATIO", "a fraction of at least 0 and below 1")
    for key in ("MODEL.IMAGE_SIZE", "MODEL.HEATMAP_SIZE"):
        size = _get(cfg, key)
        if len(size) != 2 or not all(isinstance(v, int) and v > 0 for v in size):
            fail(key, "[width, height], two whole numbers above 0")
    scales = cfg.TEST.SCALES
    if not scales or not all(_is_number(v) and v > 0 for v in scales):
        fail("TEST.SCALES", "a non-empty list of box scale factors above 0, like [1.0] or "
                            "[0.9, 1.0, 1.1]")  # fmt: skip


def _check_gesture(cfg: CfgNode, fail: Callable[[str, str], None]) -> None:
    gesture = cfg.GESTURE
    if not isinstance(gesture.NUM_FOLDS, int) or gesture.NUM_FOLDS < 2:
        fail("GESTURE.NUM_FOLDS", "a whole number of at least 2 (a fold is held out)")
    folds = list(gesture.FOLDS)
    in_range = all(isinstance(f, int) and 0 <= f < gesture.NUM_FOLDS for f in folds)
    if not folds or not in_range or len(set(folds)) != len(folds):
        fail("GESTURE.FOLDS", f"a non-empty list of distinct fold numbers from 0 to "
                              f"GESTURE.NUM_FOLDS - 1 = {gesture.NUM_FOLDS - 1}")  # fmt: skip
    for pair in gesture.REFINER.PAIRS:
        ok = (isinstance(pair, list | tuple) and len(pair) == 4
              and all(isinstance(v, int) and not isinstance(v, bool) for v in pair[:2])
              and pair[2] in REFINER_STATISTICS and isinstance(pair[3], str))  # fmt: skip
        if not ok:
            fail("GESTURE.REFINER.PAIRS", f"[static_id, moving_id, statistic, group] entries, "
                                          f"statistic one of {list(REFINER_STATISTICS)}; the "
                                          f"entry {pair!r} is not")  # fmt: skip


def check_values(cfg: CfgNode, sources: Mapping[str, str]) -> None:
    """Refuse the first value no stage can use; ``sources`` maps a key to where it was set
    (keys not in it kept their default)."""

    def fail(key: str, expected: str) -> None:
        where = sources.get(key, "the defaults")
        raise ConfigError(f"{key} in {where} must be {expected}, got {_get(cfg, key)!r}: fix "
                          "the value")  # fmt: skip

    _check_choices(cfg, fail)
    _check_numbers(cfg, fail)
    _check_gesture(cfg, fail)
