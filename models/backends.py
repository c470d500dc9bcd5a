"""Inference backends, chosen by ``TEST.BACKEND``: the same network, run three ways.

- ``'torch'``: the model as trained, in eval mode.
- ``'fused'``: batch norm folded into the convolutions (``models/fuse.py``) and channels-last
  memory format: half the layers to visit and the layout oneDNN and cuDNN convolutions prefer.
- ``'onnxruntime'``: an ONNX export run by onnxruntime on the CPU with all graph optimisations.
  ``TEST.ONNX_FILE`` names an export to use; otherwise the model is exported once to
  ``<weights>.<digest>.onnx`` beside its weights (the digest covers the weight file's size,
  modification time and inode, ``cfg.MODEL`` and the input size, so a retrained model never
  meets a stale export), or to a temporary file. With an export at hand the PyTorch model is
  never built. onnxruntime's optimised graph of a cached export is kept beside it too
  (``<export>.optimized-<machine>.onnx`` and its memory-mapped weights ``<that>.data``), which
  opens a session in a tenth of the time.
- ``'onnxruntime-int8'``: that export quantised to int8 (``models/quantize.py``), calibrated on
  training images once and cached beside it. Its answers differ from fp32 by the rounding, so
  it is not in ``BACKENDS``, the backends that give the plain answers.

``TEST.BF16`` runs the 'torch' and 'fused' forwards under bfloat16 autocast (``Bfloat16``);
onnxruntime's CPU provider has no bfloat16 convolutions, so it is refused there.

Each backend is an ``nn.Module`` called on an NCHW float tensor that returns a tensor, so the
prediction code is the same for all of them.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import platform
import tempfile
import warnings
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from torch import nn
from yacs.config import CfgNode

from common.errors import ConfigError, MissingFileError
from common.io import atomic_path, replace_durably
from common.state_dict import load_state_dict_strict
from models.compute_wrappers import BatchStatistics, Bfloat16
from models.fuse import fuse_conv_bn
from models.quantize import INT8_BACKEND, CalibrationInputs, int8_export

BACKENDS = ("torch", "fused", "onnxruntime")
ONNX_BACKENDS = ("onnxruntime", INT8_BACKEND)
ONNX_OPSET = 17
INPUT_NAME = "input"
OUTPUT_NAME = "output"


class ChannelsLast(nn.Module):
    """Runs ``model`` (already converted to channels-last) on channels-last inputs."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model(images.contiguous(memory_format=torch.channels_last)).contiguous()


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
                 keep_optimized: bool = False) -> None:  # fmt: skip
        """``keep_optimized``: open the optimised graph saved beside ``onnx_path`` for this
        machine (``optimized_graph_path``) without optimising again; save it when missing."""
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


