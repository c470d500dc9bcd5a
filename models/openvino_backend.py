"""OpenVINO's CPU runtime behind the ``nn.Module`` call, for ``TEST.BACKEND openvino`` and
``openvino-int8``: it reads the same ONNX export (or its int8 QDQ graph) as onnxruntime.

The precision is always asked for: OpenVINO's CPU plugin runs float32 graphs in bfloat16 by
default on CPUs with native bfloat16 (AVX512-BF16, AMX), which would make the 'fp32' backend
round like bf16. ``'f32'`` is the plain answer; ``'bf16'`` (``TEST.BF16``) uses AMX tiles where
there are some. The int8 graph's QuantizeLinear/DequantizeLinear pairs are fused by OpenVINO
into integer convolutions (VNNI/AMX); its float remainder runs in float32.

A batch is split into one request per image, run by an asynchronous queue of as many requests
as the plugin's throughput mode wants (one stream per core or so): HRNet's small convolutions
scale better over streams than over one request's threads, as with onnxruntime. Each image's
outputs depend only on that image, so the split changes no number.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

PRECISIONS = ("f32", "bf16")


def compiled_cpu_model(onnx_path: str | Path, precision: str, cache_dir: Path | None) -> object:
    """``onnx_path`` compiled for the CPU in ``precision``, throughput mode; with ``cache_dir``
    the compiled blob is kept there (OpenVINO's own model cache, keyed by the graph, the
    device and the settings) and the next process loads it instead of compiling."""
    import openvino as ov

    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    core = ov.Core()
    if cache_dir is not None:
        core.set_property({"CACHE_DIR": str(cache_dir)})
    config = {"INFERENCE_PRECISION_HINT": precision, "PERFORMANCE_HINT": "THROUGHPUT",
              "INFERENCE_NUM_THREADS": torch.get_num_threads()}  # fmt: skip
    return core.compile_model(str(onnx_path), "CPU", config)


class OpenVinoModel(nn.Module):
    """An OpenVINO CPU model: NCHW float tensor in, tensor out (on the input's device)."""

    def __init__(self, onnx_path: str | Path, precision: str = "f32",
                 cache_dir: Path | None = None) -> None:  # fmt: skip
        super().__init__()
        import openvino as ov

        self.precision = precision
        self.compiled = compiled_cpu_model(onnx_path, precision, cache_dir)
        self.requests = max(1, int(self.compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS")))
        self._queue = ov.AsyncInferQueue(self.compiled, self.requests)
        self._queue.set_callback(self._keep)
        self._outputs: list[np.ndarray | None] = []
        shape = self.compiled.input(0).get_partial_shape()
        self.input_shape = [dim.get_length() if dim.is_static else "batch" for dim in shape]

    def _keep(self, request: object, index: int) -> None:
        self._outputs[index] = request.get_output_tensor(0).data.copy()

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        array = images.detach().to("cpu", torch.float32).contiguous().numpy()
        chunks = np.array_split(array, min(len(array), self.requests)) if len(array) else [array]
        self._outputs = [None] * len(chunks)
        for index, chunk in enumerate(chunks):
            self._queue.start_async({0: np.ascontiguousarray(chunk)}, index)
        self._queue.wait_all()
        output = np.concatenate(self._outputs)
        return torch.from_numpy(output).to(images.device)
