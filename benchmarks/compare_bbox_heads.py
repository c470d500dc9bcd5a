"""Compare stage one's box heads ('reference' vs 'pooled') on a synthetic set, on a CPU.

Each head is trained with the tiny box config for the same epochs (only MODEL.BBOX_HEAD
differs), predicts the test images with ``tools/test.py``, and its ``test_annotation.pkl`` is
scored against the keypoint extents of the test truth: mean IoU, share of IoU >= 0.5 and 0.75,
mean and median corner error in original pixels. A constant box (the mean training box) is
scored too, as the floor any model must beat.

The frames of one take (a subject filmed by 5 cameras, 16 frames each) are nearly alike, so a
small set made of few takes cannot teach a box model to generalise: the set is generated
``--every`` times larger and every ``--every``-th frame is kept (``bench_*.csv`` beside the
generator's CSVs), giving the same number of images from that many more takes.

``python benchmarks/compare_bbox_heads.py [--epochs 20] [--seeds 42 7]``
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from _bootstrap import ROOT

from common.box_files import read_box_annotations
from common.boxes import keypoint_extent_boxes
from common.config import load_config
from common.io import atomic_write_text
from common.keypoints import MOTION_KEYPOINTS
from common.metrics import box_iou, corner_error
from common.motion_data import keypoints_array, read_keypoint_csv, write_keypoint_csv
from common.run_dir import output_dir_for
from common.stage_data import load_training_table, load_truth_table

CONFIG = "experiments/bbox/tiny_cpu_bbox.yaml"
HEADS = ("reference", "pooled")
SUBSET_CSVS = {"TRAIN_CSV": ("train_df.csv", "bench_train_df.csv"),
               "TRUTH_CSV": ("test_df.csv", "bench_test_df.csv"),
               "TEST_CSV": ("sample_submission.csv", "bench_sample_submission.csv")}


def _run(*args: str) -> None:
    subprocess.run([sys.executable, *args], cwd=ROOT, check=True)


def write_subsets(data: Path, every: int) -> list[str]:
    """Every ``every``-th row of the generator's CSVs (sorted by name: whole takes in a row);
    returns the ``DATASET.*_CSV`` overrides that point at them."""
    opts = []
    for key, (source, subset) in SUBSET_CSVS.items():
        frame = read_keypoint_csv(data / source).iloc[::every]
        write_keypoint_csv(data / subset, frame["image"].tolist(), keypoints_array(frame),
                           MOTION_KEYPOINTS)
        opts += [f"DATASET.{key}", subset]
    return opts


def score_boxes(pred_xywh: np.ndarray, truth_xywh: np.ndarray) -> dict[str, float]:
    iou = box_iou(pred_xywh, truth_xywh)
    error = corner_error(pred_xywh, truth_xywh)
    return {
        "iou": float(iou.mean()),
        "iou>=0.5": float((iou >= 0.5).mean()),
        "iou>=0.75": float((iou >= 0.75).mean()),
        "corner_error": float(error.mean()),
        "corner_error_median": float(np.median(error)),
    }


def truth_boxes(cfg) -> tuple[list[str], np.ndarray]:
    truth = load_truth_table(cfg)
    if truth is None:
        raise FileNotFoundError(f"no {cfg.DATASET.TRUTH_CSV} under {cfg.DATASET.ROOT}")
    return truth.names, keypoint_extent_boxes(truth.keypoints)


def score_box_file(box_file: Path, cfg) -> dict[str, float]:
    """Scores of one ``test_annotation.pkl`` against the truth's keypoint extents."""
    names, truth = truth_boxes(cfg)
    records = read_box_annotations(box_file, expected_filenames=names)
    return score_boxes(np.array([records[name]["bbox"] for name in names]), truth)


def score_mean_box(cfg) -> dict[str, float]:
    """The floor: every test image gets the mean training box."""
    names, truth = truth_boxes(cfg)
    mean_box = keypoint_extent_boxes(load_training_table(cfg).keypoints).mean(axis=0)
    return score_boxes(np.tile(mean_box, (len(names), 1)), truth)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="data/synthetic/bbox_heads", help="synthetic set")
    parser.add_argument("--train", type=int, default=300, help="training images used")
    parser.add_argument("--test", type=int, default=160, help="test images used")
    parser.add_argument("--every", type=int, default=4, help="keep every n-th generated frame")
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=360)
    parser.add_argument("--epochs", type=int, default=20, help="TRAIN.END_EPOCH of every run")
    parser.add_argument("--seeds", type=int, nargs="+", default=[42], help="RANDOMSEED values")
    parser.add_argument("--out", default="output/bench_bbox_heads", help="runs and results")
    args = parser.parse_args(argv)
    data, out = Path(args.data), Path(args.out)
    if not (ROOT / data / "test_df.csv").is_file():
        _run("tools/make_synthetic.py", "motion", "--out", str(data),
             "--train", str(args.train * args.every), "--test", str(args.test * args.every),
             "--width", str(args.width), "--height", str(args.height), "--seed", "7")  # fmt: skip
    data_opts = ["DATASET.ROOT", str(data), *write_subsets(ROOT / data, args.every)]

    results = [{"head": "mean box", "seed": "-", "epochs": 0, "train_seconds": 0.0,
                **score_mean_box(load_config(ROOT / CONFIG, data_opts))}]
    print(json.dumps(results[-1]), flush=True)
    for seed in args.seeds:
        for head in HEADS:
            opts = ["OUTPUT_DIR", str(out / f"{head}_seed{seed}"), "LOG_DIR", str(out / "log"),
                    *data_opts, "MODEL.BBOX_HEAD", head,
                    "TRAIN.END_EPOCH", str(args.epochs), "RANDOMSEED", str(seed)]  # fmt: skip
            cfg = load_config(ROOT / CONFIG, opts)
            run_dir = ROOT / output_dir_for(cfg, CONFIG)
            started = time.perf_counter()
            _run("tools/train.py", "--cfg", CONFIG, "--test_option", "False", *opts)
            train_seconds = time.perf_counter() - started
            _run("tools/test.py", "--cfg", CONFIG, "--output_path", str(run_dir), *opts)
            scores = score_box_file(run_dir / "test_annotation.pkl", cfg)
            results.append({"head": head, "seed": seed, "epochs": args.epochs,
                            "train_seconds": round(train_seconds, 1), **scores})  # fmt: skip
            print(json.dumps(results[-1]), flush=True)

    print(f"\n{'head':<10} {'seed':>5} {'IoU':>7} {'>=0.5':>7} {'>=0.75':>7} "
          f"{'corner px':>10} {'median':>8} {'train s':>8}")
    for row in results:
        print(f"{row['head']:<10} {row['seed']:>5} {row['iou']:>7.4f} {row['iou>=0.5']:>7.3f} "
              f"{row['iou>=0.75']:>7.3f} {row['corner_error']:>10.2f} "
              f"{row['corner_error_median']:>8.2f} {row['train_seconds']:>8.0f}")
    summary = {"config": CONFIG, "data": str(data), "every": args.every, "runs": results}
    atomic_write_text(ROOT / out / "results.json", json.dumps(summary, indent=1))
    return summary


if __name__ == "__main__":
    main()
