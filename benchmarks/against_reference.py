"""The project's chain against the reference chain (``benchmarks/reference.py``), side by side:
whole processes, timed in one run, alternating, on the same random weights and images.

Variants, each from image files to ``result.csv``:

- ``reference``: the reference's two processes (stage one, then stage two with the flip test).
- ``plain``: the project's two-step way, ``tools/test.py`` on the box config then on the keypoint
  config, ``TEST.BACKEND torch TEST.PRECISION fp32``: what a user runs to reproduce the
  competition's numerics.
- ``chain_<backend>``: ``tools/pipeline.py`` (one process, one decode per image for both stages)
  with each backend in float32 (``TEST.PRECISION fp32``); ``<backend>:bf16`` runs it with
  ``TEST.PRECISION bf16``; ``default`` sets neither key: the chain a user gets without options
  (``TEST.BACKEND auto``, ``TEST.PRECISION auto``).

All run the leaderboard configs as they are (``WORKERS`` included), with ``TEST.REFERENCE_BOXES
True`` so that stage one writes the boxes as the competition did and the answers can be compared
coordinate by coordinate. The one-off ONNX export and graph optimisation (cached beside the
weights) run once before the timed rounds and are reported apart. Each round runs every variant
once, in a rotated order; the table gives the best and the median round, the children's CPU
seconds, and ratios to the reference measured in the same run.
"""

from __future__ import annotations

import argparse
import os
import pstats
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks.rows import ROOT, SIZES
from common.box_files import read_box_annotations
from common.config import load_config
from common.errors import UserError
from common.keypoints import keypoint_set
from common.motion_data import keypoints_array, read_keypoint_csv
from common.synthetic.motion import generate_motion_dataset
from HRNet_bbox import engine as bbox_engine
from HRNet_keypoint import engine as keypoint_engine
from models.backends import ALL_BACKENDS, randomize_weights

REFERENCE = "reference"
PLAIN = "plain"
DEFAULT = "default"
PYTHON = sys.executable


def _children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _run(commands: list[list[str]], log: Path) -> tuple[float, float]:
    """Wall and CPU seconds of ``commands`` run one after the other; a failure shows its log."""
    cpu, start = _children_cpu_seconds(), time.perf_counter()
    with open(log, "ab") as handle:
        for command in commands:
            done = subprocess.run(command, cwd=ROOT, stdout=handle, stderr=subprocess.STDOUT,
                                  env={**os.environ, "PYTHONPATH": str(ROOT)})  # fmt: skip
            if done.returncode:
                tail = log.read_text(errors="replace")[-3000:]
                raise RuntimeError(f"{' '.join(command)} failed ({done.returncode}):\n{tail}")
    return time.perf_counter() - start, _children_cpu_seconds() - cpu


def _keypoints(path: Path, num_joints: int) -> tuple[list[str], np.ndarray]:
    table = read_keypoint_csv(path, keypoint_set(num_joints)["names"]).sort_values("image")
    return list(table["image"]), keypoints_array(table, keypoint_set(num_joints)["names"])


def _boxes(path: Path) -> np.ndarray:
    records = read_box_annotations(path)
    return np.array([records[name]["bbox"] for name in sorted(records)])


def chain_options(backend: str, precision: str) -> list[str]:
    """The opts of one ``--backends`` entry: ``default`` sets none."""
    if backend == DEFAULT:
        return []
    return ["TEST.BACKEND", backend, "TEST.PRECISION", precision or "fp32"]


