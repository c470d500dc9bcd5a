"""The refiner's thresholds: fitted on training clips (largest static value after the outlier
cut, plus a margin; a leave-one-out confidence and chance test), saved as JSON and read back
with every field checked (see :mod:`common.gesture.refiner`)."""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np

from common.gesture.data import GestureDataError
from common.gesture.refiner import GroupThreshold, RefinerPair
from common.gesture.refiner_statistics import STATISTICS
from common.io import atomic_write_text

THRESHOLDS_NAME = "refiner_thresholds.json"


def _outlier_cutoff(values: np.ndarray, outlier_iqr: float) -> float:
    if outlier_iqr <= 0 or len(values) < 4:
        return float("inf")
    q1, q3 = np.percentile(values, [25, 75])
    return float(q3 + outlier_iqr * (q3 - q1))


def static_threshold(
    static_values: Sequence[float], margin: float, outlier_iqr: float
) -> tuple[float, np.ndarray, np.ndarray]:
    """(threshold, kept values, excluded values): the largest static value left after dropping
    those above Q3 + ``outlier_iqr`` * IQR, plus ``margin``."""
    static = np.asarray(static_values, dtype=np.float64)
    if static.size == 0:
        raise ValueError("a threshold needs at least one static value")
    cutoff = _outlier_cutoff(static, outlier_iqr)
    kept = static[static <= cutoff]
    return float(kept.max() + margin), kept, static[static > cutoff]


def add_one_share(correct: int, clips: int) -> float:
    """(correct + 1) / (clips + 2): a share that is never exactly 0 or 1."""
    return (correct + 1) / (clips + 2)


def rule_confidence(
    threshold: float, static_values: Sequence[float], moving_values: Sequence[float]
) -> float:
    """The add-one estimate of how often the threshold picks right: static clips must fall
    below it, moving ones at or above it."""
    correct = sum(v < threshold for v in static_values) + sum(v >= threshold for v in moving_values)
    return add_one_share(correct, len(static_values) + len(moving_values))


def leave_one_out_correct(
    static_values: Sequence[float],
    moving_values: Sequence[float],
    margin: float,
    outlier_iqr: float,
) -> int:
    """How many clips the threshold fitted without them puts on the right side (see
    :func:`leave_one_out_confidence`)."""
    static = np.asarray(static_values, dtype=np.float64)
    correct = 0
    for i in range(static.size):
        rest = np.delete(static, i)
        if rest.size and static[i] < static_threshold(rest, margin, outlier_iqr)[0]:
            correct += 1
    if static.size:
        threshold = static_threshold(static, margin, outlier_iqr)[0]
        correct += sum(float(v) >= threshold for v in moving_values)
    return correct


def chance_p_value(correct: int, clips: int) -> float:
    """One-sided binomial test: the probability of at least ``correct`` right of ``clips`` when
    each is right with probability 1/2 (a rule no better than chance)."""
    return sum(math.comb(clips, k) for k in range(correct, clips + 1)) / 2.0**clips


def leave_one_out_confidence(
    static_values: Sequence[float],
    moving_values: Sequence[float],
    margin: float,
    outlier_iqr: float,
) -> float:
    """The add-one share of clips that the threshold fitted without them puts on the right side.

    In-sample (:func:`rule_confidence`) every kept static clip is right by construction, since
    the threshold lies above the largest of them. Here each static clip is checked against the
    threshold refitted on the other static clips (the same fit: outlier cut, largest + margin),
    so a static class whose values spread (noisy keypoints) counts its top clips as misses. A
    moving clip never enters the fit, so it is checked against the full threshold. A group with a
    single static clip has nothing left to fit without it: that clip counts as a miss.
    """
    correct = leave_one_out_correct(static_values, moving_values, margin, outlier_iqr)
    return add_one_share(correct, len(static_values) + len(moving_values))


def fit_thresholds(
    pairs: Sequence[RefinerPair],
    clip_pose_ids: Sequence[int],
    clip_stat_values: Sequence[dict[str, float]],
    margin: float,
    outlier_iqr: float,
    median_frames: int = 1,
    max_chance_p: float = 1.0,
) -> dict[str, GroupThreshold]:
    """Per group: largest static-class value (outliers dropped) + margin.

    ``clip_stat_values[i]`` holds clip i's value of each statistic (computed with
    ``median_frames``, which is recorded with the threshold).
    Groups without a static clip get no threshold (and are then left alone at inference).
    Each threshold carries its :func:`leave_one_out_confidence` (what ``calibrated`` mode uses)
    and, for comparison, its in-sample :func:`rule_confidence` on all of the group's clips, and
    the :func:`chance_p_value` of its leave-one-out record (``calibrated`` mode leaves groups
    above ``max_chance_p`` alone).
    """
    fitted: dict[str, GroupThreshold] = {}
    for group in sorted({pair.group for pair in pairs}):
        members = [pair for pair in pairs if pair.group == group]
        statistic = members[0].statistic
        static_ids = {pair.static_id for pair in members}
        moving_ids = {pair.moving_id for pair in members}
        static = [
            float(stats[statistic])
            for pose_id, stats in zip(clip_pose_ids, clip_stat_values, strict=True)
            if pose_id in static_ids
        ]
        moving = [
            float(stats[statistic])
            for pose_id, stats in zip(clip_pose_ids, clip_stat_values, strict=True)
            if pose_id in moving_ids
        ]
        if not static:
            continue
        threshold, kept, excluded = static_threshold(static, margin, outlier_iqr)
        correct = leave_one_out_correct(static, moving, margin, outlier_iqr)
        clips = len(static) + len(moving)
        fitted[group] = GroupThreshold(
            group=group,
            statistic=statistic,
            threshold=threshold,
            static_max=float(kept.max()),
            static_values=sorted(float(v) for v in kept),
            excluded_static_values=sorted(float(v) for v in excluded),
            moving_values=sorted(moving),
            confidence=add_one_share(correct, clips),  # leave_one_out_confidence
            median_frames=int(median_frames),
            in_sample_confidence=rule_confidence(threshold, static, moving),
            chance_p=chance_p_value(correct, clips),
            max_chance_p=float(max_chance_p),
        )
    return fitted


