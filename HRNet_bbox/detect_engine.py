"""Stage one for every person (TASK detect): train the detector of ``HRNet_bbox.detector``
on all boxes of each image, validate by pycocotools bbox AP, and write COCO detection results.

Training boxes are a COCO file's person boxes (every person of an image, crowds left out) or a
CSV table's keypoint extents (one an image). The loss is the detector's own (torchvision's sum
of classification, box and centre-ness or objectness terms). The validation metric is
``1 - bbox AP`` (lower is better, as the epoch loop expects).

Test outputs (``tools/test.py``): ``detections_<TEST_SET>_results.json``, COCO detection
results for ``TEST.COCO_BBOX_FILE`` (image ids of the COCO test file; for a CSV layout the
1-based rows of ``TEST_CSV``), and ``test_annotation.pkl`` with each image's best box, which
stage two reads as it reads the single-box head's.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from yacs.config import CfgNode

from common.boxes import keypoint_extent_boxes
from common.checkpoint import BEST_NAME
from common.coco import read_coco_json, write_json
from common.detection_eval import bbox_ap, detection_results
from common.errors import ConfigError, MissingFileError
from common.io import atomic_write_text, read_image
from common.keypoint_table import KeypointTable
from common.loaders import make_loader
from common.metrics import box_iou
from common.progress import batch_size, progress
from common.stage import TrainRun, image_stage, train_on_table
from common.stage import run_test as run_stage_test
from common.stage_data import load_truth_table, test_image_names, test_image_paths, truth_by_name
from common.state_dict import load_state_dict_strict
from common.trainer import Stage
from common.visualize import draw_boxes
from HRNet_bbox.detection_data import DetectionDataset, boxes_by_image, targets_of
from HRNet_bbox.detector import PERSON_LABEL, TORCHVISION_DETECTORS, build_detector
from HRNet_bbox.engine import write_test_annotation


@dataclass
class Detections:
    """Per image: boxes [x, y, w, h] (K, 4) in original pixels, best first, and scores (K,)."""

    boxes: list[np.ndarray]
    scores: list[np.ndarray]
    sizes: np.ndarray  # (N, 2) [width, height]

    def top_boxes(self) -> np.ndarray:
        """(N, 4) each image's best box; the whole image where nothing was found."""
        return np.array([b[0] if len(b) else [0.0, 0.0, float(w), float(h)]
                         for b, (w, h) in zip(self.boxes, self.sizes, strict=True)])  # fmt: skip

    def above(self, threshold: float, max_people: int | None = None) -> Detections:
        """Only the boxes scoring at least ``threshold``, at most ``max_people`` an image."""
        counts = [int((s >= threshold).sum()) for s in self.scores]  # scores are sorted
        if max_people is not None:
            counts = [min(n, max_people) for n in counts]
        return Detections([b[:n] for b, n in zip(self.boxes, counts, strict=True)],
                          [s[:n] for s, n in zip(self.scores, counts, strict=True)], self.sizes)


def _to_original(output: dict, scale: float, width: int, height: int) -> tuple[np.ndarray,
                                                                               np.ndarray]:
    """One image's person boxes from letterboxed corners to clipped [x, y, w, h], best first."""
    person = output["labels"] == PERSON_LABEL
    corners = output["boxes"][person].detach().cpu().double().numpy() / scale
    scores = output["scores"][person].detach().cpu().double().numpy()
    corners[:, [0, 2]] = corners[:, [0, 2]].clip(0, width)
    corners[:, [1, 3]] = corners[:, [1, 3]].clip(0, height)
    boxes = np.concatenate([corners[:, :2], corners[:, 2:] - corners[:, :2]], axis=1)
    keep = (boxes[:, 2] >= 1) & (boxes[:, 3] >= 1)
    order = np.argsort(-scores[keep], kind="stable")
    return boxes[keep][order].reshape(-1, 4), scores[keep][order]