class SideBySide:
    """One size: the data, the random weights, the run folders and commands of each variant."""

    def __init__(self, size: str, data: Path, work: Path, backends: list[str]) -> None:
        self.size, self.work = size, work / size
        self.bbox_cfg, self.keypoint_cfg = SIZES[size]
        self.images = data / "images" / "test_imgs"
        opts = ["MODEL.PRETRAINED", "", "DATASET.ROOT", str(data), "DATASET.DROP_REFERENCE_ROWS",
                "False", "TEST.REFERENCE_BOXES", "True"]  # fmt: skip
        plain = ["TEST.BACKEND", "torch", "TEST.PRECISION", "fp32"]
        weights = {}
        for stage, cfg_path, engine, seed in (("bbox", self.bbox_cfg, bbox_engine, 1),
                                              ("keypoint", self.keypoint_cfg, keypoint_engine, 2)):
            cfg = load_config(ROOT / cfg_path, opts)
            model = randomize_weights(engine.build_model(cfg, is_train=False), seed)
            weights[stage] = self.work / f"{stage}.pth"
            weights[stage].parent.mkdir(parents=True, exist_ok=True)
            torch.save(model.state_dict(), weights[stage])
        self.num_joints = int(cfg.MODEL.NUM_JOINTS)
        self.folders: dict[str, tuple[Path, Path]] = {}
        self.commands: dict[str, list[list[str]]] = {}
        ref = self.work / REFERENCE
        ref.mkdir()
        reference = [PYTHON, "-m", "benchmarks.reference"]
        self.folders[REFERENCE] = (ref, ref)
        self.commands[REFERENCE] = [
            [*reference, "box", "--cfg", self.bbox_cfg, "--weights", str(weights["bbox"]),
             "--images", str(self.images), "--out", str(ref / bbox_engine.BOX_FILE_NAME)],
            [*reference, "keypoint", "--cfg", self.keypoint_cfg, "--weights",
             str(weights["keypoint"]), "--images", str(self.images), "--boxes",
             str(ref / bbox_engine.BOX_FILE_NAME), "--out", str(ref / "result.csv")],
        ]  # fmt: skip
        bbox_dir, keypoint_dir = self._run_folders(PLAIN, weights)
        self.commands[PLAIN] = [
            [PYTHON, "tools/test.py", "--cfg", self.bbox_cfg, "--output_path", str(bbox_dir),
             *opts, *plain],
            [PYTHON, "tools/test.py", "--cfg", self.keypoint_cfg, "--output_path",
             str(keypoint_dir), *opts, *plain, "DATASET.BOX_FILE",
             str(bbox_dir / bbox_engine.BOX_FILE_NAME)],
        ]  # fmt: skip
        for spec in backends:
            backend, _, precision = spec.partition(":")
            bbox_dir, keypoint_dir = self._run_folders(f"chain_{spec}", weights)
            self.commands[f"chain_{spec}"] = [[
                PYTHON, "tools/pipeline.py", "--bbox-cfg", self.bbox_cfg, "--bbox-output",
                str(bbox_dir), "--keypoint-cfg", self.keypoint_cfg, "--keypoint-output",
                str(keypoint_dir), *opts, *chain_options(backend, precision)]]  # fmt: skip

    def _run_folders(self, variant: str, weights: dict[str, Path]) -> tuple[Path, Path]:
        folders = []
        for stage in ("bbox", "keypoint"):
            folder = self.work / variant / stage
            folder.mkdir(parents=True)
            shutil.copyfile(weights[stage], folder / "model_best.pth")
            folders.append(folder)
        self.folders[variant] = (folders[0], folders[1])
        return folders[0], folders[1]

    def parity(self) -> dict[str, dict[str, float]]:
        """Largest coordinate difference of each variant's result.csv and boxes to the
        reference's (rows matched by image name)."""
        ref_boxes, ref_keypoints = self.folders[REFERENCE]
        names, truth = _keypoints(ref_keypoints / "result.csv", self.num_joints)
        boxes = _boxes(ref_boxes / bbox_engine.BOX_FILE_NAME)
        out = {}
        for variant, (bbox_dir, keypoint_dir) in self.folders.items():
            if variant == REFERENCE:
                continue
            other_names, coords = _keypoints(keypoint_dir / "result.csv", self.num_joints)
            if other_names != names:
                raise RuntimeError(f"{variant} predicted other images than the reference")
            out[variant] = {
                "result_csv_max_abs_px": float(np.abs(coords - truth).max()),
                "boxes_max_abs_px": float(
                    np.abs(_boxes(bbox_dir / bbox_engine.BOX_FILE_NAME) - boxes).max()),
            }  # fmt: skip
        return out


