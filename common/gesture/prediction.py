"""Prediction of the gesture classifier: :func:`predict_gesture`, in the stage interface's
steps (``read_gesture_test_inputs``, ``load_fold_models``, ``predict_clips``,
``write_gesture_outputs``).

Each test clip's frames are cropped (keypoints from the test JSON or the stages' result.csv), the
clip's probability is the mean softmax over its frames, averaged over the folds' models, then
refined (stage keypoints use the stage thresholds where training fitted them).
``submission.csv`` follows sample_submission.csv's rows and columns;
``submission_no_refiner.csv`` is written beside it.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from yacs.config import CfgNode

from common.checkpoint import load_safely
from common.distributed import default_device
from common.gesture.data import GestureClip, GestureDataError, read_clips
from common.gesture.files import (
    MODEL_NAME,
    RAW_SUBMISSION_NAME,
    SUBMISSION_NAME,
    THRESHOLD_FILES,
    class_ids_of,
    clip_width,
    data_root,
)
from common.gesture.frames import (
    FrameItem,
    GestureFrames,
    crop_margins,
    frame_loader,
    predict_frames,
)
from common.gesture.hand_keypoints import stage_keypoints_of_clips
from common.gesture.model import build_classifier
from common.gesture.poses import build_flip_pairs, flip_class_map
from common.gesture.refiner import GroupThreshold, RefinerPair, refine
from common.gesture.refiner_thresholds import THRESHOLDS_NAME, load_thresholds
from common.gesture.scoring import mean_by_clip, score_clips
from common.gesture.submission import (
    SubmissionLayout,
    read_sample_submission,
    read_test_answers,
    write_submission,
)
from common.io import atomic_write_text


def _test_keypoints(cfg: CfgNode, clips: dict[str, GestureClip]) -> dict[str, list[np.ndarray]]:
    source = cfg.GESTURE.KEYPOINT_SOURCE
    if source == "json":
        missing = [folder for folder, clip in clips.items() if clip.keypoints is None]
        if missing:
            raise GestureDataError(
                f"test folders without keypoint JSON: {missing[:10]}; use "
                "GESTURE.KEYPOINT_SOURCE stages with GESTURE.STAGE_RESULT_CSV"
            )
        return {folder: list(clip.keypoints) for folder, clip in clips.items()}
    if source != "stages":
        raise ValueError(f"GESTURE.KEYPOINT_SOURCE must be 'json' or 'stages', got {source!r}")
    if not cfg.GESTURE.STAGE_RESULT_CSV:
        raise ValueError(
            "GESTURE.KEYPOINT_SOURCE is 'stages' but GESTURE.STAGE_RESULT_CSV is empty"
        )
    return stage_keypoints_of_clips(cfg.GESTURE.STAGE_RESULT_CSV, list(clips.values()), "test")


def _load_fold_models(
    cfg: CfgNode, output_dir: Path, class_ids: list[int], device: torch.device
) -> list[nn.Module]:
    g = cfg.GESTURE
    paths = [output_dir / f"fold_{fold}" / MODEL_NAME for fold in g.FOLDS]
    missing = [str(path) for path in paths if not path.is_file()]
    if missing:
        raise FileNotFoundError(
            f"trained fold models not found: {missing} (GESTURE.FOLDS "
            f"{list(g.FOLDS)}; train them first)"
        )
    models = []
    for path in paths:
        checkpoint = load_safely(path)
        if checkpoint.get("image_size") != g.IMAGE_SIZE:
            raise ValueError(
                f"{path} was trained at image size {checkpoint.get('image_size')}, "
                f"GESTURE.IMAGE_SIZE is {g.IMAGE_SIZE}"
            )
        if list(checkpoint.get("class_ids", [])) != class_ids:
            raise ValueError(
                f"{path} was trained on classes {checkpoint.get('class_ids')}, "
                f"but the data has {class_ids}"
            )
        model = build_classifier(checkpoint["backbone"], len(class_ids))
        model.load_state_dict(checkpoint["state_dict"])
        models.append(model.to(device))
    return models


@dataclass
class GestureTestInputs:
    """The test clips in sample_submission.csv's row order, their keypoints and frames."""

    layout: SubmissionLayout
    clips: list[GestureClip]
    keypoints: dict[str, list[np.ndarray]]
    items: list[FrameItem]


@dataclass
class GesturePredictions:
    """The clips' probabilities (C, K) before the refiner, from ``model_count`` fold models."""

    inputs: GestureTestInputs
    probs: np.ndarray
    model_count: int


def read_gesture_test_inputs(cfg: CfgNode) -> GestureTestInputs:
    """The test clips of sample_submission.csv, checked against the pose table and the test
    folders, with their keypoints (``GESTURE.KEYPOINT_SOURCE``)."""
    class_ids, _ = class_ids_of(cfg)
    layout = read_sample_submission(data_root(cfg) / cfg.DATASET.TEST_CSV)
    if list(layout.class_ids) != class_ids:
        raise GestureDataError(
            f"{cfg.DATASET.TEST_CSV}: Label columns {list(layout.class_ids)} "
            f"differ from the pose table's ids {class_ids}"
        )
    test_clips = {
        clip.folder: clip
        for clip in read_clips(data_root(cfg) / cfg.DATASET.TEST_IMAGE_DIR, "test")
    }
    absent = [folder for folder in layout.folders if folder not in test_clips]
    if absent:
        raise GestureDataError(
            f"sample submission lists test folders that do not exist: {absent[:10]}"
        )
    clips = [test_clips[folder] for folder in layout.folders]
    keypoints = _test_keypoints(cfg, {clip.folder: clip for clip in clips})
    items = [
        FrameItem(path, points, -1, number)
        for number, clip in enumerate(clips)
        for path, points in zip(clip.frame_paths, keypoints[clip.folder], strict=True)
    ]
    return GestureTestInputs(layout, clips, keypoints, items)


