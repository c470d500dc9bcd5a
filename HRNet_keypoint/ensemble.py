"""Ensembles of several stage-two models: of their ``result.csv`` files, or of their heatmaps.

The CSV form averages coordinates (weighted mean, or the per-coordinate median) and, as the
6th-place solution did, fills an image that one model could not predict (its row missing, or
NaN/empty cells) from the models that did. The heatmap form runs every model on the same crops
and averages their heatmaps before one decoding (``HRNet_keypoint/tta.py``); it needs models of
one input and heatmap size.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from common.config import load_config
from common.errors import ConfigError, MissingFileError
from common.io import atomic_write_text
from common.keypoint_config import config_keypoint_set
from common.motion_data import (
    IMAGE_COLUMN,
    DataFormatError,
    check_predictions,
    write_keypoint_csv,
)
from common.stage_data import test_image_names, test_image_paths
from HRNet_keypoint.engine import load_model_for_test, load_test_boxes
from HRNet_keypoint.tta import predict_boxes_tta

SAME_SHAPE_KEYS = ("MODEL.NUM_JOINTS", "MODEL.IMAGE_SIZE", "MODEL.HEATMAP_SIZE", "MODEL.UDP")


def check_weights(weights: Sequence[float] | None, count: int) -> list[float] | None:
    """The one rule for the weights of both ensembles (result files and run folders): one per
    input, each finite and >= 0, not all 0."""
    if weights is None:
        return None
    if len(weights) != count:
        raise ConfigError(f"--weights: {len(weights)} weights for {count} inputs; give one per "
                          "input, in the order of --inputs")  # fmt: skip
    values = [float(w) for w in weights]
    if not all(math.isfinite(w) and w >= 0 for w in values) or sum(values) <= 0:
        raise ConfigError(f"--weights must be finite numbers >= 0, not all 0, got {values}: "
                          "give e.g. --weights 1 1 (equal) or 2 1")  # fmt: skip
    return values


def read_result(path: str | Path) -> pd.DataFrame:
    """A result CSV indexed by image, coordinates as floats; empty cells become NaN."""
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"result file not found: {path}")
    try:
        frame = pd.read_csv(path, dtype={IMAGE_COLUMN: str})
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as error:
        reason = "the file is empty" if isinstance(error, pd.errors.EmptyDataError) else error
        raise DataFormatError(f"{path}: not a result CSV ({reason}); pass the result.csv that "
                              "tools/test.py wrote") from None  # fmt: skip
    if frame.columns[0] != IMAGE_COLUMN:
        raise DataFormatError(f"{path}: the first column must be '{IMAGE_COLUMN}'")
    if frame.empty:
        raise DataFormatError(f"{path}: no rows (only a header); pass a result with predictions")
    if frame[IMAGE_COLUMN].isna().any():
        row = int(frame[IMAGE_COLUMN].isna().to_numpy().argmax()) + 2
        raise DataFormatError(f"{path}: row {row} has no image name; fix or remove the row")
    duplicated = frame[IMAGE_COLUMN][frame[IMAGE_COLUMN].duplicated()].tolist()
    if duplicated:
        raise DataFormatError(f"{path}: images listed twice, e.g. {duplicated[:3]}")
    frame = frame.set_index(IMAGE_COLUMN)
    for column in frame.columns:
        try:
            frame[column] = pd.to_numeric(frame[column]).astype(np.float64)
        except (ValueError, TypeError) as error:
            raise DataFormatError(f"{path}: column {column!r} is not numeric: {error}") from None
    return frame


def ensemble_results(
    frames: Sequence[pd.DataFrame],
    weights: Sequence[float] | None = None,
    median: bool = False,
) -> tuple[pd.DataFrame, int]:
    """The ensemble of result tables (indexed by image) and how many images were filled.

    Rows: every image of any table, in order of first appearance. Each cell is the weighted
    mean (or, with ``median``, the median) of the models that have a finite value there; an
    image or cell that no model predicted is an error.
    """
    if not frames:
        raise DataFormatError("no result tables to ensemble")
    columns = list(frames[0].columns)
    for number, frame in enumerate(frames[1:], start=2):
        if sorted(frame.columns) != sorted(columns):
            raise DataFormatError(f"input {number} has other columns than input 1")
    weights = check_weights(weights, len(frames))
    if weights is not None and median:
        raise DataFormatError("--median takes no --weights (a median of the models is unweighted)")
    images = list(dict.fromkeys(name for frame in frames for name in frame.index))
    stack = np.stack([frame.reindex(images)[columns].to_numpy(np.float64) for frame in frames])
    present = np.isfinite(stack)
    if not present.any(axis=0).all():
        rows = sorted({images[i] for i in np.nonzero(~present.any(axis=0))[0]})
        raise DataFormatError(
            f"{len(rows)} images have cells that no model predicted, e.g. {rows[:3]}")
    filled = int((~present.all(axis=(0, 2)) & present.any(axis=(0, 2))).sum())
    if median:
        values = np.nanmedian(stack, axis=0)
    else:
        share = np.ones(len(frames)) if weights is None else np.asarray(weights, dtype=np.float64)
        mass = np.where(present, share[:, None, None], 0.0).sum(axis=0)
        if not (mass > 0).all():  # only models of weight 0 predicted these cells
            rows = sorted({images[i] for i in np.nonzero(~(mass > 0).all(axis=1))[0]})
            raise DataFormatError(
                f"{len(rows)} images were predicted only by inputs of weight 0, e.g. "
                f"{rows[:3]}: give those inputs a weight above 0")  # fmt: skip
        weighted = np.where(present, stack, 0.0) * share[:, None, None]
        values = weighted.sum(axis=0) / mass
    result = pd.DataFrame(values, index=pd.Index(images, name=IMAGE_COLUMN), columns=columns)
    return result, filled


def write_result(path: str | Path, frame: pd.DataFrame) -> None:
    """Write an ensemble table (image first, the inputs' columns) atomically; NaN or infinite
    values are refused, never written as empty cells."""
    bad = ~np.isfinite(frame.to_numpy(np.float64)).all(axis=1)
    if bad.any():
        raise DataFormatError(f"{path} not written: {int(bad.sum())} images have NaN or "
                              f"infinite values, e.g. {list(frame.index[bad][:3])}")  # fmt: skip
    atomic_write_text(Path(path), frame.reset_index().to_csv(index=False))


def ensemble_model_folders(
    folders: Sequence[Path],
    opts: Sequence[str],
    out: Path,
    logger: logging.Logger,
    device: torch.device,
    weights: Sequence[float] | None = None,
) -> Path:
    """Heatmap ensemble of trained run folders (each with ``config.yaml`` and
    ``model_best.pth``) on the test images of the first one's config (with ``opts``)."""
    configs = []
    for folder in folders:
        if not (folder / "config.yaml").is_file():
            raise MissingFileError(f"{folder}: no config.yaml; pass trained run folders")
        configs.append(load_config(folder / "config.yaml", list(opts)))
    for key in SAME_SHAPE_KEYS:
        section, name = key.split(".")
        values = [list(v) if isinstance(v := c[section][name], (list, tuple)) else v
                  for c in configs]  # fmt: skip
        if any(v != values[0] for v in values):
            raise ConfigError(f"heatmap ensembles need one {key} for all models, got {values}")
    weights = check_weights(weights, len(folders))
    cfg = configs[0]
    names = test_image_names(cfg)
    paths = test_image_paths(cfg, names)
    boxes = load_test_boxes(cfg, names, paths, logger)
    models = [load_model_for_test(c, f, device) for c, f in zip(configs, folders, strict=True)]
    coords, _ = predict_boxes_tta(models, cfg, paths, boxes, device, model_weights=weights)
    check_predictions(out, names, coords)
    write_keypoint_csv(out, names, coords, config_keypoint_set(cfg).names)
    logger.info("heatmap ensemble of %d models: wrote %s", len(models), out)
    return out
