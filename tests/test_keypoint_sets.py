"""Keypoint sets as data: the built-in files keep the sets that lived in code, and a user file
is validated with errors that name the file and the field."""

from __future__ import annotations

import json

import pytest

from common.keypoints import (
    KeypointSetError,
    check_num_joints,
    keypoint_set,
    load_keypoint_set,
)

# The sets as they were declared in code before they became data files.
OLD_MOTION_NAMES = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
    "left_wrist", "right_wrist", "left_hip", "right_hip", "left_knee", "right_knee",
    "left_ankle", "right_ankle", "neck", "left_palm", "right_palm",
    "spine2(back)", "spine1(waist)", "left_instep", "right_instep",
)  # fmt: skip
OLD_MOTION_FLIP = (
    (1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16), (18, 19), (22, 23),
)  # fmt: skip
OLD_MOTION_UPPER = (0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 17, 18, 19, 20, 21)
OLD_MOTION_LOWER = (11, 12, 13, 14, 15, 16, 22, 23)
OLD_MOTION_SKELETON = (
    (0, 1), (0, 2), (1, 3), (2, 4), (0, 17), (17, 5), (17, 6), (5, 7), (7, 9), (9, 18),
    (6, 8), (8, 10), (10, 19), (17, 20), (20, 21), (21, 11), (21, 12), (11, 13), (13, 15),
    (15, 22), (12, 14), (14, 16), (16, 23),
)  # fmt: skip
OLD_HAND_NAMES = ("wrist",) + tuple(
    f"{finger}_{joint}" for finger in ("thumb", "index", "middle", "ring", "pinky")
    for joint in (1, 2, 3, 4)
)
OLD_HAND_FINGERS = tuple(base + joint for base in (1, 5, 9, 13, 17) for joint in (1, 2, 3))
OLD_HAND_PALM = (0, 1, 5, 9, 13, 17)
OLD_HAND_SKELETON = tuple(
    pair for base in (1, 5, 9, 13, 17)
    for pair in ((0, base), (base, base + 1), (base + 1, base + 2), (base + 2, base + 3))
)

COCO_SIGMAS = (0.026, 0.025, 0.025, 0.035, 0.035, 0.079, 0.079, 0.072, 0.072, 0.062, 0.062,
               0.107, 0.107, 0.087, 0.087, 0.089, 0.089)


def test_motion24_keeps_the_old_set():
    kp_set = load_keypoint_set("motion24")
    assert kp_set.names == OLD_MOTION_NAMES
    assert kp_set.flip_pairs == OLD_MOTION_FLIP
    assert kp_set.upper_body == OLD_MOTION_UPPER
    assert kp_set.lower_body == OLD_MOTION_LOWER
    assert kp_set.skeleton == OLD_MOTION_SKELETON
    assert len(kp_set.sigmas) == 24
    old = keypoint_set(24)
    assert (old["names"], old["flip_pairs"], old["upper_body"], old["lower_body"],
            old["skeleton"]) == (OLD_MOTION_NAMES, OLD_MOTION_FLIP, OLD_MOTION_UPPER,
                                 OLD_MOTION_LOWER, OLD_MOTION_SKELETON)


def test_hand21_keeps_the_old_set():
    kp_set = load_keypoint_set("hand21")
    assert kp_set.names == OLD_HAND_NAMES
    assert kp_set.flip_pairs == ()
    assert kp_set.upper_body == OLD_HAND_FINGERS
    assert kp_set.lower_body == OLD_HAND_PALM
    assert kp_set.skeleton == OLD_HAND_SKELETON
    assert keypoint_set(21)["names"] == OLD_HAND_NAMES
    with pytest.raises(ValueError, match="no keypoint set has 7 joints"):
        keypoint_set(7)


def test_coco17_is_the_published_set():
    kp_set = load_keypoint_set("coco17")
    assert kp_set.num_joints == 17
    assert kp_set.sigmas == COCO_SIGMAS
    assert kp_set.names[0] == "nose" and kp_set.names[16] == "right_ankle"
    assert kp_set.flip_pairs == tuple((i, i + 1) for i in range(1, 17, 2))
    assert len(kp_set.skeleton) == 19
    # COCO's 1-based skeleton begins [16, 14], [14, 12]
    assert kp_set.skeleton[:2] == ((15, 13), (13, 11))
    assert kp_set.upper_body == tuple(range(11))


USER = {
    "names": ["head", "left_hand", "right_hand", "left_foot", "right_foot"],
    "flip_pairs": [["left_hand", "right_hand"], ["left_foot", "right_foot"]],
    "skeleton": [["head", "left_hand"], ["head", "right_hand"], ["head", "left_foot"]],
    "upper_body": ["head", "left_hand", "right_hand"],
    "sigmas": [0.03, 0.06, 0.06, 0.09, 0.09],
    "joint_weights": [1.0, 1.2, 1.2, 1.5, 1.5],
}


