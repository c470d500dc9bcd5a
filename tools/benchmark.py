"""Where the test-time and training time goes, and what each optimisation buys, in one run.

``python tools/benchmark.py [--sizes w32,w48] [--images 8] [--repeats 2] [--out FILE]`` (JSON:
``output/benchmark.json`` by default)
``python tools/benchmark.py --quick`` (tiny configs and images: seconds; used by the tests)
``python tools/benchmark.py --against-reference [--sizes w32,w48] [--images 16] [--rounds 3]
[--profile 15]``: the project's chain against the reference chain, whole processes side by side
(``benchmarks/against_reference.py``; JSON: ``output/against_reference.json``)

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
are compared with is the best float32 N x N or N/4 x N/4 matmul (torch and, on the CPU, numpy
and onnxruntime: on some CPUs MKL's and numpy's BLAS reach half of what onnxruntime's MLAS
does) of several measured during the run.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import _bootstrap  # noqa: F401

from benchmarks.against_reference import run_against_reference
from benchmarks.rows import SIZES
from benchmarks.run import run_benchmark
from common.cli import ToolParser, run_tool
from common.config import positive_int
from common.io import atomic_write_text


def image_size(text: str) -> tuple[int, int]:
    """An argparse type: ``WxH`` in pixels, e.g. 1920x1080, as (width, height)."""
    parts = text.lower().split("x")
    if len(parts) != 2 or not all(p.strip().isdigit() and int(p) >= 32 for p in parts):
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT of at least 32 pixels each, "
                                         f"e.g. 1920x1080, got {text!r}")  # fmt: skip
    return int(parts[0]), int(parts[1])


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = ToolParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="w32,w48", help=f"comma list of {sorted(SIZES)}")
    parser.add_argument("--images", type=positive_int,
                        help="synthetic test images (default 8; 16 with --against-reference)")
    parser.add_argument("--repeats", type=positive_int, default=2,
                        help="runs per figure (best kept)")  # fmt: skip
    parser.add_argument("--image-size", type=image_size, default=(1920, 1080),
                        help="synthetic image WxH (default 1920x1080)")  # fmt: skip
    parser.add_argument("--train-batch", type=positive_int, default=2, help="training step batch")
    parser.add_argument("--matmul-size", type=positive_int, default=4096, help="peak matmul N")
    parser.add_argument("--backends", default="",
                        help="optimised backends (default: fused,onnxruntime on CPU, fused on "
                             "CUDA, where onnxruntime runs on the CPU; onnxruntime with "
                             "--against-reference, where each runs in fp32, NAME:bf16 in "
                             "bfloat16, and 'default' as a user gets it without options)")
    parser.add_argument("--out", type=Path, help="JSON report (default output/benchmark.json, "
                        "output/against_reference.json with --against-reference)")
    parser.add_argument("--against-reference", action="store_true",
                        help="time the chain against the reference chain, whole processes")
    parser.add_argument("--rounds", type=positive_int, default=3,
                        help="--against-reference: alternating rounds (best and median kept)")
    parser.add_argument("--profile", type=int, default=0, metavar="N",
                        help="--against-reference: also profile one run of the reference, the "
                             "plain and the last chain variant; print each process's top N")
    parser.add_argument("--quick", action="store_true",
                        help="tiny configs, 2 small images, 1 repeat: a smoke run")  # fmt: skip
    args = parser.parse_args(argv)
    against = args.against_reference
    if args.images is None:
        args.images = 16 if against else 8
    if args.out is None:
        args.out = Path("output/against_reference.json" if against else "output/benchmark.json")
    if args.quick:
        args.sizes, args.images, args.repeats, args.rounds = "tiny", 2, 1, 1
        args.image_size, args.matmul_size = (320, 180), 256
    return args


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    if not args.against_reference:
        return run_benchmark(args)
    report = run_against_reference(args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out, json.dumps(report, indent=1))
    print(f"wrote {args.out}")
    return report


if __name__ == "__main__":
    run_tool(main)
