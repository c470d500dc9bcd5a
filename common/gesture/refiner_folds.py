"""Refiner fitting on the trained folds: each fold's thresholds from its training clips,
scored on its validation clips; then the thresholds for the test set from all training clips."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from yacs.config import CfgNode

from common.gesture.data import GestureClip, read_clips
from common.gesture.files import (
    THRESHOLD_FILES,
    VALIDATION_PROBS_NAME,
    class_ids_of,
    clip_width,
    data_root,
)
from common.gesture.hand_keypoints import stage_keypoints_of_clips
from common.gesture.refiner import MODES, GroupThreshold, RefinerPair, parse_pairs
from common.gesture.refiner_statistics import STATISTICS, clip_statistic
from common.gesture.refiner_thresholds import fit_thresholds, save_thresholds
from common.gesture.scoring import mean_metrics, refine_clips, summarize_clips
from common.io import atomic_write_text


def _fit_refiner(
    cfg: CfgNode,
    pairs: Sequence[RefinerPair],
    clips: Sequence[GestureClip],
    widths: dict[str, int],
    keypoints: dict[str, Sequence[np.ndarray]],
) -> dict[str, GroupThreshold]:
    """Thresholds from the clips' statistics on ``keypoints`` ({folder: frames})."""
    reference_width = cfg.GESTURE.REFERENCE_WIDTH
    median_frames = cfg.GESTURE.REFINER.MEDIAN_FRAMES
    stats = [
        {
            name: clip_statistic(
                name, keypoints[c.folder], widths[c.folder], reference_width, median_frames
            )
            for name in STATISTICS
        }
        for c in clips
    ]
    return fit_thresholds(
        pairs,
        [c.pose_id for c in clips],
        stats,
        cfg.GESTURE.REFINER.MARGIN,
        cfg.GESTURE.REFINER.OUTLIER_IQR,
        median_frames,
        cfg.GESTURE.REFINER.MAX_CHANCE_P,
    )


