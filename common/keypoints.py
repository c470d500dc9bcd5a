"""Keypoint sets as data: names in order, flip pairs, skeleton, body halves and OKS sigmas.

A set is declared once, in a YAML or JSON file (the built-in ones in ``common/keypoint_sets/``)::

    names: [a, b, ...]            # in the order of the model's heatmaps and the CSV columns
    flip_pairs: [[left_x, right_x], ...]   # by name; a joint in at most one pair
    skeleton: [[a, b], ...]       # by name; lines drawn in pictures
    upper_body: [a, ...]          # by name; the rest is the lower half (half-body augmentation)
    sigmas: [0.026, ...]          # one per keypoint, > 0: the OKS falloff of the evaluation
    joint_weights: [1.0, ...]     # optional, one per keypoint, >= 0: loss weights

and read with ``load_keypoint_set('motion24' | 'hand21' | 'coco17' | path)``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from common.errors import UserError

SET_DIR = Path(__file__).resolve().parent / "keypoint_sets"
BUILTIN_SETS = ("motion24", "hand21", "coco17")
_FIELDS = ("names", "flip_pairs", "skeleton", "upper_body", "sigmas", "joint_weights")


class KeypointSetError(UserError, ValueError):
    """A keypoint-set file is missing, unreadable or inconsistent."""


@dataclass(frozen=True)
class KeypointSet:
    """One keypoint set; pairs and body halves hold indices into ``names``."""

    name: str
    names: tuple[str, ...]
    flip_pairs: tuple[tuple[int, int], ...]
    skeleton: tuple[tuple[int, int], ...]
    upper_body: tuple[int, ...]
    lower_body: tuple[int, ...]
    sigmas: tuple[float, ...]
    joint_weights: tuple[float, ...] | None = None

    @property
    def num_joints(self) -> int:
        return len(self.names)


def _read(path: Path) -> dict:
    if not path.is_file():
        raise KeypointSetError(
            f"keypoint set file not found: {path} (give {', '.join(BUILTIN_SETS)} or a path to "
            "a YAML/JSON file)"
        )
    try:
        text = path.read_text(encoding="utf-8")
        data = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except (OSError, UnicodeDecodeError, ValueError, yaml.YAMLError) as error:
        raise KeypointSetError(f"{path}: cannot read as YAML/JSON: {error}") from error
    if not isinstance(data, dict):
        raise KeypointSetError(f"{path}: expected a mapping with fields {', '.join(_FIELDS)}")
    return data


def _index_of(names: tuple[str, ...], item: Any, source: str, field: str) -> int:
    if not isinstance(item, str) or item not in names:
        raise KeypointSetError(f"{source}: field '{field}': unknown keypoint name {item!r}")
    return names.index(item)


def _pairs(data: dict, names: tuple[str, ...], source: str, field: str) -> tuple:
    raw = data.get(field) or []
    if not isinstance(raw, list):
        raise KeypointSetError(f"{source}: field '{field}': expected a list of name pairs")
    pairs = []
    for item in raw:
        if not isinstance(item, list) or len(item) != 2:
            raise KeypointSetError(
                f"{source}: field '{field}': expected a pair of names, got {item!r}"
            )
        a, b = (_index_of(names, name, source, field) for name in item)
        if a == b:
            raise KeypointSetError(f"{source}: field '{field}': {item!r} pairs a joint with itself")
        pairs.append((a, b))
    return tuple(pairs)


def _finite(value: float) -> bool:
    try:
        return math.isfinite(value)
    except OverflowError:  # an int too large for a float
        return False


def _numbers(
    data: dict, field: str, count: int, source: str, positive: bool
) -> tuple[float, ...] | None:
    raw = data.get(field)
    if raw is None:
        return None
    if not isinstance(raw, list) or len(raw) != count:
        got = len(raw) if isinstance(raw, list) else type(raw).__name__
        raise KeypointSetError(
            f"{source}: field '{field}': expected a list of {count} numbers (one per keypoint), "
            f"got {got}"
        )
    for index, value in enumerate(raw):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and _finite(value)
        if not ok or (value <= 0 if positive else value < 0):
            need = "> 0" if positive else ">= 0"
            raise KeypointSetError(
                f"{source}: field '{field}': value {index} ({value!r}) must be a finite number "
                f"{need}"
            )
    return tuple(float(value) for value in raw)


def parse_keypoint_set(data: dict, source: str, name: str) -> KeypointSet:
    """Validate the fields of a keypoint-set mapping; errors name ``source`` and the field."""
    unknown = sorted(set(data) - set(_FIELDS))
    if unknown:
        raise KeypointSetError(f"{source}: unknown fields {unknown} (known: {', '.join(_FIELDS)})")
    raw_names = data.get("names")
    if not isinstance(raw_names, list) or not raw_names:
        raise KeypointSetError(f"{source}: field 'names': expected a non-empty list of names")
    if not all(isinstance(item, str) and item.strip() for item in raw_names):
        raise KeypointSetError(f"{source}: field 'names': every name must be a non-empty string")
    names = tuple(raw_names)
    duplicated = sorted({item for item in names if names.count(item) > 1})
    if duplicated:
        raise KeypointSetError(f"{source}: field 'names': duplicated names {duplicated}")
    flip_pairs = _pairs(data, names, source, "flip_pairs")
    paired = [index for pair in flip_pairs for index in pair]
    twice = sorted({names[index] for index in paired if paired.count(index) > 1})
    if twice:
        raise KeypointSetError(f"{source}: field 'flip_pairs': joints paired twice: {twice}")
    skeleton = _pairs(data, names, source, "skeleton")
    raw_upper = data.get("upper_body") or []
    if not isinstance(raw_upper, list):
        raise KeypointSetError(f"{source}: field 'upper_body': expected a list of names")
    upper = sorted({_index_of(names, item, source, "upper_body") for item in raw_upper})
    if "sigmas" not in data:
        raise KeypointSetError(f"{source}: field 'sigmas': missing (one OKS sigma per keypoint)")
    return KeypointSet(
        name=name,
        names=names,
        flip_pairs=flip_pairs,
        skeleton=skeleton,
        upper_body=tuple(upper),
        lower_body=tuple(index for index in range(len(names)) if index not in upper),
        sigmas=_numbers(data, "sigmas", len(names), source, positive=True),
        joint_weights=_numbers(data, "joint_weights", len(names), source, positive=False),
    )


@lru_cache(maxsize=len(BUILTIN_SETS))
def _builtin(spec: str) -> KeypointSet:
    path = SET_DIR / f"{spec}.yaml"
    return parse_keypoint_set(_read(path), str(path), spec)


def load_keypoint_set(spec: str | Path) -> KeypointSet:
    """The keypoint set named ``spec`` (``motion24``, ``hand21``, ``coco17``) or in a file
    (read afresh each call, so an edited user file is seen)."""
    if str(spec) in BUILTIN_SETS:
        return _builtin(str(spec))
    path = Path(spec)
    return parse_keypoint_set(_read(path), str(path), path.stem)


def builtin_set_for_names(names: Sequence[str]) -> KeypointSet | None:
    """The built-in set whose keypoint names are ``names`` in this order, if any."""
    for spec in BUILTIN_SETS:
        if _builtin(spec).names == tuple(names):
            return _builtin(spec)
    return None


def check_num_joints(kp_set: KeypointSet, num_joints: int, key: str = "MODEL.NUM_JOINTS") -> None:
    """Refuse a model whose joint count differs from the keypoint set's."""
    if num_joints != kp_set.num_joints:
        raise KeypointSetError(
            f"{key} is {num_joints} but keypoint set '{kp_set.name}' has {kp_set.num_joints} "
            f"keypoints: set {key} {kp_set.num_joints} or choose the matching keypoint set"
        )


