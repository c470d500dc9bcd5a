"""Cheaper-FLOP inference, measured (issues 16, 24): bfloat16 and int8 against fp32, for speed
on the leaderboard W48 384x288 models and for accuracy on models trained on a synthetic set.

``python -m benchmarks.precision [--parts speed,accuracy] [--repeats 3] [--out FILE]`` prints
a table and writes JSON (``output/precision.json`` by default); work files go to ``--work``.

- speed: images/s of one batch (``--batch``, 8) through the W48 keypoint forward and the W48
  stage-one forward (random weights with random batch-norm statistics,
  ``models.backends.randomize_weights``) for fp32 onnxruntime, fused fp32, fused + bf16, torch
  + bf16 and onnxruntime-int8 (calibrated on ``--speed-calibration`` synthetic training crops),
  best of ``--repeats`` with the variants interleaved, ratios against fp32 onnxruntime of the
  same run (``benchmarks.probes.measure_row``). The one-off cost of each variant (building,
  folding, ONNX export, quantisation) is reported beside it.
- accuracy: both stages' configs (``--models tiny``, or ``w32``: the W32 256x192 experiment
  files, from random initialisation) trained on a synthetic motion set (``--train`` /
  ``--test`` images at ``--width`` x ``--height``) for ``--epochs``, or until ``--patience``
  epochs bring no lower validation metric (``TRAIN.PATIENCE``), then the chain
  (``stages.chain.run_chain``) with fp32 onnxruntime and each reduced-precision variant in one
  stage at a time (the other fp32): RMSE against the test truth, its change against fp32 and
  the largest coordinate difference of ``result.csv``.
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import os
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks.probes import MemoryProbe, measure_row
from benchmarks.rows import read_result
from common.boxes import keypoint_extent_boxes
from common.cli import bounded_int
from common.config import load_config
from common.io import atomic_write_text
from common.run_dir import output_dir_for
from common.stage_data import load_truth_table
from common.synthetic.motion import generate_motion_dataset
from HRNet_bbox import engine as bbox_engine
from HRNet_bbox.dataset import WholeImageBoxDataset
from HRNet_keypoint import engine as keypoint_engine
from HRNet_keypoint.dataset import BoxDataset
from models.backends import randomize_weights
from models.calibration import stacked_inputs
from models.reduced_precision import cpu_flags
from stages.chain import run_chain
from stages.training import train_from_config

ROOT = Path(__file__).resolve().parents[1]
CPU = torch.device("cpu")
SPEED_CONFIGS = {
    "stage2": ("experiments/keypoint/w48_384x288_adam_lr1e-3_02.yaml", keypoint_engine),
    "stage1": ("experiments/bbox/w48_384x288_adam_lr1e-3_03_origin.yaml", bbox_engine),
}
ACCURACY_CONFIGS = {  # --models: the configs trained for the accuracy part
    "tiny": {"bbox": "experiments/bbox/tiny_cpu_bbox.yaml",
             "keypoint": "experiments/keypoint/tiny_cpu_keypoint.yaml"},
    "w32": {"bbox": "experiments/bbox/w32_256x192_bbox_adam_lr1e-3.yaml",
            "keypoint": "experiments/keypoint/w32_256x192_adam_lr1e-3.yaml"},
}  # fmt: skip
FP32 = "onnxruntime fp32"
VARIANTS = {  # name: (TEST.BACKEND, bfloat16); the first is what the ratios are against
    FP32: ("onnxruntime", False),
    "fused fp32": ("fused", False),
    "fused+bf16": ("fused", True),
    "torch+bf16": ("torch", True),
    "onnxruntime-int8": ("onnxruntime-int8", False),
    "openvino fp32": ("openvino", False),
    "openvino+bf16": ("openvino", True),
    "openvino-int8": ("openvino-int8", False),
}
ACCURACY_VARIANTS = (FP32, "onnxruntime-int8", "fused+bf16", "openvino fp32", "openvino+bf16",
                     "openvino-int8")  # fmt: skip
# Each reduced-precision variant runs in one stage at a time (the other in fp32), so that its
# cost is per stage: stage one's through the chain's RMSE and box IoU, stage two's on true boxes.
STAGES = ("bbox", "keypoint")


def variant_opts(name: str) -> list[str]:
    backend, bf16 = VARIANTS[name]
    return ["TEST.BACKEND", backend, "TEST.PRECISION", "bf16" if bf16 else "fp32"]


def stage_inputs(stage: str, cfg, count: int) -> torch.Tensor:
    """The first ``count`` test images as the stage's test path feeds them (stage two: cropped
    on their true boxes)."""
    truth = load_truth_table(cfg)
    paths = truth.paths[:count]
    if stage == "stage1":
        dataset = WholeImageBoxDataset(cfg, paths, None, is_train=False)
    else:
        dataset = BoxDataset(cfg, paths, keypoint_extent_boxes(truth.keypoints[:count]))
    return torch.from_numpy(stacked_inputs(dataset))


def _forward(model: torch.nn.Module, images: torch.Tensor) -> None:
    with torch.inference_mode():
        model(images)


def speed_rows(stage: str, data_root: Path, work: Path, args: argparse.Namespace,
               probe: MemoryProbe) -> list[dict]:  # fmt: skip
    """One forward batch of the W48 ``stage`` by every variant, interleaved best-of."""
    cfg_path, engine = SPEED_CONFIGS[stage]
    common = ["MODEL.PRETRAINED", "", "DATASET.ROOT", str(data_root), "WORKERS", "0",
              "DATASET.DROP_REFERENCE_ROWS", "False",
              "TEST.INT8_CALIBRATION_IMAGES", str(args.speed_calibration)]  # fmt: skip
    cfg = load_config(ROOT / cfg_path, common)
    folder = work / "speed" / stage
    folder.mkdir(parents=True, exist_ok=True)
    model = randomize_weights(engine.build_model(cfg, is_train=False), seed=1)
    torch.save(model.state_dict(), folder / "model_best.pth")  # a new file: no stale caches
    del model
    images = stage_inputs(stage, cfg, args.batch)
    runs, one_off = {}, {}
    for name in VARIANTS:
        started = time.perf_counter()
        variant_cfg = load_config(ROOT / cfg_path, [*common, *variant_opts(name)])
        model = engine.load_model_for_test(variant_cfg, folder, CPU)
        one_off[name] = time.perf_counter() - started
        runs[name] = functools.partial(_forward, model, images)
        print(f"  {stage}: {name} ready in {one_off[name]:.1f} s", flush=True)
    rows = measure_row(f"{stage}_forward", runs, len(images), args.repeats, probe)
    for row in rows:
        row["one_off_s"] = one_off[row["variant"]]
        print(f"  {stage} {row['variant']:18s} {row['images_per_s']:7.2f} img/s "
              f"x{row['speed_ratio']:.2f}", flush=True)
    return rows


def train_models(data_root: Path, work: Path, args: argparse.Namespace) -> dict[str, Path]:
    """Both stages (``--models``) trained afresh on the synthetic set (``--resume``: on from
    their checkpoints under ``--work``), for ``--epochs`` or until ``--patience`` epochs bring
    no lower validation metric; their run folders."""
    opts = ["OUTPUT_DIR", str(work / "runs"), "LOG_DIR", str(work / "tensorboard"),
            "DATASET.ROOT", str(data_root), "MODEL.PRETRAINED", "",
            "TRAIN.PATIENCE", str(args.patience)]  # fmt: skip
    if args.epochs:
        opts += ["TRAIN.END_EPOCH", str(args.epochs)]
    if args.train_batch:
        opts += ["TRAIN.BATCH_SIZE_PER_GPU", str(args.train_batch)]
    folders = {}
    for stage, cfg_path in ACCURACY_CONFIGS[args.models].items():
        started = time.perf_counter()
        train_from_config(ROOT / cfg_path, opts, overwrite=not args.resume)
        folders[stage] = output_dir_for(load_config(ROOT / cfg_path, opts), cfg_path)
        print(f"  trained {stage} in {time.perf_counter() - started:.0f} s", flush=True)
    return folders


def accuracy_rows(data_root: Path, folders: dict[str, Path], models: str) -> list[dict]:
    """The chain on the test images with each accuracy variant, scored against the truth."""
    logger = logging.getLogger("precision")
    logger.setLevel(logging.WARNING)
    truth_csv = data_root / "test_df.csv"
    rows, coords, coords_gt = [], {}, {}
    runs = [(FP32, "both")] + [(name, stage) for name in ACCURACY_VARIANTS[1:] for stage in STAGES]
    for variant, stage in runs:
        name = f"{variant} | {stage}"
        base = ["DATASET.ROOT", str(data_root)]
        bbox_cfg = load_config(ROOT / ACCURACY_CONFIGS[models]["bbox"], [
            *base, *variant_opts(variant if stage in ("both", "bbox") else FP32)])
        keypoint_cfg = load_config(ROOT / ACCURACY_CONFIGS[models]["keypoint"], [
            *base, *variant_opts(variant if stage in ("both", "keypoint") else FP32)])
        started = time.perf_counter()
        summary = run_chain(bbox_cfg, folders["bbox"], keypoint_cfg, folders["keypoint"], CPU,
                            logger, truth_csv=truth_csv, compare_gt_boxes=True)  # fmt: skip
        seconds = time.perf_counter() - started
        joints = int(keypoint_cfg.MODEL.NUM_JOINTS)
        coords[name] = read_result(folders["keypoint"] / "result.csv", joints)
        coords_gt[name] = read_result(folders["keypoint"] / "result_gt_boxes.csv", joints)
        rows.append({"variant": name, "images": summary["images"], "rmse": summary["rmse"],
                     "rmse_gt_boxes": summary["rmse_gt_boxes"], "box_iou": summary["box_iou"],
                     "mean_pose_rmse": summary["mean_pose_rmse"], "chain_s": seconds})  # fmt: skip
    for row in rows:
        name = row["variant"]
        row["rmse_change"] = row["rmse"] - rows[0]["rmse"]
        row["rmse_gt_boxes_change"] = row["rmse_gt_boxes"] - rows[0]["rmse_gt_boxes"]
        for key, answers in (("result", coords), ("result_gt_boxes", coords_gt)):
            difference = np.abs(answers[name] - answers[rows[0]["variant"]])
            row[f"{key}_max_abs_px"] = float(difference.max())
            row[f"{key}_mean_abs_px"] = float(difference.mean())
    return rows


def print_report(report: dict) -> None:
    settings, machine = report["settings"], report["machine"]
    print(f"\n{machine['threads']} threads; 1-minute load average {machine['load_start']:.1f} "
          f"at the start, {machine['load_end']:.1f} at the end; CPU has "
          f"{', '.join(machine['cpu_features']) or 'neither avx512_vnni nor avx512_bf16'}")
    if report["speed"]:
        print(f"speed: W48 384x288 forward, batch {settings['batch']}, random weights, best of "
              f"{settings['repeats']} interleaved; ratio against {FP32} of this run")
        header = f"{'forward':8s} {'variant':18s} {'img/s':>7s} {'x fp32 ort':>10s} " \
                 f"{'cpu x':>6s} {'one-off s':>9s}"  # fmt: skip
        print(header + "\n" + "-" * len(header))
        for row in report["speed"]:
            print(f"{row['row'].split('_')[0]:8s} {row['variant']:18s} "
                  f"{row['images_per_s']:7.2f} {row['speed_ratio']:10.2f} "
                  f"{row['cpu_ratio']:6.2f} {row['one_off_s']:9.1f}")
    if report["accuracy"]:
        first = report["accuracy"][0]
        print(f"accuracy: {settings['models']} models trained on {settings['train']} synthetic "
              f"images at {settings['width']}x{settings['height']}, chain on {first['images']} "
              f"test images; mean pose in the true boxes {first['mean_pose_rmse']:.2f} px")
        print("stage: where the variant runs (the other stage fp32); chain: boxes from stage one; "
              "true boxes: stage two on the truth's keypoint-extent boxes; d: against fp32")
        columns = f"{'RMSE':>7s} {'dRMSE':>7s} {'mean|d|':>7s} {'max|d|':>7s}"
        header = (f"{'':30s} {'':7s} | {'chain':^31s} | {'true boxes':^31s} |\n"
                  f"{'variant | stage':30s} {'box IoU':>7s} | {columns} | {columns} | "
                  f"{'chain s':>7s}")
        print(header + "\n" + "-" * len(header.splitlines()[-1]))
        for row in report["accuracy"]:
            cells = [f"{row['variant']:30s} {row['box_iou']:7.3f}"]
            for key, rmse in (("result", "rmse"), ("result_gt_boxes", "rmse_gt_boxes")):
                cells.append(f"{row[rmse]:7.3f} {row[rmse + '_change']:+7.3f} "
                             f"{row[key + '_mean_abs_px']:7.3f} {row[key + '_max_abs_px']:7.2f}")
            print(" | ".join([*cells, f"{row['chain_s']:7.1f}"]))
        print("(RMSE and |d| in px of the original images)")


def cpu_features() -> list[str]:
    return [flag for flag in ("avx512_vnni", "avx512_bf16", "amx_bf16") if flag in cpu_flags()]


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", default="speed,accuracy", help="speed, accuracy or both")
    parser.add_argument("--work", default="output/precision", help="data, runs and models")
    parser.add_argument("--out", default="output/precision.json")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--speed-calibration", type=int, default=4,
                        help="synthetic crops the random-weight int8 graphs calibrate on")
    parser.add_argument("--train", type=int, default=120)
    parser.add_argument("--test", type=int, default=30)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=360)
    parser.add_argument("--epochs", type=int, default=0, help="override both END_EPOCHs")
    parser.add_argument("--models", choices=sorted(ACCURACY_CONFIGS), default="tiny",
                        help="the configs the accuracy part trains (w32: 256x192, issue 24)")
    parser.add_argument("--train-batch", type=bounded_int(0), default=0,
                        help="TRAIN.BATCH_SIZE_PER_GPU of both stages (default: the configs'); "
                             "a small training set needs a small batch for enough steps")
    parser.add_argument("--resume", action="store_true",
                        help="continue the runs under --work from their checkpoints (a larger "
                             "--patience or --epochs trains on) instead of training afresh")
    parser.add_argument("--patience", type=int, default=0,
                        help="TRAIN.PATIENCE: stop each stage after this many epochs without a "
                             "lower validation metric (with --epochs as the cap)")
    args = parser.parse_args(argv)
    parts = {part.strip() for part in args.parts.split(",")}
    work = Path(args.work)
    data_root = work / f"data_{args.train}_{args.test}_{args.width}x{args.height}"
    if not (data_root / "train_df.csv").is_file():
        generate_motion_dataset(data_root, args.train, args.test, width=args.width,
                                height=args.height, seed=0, max_frames=2)  # fmt: skip
    load_start = os.getloadavg()[0]
    started = time.perf_counter()
    probe = MemoryProbe(CPU)
    speed = [row for stage in SPEED_CONFIGS if "speed" in parts
             for row in speed_rows(stage, data_root, work, args, probe)]  # fmt: skip
    accuracy = accuracy_rows(data_root, train_models(data_root, work, args), args.models) \
        if "accuracy" in parts else []  # fmt: skip
    report = {
        "settings": {key: getattr(args, key) for key in ("repeats", "batch", "speed_calibration",
                                                         "train", "test", "width", "height",
                                                         "epochs", "models", "patience")},
        "machine": {"threads": torch.get_num_threads(), "load_start": load_start,
                    "load_end": os.getloadavg()[0], "cpu_features": cpu_features()},
        "seconds": time.perf_counter() - started, "speed": speed, "accuracy": accuracy,
    }  # fmt: skip
    print_report(report)
    print(f"whole run {report['seconds']:.0f} s; report: {args.out}")
    atomic_write_text(Path(args.out), json.dumps(report, indent=1))
    return report


if __name__ == "__main__":
    main()