@contextlib.contextmanager
def _one_thread() -> Iterator[None]:
    """Run hundreds of tiny weight updates on one thread: each multi-threaded op waits for
    every thread, which costs milliseconds per op when other processes share the cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def input_shape_for(cfg: CfgNode, batch: int = 1) -> tuple[int, int, int, int]:
    """(N, 3, height, width) of the network input; ``MODEL.IMAGE_SIZE`` is [width, height]."""
    width, height = (int(v) for v in cfg.MODEL.IMAGE_SIZE)
    return batch, 3, height, width


def _placement(model: nn.Module) -> torch.device:
    parameter = next(model.parameters(), None)
    return parameter.device if parameter is not None else torch.device("cpu")


def export_onnx(model: nn.Module, path: str | Path, input_shape: Sequence[int]) -> Path:
    """Write ``model`` (eval mode) as ONNX with a dynamic batch axis; atomically."""
    path = Path(path)
    example = torch.zeros(tuple(input_shape), device=_placement(model))
    was_training = model.training
    model.eval()
    try:
        with atomic_path(path) as tmp, warnings.catch_warnings():
            # The legacy exporter is used on purpose: the newer one needs onnxscript, which
            # is not a dependency. Its deprecation and tracer notes are expected.
            warnings.simplefilter("ignore")
            torch.onnx.export(
                model, (example,), str(tmp), dynamo=False, opset_version=ONNX_OPSET,
                input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
            )  # fmt: skip
    finally:
        model.train(was_training)
    return path


def onnx_max_difference(model: nn.Module, onnx_path: str | Path, images: torch.Tensor) -> float:
    """Largest absolute difference between onnxruntime's and torch's outputs on ``images``."""
    model.eval()
    with torch.inference_mode():
        expected = model(images.to(_placement(model))).float().cpu()
    actual = OnnxRuntimeModel(onnx_path)(images.cpu())
    if actual.shape != expected.shape:
        raise ValueError(f"ONNX output shape {tuple(actual.shape)} differs from torch's "
                         f"{tuple(expected.shape)}")  # fmt: skip
    return float((actual - expected).abs().max())


def cached_export_path(weights_path: str | Path, cfg: CfgNode,
                       input_shape: Sequence[int]) -> Path:  # fmt: skip
    """``<weights>.<digest>.onnx`` beside the weights. The digest covers ``cfg.MODEL``, the
    input height and width and the weight file's size, modification time and inode, so a
    retrained model (checkpoints are written to a new file and renamed) or another
    architecture never meets a stale export. Like Python's ``.pyc`` files it trusts the file's
    metadata rather than hashing hundreds of megabytes on every run."""
    weights_path = Path(weights_path)
    stat = weights_path.stat()
    identity = (f"{cfg.MODEL.dump()}{tuple(input_shape[-2:])}"
                f"{stat.st_size}:{stat.st_mtime_ns}:{stat.st_ino}")  # fmt: skip
    digest = hashlib.sha256(identity.encode()).hexdigest()[:16]
    return weights_path.with_name(f"{weights_path.stem}.{digest}.onnx")


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


def _check_backend(cfg: CfgNode) -> str:
    backend = str(cfg.TEST.BACKEND)
    if backend not in (*BACKENDS, INT8_BACKEND):
        raise ConfigError(f"TEST.BACKEND must be one of {[*BACKENDS, INT8_BACKEND]}, "
                          f"got {backend!r}")  # fmt: skip
    if cfg.TEST.BN_BATCH_STATS and backend != "torch":
        raise ConfigError(f"TEST.BN_BATCH_STATS True needs TEST.BACKEND torch, got {backend!r}: "
                          "the other backends fold batch norm into the convolutions")
    if cfg.TEST.BF16 and backend in ONNX_BACKENDS:
        raise ConfigError(f"TEST.BF16 runs torch's forward in bfloat16 and TEST.BACKEND {backend} "
                          "has none (onnxruntime's CPU provider has no bfloat16 convolutions): "
                          "use TEST.BACKEND fused or torch with TEST.BF16, or TEST.BF16 False")
    return backend


def _session(onnx_path: Path, cfg: CfgNode, calibration: CalibrationInputs | None,
             keep_optimized: bool = True) -> OnnxRuntimeModel:  # fmt: skip
    """The session of an fp32 export, or with 'onnxruntime-int8' of its cached int8 graph."""
    if cfg.TEST.BACKEND == INT8_BACKEND:
        onnx_path = int8_export(onnx_path, cfg, calibration)
    return OnnxRuntimeModel(onnx_path, keep_optimized=keep_optimized)


def _given_onnx_file(cfg: CfgNode, input_shape: Sequence[int],
                     calibration: CalibrationInputs | None) -> OnnxRuntimeModel:  # fmt: skip
    """The session of ``TEST.ONNX_FILE`` (or of its int8 graph), checked against the config's
    input size."""
    onnx_path = Path(cfg.TEST.ONNX_FILE)
    if not onnx_path.is_file():
        raise MissingFileError(
            f"TEST.ONNX_FILE {onnx_path} not found: export it with tools/export_onnx.py "
            "or leave TEST.ONNX_FILE empty to export beside the weights"
        )
    runner = OnnxRuntimeModel(onnx_path)
    if runner.input_shape[1:] != [int(v) for v in input_shape[1:]]:
        raise ConfigError(
            f"TEST.ONNX_FILE {onnx_path} takes inputs {runner.input_shape} but this config "
            f"feeds {list(input_shape)} (N, C, H, W): re-export it with this config"
        )
    if cfg.TEST.BACKEND == INT8_BACKEND:
        return _session(onnx_path, cfg, calibration)
    return runner


def _onnxruntime_model(
    model: nn.Module, cfg: CfgNode, input_shape: Sequence[int], weights_path: Path | None,
    calibration: CalibrationInputs | None,
) -> OnnxRuntimeModel:  # fmt: skip
    if cfg.TEST.ONNX_FILE:
        return _given_onnx_file(cfg, input_shape, calibration)
    if weights_path is None:
        with tempfile.TemporaryDirectory(prefix="onnx_") as folder:
            onnx_path = export_onnx(model, Path(folder) / "model.onnx", input_shape)
            # the session holds the graph in memory
            return _session(onnx_path, cfg, calibration, keep_optimized=False)
    onnx_path = cached_export_path(weights_path, cfg, input_shape)
    if not onnx_path.is_file():
        export_onnx(model, onnx_path, input_shape)
    return _session(onnx_path, cfg, calibration)


def prepare_inference_model(
    model: nn.Module,
    cfg: CfgNode,
    example_input_shape: Sequence[int] | None = None,
    weights_path: str | Path | None = None,
    inplace: bool = False,
    calibration: CalibrationInputs | None = None,
) -> nn.Module:
    """``model`` (eval mode, on its device) run by ``TEST.BACKEND``.

    ``example_input_shape`` (N, C, H, W) defaults to ``MODEL.IMAGE_SIZE``; ``weights_path`` is
    the file ``model``'s weights were loaded from, so that the ONNX export is cached beside it.
    ``calibration`` gives 'onnxruntime-int8' its calibration inputs (called only when no int8
    graph is cached). 'torch' returns ``model`` itself (without ``TEST.BF16``); the others
    return a new module and leave ``model`` untouched, unless ``inplace``: then 'fused' folds
    into ``model``'s own layers.
    """
    backend = _check_backend(cfg)
    model = model.eval()
    if backend == "torch":
        if cfg.TEST.BN_BATCH_STATS:
            return BatchStatistics(model)
        return Bfloat16(model).eval() if cfg.TEST.BF16 else model
    shape = tuple(example_input_shape) if example_input_shape else input_shape_for(cfg)
    if backend == "fused":
        with _one_thread():
            fused = fuse_conv_bn(model, inplace=inplace).to(memory_format=torch.channels_last)
        return (Bfloat16(ChannelsLast(fused)) if cfg.TEST.BF16 else ChannelsLast(fused)).eval()
    path = Path(weights_path) if weights_path is not None else None
    return _onnxruntime_model(model, cfg, shape, path, calibration).eval()


def load_inference_model(
    build: Callable[[], nn.Module],
    cfg: CfgNode,
    weights_path: str | Path,
    device: torch.device,
    calibration: CalibrationInputs | None = None,
) -> nn.Module:
    """The test-time model of ``TEST.BACKEND``: ``build()``'s PyTorch model with the weights of
    ``weights_path`` loaded strictly, on ``device``, in eval mode, run by the backend. With
    the onnxruntime backends the model is not built at all when ``TEST.ONNX_FILE`` is set or an
    export of these weights is cached (saving its time and memory). ``calibration``: see
    ``prepare_inference_model``."""
    if _check_backend(cfg) in ONNX_BACKENDS:
        shape = input_shape_for(cfg)
        if cfg.TEST.ONNX_FILE:
            return _given_onnx_file(cfg, shape, calibration).eval()
        cached = cached_export_path(weights_path, cfg, shape)
        if cached.is_file():
            return _session(cached, cfg, calibration).eval()
    with torch.device("meta"):  # no time spent on an init that the weights overwrite
        model = build()
    load_state_dict_strict(model, weights_path, assign=True)
    model = model.to(device).eval()
    return prepare_inference_model(model, cfg, weights_path=weights_path, inplace=True,
                                   calibration=calibration)  # fmt: skip


def randomize_weights(model: nn.Module, seed: int) -> nn.Module:
    """Trained-looking random weights, in place: PyTorch's default conv and linear init and
    random batch-norm statistics and affine terms.

    The official init (convs N(0, 0.001), identity BN) gives near-zero activations and makes
    BN folding a no-op, so parity checks and benchmarks on it would prove little.
    """
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.Conv2d | nn.Linear):
                bound = 1.0 / module.weight[0].numel() ** 0.5
                module.weight.copy_(torch.rand(module.weight.shape, generator=generator)
                                    .mul(2 * bound).sub(bound))  # fmt: skip
                if module.bias is not None:
                    module.bias.copy_(torch.rand(module.bias.shape, generator=generator)
                                      .mul(2 * bound).sub(bound))  # fmt: skip
            elif isinstance(module, nn.BatchNorm2d):
                count = module.num_features
                module.running_mean.copy_(torch.randn(count, generator=generator) * 0.1)
                module.running_var.copy_(torch.rand(count, generator=generator) * 1.5 + 0.5)
                module.weight.copy_(torch.rand(count, generator=generator) + 0.5)
                module.bias.copy_(torch.randn(count, generator=generator) * 0.1)
    return model
