"""COCO records for both stages: people with their boxes and v flags, one-person images for
stage one, test people from detections or ground truth, rescoring and OKS-NMS."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from common import stage_data
from common.coco import CocoFormatError, read_coco_json
from common.coco_data import coco_test_people
from common.config import load_config
from common.keypoints import KeypointSetError
from common.motion_data import DataFormatError
from common.stage_data import load_training_table
from common.synthetic.motion_coco import (
    DETECTIONS_JSON,
    TEST_JSON,
    TRAIN_JSON,
    generate_motion_coco,
)
from HRNet_keypoint.coco_results import oks_nms, rescore
from HRNet_keypoint.dataset import KeypointDataset
from tests.conftest import ROOT

LOG = logging.getLogger("test")


@pytest.fixture(scope="module")
def coco_set(tmp_path_factory):
    root = tmp_path_factory.mktemp("coco") / "data"
    generate_motion_coco(root, 12, 6, width=160, height=96, seed=1)
    return root


def _cfg(root, *extra):
    return load_config(ROOT / "experiments/keypoint/tiny_cpu_keypoint.yaml", [
        "DATASET.ROOT", str(root), "DATASET.FORMAT", "coco", "DATASET.TRAIN_JSON", TRAIN_JSON,
        "DATASET.TEST_JSON", TEST_JSON, *extra])  # fmt: skip


def test_stage_two_trains_on_every_person_stage_one_on_single_person_images(coco_set, caplog):
    data = read_coco_json(coco_set / TRAIN_JSON)
    table = load_training_table(_cfg(coco_set), LOG)
    assert len(table.names) == len(data["annotations"]) > len(data["images"])
    assert table.boxes.shape == (len(table.names), 4) and table.visibility.shape[1] == 24
    assert table.groups == table.names  # one image's people stay in one split
    single = {i["id"] for i in data["images"]} - {
        a["image_id"] for a in data["annotations"] if sum(
            b["image_id"] == a["image_id"] for b in data["annotations"]) > 1}
    with caplog.at_level(logging.INFO):
        boxes = load_training_table(_cfg(coco_set, "TASK", "bbox"), LOG)
    assert len(boxes.names) == len(single) and "several people" in caplog.text
    assert stage_data.test_image_names(_cfg(coco_set)) == [
        i["file_name"] for i in read_coco_json(coco_set / TEST_JSON)["images"]]


def test_unlabelled_keypoints_get_target_weight_zero(coco_set):
    cfg = _cfg(coco_set)
    table = load_training_table(cfg, LOG)
    visibility = table.visibility.copy()
    visibility[0, [3, 7]] = 0
    dataset = KeypointDataset(cfg, table.paths, table.keypoints, False, (), (), (),
                              boxes=table.boxes, visibility=visibility)
    _, _, weight, _ = dataset[0]
    assert weight[3, 0] == 0 and weight[7, 0] == 0 and weight[0, 0] == 1


def test_keypoint_set_from_the_file_and_mismatch(coco_set):
    from common.keypoint_config import config_keypoint_set

    assert config_keypoint_set(_cfg(coco_set)).name == "motion24"
    with pytest.raises(KeypointSetError, match="NUM_JOINTS is 17 but keypoint set 'motion24'"):
        config_keypoint_set(_cfg(coco_set, "MODEL.NUM_JOINTS", 17))
    with pytest.raises(CocoFormatError, match="keypoint set 'coco17'.*DATASET.KEYPOINTS"):
        config_keypoint_set(_cfg(coco_set, "DATASET.KEYPOINTS", "coco17", "MODEL.NUM_JOINTS", 17))
    with pytest.raises(CocoFormatError, match="DATASET.TRAIN_JSON is not set"):
        load_training_table(_cfg(coco_set, "DATASET.TRAIN_JSON", ""), LOG)


def test_test_people_from_detections_and_ground_truth(coco_set):
    truth = read_coco_json(coco_set / TEST_JSON)
    gt = coco_test_people(_cfg(coco_set, "TEST.USE_GT_BBOX", "True"), LOG)
    assert len(gt.boxes) == len(truth["annotations"]) and (gt.scores == 1).all()
    detections = coco_test_people(
        _cfg(coco_set, "TEST.COCO_BBOX_FILE", DETECTIONS_JSON, "TEST.IMAGE_THRE", "0.3"), LOG)
    # The stand-in detector scores true boxes >= 0.6 and one false box per image <= 0.2.
    assert len(detections.boxes) == len(truth["annotations"])
    everything = coco_test_people(
        _cfg(coco_set, "TEST.COCO_BBOX_FILE", DETECTIONS_JSON, "TEST.IMAGE_THRE", "0.0"), LOG)
    assert len(everything.boxes) == len(truth["annotations"]) + len(truth["images"])
    with pytest.raises(DataFormatError, match="detection results not found"):
        coco_test_people(_cfg(coco_set, "TEST.COCO_BBOX_FILE", "none.json"), LOG)


def test_rescore_and_oks_nms():
    scores = rescore(np.array([0.5, 1.0]), np.array([[0.9, 0.1, 0.7], [0.05, 0.05, 0.05]]), 0.2)
    np.testing.assert_allclose(scores, [0.5 * 0.8, 0.0])
    pose = np.array([[10.0, 10.0], [20.0, 30.0], [40.0, 50.0]])
    people = np.stack([pose, pose + 0.5, pose + 200.0])
    keep = oks_nms(people, np.array([0.5, 0.9, 0.7]), np.full(3, 900.0), 0.9, (0.05,) * 3)
    assert keep == [1, 2]  # the duplicate of the best is dropped, the far person kept


def test_joint_weights_of_the_set_scale_target_weights(coco_set, tmp_path):
    from common.keypoints import SET_DIR

    weighted = tmp_path / "weighted.yaml"
    weights = [1.0 + 0.1 * i for i in range(24)]
    weighted.write_text((SET_DIR / "motion24.yaml").read_text() + f"joint_weights: {weights}\n")
    for flag, expected in (("True", weights), ("False", [1.0] * 24)):
        cfg = _cfg(coco_set, "DATASET.KEYPOINTS", str(weighted),
                   "LOSS.USE_DIFFERENT_JOINTS_WEIGHT", flag)
        table = load_training_table(cfg, LOG)
        visible = np.full_like(table.visibility, 2)
        dataset = KeypointDataset(cfg, table.paths, table.keypoints, False, (), (), (),
                                  boxes=table.boxes, visibility=visible)
        weight = dataset[0][2][:, 0].numpy()
        inside = weight > 0  # a joint outside the crop has weight 0 either way
        np.testing.assert_allclose(weight[inside], np.array(expected)[inside], rtol=1e-6)
