"""k-fold training of stage two on group-aware folds, with out-of-fold predictions.

Folds keep each subject (``split_groups``: the subject id of a competition file name, the
folder of a gesture frame) on one side, so a sequence never straddles a fold and the
out-of-fold RMSE measures unseen people, as the leaderboard does. Fold ``k`` trains in
``<run folder>/fold<k>`` (a complete run folder: ``model_best.pth``, ``config.yaml``,
``splits.json``), validating on its held-out fold; the held-out predictions of every fold's best
model together give ``oof.csv`` and the out-of-fold RMSE.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np
from yacs.config import CfgNode

from common.boxes import keypoint_extent_boxes
from common.checkpoint import BEST_NAME
from common.errors import ConfigError
from common.io import atomic_write_text
from common.keypoint_config import config_keypoint_set
from common.metrics import rmse
from common.motion_data import write_keypoint_csv
from common.seed import seed_everything
from common.stage import TrainRun
from common.stage_data import load_training_table, split_groups
from common.state_dict import load_state_dict_strict
from common.trainer import fit


def group_folds(names: Sequence[str], folds: int, seed: int) -> list[np.ndarray]:
    """Held-out indices of each of ``folds`` folds, grouped by subject, shuffled by ``seed``."""
    groups = np.asarray(split_groups(list(names)))
    count = len(np.unique(groups))
    if folds < 2 or count < folds:
        raise ConfigError(
            f"--folds {folds}: need at least 2 folds and no more folds than subjects "
            f"({count} in the training table); lower --folds"
        )
    from sklearn.model_selection import GroupKFold  # slow to import: k-fold runs only

    splitter = GroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    return [np.sort(held) for _, held in splitter.split(np.zeros(len(groups)), groups=groups)]


def train_folds(cfg: CfgNode, stage_functions: Any, run: TrainRun) -> dict:
    """Train ``folds`` keypoint models; write ``oof.csv`` and ``oof_summary.json`` in
    ``output_dir``, print ``oof rmse: <value>`` and return the summary. ``stage_functions``:
    stage two's ``build_model``, ``build_stage`` and ``predict_boxes`` (passed in, since
    ``common`` imports no stage)."""
    engine, folds, on_epoch_end = stage_functions, run.folds, run.on_epoch_end
    output_dir, tb_dir, logger, device = run.output_dir, run.tb_dir, run.logger, run.device
    table = load_training_table(cfg, logger)
    held_out = group_folds(table.names, folds, cfg.RANDOMSEED)
    oof = np.full_like(table.keypoints, np.nan)
    per_fold = []
    for k, val_idx in enumerate(held_out):
        fold_dir = output_dir / f"fold{k}"
        fold_dir.mkdir(parents=True, exist_ok=True)
        train_idx = np.setdiff1d(np.arange(len(table.names)), val_idx)
        atomic_write_text(fold_dir / "config.yaml", cfg.dump())
        atomic_write_text(fold_dir / "splits.json", json.dumps(
            {name: [table.names[i] for i in idx]
             for name, idx in (("train", train_idx), ("val", val_idx))}, indent=1))  # fmt: skip
        logger.info("fold %d of %d: %d training, %d held-out images (%d subjects)", k, folds,
                    len(train_idx), len(val_idx),
                    len(set(split_groups([table.names[i] for i in val_idx]))))  # fmt: skip
        seed_everything(cfg.RANDOMSEED, cfg)  # every fold starts from the same initialisation
        val = table.subset(val_idx)
        model = engine.build_model(cfg, is_train=True, logger=logger)
        stage = engine.build_stage(cfg, model, table.subset(train_idx), val, device)
        from tensorboardX import SummaryWriter  # training only: test runs skip its import

        writer = SummaryWriter(str(tb_dir / f"fold{k}"))
        try:
            fit(cfg, stage, fold_dir, logger, writer, device, on_epoch_end=on_epoch_end)
        finally:
            writer.close()
        best = engine.build_model(cfg, is_train=False)
        load_state_dict_strict(best, fold_dir / BEST_NAME)
        oof[val_idx] = engine.predict_boxes(best.to(device), cfg, val.paths,
                                            keypoint_extent_boxes(val.keypoints), device)
        per_fold.append(rmse(oof[val_idx], val.keypoints))
        logger.info("fold %d held-out rmse %.4f", k, per_fold[-1])
    kp_names = config_keypoint_set(cfg).names
    write_keypoint_csv(output_dir / "oof.csv", table.names, oof, kp_names)
    summary = {"folds": folds, "oof_rmse": rmse(oof, table.keypoints), "fold_rmse": per_fold,
               "fold_dirs": [str(output_dir / f"fold{k}") for k in range(folds)]}  # fmt: skip
    atomic_write_text(output_dir / "oof_summary.json", json.dumps(summary, indent=1))
    logger.info("out-of-fold rmse %.4f over %d images (%s)", summary["oof_rmse"],
                len(table.names), output_dir / "oof.csv")  # fmt: skip
    print(f"oof rmse: {summary['oof_rmse']:.4f}")
    return summary
