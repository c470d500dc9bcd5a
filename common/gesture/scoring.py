"""Clip scores: frame softmax averaged per clip, refined, and scored with and without the
refiner; the folds' mean of those scores."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from common.gesture.refiner import MODES, GroupThreshold, RefinerPair, refine
from common.metrics import multiclass_logloss


def mean_by_clip(probs: np.ndarray, clip_of_frame: Sequence[int]) -> dict[int, np.ndarray]:
    by_clip: dict[int, list[int]] = {}
    for row, clip in enumerate(clip_of_frame):
        by_clip.setdefault(clip, []).append(row)
    return {clip: probs[rows].mean(0) for clip, rows in by_clip.items()}


def refine_clips(
    probs: np.ndarray,
    class_ids: Sequence[int],
    frames_per_clip: Sequence[Sequence[np.ndarray]],
    widths: Sequence[int],
    pairs: Sequence[RefinerPair],
    thresholds: dict[str, GroupThreshold],
    reference_width: float,
) -> dict[str, np.ndarray]:
    """Every clip's probabilities after the refiner, in each of its modes."""
    return {
        name: np.stack(
            [
                refine(p, class_ids, frames, width, pairs, thresholds, reference_width, name)[0]
                for p, frames, width in zip(probs, frames_per_clip, widths, strict=True)
            ]
        )
        for name in MODES
    }


def summarize_clips(
    probs: np.ndarray,
    refined_by_mode: dict[str, np.ndarray],
    labels: np.ndarray,
    class_ids: Sequence[int],
    pairs: Sequence[RefinerPair],
    thresholds: dict[str, GroupThreshold],
    mode: str,
) -> dict:
    """Clip logloss and accuracy without and with the refiner (in ``mode``; the logloss also in
    every mode), and per refiner group the logloss and accuracy on clips whose true class is in
    it (with the group's threshold and confidence from ``thresholds``)."""
    refined = refined_by_mode[mode]
    result = {
        "clips": len(labels),
        "logloss": multiclass_logloss(probs, labels),
        "logloss_refined": multiclass_logloss(refined, labels),
        "logloss_refined_by_mode": {
            name: multiclass_logloss(values, labels) for name, values in refined_by_mode.items()
        },
        "accuracy": float(np.mean(probs.argmax(1) == labels)),
        "accuracy_refined": float(np.mean(refined.argmax(1) == labels)),
        "pairs": {},
    }
    for group in sorted({pair.group for pair in pairs}):
        ids = {i for p in pairs if p.group == group for i in (p.static_id, p.moving_id)}
        members = np.array([class_ids[label] in ids for label in labels])
        if not members.any():
            continue
        result["pairs"][group] = {
            "clips": int(members.sum()),
            "logloss": multiclass_logloss(probs[members], labels[members]),
            "logloss_refined": multiclass_logloss(refined[members], labels[members]),
            "accuracy": float(np.mean(probs[members].argmax(1) == labels[members])),
            "accuracy_refined": float(np.mean(refined[members].argmax(1) == labels[members])),
            "threshold": thresholds[group].threshold if group in thresholds else None,
            "confidence": thresholds[group].confidence if group in thresholds else None,
        }
    return result


def score_clips(
    probs: np.ndarray,
    labels: np.ndarray,
    class_ids: Sequence[int],
    frames_per_clip: Sequence[Sequence[np.ndarray]],
    widths: Sequence[int],
    pairs: Sequence[RefinerPair],
    thresholds: dict[str, GroupThreshold],
    reference_width: float,
    mode: str,
) -> dict:
    """:func:`summarize_clips` of the clips refined with ``thresholds``."""
    refined_by_mode = refine_clips(
        probs, class_ids, frames_per_clip, widths, pairs, thresholds, reference_width
    )
    return summarize_clips(probs, refined_by_mode, labels, class_ids, pairs, thresholds, mode)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def mean_metrics(per_fold: list[dict]) -> dict:
    """The folds' mean of every number (dicts such as ``pairs`` recursively, over the keys all
    folds share). A value that is None in some folds, such as the threshold of a refiner pair
    that a fold could not fit (that fold did not refine the pair), is averaged over the folds
    that have it, and ``<key>_folds`` says how many those were."""
    mean: dict = {}
    for key, value in per_fold[0].items():
        values = [fold.get(key) for fold in per_fold]
        if isinstance(value, dict):
            shared = [v for v in values if isinstance(v, dict)]
            common_keys = set.intersection(*(set(v) for v in shared))
            mean[key] = (
                mean_metrics([{k: v[k] for k in common_keys} for v in shared])
                if common_keys
                else {}
            )
            continue
        numbers = [v for v in values if _is_number(v)]
        if not numbers or any(v is not None and not _is_number(v) for v in values):
            continue
        mean[key] = float(np.mean(numbers))
        if len(numbers) < len(values):
            mean[f"{key}_folds"] = len(numbers)
    return mean
