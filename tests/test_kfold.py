"""k-fold training on subject folds and its out-of-fold RMSE (common/kfold.py)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from common.kfold import group_folds
from common.metrics import rmse
from common.motion_data import keypoints_array, read_keypoint_csv
from common.stage_data import split_groups
from tests.conftest import ROOT, load_tool
from tests.test_keypoint_training import CFG, opts, run_dir


def names_of(subjects: list[int], frames: int = 3) -> list[str]:
    return [f"{s:03d}-1-1-01-Z17_A-{f:07d}.jpg" for s in subjects for f in range(frames)]


def test_folds_cover_every_image_once_and_keep_each_subject_in_one_fold() -> None:
    names = names_of(list(range(1, 11)))
    folds = group_folds(split_groups(names), 3, seed=42)
    assert sorted(np.concatenate(folds).tolist()) == list(range(len(names)))
    groups = np.asarray(split_groups(names))
    seen = [set(groups[idx]) for idx in folds]
    assert all(not (seen[i] & seen[j]) for i in range(3) for j in range(i + 1, 3))
    again = group_folds(split_groups(names), 3, seed=42)
    assert [f.tolist() for f in again] == [f.tolist() for f in folds]
    with pytest.raises(ValueError, match="no more folds than groups"):
        group_folds(split_groups(names_of([1, 2])), 3, seed=42)


@pytest.mark.slow
def test_train_folds_writes_fold_runs_and_the_out_of_fold_rmse(tiny_motion, tmp_path, capsys):
    extra = ("TRAIN.END_EPOCH", "1", "MODEL.IMAGE_SIZE", "[64, 64]", "MODEL.HEATMAP_SIZE",
             "[16, 16]", "MODEL.SIGMA", "1")  # a third of the tiny config's pixels
    summary = load_tool("train").main(["--cfg", str(ROOT / CFG), "--folds", "2",
                                       *opts(tiny_motion, tmp_path, *extra)])  # fmt: skip
    out_dir = run_dir(tiny_motion, tmp_path, *extra)
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("oof")]
    assert lines == [f"oof rmse: {summary['oof_rmse']:.4f}"]
    truth = read_keypoint_csv(tiny_motion / "train_df.csv")
    oof = read_keypoint_csv(out_dir / "oof.csv")
    assert list(oof["image"]) == list(truth["image"])
    assert rmse(keypoints_array(oof), keypoints_array(truth)) == pytest.approx(summary["oof_rmse"])
    held = []
    for k in range(2):
        fold = out_dir / f"fold{k}"
        assert (fold / "model_best.pth").is_file() and (fold / "config.yaml").is_file()
        splits = json.loads((fold / "splits.json").read_text())
        assert not set(split_groups(splits["train"])) & set(split_groups(splits["val"]))
        held += splits["val"]
    assert sorted(held) == sorted(truth["image"])


def test_folds_refuse_one_fold_and_the_holdout(tmp_path, capsys) -> None:
    for extra in (["--folds", "1"], ["--folds", "2", "--test_option", "True"]):
        with pytest.raises(SystemExit) as stop:
            load_tool("train").main(["--cfg", str(ROOT / CFG), *extra])
        assert stop.value.code == 2