def load_fold_models(cfg: CfgNode, output_dir: Path, device: torch.device) -> list[nn.Module]:
    """The trained models of ``GESTURE.FOLDS`` in ``output_dir``, checked against the config."""
    return _load_fold_models(cfg, Path(output_dir), class_ids_of(cfg)[0], device)


def predict_clips(
    cfg: CfgNode, models: list[nn.Module], inputs: GestureTestInputs, device: torch.device
) -> GesturePredictions:
    """Each clip's mean softmax over its frames, averaged over the fold models (and, with
    GESTURE.TEST_FLIP, over each frame and its mirror with the left/right classes swapped)."""
    g = cfg.GESTURE
    flip_map = None
    if g.TEST_FLIP:
        class_ids, pose_table = class_ids_of(cfg)
        pairs, _ = build_flip_pairs(pose_table, g.FLIP_EXCLUDE_IDS, g.FLIP_NAME_OVERRIDES)
        flip_map = flip_class_map(pairs, class_ids)
    dataset = GestureFrames(inputs.items, crop_margins(cfg), g.IMAGE_SIZE, False)
    frame_probs = predict_frames(models, frame_loader(dataset, cfg, False, 0), device, flip_map)
    clip_means = mean_by_clip(frame_probs, [item.clip for item in inputs.items])
    probs = np.stack([clip_means[number] for number in range(len(inputs.clips))])
    return GesturePredictions(inputs, probs, len(models))


def predict_gesture(cfg: CfgNode, output_dir: Path, logger: logging.Logger) -> Path:
    """Write ``submission.csv`` (and ``submission_no_refiner.csv``) into ``output_dir``."""
    device = default_device()
    inputs = read_gesture_test_inputs(cfg)
    models = load_fold_models(cfg, output_dir, device)
    return write_gesture_outputs(cfg, output_dir, predict_clips(cfg, models, inputs, device),
                                 logger)  # fmt: skip


def write_gesture_outputs(
    cfg: CfgNode, output_dir: Path, predictions: GesturePredictions, logger: logging.Logger
) -> Path:
    """``submission_no_refiner.csv``, the refiner's decisions, ``submission.csv`` and, where the
    test answers exist, ``test_scores.json``; returns the submission's path."""
    g = cfg.GESTURE
    output_dir = Path(output_dir)
    class_ids, _ = class_ids_of(cfg)
    layout, clips = predictions.inputs.layout, predictions.inputs.clips
    keypoints, probs = predictions.inputs.keypoints, predictions.probs
    raw_path = write_submission(output_dir / RAW_SUBMISSION_NAME, layout, probs)
    pairs: list[RefinerPair] = []
    thresholds: dict[str, GroupThreshold] = {}
    reference_width = float(g.REFERENCE_WIDTH)
    if g.REFINER.ENABLED:
        thresholds_path = output_dir / THRESHOLDS_NAME
        stage_thresholds = output_dir / THRESHOLD_FILES["stages"]
        if g.KEYPOINT_SOURCE == "stages" and stage_thresholds.is_file():
            thresholds_path = stage_thresholds
        elif g.KEYPOINT_SOURCE == "stages":
            logger.info(
                "no %s (train with GESTURE.TRAIN_STAGE_RESULT_CSV): the refiner uses thresholds "
                "fitted on JSON keypoints for stage keypoints",
                stage_thresholds,
            )
        pairs, thresholds, reference_width = load_thresholds(thresholds_path)
        logger.info("refiner thresholds: %s", thresholds_path)
    widths = [clip_width(clip) for clip in clips]
    refined, decisions = probs.copy(), []
    for number, clip in enumerate(clips):
        refined[number], decision = refine(
            probs[number],
            class_ids,
            keypoints[clip.folder],
            widths[number],
            pairs,
            thresholds,
            reference_width,
            g.REFINER.MODE,
        )
        if decision is not None:
            decisions.append({"folder": clip.folder, **decision})
    atomic_write_text(output_dir / "refiner_decisions.json", json.dumps(decisions, indent=1))
    path = write_submission(output_dir / SUBMISSION_NAME, layout, refined)
    logger.info(
        "%d test clips from %d fold models; refiner changed %d clips' top class among "
        "%d decisions; wrote %s and %s",
        len(clips),
        predictions.model_count,
        sum(d["top_id"] != d["chosen_id"] for d in decisions),
        len(decisions),
        path,
        raw_path,
    )
    truth_path = data_root(cfg) / cfg.DATASET.TRUTH_CSV
    if truth_path.is_file():
        answers = read_test_answers(truth_path)
        if all(folder in answers for folder in layout.folders):
            labels = np.array([class_ids.index(answers[f]) for f in layout.folders])
            scores = score_clips(
                probs,
                labels,
                class_ids,
                [keypoints[clip.folder] for clip in clips],
                widths,
                pairs,
                thresholds,
                reference_width,
                g.REFINER.MODE,
            )
            atomic_write_text(output_dir / "test_scores.json", json.dumps(scores, indent=1))
            logger.info("test answers %s: %s", truth_path, json.dumps(scores))
    return path
