"""DistributedDataParallel training under torchrun: two CPU processes on the gloo backend."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from common.checkpoint import load_training_checkpoint
from common.config import load_config
from common.state_dict import load_state_dict_strict
from common.synthetic.motion import generate_motion_dataset
from HRNet_bbox import engine as bbox_engine
from HRNet_keypoint import engine as keypoint_engine
from tests.conftest import ROOT, load_tool

pytestmark = pytest.mark.slow  # training, the chain, DDP or the benchmark

RUN_FILES = ("checkpoint.pth", "model_best.pth", "final_state.pth")


@pytest.fixture(scope="module")
def small_motion(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("ddp") / "data"
    generate_motion_dataset(root, 24, 4, width=192, height=108, seed=0)
    return root


def train_opts(root: Path, out: Path) -> list[str]:
    return ["OUTPUT_DIR", str(out), "LOG_DIR", str(out / "tb"), "DATASET.ROOT", str(root),
            "TRAIN.END_EPOCH", "1", "TRAIN.BATCH_SIZE_PER_GPU", "4"]  # fmt: skip


def torchrun_train(cfg_path: str, opts: list[str]) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               "--nproc_per_node", "2", "tools/train.py", "--cfg", cfg_path,
               "--test_option", "False", *opts]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)  # fmt: skip


def run_dir(out: Path, cfg_path: str) -> Path:
    (folder,) = {p.parent for p in out.glob(f"lr_*/*/*/{Path(cfg_path).stem}/*.pth")}
    return folder


def test_two_processes_train_in_sync_and_save_single_process_files(small_motion, tmp_path):
    cfg_path = "experiments/keypoint/tiny_cpu_keypoint.yaml"
    out = tmp_path / "ddp"
    result = torchrun_train(cfg_path, train_opts(small_motion, out))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    folder = run_dir(out, cfg_path)
    log = "".join(p.read_text() for p in folder.glob("*_train.log"))
    assert "2 process(es)" in log
    # Rank 0 saves; every rank's parameters are compared before it does.
    assert "weights identical on all 2 processes" in log

    single = tmp_path / "single"
    load_tool("train").main(["--cfg", cfg_path, "--test_option", "False",
                             *train_opts(small_motion, single)])  # fmt: skip
    single_folder = run_dir(single, cfg_path)
    for name in RUN_FILES:
        assert (folder / name).is_file(), name
    distributed = load_training_checkpoint(folder / "checkpoint.pth")
    reference = load_training_checkpoint(single_folder / "checkpoint.pth")
    assert set(distributed) == set(reference)
    assert distributed["epoch"] == reference["epoch"] == 1
    assert {k: v.shape for k, v in distributed["state_dict"].items()} == {
        k: v.shape for k, v in reference["state_dict"].items()}
    cfg = load_config(cfg_path, [])
    for name in ("model_best.pth", "final_state.pth"):
        load_state_dict_strict(keypoint_engine.build_model(cfg, is_train=False), folder / name)
        assert not any(k.startswith("module.") for k in torch.load(folder / name))


def test_reference_box_head_trains_under_ddp(small_motion, tmp_path):
    """Its never-called ``bn1`` gets no gradient, which DDP refuses unless it is frozen."""
    cfg_path = "experiments/bbox/tiny_cpu_bbox.yaml"
    out = tmp_path / "ddp"
    result = torchrun_train(cfg_path, [*train_opts(small_motion, out),
                                       "MODEL.BBOX_HEAD", "reference"])  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    cfg = load_config(cfg_path, ["MODEL.BBOX_HEAD", "reference"])
    load_state_dict_strict(bbox_engine.build_model(cfg, is_train=False),
                           run_dir(out, cfg_path) / "final_state.pth")  # fmt: skip
