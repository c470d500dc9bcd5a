"""The GPU run of issue 24, prepared for a machine with one CUDA GPU: W48 384x288 training
images/s by compute mode, the training loader's images/s, and the chain, in under 10 minutes.

``python -m benchmarks.gpu_training [--out output/gpu_training.json]``
``python -m benchmarks.gpu_training --tiny`` (tiny config, a few steps: checks that it runs,
on the CPU too)

Rows, each a median of timed steps after warm-up steps (CUDA synchronised around them):

- ``train fp32``, ``train fp32 channels-last``, ``train AMP bf16``, ``train AMP bf16
  channels-last``, ``train AMP bf16 channels-last compiled`` (``torch.compile``): forward,
  ``JointsMSELoss``, backward and an Adam step of the keypoint model on random inputs and
  targets, batch ``--batch`` (32, the leaderboard config's per-GPU batch).
- ``loader``: the project's stage-two training loader (``benchmarks/loader_speed.py``) on
  synthetic 1920x1080 JPEGs, with the decoded-image cache and without, 1 and all workers:
  what it can feed against what the rows above consume.
- ``chain``: ``tools/pipeline.py`` files -> ``result.csv`` on synthetic test images, the
  models' random weights, ``TEST.BACKEND fused`` on the GPU, seconds per image.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from benchmarks.loader_speed import parse_args as loader_args
from benchmarks.loader_speed import run as run_loader
from benchmarks.rows import ROOT, SIZES
from common.config import load_config
from common.io import atomic_write_text
from common.synthetic.motion import generate_motion_dataset
from HRNet_bbox import engine as bbox_engine
from HRNet_keypoint import engine as keypoint_engine
from HRNet_keypoint.loss import JointsMSELoss
from models.backends import randomize_weights


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def train_images_per_second(cfg, device: torch.device, batch: int, steps: int, *,  # noqa: ANN001
                            bf16: bool, channels_last: bool, compiled: bool) -> float:  # fmt: skip
    """Images per second of training steps in one compute mode (median step)."""
    model = keypoint_engine.build_model(cfg, is_train=False).to(device).train()
    layout = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(memory_format=layout)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    criterion = JointsMSELoss(False)
    width, height = (int(v) for v in cfg.MODEL.IMAGE_SIZE)
    hw, hh = (int(v) for v in cfg.MODEL.HEATMAP_SIZE)
    joints = int(cfg.MODEL.NUM_JOINTS)
    inputs = torch.randn(batch, 3, height, width, device=device).to(memory_format=layout)
    target = torch.rand(batch, joints, hh, hw, device=device)
    weight = torch.ones(batch, joints, 1, device=device)
    step_model = torch.compile(model) if compiled else model

    def step() -> None:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            loss = criterion(step_model(inputs).float(), target, weight)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    times = []
    for index in range(steps + 3):  # three warm-up steps (compilation included)
        _sync(device)
        start = time.perf_counter()
        step()
        _sync(device)
        if index >= 3:
            times.append(time.perf_counter() - start)
    return batch / statistics.median(times)


def chain_seconds_per_image(sizes: tuple[str, str], data: Path, work: Path, images: int) -> float:
    """``tools/pipeline.py`` on ``images`` test images (second of two runs), seconds/image."""
    opts = ["MODEL.PRETRAINED", "", "DATASET.ROOT", str(data), "DATASET.DROP_REFERENCE_ROWS",
            "False", "TEST.BACKEND", "fused"]  # fmt: skip
    folders = []
    for cfg_path, engine, seed in ((sizes[0], bbox_engine, 1), (sizes[1], keypoint_engine, 2)):
        cfg = load_config(ROOT / cfg_path, opts)
        folder = work / Path(cfg_path).stem
        folder.mkdir(parents=True, exist_ok=True)
        model = randomize_weights(engine.build_model(cfg, is_train=False), seed)
        torch.save(model.state_dict(), folder / "model_best.pth")
        folders.append(folder)
    command = [sys.executable, "tools/pipeline.py", "--bbox-cfg", sizes[0], "--bbox-output",
               str(folders[0]), "--keypoint-cfg", sizes[1], "--keypoint-output", str(folders[1]),
               *opts]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    wall = 0.0
    for _ in range(2):  # the first run warms the caches
        start = time.perf_counter()
        subprocess.run(command, cwd=ROOT, env=env, check=True, capture_output=True)
        wall = time.perf_counter() - start
    return wall / images


def run(args: argparse.Namespace) -> dict:
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    size = "tiny" if args.tiny else "w48"
    cfg = load_config(ROOT / SIZES[size][1], ["MODEL.PRETRAINED", ""])
    batch, steps = (2, 2) if args.tiny else (args.batch, args.steps)
    report: dict = {"device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
                    "config": SIZES[size][1], "batch": batch, "rows": {}}  # fmt: skip
    modes = {"train fp32": (False, False, False), "train fp32 channels-last": (False, True, False),
             "train AMP bf16": (True, False, False),
             "train AMP bf16 channels-last": (True, True, False),
             "train AMP bf16 channels-last compiled": (True, True, True)}  # fmt: skip
    if args.tiny:
        del modes["train AMP bf16 channels-last compiled"]  # compiling takes minutes on a CPU
    for name, (bf16, channels_last, compiled) in modes.items():
        rate = train_images_per_second(cfg, device, batch, steps, bf16=bf16,
                                       channels_last=channels_last, compiled=compiled)
        report["rows"][name] = rate
        print(f"{name:40s} {rate:8.1f} img/s", flush=True)
    workers = "1" if args.tiny else f"1,{max(1, (os.cpu_count() or 2) - 1)}"
    loader = ["--cfg", SIZES[size][1], "--images", "3" if args.tiny else "16", "--samples",
              "8" if args.tiny else "256", "--repeats", "1", "--workers", workers]  # fmt: skip
    report["loader"] = run_loader(loader_args(loader))["rows"]
    with tempfile.TemporaryDirectory(prefix="gpu_training_") as folder:
        images = 2 if args.tiny else 16
        data = Path(folder) / "data"
        width, height = (320, 180) if args.tiny else (1920, 1080)
        generate_motion_dataset(data, 2, images, width=width, height=height, seed=0)
        per_image = chain_seconds_per_image(SIZES[size], data, Path(folder), images)
    report["rows"]["chain s/image"] = per_image
    print(f"{'chain (tools/pipeline.py, fused)':40s} {per_image:8.3f} s/image")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out, json.dumps(report, indent=1))
    return report


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--tiny", action="store_true")
    parser.add_argument("--out", type=Path, default=Path("output/gpu_training.json"))
    return parser.parse_args(argv)


if __name__ == "__main__":
    run(parse_args())
