"""Issue 23, data side: careless or hostile COCO files, keypoint sets, results files and
configs, run through the tools as a user runs them. Each ends in one ``error:`` line naming
the file, the entry and the field with exit status 2, or in the right answer."""

from __future__ import annotations

import copy
import json
import logging
import shutil
import subprocess
import sys

import numpy as np
import pytest

from common.coco import coco_category, keypoint_results, read_coco_json, write_json
from common.coco_eval import oks_ap
from common.config import load_config
from common.keypoint_config import config_keypoint_set
from common.keypoints import load_keypoint_set
from common.synthetic.motion_coco import TEST_JSON, TRAIN_JSON, generate_motion_coco
from tests.conftest import ROOT

CFG = "experiments/keypoint/tiny_cpu_keypoint.yaml"


def _tool(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=600)  # fmt: skip


def _one_line_error(done: subprocess.CompletedProcess, *parts: str) -> str:
    assert done.returncode == 2, (done.returncode, done.stderr[-2000:])
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr[-2000:]
    for part in parts:
        assert part in lines[0], (part, lines[0])
    return lines[0]


@pytest.fixture(scope="module")
def clean_set(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile_coco") / "data"
    generate_motion_coco(root, 24, 6, width=160, height=96, seed=0)
    return root


@pytest.fixture
def data_set(clean_set, tmp_path):
    """A private copy of the clean set, to spoil."""
    root = tmp_path / "data"
    shutil.copytree(clean_set, root)
    return root


def _opts(root, tmp_path, *extra: str) -> list[str]:
    return ["OUTPUT_DIR", str(tmp_path / "out"), "LOG_DIR", str(tmp_path / "tb"),
            "DATASET.ROOT", str(root), "DATASET.FORMAT", "coco", "DATASET.TRAIN_JSON",
            TRAIN_JSON, "DATASET.TEST_JSON", TEST_JSON, "TRAIN.END_EPOCH", "1", *extra]


def _train(root, tmp_path, *extra: str, folds: int = 0) -> subprocess.CompletedProcess:
    fold_args = ["--folds", str(folds)] if folds else []
    return _tool("tools/train.py", "--cfg", CFG, "--test_option", "False", *fold_args,
                 *_opts(root, tmp_path, *extra))  # fmt: skip


def _spoil(root, edit, name=TRAIN_JSON) -> None:
    data = read_coco_json(root / name)
    edit(data)
    (root / name).write_text(json.dumps(data), encoding="utf-8")


def _set(path: list, value):
    def edit(data):
        node = data
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value
    return edit


def _outside_image(root):
    outside = root.parent / "outside"
    outside.mkdir(exist_ok=True)
    shutil.copy(root / "images/train_imgs/train_00000.jpg", outside / "x.jpg")
    return str(outside / "x.jpg")


TRAIN_CASES = {
    "dotdot file_name": (lambda r: _set(["images", 0, "file_name"], "../../../outside/x.jpg"),
                         ["image id 1, field 'file_name'", "leaves the image folder"]),
    "absolute file_name": (lambda r: _set(["images", 0, "file_name"], _outside_image(r)),
                           ["image id 1, field 'file_name'", "absolute path"]),
    "keypoint at x=-5000": (lambda r: _set(["annotations", 0, "keypoints", 0], -5000),
                            ["annotation id 1, field 'keypoints'", "far outside"]),
    "declared width wrong": (lambda r: _set(["images", 0, "width"], 1600),
                             ["image id 1", "'width'/'height'", "declared 1600x96",
                              "160x96"]),
    "duplicate annotation id": (lambda r: _set(["annotations", 1, "id"], 1),
                                ["annotation id 1, field 'id'", "unique"]),
    "negative area": (lambda r: _set(["annotations", 0, "area"], -5.0),
                      ["annotation id 1, field 'area'", "number > 0"]),
    "area big": (lambda r: _set(["annotations", 0, "area"], "big"),
                 ["annotation id 1, field 'area'", "'big'"]),
    "category_id string": (lambda r: _set(["annotations", 0, "category_id"], "1"),
                           ["annotation id 1, field 'category_id'", "'1'"]),
    "image_id true": (lambda r: _set(["annotations", 0, "image_id"], True),
                      ["annotation id 1, field 'image_id'"]),
    "duplicate file_name": (lambda r: _set(["images", 1, "file_name"], "train_00000.jpg"),
                            ["image id 2, field 'file_name'", "also image id 1"]),
    "negative box": (lambda r: _set(["annotations", 0, "bbox", 2], -40.0),
                     ["annotation id 1, field 'bbox'", "width and height > 0"]),
    "box off the image": (lambda r: _set(["annotations", 0, "bbox", 0], 5000.0),
                          ["annotation id 1, field 'bbox'", "lies outside"]),
    "NaN keypoint": (lambda r: _set(["annotations", 0, "keypoints", 0], float("nan")),
                     ["annotation id 1, field 'keypoints'", "finite number"]),
    "wrong keypoint count": (lambda r: lambda d: d["annotations"][0]["keypoints"].pop(),
                             ["annotation id 1, field 'keypoints'", "expected 72 numbers"]),
}


@pytest.mark.parametrize("case", TRAIN_CASES, ids=list(TRAIN_CASES))
def test_training_refuses_a_spoiled_coco_file(data_set, tmp_path, case):
    make_edit, parts = TRAIN_CASES[case]
    _spoil(data_set, make_edit(data_set))
    _one_line_error(_train(data_set, tmp_path), str(data_set / TRAIN_JSON), *parts)


def test_deeply_nested_json_is_one_line(data_set, tmp_path):
    (data_set / TRAIN_JSON).write_text("[" * 200000 + "]" * 200000, encoding="utf-8")
    _one_line_error(_train(data_set, tmp_path), "nested too deeply")


def test_truncated_json_is_one_line(data_set, tmp_path):
    text = (data_set / TRAIN_JSON).read_text(encoding="utf-8")
    (data_set / TRAIN_JSON).write_text(text[: len(text) // 2], encoding="utf-8")
    _one_line_error(_train(data_set, tmp_path), "cannot read as JSON")


def test_missing_image_is_named(data_set, tmp_path):
    (data_set / "images/train_imgs/train_00003.jpg").unlink()
    _one_line_error(_train(data_set, tmp_path), "training images are missing", "train_00003.jpg")


def test_upper_case_format_is_the_coco_path(data_set, tmp_path):
    # 'COCO' reads the COCO file (which is spoiled here, so it stops fast), not train_df.csv.
    _spoil(data_set, _set(["images", 0, "file_name"], "../x.jpg"))
    done = _train(data_set, tmp_path, "DATASET.FORMAT", "COCO")
    line = _one_line_error(done, "field 'file_name'")
    assert "train_df.csv" not in line
    _one_line_error(_train(data_set, tmp_path, "DATASET.FORMAT", "xml"),
                    "DATASET.FORMAT", "'csv', 'coco'")
    _one_line_error(_train(data_set, tmp_path, "DATASET.TEST_SET", "train"),
                    "DATASET.TEST_SET is 'train'", "'test', 'val'")


def test_custom_category_without_keypoint_set_refuses_flips(data_set, tmp_path, caplog):
    def rename(data):
        data["categories"][0]["keypoints"] = [f"k{i}" for i in range(24)]
    _spoil(data_set, rename)
    _spoil(data_set, rename, TEST_JSON)
    _one_line_error(_train(data_set, tmp_path), "DATASET.KEYPOINTS is empty",
                    "flip pairs are unknown", "DATASET.FLIP False")
    # flips off: it trains, and says once which sigmas its OKS uses
    cfg = load_config(CFG, _opts(data_set, tmp_path, "DATASET.FLIP", "False",
                                 "TEST.FLIP_TEST", "False"))  # fmt: skip
    with caplog.at_level(logging.WARNING, logger="common.keypoint_config"):
        kp_set = config_keypoint_set(cfg)
        config_keypoint_set(cfg)
    assert kp_set.flip_pairs == () and set(kp_set.sigmas) == {0.025}
    assert caplog.text.count("a sigma of 0.025 for each of its 24 keypoints") == 1


def test_folds_say_what_they_group_by(data_set, tmp_path):
    # Too many folds stops before training and names the groups: images here ...
    _one_line_error(_train(data_set, tmp_path, folds=50), "no more folds than groups",
                    "24 groups by image")
    # ... and the file's subject field when it has one (two images per subject).
    _spoil(data_set, lambda d: [image.update(subject=f"s{image['id'] // 2}")
                                for image in d["images"]])
    _one_line_error(_train(data_set, tmp_path, folds=50), "13 groups by the file's subject field")
    _spoil(data_set, lambda d: d["images"][0].pop("subject"))
    _one_line_error(_train(data_set, tmp_path, folds=2), "image id 1, field 'subject'",
                    "missing")


@pytest.mark.slow
def test_coco_folds_train_and_report_oks_ap(data_set, tmp_path):
    small = ("MODEL.IMAGE_SIZE", "[64, 64]", "MODEL.HEATMAP_SIZE", "[16, 16]", "MODEL.SIGMA", "1")
    done = _train(data_set, tmp_path, *small, folds=2)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.strip().splitlines()
    assert lines[-1].startswith("oof ap: ") and lines[-2].startswith("oof rmse: ")
    log = done.stdout + done.stderr
    assert "2 folds grouped by image" in log and "grouped by subject" not in log
    assert "val 1-AP (OKS)" in log
    run = next((tmp_path / "out").rglob("oof_summary.json")).parent
    summary = json.loads((run / "oof_summary.json").read_text())
    assert summary["grouped_by"] == "image" and len(summary["fold_ap"]) == 2
    assert summary["oof_ap"] == pytest.approx(float(lines[-1].split()[-1]), abs=1e-4)
    results = json.loads((run / "oof_keypoints.json").read_text())
    truth = read_coco_json(data_set / TRAIN_JSON)
    people = [a for a in truth["annotations"] if a["num_keypoints"]]
    assert sorted(r["image_id"] for r in results) == sorted(a["image_id"] for a in people)


def _run_folder(root, tmp_path, udp: str):
    """A run folder as training leaves it: its config.yaml (the weights are not needed, the
    check comes first)."""
    run = tmp_path / "run"
    run.mkdir()
    cfg = load_config(ROOT / CFG, _opts(root, tmp_path, "MODEL.UDP", udp))
    (run / "config.yaml").write_text(cfg.dump(), encoding="utf-8")
    return run


def test_udp_at_test_time_must_match_training(data_set, tmp_path):
    run = _run_folder(data_set, tmp_path, "False")
    done = _tool("tools/test.py", "--cfg", CFG, "--output_path", str(run),
                 *_opts(data_set, tmp_path, "MODEL.UDP", "True", "DATASET.TEST_SET", "val",
                        "DATASET.VAL_JSON", TEST_JSON))  # fmt: skip
    _one_line_error(done, "MODEL.UDP is True at test time", "trained with MODEL.UDP False",
                    str(run / "config.yaml"))
    assert "has no effect here" not in done.stdout + done.stderr  # the COCO path reads both


def test_test_set_and_gt_boxes_warn_only_off_the_coco_path(caplog):
    keys = ["DATASET.TEST_SET", "val", "TEST.USE_GT_BBOX", "False"]
    with caplog.at_level("WARNING"):
        load_config(ROOT / CFG, keys)
    assert {r.getMessage().split()[2] for r in caplog.records} >= {"DATASET.TEST_SET",
                                                                   "TEST.USE_GT_BBOX"}
    caplog.clear()
    with caplog.at_level("WARNING"):
        assert load_config(ROOT / CFG, ["DATASET.FORMAT", "coco", *keys]).DATASET.TEST_SET == "val"
    assert not [r for r in caplog.records if "has no effect" in r.getMessage()]


# ---- scoring --------------------------------------------------------------------------------


def _perfect_results(truth: dict) -> list[dict]:
    people = [a for a in truth["annotations"] if a["num_keypoints"]]
    keypoints = np.array([np.reshape(a["keypoints"], (-1, 3))[:, :2] for a in people])
    return keypoint_results([a["image_id"] for a in people], keypoints,
                            np.ones(keypoints.shape[:2]))


def _score(results, truth, *extra) -> subprocess.CompletedProcess:
    return _tool("tools/score.py", "--pred", str(results), "--truth", str(truth), *extra)


def test_score_names_the_builtin_sigmas_it_used(clean_set, tmp_path):
    truth = read_coco_json(clean_set / TEST_JSON)
    write_json(tmp_path / "r.json", _perfect_results(truth))
    done = _score(tmp_path / "r.json", clean_set / TEST_JSON)
    assert done.returncode == 0, done.stderr
    assert "OKS sigmas from the built-in set motion24" in done.stdout
    assert done.stdout.strip().splitlines()[-1] == "ap: 1.000000"


def test_score_never_guesses_sigmas(clean_set, tmp_path):
    truth = read_coco_json(clean_set / TEST_JSON)
    truth["categories"][0]["keypoints"] = [f"k{i}" for i in range(24)]
    write_json(tmp_path / "t.json", truth)
    results = _perfect_results(truth)
    for result in results:  # 3 px off: AP depends on the sigmas
        result["keypoints"] = [v + 3 if i % 3 < 2 else v for i, v in enumerate(result["keypoints"])]
    write_json(tmp_path / "r.json", results)
    _one_line_error(_score(tmp_path / "r.json", tmp_path / "t.json"), str(tmp_path / "t.json"),
                    "match no built-in keypoint set", "--keypoints")
    own = tmp_path / "own.yaml"
    sigmas = [0.05] * 24
    own.write_text(f"names: {json.dumps(truth['categories'][0]['keypoints'])}\n"
                   f"sigmas: {sigmas}\n", encoding="utf-8")  # fmt: skip
    done = _score(tmp_path / "r.json", tmp_path / "t.json", "--keypoints", str(own))
    assert done.returncode == 0, done.stderr
    expected = oks_ap(truth, json.loads((tmp_path / "r.json").read_text()), sigmas)["AP"]
    assert done.stdout.strip().splitlines()[-1] == f"ap: {expected:.6f}"
    assert f"OKS sigmas from --keypoints {own}" in done.stdout
    own.write_text(f"names: {json.dumps(truth['categories'][0]['keypoints'])}\n"
                   f"sigmas: [.inf{', 0.05' * 23}]\n", encoding="utf-8")  # fmt: skip
    _one_line_error(_score(tmp_path / "r.json", tmp_path / "t.json", "--keypoints", str(own)),
                    str(own), "field 'sigmas'", "finite number > 0")


SCORE_TRUTH_CASES = {
    "duplicate annotation id": (_set(["annotations", 1, "id"], 1), "field 'id'"),
    "area big": (_set(["annotations", 0, "area"], "big"), "field 'area'"),
    "negative area": (_set(["annotations", 0, "area"], -1), "field 'area'"),
    "category_id string": (_set(["annotations", 0, "category_id"], "1"), "field 'category_id'"),
    "empty truth": (_set(["annotations"], []), "no person with labelled keypoints"),
    "two categories": (lambda d: d["categories"].append({**d["categories"][0], "id": 2}),
                       "expected one keypoint category"),
    "NUL in file_name": (_set(["images", 0, "file_name"], "a\x00.jpg"), "control character"),
}


@pytest.mark.parametrize("case", SCORE_TRUTH_CASES, ids=list(SCORE_TRUTH_CASES))
def test_score_refuses_a_spoiled_truth(clean_set, tmp_path, case):
    truth = read_coco_json(clean_set / TEST_JSON)
    write_json(tmp_path / "r.json", _perfect_results(truth))
    edit, part = SCORE_TRUTH_CASES[case]
    spoiled = copy.deepcopy(truth)
    edit(spoiled)
    write_json(tmp_path / "t.json", spoiled)
    line = _one_line_error(_score(tmp_path / "r.json", tmp_path / "t.json"), part)
    assert "ap: -1" not in line


def test_score_names_a_folder_given_for_a_file(clean_set, tmp_path):
    write_json(tmp_path / "r.json", _perfect_results(read_coco_json(clean_set / TEST_JSON)))
    _one_line_error(_score(tmp_path / "r.json", clean_set), str(clean_set), "is a folder")
    _one_line_error(_score(clean_set, clean_set / TEST_JSON), str(clean_set), "is a folder")


RESULT_CASES = {
    "category_id string": (_set([0, "category_id"], "1"), "result 0, field 'category_id'"),
    "other category": (_set([0, "category_id"], 7), "result 0, field 'category_id'"),
    "NaN score": (_set([0, "score"], float("nan")), "result 0, field 'score'"),
    "huge keypoint": (_set([0, "keypoints", 0], 10**400), "result 0, field 'keypoints'"),
    "image_id string": (_set([0, "image_id"], "1"), "result 0, field 'image_id'"),
}


@pytest.mark.parametrize("case", RESULT_CASES, ids=list(RESULT_CASES))
def test_score_refuses_a_spoiled_results_file(clean_set, tmp_path, case):
    results = _perfect_results(read_coco_json(clean_set / TEST_JSON))
    edit, part = RESULT_CASES[case]
    edit(results)
    (tmp_path / "r.json").write_text(json.dumps(results), encoding="utf-8")
    _one_line_error(_score(tmp_path / "r.json", clean_set / TEST_JSON), part)


def test_score_reads_a_truth_with_a_byte_order_mark(clean_set, tmp_path):
    text = (clean_set / TEST_JSON).read_text(encoding="utf-8")
    (tmp_path / "t.json").write_text("\ufeff" + text, encoding="utf-8")
    write_json(tmp_path / "r.json", _perfect_results(read_coco_json(clean_set / TEST_JSON)))
    done = _score(tmp_path / "r.json", tmp_path / "t.json")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "ap: 1.000000"


# ---- conversion -----------------------------------------------------------------------------


def test_coco2csv_refuses_unlabelled_keypoints(tmp_path):
    five = load_keypoint_set("coco17")
    keypoints = [float(v) for _ in range(17) for v in (10.0, 12.0, 2)]
    keypoints[3:6] = [0, 0, 0]  # left_eye unlabelled
    data = {"images": [{"id": 1, "file_name": "a.jpg", "width": 64, "height": 64}],
            "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "keypoints": keypoints,
                             "num_keypoints": 16, "bbox": [5, 5, 20, 20], "area": 400.0}],
            "categories": [coco_category(five)]}
    write_json(tmp_path / "k.json", data)
    done = _tool("tools/convert.py", "coco2csv", "--json", str(tmp_path / "k.json"), "--out",
                 str(tmp_path / "k.csv"))  # fmt: skip
    _one_line_error(done, "annotation id 1", "unlabelled (v = 0)", "'left_eye'")
    assert not (tmp_path / "k.csv").exists()


@pytest.mark.parametrize("categories, images, named", [
    (0, 1, "holds 0 categories"), (2, 1, "holds 2 categories"), (1, 0, "'images' is empty"),
])  # fmt: skip
def test_coco2csv_needs_one_category_and_some_images(tmp_path, categories, images, named):
    category = coco_category(load_keypoint_set("coco17"))
    data = {"images": [{"id": 1, "file_name": "a.jpg", "width": 64, "height": 64}][:images],
            "annotations": [],
            "categories": [{**category, "id": 1 + i} for i in range(categories)]}
    write_json(tmp_path / "k.json", data)
    done = _tool("tools/convert.py", "coco2csv", "--json", str(tmp_path / "k.json"), "--out",
                 str(tmp_path / "k.csv"))  # fmt: skip
    _one_line_error(done, str(tmp_path / "k.json"), named)
    assert not (tmp_path / "k.csv").exists()


def test_convert_bad_inputs_are_one_line(tmp_path):
    (tmp_path / "bad.csv").write_bytes(b"image,nose_x\n\xff\xfe,1\n")
    done = _tool("tools/convert.py", "csv2coco", "--csv", str(tmp_path / "bad.csv"),
                 "--images", str(tmp_path), "--out", str(tmp_path / "o.json"))  # fmt: skip
    _one_line_error(done, str(tmp_path / "bad.csv"))
    (tmp_path / "k.json").write_text("[" * 100000, encoding="utf-8")
    done = _tool("tools/convert.py", "coco2csv", "--json", str(tmp_path / "k.json"), "--out",
                 str(tmp_path / "k.csv"))  # fmt: skip
    _one_line_error(done, "cannot read as JSON")


def test_udp_codec_at_test_time_must_match_training_too(data_set, tmp_path):
    run = _run_folder(data_set, tmp_path, "True")
    done = _tool("tools/test.py", "--cfg", CFG, "--output_path", str(run),
                 *_opts(data_set, tmp_path, "MODEL.CODEC", "dark"))  # fmt: skip
    _one_line_error(done, "MODEL.UDP is False at test time", "trained with MODEL.UDP True")
