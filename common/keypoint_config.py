"""The keypoint set of a config: ``DATASET.KEYPOINTS``, else the COCO file's category, else
the built-in set with ``MODEL.NUM_JOINTS`` joints; always checked against MODEL.NUM_JOINTS."""

from __future__ import annotations

import logging
from functools import lru_cache
from pathlib import Path

from yacs.config import CfgNode

from common.keypoints import (
    BUILTIN_SETS,
    KeypointSet,
    KeypointSetError,
    builtin_set_for_names,
    check_num_joints,
    load_keypoint_set,
)


def _spec_path(cfg: CfgNode) -> str | Path:
    """A built-in name, or a path as given (or, when no file is there, under DATASET.ROOT)."""
    spec = str(cfg.DATASET.KEYPOINTS)
    if spec in BUILTIN_SETS or Path(spec).is_file():
        return spec
    under_root = Path(cfg.DATASET.ROOT) / spec
    return under_root if under_root.is_file() else spec


@lru_cache(maxsize=8)
def _coco_file_set(path: str, mtime: float, expected: KeypointSet | None) -> KeypointSet:
    from common.coco import coco_keypoint_set, read_coco_json, validate_coco

    data = read_coco_json(path)
    validate_coco(data, path)
    return coco_keypoint_set(data, path, expected)


@lru_cache(maxsize=8)
def _say_once(message: str) -> None:
    """A warning shown once per process (the keypoint set is asked for many times a run)."""
    logging.getLogger(__name__).warning("warning: %s", message)


def coco_annotation_file(cfg: CfgNode) -> Path | None:
    """The first COCO file of the config that exists (train, then val, then test)."""
    root = Path(cfg.DATASET.ROOT)
    for key in ("TRAIN_JSON", "VAL_JSON", "TEST_JSON"):
        name = getattr(cfg.DATASET, key)
        if name and (root / name).is_file():
            return root / name
    return None


def _refuse_unknown_flip_pairs(cfg: CfgNode, path: Path, kp_set: KeypointSet) -> None:
    """A COCO category that is no built-in set declares no left/right pairs: flipping images
    with it would keep a left wrist labelled left on the right side. Refused while a flip is on,
    rather than trained silently without pairs."""
    flips = [key for key, on in (("DATASET.FLIP", cfg.DATASET.FLIP),
                                 ("TEST.FLIP_TEST", cfg.TEST.FLIP_TEST)) if on]  # fmt: skip
    if flips:
        raise KeypointSetError(
            f"DATASET.KEYPOINTS is empty and the category of {path} (keypoints "
            f"{list(kp_set.names)}) is no built-in set, so its left/right flip pairs are unknown "
            f"while {' and '.join(flips)} flip images: set DATASET.KEYPOINTS to a keypoint-set "
            f"file with flip_pairs and sigmas (README, Bring your own data), or set "
            f"{' '.join(f'{key} False' for key in flips)}"
        )


def config_keypoint_set(cfg: CfgNode) -> KeypointSet:
    """The keypoint set that a stage trains, flips, draws and scores with."""
    expected = load_keypoint_set(_spec_path(cfg)) if cfg.DATASET.KEYPOINTS else None
    if cfg.DATASET.FORMAT == "coco":
        path = coco_annotation_file(cfg)
        if path is not None:
            declared = expected
            expected = _coco_file_set(str(path), path.stat().st_mtime, expected)
            if declared is None and builtin_set_for_names(expected.names) is None:
                _refuse_unknown_flip_pairs(cfg, path, expected)
                _say_once(f"DATASET.KEYPOINTS is empty and the category of {path} is no "
                          f"built-in set: OKS uses a sigma of 0.025 for each of its "
                          f"{expected.num_joints} keypoints (COCO's smallest) and there are no "
                          "flip pairs; give a keypoint-set file for your own sigmas")
    if expected is None:
        builtin = [load_keypoint_set(name) for name in BUILTIN_SETS]
        matching = [s for s in builtin if s.num_joints == cfg.MODEL.NUM_JOINTS]
        if not matching:
            raise KeypointSetError(
                f"no built-in keypoint set has MODEL.NUM_JOINTS {cfg.MODEL.NUM_JOINTS} joints "
                f"({', '.join(f'{s.name} {s.num_joints}' for s in builtin)}): set "
                "DATASET.KEYPOINTS to a keypoint-set file"
            )
        expected = matching[0]
    check_num_joints(expected, cfg.MODEL.NUM_JOINTS)
    return expected
