"""Stage two end to end: train on keypoint boxes, validate in original pixels, predict a CSV."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch
from yacs.config import CfgNode

from common.box_files import read_box_annotations
from common.boxes import keypoint_extent_boxes
from common.checkpoint import BEST_NAME
from common.coco import keypoint_results, write_json
from common.coco_data import coco_test_people
from common.coco_eval import people_oks_ap
from common.errors import ConfigError, MissingFileError
from common.image_cache import cached_decodes
from common.io import image_size, read_image
from common.keypoint_config import config_keypoint_set
from common.keypoint_table import KeypointTable, dataset_root, labelled_mask, table_boxes
from common.keypoints import coordinate_columns
from common.kfold import train_folds
from common.loaders import make_loader
from common.metrics import rmse
from common.motion_data import DataFormatError, check_predictions, write_keypoint_csv
from common.progress import batch_size, progress
from common.stage import TrainRun, image_stage, train_on_table
from common.stage import run_test as run_stage_test
from common.stage_data import load_truth_table, test_image_names, test_image_paths, truth_by_name
from common.trained_with import check_trained_with
from common.trainer import Stage
from common.visualize import side_by_side
from HRNet_keypoint.coco_results import write_coco_results
from HRNet_keypoint.dataset import BoxDataset, KeypointDataset
from HRNet_keypoint.inference import predict_keypoints
from HRNet_keypoint.loss import JointsMSELoss
from HRNet_keypoint.tta import predict_boxes_tta
from models.backends import load_inference_model
from models.calibration import calibration_provider
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
    """Keypoints (N, J, 2) in original pixels for each image's box, by the official path
    (test-time scales other than [1.0]: HRNet_keypoint/tta.py)."""
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
    if [float(f) for f in cfg.TEST.SCALES] != [1.0]:
        return predict_boxes_tta([model], cfg, paths, boxes, device, images, desc)
    flip_pairs = config_keypoint_set(cfg).flip_pairs
    dataset = BoxDataset(cfg, paths, boxes, images=images)
    coords = np.zeros((len(paths), cfg.MODEL.NUM_JOINTS, 2), dtype=np.float64)
    scores = np.zeros((len(paths), cfg.MODEL.NUM_JOINTS), dtype=np.float64)
    model.eval()
    with torch.no_grad():
        batches = make_loader(dataset, cfg, train=False)
        for inputs, meta in progress(batches, desc, len(dataset), "images", batch_size):
            pred, maxvals = predict_keypoints(
                model, inputs.to(device), meta["center"].numpy(), meta["scale"].numpy(),
                cfg, flip_pairs, dataset.codec,
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
    """RMSE of the model on a held-out table (labelled keypoints), on its boxes; a COCO table
    also gets its OKS AP."""
    pred = predict_boxes(model, cfg, table.paths, table_boxes(table), device)
    return table_scores(cfg, pred, table)


def table_scores(cfg: CfgNode, pred: np.ndarray, table: KeypointTable) -> dict[str, float]:
    """RMSE over the labelled keypoints and, for a COCO table, OKS AP with the keypoint set's
    sigmas (``metric``: 1 - AP, lower is better, as the official COCO recipe selects by AP);
    else ``metric`` is the RMSE."""
    mask = labelled_mask(table)
    error = rmse(pred[mask], table.keypoints[mask])
    scores = {"metric": error, "rmse": error, "mse": error**2}
    if table.areas is not None:
        ap = people_oks_ap(pred, table.keypoints, table.visibility, table.boxes, table.areas,
                           table.names, config_keypoint_set(cfg).sigmas)  # fmt: skip
        scores.update(metric=1.0 - ap, oks_ap=ap)
    return scores


def build_stage(
    cfg: CfgNode,
    model: torch.nn.Module,
    train: KeypointTable,
    val: KeypointTable,
    device: torch.device,
) -> Stage:
    """Plug stage two into the shared epoch loop; validation is RMSE in original pixels on
    keypoint-extent boxes (as the reference validates), or on a COCO table OKS AP on the
    people's boxes (logged as ``1-AP``, lower is better)."""
    kp_set = config_keypoint_set(cfg)
    train_set = KeypointDataset(
        cfg, train.paths, train.keypoints, True,
        kp_set.flip_pairs, kp_set.upper_body, kp_set.lower_body,
        images=cached_decodes(train.paths, cfg.DATASET.CACHE_DECODED_MB),
        reduced_decode=cfg.DATASET.REDUCED_DECODE, boxes=train.boxes,
        visibility=train.visibility,
    )  # fmt: skip
    criterion = JointsMSELoss(cfg.LOSS.USE_TARGET_WEIGHT)
    val_boxes = table_boxes(val)

    def train_step(net: torch.nn.Module, batch) -> torch.Tensor:
        inputs, target, target_weight, _ = batch
        output = net(inputs.to(device))
        return criterion(output, target.to(device), target_weight.to(device))

    last_pred: dict[str, np.ndarray] = {}

    def validate(net: torch.nn.Module, epoch: int) -> dict[str, float]:
        pred = predict_boxes(net, cfg, val.paths, val_boxes, device, desc=f"epoch {epoch} val")
        last_pred["coords"] = pred
        return table_scores(cfg, pred, val)

    def draw_sample(index: int, epoch: int) -> np.ndarray:
        return side_by_side(read_image(val.paths[index]), last_pred["coords"][index],
                            val.keypoints[index], val_boxes[index],
                            f"epoch {epoch}  {val.names[index]}",
                            skeleton=kp_set.skeleton)  # fmt: skip

    metric_name = "rmse" if val.areas is None else "1-AP (OKS)"
    return image_stage(cfg, model, train_set, train_step, validate, metric_name, len(val.paths),
                       draw_sample)  # fmt: skip


