"""Measuring tools of the benchmark: peak memory above a baseline, interleaved best-of timing
of a row's variants, the float32 matmul peak and a model's forward FLOPs."""

from __future__ import annotations

import ctypes
import math
import os
import resource
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

MIB = 2.0**20


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


def _onnxruntime_matmul(size: int) -> Callable[[np.ndarray, np.ndarray], object]:
    """An onnxruntime session of one float32 ``size`` x ``size`` MatMul (its MLAS kernels, which
    on some CPUs beat torch's MKL and numpy's BLAS by far), on torch's thread count."""
    import onnxruntime
    from onnx import TensorProto, helper

    def value(name: str) -> object:
        return helper.make_tensor_value_info(name, TensorProto.FLOAT, [size, size])

    graph = helper.make_graph([helper.make_node("MatMul", ["a", "b"], ["c"])], "matmul",
                              [value("a"), value("b")], [value("c")])  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    session = onnxruntime.InferenceSession(model.SerializeToString(), options,
                                           providers=["CPUExecutionProvider"])  # fmt: skip
    return lambda left, right: session.run(None, {"a": left, "b": right})


def matmul_sizes(size: int) -> list[int]:
    """The square matmul sizes the peak is measured at: ``size`` and ``size // 4`` (smaller
    operands that stay in cache win on some CPUs)."""
    return list(dict.fromkeys((size, max(size // 4, 1))))


def matmul_peak_gflops(size: int, device: torch.device) -> dict[str, float]:
    """GFLOP/s of the best of three float32 square matmuls of ``size`` and of ``size // 4`` per
    library: torch, and on the CPU also numpy (its own BLAS) and onnxruntime (MLAS). The best
    of all is the assumed peak: one library's matmul alone can sit far below the machine's."""
    best: dict[str, float] = {}
    for n in matmul_sizes(size):
        a = torch.randn(n, n, device=device)
        b = torch.randn(n, n, device=device)
        candidates: list[tuple[str, Callable, object, object]] = [
            ("torch", lambda x, y: x @ y, a, b)]
        if device.type == "cpu":
            candidates += [("numpy", lambda x, y: x @ y, a.numpy(), b.numpy()),
                           ("onnxruntime", _onnxruntime_matmul(n), a.numpy(), b.numpy())]
        for library, matmul, left, right in candidates:
            matmul(left, right)
            seconds = math.inf
            for _ in range(3):
                synchronize(device)
                start = time.perf_counter()
                matmul(left, right)
                synchronize(device)
                seconds = min(seconds, time.perf_counter() - start)
            best[library] = max(best.get(library, 0.0), 2 * n**3 / seconds / 1e9)
    return best


def forward_gflop(model: torch.nn.Module, input_shape: tuple[int, ...]) -> float:
    """GFLOP of one image's forward pass (a multiply-add counts 2)."""
    with FlopCounterMode(display=False) as counter, torch.inference_mode():
        model(torch.zeros((1, *input_shape[1:]), device=next(model.parameters()).device))
    return counter.get_total_flops() / 1e9
