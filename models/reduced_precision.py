"""``TEST.PRECISION``: the float32 answer, or bfloat16 where it was measured to be nearly free.

On a CPU with native bfloat16 (AVX512-BF16, AMX) HRNet's convolutions run several times faster in
bfloat16 than in float32, at the price of an 8-bit mantissa in every activation, which can move
a joint whose heatmap peak is flat. ``benchmarks/precision.py --models w32`` measured that price
per stage and engine on the W32 256x192 configs trained until validation stopped improving
(README, "Reduced precision per stage"): ``BF16_COST_PX`` holds the RMSE change against fp32
onnxruntime, stage one's in the chain, stage two's on true boxes. int8 is never chosen here: it
moved stage two by +3.0 px in the same run, and it needs the training images to calibrate.

- 'fp32': always float32 (the switch off).
- 'bf16': bfloat16 on whichever engine runs (``TEST.BF16 True`` says the same).
- 'auto' (the default): bfloat16 only when the forward runs on a CPU with native bfloat16 and
  the engine (``TEST.BACKEND``, or for 'auto' the engines it may pick) was measured under
  ``BF16_LIMIT_PX`` for the stage's ``TASK``; float32 everywhere else: GPUs, older CPUs, the
  'torch' and 'onnxruntime' backends, detectors and any stage not measured.
"""

from __future__ import annotations

import functools
from pathlib import Path

import torch
from yacs.config import CfgNode

PRECISIONS = ("auto", "fp32", "bf16")
BF16_LIMIT_PX = 0.2
# TASK: {engine: RMSE change in px against fp32}, one run (README, "Reduced precision per
# stage"): W32 stage one stopped at epoch 23 (best box corner error 45.4 px at epoch 13), stage
# two at epoch 50 (17.06 px on true boxes against 34.07 px for the mean pose). The limit is on
# the size of the change either way: a change is luck in its sign, not in its size.
BF16_COST_PX: dict[str, dict[str, float]] = {
    "bbox": {"openvino": -0.024, "fused": -0.221},
    "keypoint": {"openvino": -0.011, "fused": -0.005},
}
NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16")


@functools.cache
def cpu_flags() -> frozenset[str]:
    """The instruction-set flags of this machine's CPU (Linux ``/proc/cpuinfo``; empty
    elsewhere, so other systems stay in float32 under 'auto')."""
    cpuinfo = Path("/proc/cpuinfo")
    text = cpuinfo.read_text() if cpuinfo.is_file() else ""
    line = next((line for line in text.splitlines() if line.startswith("flags")), "")
    return frozenset(line.partition(":")[2].split())


def native_bf16() -> bool:
    """Whether this CPU computes bfloat16 natively (otherwise it is emulated, and slower)."""
    return any(flag in cpu_flags() for flag in NATIVE_BF16_FLAGS)


def bf16_engines(task: str) -> tuple[str, ...]:
    """The engines whose bfloat16 moved ``task``'s RMSE by less than ``BF16_LIMIT_PX``."""
    costs = BF16_COST_PX.get(task, {})
    return tuple(engine for engine, px in costs.items() if abs(px) < BF16_LIMIT_PX)


def measured_engines(cfg: CfgNode, engines: tuple[str, ...]) -> tuple[str, ...]:
    """``engines`` that 'auto' may pick for a resolved ``cfg``: when 'auto' chose bfloat16,
    only those measured under the limit for its stage."""
    if cfg.TEST.BF16 and cfg.TEST.PRECISION == "auto":
        return tuple(engine for engine in engines if engine in bf16_engines(str(cfg.TASK)))
    return engines


def auto_bf16(task: str, engines: tuple[str, ...], on_cpu: bool) -> bool:
    """What ``TEST.PRECISION auto`` means for this stage when the forward runs on one of
    ``engines`` (one backend, or those 'auto' may pick): bfloat16 when one of them qualifies."""
    if not (on_cpu and native_bf16()):
        return False
    return any(engine in bf16_engines(task) for engine in engines)


def with_precision(cfg: CfgNode, device: torch.device, auto_engines: tuple[str, ...]) -> CfgNode:
    """``cfg`` with ``TEST.BF16`` set to whether this forward runs in bfloat16 on ``device``
    (``auto_engines``: those ``TEST.BACKEND auto`` may pick), and ``TEST.PRECISION`` left
    'auto' only where 'auto' chose bfloat16, so that 'auto' then picks among the engines
    measured for it; resolving twice gives the same. ``common.config.load_config`` has turned
    ``TEST.BF16 True`` into 'bf16'. ``TEST.BN_BATCH_STATS`` runs 'auto' as 'torch'."""
    precision, bf16 = str(cfg.TEST.PRECISION), bool(cfg.TEST.BF16)
    backend = str(cfg.TEST.BACKEND)
    if cfg.TEST.BN_BATCH_STATS and backend == "auto":
        backend = "torch"  # the only engine that keeps batch norm
    if precision == "bf16":
        bf16 = True
    elif precision == "fp32":
        bf16 = False
    elif not bf16:  # 'auto', not resolved yet
        engines = auto_engines if backend == "auto" else (backend,)
        bf16 = auto_bf16(str(cfg.TASK), engines, device.type == "cpu")
        precision = "auto" if bf16 else "fp32"
    copy = cfg.clone()
    copy.defrost()
    copy.TEST.BACKEND, copy.TEST.PRECISION, copy.TEST.BF16 = backend, precision, bf16
    copy.freeze() if cfg.is_frozen() else None
    return copy


def precision_of(resolved: CfgNode) -> str:
    """For the log: the arithmetic of a config resolved by ``with_precision``, and why."""
    if not resolved.TEST.BF16:
        return "float32"
    why = f"measured under {BF16_LIMIT_PX} px" if resolved.TEST.PRECISION == "auto" else \
        "asked for"  # fmt: skip
    return f"bfloat16 ({why}; TEST.PRECISION fp32 turns it off)"
