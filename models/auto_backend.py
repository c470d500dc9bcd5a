"""``TEST.BACKEND auto``: the fastest engine that gives the plain answers, measured on this
machine once and remembered beside the export.

Which of PyTorch, its fused form, onnxruntime and OpenVINO runs HRNet fastest depends on the CPU
(on one 2-core AMD Zen 5 onnxruntime ran the W48 forward at 1.6-2x torch's; on a 2-core Intel
Xeon with AMX OpenVINO's float32 was ahead), on the versions installed and on the thread
count, so ``auto`` times each candidate on a batch of the network's input size and keeps the
choice in ``<export>.auto-<machine tag>.json``; the tag covers what the timing depends on, so
a new library version or another machine measures again.
"""

from __future__ import annotations

import hashlib
import json
import platform
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from torch import nn

from common.io import atomic_write_text

AUTO = "auto"
TIMED_RUNS = 2  # after one warm-up run; the best is kept


def machine_tag(bf16: bool) -> str:
    """What a timing depends on besides the model: CPU model and flags, thread count, the
    versions of the engines, the precision."""
    import onnxruntime
    import openvino

    cpuinfo = Path("/proc/cpuinfo")
    lines = cpuinfo.read_text().splitlines() if cpuinfo.is_file() else []
    cpu = [line for line in lines if line.startswith(("model name", "flags", "Features"))][:2]
    identity = (f"{cpu}|{platform.machine()}|{torch.get_num_threads()}|{torch.__version__}|"
                f"{onnxruntime.__version__}|{openvino.__version__}|bf16 {bf16}")  # fmt: skip
    return hashlib.sha256(identity.encode()).hexdigest()[:12]


def choice_path(export_path: str | Path, bf16: bool) -> Path:
    """``<export>.auto-<machine tag>.json`` beside the ONNX export."""
    export_path = Path(export_path)
    return export_path.with_name(f"{export_path.stem}.auto-{machine_tag(bf16)}.json")


def cached_choice(export_path: str | Path, bf16: bool, candidates: Sequence[str]) -> str | None:
    """The backend measured fastest before on this machine, when it is still a candidate."""
    path = choice_path(export_path, bf16)
    if not path.is_file():
        return None
    try:
        choice = json.loads(path.read_text()).get("backend")
    except (OSError, ValueError, AttributeError):
        return None  # a damaged file is measured again and rewritten
    return choice if choice in candidates else None


def seconds_per_batch(model: nn.Module, example: torch.Tensor) -> float:
    """Best wall time of ``TIMED_RUNS`` forwards of ``example`` after a warm-up."""
    best = float("inf")
    with torch.inference_mode():
        model(example)
        for _ in range(TIMED_RUNS):
            start = time.perf_counter()
            model(example)
            best = min(best, time.perf_counter() - start)
    return best


def fastest(candidates: dict[str, Callable[[], nn.Module]], input_shape: Sequence[int],
            record: Path | None) -> tuple[str, nn.Module]:  # fmt: skip
    """Build and time every candidate on a random batch of ``input_shape`` (one image per
    thread); return the fastest and its module, and write the timings to ``record``."""
    batch = max(2, torch.get_num_threads())
    example = torch.randn(batch, *[int(v) for v in input_shape[1:]],
                          generator=torch.Generator().manual_seed(0))  # fmt: skip
    timings, best_name, best_model = {}, "", None
    for name, build in candidates.items():
        model = build()
        timings[name] = seconds_per_batch(model, example)
        if best_model is None or timings[name] < timings[best_name]:
            best_name, best_model = name, model
        else:
            del model
    if record is not None:
        atomic_write_text(record, json.dumps(
            {"backend": best_name, "seconds_per_batch": timings, "batch": batch}, indent=1))
    return best_name, best_model
