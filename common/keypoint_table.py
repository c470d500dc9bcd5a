"""A stage's table of images and keypoints, whichever file it came from (competition CSV or
COCO), and where the data set lives."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from yacs.config import CfgNode

from common.boxes import keypoint_extent_boxes
from common.errors import MissingFileError


@dataclass
class KeypointTable:
    """Images and their keypoints (N, J, 2) in original pixels. A COCO table has one row per
    person and also its ``boxes`` (N, 4), ``visibility`` (N, J) COCO v flags and split
    ``groups`` (its image or subject, so one image's people stay in one split), and
    ``grouped_by`` says which, and ``areas`` (N,) the people's areas (the OKS scale); CSV tables
    leave them None (boxes are the keypoint extents, every keypoint visible)."""

    names: list[str]
    paths: list[Path]
    keypoints: np.ndarray
    skipped: list[str] = field(default_factory=list)  # left out by DATASET.SKIP_BAD_IMAGES
    boxes: np.ndarray | None = None
    visibility: np.ndarray | None = None
    groups: list[str] | None = None
    grouped_by: str | None = None
    areas: np.ndarray | None = None

    def subset(self, indices: np.ndarray) -> KeypointTable:
        return KeypointTable(
            [self.names[i] for i in indices],
            [self.paths[i] for i in indices],
            self.keypoints[indices],
            list(self.skipped),
            None if self.boxes is None else self.boxes[indices],
            None if self.visibility is None else self.visibility[indices],
            None if self.groups is None else [self.groups[i] for i in indices],
            self.grouped_by,
            None if self.areas is None else self.areas[indices],
        )


def table_boxes(table: KeypointTable) -> np.ndarray:
    """The person boxes of a table: its own (COCO) or the keypoint extents (CSV)."""
    return keypoint_extent_boxes(table.keypoints) if table.boxes is None else table.boxes


def labelled_mask(table: KeypointTable) -> np.ndarray:
    """(N, J) which keypoints are annotated (COCO v > 0; every keypoint of a CSV)."""
    if table.visibility is None:
        return np.ones(table.keypoints.shape[:2], dtype=bool)
    return table.visibility > 0


def dataset_root(cfg: CfgNode) -> Path:
    root = Path(cfg.DATASET.ROOT)
    if not root.is_dir():
        raise MissingFileError(
            f"DATASET.ROOT {root} does not exist; make a synthetic set with "
            f"`python tools/make_synthetic.py motion --out {root}` or point DATASET.ROOT at "
            "the competition data"
        )
    return root
