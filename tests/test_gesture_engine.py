"""End to end on a tiny synthetic set: train one fold briefly, predict, check the submission."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from common.config import load_config
from common.gesture.data import GestureDataError, read_clips
from common.gesture.folds import assign_folds
from common.gesture.model import build_classifier
from common.gesture.optim import WarmupOneCycle
from common.gesture.prediction import predict_gesture
from common.gesture.refiner_folds import fit_and_score_refiner
from common.gesture.training import train_gesture
from common.keypoints import HAND_KEYPOINTS, coordinate_columns
from common.seed import seed_everything
from common.synthetic.gesture import generate_gesture_dataset

CONFIG = Path(__file__).resolve().parents[1] / "experiments" / "gesture" / "tiny_cpu_gesture.yaml"


def _config(root: Path, *opts: str):
    cfg = load_config(CONFIG, ["DATASET.ROOT", str(root), "GESTURE.EPOCHS", "2",
                               "GESTURE.WARMUP_EPOCHS", "1", "GESTURE.IMAGE_SIZE", "32",
                               "GESTURE.BATCH_SIZE", "16", "GESTURE.FOLDS", "[0]",
                               "GESTURE.GROUP_SPLIT", "False", *opts])  # fmt: skip
    seed_everything(cfg.RANDOMSEED, cfg)
    return cfg


def test_assign_folds_per_frame_and_by_group() -> None:
    labels = [0] * 10 + [1] * 10
    groups = [str(i // 2) for i in range(20)]  # ten clips of two frames
    folds = assign_folds(labels, groups, 5, 42, group_split=False)
    assert sorted(np.bincount(folds).tolist()) == [4, 4, 4, 4, 4]
    grouped = assign_folds(labels, groups, 5, 42, group_split=True)
    for clip in set(groups):
        assert len({grouped[i] for i in range(20) if groups[i] == clip}) == 1
    assert set(grouped.tolist()) == {0, 1, 2, 3, 4}


def test_schedule_warms_up_then_runs_one_cycle(tmp_path: Path) -> None:
    cfg = _config(tmp_path, "GESTURE.EPOCHS", "3", "GESTURE.WARMUP_EPOCHS", "1",
                  "GESTURE.WARMUP_LR", "5e-6", "GESTURE.MAX_LR", "1e-3")  # fmt: skip
    optimizer = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=cfg.GESTURE.WARMUP_LR)
    schedule = WarmupOneCycle(cfg, optimizer, iters_per_epoch=4)
    lrs = []
    for _ in range(12):
        schedule.before_step()
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        schedule.after_step()
    np.testing.assert_allclose(lrs[:4], [1.25e-6, 2.5e-6, 3.75e-6, 5e-6])
    assert lrs[4] == pytest.approx(1e-3 / 25)  # OneCycle's start (the reference's jump)
    assert max(lrs[4:]) == pytest.approx(1e-3, rel=0.05)
    assert lrs[-1] < lrs[4] / 5


def test_local_pretrained_weights_skip_the_new_head(tmp_path: Path) -> None:
    source = build_classifier("resnet10t", num_classes=5)
    path = tmp_path / "weights.pth"
    torch.save({"state_dict": source.state_dict()}, path)
    model = build_classifier("resnet10t", num_classes=13, pretrained_path=path)
    assert torch.equal(model.conv1[0].weight, source.conv1[0].weight)
    assert model.fc.weight.shape == (13, model.fc.in_features)
    with pytest.raises(ValueError, match="unknown timm model"):
        build_classifier("no_such_net", 3)


def _stage_result(split_dir: Path, path: Path, jitter: float = 0.0) -> Path:
    """A stand-in for stage two's result.csv: each frame's first hand from the JSON, with the
    topmost and rightmost points of odd frames moved right by ``jitter`` pixels."""
    rows = []
    for clip in read_clips(split_dir, split_dir.name):
        for frame, (image, points) in enumerate(zip(clip.frame_paths, clip.keypoints, strict=True)):
            hand = points[:21].copy()
            if frame % 2:
                hand[[np.argmin(hand[:, 1]), np.argmax(hand[:, 0])], 0] += jitter
            rows.append([f"{clip.folder}/{image.name}", *hand.reshape(-1)])
    pd.DataFrame(rows, columns=["image", *coordinate_columns(HAND_KEYPOINTS)]).to_csv(
        path, index=False
    )
    return path


@pytest.mark.slow
def test_train_predict_tiny(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    root = tmp_path / "gesture"
    generate_gesture_dataset(root, train_clips=26, test_clips=5, frames=3, width=96, height=64)
    logger = logging.getLogger("test_gesture_engine")
    out = tmp_path / "out"
    train_result = _stage_result(root / "train", tmp_path / "train_result.csv", jitter=3.0)
    cfg = _config(root, "GESTURE.TRAIN_STAGE_RESULT_CSV", str(train_result))
    metrics = train_gesture(cfg, out, logger)

    fold = metrics["folds"]["0"]
    assert fold["best_epoch"] in (1, 2) and fold["val_frames"] + fold["train_frames"] == 78
    for key in ("logloss", "logloss_refined", "accuracy", "accuracy_refined"):
        assert np.isfinite(fold[key]) and metrics["mean"][key] == pytest.approx(fold[key])
        # one fold: its validation clips are all the pooled (out-of-fold) ones
        assert metrics["out_of_fold"][key] == pytest.approx(fold[key])
        assert metrics["out_of_fold"]["stage_keypoints"][key] == pytest.approx(
            fold["stage_keypoints"][key]
        )
    assert set(fold["pairs"]) <= {"index", "fist"}
    thresholds = json.loads((out / "refiner_thresholds.json").read_text())
    assert set(thresholds["groups"]) == {"index", "fist"}
    # fitted again on the (jittered) stage keypoints: 3 px of a 96-px frame = 60 reference px
    # (index, a pixel statistic); the fists' size_change (no unit) also grows with the jitter
    stage_thresholds = json.loads((out / "refiner_thresholds_stages.json").read_text())
    for group, fit in stage_thresholds["groups"].items():
        extra = 30 if fit["statistic"] == "tip_x_range" else 0
        assert fit["threshold"] > thresholds["groups"][group]["threshold"] + extra
        assert fit["threshold"] == pytest.approx(metrics["thresholds_stages"][group])
    assert {"logloss", "logloss_refined", "pairs"} <= set(fold["stage_keypoints"])
    # the refiner refitted from the saved validation probabilities, without training: the same
    # metrics, and another mode rescores the same probabilities
    assert fit_and_score_refiner(cfg, out, logger) == metrics
    stage_csv = str(train_result)
    pair_mass_cfg = _config(
        root, "GESTURE.TRAIN_STAGE_RESULT_CSV", stage_csv, "GESTURE.REFINER.MODE", "pair_mass"
    )
    rescored = fit_and_score_refiner(pair_mass_cfg, out, logger)["folds"]["0"]
    assert rescored["logloss"] == fold["logloss"]
    assert rescored["logloss_refined"] == fold["logloss_refined_by_mode"]["pair_mass"]
    checkpoint = torch.load(out / "fold_0" / "best_model.pth", weights_only=True)
    assert checkpoint["class_ids"] == [0, 2, 10, 12, 42, 67, 105, 115, 122, 146, 163, 171, 191]

    submission_path = predict_gesture(cfg, out, logger)
    assert submission_path == out / "submission.csv"
    sample = pd.read_csv(root / "sample_submission.csv")
    submission = pd.read_csv(submission_path)
    assert submission.columns.tolist() == sample.columns.tolist()
    assert submission["Image_Path"].tolist() == sample["Image_Path"].tolist()
    probs = submission.iloc[:, 1:].to_numpy()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-6)
    assert (probs >= 0).all()
    raw = pd.read_csv(out / "submission_no_refiner.csv").iloc[:, 1:].to_numpy()
    np.testing.assert_allclose(raw.sum(axis=1), 1.0, atol=1e-6)
    decisions = json.loads((out / "refiner_decisions.json").read_text())
    changed_rows = {i for i in range(len(probs)) if not np.allclose(probs[i], raw[i])}
    decided_rows = {sample["Image_Path"].tolist().index(f"./test\\{d['folder']}")
                    for d in decisions}  # fmt: skip
    assert changed_rows <= decided_rows  # the refiner touches only the clips it decided on
    for row in decided_rows:  # one-hot mode
        assert sorted(probs[row])[-1] == 1.0
    scores = json.loads((out / "test_scores.json").read_text())
    assert {"logloss", "logloss_refined", "accuracy", "accuracy_refined"} <= set(scores)
    assert scores["clips"] == 5

    # Test keypoints from the stages: a result.csv built from the test JSONs' first hand.
    result = _stage_result(root / "test", tmp_path / "result.csv")
    for clip_dir in (root / "test").iterdir():
        (clip_dir / f"{clip_dir.name}.json").unlink()
    with pytest.raises(GestureDataError, match="without keypoint JSON"):
        predict_gesture(cfg, out, logger)
    staged = _config(root, "GESTURE.KEYPOINT_SOURCE", "stages",
                     "GESTURE.STAGE_RESULT_CSV", str(result))  # fmt: skip
    with caplog.at_level(logging.INFO, logger="test_gesture_engine"):
        staged_probs = pd.read_csv(predict_gesture(staged, out, logger)).iloc[:, 1:].to_numpy()
    np.testing.assert_allclose(staged_probs.sum(axis=1), 1.0, atol=1e-6)
    assert "refiner thresholds: " + str(out / "refiner_thresholds_stages.json") in caplog.text

    shutil.rmtree(out / "fold_0")
    with pytest.raises(FileNotFoundError, match="trained fold models not found"):
        predict_gesture(staged, out, logger)
