"""Issue 23, hostile inputs to ``tools/ensemble.py`` and ``tools/tune.py``, each run as a user
would: one ``error:`` line (file, field, what was expected) and exit 2, or the right answer;
nothing written on a refusal. The tune cases all stop before Ray starts."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from common.config import load_config
from common.synthetic.motion import generate_motion_dataset
from stages import stage_for
from tests.test_cli_errors import KP_CFG, assert_user_error
from tests.test_cli_errors import run_tool as run_cli

pytestmark = pytest.mark.slow  # each case starts a tool in its own process (3-10 s)

COLUMNS = [f"k{i}_{axis}" for i in range(24) for axis in "xy"]


def result_csv(path, images, value: float = 10.0):
    table = pd.DataFrame(np.full((len(images), 48), value), columns=COLUMNS)
    table.insert(0, "image", images)
    table.to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    root = tmp_path_factory.mktemp("ensemble")
    a = result_csv(root / "a.csv", ["i1", "i2"], 10.0)
    b = result_csv(root / "b.csv", ["i1", "i2"], 20.0)
    only_i1 = result_csv(root / "only_i1.csv", ["i1"], 30.0)
    (root / "empty.csv").write_bytes(b"")
    (root / "header.csv").write_text("image," + ",".join(COLUMNS) + "\n")
    (root / "binary.csv").write_bytes(bytes(range(256)) * 4)
    no_name = pd.read_csv(a)
    no_name.loc[1, "image"] = np.nan
    no_name.to_csv(root / "no_name.csv", index=False)
    return {"root": root, "a": a, "b": b, "only_i1": only_i1}


@pytest.mark.parametrize("weights, named", [
    (["nan", "1"], ["finite"]),
    (["inf", "1"], ["finite"]),
    (["1", "-1"], [">= 0"]),
    (["0", "0"], ["not all 0"]),
    (["1"], ["1 weights for 2 inputs"]),
    (["1", "1", "1"], ["3 weights for 2 inputs"]),
])  # fmt: skip
def test_csv_ensemble_weights_are_refused_before_anything_is_written(results, weights, named):
    out = results["root"] / "out.csv"
    result = run_cli("ensemble", "--inputs", results["a"], results["b"], "--out", out,
                     "--weights", *weights)  # fmt: skip
    assert_user_error(result, "--weights", *named)
    assert not out.exists()


@pytest.mark.parametrize("weights", [["nan", "1"], ["1", "-1"], ["0", "0"], ["1"]])
def test_run_folder_ensemble_weights_follow_the_same_rule(results, weights):
    """The heatmap ensemble refused none of these before; now it stops before loading a model
    (the folders need not even hold one)."""
    folders = [results["root"] / "run_a", results["root"] / "run_b"]
    for folder in folders:
        folder.mkdir(exist_ok=True)
    out = results["root"] / "out_runs.csv"
    result = run_cli("ensemble", "--inputs", *folders, "--out", out, "--weights", *weights)
    assert_user_error(result, "--weights")
    assert not out.exists()


@pytest.mark.parametrize("name, named", [
    ("empty.csv", ["empty.csv", "the file is empty"]),
    ("header.csv", ["header.csv", "no rows"]),
    ("binary.csv", ["binary.csv", "not a result CSV"]),
    ("no_name.csv", ["no_name.csv", "row 3", "no image name"]),
])  # fmt: skip
def test_a_broken_result_file_is_named(results, name, named):
    out = results["root"] / "out_broken.csv"
    result = run_cli("ensemble", "--inputs", results["a"], results["root"] / name, "--out", out)
    assert_user_error(result, *named)
    assert not out.exists()


def test_inputs_that_do_not_exist_are_named(results):
    out = results["root"] / "out_missing.csv"
    missing = results["root"] / "fold9"
    result = run_cli("ensemble", "--inputs", results["a"], missing, "--out", out, "TEST.FLIP_TEST",
                     "True")  # fmt: skip
    assert_user_error(result, "not found", str(missing))


def test_only_zero_weight_inputs_predicted_an_image_is_refused(results):
    """Weights 1 0 where input 1 lacks image i2: the weighted mean of i2 was 0/0 = NaN, written
    as empty cells with exit 0."""
    out = results["root"] / "out_zero.csv"
    result = run_cli("ensemble", "--inputs", results["only_i1"], results["a"], "--out", out,
                     "--weights", "1", "0")  # fmt: skip
    assert_user_error(result, "weight 0", "i2")
    assert not out.exists()


def test_different_image_sets_are_joined_and_filled(results):
    out = results["root"] / "out_join.csv"
    result = run_cli("ensemble", "--inputs", results["only_i1"], results["b"], "--out", out,
                     "--weights", "1", "3")  # fmt: skip
    assert result.returncode == 0, result.stderr
    table = pd.read_csv(out).set_index("image")
    assert list(table.index) == ["i1", "i2"]
    assert np.allclose(table.loc["i1"], (30 + 3 * 20) / 4)  # weighted mean
    assert np.allclose(table.loc["i2"], 20.0)  # filled from the one input that has it


def test_a_diverged_model_is_refused_not_written_as_nan(tmp_path):
    """A run folder whose weights are NaN (a diverged training) is named, nothing written (the
    ensemble also refuses NaN predictions themselves before writing: ``check_predictions``)."""
    data = tmp_path / "data"
    generate_motion_dataset(data, 4, 3, width=96, height=64, seed=2)
    opts = ["DATASET.ROOT", str(data), "TEST.BOX_SOURCE", "truth", "MODEL.IMAGE_SIZE",
            "[64, 64]", "MODEL.HEATMAP_SIZE", "[16, 16]", "MODEL.SIGMA", "1"]  # fmt: skip
    cfg = load_config(KP_CFG, opts)
    model = stage_for("keypoint").build_model(cfg, is_train=False)
    folders = [tmp_path / "run0", tmp_path / "run1"]
    for number, folder in enumerate(folders):
        folder.mkdir()
        (folder / "config.yaml").write_text(cfg.dump())
        state = model.state_dict()
        if number == 1:
            state = {k: v.float().fill_(float("nan")) if v.is_floating_point() else v
                     for k, v in state.items()}  # fmt: skip
        torch.save(state, folder / "model_best.pth")
    out = tmp_path / "result.csv"
    result = run_cli("ensemble", "--inputs", *folders, "--out", out, *opts)
    assert_user_error(result, "NaN or infinite", str(folders[1] / "model_best.pth"))
    assert not out.exists()


@pytest.fixture(scope="module")
def tune_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("tune")
    (root / "file.txt").write_text("mine")
    return root


@pytest.mark.parametrize("space, named", [
    ("TRAIN.LR: {loguniform: [1e-4, 1e-2]\n", ["YAML syntax error", "line 2"]),
    ("TRAIN.OPTIMIZER: {choice: [adam, 3]}\n", ["TRAIN.OPTIMIZER", "the value 3"]),
    ("TEST.DECODE: {choice: [dark, darkk]}\n", ["TEST.DECODE", "'darkk'"]),
    ("TRAIN.LRR: {choice: [0.1]}\n", ["TRAIN.LRR", "did you mean TRAIN.LR"]),
    ("TRAIN.END_EPOCH: {uniform: [1.5, 3]}\n", ["TRAIN.END_EPOCH", "whole"]),
    ("TRAIN.LR: {uniform: [0, .inf]}\n", ["TRAIN.LR", "finite"]),
    ("TRAIN.LR: {uniform: [1e-2, 1e-4]}\n", ["low < high"]),
    ("TRAIN.LR: {loguniform: [true, 2]}\n", ["TRAIN.LR", "two finite numbers"]),
    ("TRAIN: {choice: [1]}\n", ["TRAIN is a group of config keys"]),
    ("MODEL.IMAGE_SIZE: {choice: [[64, 64], [0, 64]]}\n", ["MODEL.IMAGE_SIZE", "[0, 64]"]),
    ("", ["expected a mapping"]),
    ("- TRAIN.LR\n", ["expected a mapping"]),
])  # fmt: skip
def test_a_bad_space_is_refused_before_ray_starts(tune_dir, space, named):
    path = tune_dir / "space.yaml"
    path.write_text(space)
    out = tune_dir / "out"
    result = run_cli("tune", "--cfg", KP_CFG, "--space", path, "--samples", "1", "--out", out,
                     "DATASET.ROOT", tune_dir)  # fmt: skip
    assert_user_error(result, *named)
    assert "ray" not in result.stderr.lower()
    assert not out.exists()


@pytest.mark.parametrize("extra, named", [
    (["--out", "file.txt"], ["is a file"]),
    (["--out", "out", "DATASET.ROOT", "no_such_data"], ["DATASET.ROOT no_such_data"]),
    (["--out", "out", "--samples", "0"], ["--samples"]),
])  # fmt: skip
def test_tune_refuses_bad_paths_before_ray_starts(tune_dir, extra, named):
    (tune_dir / "good.yaml").write_text("TRAIN.LR: {loguniform: [1e-4, 1e-2]}\n")
    args = ["--cfg", KP_CFG, "--space", tune_dir / "good.yaml", "--samples", "1"]
    result = run_cli("tune", *args, *[tune_dir / a if a in ("file.txt", "out") else a
                                      for a in extra])  # fmt: skip
    assert_user_error(result, *named)
    assert (tune_dir / "file.txt").read_text() == "mine"
    assert not (tune_dir / "out").exists()


def test_the_space_numbers_are_numbers_and_relative_paths_become_absolute(tmp_path, monkeypatch):
    from stages.tuning import absolute_path_opts, read_space

    space = tmp_path / "space.yaml"
    space.write_text("TRAIN.LR: {loguniform: [1e-4, 1e-2]}\nDATASET.ROT_FACTOR: {uniform: [10, 30]}"
                     "\nTRAIN.OPTIMIZER: {choice: [adam, sgd]}\n")  # fmt: skip
    assert read_space(space) == {"TRAIN.LR": ("loguniform", [1e-4, 1e-2]),
                                 "DATASET.ROT_FACTOR": ("uniform", [10, 30]),
                                 "TRAIN.OPTIMIZER": ("choice", ["adam", "sgd"])}  # fmt: skip
    (tmp_path / "data").mkdir()
    monkeypatch.chdir(tmp_path)
    opts = absolute_path_opts(load_config(KP_CFG, ["DATASET.ROOT", "data"]))
    assert opts == ["DATASET.ROOT", repr(str(tmp_path / "data"))]
    assert load_config(KP_CFG, opts).DATASET.ROOT == str(tmp_path / "data")


def test_out_may_not_be_an_input_nor_a_folder(results):
    before = results["a"].read_text()
    for args, named in (([results["a"], results["b"], "--out", results["a"]], "is one of"),
                        ([results["a"], results["b"], "--out", results["root"]], "a folder")):
        assert_user_error(run_cli("ensemble", "--inputs", *args), named)
    assert results["a"].read_text() == before