def detect(model: nn.Module, cfg: CfgNode, paths: list[Path], device: torch.device,
           images: list[np.ndarray] | None = None, desc: str = "detections") -> Detections:
    """Every person box the model keeps (``MODEL.DETECTOR.SCORE_THRE``, ``MAX_DETECTIONS``) in
    each image; ``images``: BGR decodes to share with stage two."""
    dataset = DetectionDataset(cfg, paths, None, is_train=False, images=images)
    boxes: list[np.ndarray] = [np.zeros((0, 4))] * len(paths)
    scores: list[np.ndarray] = [np.zeros(0)] * len(paths)
    sizes = np.zeros((len(paths), 2), dtype=np.int64)
    model.eval()
    with torch.no_grad():
        for inputs, meta in progress(make_loader(dataset, cfg, train=False), desc, len(dataset),
                                     "images", batch_size):  # fmt: skip
            outputs = model(list(inputs.to(device)))
            for row, output in enumerate(outputs):
                index = int(meta["index"][row])
                width, height = int(meta["width"][row]), int(meta["height"][row])
                boxes[index], scores[index] = _to_original(output, float(meta["scale"][row]),
                                                           width, height)  # fmt: skip
                sizes[index] = (width, height)
    return Detections(boxes, scores, sizes)


def detection_scores(truth: list[np.ndarray], found: Detections) -> dict[str, float]:
    """bbox AP/AR (pycocotools) and the mean IoU of each image's best box with its best
    matching true box."""
    results = detection_results(range(1, len(truth) + 1), found.boxes, found.scores)
    scores = bbox_ap(truth, results)
    top = found.top_boxes()
    scores["top_box_iou"] = float(np.mean([
        box_iou(np.repeat(top[i : i + 1], len(t), 0), t).max() if len(t) else 0.0
        for i, t in enumerate(truth)]))  # fmt: skip
    return scores


def evaluate(cfg: CfgNode, model: nn.Module, table: KeypointTable, device: torch.device
             ) -> dict[str, float]:
    """bbox AP/AR of the model on a table's images (all their boxes)."""
    paths, truth = boxes_by_image(table)
    return detection_scores(truth, detect(model, cfg, paths, device))


def build_stage(cfg: CfgNode, model: nn.Module, train: KeypointTable, val: KeypointTable,
                device: torch.device) -> Stage:  # fmt: skip
    """The detector on the shared epoch loop: torchvision's losses, summed."""
    if not val.paths:
        raise ValueError("the validation split is empty: raise TEST_RATIO or add images")
    paths, boxes = boxes_by_image(train)
    train_set = DetectionDataset(cfg, paths, boxes, is_train=True)
    val_paths, val_boxes = boxes_by_image(val)
    last: dict[str, Detections] = {}

    def train_step(net: nn.Module, batch) -> torch.Tensor:
        inputs, corners, meta = batch
        targets = targets_of(corners.to(device), meta["count"], PERSON_LABEL)
        losses = net(list(inputs.to(device)), targets)
        return sum(losses.values())

    def validate(net: nn.Module, epoch: int) -> dict[str, float]:
        last["found"] = detect(net, cfg, val_paths, device)
        scores = detection_scores(val_boxes, last["found"])
        return {"metric": 1.0 - scores["AP"], **scores}

    def draw_sample(index: int, epoch: int) -> np.ndarray:
        found = last["found"].top_boxes()[index]
        truth = val_boxes[index][0] if len(val_boxes[index]) else None
        return draw_boxes(read_image(val_paths[index]), found, truth)

    return image_stage(cfg, model, train_set, train_step, validate, "1-bboxAP",
                       len(val_paths), draw_sample)  # fmt: skip


def load_detector_for_test(cfg: CfgNode, output_dir: Path | None, device: torch.device
                           ) -> nn.Module:
    """The detector from ``TEST.MODEL_FILE``, else ``<output_dir>/model_best.pth``, else (a
    torchvision builder with ``MODEL.DETECTOR.WEIGHTS``) the COCO-trained weights as they are;
    loaded strictly, in eval mode. Only the 'torch' backend runs detectors ('auto' picks it)."""
    if cfg.TEST.BACKEND not in ("torch", "auto"):
        raise ConfigError(f"TEST.BACKEND {cfg.TEST.BACKEND!r}: the detector (TASK detect) runs "
                          "on the 'torch' backend only; set TEST.BACKEND torch")
    trained = Path(cfg.TEST.MODEL_FILE) if cfg.TEST.MODEL_FILE else None
    if trained is None and output_dir is not None and (output_dir / BEST_NAME).is_file():
        trained = output_dir / BEST_NAME
    if trained is not None:
        model = build_detector(cfg, is_train=False)
        load_state_dict_strict(model, trained)
    elif cfg.MODEL.DETECTOR.NAME in TORCHVISION_DETECTORS and cfg.MODEL.DETECTOR.WEIGHTS:
        model = build_detector(cfg, is_train=True)  # the COCO weights, untouched
    else:
        raise MissingFileError(f"no trained detector: {output_dir}/{BEST_NAME} not found and "
                               "TEST.MODEL_FILE not set; train it (TASK detect) or give "
                               "MODEL.DETECTOR.WEIGHTS for a torchvision builder")
    return model.to(device).eval()


