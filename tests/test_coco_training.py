"""The issue's criteria on COCO files: a set with several people in some images trains the tiny
keypoint config; tools/test.py writes a results file whose AP from tools/score.py is COCOeval's
and beats the mean pose in the true boxes; a user's 5-keypoint set trains and predicts."""

from __future__ import annotations

import contextlib
import io
import json

import numpy as np
import pytest

from common.coco import coco_category, load_coco_keypoints, read_coco_json, write_json
from common.coco_eval import oks_ap
from common.config import load_config
from common.keypoints import load_keypoint_set
from common.metrics import mean_pose_prediction
from common.run_dir import output_dir_for
from common.synthetic.motion_coco import TEST_JSON, TRAIN_JSON, generate_motion_coco
from tests.conftest import ROOT, load_tool

CFG = "experiments/keypoint/tiny_cpu_keypoint.yaml"
FIVE = ["nose", "left_wrist", "right_wrist", "left_ankle", "right_ankle"]


def _opts(root, out, *extra):
    return ["OUTPUT_DIR", str(out), "LOG_DIR", str(out / "tb"), "DATASET.ROOT", str(root),
            "DATASET.FORMAT", "coco", "DATASET.TRAIN_JSON", TRAIN_JSON, "DATASET.TEST_JSON",
            TEST_JSON, "DEBUG.NUM_SAMPLE_IMAGES", "1", *extra]  # fmt: skip


def _train_and_test(root, out, *extra) -> object:
    opts = _opts(root, out, *extra)
    load_tool("train").main(["--cfg", str(ROOT / CFG), "--test_option", "False", *opts])
    run = output_dir_for(load_config(ROOT / CFG, opts), CFG)
    load_tool("test").main(["--cfg", str(ROOT / CFG), "--output_path", str(run), *opts,
                            "TEST.USE_GT_BBOX", "True"])  # fmt: skip
    return run


def _score_ap(capsys, results, truth, *extra) -> float:
    capsys.readouterr()
    assert load_tool("score").main(["--pred", str(results), "--truth", str(truth), *extra]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.startswith("ap: ")
    return float(last.split()[1])


def _cocoeval_ap(truth_path, results_path, sigmas) -> float:
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        truth = COCO(str(truth_path))
        evaluation = COCOeval(truth, truth.loadRes(str(results_path)), "keypoints")
        evaluation.params.kpt_oks_sigmas = np.array(sigmas)
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    return float(evaluation.stats[0])


@pytest.fixture(scope="module")
def coco_motion(tmp_path_factory):
    root = tmp_path_factory.mktemp("coco_motion") / "data"
    generate_motion_coco(root, 120, 12, width=320, height=180, seed=0)
    return root


@pytest.mark.slow
def test_coco_set_trains_and_beats_the_mean_pose(coco_motion, tmp_path, capsys):
    run = _train_and_test(coco_motion, tmp_path, "TRAIN.END_EPOCH", "15")
    results = run / "keypoints_test_results.json"
    truth_path = coco_motion / TEST_JSON
    truth = read_coco_json(truth_path)
    assert len(json.loads(results.read_text())) == len(truth["annotations"])
    sigmas = load_keypoint_set("motion24").sigmas
    ap = _score_ap(capsys, results, truth_path)
    assert ap == pytest.approx(_cocoeval_ap(truth_path, results, sigmas), abs=1e-6)

    _, train = load_coco_keypoints(coco_motion / TRAIN_JSON)
    boxes = np.array([a["bbox"] for a in truth["annotations"]])
    mean_pose = mean_pose_prediction(np.array([r.keypoints for r in train]), boxes)
    baseline = [{"image_id": a["image_id"], "category_id": 1, "score": 1.0,
                 "keypoints": np.concatenate([p, np.ones((24, 1))], 1).ravel().tolist()}
                for a, p in zip(truth["annotations"], mean_pose, strict=True)]
    baseline_ap = oks_ap(truth, baseline, sigmas)["AP"]
    print(f"OKS AP: model {ap:.4f}, mean pose in the true boxes {baseline_ap:.4f}")
    assert ap > baseline_ap


@pytest.mark.slow
def test_user_five_keypoint_set_trains_and_predicts(coco_motion, tmp_path, capsys):
    yaml_path = tmp_path / "five.yaml"
    yaml_path.write_text(
        f"names: {json.dumps(FIVE)}\n"
        "flip_pairs: [[left_wrist, right_wrist], [left_ankle, right_ankle]]\n"
        "skeleton: [[nose, left_wrist], [nose, right_wrist]]\n"
        "upper_body: [nose, left_wrist, right_wrist]\n"
        "sigmas: [0.026, 0.062, 0.062, 0.089, 0.089]\n", encoding="utf-8")
    five = load_keypoint_set(yaml_path)
    order = [load_keypoint_set("motion24").names.index(n) for n in FIVE]
    root = tmp_path / "five"
    for name in (TRAIN_JSON, TEST_JSON):
        data = read_coco_json(coco_motion / name)
        for annotation in data["annotations"]:
            triples = np.asarray(annotation["keypoints"]).reshape(-1, 3)[order]
            annotation["keypoints"] = triples.ravel().tolist()
            annotation["num_keypoints"] = int((triples[:, 2] > 0).sum())
        data["categories"] = [coco_category(five)]
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        write_json(root / name, data)
    (root / "images").symlink_to(coco_motion / "images")
    run = _train_and_test(root, tmp_path / "runs", "TRAIN.END_EPOCH", "1", "MODEL.NUM_JOINTS", "5",
                          "DATASET.KEYPOINTS", str(yaml_path))
    results = json.loads((run / "keypoints_test_results.json").read_text())
    assert results and all(len(r["keypoints"]) == 15 for r in results)
    ap = _score_ap(capsys, run / "keypoints_test_results.json", root / TEST_JSON,
                   "--keypoints", str(yaml_path))
    assert ap == pytest.approx(
        _cocoeval_ap(root / TEST_JSON, run / "keypoints_test_results.json", five.sigmas), abs=1e-6)
