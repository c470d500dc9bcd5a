"""Ensembles of result files and of model heatmaps (HRNet_keypoint/ensemble.py and
tools/ensemble.py)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from common.cli import run_tool
from common.config import load_config
from common.io import atomic_write_text
from common.keypoints import coordinate_columns, keypoint_set
from common.motion_data import keypoints_array, read_keypoint_csv
from HRNet_keypoint.ensemble import ensemble_results, read_result
from tests.conftest import ROOT, load_tool

NAMES = keypoint_set(24)["names"]


def table(images, values) -> pd.DataFrame:
    frame = pd.DataFrame(values, columns=coordinate_columns(NAMES))
    frame.insert(0, "image", images)
    return frame


def test_weighted_mean_median_and_filling_missing_rows_and_cells(tmp_path) -> None:
    rng = np.random.default_rng(0)
    a, b, c = (rng.uniform(0, 100, (3, 48)) for _ in range(3))
    b[1, 4] = np.nan  # model b missed one coordinate of image 1
    frames = [table(["i0", "i1", "i2"], a), table(["i2", "i1"], b[[2, 1]]), table(["i0", "i1",
              "i2", "i3"], np.vstack([c, np.full((1, 48), 7.0)]))]  # fmt: skip
    paths = []
    for number, frame in enumerate(frames):
        paths.append(tmp_path / f"r{number}.csv")
        frame.to_csv(paths[-1], index=False)
    loaded = [read_result(path) for path in paths]
    mean, filled = ensemble_results(loaded, weights=[1.0, 2.0, 1.0])
    assert list(mean.index) == ["i0", "i1", "i2", "i3"] and filled == 3
    np.testing.assert_allclose(mean.loc["i2"], (a[2] + 2 * b[2] + c[2]) / 4)
    np.testing.assert_allclose(mean.loc["i0"], (a[0] + c[0]) / 2)  # b has no row i0
    expected_cell = (a[1, 4] + c[1, 4]) / 2  # b's NaN is left out of that cell only
    assert mean.loc["i1"].iloc[4] == pytest.approx(expected_cell)
    assert mean.loc["i1"].iloc[5] == pytest.approx((a[1, 5] + 2 * b[1, 5] + c[1, 5]) / 4)
    np.testing.assert_allclose(mean.loc["i3"], 7.0)  # only c predicted i3
    median, _ = ensemble_results(loaded, median=True)
    np.testing.assert_allclose(median.loc["i2"], np.median(np.stack([a[2], b[2], c[2]]), axis=0))

    out = tmp_path / "ensemble.csv"
    load_tool("ensemble").main(["--inputs", *map(str, paths), "--out", str(out),
                                "--weights", "1", "2", "1"])  # fmt: skip
    written = read_keypoint_csv(out)
    assert list(written["image"]) == ["i0", "i1", "i2", "i3"]
    np.testing.assert_allclose(keypoints_array(written).reshape(4, 48), mean.to_numpy())


def test_user_mistakes_end_in_one_line_and_status_two(tmp_path, capsys) -> None:
    path = tmp_path / "r.csv"
    table(["i0"], np.zeros((1, 48))).to_csv(path, index=False)
    nan_only = tmp_path / "nan.csv"
    table(["i1"], np.full((1, 48), np.nan)).to_csv(nan_only, index=False)
    cases = [
        ["--inputs", str(path), str(path), "--out", str(tmp_path / "o.csv"), "--weights", "1"],
        ["--inputs", str(path), str(tmp_path / "absent.csv"), "--out", str(tmp_path / "o.csv")],
        ["--inputs", str(path), str(nan_only), "--out", str(tmp_path / "o.csv")],
        ["--inputs", str(path), str(tmp_path), "--out", str(tmp_path / "o.csv")],
    ]
    for argv in cases:
        with pytest.raises(SystemExit) as stop:
            run_tool(lambda argv=argv: load_tool("ensemble").main(argv))
        assert stop.value.code == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error: ")


def make_run_folder(folder, data, seed: int) -> None:
    """A run folder as tools/train.py leaves it: config.yaml and (untrained) model_best.pth."""
    from HRNet_keypoint.engine import build_model

    cfg = load_config(ROOT / "experiments/keypoint/tiny_cpu_keypoint.yaml",
                      ["DATASET.ROOT", str(data)])  # fmt: skip
    torch.manual_seed(seed)
    folder.mkdir(parents=True)
    atomic_write_text(folder / "config.yaml", cfg.dump())
    torch.save(build_model(cfg, is_train=False).state_dict(), folder / "model_best.pth")


def test_heatmap_ensemble_of_run_folders(tiny_motion, tmp_path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    make_run_folder(a, tiny_motion, 0)
    make_run_folder(b, tiny_motion, 1)
    opts = ["TEST.BOX_SOURCE", "truth"]
    tool = load_tool("ensemble")
    singles = {}
    for folder in (a, b):
        singles[folder] = tool.main(["--inputs", str(folder), "--out",
                                     str(folder / "alone.csv"), *opts])  # fmt: skip
    load_tool("test").main(["--cfg", str(a / "config.yaml"), "--output_path", str(a), *opts])
    alone, official = read_keypoint_csv(singles[a]), read_keypoint_csv(a / "result.csv")
    np.testing.assert_array_equal(keypoints_array(alone), keypoints_array(official))
    twice = tool.main(["--inputs", str(a), str(a), "--out", str(tmp_path / "aa.csv"), *opts])
    np.testing.assert_array_equal(keypoints_array(read_keypoint_csv(twice)),
                                  keypoints_array(official))  # fmt: skip
    both = keypoints_array(read_keypoint_csv(
        tool.main(["--inputs", str(a), str(b), "--out", str(tmp_path / "ab.csv"), *opts])))
    assert not np.array_equal(both, keypoints_array(official))
    assert not np.array_equal(both, keypoints_array(read_keypoint_csv(singles[b])))
