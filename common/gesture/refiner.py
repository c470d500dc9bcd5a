"""Rule-based refiner for class pairs one frame cannot tell apart, decided by motion.

A raised index finger (static) and a wagging one look the same in any single frame, as do a
held fist and a fist pushed toward the camera. Over a clip they differ in how much the keypoints
move, so when the classifier's top class is either member of such a pair, a statistic of the
clip's keypoints picks the member:

* ``tip_x_range`` (the reference's ver1): per frame, the x of the topmost point (smallest y,
  the index tip); the statistic is max - min over the frames.
* ``max_x_range`` (ver2): per frame, the largest x over all points; max - min over the frames.
* ``size_change`` (ours, for the fist pairs): per frame, each hand's size (root-mean-square
  distance of its points from their mean; two-hand frames: geometric mean over the hands); the
  statistic is 100 * (max - min) of log size over the frames, about the percent the hand
  grows. A push toward the camera grows the fist; a position offset (a stage-one box off by
  some pixels, a slow drift) leaves it unchanged, whereas the ver2 statistic counts it in full.
  It also gives the same answer whichever hand of a two-hand clip the stages found.

Each statistic is the range of a per-frame series; with ``median_frames`` > 1 the series is first
median-filtered over that many frames, so one frame's badly regressed keypoints do not set the
range. Pixel statistics are expressed in pixels of a ``reference_width``-wide image (value *
reference_width / image width), so one threshold serves any image size; with 1920-wide frames
they equal the reference's numbers (``size_change`` has no unit). A threshold is the largest
value among the static classes' training clips plus a margin (reference: 5 px; in the
statistic's unit); the fit first drops static values above Q3 + k * IQR of the static values
(k = ``outlier_iqr``; only with at least 4 values), which removes clips such as the
reference's folder 596 (a fist that opens) that it excluded by hand. Pairs sharing a ``group``
share one threshold fitted on their pooled static clips (the reference used one threshold for
all four number-one/wag pairs and one for both fist pairs).

Each group also gets a confidence: the share of its training clips (static, outliers included,
and moving) put on the right side by the threshold fitted *without* them (leave-one-out), with an
add-one prior, (correct + 1) / (clips + 2), so it is never 0 or 1. Measured on the clips that set
the threshold instead, every static clip would be right by construction and a rule that does not
generalise would look reliable; that in-sample share is kept beside it for comparison. The
``calibrated`` mode trusts the rule only that much: a wrong choice then costs -log(m * (1 - c))
instead of the near-infinite loss of giving the true class nothing. It also leaves a group alone
unless its leave-one-out record is significantly better than a coin (one-sided binomial test,
``max_chance_p``): with a dozen clips, 7 right gives c = 8/14 > 0.5 by luck alone.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from common.gesture.data import POINTS_PER_HAND, GestureDataError
from common.io import atomic_write_text

THRESHOLDS_NAME = "refiner_thresholds.json"
MODES = ("onehot", "pair_mass", "calibrated")


def tip_x(points: np.ndarray) -> float:
    """The x of the frame's topmost point (smallest y)."""
    return float(points[np.argmin(points[:, 1]), 0])


def max_x(points: np.ndarray) -> float:
    """The frame's largest x."""
    return float(points[:, 0].max())


def log_hand_size(points: np.ndarray) -> float:
    """100 * log of the hand size: root-mean-square distance of a hand's points from their mean,
    geometric mean over the hands when the frame holds several (21 points each)."""
    hands = len(points) // POINTS_PER_HAND if len(points) % POINTS_PER_HAND == 0 else 1
    logs = []
    for hand in np.split(np.asarray(points, dtype=np.float64), max(1, hands)):
        radius = np.sqrt(np.mean(np.sum((hand - hand.mean(axis=0)) ** 2, axis=1)))
        logs.append(np.log(max(float(radius), 1e-6)))
    return 100.0 * float(np.mean(logs))


@dataclass(frozen=True)
class Statistic:
    """A per-frame value whose range over the clip is the statistic; ``in_pixels`` ones are
    rescaled to the reference width."""

    per_frame: Callable[[np.ndarray], float]
    in_pixels: bool


STATISTICS = {
    "tip_x_range": Statistic(tip_x, in_pixels=True),
    "max_x_range": Statistic(max_x, in_pixels=True),
    "size_change": Statistic(log_hand_size, in_pixels=False),
}


def median_filter(series: Sequence[float], window: int) -> np.ndarray:
    """Running median over ``window`` frames, centred; the ends repeat the first and last value,
    so a steady rise keeps its full range."""
    values = np.asarray(series, dtype=np.float64)
    if window <= 1:
        return values
    half = window // 2
    padded = np.pad(values, half, mode="edge")
    return np.array([np.median(padded[i : i + 2 * half + 1]) for i in range(len(values))])


def series_range(name: str, frames: Sequence[np.ndarray], median_frames: int = 1) -> float:
    """max - min over frames of statistic ``name``'s per-frame value (median-filtered first)."""
    series = median_filter([STATISTICS[name].per_frame(points) for points in frames], median_frames)
    return float(series.max() - series.min())


def tip_x_range(frames: Sequence[np.ndarray]) -> float:
    """max - min over frames of the x of each frame's topmost point (reference ver1)."""
    return series_range("tip_x_range", frames)


def max_x_range(frames: Sequence[np.ndarray]) -> float:
    """max - min over frames of each frame's largest x (reference ver2)."""
    return series_range("max_x_range", frames)


def size_change(frames: Sequence[np.ndarray]) -> float:
    """100 * (max - min) over frames of the log hand size."""
    return series_range("size_change", frames)


