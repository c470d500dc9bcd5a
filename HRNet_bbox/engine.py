"""Stage one end to end: train a whole-image box regressor, validate in original pixels, and write
``test_annotation.pkl`` for stage two. Same four entry points as ``HRNet_keypoint.engine``.

Loss: MSE on the head's targets (``HRNet_bbox.codec``); the 'reference' head's are first scaled
to original pixels by ``codec.loss_weights``, as in the reference.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from yacs.config import CfgNode

from common.box_files import write_box_annotations
from common.boxes import keypoint_extent_boxes
from common.checkpoint import BEST_NAME
from common.io import read_image
from common.keypoint_table import KeypointTable, table_boxes
from common.loaders import make_loader
from common.metrics import box_iou, corner_error
from common.progress import batch_size, progress
from common.stage import TrainRun, image_stage, train_on_table
from common.stage import run_test as run_stage_test
from common.stage_data import load_truth_table, test_image_names, test_image_paths, truth_by_name
from common.trainer import Stage
from common.visualize import draw_boxes
from HRNet_bbox.codec import BoxCodec, loss_weights
from HRNet_bbox.dataset import WholeImageBoxDataset
from HRNet_bbox.model import REFERENCE_HEAD, BoxRegressor, build_box_model
from models.backends import load_inference_model
from models.calibration import calibration_provider

BOX_FILE_NAME = "test_annotation.pkl"


def build_model(cfg: CfgNode, is_train: bool, logger: logging.Logger | None = None
                ) -> BoxRegressor:
    """HRNet + ``MODEL.BBOX_HEAD``; pretrained backbone layers are loaded only for training."""
    return build_box_model(cfg, is_train=is_train, logger=logger)


def _predict(
    model: torch.nn.Module,
    cfg: CfgNode,
    paths: list[Path],
    device: torch.device,
    images: list[np.ndarray] | None = None,
    desc: str = "boxes",
) -> tuple[np.ndarray, np.ndarray]:
    """Clean ``[x, y, w, h]`` boxes (N, 4) in original pixels and image sizes (N, 2) [w, h]."""
    dataset = WholeImageBoxDataset(cfg, paths, None, is_train=False, images=images,
                                   reduced_decode=cfg.TEST.REDUCED_DECODE)  # fmt: skip
    codec = BoxCodec.from_cfg(cfg)
    boxes = np.zeros((len(paths), 4), dtype=np.float64)
    sizes = np.zeros((len(paths), 2), dtype=np.int64)
    model.eval()
    with torch.no_grad():
        batches = make_loader(dataset, cfg, train=False)
        for inputs, _, meta in progress(batches, desc, len(dataset), "images", batch_size):
            index = meta["index"].numpy()
            size = np.stack([meta["width"].numpy(), meta["height"].numpy()], axis=1)
            output = model(inputs.to(device))
            boxes[index] = codec.decode(output, size, [paths[i] for i in index])
            sizes[index] = size
    return boxes, sizes


def predict_boxes_xywh(
    model: torch.nn.Module,
    cfg: CfgNode,
    paths: list[Path],
    device: torch.device,
    images: list[np.ndarray] | None = None,
) -> np.ndarray:
    """One person box [x, y, w, h] (N, 4) per image in its own pixels: corners sorted, clipped
    to the image, at least 1 px wide and high. ``images``: BGR decodes to share with stage two.
    """
    return _predict(model, cfg, paths, device, images)[0]


def _box_scores(pred_xywh: np.ndarray, truth_xywh: np.ndarray) -> dict[str, float]:
    return {
        "iou": float(np.mean(box_iou(pred_xywh, truth_xywh))),
        "corner_error": float(np.mean(corner_error(pred_xywh, truth_xywh))),
    }


def evaluate(
    cfg: CfgNode, model: BoxRegressor, table: KeypointTable, device: torch.device
) -> dict[str, float]:
    """Mean IoU and mean corner error (original pixels) against keypoint-extent boxes."""
    pred = predict_boxes_xywh(model, cfg, table.paths, device)
    return _box_scores(pred, table_boxes(table))


def build_stage(
    cfg: CfgNode,
    model: BoxRegressor,
    train: KeypointTable,
    val: KeypointTable,
    device: torch.device,
) -> Stage:
    """Plug stage one into the shared epoch loop. Boxes are the keypoint extents; validation's
    metric is the mean corner error in original pixels (lower is better), with the mean IoU."""
    if not val.paths:
        raise ValueError("the validation split is empty: raise TEST_RATIO or add images")
    train_set = WholeImageBoxDataset(
        cfg, train.paths, table_boxes(train), is_train=True,
        reduced_decode=cfg.DATASET.REDUCED_DECODE,
    )  # fmt: skip
    val_boxes = table_boxes(val)
    reference_loss = cfg.MODEL.BBOX_HEAD == REFERENCE_HEAD

    def train_step(net: BoxRegressor, batch) -> torch.Tensor:
        inputs, target, meta = batch
        output = net(inputs.to(device))
        target = target.to(device)
        if reference_loss:
            weights = loss_weights(cfg, meta).to(device)
            return F.mse_loss(output * weights, target * weights)
        return F.mse_loss(output, target)

    last_pred: dict[str, np.ndarray] = {}

    def validate(net: BoxRegressor, epoch: int) -> dict[str, float]:
        pred = predict_boxes_xywh(net, cfg, val.paths, device)
        last_pred["boxes"] = pred
        scores = _box_scores(pred, val_boxes)
        return {"metric": scores["corner_error"], **scores}

    def draw_sample(index: int, epoch: int) -> np.ndarray:
        return draw_boxes(read_image(val.paths[index]), last_pred["boxes"][index],
                          val_boxes[index])  # fmt: skip

    return image_stage(cfg, model, train_set, train_step, validate, "corner_error",
                       len(val.paths), draw_sample)  # fmt: skip


def load_model_for_test(cfg: CfgNode, output_dir: Path, device: torch.device) -> torch.nn.Module:
    """The box model from ``TEST.MODEL_FILE`` or ``<output_dir>/model_best.pth``, strictly
    (never the pretrained file), run by ``TEST.BACKEND`` (models/backends.py);
    'onnxruntime-int8' calibrates on whole training images, as the test path reads them."""
    weights = Path(cfg.TEST.MODEL_FILE) if cfg.TEST.MODEL_FILE else output_dir / BEST_NAME
    calibration = calibration_provider(
        cfg, lambda table: WholeImageBoxDataset(cfg, table.paths, None, is_train=False))
    return load_inference_model(lambda: build_model(cfg, is_train=False), cfg, weights, device,
                                calibration)  # fmt: skip


def write_test_annotation(
    output_dir: Path, names: list[str], boxes_xywh: np.ndarray, sizes: np.ndarray
) -> Path:
    """Write ``<output_dir>/test_annotation.pkl`` atomically: one record {filename, bbox
    [x, y, w, h], width, height, area} per image, in the given order, in plain python types."""
    records = [
        {
            "filename": name,
            "bbox": [float(v) for v in box],
            "width": int(size[0]),
            "height": int(size[1]),
            "area": float(box[2] * box[3]),
        }
        for name, box, size in zip(names, boxes_xywh, sizes, strict=True)
    ]
    result = output_dir / BOX_FILE_NAME
    write_box_annotations(result, records)
    return result


@dataclass
class BoxPredictions:
    """Stage one's test predictions: boxes ``[x, y, w, h]`` (N, 4) and image sizes (N, 2)."""

    names: list[str]
    boxes: np.ndarray
    sizes: np.ndarray


