"""OKS AP through pycocotools with the set's own sigmas, PCK and end-point error, and the
score tool on COCO files."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from common.coco import coco_category, keypoint_annotation, keypoint_results, write_json
from common.coco_eval import match_people, oks, oks_ap, pck_and_epe
from common.keypoints import parse_keypoint_set

ROOT = Path(__file__).resolve().parents[1]
FIVE = parse_keypoint_set(
    {"names": ["a", "b", "c", "d", "e"], "sigmas": [0.03, 0.05, 0.07, 0.09, 0.11]}, "five", "five"
)


def _truth(rng: np.random.Generator, images: int = 6) -> tuple[dict, np.ndarray]:
    annotations, poses = [], []
    for image_id in range(1, images + 1):
        for person in range(1 + image_id % 2):  # one or two people per image
            low = rng.uniform(10, 150, size=2)
            pose = low + rng.uniform(0, 80, size=(5, 2))
            box = [*pose.min(0), *(pose.max(0) - pose.min(0))]
            vis = np.array([2, 2, 1, 2, 0 if person else 2])
            annotations.append(keypoint_annotation(len(annotations) + 1, image_id, pose, box, vis))
            poses.append(pose)
    images_list = [{"id": i, "file_name": f"{i}.png", "width": 320, "height": 240}
                   for i in range(1, images + 1)]
    data = {"images": images_list, "annotations": annotations, "categories": [coco_category(FIVE)]}
    return data, np.array(poses)


def _noisy_results(data: dict, poses: np.ndarray, noise: float, seed: int = 1) -> list[dict]:
    rng = np.random.default_rng(seed)
    image_ids = [a["image_id"] for a in data["annotations"]]
    pred = poses + rng.normal(0, noise, poses.shape)
    return keypoint_results(image_ids, pred, rng.uniform(0.5, 1, poses.shape[:2]))


def test_oks_is_cocoevals():
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    data, poses = _truth(np.random.default_rng(0))
    results = _noisy_results(data, poses, 4.0)
    truth = COCO()
    truth.dataset = data
    truth.createIndex()
    evaluation = COCOeval(truth, truth.loadRes(results), "keypoints")
    evaluation.params.kpt_oks_sigmas = np.array(FIVE.sigmas)
    evaluation.evaluate()
    annotation = data["annotations"][0]
    triples = np.array(annotation["keypoints"]).reshape(-1, 3)
    mine = oks(poses[0] + 0, triples[:, :2], triples[:, 2], annotation["area"], FIVE.sigmas)
    assert mine == pytest.approx(1.0)
    ious = evaluation.ious[(1, 1)]  # rows: detections by score, columns: people of image 1
    pred0 = np.array(results[0]["keypoints"]).reshape(-1, 3)[:, :2]
    assert oks(pred0, triples[:, :2], triples[:, 2], annotation["area"], FIVE.sigmas) in [
        pytest.approx(value) for value in ious[:, 0]
    ]


def test_ap_perfect_noisy_and_uses_the_sets_sigmas():
    data, poses = _truth(np.random.default_rng(0))
    assert oks_ap(data, _noisy_results(data, poses, 0.0), FIVE.sigmas)["AP"] == pytest.approx(1.0)
    noisy = _noisy_results(data, poses, 3.0)
    tight = oks_ap(data, noisy, FIVE.sigmas)
    loose = oks_ap(data, noisy, [0.5] * 5)
    assert 0.0 < tight["AP"] < loose["AP"]
    assert set(tight) >= {"AP", "AP50", "AP75", "APm", "APl", "AR"}
    assert oks_ap(data, [], FIVE.sigmas)["AP"] == 0.0
    with pytest.raises(ValueError, match="17 sigmas for a set of 5"):
        oks_ap(data, noisy, [0.1] * 17)


def test_pck_and_epe_by_hand():
    truth = np.zeros((2, 2, 2))
    pred = np.array([[[3.0, 4.0], [0.0, 1.0]], [[np.nan, np.nan], [0.0, 20.0]]])
    scores = pck_and_epe(pred, truth, np.array([100.0, 100.0]),
                         visible=np.array([[True, True], [True, False]]))
    # distances: 5, 1 | missing, (not labelled)
    assert scores["pck@0.05"] == pytest.approx(2 / 3)
    assert scores["per_keypoint_pck@0.05"] == pytest.approx([0.5, 1.0])
    assert scores["epe"] == pytest.approx(3.0)
    assert scores["per_keypoint_epe"] == pytest.approx([5.0, 1.0])
    assert pck_and_epe(pred, truth, np.array([10.0, 10.0]))["pck@0.1"] == pytest.approx(1 / 4)


def test_matching_pairs_people_in_one_image():
    data, poses = _truth(np.random.default_rng(0))
    results = _noisy_results(data, poses, 1.0)
    results.reverse()  # order of the results must not matter
    pred, true, labelled, _ = match_people(data, results, FIVE.sigmas)
    assert np.abs(pred - poses).max() < 6
    assert not labelled[1, 4] and labelled[0, 4]


def _score(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "tools/score.py"), *args],
                          capture_output=True, text=True, cwd=ROOT)


def test_score_tool_prints_cocoevals_ap_last(tmp_path):
    data, poses = _truth(np.random.default_rng(0))
    results = _noisy_results(data, poses, 3.0)
    write_json(tmp_path / "truth.json", data)
    write_json(tmp_path / "results.json", results)
    five = tmp_path / "five.yaml"
    five.write_text("names: [a, b, c, d, e]\nsigmas: [0.03, 0.05, 0.07, 0.09, 0.11]\n")
    done = _score("--pred", str(tmp_path / "results.json"), "--truth", str(tmp_path / "truth.json"),
                  "--keypoints", str(five))
    assert done.returncode == 0, done.stderr
    last = done.stdout.strip().splitlines()[-1]
    assert last == f"ap: {oks_ap(data, results, FIVE.sigmas)['AP']:.6f}"
    assert "pck@0.1:" in done.stdout and "APm:" in done.stdout
    results[0]["image_id"] = 99
    write_json(tmp_path / "results.json", results)
    bad = _score("--pred", str(tmp_path / "results.json"), "--truth", str(tmp_path / "truth.json"),
                 "--keypoints", str(five))
    assert bad.returncode == 2
    assert bad.stderr.startswith("error: ") and "result 0, field 'image_id'" in bad.stderr


def test_csv_scores_get_pck_and_epe(tmp_path):
    from common.keypoints import MOTION_KEYPOINTS
    from common.motion_data import write_keypoint_csv

    rng = np.random.default_rng(3)
    truth = rng.uniform(100, 300, size=(4, 24, 2))
    pred = truth.copy()
    pred[0, 0] += [3.0, 4.0]  # 5 px off; the box is about 200 px: inside 0.05 of it
    pred[1, 1] += [60.0, 80.0]  # 100 px off: outside 0.1
    names = [f"{i}.jpg" for i in range(4)]
    write_keypoint_csv(tmp_path / "t.csv", names, truth, MOTION_KEYPOINTS)
    write_keypoint_csv(tmp_path / "p.csv", names, pred, MOTION_KEYPOINTS)
    done = _score("--pred", str(tmp_path / "p.csv"), "--truth", str(tmp_path / "t.csv"))
    assert done.returncode == 0, done.stderr
    assert f"pck@0.1: {95 / 96:.6f}" in done.stdout
    assert f"epe: {105 / 96:.6f}" in done.stdout
    assert done.stdout.strip().splitlines()[-1].startswith("rmse: ")