def _profile(bench: SideBySide, variant: str, folder: Path, top: int) -> list[str]:
    """Run ``variant`` once under cProfile: per process its total, the time spent importing,
    and the project's ``top`` functions by cumulative time (where the rest goes)."""
    lines = []
    for index, command in enumerate(bench.commands[variant]):
        out = folder / f"{bench.size}_{variant}_{index}.prof"
        head = [PYTHON, "-m", "cProfile", "-o", str(out)]
        _run([head + (command[1:] if command[1] != "-m" else command[1:])], folder / "prof.log")
        stats = pstats.Stats(str(out))
        imports = sum(cum for (file, _, name), (_, _, _, cum, _) in stats.stats.items()
                      if name == "_find_and_load" and "importlib" in file)  # fmt: skip
        lines.append(f"{bench.size} {variant} process {index}: {stats.total_tt:.1f} s, "
                     f"imports {imports:.1f} s")  # fmt: skip
        own = [(key, value) for key, value in stats.stats.items()
               if key[0].startswith(str(ROOT)) and ".venv" not in key[0]
               and not key[0].endswith(("_bootstrap.py", "cProfile.py"))]  # fmt: skip
        for (file, line, name), (_, calls, _, cumulative, _) in sorted(
                own, key=lambda item: item[1][3], reverse=True)[:top]:  # fmt: skip
            where = f"{Path(file).relative_to(ROOT)}:{line}({name})"
            lines.append(f"  {cumulative:7.2f} s {calls:6d}x  {where}")
    return lines


def run_against_reference(args: argparse.Namespace) -> dict:
    """Time every variant of every size in alternating rounds; print and return the report."""
    sizes = [s.strip() for s in args.sizes.split(",") if s.strip()]
    if not sizes or any(s not in SIZES for s in sizes):
        raise UserError(f"--sizes must name some of {sorted(SIZES)}, got {args.sizes!r}")
    backends = [b for b in (args.backends or "onnxruntime").split(",") if b]
    for spec in backends:
        backend, _, precision = spec.partition(":")
        if backend not in (*ALL_BACKENDS, DEFAULT) or precision not in ("", "bf16") or \
                (backend == DEFAULT and precision):
            raise UserError(f"--backends: {spec!r} is not a backend: give some of "
                            f"{[*ALL_BACKENDS, DEFAULT]}, each optionally with ':bf16'")
    width, height = args.image_size
    report: dict = {"images": args.images, "image_size": [width, height], "rounds": args.rounds,
                    "threads": torch.get_num_threads(), "cpu_count": os.cpu_count(),
                    "load_average_at_start": list(os.getloadavg()), "sizes": {}}  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="against_reference_") as folder:
        work = Path(folder)
        generate_motion_dataset(work / "data", 2, args.images, width=width, height=height,
                                seed=0)  # fmt: skip
        for size in sizes:
            bench = SideBySide(size, work / "data", work, backends)
            log = bench.work / "runs.log"
            variants = list(bench.commands)
            one_off = {}
            for variant in variants:  # warm-up: page cache, and the ONNX exports, timed apart
                one_off[variant] = _run(bench.commands[variant], log)[0]
            times: dict[str, list[tuple[float, float]]] = {v: [] for v in variants}
            for round_index in range(args.rounds):
                shift = round_index % len(variants)
                for variant in variants[shift:] + variants[:shift]:
                    times[variant].append(_run(bench.commands[variant], log))
            result = {"configs": [bench.bbox_cfg, bench.keypoint_cfg], "warm_up_s": one_off,
                      "parity": bench.parity(), "variants": {}}  # fmt: skip
            best_reference = min(wall for wall, _ in times[REFERENCE])
            print(f"\n{size}: {args.images} images {width}x{height}, {args.rounds} rounds "
                  f"(best / median wall s, CPU s, images/s, reference time / variant time)")
            for variant in variants:
                walls = [wall for wall, _ in times[variant]]
                best = min(walls)
                row = {"best_s": best, "median_s": statistics.median(walls),
                       "cpu_s": min(cpu for _, cpu in times[variant]), "runs_s": walls,
                       "images_per_s": args.images / best,
                       "speed_vs_reference": best_reference / best}  # fmt: skip
                result["variants"][variant] = row
                print(f"  {variant:18s} {best:7.2f} / {row['median_s']:7.2f} s  "
                      f"cpu {row['cpu_s']:7.2f} s  {row['images_per_s']:6.3f} img/s  "
                      f"x{row['speed_vs_reference']:.2f}", flush=True)
            for variant, diff in result["parity"].items():
                print(f"  {variant:18s} result.csv max |diff| {diff['result_csv_max_abs_px']:.4f}"
                      f" px, boxes {diff['boxes_max_abs_px']:.4f} px")
            if args.profile:
                lines = []
                for variant in (REFERENCE, PLAIN, variants[-1]):
                    lines += _profile(bench, variant, bench.work, args.profile)
                result["profile"] = lines
                print("\n".join(lines))
            report["sizes"][size] = result
    report["load_average_at_end"] = list(os.getloadavg())
    return report