_MOTION = load_keypoint_set("motion24")
_HAND = load_keypoint_set("hand21")
MOTION_KEYPOINTS: tuple[str, ...] = _MOTION.names
MOTION_FLIP_PAIRS: tuple[tuple[int, int], ...] = _MOTION.flip_pairs
MOTION_UPPER_BODY: tuple[int, ...] = _MOTION.upper_body
MOTION_LOWER_BODY: tuple[int, ...] = _MOTION.lower_body
MOTION_SKELETON: tuple[tuple[int, int], ...] = _MOTION.skeleton
HAND_KEYPOINTS: tuple[str, ...] = _HAND.names


def coordinate_columns(names: tuple[str, ...] = MOTION_KEYPOINTS) -> list[str]:
    """The 2N coordinate column names in file order: ``<name>_x, <name>_y`` per keypoint."""
    return [f"{name}_{axis}" for name in names for axis in ("x", "y")]


def names_from_columns(columns: list[str]) -> tuple[str, ...]:
    """Keypoint names of a CSV header (``image`` then ``<name>_x, <name>_y`` pairs), so that
    any keypoint set's file can be read; an unpaired header is an error naming the column."""
    coords = list(columns[1:])
    if not coords or len(coords) % 2:
        raise ValueError(f"expected 'image' then <name>_x, <name>_y column pairs, got {columns}")
    names = tuple(column[:-2] for column in coords[::2])
    if coordinate_columns(names) != coords:
        wrong = next(c for c, e in zip(coords, coordinate_columns(names), strict=True) if c != e)
        raise ValueError(f"column {wrong!r} breaks the <name>_x, <name>_y pairs of the header")
    return names


def keypoint_set(num_joints: int) -> dict:
    """Names, flip pairs, body halves and skeleton for a joint count (24 motion, 21 hand)."""
    for kp_set in (_MOTION, _HAND):
        if kp_set.num_joints == num_joints:
            return {
                "names": kp_set.names,
                "flip_pairs": kp_set.flip_pairs,
                "upper_body": kp_set.upper_body,
                "lower_body": kp_set.lower_body,
                "skeleton": kp_set.skeleton,
            }
    raise KeypointSetError(f"no keypoint set has {num_joints} joints (motion has 24, hands 21)")
