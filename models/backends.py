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
- ``'openvino'``: the same export run by OpenVINO's CPU runtime (``models/openvino_backend.py``),
  its compiled form cached in ``<export folder>/openvino-cache``.
- ``'onnxruntime-int8'``, ``'openvino-int8'``: that export quantised to int8
  (``models/quantize.py``), calibrated on training images once and cached beside it, run by
  either engine. Their answers differ from fp32 by the rounding, so they are not in
  ``BACKENDS``, the backends that give the plain answers.
- ``'auto'``: the fastest of ``BACKENDS`` on this machine, measured once per export and machine
  (``models/auto_backend.py``).

``TEST.PRECISION`` (``models/reduced_precision.py``) says whether the forward runs in bfloat16:
'torch' and 'fused' under bfloat16 autocast (``Bfloat16``), 'openvino' with bfloat16 inference
precision (AMX where there is some); onnxruntime's CPU provider has no bfloat16 convolutions, so
'bf16' is refused there. It is resolved once per model into ``TEST.BF16``, which the code below
reads.

Each backend is an ``nn.Module`` called on an NCHW float tensor that returns a tensor, so the
prediction code is the same for all of them.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import tempfile
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import torch
from torch import nn
from yacs.config import CfgNode

from common.errors import ConfigError, MissingFileError
from common.io import atomic_path
from common.state_dict import load_state_dict_strict
from models import auto_backend
from models.auto_backend import AUTO
from models.compute_wrappers import BatchStatistics, Bfloat16
from models.fuse import fuse_conv_bn
from models.onnxruntime_backend import OnnxRuntimeModel
from models.openvino_backend import OpenVinoModel
from models.quantize import INT8_BACKEND, CalibrationInputs, int8_export
from models.reduced_precision import measured_engines, precision_of, with_precision

BACKENDS = ("torch", "fused", "onnxruntime", "openvino")
OPENVINO_INT8 = "openvino-int8"
INT8_BACKENDS = (INT8_BACKEND, OPENVINO_INT8)
ONNX_BACKENDS = ("onnxruntime", "openvino", *INT8_BACKENDS)
ALL_BACKENDS = (*BACKENDS, *INT8_BACKENDS, AUTO)
BF16_BACKENDS = ("torch", "fused", "openvino", AUTO)
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


def _can_cache_beside(weights_path: str | Path | None) -> bool:
    """Whether exports and timings can be kept beside ``weights_path`` (else: a temporary
    folder, measured again next time)."""
    return weights_path is not None and os.access(Path(weights_path).parent, os.W_OK)


def _check_backend(cfg: CfgNode) -> str:
    backend = str(cfg.TEST.BACKEND)
    if backend not in ALL_BACKENDS:
        raise ConfigError(f"TEST.BACKEND must be one of {list(ALL_BACKENDS)}, got {backend!r}")
    if cfg.TEST.BN_BATCH_STATS and backend != "torch":
        raise ConfigError(f"TEST.BN_BATCH_STATS True needs TEST.BACKEND torch, got {backend!r}: "
                          "the other backends fold batch norm into the convolutions")
    if cfg.TEST.BF16 and backend not in BF16_BACKENDS:
        raise ConfigError(f"TEST.PRECISION bf16 (or TEST.BF16 True) runs the forward in "
                          f"bfloat16 and TEST.BACKEND {backend} has none (onnxruntime's CPU "
                          "provider has no bfloat16 convolutions; the int8 graphs are int8): use "
                          "TEST.BACKEND openvino, fused or torch with it, or TEST.PRECISION fp32")
    return backend


def _auto_engines(cfg: CfgNode) -> tuple[str, ...]:
    """The engines 'auto' may pick: every fp32 one, or the two that read ``TEST.ONNX_FILE``."""
    return ("onnxruntime", "openvino") if cfg.TEST.ONNX_FILE else BACKENDS


def _session(onnx_path: Path, cfg: CfgNode, calibration: CalibrationInputs | None,
             keep_optimized: bool = True) -> nn.Module:  # fmt: skip
    """The session of an fp32 export, or with the int8 backends of its cached int8 graph, run
    by onnxruntime or OpenVINO."""
    if cfg.TEST.BACKEND in INT8_BACKENDS:
        onnx_path = int8_export(onnx_path, cfg, calibration)
    if cfg.TEST.BACKEND.startswith("openvino"):
        cache = onnx_path.parent / "openvino-cache" if keep_optimized else None
        return OpenVinoModel(onnx_path, "bf16" if cfg.TEST.BF16 else "f32", cache)
    return OnnxRuntimeModel(onnx_path, keep_optimized=keep_optimized, transient=not keep_optimized)


def _given_onnx_file(cfg: CfgNode, input_shape: Sequence[int],
                     calibration: CalibrationInputs | None) -> nn.Module:  # fmt: skip
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
    if cfg.TEST.BACKEND != "onnxruntime":
        return _session(onnx_path, cfg, calibration)
    return runner


def _onnxruntime_model(
    model: nn.Module, cfg: CfgNode, input_shape: Sequence[int], weights_path: Path | None,
    calibration: CalibrationInputs | None,
) -> nn.Module:  # fmt: skip
    if cfg.TEST.ONNX_FILE:
        return _given_onnx_file(cfg, input_shape, calibration)
    if not _can_cache_beside(weights_path):
        with tempfile.TemporaryDirectory(prefix="onnx_") as folder:
            onnx_path = export_onnx(model, Path(folder) / "model.onnx", input_shape)
            # the session holds the graph in memory
            return _session(onnx_path, cfg, calibration, keep_optimized=False)
    onnx_path = cached_export_path(weights_path, cfg, input_shape)
    if not onnx_path.is_file():
        export_onnx(model, onnx_path, input_shape)
    return _session(onnx_path, cfg, calibration)