class BoxStage:
    """Stage one behind the stage interface (``common.stage.StageTask``)."""

    task = "bbox"

    def build_model(self, cfg: CfgNode, is_train: bool,
                    logger: logging.Logger | None = None) -> BoxRegressor:  # fmt: skip
        return build_model(cfg, is_train, logger)

    def train(self, cfg: CfgNode, run: TrainRun) -> dict:
        return train_on_table(cfg, run, build_model, build_stage, evaluate)

    def read_test_inputs(self, cfg: CfgNode, logger: logging.Logger) -> list[str]:
        """The test images' names, in ``TEST_CSV``'s row order, each checked."""
        return test_image_names(cfg)

    def load_for_test(self, cfg: CfgNode, output_dir: Path, device: torch.device) -> nn.Module:
        return load_model_for_test(cfg, output_dir, device)

    def predict(self, cfg: CfgNode, model: nn.Module, inputs: list[str],
                device: torch.device) -> BoxPredictions:  # fmt: skip
        boxes, sizes = _predict(model, cfg, test_image_paths(cfg, inputs), device)
        return BoxPredictions(inputs, boxes, sizes)

    def write_outputs(self, cfg: CfgNode, output_dir: Path, predictions: BoxPredictions,
                      logger: logging.Logger) -> Path:  # fmt: skip
        """``<output_dir>/test_annotation.pkl``; where ``TRUTH_CSV`` exists the boxes are also
        scored against its keypoint extents."""
        names, boxes = predictions.names, predictions.boxes
        result = write_test_annotation(output_dir, names, boxes, predictions.sizes)
        logger.info("wrote %s: %d boxes (head %s)", result, len(names), cfg.MODEL.BBOX_HEAD)
        truth = load_truth_table(cfg)
        if truth is not None and set(names) <= set(truth.names):
            keypoints = truth_by_name(truth, names, cfg.DATASET.TRUTH_CSV)
            scores = _box_scores(boxes, keypoint_extent_boxes(keypoints))
            logger.info("against %s: mean IoU %.4f, mean corner error %.2f px",
                        cfg.DATASET.TRUTH_CSV, scores["iou"], scores["corner_error"])
        return result


BOX_STAGE = BoxStage()


def run_test(
    cfg: CfgNode, output_dir: Path, logger: logging.Logger, device: torch.device
) -> Path:
    """Write ``<output_dir>/test_annotation.pkl``: one record {filename, bbox [x, y, w, h],
    width, height, area} per test image, in ``TEST_CSV``'s row order, in plain python types."""
    return run_stage_test(BOX_STAGE, cfg, output_dir, logger, device)
