"""Where the test-time and training time goes, and what each optimisation buys, in one run.

``python tools/benchmark.py [--sizes w32,w48] [--images 8] [--repeats 2] [--out benchmark.json]``
``python tools/benchmark.py --quick`` (tiny configs and images: seconds; used by the tests)

On the machine at hand (CUDA when present, else the CPU) and for each size (the W32 256x192 and
the leaderboard W48 384x288 box + keypoint configs, random weights with random batch-norm
statistics, synthetic 1920x1080 JPEGs in a temporary folder), it measures images per second and
peak memory of:

- ``loader_stage1``: JPEG decode + resize to stage one's input. Optimised: the decoder's reduced
  output (``read_image(path, reduce)``, the largest 1/2^k that still covers the input).
- ``loader_both_stages``: decode, stage-one resize and stage-two person crop. Plain: each stage
  decodes the image itself; optimised: one decode shared by both stages.
- ``train_loader_stage1``, ``train_loader_stage2``: one pass of each stage's training
  DataLoader (augmentation and targets included). Plain: whole decodes, ``WORKERS 0``;
  optimised: ``DATASET.REDUCED_DECODE``, then also two worker processes.
- ``stage1_forward``, ``stage2_forward``, ``stage2_forward_flip``: one test batch through the box
  model and the keypoint model (without and with flip test), by ``TEST.BACKEND``.
- ``chain``: files to ``result.csv``. Plain: the two-step way (box ``run_test``, then keypoint
  ``run_test``: each decodes every image; backend 'torch'). Optimised: ``tools/pipeline.py``'s
  ``run_chain`` (one decode per image for both stages) with backend 'fused' or 'onnxruntime'.
  Both write ``result.csv``; their largest coordinate difference is reported. Model loading is
  included; the one-off ONNX export and graph optimisation are timed separately (both are
  cached beside the weights).
- ``train_step``: forward, backward and Adam step of the keypoint model. Optimised:
  channels-last (and bf16 autocast on CUDA).

Both paths load data in the main process (``WORKERS 0``). Each figure is the best of
``--repeats`` runs, variants interleaved (the first run is the warm-up); ratios are to the plain
variant of the same row in the same run: wall time (``x plain``) and process CPU time over all
threads (``cpu x``, less sensitive to other processes sharing the cores). Peak memory is the
peak above the memory in use when the measurement starts: CUDA ``max_memory_allocated``; CPU the
process's peak RSS, reset before each measurement through ``/proc/self/clear_refs`` after
glibc's ``malloc_trim`` (Linux; approximate: onnxruntime's arena counts only when it grows).
FLOPs are counted by ``torch.utils.flop_counter`` (a multiply-add is 2 FLOPs); the peak they
are compared with is the best float32 N x N matmul (torch and, on the CPU, numpy) of several
measured during the run.
"""

from __future__ import annotations

import argparse
import copy
import ctypes
import json
import logging
import math
import os
import platform
import resource
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import _bootstrap  # noqa: F401
import numpy as np
import torch
from pipeline import run_chain
from torch.utils.flop_counter import FlopCounterMode
from yacs.config import CfgNode

from common.config import load_config
from common.io import atomic_write_text, read_image, reduce_factor
from common.keypoints import keypoint_set
from common.motion_data import keypoints_array, read_box_annotations, read_keypoint_csv
from common.stage_data import keypoint_extent_boxes, load_truth_table, test_image_names
from common.synthetic.motion import generate_motion_dataset
from common.trainer import make_loader
from HRNet_bbox import engine as bbox_engine
from HRNet_bbox.dataset import WholeImageBoxDataset
from HRNet_keypoint import engine as keypoint_engine
from HRNet_keypoint.dataset import BoxDataset, KeypointDataset
from HRNet_keypoint.inference import predict_heatmaps
from HRNet_keypoint.loss import JointsMSELoss
from models.backends import prepare_inference_model, randomize_weights

