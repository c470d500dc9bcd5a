"""One benchmark run: synthetic images in a temporary folder, every size's rows, the matmul peak
measured between them, the table printed and the report written as JSON."""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import tempfile
from pathlib import Path

import torch

from benchmarks.probes import MemoryProbe, forward_gflop, matmul_peak_gflops, matmul_sizes
from benchmarks.rows import SIZES, SizeBench
from benchmarks.tables import print_table
from common.distributed import default_device
from common.errors import UserError
from common.io import atomic_write_text
from common.synthetic.motion import generate_motion_dataset


def run_benchmark(args: argparse.Namespace) -> dict:
    """Measure every row of ``args.sizes``, print the table, write ``args.out``; returns the
    report."""
    sizes = [s.strip() for s in args.sizes.split(",") if s.strip()]
    unknown = [s for s in sizes if s not in SIZES]
    if unknown or not sizes:
        raise UserError(f"--sizes must name some of {sorted(SIZES)}, got {args.sizes!r}")
    width, height = args.image_size
    device = default_device()
    default_backends = "fused" if device.type == "cuda" else "fused,onnxruntime"
    backends = [b for b in (args.backends or default_backends).split(",") if b]
    probe = MemoryProbe(device)
    logger = logging.getLogger("benchmark")
    logger.propagate = False
    logger.setLevel(logging.WARNING)

    load_at_start = list(os.getloadavg())
    peaks: list[dict[str, float]] = []

    def measure_peak() -> None:
        peaks.append(matmul_peak_gflops(args.matmul_size, device))
        found = ", ".join(f"{library} {gflops:.1f}" for library, gflops in peaks[-1].items())
        print(f"float32 matmul GFLOP/s: {found}", flush=True)

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
        "matmul_sizes": matmul_sizes(args.matmul_size),
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
    report["matmul_peak_gflops"], report["matmul_peak_library"] = max(
        (gflops, library) for run in peaks for library, gflops in run.items())
    for result in report["sizes"].values():
        for row in result["rows"]:
            if "gflops" in row:
                row["percent_of_peak"] = 100 * row["gflops"] / report["matmul_peak_gflops"]
    print_table(report)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out, json.dumps(report, indent=1))
    print(f"wrote {args.out}")
    return report
