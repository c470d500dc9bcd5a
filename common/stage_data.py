"""Reading a stage's training table and test list from ``DATASET.ROOT``, for both stages."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import numpy as np
from yacs.config import CfgNode

from common.keypoints import keypoint_set
from common.motion_data import keypoints_array, parse_motion_filename, read_keypoint_csv

# The reference's delete_list: positional rows of the real train_df.csv with bad annotations.
REFERENCE_DROP_ROWS: tuple[int, ...] = (
    317, 869, 873, 877, 911, 1216, 1559, 1560, 1562, 1566, 1575, 1577, 1578, 1582, 1597, 1606,
    1607, 1622, 1623, 1624, 1625, 1629, 3864, 3968, *range(4115, 4195),
)


@dataclass
class KeypointTable:
    """Images and their keypoints (N, J, 2) in original pixels."""

    names: list[str]
    paths: list[Path]
    keypoints: np.ndarray

    def subset(self, indices: np.ndarray) -> KeypointTable:
        return KeypointTable(
            [self.names[i] for i in indices],
            [self.paths[i] for i in indices],
            self.keypoints[indices],
        )


def dataset_root(cfg: CfgNode) -> Path:
    root = Path(cfg.DATASET.ROOT)
    if not root.is_dir():
        raise FileNotFoundError(
            f"DATASET.ROOT {root} does not exist; make a synthetic set with "
            f"`python tools/make_synthetic.py motion --out {root}` or point DATASET.ROOT at "
            "the competition data"
        )
    return root


def load_training_table(cfg: CfgNode) -> KeypointTable:
    """``TRAIN_CSV`` minus the positional rows ``DATASET.DROP_ROWS`` (and the reference's
    delete_list with ``DROP_REFERENCE_ROWS``)."""
    root = dataset_root(cfg)
    names = keypoint_set(cfg.MODEL.NUM_JOINTS)["names"]
    frame = read_keypoint_csv(root / cfg.DATASET.TRAIN_CSV, names)
    drop = {int(i) for i in cfg.DATASET.DROP_ROWS}
    if cfg.DATASET.DROP_REFERENCE_ROWS:
        drop.update(REFERENCE_DROP_ROWS)
    outside = sorted(i for i in drop if not 0 <= i < len(frame))
    if outside:
        raise ValueError(
            f"rows to drop {outside[:5]} lie outside {root / cfg.DATASET.TRAIN_CSV} "
            f"({len(frame)} rows); DROP_REFERENCE_ROWS is meant for the real competition file"
        )
    if drop:
        frame = frame.drop(index=frame.index[sorted(drop)]).reset_index(drop=True)
    image_dir = root / cfg.DATASET.TRAIN_IMAGE_DIR
    image_names = frame["image"].astype(str).tolist()
    return KeypointTable(
        image_names, [image_dir / n for n in image_names], keypoints_array(frame, names)
    )


def load_truth_table(cfg: CfgNode) -> KeypointTable | None:
    """Ground truth of the test images (``TRUTH_CSV``), or None where it is not known."""
    path = dataset_root(cfg) / cfg.DATASET.TRUTH_CSV
    if not path.is_file():
        return None
    names = keypoint_set(cfg.MODEL.NUM_JOINTS)["names"]
    frame = read_keypoint_csv(path, names)
    image_names = frame["image"].astype(str).tolist()
    image_dir = dataset_root(cfg) / cfg.DATASET.TEST_IMAGE_DIR
    return KeypointTable(
        image_names, [image_dir / n for n in image_names], keypoints_array(frame, names)
    )


def test_image_names(cfg: CfgNode) -> list[str]:
    """The test images, in the row order of ``TEST_CSV`` (the submission template)."""
    path = dataset_root(cfg) / cfg.DATASET.TEST_CSV
    names = keypoint_set(cfg.MODEL.NUM_JOINTS)["names"]
    return read_keypoint_csv(path, names)["image"].astype(str).tolist()


def split_groups(image_names: list[str]) -> list[str]:
    """The group of each image for group-aware splits: the subject id of a competition file
    name, or the folder of a ``<folder>/<frame>`` name (gesture clips)."""
    groups = []
    for name in image_names:
        if "/" in name:
            groups.append(name.split("/", 1)[0])
        else:
            groups.append(parse_motion_filename(name).subject)
    return groups


def keypoint_extent_boxes(keypoints: np.ndarray) -> np.ndarray:
    """Tight ``[x, y, w, h]`` boxes around each image's keypoints (the reference's boxes)."""
    low = keypoints.min(axis=1)
    high = keypoints.max(axis=1)
    return np.concatenate([low, high - low], axis=1)


STAGE_ENGINES = {"keypoint": "HRNet_keypoint.engine", "bbox": "HRNet_bbox.engine"}


def stage_engine(task: str) -> ModuleType:
    """The engine module of a stage: ``build_model``, ``build_stage``, ``evaluate``,
    ``run_test``."""
    if task not in STAGE_ENGINES:
        raise ValueError(f"TASK must be one of {sorted(STAGE_ENGINES)} or 'gesture', got {task!r}")
    return importlib.import_module(STAGE_ENGINES[task])
