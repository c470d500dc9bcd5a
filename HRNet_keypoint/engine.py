"""Stage two end to end: train on keypoint boxes, validate in original pixels, predict a CSV."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm
from yacs.config import CfgNode

from common.checkpoint import BEST_NAME
from common.coco import keypoint_results, write_json
from common.io import read_image
from common.keypoint_config import config_keypoint_set
from common.keypoints import coordinate_columns
from common.metrics import rmse
from common.motion_data import read_box_annotations, write_keypoint_csv
from common.stage_data import (
    KeypointTable,
    dataset_root,
    keypoint_extent_boxes,
    labelled_mask,
    load_truth_table,
    table_boxes,
    test_image_names,
)
from common.trainer import Stage, make_loader
from common.visualize import side_by_side, write_training_samples
from HRNet_keypoint.dataset import BoxDataset, KeypointDataset
from HRNet_keypoint.inference import predict_keypoints
from HRNet_keypoint.loss import JointsMSELoss
from models.backends import load_inference_model
from models.hrnet import build_pose_hrnet


def predict_boxes(
    model: torch.nn.Module,
    cfg: CfgNode,
    paths: list[Path],
    boxes: np.ndarray,
    device: torch.device,
    images: list[np.ndarray] | None = None,
    desc: str = "keypoints",
) -> np.ndarray:
    """Keypoints (N, J, 2) in original pixels for each image's box, by the official path."""
    return predict_boxes_scored(model, cfg, paths, boxes, device, images, desc)[0]


def predict_boxes_scored(
    model: torch.nn.Module,
    cfg: CfgNode,
    paths: list[Path],
    boxes: np.ndarray,
    device: torch.device,
    images: list[np.ndarray] | None = None,
    desc: str = "keypoints",
) -> tuple[np.ndarray, np.ndarray]:
    """``predict_boxes`` with each keypoint's heatmap maximum (N, J) as its score."""
    flip_pairs = config_keypoint_set(cfg).flip_pairs
    dataset = BoxDataset(cfg, paths, boxes, images=images)
    coords = np.zeros((len(paths), cfg.MODEL.NUM_JOINTS, 2), dtype=np.float64)
    scores = np.zeros((len(paths), cfg.MODEL.NUM_JOINTS), dtype=np.float64)
    model.eval()
    with torch.no_grad():
        for inputs, meta in tqdm(make_loader(dataset, cfg, train=False), desc=desc, leave=False):
            pred, maxvals = predict_keypoints(
                model, inputs.to(device), meta["center"].numpy(), meta["scale"].numpy(),
                cfg, flip_pairs,
            )  # fmt: skip
            coords[meta["index"].numpy()] = pred
            scores[meta["index"].numpy()] = np.asarray(maxvals).reshape(len(pred), -1)
    return coords, scores


def build_model(cfg: CfgNode, is_train: bool, logger: logging.Logger | None = None):
    """HRNet with the configured joint count; pretrained layers are loaded only for training."""
    return build_pose_hrnet(cfg, is_train=is_train, logger=logger)


def evaluate(
    cfg: CfgNode, model: torch.nn.Module, table: KeypointTable, device: torch.device
) -> dict[str, float]:
    """RMSE of the model on a held-out table (labelled keypoints), on its boxes."""
    pred = predict_boxes(model, cfg, table.paths, table_boxes(table), device)
    mask = labelled_mask(table)
    return {"rmse": rmse(pred[mask], table.keypoints[mask])}


def build_stage(
    cfg: CfgNode,
    model: torch.nn.Module,
    train: KeypointTable,
    val: KeypointTable,
    device: torch.device,
) -> Stage:
    """Plug stage two into the shared epoch loop; validation is RMSE in original pixels on
    keypoint-extent boxes (as the reference validates)."""
    kp_set = config_keypoint_set(cfg)
    train_set = KeypointDataset(
        cfg, train.paths, train.keypoints, True,
        kp_set.flip_pairs, kp_set.upper_body, kp_set.lower_body,
        reduced_decode=cfg.DATASET.REDUCED_DECODE, boxes=train.boxes,
        visibility=train.visibility,
    )  # fmt: skip
    criterion = JointsMSELoss(cfg.LOSS.USE_TARGET_WEIGHT)
    val_boxes = table_boxes(val)
    val_mask = labelled_mask(val)

    def train_step(net: torch.nn.Module, batch) -> torch.Tensor:
        inputs, target, target_weight, _ = batch
        output = net(inputs.to(device))
        return criterion(output, target.to(device), target_weight.to(device))

    last_pred: dict[str, np.ndarray] = {}

    def validate(net: torch.nn.Module, epoch: int) -> dict[str, float]:
        pred = predict_boxes(net, cfg, val.paths, val_boxes, device, desc=f"epoch {epoch} val")
        last_pred["coords"] = pred
        error = rmse(pred[val_mask], val.keypoints[val_mask])
        return {"metric": error, "rmse": error, "mse": error**2}

    def draw_samples(net: torch.nn.Module, epoch: int, metrics: dict, writer) -> None:
        count = min(cfg.DEBUG.NUM_SAMPLE_IMAGES, len(val.paths))
        pictures = [
            side_by_side(read_image(val.paths[i]), last_pred["coords"][i], val.keypoints[i],
                         val_boxes[i], f"epoch {epoch}  {val.names[i]}",
                         skeleton=kp_set.skeleton)  # fmt: skip
            for i in range(count)
        ]
        write_training_samples(writer, epoch, pictures)

    return Stage(
        model=model,
        make_train_loader=lambda gen: make_loader(train_set, cfg, train=True, generator=gen),
        train_step=train_step,
        validate=validate,
        metric_name="rmse",
        after_validation=draw_samples,
    )


