"""The detector's numbers (issue 25) from trained run folders, on a CPU: on a multi-person COCO
set, stage one's bbox AP, the chain's keypoint OKS AP on detected boxes beside the AP on true
boxes, and the share of images (all, and those with several people) where the right number of
people is found; on a competition layout, the keypoint RMSE on true boxes, on the single-box
head's boxes and on the detector's best box.

``python benchmarks/multi_person.py --coco-data DIR --detector RUN --keypoint RUN
[--threshold 0.5] [--csv-data DIR --csv-bbox RUN --csv-detector RUN --csv-keypoint RUN]``
(train the runs first with tools/train.py and the tiny configs; see the README).
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from _bootstrap import ROOT

from common.config import load_config
from common.distributed import default_device
from stages.chain import run_chain

DETECT_CFG = ROOT / "experiments/bbox/tiny_cpu_detect.yaml"
BBOX_CFG = ROOT / "experiments/bbox/tiny_cpu_bbox.yaml"
KEYPOINT_CFG = ROOT / "experiments/keypoint/tiny_cpu_keypoint.yaml"
COCO_OPTS = ["DATASET.FORMAT", "coco", "DATASET.TRAIN_JSON",
             "annotations/person_keypoints_train.json", "DATASET.TEST_JSON",
             "annotations/person_keypoints_test.json"]  # fmt: skip


def coco_numbers(data: Path, detector: Path, keypoint: Path, threshold: float) -> dict:
    opts = ["DATASET.ROOT", str(data), *COCO_OPTS, "TEST.IMAGE_THRE", str(threshold)]
    logger = logging.getLogger("multi_person")
    return run_chain(load_config(DETECT_CFG, opts), detector, load_config(KEYPOINT_CFG, opts),
                     keypoint, default_device(), logger, compare_gt_boxes=True)  # fmt: skip


def csv_numbers(data: Path, bbox: Path, detector: Path, keypoint: Path) -> dict:
    opts = ["DATASET.ROOT", str(data)]
    logger = logging.getLogger("multi_person")
    keypoint_cfg = load_config(KEYPOINT_CFG, opts)
    single = run_chain(load_config(BBOX_CFG, opts), bbox, keypoint_cfg, keypoint,
                       default_device(), logger, data / "test_df.csv", compare_gt_boxes=True)
    top = run_chain(load_config(DETECT_CFG, opts), detector, keypoint_cfg, keypoint,
                    default_device(), logger, data / "test_df.csv")  # fmt: skip
    return {"rmse_true_boxes": single["rmse_gt_boxes"], "rmse_single_box": single["rmse"],
            "rmse_detector_top_box": top["rmse"],
            "ratio_single_box": single["rmse"] / single["rmse_gt_boxes"],
            "ratio_detector_top_box": top["rmse"] / single["rmse_gt_boxes"]}  # fmt: skip


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--coco-data", type=Path)
    parser.add_argument("--detector", type=Path, help="TASK detect run on --coco-data")
    parser.add_argument("--keypoint", type=Path, help="keypoint run on --coco-data")
    parser.add_argument("--threshold", type=float, default=0.5, help="TEST.IMAGE_THRE")
    parser.add_argument("--csv-data", type=Path)
    parser.add_argument("--csv-bbox", type=Path)
    parser.add_argument("--csv-detector", type=Path)
    parser.add_argument("--csv-keypoint", type=Path)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    results: dict = {}
    if args.coco_data:
        coco = coco_numbers(args.coco_data, args.detector, args.keypoint, args.threshold)
        results["coco"] = coco
        print(f"bbox AP (detector): {coco['bbox_ap']:.4f}")
        print(f"OKS AP on detected boxes: {coco['oks_ap']:.4f}, on true boxes: "
              f"{coco['oks_ap_gt_boxes']:.4f}")  # fmt: skip
        print(f"right number of people at {args.threshold}: {100 * coco['right_count']:.1f}% "
              f"of images, {100 * coco['right_count_multi']:.1f}% of the "
              f"{coco['multi_person_images']} multi-person ones")  # fmt: skip
    if args.csv_data:
        csv = csv_numbers(args.csv_data, args.csv_bbox, args.csv_detector, args.csv_keypoint)
        results["csv"] = csv
        print(f"RMSE true boxes {csv['rmse_true_boxes']:.2f} px, single-box head "
              f"{csv['rmse_single_box']:.2f} px ({csv['ratio_single_box']:.2f}x), detector's "
              f"best box {csv['rmse_detector_top_box']:.2f} px "
              f"({csv['ratio_detector_top_box']:.2f}x)")  # fmt: skip
    print(json.dumps(results, indent=1))
    return results


if __name__ == "__main__":
    main()