def save_thresholds(
    path: str | Path,
    thresholds: dict[str, GroupThreshold],
    pairs: Sequence[RefinerPair],
    reference_width: float,
    margin: float,
    outlier_iqr: float,
) -> Path:
    """Write the fitted thresholds, the pairs and the fit settings as JSON, atomically."""
    content = {
        "reference_width": reference_width,
        "margin": margin,
        "outlier_iqr": outlier_iqr,
        "pairs": [asdict(pair) for pair in pairs],
        "groups": {group: asdict(fit) for group, fit in thresholds.items()},
    }
    path = Path(path)
    atomic_write_text(path, json.dumps(content, indent=1, ensure_ascii=False))
    return path


def _field_problem(name: str, value: object) -> str | None:
    """Why a saved group field is unusable (None if it is fine)."""
    if name in ("group", "statistic"):
        return None if isinstance(value, str) else "must be a string"
    if name in ("static_values", "excluded_static_values", "moving_values"):
        ok = isinstance(value, list) and all(_finite(v) for v in value)
        return None if ok else "must be a list of finite numbers"
    if name == "median_frames":
        ok = isinstance(value, int) and not isinstance(value, bool) and value >= 1
        return None if ok else "must be a whole number >= 1"
    if name == "in_sample_confidence" and value is None:
        return None
    if not _finite(value):
        return "must be a finite number"
    if name in ("confidence", "in_sample_confidence", "chance_p", "max_chance_p"):
        return None if 0.0 <= value <= 1.0 else "must lie in [0, 1]"
    return None


def _finite(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _checked_group(group: str, fit: object, pairs: Sequence[RefinerPair]) -> GroupThreshold:
    """One saved group as a :class:`GroupThreshold`, or ValueError naming the group and field:
    a confidence outside [0, 1] or a non-finite threshold would give negative probabilities."""
    if not isinstance(fit, dict):
        raise ValueError(f"group {group!r}: not an object")
    fields = {f.name: f for f in dataclasses.fields(GroupThreshold)}
    unknown = sorted(set(fit) - set(fields))
    if unknown:
        raise ValueError(f"group {group!r}: unknown field {unknown[0]!r}")
    for name, field in fields.items():
        if name not in fit:
            if field.default is dataclasses.MISSING:
                raise ValueError(f"group {group!r}: field {name!r} is missing")
            continue
        problem = _field_problem(name, fit[name])
        if problem:
            raise ValueError(f"group {group!r}: field {name!r} {problem}, got {fit[name]!r}")
    statistics = {pair.statistic for pair in pairs if pair.group == group}
    if not statistics:
        raise ValueError(f"group {group!r}: no refiner pair belongs to it")
    if fit["group"] != group or statistics != {fit["statistic"]}:
        raise ValueError(
            f"group {group!r}: field 'group'/'statistic' ({fit['group']!r}, "
            f"{fit['statistic']!r}) does not match its pairs' ({sorted(statistics)})"
        )
    return GroupThreshold(**fit)


def _checked_pair(entry: object) -> RefinerPair:
    if not isinstance(entry, dict):
        raise ValueError(f"pair {entry!r}: not an object")
    pair = RefinerPair(**entry)
    for name in ("static_id", "moving_id"):
        value = getattr(pair, name)
        if not isinstance(value, int) or isinstance(value, bool):
            raise ValueError(f"pair {entry!r}: field {name!r} must be a class id, got {value!r}")
    if pair.statistic not in STATISTICS:
        raise ValueError(f"pair {entry!r}: field 'statistic' must be one of {list(STATISTICS)}")
    return pair


def load_thresholds(path: str | Path) -> tuple[list[RefinerPair], dict[str, GroupThreshold], float]:
    """(pairs, thresholds, reference_width) from :func:`save_thresholds`'s file, checked field
    by field (ValueError naming the file, the pair or group and the field)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"refiner thresholds not found: {path} (written by training)")
    try:
        content = json.loads(path.read_text(encoding="utf-8"))
        pairs = [_checked_pair(entry) for entry in content["pairs"]]
        thresholds = {
            group: _checked_group(group, fit, pairs) for group, fit in content["groups"].items()
        }
        reference_width = content["reference_width"]
        if not _finite(reference_width) or reference_width <= 0:
            raise ValueError(
                f"field 'reference_width' must be a positive number, got {reference_width!r}"
            )
    except (json.JSONDecodeError, KeyError, TypeError, AttributeError, ValueError) as exc:
        raise GestureDataError(f"{path}: not a refiner thresholds file ({exc})") from exc
    return pairs, thresholds, float(reference_width)