@dataclass(frozen=True)
class RefinerPair:
    static_id: int
    moving_id: int
    statistic: str
    group: str


@dataclass
class GroupThreshold:
    """A fitted threshold and what it was fitted on (saved to JSON for inspection)."""

    group: str
    statistic: str
    threshold: float
    static_max: float
    static_values: list[float]
    excluded_static_values: list[float]
    moving_values: list[float]
    # (training clips on the right side of the threshold fitted without them + 1) / (clips + 2)
    confidence: float
    median_frames: int = 1  # the statistic's median filter, applied again at inference
    # the same share with the threshold fitted on all clips (optimistic; for comparison)
    in_sample_confidence: float | None = None
    # P(a coin gets at least as many of the clips right as the leave-one-out check did), and the
    # level above which ``calibrated`` mode leaves the group alone (1 = no such test)
    chance_p: float = 0.0
    max_chance_p: float = 1.0


def parse_pairs(
    entries: Sequence[Sequence], class_ids: Sequence[int]
) -> tuple[list[RefinerPair], list[str]]:
    """Config entries ``[static_id, moving_id, statistic, group]`` as pairs whose two ids are
    both classes; the others are returned as notes (a data set may lack some classes)."""
    classes = {int(c) for c in class_ids}
    pairs: list[RefinerPair] = []
    notes: list[str] = []
    seen: dict[int, RefinerPair] = {}
    for entry in entries:
        if len(entry) != 4:
            raise ValueError(
                f"refiner pair must be [static_id, moving_id, statistic, group], got {entry!r}"
            )
        pair = RefinerPair(int(entry[0]), int(entry[1]), str(entry[2]), str(entry[3]))
        if pair.statistic not in STATISTICS:
            raise ValueError(f"refiner pair {entry!r}: statistic must be one of {list(STATISTICS)}")
        if pair.static_id not in classes or pair.moving_id not in classes:
            notes.append(
                f"refiner pair {pair.static_id}/{pair.moving_id} skipped: "
                "not both ids are classes of this data"
            )
            continue
        for pose_id in (pair.static_id, pair.moving_id):
            if pose_id in seen:
                raise ValueError(
                    f"pose id {pose_id} is in two refiner pairs: {seen[pose_id]} and {pair}"
                )
            seen[pose_id] = pair
        pairs.append(pair)
    statistic_of_group: dict[str, str] = {}
    for pair in pairs:
        if statistic_of_group.setdefault(pair.group, pair.statistic) != pair.statistic:
            raise ValueError(f"refiner group {pair.group!r} mixes statistics")
    return pairs, notes


def clip_statistic(
    name: str,
    frames: Sequence[np.ndarray],
    image_width: float,
    reference_width: float,
    median_frames: int = 1,
) -> float:
    """A statistic of one clip's (K, 2) keypoint frames (pixel ones in reference-width pixels)."""
    if len(frames) == 0:
        raise ValueError("a clip statistic needs at least one frame")
    value = series_range(name, frames, median_frames)
    if STATISTICS[name].in_pixels:
        value *= float(reference_width) / float(image_width)
    return value


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


def refine(
    probabilities: np.ndarray,
    class_ids: Sequence[int],
    frames: Sequence[np.ndarray],
    image_width: float,
    pairs: Sequence[RefinerPair],
    thresholds: dict[str, GroupThreshold],
    reference_width: float,
    mode: str = "onehot",
) -> tuple[np.ndarray, dict | None]:
    """Apply the rule to one clip's class probabilities.

    If the top class is a member of a pair with a fitted threshold, the clip's statistic picks
    static (value < threshold) or moving. ``onehot`` (reference) returns a one-hot vector on the
    choice; ``pair_mass`` moves the pair's combined probability onto the choice and keeps the
    other classes; ``calibrated`` splits that mass m as m * c on the choice and m * (1 - c) on the
    other member (c: the group's confidence), and leaves the clip alone when c <= 0.5 or the
    group's leave-one-out record is not significantly better than chance (its ``chance_p`` above
    its ``max_chance_p``). Returns the new probabilities and the decision
    (None when untouched).
    """
    if mode not in MODES:
        raise ValueError(f"refiner mode must be one of {MODES}, got {mode!r}")
    probabilities = np.asarray(probabilities, dtype=np.float64)
    ids = [int(c) for c in class_ids]
    top_id = ids[int(np.argmax(probabilities))]
    pair = next((p for p in pairs if top_id in (p.static_id, p.moving_id)), None)
    if pair is None or pair.group not in thresholds:
        return probabilities, None
    fit = thresholds[pair.group]
    if mode == "calibrated" and (fit.confidence <= 0.5 or fit.chance_p > fit.max_chance_p):
        return probabilities, None
    threshold = fit.threshold
    value = clip_statistic(pair.statistic, frames, image_width, reference_width, fit.median_frames)
    chosen = pair.static_id if value < threshold else pair.moving_id
    static_index, moving_index = ids.index(pair.static_id), ids.index(pair.moving_id)
    chosen_index = ids.index(chosen)
    other_index = moving_index if chosen_index == static_index else static_index
    if mode == "onehot":
        refined = np.zeros_like(probabilities)
        refined[chosen_index] = 1.0
    else:
        trust = 1.0 if mode == "pair_mass" else fit.confidence
        refined = probabilities.copy()
        mass = refined[static_index] + refined[moving_index]
        refined[chosen_index] = mass * trust
        refined[other_index] = mass * (1.0 - trust)
    decision = {
        "group": pair.group,
        "statistic": pair.statistic,
        "value": value,
        "threshold": threshold,
        "confidence": fit.confidence,
        "top_id": top_id,
        "chosen_id": chosen,
    }
    return refined, decision
