"""Checks behind ``common.config.load_config``: every mistake in a YAML file or an override
becomes one ``ConfigError`` that names the key, the file (or "command line") and the fix.

yacs alone answers a misspelled key with an ``AssertionError`` or ``KeyError`` and no hint, a
wrong type with a ``ValueError`` about Python classes, and a YAML syntax error with a parser
traceback; here each is turned into a sentence, with the closest valid key suggested.
"""

from __future__ import annotations

import difflib
import logging
import re
from collections.abc import Iterator, Mapping
from pathlib import Path

import yaml
from yacs.config import CfgNode

from common.errors import ConfigError, MissingFileError

COMMAND_LINE = "the command line"
_TYPE_MISMATCH = re.compile(
    r"Type mismatch \(<class '(?P<want>\w+)'> vs\. <class '(?P<got>\w+)'>\) with values "
    r"\((?P<default>.*) vs\. (?P<value>.*)\) for config key: (?P<key>\S+)"
)
_LOG = logging.getLogger("common.config")


# Keys kept only so that the official HRNet and the competition's YAMLs load: nothing reads
# them. Each maps to what to do instead; setting one to another value than its default logs a
# warning (``warn_compat_keys`` below).
_UNUSED_COCO = ("nothing reads it (COCO test people: TEST.COCO_BBOX_FILE, IMAGE_THRE, "
                "IN_VIS_THRE, OKS_THRE)")
_DEBUG_IMAGES = "use DEBUG.NUM_SAMPLE_IMAGES (prediction pictures drawn each epoch)"
COMPAT_KEYS: dict[str, str] = {
    "DATA_DIR": "use DATASET.ROOT",
    "GPUS": "use torchrun --nproc_per_node N (one process per GPU, common/distributed.py)",
    "PRINT_FREQ": "training logs one line per epoch",
    "RANK": "torchrun sets the RANK environment variable",
    "LAMB": "nothing reads it (nor did the competition's code)",
    "test_option": "use the --test_option option of tools/train.py",
    "MODEL.TAG_PER_JOINT": "heatmap regression has no associative tags",
    "MODEL.TARGET_TYPE": "targets are always Gaussian heatmaps (MODEL.SIGMA)",
    "LOSS.USE_OHKM": "the loss is the joints MSE (LOSS.USE_TARGET_WEIGHT)",
    "LOSS.TOPK": "the loss is the joints MSE (LOSS.USE_TARGET_WEIGHT)",
    "DATASET.TRAIN_SET": "use DATASET.TRAIN_CSV and DATASET.TRAIN_IMAGE_DIR",
    "DATASET.TEST_SET": "use DATASET.TEST_CSV and DATASET.TEST_IMAGE_DIR",
    "DATASET.DATA_FORMAT": "images are read by their content",
    "DATASET.HYBRID_JOINTS_TYPE": "a COCO-only key",
    "DATASET.SELECT_DATA": "a COCO-only key",
    "TRAIN.GAMMA1": "nothing reads it (nor did the competition's code)",
    "TRAIN.GAMMA2": "nothing reads it (nor did the competition's code)",
    "TRAIN.RESUME": "use AUTO_RESUME",
    "TRAIN.CHECKPOINT": "use AUTO_RESUME (it resumes from the run folder's checkpoint.pth)",
    "TEST.USE_GT_BBOX": "the boxes come from TEST.BOX_SOURCE: file (DATASET.BOX_FILE, stage "
    "one's boxes, which the competition's USE_GT_BBOX true read) or truth (TRUTH_CSV extents)",
    "TEST.NMS_THRE": _UNUSED_COCO,
    "TEST.SOFT_NMS": _UNUSED_COCO,
    "TEST.BBOX_THRE": _UNUSED_COCO,
    "DEBUG.DEBUG": _DEBUG_IMAGES,
    "DEBUG.SAVE_BATCH_IMAGES_GT": _DEBUG_IMAGES,
    "DEBUG.SAVE_BATCH_IMAGES_PRED": _DEBUG_IMAGES,
    "DEBUG.SAVE_HEATMAPS_GT": _DEBUG_IMAGES,
    "DEBUG.SAVE_HEATMAPS_PRED": _DEBUG_IMAGES,
}