BOX_SOURCES = ("file", "truth")


def load_test_boxes(
    cfg: CfgNode, names: list[str], paths: list[Path], logger: logging.Logger
) -> np.ndarray:
    """Boxes for the test images from ``TEST.BOX_SOURCE``: ``file``, stage one's
    ``DATASET.BOX_FILE`` (what the competition's ``USE_GT_BBOX: true`` read), or ``truth``, the
    keypoint extents of ``TRUTH_CSV``. A box record whose image size disagrees with the image
    is refused: its box would be in other pixels."""
    source = cfg.TEST.BOX_SOURCE
    if source not in BOX_SOURCES:
        raise ConfigError(f"TEST.BOX_SOURCE must be one of {list(BOX_SOURCES)}, got {source!r}")
    if source == "truth":
        truth = load_truth_table(cfg)
        if truth is None:
            raise MissingFileError(
                f"TEST.BOX_SOURCE truth: no {dataset_root(cfg) / cfg.DATASET.TRUTH_CSV}; use "
                "TEST.BOX_SOURCE file (stage one's boxes) on a set without ground truth"
            )
        keypoints = truth_by_name(truth, names, cfg.DATASET.TRUTH_CSV)
        logger.info("boxes (TEST.BOX_SOURCE truth): ground-truth keypoint extents of %s",
                    cfg.DATASET.TRUTH_CSV)  # fmt: skip
        return keypoint_extent_boxes(keypoints)
    box_file = dataset_root(cfg) / cfg.DATASET.BOX_FILE
    if not box_file.is_file():
        raise MissingFileError(
            f"no box file {box_file}: run stage one first (python tools/test.py --cfg "
            "experiments/bbox/<config>.yaml --output_path DIR) and copy DIR/test_annotation.pkl "
            f"to {box_file}, or run tools/pipeline.py, or set TEST.BOX_SOURCE truth"
        )
    records = read_box_annotations(box_file, expected_filenames=names)
    _check_record_sizes(box_file, records, names, paths)
    logger.info("boxes (TEST.BOX_SOURCE file): %s", box_file)
    return np.array([records[n]["bbox"] for n in names], dtype=np.float64)


def _check_record_sizes(
    box_file: Path, records: dict, names: list[str], paths: list[Path]
) -> None:
    wrong = []
    for name, path in zip(names, paths, strict=True):
        record = records[name]
        width, height = image_size(path)
        if (float(record["width"]), float(record["height"])) != (width, height):
            wrong.append(f"{name}: record {record['width']}x{record['height']}, "
                         f"image {width}x{height}")  # fmt: skip
    if wrong:
        raise DataFormatError(
            f"{box_file}: {len(wrong)} box records give another image size than the image "
            f"(the boxes are in other pixels): {'; '.join(wrong[:5])}; write the box file "
            "again with stage one on these images"
        )


def load_model_for_test(cfg: CfgNode, output_dir: Path, device: torch.device) -> torch.nn.Module:
    """The stage-two model from ``TEST.MODEL_FILE`` or ``<output_dir>/model_best.pth``, strictly,
    run by ``TEST.BACKEND`` (models/backends.py), refused when ``MODEL.UDP`` differs from the
    ``config.yaml`` beside it (common/trained_with.py); 'onnxruntime-int8' calibrates on training
    images cropped on their boxes, as the test path crops."""
    weights = Path(cfg.TEST.MODEL_FILE) if cfg.TEST.MODEL_FILE else output_dir / BEST_NAME
    check_trained_with(cfg, weights)
    calibration = calibration_provider(
        cfg, lambda table: BoxDataset(cfg, table.paths, table_boxes(table)))
    return load_inference_model(lambda: build_model(cfg, is_train=False), cfg, weights, device,
                                calibration)  # fmt: skip


