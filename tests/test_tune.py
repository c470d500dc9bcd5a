"""Hyper-parameter search on Ray Tune (stages/tuning.py, tools/tune.py)."""

from __future__ import annotations

import csv

import pytest
import yaml

from common.cli import run_tool
from common.config import load_config
from stages.tuning import best_yaml_text, read_space, trial_opts
from tests.conftest import ROOT, load_tool

CFG = ROOT / "experiments/keypoint/tiny_cpu_keypoint.yaml"
SMALL = ["TRAIN.END_EPOCH", "1", "MODEL.IMAGE_SIZE", "[64, 64]", "MODEL.HEATMAP_SIZE", "[16, 16]",
         "MODEL.SIGMA", "1"]  # fmt: skip


def test_space_files_are_checked(tmp_path) -> None:
    good = tmp_path / "space.yaml"
    good.write_text("TRAIN.LR: {loguniform: [0.0001, 0.01]}\nTRAIN.OPTIMIZER: {choice: [adam, sgd]}"
                    "\nDATASET.ROT_FACTOR: {uniform: [10, 30]}\n")  # fmt: skip
    assert read_space(good) == {"TRAIN.LR": ("loguniform", [0.0001, 0.01]),
                                "TRAIN.OPTIMIZER": ("choice", ["adam", "sgd"]),
                                "DATASET.ROT_FACTOR": ("uniform", [10, 30])}  # fmt: skip
    bad = {"TRAIN.NO_SUCH_KEY: {choice: [1]}": "not a config key",
           "TRAIN.LR: {normal: [0, 1]}": "must be one of",
           "TRAIN.LR: {loguniform: [0, 1]}": "low > 0",
           "TRAIN.LR: {uniform: [2, 1]}": "low < high",
           "TRAIN.LR: {choice: []}": "non-empty"}  # fmt: skip
    for text, message in bad.items():
        good.write_text(text)
        with pytest.raises((KeyError, ValueError), match=message):
            read_space(good)


def test_best_yaml_is_the_base_experiment_plus_the_winners(tmp_path) -> None:
    winners = {"TRAIN.LR": 0.0031, "TRAIN.OPTIMIZER": "sgd", "MODEL.IMAGE_SIZE": [64, 64]}
    assert trial_opts(winners) == ["TRAIN.LR", "0.0031", "TRAIN.OPTIMIZER", "'sgd'",
                                   "MODEL.IMAGE_SIZE", "[64, 64]"]  # fmt: skip
    path = tmp_path / "best.yaml"
    path.write_text(best_yaml_text(CFG, ["DATASET.ROOT", "/data/x"], winners))
    document = yaml.safe_load(path.read_text())
    base = yaml.safe_load(CFG.read_text())
    assert document["TRAIN"]["LR"] == 0.0031 and document["TRAIN"]["OPTIMIZER"] == "sgd"
    assert document["DATASET"]["ROOT"] == "/data/x"
    assert document["MODEL"]["EXTRA"] == base["MODEL"]["EXTRA"]
    cfg = load_config(path)
    assert cfg.TRAIN.LR == 0.0031 and list(cfg.MODEL.IMAGE_SIZE) == [64, 64]
    assert cfg.TRAIN.END_EPOCH == base["TRAIN"]["END_EPOCH"]


def test_bad_space_ends_in_one_line_and_status_two(tmp_path, capsys) -> None:
    space = tmp_path / "space.yaml"
    space.write_text("TRAIN.LR: {uniform: [1]}")
    argv = ["--cfg", str(CFG), "--space", str(space), "--samples", "2", "--out", str(tmp_path)]
    with pytest.raises(SystemExit) as stop:
        run_tool(lambda: load_tool("tune").main(argv))
    assert stop.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ")


@pytest.mark.slow
def test_two_trials_on_this_cpu_then_train_from_best_yaml(tiny_motion, tmp_path, capsys) -> None:
    space = tmp_path / "space.yaml"
    space.write_text("TRAIN.LR: {loguniform: [0.0005, 0.005]}\n"
                     "DATASET.ROT_FACTOR: {choice: [10, 20]}\n")  # fmt: skip
    out = tmp_path / "tune"
    summary = load_tool("tune").main(["--cfg", str(CFG), "--space", str(space), "--samples", "2",
                                      "--out", str(out), "DATASET.ROOT", str(tiny_motion),
                                      *SMALL])  # fmt: skip
    assert f"best metric: {summary['best_metric']:.4f}" in capsys.readouterr().out
    with open(out / "trials.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 2 and all(row["status"] == "done" and row["epochs"] == "1" for row in rows)
    assert min(float(row["best_metric"]) for row in rows) == pytest.approx(summary["best_metric"])
    best = load_config(out / "best.yaml")
    assert best.TRAIN.LR == pytest.approx(summary["best"]["TRAIN.LR"])
    assert best.DATASET.ROT_FACTOR == summary["best"]["DATASET.ROT_FACTOR"]
    result = load_tool("train").main(["--cfg", str(out / "best.yaml"), "OUTPUT_DIR",
                                      str(tmp_path / "again"), "LOG_DIR", str(tmp_path / "tb")])
    assert result["best_epoch"] == 0
