"""The leaderboard toolkit's table (issue 13): RMSE and seconds of each decoding and test-time
option on one synthetic motion set, and single model against a 3-fold ensemble.

``python benchmarks/leaderboard_table.py [--work DIR] [--train 200] [--test 40] [--epochs 15]
[--out FILE.json] [KEY VALUE ...]``

Trains the tiny keypoint config three ways (plain; with ``MODEL.UDP``; ``--folds 3``), then
predicts the test images on their ground-truth boxes (stage two alone) with each option and
prints a Markdown table; ``--out`` also writes it as JSON. Timings are wall seconds on this
machine, for comparison between rows only.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from _bootstrap import ROOT

from common.boxes import keypoint_extent_boxes
from common.config import load_config
from common.metrics import rmse
from common.run_dir import output_dir_for
from common.stage_data import load_truth_table
from HRNet_keypoint.engine import load_model_for_test, predict_boxes
from HRNet_keypoint.ensemble import ensemble_results
from HRNet_keypoint.tta import predict_boxes_tta
from stages.training import train_from_config

CFG = ROOT / "experiments/keypoint/tiny_cpu_keypoint.yaml"
SCALES = "[0.9, 1.0, 1.1]"


def train(opts: list[str], folds: int = 0) -> tuple[Path, float, dict]:
    """Train as tools/train.py does (stages.training); (run folder, seconds, summary)."""
    start = time.perf_counter()
    summary = train_from_config(CFG, opts, folds=folds)
    return output_dir_for(load_config(CFG, opts), CFG), time.perf_counter() - start, summary


def predict(folders: list[Path], opts: list[str], truth, device) -> tuple[float, float, np.ndarray]:
    """(RMSE, seconds, coordinates) of the heatmap average of ``folders``' models."""
    cfg = load_config(CFG, opts)
    models = [load_model_for_test(cfg, folder, device) for folder in folders]
    boxes = keypoint_extent_boxes(truth.keypoints)
    start = time.perf_counter()
    if len(models) == 1:
        coords = predict_boxes(models[0], cfg, truth.paths, boxes, device, desc="bench")
    else:
        coords, _ = predict_boxes_tta(models, cfg, truth.paths, boxes, device, desc="bench")
    return rmse(coords, truth.keypoints), time.perf_counter() - start, coords


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("output/leaderboard_table"))
    parser.add_argument("--train", type=int, default=200, help="training images")
    parser.add_argument("--test", type=int, default=40, help="test images")
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--out", type=Path, help="write the rows as JSON too")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="KEY VALUE for every run")
    args = parser.parse_args(argv)
    from common.synthetic.motion import generate_motion_dataset

    data = args.work / "data"
    if not (data / "train_df.csv").is_file():
        generate_motion_dataset(data, args.train, args.test, width=320, height=180, seed=0,
                                max_frames=2)  # fmt: skip
    steps = f"[{max(int(args.epochs * 0.8), 1)}, {max(int(args.epochs * 0.93), 2)}]"
    base = ["DATASET.ROOT", str(data), "TRAIN.END_EPOCH", str(args.epochs), "TRAIN.LR_STEP", steps,
            "LOG_DIR", str(args.work / "tb"), *args.opts]  # fmt: skip
    plain_opts = [*base, "OUTPUT_DIR", str(args.work / "plain")]
    udp_opts = [*base, "OUTPUT_DIR", str(args.work / "udp"), "MODEL.UDP", "True"]
    fold_opts = [*base, "OUTPUT_DIR", str(args.work / "folds")]
    plain, plain_s, _ = train(plain_opts)
    udp, udp_s, _ = train(udp_opts)
    folds_dir, folds_s, folds_summary = train(fold_opts, folds=3)
    fold_dirs = [folds_dir / f"fold{k}" for k in range(3)]
    print(f"training seconds: plain {plain_s:.0f}, udp {udp_s:.0f}, 3 folds {folds_s:.0f} "
          f"(out-of-fold rmse {folds_summary['oof_rmse']:.3f})")  # fmt: skip

    truth = load_truth_table(load_config(CFG, plain_opts))
    device = torch.device("cpu")
    rows: list[dict] = []

    def add(name: str, folders: list[Path], opts: list[str], option_opts: list[str]) -> np.ndarray:
        error, seconds, coords = predict(folders, [*opts, *option_opts], truth, device)
        rows.append({"option": name, "rmse": error, "seconds": seconds})
        return coords

    no_flip, flip = ["TEST.FLIP_TEST", "False"], ["TEST.FLIP_TEST", "True"]
    dark, scales = ["TEST.DECODE", "dark"], ["TEST.SCALES", SCALES]
    add("quarter", [plain], plain_opts, no_flip)
    add("dark", [plain], plain_opts, [*no_flip, *dark])
    add("udp + dark", [udp], udp_opts, [*no_flip, *dark])
    add("quarter + flip", [plain], plain_opts, flip)
    add("dark + flip", [plain], plain_opts, [*flip, *dark])
    add("udp + dark + flip", [udp], udp_opts, [*flip, *dark])
    add("quarter + flip + scales", [plain], plain_opts, [*flip, *scales])
    add("dark + flip + scales", [plain], plain_opts, [*flip, *dark, *scales])
    add("udp + dark + flip + scales", [udp], udp_opts, [*flip, *dark, *scales])
    singles = [add(f"fold {k} alone, dark + flip", [folder], fold_opts, [*flip, *dark])
               for k, folder in enumerate(fold_dirs)]  # fmt: skip
    add("3-fold heatmap ensemble, dark + flip", fold_dirs, fold_opts, [*flip, *dark])
    start = time.perf_counter()
    frames = [pd.DataFrame(c.reshape(len(c), -1), index=truth.names) for c in singles]
    mean, _ = ensemble_results(frames)
    rows.append({"option": "3-fold CSV mean of the fold rows above",
                 "rmse": rmse(mean.to_numpy().reshape(singles[0].shape), truth.keypoints),
                 "seconds": sum(r["seconds"] for r in rows[-4:-1])
                 + time.perf_counter() - start})  # fmt: skip

    print(f"\n{len(truth.names)} test images (ground-truth boxes), tiny config, {args.epochs} "
          f"epochs, {args.train} training images\n")  # fmt: skip
    print("| option | RMSE (px) | seconds |\n| --- | --- | --- |")
    for row in rows:
        print(f"| {row['option']} | {row['rmse']:.3f} | {row['seconds']:.2f} |")
    if args.out:
        args.out.write_text(json.dumps({"rows": rows, "train_seconds": {
            "plain": plain_s, "udp": udp_s, "folds": folds_s},
            "oof_rmse": folds_summary["oof_rmse"]}, indent=1))  # fmt: skip
    return rows


if __name__ == "__main__":
    main()
