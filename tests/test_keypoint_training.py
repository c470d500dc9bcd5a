"""Stage two through the real tools: learning, bit-identical seeding, exact resume after a kill,
and the test-time output."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import pty
import re
import signal
import struct
import subprocess
import sys
import termios
from pathlib import Path

import pandas as pd
import pytest
import torch

from common.boxes import keypoint_extent_boxes
from common.config import load_config
from common.metrics import mean_pose_prediction, rmse
from common.motion_data import keypoints_array, read_keypoint_csv
from common.run_dir import output_dir_for
from tests.conftest import ROOT, load_tool

pytestmark = pytest.mark.slow  # training, the chain, DDP or the benchmark

CFG = "experiments/keypoint/tiny_cpu_keypoint.yaml"


def opts(data: Path, out: Path, *extra: str) -> list[str]:
    return ["OUTPUT_DIR", str(out), "LOG_DIR", str(out / "tb"), "DATASET.ROOT", str(data), *extra]


def run_dir(data: Path, out: Path, *extra: str) -> Path:
    return output_dir_for(load_config(ROOT / CFG, opts(data, out, *extra)), CFG)


def train(data: Path, out: Path, *extra: str) -> Path:
    load_tool("train").main(["--cfg", str(ROOT / CFG), "--test_option", "False",
                             *opts(data, out, *extra)])  # fmt: skip
    return run_dir(data, out, *extra)


def same_weights(a: Path, b: Path) -> bool:
    sa = torch.load(a, weights_only=True)
    sb = torch.load(b, weights_only=True)
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_tiny_model_learns_well_beyond_the_mean_pose(learning_motion, tmp_path):
    """The issue's criterion: validation RMSE below half that of the mean pose on the same
    validation split; the test images (unseen subjects) through tools/test.py must also beat it
    clearly."""
    data = learning_motion
    out_dir = train(data, tmp_path)
    table = read_keypoint_csv(data / "train_df.csv").set_index("image")
    splits = json.loads((out_dir / "splits.json").read_text())
    train_kps = keypoints_array(table.loc[splits["train"]].reset_index())
    val_kps = keypoints_array(table.loc[splits["val"]].reset_index())
    val_baseline = rmse(mean_pose_prediction(train_kps, keypoint_extent_boxes(val_kps)), val_kps)
    val_rmse = json.loads((out_dir / "train_summary.json").read_text())["best_perf"]

    load_tool("test").main(["--cfg", str(ROOT / CFG), "--output_path", str(out_dir),
                            *opts(data, tmp_path, "TEST.BOX_SOURCE", "truth")])  # fmt: skip
    result = read_keypoint_csv(out_dir / "result.csv")
    template = pd.read_csv(data / "sample_submission.csv")
    assert list(result.columns) == list(template.columns)
    assert list(result["image"]) == list(template["image"])
    truth = read_keypoint_csv(data / "test_df.csv").set_index("image").loc[result["image"]]
    truth_kps = keypoints_array(truth.reset_index())
    test_rmse = rmse(keypoints_array(result), truth_kps)
    test_baseline = rmse(mean_pose_prediction(train_kps, keypoint_extent_boxes(truth_kps)),
                         truth_kps)  # fmt: skip
    print(f"validation RMSE {val_rmse:.2f} px vs mean pose {val_baseline:.2f} px; "
          f"test RMSE {test_rmse:.2f} px vs mean pose {test_baseline:.2f} px")  # fmt: skip
    assert val_rmse < 0.5 * val_baseline
    assert test_rmse < 0.65 * test_baseline


def test_same_seed_gives_bit_identical_weights_and_another_seed_does_not(tiny_motion, tmp_path):
    short = ("TRAIN.END_EPOCH", "1")
    a = train(tiny_motion, tmp_path / "a", *short)
    b = train(tiny_motion, tmp_path / "b", *short)
    c = train(tiny_motion, tmp_path / "c", *short, "RANDOMSEED", "7")
    assert same_weights(a / "final_state.pth", b / "final_state.pth")
    assert not same_weights(a / "final_state.pth", c / "final_state.pth")


def test_killed_run_resumes_to_the_same_weights_and_best_model(tiny_motion, tmp_path):
    extra = ("TRAIN.END_EPOCH", "3", "AUTO_RESUME", "True", "TRAIN.LR_STEP", "[2, 3]")
    reference = train(tiny_motion, tmp_path / "whole", *extra)

    killed_root = tmp_path / "killed"
    killed = run_dir(tiny_motion, killed_root, *extra)
    command = [sys.executable, "tools/train.py", "--cfg", CFG, "--test_option", "False",
               *opts(tiny_motion, killed_root, *extra)]  # fmt: skip
    # The same thread count as this process: CPU float sums depend on it, and both halves of the
    # killed run must compute exactly what the uninterrupted one did.
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": str(torch.get_num_threads())}
    # On a terminal (a pseudo-terminal here) the tools draw progress bars; in a pipe they
    # would not, and the bar is how this test sees a batch of epoch 1 done.
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 120, 0, 0))  # a bar's width
    process = subprocess.Popen(command, cwd=ROOT, stdout=follower, stderr=follower, env=env)
    os.close(follower)
    # Kill it during epoch 1, after its first batch: epoch 0's checkpoint is on disk by then.
    # (Universal newlines read tqdm's carriage-return updates as lines.)
    in_epoch_one = re.compile(r"epoch 1 train:.*\| [1-9]\d*/")
    seen = False
    with open(leader, encoding="utf-8", errors="replace", newline=None) as terminal:
        with contextlib.suppress(OSError):  # EIO: the terminal closed (the run ended)
            for line in terminal:
                seen = bool(in_epoch_one.search(line))
                if seen:
                    break
    assert seen, "no progress bar of epoch 1 on the terminal"
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL
    checkpoint = torch.load(killed / "checkpoint.pth", weights_only=True)
    assert checkpoint["epoch"] == 1 and not (killed / "final_state.pth").exists()

    train(tiny_motion, killed_root, *extra)
    assert same_weights(reference / "final_state.pth", killed / "final_state.pth")
    assert same_weights(reference / "model_best.pth", killed / "model_best.pth")


def test_test_tool_explains_a_missing_box_file(tiny_motion, tmp_path):
    out_dir = train(tiny_motion, tmp_path, "TRAIN.END_EPOCH", "1")
    with pytest.raises(FileNotFoundError, match="run stage one first"):
        load_tool("test").main(["--cfg", str(ROOT / CFG), "--output_path", str(out_dir),
                                *opts(tiny_motion, tmp_path)])  # fmt: skip
    assert not (out_dir / "result.csv").exists()
