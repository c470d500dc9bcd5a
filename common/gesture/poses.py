"""Classes and the left/right flip mapping, built from hand_gesture_pose.csv.

A mirrored left hand looks like the right hand doing the same pose, so flip augmentation mirrors
a crop and swaps its class to the partner. The reference built the partners by grouping the
one-hand rows on (pose_name, view_type, gesture_type) and pairing the ``left`` and ``right``
rows; rows that share a name but are different gestures were renamed first and one duplicate
row dropped. The same procedure here takes those fixes from the config, and a group that still
holds more than one left or right row is reported and left unpaired (the reference's
group-sum would have silently added the ids together).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import pandas as pd

GROUP_COLUMNS = ("pose_name", "view_type", "gesture_type")


def build_flip_pairs(
    pose_table: pd.DataFrame,
    exclude_ids: Iterable[int] = (),
    name_overrides: Iterable[Sequence] = (),
) -> tuple[list[tuple[int, int]], list[str]]:
    """(left id, right id) pairs, and a note for each group that could not be paired.

    ``name_overrides`` are ``[pose_id, new_name]`` entries applied before grouping.
    """
    table = pose_table.copy()
    known = set(table["pose_id"].tolist())
    renames: dict[int, str] = {}
    for entry in name_overrides:
        if len(entry) != 2:
            raise ValueError(f"a flip name override must be [pose_id, name], got {entry!r}")
        pose_id, name = int(entry[0]), str(entry[1])
        if pose_id not in known:
            raise ValueError(f"flip name override for unknown pose id {pose_id}")
        renames[pose_id] = name
    if renames:
        table["pose_name"] = [
            renames.get(pose_id, name)
            for pose_id, name in zip(table["pose_id"], table["pose_name"], strict=True)
        ]
    excluded = {int(pose_id) for pose_id in exclude_ids}
    one_hand = table[table["hand_type"].isin(("left", "right")) & ~table["pose_id"].isin(excluded)]
    pairs: list[tuple[int, int]] = []
    notes: list[str] = []
    for key, group in one_hand.groupby(list(GROUP_COLUMNS), sort=True, dropna=False):
        lefts = sorted(group.loc[group["hand_type"] == "left", "pose_id"].tolist())
        rights = sorted(group.loc[group["hand_type"] == "right", "pose_id"].tolist())
        if len(lefts) == 1 and len(rights) == 1:
            pairs.append((int(lefts[0]), int(rights[0])))
        elif len(lefts) > 1 or len(rights) > 1:
            notes.append(
                f"{dict(zip(GROUP_COLUMNS, key, strict=True))}: left ids {lefts}, "
                f"right ids {rights} - ambiguous, not paired"
            )
    return sorted(pairs), notes


def flip_class_map(pairs: Iterable[tuple[int, int]], class_ids: Sequence[int]) -> dict[int, int]:
    """{class index: partner class index}, both directions, for pairs whose ids are classes."""
    index_of = {int(pose_id): index for index, pose_id in enumerate(class_ids)}
    mapping: dict[int, int] = {}
    for left, right in pairs:
        if left in index_of and right in index_of:
            mapping[index_of[left]] = index_of[right]
            mapping[index_of[right]] = index_of[left]
    return mapping
