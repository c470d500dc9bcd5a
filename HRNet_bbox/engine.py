"""Stage one end to end: train a whole-image box regressor, validate in original pixels, and write
``test_annotation.pkl`` for stage two. Same four entry points as ``HRNet_keypoint.engine``.

Loss: MSE on the head's targets. 'pooled' targets are normalised corners. 'reference' targets
are input pixels and, as in the reference, both sides are first scaled to original pixels:
x by ``width / INPUT_SIZE`` and y by ``height / INPUT_SIZE`` when ``INPUT_SIZE`` > 0 (the
reference's 288, which weighs x errors 1.78x at 384x288: REFERENCE.md pitfall 2), else by
``width / input width`` and ``height / input height`` (true original pixels).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from tqdm import tqdm
from yacs.config import CfgNode

from common.checkpoint import BEST_NAME
from common.io import read_image
from common.metrics import box_iou, corner_error
from common.motion_data import write_box_annotations
from common.stage_data import (
    KeypointTable,
    dataset_root,
    keypoint_extent_boxes,
    load_truth_table,
    table_boxes,
    test_image_names,
)
from common.trainer import Stage, make_loader
from common.visualize import draw_boxes, write_training_samples
from HRNet_bbox.dataset import WholeImageBoxDataset, sanitize_boxes_xyxy
from HRNet_bbox.model import REFERENCE_HEAD, BoxRegressor, build_box_model
from models.backends import load_inference_model

BOX_FILE_NAME = "test_annotation.pkl"


def build_model(cfg: CfgNode, is_train: bool, logger: logging.Logger | None = None
                ) -> BoxRegressor:
    """HRNet + ``MODEL.BBOX_HEAD``; pretrained backbone layers are loaded only for training."""
    return build_box_model(cfg, is_train=is_train, logger=logger)


def _predict(
    model: BoxRegressor,
    cfg: CfgNode,
    paths: list[Path],
    device: torch.device,
    images: list[np.ndarray] | None = None,
    desc: str = "boxes",
) -> tuple[np.ndarray, np.ndarray]:
    """Clean ``[x, y, w, h]`` boxes (N, 4) in original pixels and image sizes (N, 2) [w, h]."""
    dataset = WholeImageBoxDataset(cfg, paths, None, is_train=False, images=images,
                                   reduced_decode=cfg.TEST.REDUCED_DECODE)  # fmt: skip
    boxes = np.zeros((len(paths), 4), dtype=np.float64)
    sizes = np.zeros((len(paths), 2), dtype=np.int64)
    model.eval()
    with torch.no_grad():
        for inputs, _, meta in tqdm(make_loader(dataset, cfg, train=False), desc=desc, leave=False):
            corners = model.normalized_corners(model(inputs.to(device))).double().cpu().numpy()
            index = meta["index"].numpy()
            size = np.stack([meta["width"].numpy(), meta["height"].numpy()], axis=1)
            bad = np.flatnonzero(~np.isfinite(corners).all(axis=1))
            if len(bad):
                raise ValueError(
                    f"the model predicted a non-finite box for {paths[index[bad[0]]]}: "
                    f"{corners[bad[0]].tolist()} (are the weights broken?)"
                )
            boxes[index] = sanitize_boxes_xyxy(corners * np.tile(size, 2), size)
            sizes[index] = size
    return boxes, sizes


def predict_boxes_xywh(
    model: BoxRegressor,
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


def _loss_weights(cfg: CfgNode, meta: dict) -> torch.Tensor:
    """(N, 4) factors from the 'reference' head's input pixels to (the reference's) original
    pixels; see the module docstring."""
    in_width, in_height = (float(v) for v in cfg.MODEL.IMAGE_SIZE)
    divisor_x = float(cfg.INPUT_SIZE) if cfg.INPUT_SIZE > 0 else in_width
    divisor_y = float(cfg.INPUT_SIZE) if cfg.INPUT_SIZE > 0 else in_height
    x = meta["width"].double() / divisor_x
    y = meta["height"].double() / divisor_y
    return torch.stack([x, y, x, y], dim=1).float()


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
            weights = _loss_weights(cfg, meta).to(device)
            return F.mse_loss(output * weights, target * weights)
        return F.mse_loss(output, target)

    last_pred: dict[str, np.ndarray] = {}

    def validate(net: BoxRegressor, epoch: int) -> dict[str, float]:
        pred = predict_boxes_xywh(net, cfg, val.paths, device)
        last_pred["boxes"] = pred
        scores = _box_scores(pred, val_boxes)
        return {"metric": scores["corner_error"], **scores}

    def draw_samples(net: BoxRegressor, epoch: int, metrics: dict, writer) -> None:
        count = min(cfg.DEBUG.NUM_SAMPLE_IMAGES, len(val.paths))
        pictures = [
            draw_boxes(read_image(val.paths[i]), last_pred["boxes"][i], val_boxes[i])
            for i in range(count)
        ]
        write_training_samples(writer, epoch, pictures)

    return Stage(
        model=model,
        make_train_loader=lambda gen: make_loader(train_set, cfg, train=True, generator=gen),
        train_step=train_step,
        validate=validate,
        metric_name="corner_error",
        after_validation=draw_samples,
    )


class PreparedBoxModel(nn.Module):
    """A box model run by an inference backend, keeping ``normalized_corners`` (the backend
    gives only the head's output)."""

    def __init__(self, runner: nn.Module, cfg: CfgNode) -> None:
        super().__init__()
        self.runner = runner
        self.head_name = cfg.MODEL.BBOX_HEAD
        self.image_size = tuple(int(v) for v in cfg.MODEL.IMAGE_SIZE)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.runner(images)

    normalized_corners = BoxRegressor.normalized_corners


def load_model_for_test(
    cfg: CfgNode, output_dir: Path, device: torch.device
) -> BoxRegressor | PreparedBoxModel:
    """The box model from ``TEST.MODEL_FILE`` or ``<output_dir>/model_best.pth``, strictly
    (never the pretrained file), run by ``TEST.BACKEND`` (models/backends.py)."""
    weights = Path(cfg.TEST.MODEL_FILE) if cfg.TEST.MODEL_FILE else output_dir / BEST_NAME
    runner = load_inference_model(lambda: build_model(cfg, is_train=False), cfg, weights, device)
    return runner if isinstance(runner, BoxRegressor) else PreparedBoxModel(runner, cfg)


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


def run_test(
    cfg: CfgNode,
    output_dir: Path,
    logger: logging.Logger,
    device: torch.device,
    images: list[np.ndarray] | None = None,
) -> Path:
    """Write ``<output_dir>/test_annotation.pkl``: one record {filename, bbox [x, y, w, h],
    width, height, area} per test image, in ``TEST_CSV``'s row order, in plain python types.
    Where ``TRUTH_CSV`` exists the boxes are also scored against its keypoint extents."""
    names = test_image_names(cfg)
    paths = [dataset_root(cfg) / cfg.DATASET.TEST_IMAGE_DIR / name for name in names]
    model = load_model_for_test(cfg, output_dir, device)
    boxes, sizes = _predict(model, cfg, paths, device, images)
    result = write_test_annotation(output_dir, names, boxes, sizes)
    logger.info("wrote %s: %d boxes (head %s)", result, len(names), cfg.MODEL.BBOX_HEAD)
    truth = load_truth_table(cfg)
    if truth is not None and set(names) <= set(truth.names):
        by_name = dict(zip(truth.names, keypoint_extent_boxes(truth.keypoints), strict=True))
        scores = _box_scores(boxes, np.stack([by_name[name] for name in names]))
        logger.info("against %s: mean IoU %.4f, mean corner error %.2f px",
                    cfg.DATASET.TRUTH_CSV, scores["iou"], scores["corner_error"])
    return result