SIZES = {
    "w32": ("experiments/bbox/w32_256x192_adam_lr1e-3.yaml",
            "experiments/keypoint/w32_256x192_adam_lr1e-3.yaml"),
    "w48": ("experiments/bbox/w48_384x288_adam_lr1e-3_03_origin.yaml",
            "experiments/keypoint/w48_384x288_adam_lr1e-3_02.yaml"),
    "tiny": ("experiments/bbox/tiny_cpu_bbox.yaml",
             "experiments/keypoint/tiny_cpu_keypoint.yaml"),
}  # fmt: skip
ROOT = Path(__file__).resolve().parents[1]
PLAIN = "plain"
MIB = 2.0**20
TRAIN_LOADER_SAMPLES = 64


class MemoryProbe:
    """Peak memory of one measurement above the memory in use when it starts."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.resettable = Path("/proc/self/status").is_file() and os.access(
            "/proc/self/clear_refs", os.W_OK)  # fmt: skip
        self.method = ("torch.cuda.max_memory_allocated" if device.type == "cuda" else
                       "peak RSS (VmHWM, reset per measurement)" if self.resettable else
                       "getrusage ru_maxrss (process lifetime maximum)")  # fmt: skip
        self.base = 0.0
        libc = ctypes.CDLL(None) if device.type == "cpu" else None
        # glibc keeps freed memory for reuse, which hides later peaks; trim it first.
        self.trim = getattr(libc, "malloc_trim", None)

    @staticmethod
    def _status_kib(field: str) -> float:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return float(line.split()[1])
        raise RuntimeError(f"/proc/self/status has no {field}")

    def start(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self.base = torch.cuda.memory_allocated() / MIB
        elif self.resettable:
            if self.trim is not None:
                self.trim(0)
            Path("/proc/self/clear_refs").write_text("5")
            self.base = self._status_kib("VmRSS") / 1024
        else:
            self.base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    def peak_mib(self) -> float:
        if self.device.type == "cuda":
            return torch.cuda.max_memory_allocated() / MIB - self.base
        if self.resettable:
            return self._status_kib("VmHWM") / 1024 - self.base
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - self.base


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def measure_row(
    name: str,
    variants: dict[str, Callable[[], object]],
    images: int,
    repeats: int,
    probe: MemoryProbe,
) -> list[dict]:
    """Time each variant ``repeats`` times, interleaved; the first variant is the plain one."""
    seconds = {key: math.inf for key in variants}
    cpu_seconds = {key: math.inf for key in variants}
    peaks = {key: 0.0 for key in variants}
    for _ in range(repeats):
        for key, run in variants.items():
            probe.start()
            start, cpu_start = time.perf_counter(), time.process_time()
            run()
            synchronize(probe.device)
            seconds[key] = min(seconds[key], time.perf_counter() - start)
            cpu_seconds[key] = min(cpu_seconds[key], time.process_time() - cpu_start)
            peaks[key] = max(peaks[key], probe.peak_mib())
    plain = next(iter(variants))
    rows = []
    for key in variants:
        row = {"row": name, "variant": key, "images": images, "seconds": seconds[key],
               "images_per_s": images / seconds[key], "peak_mib": peaks[key],
               "speed_ratio": seconds[plain] / seconds[key], "cpu_seconds": cpu_seconds[key],
               "cpu_ratio": cpu_seconds[plain] / max(cpu_seconds[key], 1e-9),
               "memory_ratio": peaks[key] / peaks[plain] if peaks[plain] > 0 else None}  # fmt: skip
        rows.append(row)
    return rows


def matmul_peak_gflops(size: int, device: torch.device) -> float:
    """Best of three float32 ``size`` x ``size`` matmuls, in GFLOP/s (the assumed peak); on the
    CPU by torch (MKL) and by numpy (its own BLAS), whichever is faster."""
    a = torch.randn(size, size, device=device)
    b = torch.randn(size, size, device=device)
    pairs = [(a, b)] + ([(a.numpy(), b.numpy())] if device.type == "cpu" else [])
    best = math.inf
    for left, right in pairs:
        left @ right
        for _ in range(3):
            synchronize(device)
            start = time.perf_counter()
            left @ right
            synchronize(device)
            best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best / 1e9


def forward_gflop(model: torch.nn.Module, input_shape: tuple[int, ...]) -> float:
    """GFLOP of one image's forward pass (a multiply-add counts 2)."""
    with FlopCounterMode(display=False) as counter, torch.inference_mode():
        model(torch.zeros((1, *input_shape[1:]), device=next(model.parameters()).device))
    return counter.get_total_flops() / 1e9


