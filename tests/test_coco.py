"""COCO person-keypoint files: validation names the entry and field, records follow the
official training rules, and what is written reads back."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest

from common.coco import (
    CocoFormatError,
    coco_category,
    keypoint_annotation,
    keypoint_results,
    load_coco_keypoints,
    person_records,
    validate_coco,
    write_json,
)
from common.keypoints import load_keypoint_set, parse_keypoint_set

THREE = parse_keypoint_set(
    {"names": ["a", "b", "c"], "skeleton": [["a", "b"]], "sigmas": [0.05, 0.05, 0.05]},
    "three", "three",
)


def _dataset() -> dict:
    points = np.array([[10.0, 20.0], [30.0, 40.0], [50.0, 60.0]])
    return {
        "images": [
            {"id": 1, "file_name": "a b.jpg", "width": 100, "height": 80},
            {"id": 2, "file_name": "two.png", "width": 64, "height": 64},
        ],
        "annotations": [
            keypoint_annotation(1, 1, points, [5, 15, 50, 50]),
            keypoint_annotation(2, 1, points + 5, [90, 70, 30, 30], visibility=np.array([2, 1, 0])),
            keypoint_annotation(3, 2, np.zeros((3, 2)), [0, 0, 10, 10], visibility=np.zeros(3)),
        ],
        "categories": [coco_category(THREE)],
    }


def test_written_file_reads_back_with_its_set(tmp_path):
    path = tmp_path / "person_keypoints.json"
    write_json(path, _dataset())
    kp_set, records = load_coco_keypoints(path, expected=THREE)
    assert kp_set is THREE
    assert [r.annotation_id for r in records] == [1, 2]  # num_keypoints 0: not trained on
    assert records[0].file_name == "a b.jpg"
    np.testing.assert_array_equal(records[0].keypoints, [[10, 20], [30, 40], [50, 60]])
    np.testing.assert_array_equal(records[1].visibility, [2, 1, 0])
    # Official cleaning: one pixel narrower, clipped to the last pixel of the 100x80 image.
    np.testing.assert_allclose(records[0].box, [5, 15, 49, 49])
    np.testing.assert_allclose(records[1].box, [90, 70, 9, 9])
    assert len(person_records(_dataset(), training=False)) == 3


def test_set_from_category_without_expected(tmp_path):
    path = tmp_path / "k.json"
    write_json(path, _dataset())
    kp_set, _ = load_coco_keypoints(path)
    assert kp_set.names == ("a", "b", "c")
    assert kp_set.skeleton == ((0, 1),)
    assert kp_set.sigmas == (0.025, 0.025, 0.025)
    coco17 = load_keypoint_set("coco17")
    data = _dataset()
    data["categories"] = [coco_category(coco17)]
    data["annotations"] = [keypoint_annotation(1, 1, np.ones((17, 2)), [0, 0, 5, 5])]
    write_json(path, data)
    assert load_coco_keypoints(path)[0] is coco17  # a built-in set keeps its sigmas and pairs


def test_mismatched_set_is_a_clear_error(tmp_path):
    path = tmp_path / "k.json"
    write_json(path, _dataset())
    with pytest.raises(CocoFormatError, match="keypoint set 'motion24'.*DATASET.KEYPOINTS"):
        load_coco_keypoints(path, expected=load_keypoint_set("motion24"))


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d["images"][1].update(id=1), "image id 1, field 'id'"),
        (lambda d: d["images"][0].update(width=0), "field 'width'"),
        (lambda d: d["annotations"][0].update(image_id=9), "annotation id 1, field 'image_id'"),
        (lambda d: d["annotations"][0]["keypoints"].pop(), "expected 9 numbers"),
        (lambda d: d["annotations"][0]["keypoints"].__setitem__(2, 3), "must be 0, 1 or 2"),
        (lambda d: d["annotations"][0].update(num_keypoints=1), "field 'num_keypoints'"),
        (lambda d: d["annotations"][0].update(bbox=[1, 2, 3]), "field 'bbox'"),
        (lambda d: d["annotations"][0].update(category_id=5), "no category has id 5"),
        (lambda d: d.pop("categories"), "field 'categories'"),
    ],
)
def test_validation_names_entry_and_field(edit, message):
    data = copy.deepcopy(_dataset())
    edit(data)
    with pytest.raises(CocoFormatError, match=message):
        validate_coco(data, "file.json")


def test_broken_or_missing_file(tmp_path):
    with pytest.raises(CocoFormatError, match="not found"):
        load_coco_keypoints(tmp_path / "none.json")
    (tmp_path / "bad.json").write_text("{", encoding="utf-8")
    with pytest.raises(CocoFormatError, match="cannot read as JSON"):
        load_coco_keypoints(tmp_path / "bad.json")


def test_results_entries(tmp_path):
    keypoints = np.arange(12, dtype=np.float64).reshape(2, 3, 2)
    scores = np.array([[0.5, 0.7, 0.9], [0.1, 0.2, 0.3]])
    results = keypoint_results([4, 7], keypoints, scores)
    assert results[0]["image_id"] == 4 and results[0]["category_id"] == 1
    assert results[0]["keypoints"] == [0, 1, 0.5, 2, 3, 0.7, 4, 5, 0.9]
    assert results[1]["score"] == pytest.approx(0.2)
    path = tmp_path / "r.json"
    write_json(path, results)
    assert json.loads(path.read_text()) == results