def _test_image_ids(cfg: CfgNode, names: list[str]) -> tuple[list[int], dict | None]:
    """The COCO test file's image ids (and the file), or 1..N for a CSV layout."""
    if cfg.DATASET.FORMAT != "coco":
        return list(range(1, len(names) + 1)), None
    from common.coco_data import split_file

    data = read_coco_json(split_file(cfg)[1])
    ids = {image["file_name"]: image["id"] for image in data["images"]}
    return [ids[name] for name in names], data


def write_detections(cfg: CfgNode, output_dir: Path, names: list[str], found: Detections,
                     logger: logging.Logger) -> Path:  # fmt: skip
    """``detections_<TEST_SET>_results.json`` and ``test_annotation.pkl`` (best boxes); the
    bbox AP where the COCO test file has people, the best box's IoU where TRUTH_CSV exists."""
    image_ids, coco = _test_image_ids(cfg, names)
    category = coco["categories"][0]["id"] if coco else 1
    results = detection_results(image_ids, found.boxes, found.scores, category)
    path = output_dir / f"detections_{cfg.DATASET.TEST_SET}_results.json"
    write_json(path, results)
    box_file = write_test_annotation(output_dir, names, found.top_boxes(), found.sizes)
    logger.info("wrote %s (%d boxes in %d images) and %s (each image's best box)", path,
                len(results), len(names), box_file)  # fmt: skip
    if coco is not None and coco["annotations"]:
        by_id = {image_id: [] for image_id in image_ids}
        for annotation in coco["annotations"]:
            if not annotation.get("iscrowd", 0) and annotation["image_id"] in by_id:
                by_id[annotation["image_id"]].append(annotation["bbox"])
        truth = [np.array(by_id[i], dtype=np.float64).reshape(-1, 4) for i in image_ids]
        scores = detection_scores(truth, found)
        logger.info("bbox AP %.4f, AP50 %.4f, AR100 %.4f against %s", scores["AP"],
                    scores["AP50"], scores["AR100"], cfg.DATASET.TEST_JSON)  # fmt: skip
        atomic_write_text(output_dir / "detection_scores.json", json.dumps(scores, indent=1))
    truth_table = load_truth_table(cfg)
    if truth_table is not None and set(names) <= set(truth_table.names):
        true_boxes = keypoint_extent_boxes(truth_by_name(truth_table, names,
                                                         cfg.DATASET.TRUTH_CSV))  # fmt: skip
        logger.info("best box against %s: mean IoU %.4f", cfg.DATASET.TRUTH_CSV,
                    float(np.mean(box_iou(found.top_boxes(), true_boxes))))  # fmt: skip
    return path


class DetectStage:
    """The detector behind the stage interface (``common.stage.StageTask``)."""

    task = "detect"

    def build_model(self, cfg: CfgNode, is_train: bool,
                    logger: logging.Logger | None = None) -> nn.Module:  # fmt: skip
        return build_detector(cfg, is_train, logger)

    def train(self, cfg: CfgNode, run: TrainRun) -> dict:
        return train_on_table(cfg, run, build_detector, build_stage, evaluate)

    def read_test_inputs(self, cfg: CfgNode, logger: logging.Logger) -> list[str]:
        return test_image_names(cfg)

    def load_for_test(self, cfg: CfgNode, output_dir: Path, device: torch.device) -> nn.Module:
        return load_detector_for_test(cfg, output_dir, device)

    def predict(self, cfg: CfgNode, model: nn.Module, inputs: list[str],
                device: torch.device) -> tuple[list[str], Detections]:  # fmt: skip
        return inputs, detect(model, cfg, test_image_paths(cfg, inputs), device)

    def write_outputs(self, cfg: CfgNode, output_dir: Path,
                      predictions: tuple[list[str], Detections],
                      logger: logging.Logger) -> Path:  # fmt: skip
        return write_detections(cfg, output_dir, *predictions, logger)


DETECT_STAGE = DetectStage()


def run_test(cfg: CfgNode, output_dir: Path, logger: logging.Logger, device: torch.device
             ) -> Path:
    """Write the test images' detections (see the module's docstring)."""
    return run_stage_test(DETECT_STAGE, cfg, output_dir, logger, device)