def read_result(path: Path, num_joints: int) -> np.ndarray:
    names = keypoint_set(num_joints)["names"]
    return keypoints_array(read_keypoint_csv(path, names), names)


def read_boxes(path: Path) -> np.ndarray:
    records = read_box_annotations(path)
    return np.array([records[name]["bbox"] for name in sorted(records)])


class SizeBench:
    """All rows of one size: configs, random models saved as ``model_best.pth``, inputs."""

    def __init__(self, size: str, data_root: Path, work: Path, args: argparse.Namespace,
                 device: torch.device, probe: MemoryProbe) -> None:  # fmt: skip
        self.size, self.args, self.device, self.probe = size, args, device, probe
        self.work = work / size
        self.bbox_path, self.keypoint_path = SIZES[size]
        self.common = [
            "MODEL.PRETRAINED", "", "DATASET.ROOT", str(data_root), "WORKERS", "0",
            "DATASET.DROP_REFERENCE_ROWS", "False", "TEST.USE_GT_BBOX", "False",
        ]  # fmt: skip
        self.bbox_cfg = self.config(self.bbox_path, "torch")
        self.keypoint_cfg = self.config(self.keypoint_path, "torch")
        self.weights = {}
        self.models = {}
        for stage, cfg, engine, seed in (("bbox", self.bbox_cfg, bbox_engine, 1),
                                         ("keypoint", self.keypoint_cfg, keypoint_engine, 2)):
            model = randomize_weights(engine.build_model(cfg, is_train=False), seed)
            path = self.work / stage / "model_best.pth"
            path.parent.mkdir(parents=True, exist_ok=True)
            torch.save(model.state_dict(), path)
            self.weights[stage] = path
            self.models[stage] = model.to(device).eval()
        names = test_image_names(self.keypoint_cfg)[: args.images]
        root = Path(data_root) / self.keypoint_cfg.DATASET.TEST_IMAGE_DIR
        self.paths = [root / name for name in names]
        truth = load_truth_table(self.keypoint_cfg)
        by_name = dict(zip(truth.names, truth.keypoints, strict=True))
        self.person_keypoints = np.stack([by_name[name] for name in names])
        self.person_boxes = keypoint_extent_boxes(self.person_keypoints)
        self.num_joints = int(self.keypoint_cfg.MODEL.NUM_JOINTS)

    def config(self, path: str, backend: str, extra: list[str] | None = None) -> CfgNode:
        return load_config(ROOT / path, [*self.common, "TEST.BACKEND", backend, *(extra or [])])

    def measure(self, name: str, variants: dict[str, Callable[[], object]],
                images: int) -> list[dict]:  # fmt: skip
        rows = measure_row(name, variants, images, self.args.repeats, self.probe)
        for row in rows:
            print(f"  {self.size:5s} {name:20s} {row['variant']:15s} "
                  f"{row['images_per_s']:9.2f} img/s  x{row['speed_ratio']:.2f}", flush=True)
        return rows

    # ------------------------------------------------------------------ loaders
    def loader_rows(self) -> list[dict]:
        cfg, kcfg, paths = self.bbox_cfg, self.keypoint_cfg, self.paths
        image_wh = read_image(paths[0]).shape[1::-1]
        reduce = reduce_factor(image_wh, tuple(int(v) for v in cfg.MODEL.IMAGE_SIZE))

        def stage_one(images: list[np.ndarray] | None) -> None:
            dataset = WholeImageBoxDataset(cfg, paths, None, is_train=False, images=images)
            for index in range(len(dataset)):
                dataset[index]

        def stage_two(images: list[np.ndarray] | None) -> None:
            dataset = BoxDataset(kcfg, paths, self.person_boxes, images=images)
            for index in range(len(dataset)):
                dataset[index]

        def shared() -> None:
            images = [read_image(path) for path in paths]
            stage_one(images)
            stage_two(images)

        rows = self.measure("loader_stage1", {
            PLAIN: lambda: stage_one(None),
            f"reduced_decode_1/{reduce}": lambda: stage_one(
                [read_image(path, reduce) for path in paths]),
        }, len(paths))  # fmt: skip
        rows += self.measure("loader_both_stages", {
            PLAIN: lambda: (stage_one(None), stage_two(None)),
            "shared_decode": shared,
        }, len(paths))  # fmt: skip
        return rows

    def train_loader_rows(self) -> list[dict]:
        """One pass of each stage's training loader over the images repeated to at least
        ``TRAIN_LOADER_SAMPLES`` samples (so that starting workers is not the whole cost):
        whole decodes in the main process, reduced decodes, reduced decodes in two workers."""
        kp_set = keypoint_set(self.num_joints)
        repeat = max(1, math.ceil(TRAIN_LOADER_SAMPLES / len(self.paths)))
        paths = self.paths * repeat
        keypoints = np.concatenate([self.person_keypoints] * repeat)

        def loader(stage: str, reduced: bool, workers: int) -> Callable[[], object]:
            opts = ["DATASET.REDUCED_DECODE", str(reduced), "WORKERS", str(workers),
                    "TRAIN.BATCH_SIZE_PER_GPU", "2"]  # fmt: skip
            if stage == "bbox":
                cfg = self.config(self.bbox_path, "torch", opts)
                dataset = WholeImageBoxDataset(cfg, paths, keypoint_extent_boxes(keypoints),
                                               True, reduced_decode=reduced)  # fmt: skip
            else:
                cfg = self.config(self.keypoint_path, "torch", opts)
                dataset = KeypointDataset(
                    cfg, paths, keypoints, True, kp_set["flip_pairs"],
                    kp_set["upper_body"], kp_set["lower_body"], reduced_decode=reduced)  # fmt: skip

            def run() -> None:
                torch.manual_seed(0)
                for _ in make_loader(dataset, cfg, True, torch.Generator().manual_seed(0)):
                    pass
            return run

        rows = []
        for stage, name in (("bbox", "train_loader_stage1"), ("keypoint", "train_loader_stage2")):
            rows += self.measure(name, {
                PLAIN: loader(stage, False, 0),
                "reduced_decode": loader(stage, True, 0),
                "reduced_decode_2_workers": loader(stage, True, 2),
            }, len(paths))  # fmt: skip
        return rows

    # ------------------------------------------------------------------ forwards
    def prepared(self, stage: str, backend: str) -> torch.nn.Module:
        cfg = self.config(self.bbox_path if stage == "bbox" else self.keypoint_path, backend)
        return prepare_inference_model(self.models[stage], cfg, weights_path=self.weights[stage])

    def forward_rows(self, backends: list[str]) -> tuple[list[dict], float]:
        batch = min(int(self.keypoint_cfg.TEST.BATCH_SIZE_PER_GPU), len(self.paths))
        box_batch = min(int(self.bbox_cfg.TEST.BATCH_SIZE_PER_GPU), len(self.paths))
        box_inputs = torch.stack([
            WholeImageBoxDataset(self.bbox_cfg, self.paths, None, is_train=False)[i][0]
            for i in range(box_batch)]).to(self.device)  # fmt: skip
        crops = BoxDataset(self.keypoint_cfg, self.paths, self.person_boxes)
        crop_inputs = torch.stack([crops[i][0] for i in range(batch)]).to(self.device)
        flip_pairs = keypoint_set(self.num_joints)["flip_pairs"]
        shift = bool(self.keypoint_cfg.TEST.SHIFT_HEATMAP)

        start = time.perf_counter()
        box_models = {PLAIN: self.models["bbox"]}
        keypoint_models = {PLAIN: self.models["keypoint"]}
        for backend in backends:
            box_models[backend] = self.prepared("bbox", backend)
            keypoint_models[backend] = self.prepared("keypoint", backend)
        prepare_seconds = time.perf_counter() - start

        def box_forward(model: torch.nn.Module) -> Callable[[], object]:
            def run() -> None:
                with torch.inference_mode():
                    model(box_inputs)
            return run

        def heatmaps(model: torch.nn.Module, flip: bool) -> Callable[[], object]:
            def run() -> None:
                with torch.inference_mode():
                    predict_heatmaps(model, crop_inputs, flip, flip_pairs, shift)
            return run

        rows = self.measure("stage1_forward", {k: box_forward(m) for k, m in box_models.items()},
                            box_batch)  # fmt: skip
        rows += self.measure("stage2_forward", {
            k: heatmaps(m, False) for k, m in keypoint_models.items()}, batch)
        rows += self.measure("stage2_forward_flip", {
            k: heatmaps(m, True) for k, m in keypoint_models.items()}, batch)
        return rows, prepare_seconds

    # ------------------------------------------------------------------ chain
    def chain_rows(self, backends: list[str], logger: logging.Logger) -> tuple[list[dict], dict]:
        names = [path.name for path in self.paths]

        def configs(backend: str) -> tuple[CfgNode, Path, CfgNode, Path]:
            bbox_dir = self.work / f"chain_{backend}" / "bbox"
            keypoint_dir = self.work / f"chain_{backend}" / "keypoint"
            for folder in (bbox_dir, keypoint_dir):
                folder.mkdir(parents=True, exist_ok=True)
            bcfg = self.config(self.bbox_path, backend,
                               ["TEST.MODEL_FILE", str(self.weights["bbox"])])
            kcfg = self.config(self.keypoint_path, backend, [
                "TEST.MODEL_FILE", str(self.weights["keypoint"]),
                "DATASET.BOX_FILE", str(bbox_dir / bbox_engine.BOX_FILE_NAME)])  # fmt: skip
            return bcfg, bbox_dir, kcfg, keypoint_dir

        plain = configs("torch")

        def two_step() -> None:
            bcfg, bbox_dir, kcfg, keypoint_dir = plain
            bbox_engine.run_test(bcfg, bbox_dir, logger, self.device)
            keypoint_engine.run_test(kcfg, keypoint_dir, logger, self.device)

        variants: dict[str, Callable[[], object]] = {PLAIN: two_step}
        optimised = {backend: configs(backend) for backend in backends}
        for backend, (bcfg, bbox_dir, kcfg, keypoint_dir) in optimised.items():
            variants[f"chain_{backend}"] = (
                lambda b=bcfg, bd=bbox_dir, k=kcfg, kd=keypoint_dir:
                run_chain(b, bd, k, kd, self.device, logger))  # fmt: skip
        rows = self.measure("chain", variants, len(names))

        reference = read_result(plain[3] / "result.csv", self.num_joints)
        reference_boxes = read_boxes(plain[1] / bbox_engine.BOX_FILE_NAME)
        parity = {}
        for backend, (_, bbox_dir, _, keypoint_dir) in optimised.items():
            result = read_result(keypoint_dir / "result.csv", self.num_joints)
            boxes = read_boxes(bbox_dir / bbox_engine.BOX_FILE_NAME)
            parity[backend] = {
                "result_csv_max_abs_px": float(np.abs(result - reference).max()),
                "boxes_max_abs_px": float(np.abs(boxes - reference_boxes).max()),
            }
        return rows, parity

    # ------------------------------------------------------------------ training
    def train_rows(self) -> list[dict]:
        cfg = self.keypoint_cfg
        batch = self.args.train_batch
        width, height = (int(v) for v in cfg.MODEL.IMAGE_SIZE)
        heatmap_w, heatmap_h = (int(v) for v in cfg.MODEL.HEATMAP_SIZE)
        generator = torch.Generator().manual_seed(0)
        inputs = torch.randn(batch, 3, height, width, generator=generator).to(self.device)
        target = torch.rand(batch, self.num_joints, heatmap_h, heatmap_w,
                            generator=generator).to(self.device)  # fmt: skip
        weight = torch.ones(batch, self.num_joints, 1, device=self.device)
        criterion = JointsMSELoss(cfg.LOSS.USE_TARGET_WEIGHT)

        def step_fn(channels_last: bool, amp: bool) -> Callable[[], object]:
            model = copy.deepcopy(self.models["keypoint"]).train()
            images = inputs
            if channels_last:
                model = model.to(memory_format=torch.channels_last)
                images = inputs.contiguous(memory_format=torch.channels_last)
            optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)

            def run() -> None:
                with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=amp):
                    loss = criterion(model(images).float(), target, weight)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
            return run

        variants = {PLAIN: step_fn(False, False), "channels_last": step_fn(True, False)}
        if self.device.type == "cuda":
            variants["channels_last_bf16_autocast"] = step_fn(True, True)
        return self.measure("train_step", variants, batch)


