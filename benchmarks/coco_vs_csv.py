"""The same motion set as CSV and as COCO files trains models that score alike.

One synthetic motion set is converted to COCO person-keypoint files (``tools/convert.py
csv2coco``, images shared); the tiny keypoint config is trained on each version with several
seeds, and every model predicts the same test images on their true boxes through the CSV test
path, so the RMSEs compare directly. The spread over seeds of one version is the noise the
other version's mean must fall within.

``python benchmarks/coco_vs_csv.py [--train 96] [--test 24] [--epochs 6] [--seeds 1 2]``
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import numpy as np
import torch
from _bootstrap import ROOT

from common.config import load_config
from common.metrics import rmse
from common.motion_data import keypoints_array, read_keypoint_csv
from common.run_dir import output_dir_for
from common.stage import run_test
from common.synthetic.motion import generate_motion_dataset
from stages import stage_for
from stages.training import train_from_config

CFG = ROOT / "experiments/keypoint/tiny_cpu_keypoint.yaml"
TRAIN_JSON = "annotations/person_keypoints_train.json"


def convert(data: Path) -> None:
    import convert as convert_tool  # tools/convert.py

    convert_tool.main(["csv2coco", "--csv", str(data / "train_df.csv"),
                       "--images", str(data / "images/train_imgs"),
                       "--out", str(data / TRAIN_JSON)])  # fmt: skip


def train_and_score(data: Path, work: Path, seed: int, coco: bool, epochs: int) -> float:
    """Train one model, then predict the test images on their true boxes; the test RMSE."""
    base = ["DATASET.ROOT", str(data), "RANDOMSEED", str(seed), "TRAIN.END_EPOCH", str(epochs),
            "DEBUG.NUM_SAMPLE_IMAGES", "0"]  # fmt: skip
    train_opts = [*base, "OUTPUT_DIR", str(work / "runs"), "LOG_DIR", str(work / "tb")]
    if coco:
        train_opts += ["DATASET.FORMAT", "coco", "DATASET.TRAIN_JSON", TRAIN_JSON]
    train_from_config(CFG, train_opts, overwrite=True)
    run = output_dir_for(load_config(CFG, train_opts), CFG)
    test_cfg = load_config(CFG, [*base, "TEST.BOX_SOURCE", "truth"])
    result = run_test(stage_for("keypoint"), test_cfg, run, logging.getLogger("bench"),
                      torch.device("cpu"))  # fmt: skip
    pred = read_keypoint_csv(result)
    truth = read_keypoint_csv(data / "test_df.csv").set_index("image").loc[pred["image"]]
    return rmse(keypoints_array(pred), keypoints_array(truth.reset_index()))


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("output/coco_vs_csv"))
    parser.add_argument("--train", type=int, default=96)
    parser.add_argument("--test", type=int, default=24)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args(argv)
    data = args.work / "data"
    if not (data / "train_df.csv").is_file():
        generate_motion_dataset(data, args.train, args.test, width=320, height=180, seed=11)
        convert(data)
    scores: dict[str, list[float]] = {"csv": [], "coco": []}
    for seed in args.seeds:
        for version in scores:
            work = args.work / f"{version}_seed{seed}"
            scores[version].append(train_and_score(data, work, seed, version == "coco",
                                                   args.epochs))  # fmt: skip
            print(f"{version} seed {seed}: test rmse {scores[version][-1]:.3f} px", flush=True)
    summary = {version: {"rmse": values, "mean": float(np.mean(values)),
                         "spread": float(np.ptp(values))} for version, values in scores.items()}
    gap = abs(summary["csv"]["mean"] - summary["coco"]["mean"])
    summary["gap"] = gap
    summary["within_seed_noise"] = gap <= max(summary["csv"]["spread"], summary["coco"]["spread"])
    (args.work / "summary.json").write_text(json.dumps(summary, indent=1))
    print(f"csv mean {summary['csv']['mean']:.3f} px (seed spread {summary['csv']['spread']:.3f}),"
          f" coco mean {summary['coco']['mean']:.3f} px (spread {summary['coco']['spread']:.3f}),"
          f" gap {gap:.3f} px, within seed noise: {summary['within_seed_noise']}")
    return summary


if __name__ == "__main__":
    main()
