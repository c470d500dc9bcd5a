"""``TEST.PRECISION`` (issue 24): float32 unless bfloat16 was measured to cost under 0.2 px for
the stage and engine, on a CPU with native bfloat16; the older ``TEST.BF16`` still read; the
switch off; and the default backend ('auto') leaving nothing beside weights it cannot write to.

The measured table and the CPU's flags are swapped in with monkeypatch, so each rule is checked
on every machine, whatever the CPU of the one running the tests.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from benchmarks.against_reference import chain_options
from common.config import load_config
from common.errors import ConfigError
from HRNet_keypoint import engine as keypoint_engine
from models import backends, reduced_precision
from models.openvino_backend import OpenVinoModel
from tests.conftest import ROOT
from tests.test_backends import BBOX_CFG, CPU, KEYPOINT_CFG, saved_random_model

MEASURED = {"keypoint": {"openvino": 0.05, "fused": 0.45}, "bbox": {"openvino": 0.31}}


@pytest.fixture
def bf16_cpu(monkeypatch):
    """A CPU with native bfloat16 and a measured table in which only stage two's openvino
    qualifies."""
    monkeypatch.setattr(reduced_precision, "BF16_COST_PX", MEASURED)
    monkeypatch.setattr(reduced_precision, "native_bf16", lambda: True)


def resolved(cfg_path: str, *opts: str, device: str = "cpu"):
    cfg = load_config(cfg_path, list(opts))
    return reduced_precision.with_precision(cfg, torch.device(device), backends._auto_engines(cfg))


def test_the_defaults_are_auto():
    cfg = load_config(KEYPOINT_CFG)
    assert (cfg.TEST.BACKEND, cfg.TEST.PRECISION, cfg.TEST.BF16) == ("auto", "auto", False)


def test_auto_takes_bfloat16_only_where_it_was_measured_under_the_limit(bf16_cpu):
    assert resolved(KEYPOINT_CFG).TEST.BF16  # 'auto' may pick openvino
    assert resolved(KEYPOINT_CFG, "TEST.BACKEND", "openvino").TEST.BF16
    assert not resolved(KEYPOINT_CFG, "TEST.BACKEND", "fused").TEST.BF16  # 0.45 px
    assert not resolved(KEYPOINT_CFG, "TEST.BACKEND", "torch").TEST.BF16  # not measured
    assert not resolved(KEYPOINT_CFG, "TEST.BACKEND", "onnxruntime").TEST.BF16
    assert not resolved(BBOX_CFG).TEST.BF16  # stage one: 0.31 px
    assert not resolved(KEYPOINT_CFG, device="meta").TEST.BF16  # not on a CPU
    batch_stats = resolved(KEYPOINT_CFG, "TEST.BN_BATCH_STATS", "True")
    assert batch_stats.TEST.BACKEND == "torch" and not batch_stats.TEST.BF16
    assert resolved(KEYPOINT_CFG, "TEST.BN_BATCH_STATS", "True", "TEST.BACKEND",
                    "fused").TEST.BACKEND == "fused"  # refused later, with the reason


def test_auto_stays_float32_on_a_cpu_without_native_bfloat16(monkeypatch):
    monkeypatch.setattr(reduced_precision, "BF16_COST_PX", MEASURED)
    monkeypatch.setattr(reduced_precision, "native_bf16", lambda: False)
    assert not resolved(KEYPOINT_CFG, "TEST.BACKEND", "openvino").TEST.BF16


def test_the_switch_off_and_the_forced_value_win(bf16_cpu):
    assert not resolved(KEYPOINT_CFG, "TEST.PRECISION", "fp32").TEST.BF16
    forced = resolved(BBOX_CFG, "TEST.PRECISION", "bf16", "TEST.BACKEND", "fused")
    assert forced.TEST.BF16 and forced.TEST.PRECISION == "bf16"


def test_the_older_key_is_read_as_bf16_and_a_contradiction_is_refused():
    assert load_config(KEYPOINT_CFG, ["TEST.BF16", "True"]).TEST.PRECISION == "bf16"
    with pytest.raises(ConfigError, match="TEST.BF16 True .* TEST.PRECISION fp32"):
        load_config(KEYPOINT_CFG, ["TEST.BF16", "True", "TEST.PRECISION", "fp32"])
    with pytest.raises(ConfigError, match="TEST.PRECISION .* must be one of"):
        load_config(KEYPOINT_CFG, ["TEST.PRECISION", "int8"])


def test_auto_picks_among_the_measured_engines_only(bf16_cpu):
    cfg = resolved(KEYPOINT_CFG)
    assert backends._auto_candidates(cfg, CPU) == ("openvino",)
    asked = resolved(KEYPOINT_CFG, "TEST.PRECISION", "bf16")
    assert backends._auto_candidates(asked, CPU) == ("torch", "fused", "openvino")
    again = reduced_precision.with_precision(cfg, CPU, backends.BACKENDS)
    assert again.TEST.PRECISION == "auto" and again.TEST.BF16  # resolving twice gives the same


def test_the_loaded_model_runs_and_says_in_what(bf16_cpu, tmp_path, tiny_motion):
    run = saved_random_model(KEYPOINT_CFG, tmp_path / "run", [], seed=3)
    opts = ["DATASET.ROOT", str(tiny_motion)]
    model = keypoint_engine.load_model_for_test(load_config(KEYPOINT_CFG, opts), run, CPU)
    assert isinstance(model, OpenVinoModel) and model.precision == "bf16"
    assert model.runs_in.startswith("bfloat16") and "TEST.PRECISION fp32" in model.runs_in
    plain = keypoint_engine.load_model_for_test(
        load_config(KEYPOINT_CFG, [*opts, "TEST.PRECISION", "fp32"]), run, CPU)
    assert plain.runs_in == "float32"


def test_auto_writes_nothing_beside_weights_it_cannot_write_to(monkeypatch, tmp_path,
                                                                tiny_motion):  # fmt: skip
    run = saved_random_model(KEYPOINT_CFG, tmp_path / "run", [], seed=3)
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode: False if Path(path) == run and
                        mode == os.W_OK else real_access(path, mode))  # fmt: skip
    cfg = load_config(KEYPOINT_CFG, ["DATASET.ROOT", str(tiny_motion), "TEST.PRECISION", "fp32"])
    model = keypoint_engine.load_model_for_test(cfg, run, CPU)
    with torch.inference_mode():
        assert model(torch.zeros(1, *backends.input_shape_for(cfg)[1:])).isfinite().all()
    assert sorted(p.name for p in run.iterdir()) == ["model_best.pth"]


def test_the_contradiction_is_one_error_line_from_a_tool(tmp_path):
    done = subprocess.run(
        [sys.executable, "tools/test.py", "--cfg", KEYPOINT_CFG, "--output_path", str(tmp_path),
         "TEST.BF16", "True", "TEST.PRECISION", "fp32"],
        cwd=ROOT, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: TEST.BF16 True (the command line)")


def test_the_benchmark_times_named_backends_in_float32_and_default_as_it_comes():
    assert chain_options("default", "") == []
    assert chain_options("openvino", "") == ["TEST.BACKEND", "openvino", "TEST.PRECISION", "fp32"]
    assert chain_options("openvino", "bf16")[-1] == "bf16"


@pytest.mark.parametrize("spec", ["openvino:fp16", "tensorrt", "default:bf16"])
def test_a_backend_the_benchmark_does_not_know_is_one_error_line(spec):
    done = subprocess.run(
        [sys.executable, "tools/benchmark.py", "--against-reference", "--sizes", "w32",
         "--backends", f"onnxruntime,{spec}"],
        cwd=ROOT, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: --backends") and spec in lines[0]


def test_a_negative_training_batch_is_refused_before_any_work(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.precision", "--parts", "accuracy", "--train-batch",
         "-1", "--work", str(tmp_path / "work")],
        cwd=ROOT, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    assert done.returncode == 2 and "--train-batch" in done.stderr
    assert not (tmp_path / "work").exists()