def _with_backend(cfg: CfgNode, backend: str) -> CfgNode:
    """A copy of ``cfg`` with ``TEST.BACKEND`` set to ``backend``."""
    copy = cfg.clone()
    copy.defrost()
    copy.TEST.BACKEND = backend
    copy.freeze() if cfg.is_frozen() else None
    return copy


def _auto_candidates(cfg: CfgNode, device: torch.device) -> tuple[str, ...]:
    """The engines that give the plain answers (in bfloat16 with ``TEST.BF16``; those measured
    under the limit for this stage when 'auto' chose it) on ``device``; onnxruntime and OpenVINO
    run on the CPU only."""
    candidates = [b for b in BACKENDS if b in BF16_BACKENDS] if cfg.TEST.BF16 else list(BACKENDS)
    candidates = list(measured_engines(cfg, tuple(candidates)))
    if device.type != "cpu":
        candidates = [b for b in candidates if b not in ONNX_BACKENDS]
    return tuple(candidates)


def _auto_model(model: nn.Module, cfg: CfgNode, shape: Sequence[int],
                weights_path: str | Path | None,
                calibration: CalibrationInputs | None) -> nn.Module:  # fmt: skip
    """'auto': the candidate measured fastest, from the choice cached beside the export of
    ``weights_path`` or by timing each now (and caching the choice when there are weights)."""
    candidates = _auto_candidates(cfg, _placement(model))
    record = None
    if _can_cache_beside(weights_path):
        export = cached_export_path(weights_path, cfg, shape)
        choice = auto_backend.cached_choice(export, cfg.TEST.BF16, candidates)
        if choice is not None:
            return prepare_inference_model(model, _with_backend(cfg, choice), shape, weights_path,
                                           calibration=calibration)  # fmt: skip
        record = auto_backend.choice_path(export, cfg.TEST.BF16)
    builders = {name: functools.partial(prepare_inference_model, model, _with_backend(cfg, name),
                                        shape, weights_path, calibration=calibration)
                for name in candidates}  # fmt: skip
    return auto_backend.fastest(builders, shape, record)[1].eval()


def _auto_onnx_file(cfg: CfgNode, shape: Sequence[int]) -> nn.Module:
    """'auto' with ``TEST.ONNX_FILE``: the faster of its two engines, remembered beside it."""
    onnx_path = Path(cfg.TEST.ONNX_FILE)
    engines = tuple(b for b in ("onnxruntime", "openvino") if b in BF16_BACKENDS or
                    not cfg.TEST.BF16)  # fmt: skip
    engines = measured_engines(cfg, engines)
    choice = auto_backend.cached_choice(onnx_path, cfg.TEST.BF16, engines)
    if choice is not None:
        return _given_onnx_file(_with_backend(cfg, choice), shape, None).eval()
    record = auto_backend.choice_path(onnx_path, cfg.TEST.BF16)
    if not os.access(onnx_path.parent, os.W_OK):
        record = None
    builders = {name: functools.partial(_given_onnx_file, _with_backend(cfg, name), shape, None)
                for name in engines}  # fmt: skip
    return auto_backend.fastest(builders, shape, record)[1].eval()


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
    cfg = with_precision(cfg, _placement(model), _auto_engines(cfg))
    backend = _check_backend(cfg)
    model = model.eval()
    if backend == "torch":
        if cfg.TEST.BN_BATCH_STATS:
            return BatchStatistics(model)
        return Bfloat16(model).eval() if cfg.TEST.BF16 else model
    shape = tuple(example_input_shape) if example_input_shape else input_shape_for(cfg)
    if backend == AUTO:
        return _auto_model(model, cfg, shape, weights_path, calibration)
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
    ``prepare_inference_model``. Its ``runs_in`` attribute says, for the log, whether it runs
    in float32 or bfloat16 and why."""
    cfg = with_precision(cfg, device, _auto_engines(cfg))
    model = _load_resolved(build, cfg, weights_path, device, calibration)
    model.runs_in = precision_of(cfg)
    return model


def _load_resolved(build: Callable[[], nn.Module], cfg: CfgNode, weights_path: str | Path,
                   device: torch.device, calibration: CalibrationInputs | None) -> nn.Module:
    backend = _check_backend(cfg)
    shape = input_shape_for(cfg)
    if backend == AUTO and cfg.TEST.ONNX_FILE:
        return _auto_onnx_file(cfg, shape)
    known = Path(weights_path).is_file()  # if not, the strict load below says so
    if backend == AUTO and device.type == "cpu" and known:
        cached = cached_export_path(weights_path, cfg, shape)
        engines = tuple(b for b in _auto_candidates(cfg, device) if b in ONNX_BACKENDS)
        choice = auto_backend.cached_choice(cached, cfg.TEST.BF16, engines)
        if choice is not None and cached.is_file():
            return _session(cached, _with_backend(cfg, choice), calibration).eval()
    if backend in ONNX_BACKENDS:
        if cfg.TEST.ONNX_FILE:
            return _given_onnx_file(cfg, shape, calibration).eval()
        cached = cached_export_path(weights_path, cfg, shape) if known else None
        if cached is not None and cached.is_file():
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
