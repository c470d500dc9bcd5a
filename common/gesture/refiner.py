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

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from common.gesture.refiner_statistics import STATISTICS, clip_statistic

MODES = ("onehot", "pair_mass", "calibrated")


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
