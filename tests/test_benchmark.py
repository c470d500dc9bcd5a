"""tools/benchmark.py --quick: every row is measured and written, and the chains agree."""

from __future__ import annotations

import json

import pytest

from tests.conftest import load_tool

pytestmark = pytest.mark.slow  # training, the chain, DDP or the benchmark

EXPECTED = {
    "loader_stage1": {"plain", "reduced_decode_1/1"},  # 320x180 images: no reduction fits
    "loader_both_stages": {"plain", "shared_decode"},
    "train_loader_stage1": {"plain", "reduced_decode", "reduced_decode_2_workers"},
    "train_loader_stage2": {"plain", "reduced_decode", "reduced_decode_2_workers"},
    "stage1_forward": {"plain", "fused", "onnxruntime"},
    "stage2_forward": {"plain", "fused", "onnxruntime"},
    "stage2_forward_flip": {"plain", "fused", "onnxruntime"},
    "chain": {"plain", "chain_fused", "chain_onnxruntime"},
    "train_step": {"plain", "channels_last"},
}


def test_quick_benchmark_writes_every_row(tmp_path):
    out = tmp_path / "benchmark.json"
    returned = load_tool("benchmark").main(["--quick", "--out", str(out)])
    report = json.loads(out.read_text())
    assert report == json.loads(json.dumps(returned))
    assert report["matmul_peak_gflops"] > 0
    runs = report["matmul_runs_gflops"]  # per library: the peak is the best of all
    assert all(set(run) == {"torch", "numpy", "onnxruntime"} for run in runs)
    assert report["matmul_peak_gflops"] == max(max(run.values()) for run in runs)
    tiny = report["sizes"]["tiny"]
    assert tiny["gflop_per_image"]["stage1"] > 0 and tiny["gflop_per_image"]["stage2"] > 0
    found: dict[str, set[str]] = {}
    for row in tiny["rows"]:
        found.setdefault(row["row"], set()).add(row["variant"])
        assert row["seconds"] > 0 and row["images_per_s"] > 0 and row["speed_ratio"] > 0
        assert row["peak_mib"] >= 0
        if row["row"].endswith("forward") or row["row"].endswith("flip"):
            assert row["gflops"] > 0
        if row["variant"] == "plain":
            assert row["speed_ratio"] == 1.0
    assert found == EXPECTED
    for backend in ("fused", "onnxruntime"):
        assert tiny["parity"][backend]["result_csv_max_abs_px"] <= 0.05
        assert tiny["parity"][backend]["boxes_max_abs_px"] <= 0.05
