"""k-fold training of stage two on group-aware folds, with out-of-fold predictions.

Folds keep each group on one side (``common.stage_data.table_groups``: the subject id of a
competition file name, the folder of a gesture frame; on a COCO set the file's ``subject``
field, or else the image, so one image's people stay together), so a sequence never straddles a
fold and the out-of-fold score measures unseen people, as the leaderboard does. The log says
what the folds were grouped by. Fold ``k`` trains in ``<run folder>/fold<k>`` (a complete run
folder: ``model_best.pth``, ``config.yaml``, ``splits.json``), validating on its held-out fold;
the held-out predictions of every fold's best model together give ``oof.csv`` and the
out-of-fold RMSE, or on a COCO set ``oof_keypoints.json`` (results by the file's image ids)
and the out-of-fold OKS AP too.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from yacs.config import CfgNode

from common.checkpoint import BEST_NAME
from common.coco import keypoint_results, read_coco_json, write_json
from common.errors import ConfigError
from common.io import atomic_write_text
from common.keypoint_config import config_keypoint_set
from common.keypoint_table import KeypointTable, dataset_root, table_boxes
from common.motion_data import write_keypoint_csv
from common.seed import seed_everything
from common.stage import TrainRun
from common.stage_data import load_training_table, table_groups
from common.state_dict import load_state_dict_strict
from common.trainer import fit


def group_folds(groups: Sequence[str], folds: int, seed: int,
                grouped_by: str = "subject") -> list[np.ndarray]:
    """Held-out indices of each of ``folds`` folds, each group (``groups``: one per row) in one
    fold, shuffled by ``seed``."""
    groups = np.asarray(list(groups))
    count = len(np.unique(groups))
    if folds < 2 or count < folds:
        raise ConfigError(
            f"--folds {folds}: need at least 2 folds and no more folds than groups "
            f"({count} groups by {grouped_by} in the training table); lower --folds"
        )
    from sklearn.model_selection import GroupKFold  # slow to import: k-fold runs only

    splitter = GroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    return [np.sort(held) for _, held in splitter.split(np.zeros(len(groups)), groups=groups)]


def train_folds(cfg: CfgNode, stage_functions: Any, run: TrainRun) -> dict:
    """Train ``folds`` keypoint models; write ``oof.csv`` (or ``oof_keypoints.json``) and
    ``oof_summary.json`` in ``output_dir``, print ``oof rmse: <value>`` (and ``oof ap: <value>``
    on a COCO set) and return the summary. ``stage_functions``: stage two's ``build_model``,
    ``build_stage``, ``predict_boxes`` and ``table_scores`` (passed in, since ``common`` imports
    no stage)."""
    engine, folds, on_epoch_end = stage_functions, run.folds, run.on_epoch_end
    output_dir, tb_dir, logger, device = run.output_dir, run.tb_dir, run.logger, run.device
    table = load_training_table(cfg, logger)
    groups, grouped_by = table_groups(table)
    held_out = group_folds(groups, folds, cfg.RANDOMSEED, grouped_by)
    logger.info("%d folds grouped by %s (%d groups)", folds, grouped_by, len(set(groups)))
    oof = np.full_like(table.keypoints, np.nan)
    per_fold = []
    for k, val_idx in enumerate(held_out):
        fold_dir = output_dir / f"fold{k}"
        fold_dir.mkdir(parents=True, exist_ok=True)
        train_idx = np.setdiff1d(np.arange(len(table.names)), val_idx)
        atomic_write_text(fold_dir / "config.yaml", cfg.dump())
        atomic_write_text(fold_dir / "splits.json", json.dumps(
            {name: list(dict.fromkeys(table.names[i] for i in idx))
             for name, idx in (("train", train_idx), ("val", val_idx))}, indent=1))  # fmt: skip
        logger.info("fold %d of %d: %d training, %d held-out people (%d groups by %s)", k, folds,
                    len(train_idx), len(val_idx), len({groups[i] for i in val_idx}),
                    grouped_by)  # fmt: skip
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
        oof[val_idx] = engine.predict_boxes(best.to(device), cfg, val.paths, table_boxes(val),
                                            device)  # fmt: skip
        per_fold.append(engine.table_scores(cfg, oof[val_idx], val))
        logger.info("fold %d held-out %s", k, _scores_text(per_fold[-1]))
    scores = engine.table_scores(cfg, oof, table)
    summary = {"folds": folds, "grouped_by": grouped_by, "oof_rmse": scores["rmse"],
               "fold_rmse": [fold["rmse"] for fold in per_fold],
               "fold_dirs": [str(output_dir / f"fold{k}") for k in range(folds)]}  # fmt: skip
    if "oks_ap" in scores:
        summary.update(oof_ap=scores["oks_ap"], fold_ap=[fold["oks_ap"] for fold in per_fold])
    written = _write_oof(cfg, output_dir, table, oof)
    atomic_write_text(output_dir / "oof_summary.json", json.dumps(summary, indent=1))
    logger.info("out-of-fold %s over %d people (%s)", _scores_text(scores), len(table.names),
                written)  # fmt: skip
    print(f"oof rmse: {summary['oof_rmse']:.4f}")
    if "oof_ap" in summary:
        print(f"oof ap: {summary['oof_ap']:.4f}")
    return summary


def _scores_text(scores: dict[str, float]) -> str:
    ap = f", OKS AP {scores['oks_ap']:.4f}" if "oks_ap" in scores else ""
    return f"rmse {scores['rmse']:.4f}{ap}"


def _write_oof(cfg: CfgNode, output_dir: Path, table: KeypointTable, oof: np.ndarray) -> Path:
    """``oof.csv`` (one row per image of a CSV table), or for a COCO table, whose images may
    hold several people, ``oof_keypoints.json``: COCO results by the training file's image
    ids."""
    if table.areas is None:
        path = output_dir / "oof.csv"
        write_keypoint_csv(path, table.names, oof, config_keypoint_set(cfg).names)
        return path
    train_file = read_coco_json(dataset_root(cfg) / cfg.DATASET.TRAIN_JSON)
    ids = {image["file_name"]: image["id"] for image in train_file["images"]}
    path = output_dir / "oof_keypoints.json"
    write_json(path, keypoint_results([ids[name] for name in table.names], oof,
                                      np.ones(oof.shape[:2]),
                                      category_id=train_file["categories"][0]["id"]))  # fmt: skip
    return path