def load_test_boxes(cfg: CfgNode, names: list[str], logger: logging.Logger) -> np.ndarray:
    """Boxes for the test images: stage one's ``BOX_FILE``; with ``TEST.USE_GT_BBOX`` the
    ground-truth keypoint extents of ``TRUTH_CSV`` instead, where that file exists (the real
    competition has none, so the leaderboard config falls back to stage one's boxes)."""
    truth = load_truth_table(cfg) if cfg.TEST.USE_GT_BBOX else None
    if truth is not None:
        by_name = dict(zip(truth.names, keypoint_extent_boxes(truth.keypoints), strict=True))
        missing = [n for n in names if n not in by_name]
        if missing:
            raise ValueError(
                f"{len(missing)} test images have no ground truth in {cfg.DATASET.TRUTH_CSV}, "
                f"e.g. {missing[:3]}"
            )
        logger.info("boxes: ground-truth keypoint extents from %s", cfg.DATASET.TRUTH_CSV)
        return np.stack([by_name[n] for n in names])
    if cfg.TEST.USE_GT_BBOX:
        logger.info("TEST.USE_GT_BBOX: no %s, using stage one's boxes", cfg.DATASET.TRUTH_CSV)
    box_file = dataset_root(cfg) / cfg.DATASET.BOX_FILE
    if not box_file.is_file():
        raise FileNotFoundError(
            f"no box file {box_file}: run stage one first (python tools/test.py --cfg "
            "experiments/bbox/<config>.yaml --output_path DIR) and copy DIR/test_annotation.pkl "
            f"to {box_file}, or run tools/pipeline.py, or set TEST.USE_GT_BBOX True"
        )
    records = read_box_annotations(box_file, expected_filenames=names)
    logger.info("boxes: %s", box_file)
    return np.array([records[n]["bbox"] for n in names], dtype=np.float64)


def load_model_for_test(cfg: CfgNode, output_dir: Path, device: torch.device) -> torch.nn.Module:
    """The stage-two model from ``TEST.MODEL_FILE`` or ``<output_dir>/model_best.pth``, strictly,
    run by ``TEST.BACKEND`` (models/backends.py)."""
    weights = Path(cfg.TEST.MODEL_FILE) if cfg.TEST.MODEL_FILE else output_dir / BEST_NAME
    return load_inference_model(lambda: build_model(cfg, is_train=False), cfg, weights, device)


def run_test(
    cfg: CfgNode,
    output_dir: Path,
    logger: logging.Logger,
    device: torch.device,
    images: list[np.ndarray] | None = None,
) -> Path:
    """Write ``<output_dir>/result.csv`` with the template's columns and row order, and the
    same predictions as ``keypoints_<TEST_SET>_results.json`` (image ids: row numbers from 1,
    as tools/convert.py csv2coco numbers them). A COCO set writes only the JSON."""
    if cfg.DATASET.FORMAT == "coco":
        from HRNet_keypoint.coco_test import run_coco_test

        return run_coco_test(cfg, output_dir, logger, device)
    names = test_image_names(cfg)
    boxes = load_test_boxes(cfg, names, logger)
    paths = [dataset_root(cfg) / cfg.DATASET.TEST_IMAGE_DIR / n for n in names]
    model = load_model_for_test(cfg, output_dir, device)
    coords, scores = predict_boxes_scored(model, cfg, paths, boxes, device, images=images)
    kp_names = config_keypoint_set(cfg).names
    result = output_dir / "result.csv"
    write_keypoint_csv(result, names, coords, kp_names)
    write_json(output_dir / f"keypoints_{cfg.DATASET.TEST_SET}_results.json",
               keypoint_results(range(1, len(names) + 1), coords, scores))
    logger.info(
        "wrote %s: %d images x %d columns (flip test %s)",
        result, len(names), len(coordinate_columns(kp_names)), cfg.TEST.FLIP_TEST,
    )  # fmt: skip
    return result
