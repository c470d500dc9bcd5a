"""The stage interface: what ``tools/train.py``, ``tools/test.py`` and ``tools/export_onnx.py``
need of a stage (one value of the config's ``TASK``), and the training run that the two image
stages share.

The box stage (``HRNet_bbox.engine.BOX_STAGE``), the keypoint stage
(``HRNet_keypoint.engine.KEYPOINT_STAGE``) and the gesture stage
(``common.gesture.stage.GESTURE_STAGE``) implement ``StageTask``; the package ``stages`` at the
top of the repository imports the three and maps ``TASK`` to them. Nothing here imports a stage.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset
from yacs.config import CfgNode

from common.checkpoint import BEST_NAME
from common.distributed import cleanup
from common.io import atomic_write_text
from common.keypoint_table import KeypointTable
from common.loaders import make_loader
from common.splits import make_splits
from common.stage_data import load_training_table, table_groups
from common.state_dict import load_state_dict_strict
from common.trainer import Stage, fit
from common.visualize import write_training_samples


@dataclass
class TrainRun:
    """Where and how ``tools/train.py`` runs a training: the run folder, TensorBoard's folder,
    the logger, the device, ``--test_option`` and whether this is the main process."""

    output_dir: Path
    tb_dir: Path
    logger: logging.Logger
    device: torch.device
    test_option: bool
    main_process: bool = True
    folds: int = 0  # K >= 2: k-fold training on subject folds (stage two, common/kfold.py)
    on_epoch_end: Callable[[int, dict[str, float]], None] | None = None  # e.g. Ray Tune's report


class StageTask(Protocol):
    """One stage as the tools drive it: train it; at test time read and check the test inputs
    (before any model is looked for, so bad data is named first), load the trained model,
    predict, write the outputs."""

    task: str  # the config's TASK

    def build_model(
        self, cfg: CfgNode, is_train: bool, logger: logging.Logger | None = None
    ) -> nn.Module:
        """The stage's network (pretrained layers only when training)."""
        ...

    def train(self, cfg: CfgNode, run: TrainRun) -> dict:
        """Build the training stage, train it into ``run.output_dir``; returns the summary."""
        ...

    def read_test_inputs(self, cfg: CfgNode, logger: logging.Logger) -> Any:
        """The checked test images (or clips) of the config's data set, with what the stage
        predicts from (stage two: the boxes)."""
        ...

    def load_for_test(self, cfg: CfgNode, output_dir: Path, device: torch.device) -> Any:
        """The trained model(s) of ``output_dir``, ready to predict."""
        ...

    def predict(self, cfg: CfgNode, model: Any, inputs: Any, device: torch.device) -> Any:
        """Predictions for every test input, with the inputs they belong to."""
        ...

    def write_outputs(
        self, cfg: CfgNode, output_dir: Path, predictions: Any, logger: logging.Logger
    ) -> Path:
        """Write the predictions' files into ``output_dir``; returns the main one."""
        ...


def run_test(
    stage: StageTask, cfg: CfgNode, output_dir: Path, logger: logging.Logger, device: torch.device
) -> Path:
    """Inputs, model, predictions, files: the test-time path of every stage."""
    inputs = stage.read_test_inputs(cfg, logger)
    model = stage.load_for_test(cfg, output_dir, device)
    if hasattr(model, "runs_in"):
        logger.info("forward: TEST.BACKEND %s in %s", cfg.TEST.BACKEND, model.runs_in)
    predictions = stage.predict(cfg, model, inputs, device)
    return stage.write_outputs(cfg, output_dir, predictions, logger)


def train_on_table(
    cfg: CfgNode,
    run: TrainRun,
    build_model: Callable[..., nn.Module],
    build_stage: Callable[..., Stage],
    evaluate: Callable[..., dict[str, float]],
) -> dict:
    """The image stages' training: the checked ``TRAIN_CSV`` table, the (grouped) splits saved
    as ``splits.json``, ``build_stage`` on ``common.trainer.fit``, and with ``test_option`` the
    best model scored by ``evaluate`` on the held-out test split."""
    logger, output_dir = run.logger, run.output_dir
    table = load_training_table(cfg, logger)
    groups, grouped_by = table_groups(table, cfg.DATASET.GROUP_SPLIT)
    splits = make_splits(len(table.names), run.test_option, cfg.TEST_RATIO, cfg.RANDOMSEED, groups)
    logger.info("split: %s%s", {k: len(v) for k, v in splits.items()},
                f" (grouped by {grouped_by})" if groups else "")  # fmt: skip
    if run.main_process:
        atomic_write_text(
            output_dir / "splits.json",
            json.dumps({k: [table.names[i] for i in v] for k, v in splits.items()}, indent=1),
        )

    model = build_model(cfg, is_train=True, logger=logger)
    stage = build_stage(
        cfg, model, table.subset(splits["train"]), table.subset(splits["val"]), run.device
    )
    from tensorboardX import SummaryWriter  # training only: test runs skip its import

    writer = SummaryWriter(str(run.tb_dir)) if run.main_process else None
    try:
        summary = fit(cfg, stage, output_dir, logger, writer, run.device,
                      on_epoch_end=run.on_epoch_end)
    finally:
        if writer is not None:
            writer.close()
    summary.pop("history", None)
    if table.skipped:
        summary["skipped_images"] = table.skipped
        logger.warning("DATASET.SKIP_BAD_IMAGES: trained without %d unreadable images: %s",
                       len(table.skipped), ", ".join(table.skipped))  # fmt: skip
    if not run.main_process:
        cleanup()
        return summary
    if "test" in splits:
        summary["holdout"] = _score_best(cfg, run, build_model, evaluate,
                                         table.subset(splits["test"]))  # fmt: skip
        logger.info("hold-out test split with %s: %s", BEST_NAME, summary["holdout"])
    atomic_write_text(output_dir / "train_summary.json", json.dumps(summary, indent=1))
    cleanup()
    return summary


def image_stage(
    cfg: CfgNode,
    model: nn.Module,
    train_set: Dataset,
    train_step: Callable[[nn.Module, Any], torch.Tensor],
    validate: Callable[[nn.Module, int], dict[str, float]],
    metric_name: str,
    val_count: int,
    draw_sample: Callable[[int, int], np.ndarray],
) -> Stage:
    """An image stage on ``common.trainer.fit``: batches of ``train_set``, and after each
    validation the first ``DEBUG.NUM_SAMPLE_IMAGES`` of the ``val_count`` validation images
    drawn by ``draw_sample(index, epoch)`` into TensorBoard."""

    def draw_samples(net: nn.Module, epoch: int, metrics: dict, writer) -> None:
        count = min(cfg.DEBUG.NUM_SAMPLE_IMAGES, val_count)
        write_training_samples(writer, epoch, [draw_sample(i, epoch) for i in range(count)])

    return Stage(
        model=model,
        make_train_loader=lambda gen: make_loader(train_set, cfg, train=True, generator=gen),
        train_step=train_step,
        validate=validate,
        metric_name=metric_name,
        after_validation=draw_samples,
    )


def _score_best(
    cfg: CfgNode,
    run: TrainRun,
    build_model: Callable[..., nn.Module],
    evaluate: Callable[..., dict[str, float]],
    table: KeypointTable,
) -> dict[str, float]:
    best = build_model(cfg, is_train=False)
    load_state_dict_strict(best, run.output_dir / BEST_NAME)
    return evaluate(cfg, best.to(run.device), table, run.device)
