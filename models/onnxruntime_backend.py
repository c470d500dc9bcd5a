"""onnxruntime's CPU runtime behind the ``nn.Module`` call, for ``TEST.BACKEND onnxruntime`` and
``onnxruntime-int8``, and the optimised graph it keeps beside an export
(``models/backends.py`` says when each is used)."""

from __future__ import annotations

import functools
import hashlib
import os
import platform
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from torch import nn

from common.io import replace_durably


class OnnxRuntimeModel(nn.Module):
    """An onnxruntime CPU session behind the ``nn.Module`` call: tensor in, tensor out.

    A batch is split across ``threads`` single-threaded runs of one session at once, one per
    core (onnxruntime releases the GIL while it runs): HRNet's many small low-resolution
    convolutions scale poorly when one run's threads must meet after every operator, and a run
    on a core of its own does not wait for a core another process holds. A batch of one image
    goes to a second, multi-threaded session, opened the first time one comes. The split
    changes no number: each image's outputs depend only on that image. It owns no parameters;
    outputs go back to the input's device.
    """

    def __init__(self, onnx_path: str | Path, threads: int | None = None,
                 keep_optimized: bool = False, transient: bool = False) -> None:  # fmt: skip
        """``keep_optimized``: open the optimised graph saved beside ``onnx_path`` for this
        machine (``optimized_graph_path``) without optimising again; save it when missing.
        ``transient``: ``onnx_path`` is removed once this returns, so every session opens now."""
        super().__init__()
        self.threads = max(1, threads or torch.get_num_threads())
        self._path, self._optimize = Path(onnx_path), True
        optimized = optimized_graph_path(onnx_path) if keep_optimized else None
        if optimized is not None and optimized.is_file():
            self._path, self._optimize = optimized, False
            self.session = _cpu_session(optimized, _session_options(1, False))
        elif optimized is not None and os.access(optimized.parent, os.W_OK):
            self.session = _optimize_and_save(onnx_path, _session_options(1, True), optimized)
            self._path, self._optimize = optimized, False
        else:
            self.session = _cpu_session(onnx_path, _session_options(1, True))
        self._single_image_session = self.session if self.threads == 1 else None
        if transient and self._single_image_session is None:
            options = _session_options(self.threads, self._optimize)
            self._single_image_session = _cpu_session(self._path, options)
        self._pool = ThreadPoolExecutor(self.threads) if self.threads > 1 else None
        self.input_name = self.session.get_inputs()[0].name
        self.input_shape = list(self.session.get_inputs()[0].shape)

    def _run(self, session: object, array: np.ndarray) -> np.ndarray:
        return session.run(None, {self.input_name: array})[0]

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        array = images.detach().to("cpu", torch.float32).contiguous().numpy()
        if len(array) == 1 or self._pool is None:
            if self._single_image_session is None:
                options = _session_options(self.threads, self._optimize)
                self._single_image_session = _cpu_session(self._path, options)
            output = self._run(self._single_image_session, array)
        else:
            chunks = np.array_split(array, min(len(array), self.threads))
            output = np.concatenate(list(self._pool.map(
                lambda chunk: self._run(self.session, chunk), chunks)))  # fmt: skip
        return torch.from_numpy(np.ascontiguousarray(output)).to(images.device)


def _session_options(threads: int, optimize: bool) -> object:
    """Session options: ``threads`` intra-op threads, full graph optimisation unless the graph
    is an optimised one already."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    levels = ort.GraphOptimizationLevel
    options.graph_optimization_level = levels.ORT_ENABLE_ALL if optimize else levels.ORT_DISABLE_ALL
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return options


def _cpu_session(onnx_path: str | Path, options: object) -> object:
    import onnxruntime as ort

    return ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])


def _optimize_and_save(onnx_path: str | Path, options: object, optimized: Path) -> object:
    """Open ``onnx_path`` fully optimised and save the optimised graph as ``optimized`` with its
    weights in ``<optimized>.data``, which onnxruntime memory-maps when the graph is opened
    again: a tenth of the time of parsing them out of the graph file. Both are written in a
    temporary folder and renamed, the weights first, so that a graph is never found without
    its weights."""
    data = optimized.with_name(optimized.name + ".data")
    with tempfile.TemporaryDirectory(dir=optimized.parent, prefix=".optimizing-") as folder:
        options.optimized_model_filepath = str(Path(folder) / optimized.name)
        options.add_session_config_entry(
            "session.optimized_model_external_initializers_file_name", data.name)
        options.add_session_config_entry(
            "session.optimized_model_external_initializers_min_size_in_bytes", "1024")
        # Its warning that the saved graph suits this machine only is what the machine tag in
        # the file name answers.
        options.log_severity_level = 3
        session = _cpu_session(onnx_path, options)
        for target in (data, optimized):
            replace_durably(Path(folder) / target.name, target)
    return session


@functools.cache
def onnxruntime_machine_tag() -> str:
    """What an optimised onnxruntime graph depends on besides the model: the onnxruntime
    version and the CPU's instruction sets (its NCHWc layout follows the vector width)."""
    import onnxruntime as ort

    cpuinfo = Path("/proc/cpuinfo")
    lines = cpuinfo.read_text().splitlines() if cpuinfo.is_file() else []
    flags = next((line for line in lines if line.startswith(("flags", "Features"))), "")
    identity = f"{ort.__version__}|{platform.machine()}|{platform.processor()}|{flags}"
    return hashlib.sha256(identity.encode()).hexdigest()[:12]


def optimized_graph_path(onnx_path: str | Path) -> Path:
    """``<export>.optimized-<machine tag>.onnx``: onnxruntime's optimised graph for this
    machine, saved beside the export it was made from (its weights in ``<that>.data``)."""
    onnx_path = Path(onnx_path)
    return onnx_path.with_name(f"{onnx_path.stem}.optimized-{onnxruntime_machine_tag()}.onnx")