def _write(tmp_path, data, name="user.yaml"):
    path = tmp_path / name
    path.write_text(json.dumps(data) if name.endswith(".json") else _yaml(data))
    return path


def _yaml(data):
    import yaml

    return yaml.safe_dump(data)


@pytest.mark.parametrize("name", ["user.yaml", "user.json"])
def test_user_set_of_five(tmp_path, name):
    kp_set = load_keypoint_set(_write(tmp_path, USER, name))
    assert kp_set.name == "user" and kp_set.num_joints == 5
    assert kp_set.flip_pairs == ((1, 2), (3, 4))
    assert kp_set.skeleton == ((0, 1), (0, 2), (0, 3))
    assert kp_set.upper_body == (0, 1, 2) and kp_set.lower_body == (3, 4)
    assert kp_set.joint_weights == (1.0, 1.2, 1.2, 1.5, 1.5)
    check_num_joints(kp_set, 5)
    with pytest.raises(KeypointSetError, match="MODEL.NUM_JOINTS is 24 .* 5 keypoints"):
        check_num_joints(kp_set, 24)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"names": ["a", "b", "a"]}, "'names': duplicated names \\['a'\\]"),
        ({"flip_pairs": [["left_hand", "tail"]]}, "'flip_pairs': unknown keypoint name 'tail'"),
        ({"skeleton": [["head", "wing"]]}, "'skeleton': unknown keypoint name 'wing'"),
        ({"flip_pairs": [["left_hand", "right_hand"], ["left_hand", "left_foot"]]},
         "'flip_pairs': joints paired twice: \\['left_hand'\\]"),
        ({"sigmas": [0.1, 0.1]}, "'sigmas': expected a list of 5 numbers"),
        ({"sigmas": [0.1, 0.1, 0.0, 0.1, 0.1]}, "'sigmas': value 2 \\(0.0\\) must be a finite"),
        ({"upper_body": ["neck"]}, "'upper_body': unknown keypoint name 'neck'"),
        ({"colour": "red"}, "unknown fields \\['colour'\\]"),
    ],
)
def test_user_set_errors_name_file_and_field(tmp_path, change, message):
    data = {**USER, **change}
    if "names" in change:
        data = {"names": change["names"], "sigmas": [0.1, 0.1, 0.1]}
    path = _write(tmp_path, data)
    with pytest.raises(KeypointSetError, match=message) as info:
        load_keypoint_set(path)
    assert str(path) in str(info.value)


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(KeypointSetError, match="keypoint set file not found"):
        load_keypoint_set(tmp_path / "nope.yaml")


def _cfg(*opts):
    from common.config import load_config

    return load_config(None, list(opts))


def test_config_chooses_the_set_and_checks_num_joints(tmp_path):
    from common.keypoint_config import config_keypoint_set

    assert config_keypoint_set(_cfg()).name == "motion24"  # empty: by MODEL.NUM_JOINTS
    assert config_keypoint_set(_cfg("MODEL.NUM_JOINTS", 21)).name == "hand21"
    coco = _cfg("DATASET.KEYPOINTS", "coco17", "MODEL.NUM_JOINTS", 17)
    assert config_keypoint_set(coco).names[0] == "nose"
    with pytest.raises(KeypointSetError, match="MODEL.NUM_JOINTS is 24 but keypoint set 'coco17'"):
        config_keypoint_set(_cfg("DATASET.KEYPOINTS", "coco17"))
    with pytest.raises(KeypointSetError, match="no built-in keypoint set has MODEL.NUM_JOINTS 5"):
        config_keypoint_set(_cfg("MODEL.NUM_JOINTS", 5))
    user = tmp_path / "star.yaml"
    user.write_text("names: [a, b, c, d, e]\nflip_pairs: [[b, c]]\nsigmas: " + str([0.05] * 5))
    kp_set = config_keypoint_set(_cfg("DATASET.KEYPOINTS", str(user), "MODEL.NUM_JOINTS", 5))
    assert kp_set.flip_pairs == ((1, 2),)
    # A relative path is also looked up under DATASET.ROOT.
    root_cfg = _cfg("DATASET.ROOT", str(tmp_path), "DATASET.KEYPOINTS", "star.yaml",
                    "MODEL.NUM_JOINTS", 5)
    assert config_keypoint_set(root_cfg).names == ("a", "b", "c", "d", "e")


def test_names_from_csv_columns():
    from common.keypoints import coordinate_columns, names_from_columns

    names = ("spine2(back)", "a_b", "c")
    assert names_from_columns(["image", *coordinate_columns(names)]) == names
    with pytest.raises(ValueError, match="'c_y'"):
        names_from_columns(["image", "a_x", "a_y", "c_y", "c_x"])
    with pytest.raises(ValueError, match="column pairs"):
        names_from_columns(["image", "a_x"])