def full_keys(node: CfgNode, prefix: str = "") -> Iterator[str]:
    """Every key of ``node`` with its dotted path, sub-nodes included."""
    for name, value in node.items():
        key = f"{prefix}{name}"
        yield key
        if isinstance(value, CfgNode):
            yield from full_keys(value, f"{key}.")


def _unknown_key(key: str, where: str, defaults: CfgNode) -> ConfigError:
    close = difflib.get_close_matches(key, list(full_keys(defaults)), n=1, cutoff=0.6)
    hint = f"did you mean {close[0]}?" if close else "see common/config.py for the keys"
    return ConfigError(f"unknown config key {key} in {where}: {hint}")


def check_keys(data: Mapping, node: CfgNode, where: str, defaults: CfgNode,
               prefix: str = "") -> None:
    """Refuse the first key of ``data`` that ``node`` does not define (sub-nodes that allow
    new keys, ``MODEL.EXTRA``, take any)."""
    for name, value in data.items():
        key = f"{prefix}{name}"
        if name not in node:
            if node.is_new_allowed():
                continue
            raise _unknown_key(key, where, defaults)
        if isinstance(value, Mapping) and isinstance(node[name], CfgNode):
            check_keys(value, node[name], where, defaults, f"{key}.")


def _type_error(error: ValueError, where: str) -> ConfigError:
    match = _TYPE_MISMATCH.search(str(error))
    if match is None:
        return ConfigError(f"{where}: {error}")
    return ConfigError(
        f"{match['key']} in {where} must be of type {match['want']} like its default "
        f"{match['default']}, got {match['value']} (type {match['got']}): fix the value"
    )


def read_yaml(path: Path) -> CfgNode:
    """A YAML file as a node; a missing file or a syntax error names the file (and line)."""
    if not path.is_file():
        raise MissingFileError(
            f"config file not found: {path}; check --cfg (the experiment files are under "
            "experiments/)"
        )
    try:
        with open(path, encoding="utf-8") as handle:
            return CfgNode.load_cfg(handle)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line = f", line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise ConfigError(f"YAML syntax error in {path}{line}: {problem}; fix the file") from None
    except (AssertionError, UnicodeDecodeError) as error:  # not a mapping, not text
        raise ConfigError(f"{path} is not a YAML mapping of config keys ({error})") from None


def merge_file(cfg: CfgNode, path: Path, defaults: CfgNode) -> list[str]:
    """Merge an experiment file into ``cfg``, refusing unknown keys and wrong types; returns
    the keys the file sets."""
    loaded = read_yaml(path)
    check_keys(loaded, cfg, str(path), defaults)
    try:
        cfg.merge_from_other_cfg(loaded)
    except ValueError as error:
        raise _type_error(error, str(path)) from None
    return list(full_keys(loaded))


def merge_opts(cfg: CfgNode, opts: list[str], defaults: CfgNode) -> None:
    """Merge ``KEY VALUE`` pairs from the command line, with the same checks."""
    if len(opts) % 2:
        raise ConfigError(
            f"overrides must be KEY VALUE pairs, got an odd list on {COMMAND_LINE}: {opts}"
        )
    for key in opts[0::2]:
        node = cfg
        for part in key.split("."):
            if not isinstance(node, CfgNode) or part not in node:
                raise _unknown_key(key, COMMAND_LINE, defaults)
            node = node[part]
    try:
        cfg.merge_from_list(list(opts))
    except ValueError as error:
        raise _type_error(error, COMMAND_LINE) from None


def warn_compat_keys(cfg: CfgNode, defaults: CfgNode, compat: Mapping[str, str]) -> list[str]:
    """Log (and return) one warning per compatibility key set to a non-default value."""
    notes = []
    for key, instead in compat.items():
        value, default = cfg, defaults
        for part in key.split("."):
            value, default = value[part], default[part]
        if value != default:
            notes.append(f"config key {key} = {value!r} has no effect here: {instead}")
    for note in notes:
        _LOG.warning(note)
    return notes
