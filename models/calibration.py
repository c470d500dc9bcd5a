"""The training images that ``TEST.BACKEND onnxruntime-int8`` calibrates on, for both stages.

Activation ranges are measured on the inputs the network will see at test time, so each stage
crops its draw of training images exactly as its test path does (its test-time dataset); the
draw is from the training table because the test images must not shape the model.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from yacs.config import CfgNode

from common.errors import ConfigError, UserError
from common.keypoint_table import KeypointTable
from common.stage_data import load_training_table
from models.quantize import INT8_BACKEND, calibration_indices


def calibration_table(cfg: CfgNode) -> KeypointTable:
    """A seeded draw (``RANDOMSEED``) of ``TEST.INT8_CALIBRATION_IMAGES`` training rows."""
    try:
        table = load_training_table(cfg)
    except UserError as error:
        raise ConfigError(
            f"TEST.BACKEND {INT8_BACKEND} calibrates on training images once, and those under "
            f"DATASET.ROOT {cfg.DATASET.ROOT} cannot be read ({error}); point DATASET.ROOT at "
            "the training data for the first run, or use TEST.BACKEND onnxruntime"
        ) from error
    count = int(cfg.TEST.INT8_CALIBRATION_IMAGES)
    return table.subset(calibration_indices(len(table.names), count, int(cfg.RANDOMSEED)))


def stacked_inputs(dataset: torch.utils.data.Dataset) -> np.ndarray:
    """Every item's network input (its first element), as one (N, 3, H, W) float32 array."""
    return np.stack([dataset[i][0].numpy() for i in range(len(dataset))]).astype(np.float32)


def calibration_provider(
    cfg: CfgNode, crops: Callable[[KeypointTable], torch.utils.data.Dataset]
) -> Callable[[], np.ndarray]:
    """A calibration-input provider for ``models.backends.load_inference_model``: the network
    inputs of ``crops(calibration_table(cfg))``, read only when it is called."""
    return lambda: stacked_inputs(crops(calibration_table(cfg)))
