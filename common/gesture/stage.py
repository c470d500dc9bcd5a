"""The gesture classifier behind the stage interface (``common.stage.StageTask``).

Its training is its own loop over the folds (``common.gesture.training``), not
``common.stage.train_on_table``: the samples are a clip's frames, the splits are folds by clip,
and a refiner is fitted on the trained folds afterwards.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from torch import nn
from yacs.config import CfgNode

from common.gesture.prediction import (
    GesturePredictions,
    GestureTestInputs,
    load_fold_models,
    predict_clips,
    read_gesture_test_inputs,
    write_gesture_outputs,
)
from common.gesture.training import train_gesture
from common.stage import TrainRun


class GestureStage:
    """``TASK: gesture``: k-fold classifiers on keypoint crops, then the refiner."""

    task = "gesture"

    def build_model(self, cfg: CfgNode, is_train: bool,
                    logger: logging.Logger | None = None) -> nn.Module:  # fmt: skip
        raise ValueError(
            "TASK gesture: the classifier is built from its fold checkpoints; this tool works "
            "on the box and keypoint stages (TASK bbox or keypoint)"
        )

    def train(self, cfg: CfgNode, run: TrainRun) -> dict:
        return train_gesture(cfg, run.output_dir, run.logger)

    def read_test_inputs(self, cfg: CfgNode, logger: logging.Logger) -> GestureTestInputs:
        return read_gesture_test_inputs(cfg)

    def load_for_test(self, cfg: CfgNode, output_dir: Path,
                      device: torch.device) -> list[nn.Module]:  # fmt: skip
        return load_fold_models(cfg, output_dir, device)

    def predict(self, cfg: CfgNode, model: list[nn.Module], inputs: GestureTestInputs,
                device: torch.device) -> GesturePredictions:  # fmt: skip
        return predict_clips(cfg, model, inputs, device)

    def write_outputs(self, cfg: CfgNode, output_dir: Path, predictions: GesturePredictions,
                      logger: logging.Logger) -> Path:  # fmt: skip
        return write_gesture_outputs(cfg, output_dir, predictions, logger)


GESTURE_STAGE = GestureStage()