def _cell(value: float | None, fmt: str, width: int) -> str:
    return ("" if value is None else fmt.format(value)).rjust(width)


def print_table(report: dict) -> None:
    peak = report["matmul_peak_gflops"]
    machine = report["machine"]
    print(f"\ndevice {machine['device']}, {machine['threads']} threads; 1-minute load average "
          f"{machine['load_average_at_start'][0]:.1f} before the run (other processes) and "
          f"{machine['load_average_at_end'][0]:.1f} at its end (with its own threads); times "
          f"are the best of {report['settings']['repeats']}; ratios vs plain, same run")
    header = (f"{'size':5s} {'row':20s} {'variant':24s} {'img/s':>9s} {'x plain':>8s} "
              f"{'cpu x':>6s} {'peak MiB':>9s} {'mem x':>6s} {'GFLOP/s':>8s} "
              f"{'% peak':>7s}")  # fmt: skip
    print(header)
    print("-" * len(header))
    for size, result in report["sizes"].items():
        for row in result["rows"]:
            optional = [_cell(row["memory_ratio"], "{:.2f}", 6),
                        _cell(row.get("gflops"), "{:.1f}", 8),
                        _cell(row.get("percent_of_peak"), "{:.0f}%", 7)]  # fmt: skip
            print(f"{size:5s} {row['row']:20s} {row['variant']:24s} {row['images_per_s']:9.2f} "
                  f"{row['speed_ratio']:8.2f} {row['cpu_ratio']:6.2f} {row['peak_mib']:9.1f} "
                  + " ".join(optional))
        flops = result["gflop_per_image"]
        print(f"{size}: forward GFLOP per image: stage one {flops['stage1']:.2f}, stage two "
              f"{flops['stage2']:.2f}; preparing the backends (BN folding, ONNX export; "
              f"one-off) {result['prepare_backends_s']:.1f} s")
        for backend, diff in result["parity"].items():
            print(f"{size}: chain_{backend} vs plain: result.csv max |diff| "
                  f"{diff['result_csv_max_abs_px']:.2g} px, "
                  f"boxes {diff['boxes_max_abs_px']:.2g} px")
    print(f"assumed peak: {peak:.1f} GFLOP/s = the best of {len(report['matmul_runs_gflops'])} "
          f"measurements (each the best of 3 float32 {report['matmul_size']}^2 matmuls by torch "
          "and by numpy on the CPU), "
          f"{machine['threads']} threads")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="w32,w48", help=f"comma list of {sorted(SIZES)}")
    parser.add_argument("--images", type=int, default=8, help="synthetic test images")
    parser.add_argument("--repeats", type=int, default=2, help="runs per figure (best kept)")
    parser.add_argument("--image-size", default="1920x1080", help="synthetic image WxH")
    parser.add_argument("--train-batch", type=int, default=2, help="training step batch")
    parser.add_argument("--matmul-size", type=int, default=4096, help="peak matmul N")
    parser.add_argument("--backends", default="",
                        help="optimised backends (default: fused,onnxruntime on CPU, fused on "
                             "CUDA, where onnxruntime runs on the CPU)")  # fmt: skip
    parser.add_argument("--out", type=Path, default=Path("benchmark.json"))
    parser.add_argument("--quick", action="store_true",
                        help="tiny configs, 2 small images, 1 repeat: a smoke run")  # fmt: skip
    args = parser.parse_args(argv)
    if args.quick:
        args.sizes, args.images, args.repeats = "tiny", 2, 1
        args.image_size, args.matmul_size = "320x180", 256
    return args


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    sizes = [s.strip() for s in args.sizes.split(",") if s.strip()]
    unknown = [s for s in sizes if s not in SIZES]
    if unknown or not sizes:
        raise ValueError(f"--sizes must name some of {sorted(SIZES)}, got {args.sizes!r}")
    width, height = (int(v) for v in args.image_size.lower().split("x"))
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    default_backends = "fused" if device.type == "cuda" else "fused,onnxruntime"
    backends = [b for b in (args.backends or default_backends).split(",") if b]
    probe = MemoryProbe(device)
    logger = logging.getLogger("benchmark")
    logger.propagate = False
    logger.setLevel(logging.WARNING)

    load_at_start = list(os.getloadavg())
    peaks: list[float] = []

    def measure_peak() -> None:
        peaks.append(matmul_peak_gflops(args.matmul_size, device))
        print(f"float32 {args.matmul_size}^2 matmul: {peaks[-1]:.1f} GFLOP/s", flush=True)

    measure_peak()
    report: dict = {
        "machine": {"device": str(device) if device.type == "cpu" else
                    torch.cuda.get_device_name(device),
                    "processor": platform.processor() or platform.machine(),
                    "cpu_count": os.cpu_count(), "threads": torch.get_num_threads(),
                    "torch": torch.__version__,
                    "load_average_at_start": load_at_start},  # fmt: skip
        "settings": {"sizes": sizes, "images": args.images, "repeats": args.repeats,
                     "image_size": [width, height], "train_batch": args.train_batch,
                     "backends": backends, "memory": probe.method,
                     "timing": "best of repeats, variants interleaved"},  # fmt: skip
        "matmul_size": args.matmul_size,
        "matmul_runs_gflops": peaks,
        "sizes": {},
    }
    with tempfile.TemporaryDirectory(prefix="benchmark_") as folder:
        work = Path(folder)
        data_root = work / "data"
        generate_motion_dataset(data_root, 0, args.images, width=width, height=height, seed=0)
        for size in sizes:
            bench = SizeBench(size, data_root, work, args, device, probe)
            flops = {
                "stage1": forward_gflop(bench.models["bbox"],
                                        (1, 3, *reversed(bench.bbox_cfg.MODEL.IMAGE_SIZE))),
                "stage2": forward_gflop(bench.models["keypoint"],
                                        (1, 3, *reversed(bench.keypoint_cfg.MODEL.IMAGE_SIZE))),
            }  # fmt: skip
            rows = bench.loader_rows() + bench.train_loader_rows()
            measure_peak()  # the best of several runs is the machine's peak
            forward, export_seconds = bench.forward_rows(backends)
            for row in forward:
                per_image = flops["stage1" if row["row"] == "stage1_forward" else "stage2"]
                passes = 2 if row["row"] == "stage2_forward_flip" else 1
                row["gflops"] = per_image * passes * row["images_per_s"]
            rows += forward
            chain, parity = bench.chain_rows(backends, logger)
            rows += chain + bench.train_rows()
            report["sizes"][size] = {
                "configs": [bench.bbox_path, bench.keypoint_path],
                "gflop_per_image": flops,
                "prepare_backends_s": export_seconds,
                "parity": parity,
                "rows": rows,
            }
    report["machine"]["load_average_at_end"] = list(os.getloadavg())
    report["matmul_peak_gflops"] = max(peaks)
    for result in report["sizes"].values():
        for row in result["rows"]:
            if "gflops" in row:
                row["percent_of_peak"] = 100 * row["gflops"] / report["matmul_peak_gflops"]
    print_table(report)
    atomic_write_text(args.out, json.dumps(report, indent=1))
    print(f"wrote {args.out}")
    return report


if __name__ == "__main__":
    main()
