"""The files a gesture run writes and the data set paths and classes its config names."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from yacs.config import CfgNode

from common.gesture.data import GestureClip, read_pose_table
from common.gesture.refiner_thresholds import THRESHOLDS_NAME
from common.io import image_size

MODEL_NAME = "best_model.pth"
# Refiner thresholds by the keypoints they were fitted on.
THRESHOLD_FILES = {"json": THRESHOLDS_NAME, "stages": "refiner_thresholds_stages.json"}
SUBMISSION_NAME = "submission.csv"
RAW_SUBMISSION_NAME = "submission_no_refiner.csv"
VALIDATION_PROBS_NAME = "validation_clip_probs.npz"


def data_root(cfg: CfgNode) -> Path:
    return Path(cfg.DATASET.ROOT)


def class_ids_of(cfg: CfgNode) -> tuple[list[int], pd.DataFrame]:
    pose_table = read_pose_table(data_root(cfg) / cfg.GESTURE.POSE_CSV)
    return [int(c) for c in pose_table["pose_id"]], pose_table


def clip_width(clip: GestureClip) -> int:
    return image_size(clip.frame_paths[0])[0]
