"""Static int8 quantisation of an ONNX export, for ``TEST.BACKEND onnxruntime-int8``.

The export gets QuantizeLinear/DequantizeLinear pairs (QDQ format) around its convolutions,
ReLUs, additions and resizes, with per-channel int8 weights and uint8 activations whose ranges
are the minima and maxima seen on calibration inputs; onnxruntime fuses them into integer
convolutions (with their ReLU) and additions. uint8 activations with int8 weights (U8S8) are
what onnxruntime's x86 kernels compute with AVX512-VNNI's unsigned-by-signed dot product: on
this project's CPU the W48 keypoint forward ran 3.1-3.7x faster than fp32 (two runs), while
int8 activations (S8S8) ran at 1.1x. The node that writes the network's output stays float32,
so that the heatmaps are not rounded to 256 levels (in stage two it is one small convolution).

The quantised graph is written once, atomically, beside the export it was made from, as
``<export>.int8-<digest>.onnx``; the digest covers the export file's size, modification time
and inode (so a new export, hence new weights, gets a new graph) and the calibration settings.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
from yacs.config import CfgNode

from common.errors import ConfigError
from common.io import atomic_path

INT8_BACKEND = "onnxruntime-int8"
# Network inputs (N, 3, H, W) float32 to calibrate on; called only when no quantised graph is
# cached, because drawing and cropping training images costs seconds.
CalibrationInputs = Callable[[], np.ndarray]
CALIBRATION_BATCH = 4  # images per calibration run (each run keeps only its tensors' minima
# and maxima, so the batch bounds the memory of the forward only)
# What HRNet is made of and where its FLOPs are (ReLU too, or it would split each convolution
# from its ReLU and cost a fifth of the speed-up). The heads' other operations (stage one's
# softmax pooling over the image, its reductions, the reference head's flatten and linear)
# stay float32: they are cheap, and softmax probabilities of one in thousands of cells do not
# survive 8 bits.
QUANTIZED_OPS = ("Conv", "Relu", "Add", "Resize")
SCHEME = f"QDQ|per-channel|weights QInt8|activations QUInt8|MinMax|{QUANTIZED_OPS}|float output"


def calibration_settings(cfg: CfgNode) -> str:
    """What besides the export decides the quantised graph: how many training images, which
    draw of them, and the quantisation scheme."""
    return f"{int(cfg.TEST.INT8_CALIBRATION_IMAGES)}|seed {int(cfg.RANDOMSEED)}|{SCHEME}"


def quantized_path(onnx_path: str | Path, cfg: CfgNode) -> Path:
    """``<export>.int8-<digest>.onnx`` beside the float32 export ``onnx_path``."""
    onnx_path = Path(onnx_path)
    stat = onnx_path.stat()
    identity = f"{stat.st_size}:{stat.st_mtime_ns}:{stat.st_ino}|{calibration_settings(cfg)}"
    digest = hashlib.sha256(identity.encode()).hexdigest()[:16]
    return onnx_path.with_name(f"{onnx_path.stem}.int8-{digest}.onnx")


def calibration_indices(total: int, count: int, seed: int) -> np.ndarray:
    """A seeded draw of ``count`` of ``total`` rows (all of them when there are fewer), in
    order, so that the same config calibrates on the same images every time."""
    if count < 1:
        raise ConfigError(f"TEST.INT8_CALIBRATION_IMAGES must be at least 1, got {count}")
    chosen = np.random.default_rng(seed).choice(total, size=min(count, total), replace=False)
    return np.sort(chosen)


class _Batches:
    """onnxruntime's calibration data reader over an (N, 3, H, W) array (its reader class
    takes any object with ``get_next`` as one)."""

    def __init__(self, input_name: str, inputs: np.ndarray) -> None:
        self._feeds: Iterator[dict[str, np.ndarray]] = iter(
            {input_name: np.ascontiguousarray(inputs[i : i + CALIBRATION_BATCH], np.float32)}
            for i in range(0, len(inputs), CALIBRATION_BATCH)
        )

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._feeds, None)


def quantize_export(onnx_path: str | Path, target: str | Path, inputs: np.ndarray) -> Path:
    """Write the int8 QDQ graph of the float32 export ``onnx_path`` as ``target``, atomically,
    calibrated on ``inputs`` (N, 3, H, W)."""
    import onnx
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    graph = onnx.load(str(onnx_path), load_external_data=False).graph
    outputs = {output.name for output in graph.output}
    float_nodes = [node.name for node in graph.node if outputs & set(node.output)]
    reader = _Batches(graph.input[0].name, inputs)
    quiet = logging.getLogger()  # its advice to pre-process: the export is already folded
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        with atomic_path(target) as tmp:
            quantize_static(
                str(onnx_path), str(tmp), reader, quant_format=QuantFormat.QDQ,
                per_channel=True, weight_type=QuantType.QInt8,
                activation_type=QuantType.QUInt8, op_types_to_quantize=list(QUANTIZED_OPS),
                nodes_to_exclude=float_nodes,
            )  # fmt: skip
    finally:
        quiet.setLevel(level)
    return Path(target)


def int8_export(onnx_path: str | Path, cfg: CfgNode,
                calibration: CalibrationInputs | None) -> Path:  # fmt: skip
    """The cached int8 graph of ``onnx_path``, quantised on ``calibration()`` on a miss."""
    target = quantized_path(onnx_path, cfg)
    if target.is_file():
        return target
    if calibration is None:
        raise ConfigError(
            f"TEST.BACKEND {INT8_BACKEND} needs calibration images and this caller gives none: "
            "use TEST.BACKEND onnxruntime"
        )
    return quantize_export(onnx_path, target, calibration())