@dataclass
class KeypointTestInputs:
    """The test images' names in ``TEST_CSV``'s row order and their boxes (N, 4)."""

    names: list[str]
    boxes: np.ndarray


@dataclass
class KeypointPredictions:
    """Stage two's test predictions: keypoints (N, J, 2) in original pixels and their scores
    (N, J), the heatmap maxima."""

    names: list[str]
    coords: np.ndarray
    scores: np.ndarray


@dataclass
class CocoTestInputs:
    """The people of a COCO test set (``common.coco_data.coco_test_people``)."""

    people: Any


@dataclass
class CocoPredictions:
    people: Any
    coords: np.ndarray
    scores: np.ndarray


class KeypointStage:
    """Stage two behind the stage interface (``common.stage.StageTask``)."""

    task = "keypoint"

    def build_model(self, cfg: CfgNode, is_train: bool,
                    logger: logging.Logger | None = None) -> torch.nn.Module:  # fmt: skip
        return build_model(cfg, is_train, logger)

    def train(self, cfg: CfgNode, run: TrainRun) -> dict:
        if run.folds:
            functions = SimpleNamespace(build_model=build_model, build_stage=build_stage,
                                        predict_boxes=predict_boxes,
                                        table_scores=table_scores)  # fmt: skip
            return train_folds(cfg, functions, run)
        return train_on_table(cfg, run, build_model, build_stage, evaluate)

    def read_test_inputs(self, cfg: CfgNode,
                         logger: logging.Logger) -> KeypointTestInputs | CocoTestInputs:
        if cfg.DATASET.FORMAT == "coco":
            return CocoTestInputs(coco_test_people(cfg, logger))
        names = test_image_names(cfg)
        paths = test_image_paths(cfg, names)
        return KeypointTestInputs(names, load_test_boxes(cfg, names, paths, logger))

    def load_for_test(self, cfg: CfgNode, output_dir: Path,
                      device: torch.device) -> torch.nn.Module:  # fmt: skip
        return load_model_for_test(cfg, output_dir, device)

    def predict(self, cfg: CfgNode, model: torch.nn.Module,
                inputs: KeypointTestInputs | CocoTestInputs,
                device: torch.device) -> KeypointPredictions | CocoPredictions:  # fmt: skip
        if isinstance(inputs, CocoTestInputs):
            people = inputs.people
            paths = test_image_paths(cfg, people.file_names)
            return CocoPredictions(people, *predict_boxes_scored(model, cfg, paths, people.boxes,
                                                                 device))  # fmt: skip
        paths = test_image_paths(cfg, inputs.names)
        return KeypointPredictions(inputs.names,
                                   *predict_boxes_scored(model, cfg, paths, inputs.boxes, device))

    def write_outputs(self, cfg: CfgNode, output_dir: Path,
                      predictions: KeypointPredictions | CocoPredictions,
                      logger: logging.Logger) -> Path:  # fmt: skip
        """``<output_dir>/result.csv`` with the template's columns and row order, and the same
        predictions as ``keypoints_<TEST_SET>_results.json`` (image ids: row numbers from 1, as
        tools/convert.py csv2coco numbers them). A COCO set writes only the JSON."""
        if isinstance(predictions, CocoPredictions):
            return write_coco_results(cfg, output_dir, predictions.people, predictions.coords,
                                      predictions.scores, logger)  # fmt: skip
        kp_names = config_keypoint_set(cfg).names
        result = output_dir / "result.csv"
        check_predictions(result, predictions.names, predictions.coords)
        write_keypoint_csv(result, predictions.names, predictions.coords, kp_names)
        write_json(output_dir / f"keypoints_{cfg.DATASET.TEST_SET}_results.json",
                   keypoint_results(range(1, len(predictions.names) + 1), predictions.coords,
                                    predictions.scores))  # fmt: skip
        logger.info(
            "wrote %s: %d images x %d columns (flip test %s, boxes: TEST.BOX_SOURCE %s)",
            result, len(predictions.names), len(coordinate_columns(kp_names)),
            cfg.TEST.FLIP_TEST, cfg.TEST.BOX_SOURCE,
        )  # fmt: skip
        return result


KEYPOINT_STAGE = KeypointStage()


def run_test(
    cfg: CfgNode, output_dir: Path, logger: logging.Logger, device: torch.device
) -> Path:
    """Write ``<output_dir>/result.csv`` with the template's columns and row order."""
    return run_stage_test(KEYPOINT_STAGE, cfg, output_dir, logger, device)
