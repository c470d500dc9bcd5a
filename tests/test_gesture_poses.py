"""The left/right flip mapping built from a hand-made pose table."""

from __future__ import annotations

import pandas as pd

from common.gesture.poses import build_flip_pairs, flip_class_map


def _table() -> pd.DataFrame:
    rows = [
        (0, "숫자 1", "my hand", "static", "left"),
        (10, "숫자 1", "my hand", "static", "right"),
        (100, "숫자 1", "your hand", "static", "left"),  # other view: its own pair
        (110, "숫자 1", "your hand", "static", "right"),
        (42, "부정", "my hand", "dynamic", "left"),  # no right partner
        (171, "주먹쥐기", "your hand", "static", "both"),  # two hands: never flipped
        (146, "주먹쥐기", "your hand", "static", "right"),  # no left partner
        (49, "약속", "my hand", "static", "right"),  # duplicate right
        (54, "약속", "my hand", "static", "right"),
        (30, "약속", "my hand", "static", "left"),
        (124, "약속", "your hand", "static", "left"),  # two gestures sharing a name
        (129, "약속", "your hand", "static", "left"),
        (149, "약속", "your hand", "static", "right"),
        (154, "약속", "your hand", "static", "right"),
    ]
    return pd.DataFrame(
        rows, columns=["pose_id", "pose_name", "view_type", "gesture_type", "hand_type"]
    )


def test_pairs_without_fixes_leave_ambiguous_groups_unpaired() -> None:
    pairs, notes = build_flip_pairs(_table())
    assert pairs == [(0, 10), (100, 110)]
    assert len(notes) == 2
    assert any("right ids [49, 54]" in note for note in notes)
    assert any("left ids [124, 129]" in note for note in notes)


def test_reference_fixes_exclude_and_rename() -> None:
    renames = [[129, "약속 1"], [154, "약속 1"], [124, "약속 2"], [149, "약속 2"]]
    pairs, notes = build_flip_pairs(_table(), exclude_ids=[49], name_overrides=renames)
    assert pairs == [(0, 10), (30, 54), (100, 110), (124, 149), (129, 154)]
    assert notes == []


def test_class_map_is_symmetric_over_present_classes() -> None:
    class_ids = [0, 10, 42, 100, 146]  # 110 absent: its pair is dropped
    mapping = flip_class_map([(0, 10), (100, 110)], class_ids)
    assert mapping == {0: 1, 1: 0}
