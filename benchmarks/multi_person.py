"""The detector's numbers (issue 25) from trained run folders, on a CPU: on a multi-person COCO
set, stage one's bbox AP (each detector given, and the single-box head's), the chain's keypoint
OKS AP on detected boxes beside the AP on true boxes, and the share of images (all, and those
with several people) where the right number of people is found; on a competition layout, the
keypoint RMSE on true boxes, on the single-box head's boxes and on the detector's best box.

``python benchmarks/multi_person.py --coco-data DIR --detector RUN [RUN ...] --keypoint RUN
[--bbox RUN] [--threshold T] [--csv-data DIR --csv-bbox RUN --csv-detector RUN --csv-keypoint
RUN]`` (train the runs first with tools/train.py and the tiny configs; see the README). Each
run is read with the config it was trained with (its ``config.yaml``). Unless ``--threshold``
gives one, the detection threshold (``TEST.IMAGE_THRE``) and the detector's NMS IoU
(``MODEL.DETECTOR.NMS_THRE``) are picked per detector on its own run's validation images
(``splits.json``): those under which the detections alone count the people right on the most
images. The test images are never looked at to pick them.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import numpy as np
from _bootstrap import ROOT
from yacs.config import CfgNode

from common.config import load_config
from common.detection_eval import count_threshold
from common.distributed import default_device
from common.stage_data import load_training_table
from HRNet_bbox.detect_engine import detect, load_detector_for_test
from HRNet_bbox.detection_data import boxes_by_image
from stages.chain import run_chain

DETECT_CFG = ROOT / "experiments/bbox/tiny_cpu_detect.yaml"
BBOX_CFG = ROOT / "experiments/bbox/tiny_cpu_bbox.yaml"
KEYPOINT_CFG = ROOT / "experiments/keypoint/tiny_cpu_keypoint.yaml"
COCO_OPTS = ["DATASET.FORMAT", "coco", "DATASET.TRAIN_JSON",
             "annotations/person_keypoints_train.json", "DATASET.TEST_JSON",
             "annotations/person_keypoints_test.json"]  # fmt: skip
THRESHOLDS = np.round(np.arange(0.05, 0.951, 0.05), 2)
NMS_IOUS = (0.6, 0.5, 0.4)
LOGGER = logging.getLogger("multi_person")


def run_config(run: Path, shipped: Path, opts: list[str]) -> CfgNode:
    """The config a run was trained with (its ``config.yaml``), else the shipped one."""
    saved = run / "config.yaml"
    return load_config(saved if saved.is_file() else shipped, opts)


def validation_settings(cfg: CfgNode, run: Path) -> tuple[float, float, float]:
    """The NMS IoU (``NMS_IOUS``, the higher on a tie) and detection threshold under which the
    detector's boxes count the people right on most of the run's validation images, and that
    share."""
    table = load_training_table(cfg)
    validation = set(json.loads((run / "splits.json").read_text())["val"])
    rows = [i for i, name in enumerate(table.names) if name in validation]
    paths, truth = boxes_by_image(table.subset(rows))
    device = default_device()
    best = (0.0, 0.0, -1.0)
    for nms in NMS_IOUS:
        trial = cfg.clone()
        trial.defrost()
        trial.MODEL.DETECTOR.NMS_THRE = nms
        found = detect(load_detector_for_test(trial, run, device), trial, paths, device)
        threshold, share = count_threshold(truth, found.boxes, found.scores, THRESHOLDS)
        if share > best[2]:
            best = (nms, threshold, share)
    return best


def coco_numbers(data: Path, box_run: Path, keypoint: Path, threshold: float | None) -> dict:
    """The chain with one stage one on the COCO set (a detector at its NMS and threshold)."""
    opts = ["DATASET.ROOT", str(data), *COCO_OPTS]
    box_cfg = run_config(box_run, DETECT_CFG, opts)
    numbers: dict = {"run": str(box_run), "task": box_cfg.TASK}
    if box_cfg.TASK == "detect":
        numbers["detector"] = box_cfg.MODEL.DETECTOR.NAME
        if threshold is None:
            nms, threshold, numbers["val_right_count"] = validation_settings(box_cfg, box_run)
            box_cfg = run_config(box_run, DETECT_CFG, opts + ["MODEL.DETECTOR.NMS_THRE", str(nms)])
        numbers["nms"] = float(box_cfg.MODEL.DETECTOR.NMS_THRE)
    numbers["threshold"] = threshold if threshold is not None else 0.0
    keypoint_cfg = run_config(keypoint, KEYPOINT_CFG,
                              opts + ["TEST.IMAGE_THRE", str(numbers["threshold"])])
    numbers.update(run_chain(box_cfg, box_run, keypoint_cfg, keypoint, default_device(), LOGGER,
                             compare_gt_boxes=True))  # fmt: skip
    return numbers


def csv_numbers(data: Path, bbox: Path, detector: Path, keypoint: Path) -> dict:
    opts = ["DATASET.ROOT", str(data)]
    keypoint_cfg = run_config(keypoint, KEYPOINT_CFG, opts)
    single = run_chain(run_config(bbox, BBOX_CFG, opts), bbox, keypoint_cfg, keypoint,
                       default_device(), LOGGER, data / "test_df.csv", compare_gt_boxes=True)
    top = run_chain(run_config(detector, DETECT_CFG, opts), detector, keypoint_cfg, keypoint,
                    default_device(), LOGGER, data / "test_df.csv")  # fmt: skip
    return {"rmse_true_boxes": single["rmse_gt_boxes"], "rmse_single_box": single["rmse"],
            "rmse_detector_top_box": top["rmse"],
            "ratio_single_box": single["rmse"] / single["rmse_gt_boxes"],
            "ratio_detector_top_box": top["rmse"] / single["rmse_gt_boxes"]}  # fmt: skip


def _print_coco(numbers: dict) -> None:
    name = numbers.get("detector", "single-box head")
    print(f"{name} ({numbers['run']}): bbox AP {numbers['bbox_ap']:.4f}; OKS AP on its boxes "
          f"{numbers['oks_ap']:.4f}, on true boxes {numbers['oks_ap_gt_boxes']:.4f}")
    if "detector" in numbers:
        share = numbers.get("val_right_count")
        picked = (f" (picked on validation, where it counted {100 * share:.1f}% right)"
                  if share is not None else "")  # fmt: skip
        print(f"  NMS IoU {numbers['nms']:.2f}, threshold {numbers['threshold']:.2f}{picked}: "
              f"right number of people on "
              f"{100 * numbers['right_count']:.1f}% of the {numbers['images']} test images, "
              f"{100 * numbers['right_count_multi']:.1f}% of the "
              f"{numbers['multi_person_images']} with several")  # fmt: skip


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--coco-data", type=Path)
    parser.add_argument("--detector", type=Path, nargs="*", default=[],
                        help="TASK detect run(s) on --coco-data")
    parser.add_argument("--bbox", type=Path, help="single-box (TASK bbox) run on --coco-data")
    parser.add_argument("--keypoint", type=Path, help="keypoint run on --coco-data")
    parser.add_argument("--threshold", type=float, default=None,
                        help="TEST.IMAGE_THRE for every detector (default: picked on each "
                             "detector's validation images)")  # fmt: skip
    parser.add_argument("--csv-data", type=Path)
    parser.add_argument("--csv-bbox", type=Path)
    parser.add_argument("--csv-detector", type=Path)
    parser.add_argument("--csv-keypoint", type=Path)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    results: dict = {}
    if args.coco_data:
        runs = [*args.detector, *([args.bbox] if args.bbox else [])]
        results["coco"] = [coco_numbers(args.coco_data, run, args.keypoint, args.threshold)
                           for run in runs]  # fmt: skip
    if args.csv_data:
        results["csv"] = csv_numbers(args.csv_data, args.csv_bbox, args.csv_detector,
                                     args.csv_keypoint)  # fmt: skip
    for numbers in results.get("coco", []):
        _print_coco(numbers)
    if "csv" in results:
        csv = results["csv"]
        print(f"RMSE true boxes {csv['rmse_true_boxes']:.2f} px, single-box head "
              f"{csv['rmse_single_box']:.2f} px ({csv['ratio_single_box']:.2f}x), detector's "
              f"best box {csv['rmse_detector_top_box']:.2f} px "
              f"({csv['ratio_detector_top_box']:.2f}x)")  # fmt: skip
    print(json.dumps(results, indent=1))
    return results


if __name__ == "__main__":
    main()