def fit_and_score_refiner(cfg: CfgNode, output_dir: Path, logger: logging.Logger) -> dict:
    """Fit the refiner on each fold's training clips and score its validation clips (from the
    clip probabilities training saved), then fit on all training clips and save the thresholds
    and ``gesture_metrics.json``. Separate from training so refiner settings can be compared
    without retraining the classifier."""
    g = cfg.GESTURE
    output_dir = Path(output_dir)
    class_ids, _ = class_ids_of(cfg)
    class_index = {pose_id: index for index, pose_id in enumerate(class_ids)}
    clips = read_clips(data_root(cfg) / cfg.DATASET.TRAIN_IMAGE_DIR, "train", class_ids)
    by_folder = {clip.folder: clip for clip in clips}
    widths = {clip.folder: clip_width(clip) for clip in clips}
    pairs, _ = parse_pairs(g.REFINER.PAIRS, class_ids)
    # The refiner's statistics: from the JSON keypoints, and also from the stages' keypoints of
    # the training frames when given (thresholds as noisy as the stage keypoints of the test).
    refiner_keypoints = {"json": {clip.folder: list(clip.keypoints) for clip in clips}}
    if g.TRAIN_STAGE_RESULT_CSV:
        refiner_keypoints["stages"] = stage_keypoints_of_clips(
            g.TRAIN_STAGE_RESULT_CSV, clips, "training"
        )
    results: dict = {"folds": {}}
    # every fold's validation clips, refined with that fold's thresholds, pooled by source
    pooled: dict[str, dict[str, list]] = {
        source: {"probs": [], "labels": [], "refined": []} for source in refiner_keypoints
    }
    for fold in g.FOLDS:
        path = output_dir / f"fold_{fold}" / VALIDATION_PROBS_NAME
        if not path.is_file():
            raise FileNotFoundError(f"{path} not found: train fold {fold} first")
        with np.load(path) as saved:
            val_clips = [by_folder[str(folder)] for folder in saved["folders"]]
            train_clips = [by_folder[str(folder)] for folder in saved["train_folders"]]
            probs = saved["probs"]
            summary = json.loads(str(saved["summary"])) if "summary" in saved else {}
        labels = np.array([class_index[c.pose_id] for c in val_clips])
        for source, keypoints in refiner_keypoints.items():
            fold_thresholds = _fit_refiner(cfg, pairs, train_clips, widths, keypoints)
            refined_by_mode = refine_clips(
                probs,
                class_ids,
                [keypoints[c.folder] for c in val_clips],
                [widths[c.folder] for c in val_clips],
                pairs,
                fold_thresholds,
                g.REFERENCE_WIDTH,
            )
            scores = summarize_clips(
                probs, refined_by_mode, labels, class_ids, pairs, fold_thresholds, g.REFINER.MODE
            )
            pooled[source]["probs"].append(probs)
            pooled[source]["labels"].append(labels)
            pooled[source]["refined"].append(refined_by_mode)
            if source == "json":
                summary.update(scores)
            else:
                summary["stage_keypoints"] = scores
        results["folds"][str(fold)] = summary
        logger.info("fold %d: %s", fold, json.dumps(summary))
    results["mean"] = mean_metrics(list(results["folds"].values()))
    for source, keypoints in refiner_keypoints.items():
        thresholds = _fit_refiner(cfg, pairs, clips, widths, keypoints)
        # out of fold: all validation clips at once (each fold's own thresholds); the pairs'
        # threshold and confidence shown are those of the fit on all training clips
        out_of_fold = summarize_clips(
            np.concatenate(pooled[source]["probs"]),
            {
                name: np.concatenate([refined[name] for refined in pooled[source]["refined"]])
                for name in MODES
            },
            np.concatenate(pooled[source]["labels"]),
            class_ids,
            pairs,
            thresholds,
            g.REFINER.MODE,
        )
        if source == "json":
            results["out_of_fold"] = {**results.get("out_of_fold", {}), **out_of_fold}
        else:
            results.setdefault("out_of_fold", {})["stage_keypoints"] = out_of_fold
        save_thresholds(
            output_dir / THRESHOLD_FILES[source],
            thresholds,
            pairs,
            g.REFERENCE_WIDTH,
            g.REFINER.MARGIN,
            g.REFINER.OUTLIER_IQR,
        )
        suffix = "" if source == "json" else "_stages"
        results[f"thresholds{suffix}"] = {group: fit.threshold for group, fit in thresholds.items()}
        results[f"confidences{suffix}"] = {
            group: fit.confidence for group, fit in thresholds.items()
        }
        results[f"confidences_in_sample{suffix}"] = {
            group: fit.in_sample_confidence for group, fit in thresholds.items()
        }
        results[f"chance_p{suffix}"] = {group: fit.chance_p for group, fit in thresholds.items()}
        for group, fit in thresholds.items():
            if fit.confidence <= 0.5 or fit.chance_p > fit.max_chance_p:
                logger.info(
                    "refiner group %s on %s keypoints: rule not shown better than chance on "
                    "training clips left out of its fit (confidence %.3f, in-sample %.3f, "
                    "chance p %.3f), left untouched in 'calibrated' mode",
                    group,
                    source,
                    fit.confidence,
                    fit.in_sample_confidence,
                    fit.chance_p,
                )
    validations = [("JSON", results["out_of_fold"])]
    if "stage_keypoints" in results["out_of_fold"]:
        validations.append(("stage", results["out_of_fold"]["stage_keypoints"]))
    for label, mean in validations:
        logger.info(
            "validation clips of folds %s, refiner on %s keypoints: clip logloss %.4f -> %.4f, "
            "accuracy %.4f -> %.4f; pairs %s",
            list(g.FOLDS),
            label,
            mean["logloss"],
            mean["logloss_refined"],
            mean["accuracy"],
            mean["accuracy_refined"],
            json.dumps(mean.get("pairs", {})),
        )
    logger.info(
        "thresholds %s (confidences %s)%s",
        results["thresholds"],
        results["confidences"],
        f", on stage keypoints {results['thresholds_stages']} "
        f"(confidences {results['confidences_stages']})"
        if "stages" in refiner_keypoints
        else "",
    )
    atomic_write_text(output_dir / "gesture_metrics.json", json.dumps(results, indent=1))
    return results
