"""Issue 23, the tool side: config values refused when the config is loaded (before any data or
model), ``tools/gesture_report.py`` and ``tools/make_synthetic.py`` refusing bad options up
front, and a tool that fails (or is interrupted) leaving no half-made output folder. Each case
runs the tool as a user would, in its own process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.test_cli_errors import KP_CFG, assert_user_error
from tests.test_cli_errors import run_tool as run_cli

pytestmark = pytest.mark.slow  # each case starts a tool in its own process (3-10 s)


def assert_refused(result: subprocess.CompletedProcess, *named: str) -> None:
    """Exit 2, no traceback, one last line with ``error:`` (argparse's or ``run_tool``'s)."""
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert "error: " in last, result.stderr
    for text in named:
        assert text in last, last


@pytest.mark.parametrize("key, value, named", [
    ("TEST.DECODE", "darkk", ["'dark'", "one of"]),
    ("TEST.SCALES", "[0.0, 1.0]", ["above 0", "[0.0, 1.0]"]),
    ("TEST.SCALES", "[]", ["non-empty"]),
    ("GESTURE.NUM_FOLDS", "1", ["at least 2"]),
    ("GESTURE.FOLDS", "[0, 7]", ["GESTURE.NUM_FOLDS - 1 = 4"]),
    ("MODEL.IMAGE_SIZE", "[0, 64]", ["[width, height]"]),
    ("TEST_RATIO", "1.5", ["below 1"]),
    ("GESTURE.FLIP_PROB", "2.0", ["between 0 and 1"]),
    ("DATASET.FORMAT", "yolo", ["'coco'", "'yolo'"]),
    ("GESTURE.REFINER.PAIRS", "[[0, 42, 'tip_range', 'index']]", ["tip_x_range"]),
])  # fmt: skip
def test_train_refuses_a_bad_config_value_before_any_data(tmp_path, key, value, named):
    result = run_cli("train", "--cfg", KP_CFG, "OUTPUT_DIR", tmp_path / "out",
                     "DATASET.ROOT", tmp_path / "no_data", key, value)  # fmt: skip
    assert_user_error(result, key, "the command line", *named)
    assert not (tmp_path / "out").exists()


def test_a_bad_value_in_a_yaml_file_names_the_file(tmp_path):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(KP_CFG.read_text() + "\nTEST:\n  DECODE: darkk\n  SCALES: [1.0]\n")
    result = run_cli("test", "--cfg", cfg, "--output_path", tmp_path)
    assert_user_error(result, "TEST.DECODE", str(cfg), "'dark'")
    nan = tmp_path / "nan.yaml"
    nan.write_text(KP_CFG.read_text().replace("LR: 0.002", "LR: .nan"))
    assert_user_error(run_cli("test", "--cfg", nan, "--output_path", tmp_path), "TRAIN.LR",
                      str(nan), "finite")  # fmt: skip


def test_a_command_line_value_overrides_a_bad_file_value(tmp_path):
    """The value checked is the final one: a file's bad value fixed on the command line runs on
    (to the next check, the missing run folder)."""
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(KP_CFG.read_text() + "\nTEST:\n  DECODE: darkk\n")
    result = run_cli("test", "--cfg", cfg, "--output_path", tmp_path / "none",
                     "TEST.DECODE", "dark")  # fmt: skip
    assert_user_error(result, "--output_path", "does not exist")


def test_a_run_that_stops_on_a_user_error_says_why_in_its_log(tmp_path):
    result = run_cli("train", "--cfg", KP_CFG, "OUTPUT_DIR", tmp_path / "out",
                     "DATASET.ROOT", tmp_path / "no_data")  # fmt: skip
    line = assert_user_error(result, "DATASET.ROOT", "does not exist")
    logs = list((tmp_path / "out").rglob("*_train.log"))
    assert len(logs) == 1
    assert logs[0].read_text().splitlines()[-1].endswith(line)
    assert result.stderr.count(line) == 1  # the console still shows it once


@pytest.mark.parametrize("args, named", [
    (["--folds", "1"], ["--folds 1"]),
    (["--gesture-opts", "GESTURE.NOPE", "1"], ["GESTURE.NOPE", "did you mean"]),
    (["--gesture-opts", "GESTURE.REFINER.MODE", "fancy"], ["GESTURE.REFINER.MODE"]),
    (["--gesture-opts", "GESTURE.FOLDS", "[5]"], ["GESTURE.FOLDS"]),
    (["--bbox-epochs", "0"], ["--bbox-epochs"]),
    (["--width", "0"], ["--width"]),
    (["--rescore"], ["--rescore needs a finished run"]),
])  # fmt: skip
def test_gesture_report_refuses_before_it_makes_anything(tmp_path, args, named):
    work = tmp_path / "work"
    result = run_cli("gesture_report", "--work", work, *args)
    assert_refused(result, *named)
    assert not work.exists()


def test_gesture_report_refuses_a_work_path_that_is_a_file(tmp_path):
    work = tmp_path / "work.txt"
    work.write_text("mine")
    assert_refused(run_cli("gesture_report", "--work", work), "is a file")
    assert work.read_text() == "mine"


@pytest.mark.parametrize("args, named", [
    (["motion", "--width", "0"], ["--width", "at least 32"]),
    (["motion", "--train", "0", "--test", "0"], ["--train"]),
    (["motion", "--jpeg-quality", "500"], ["from 1 to 100"]),
    (["motion", "--max-frames", "0"], ["--max-frames"]),
    (["gesture", "--width", "0"], ["--width"]),
    (["gesture", "--frames", "1"], ["at least 2"]),
])  # fmt: skip
def test_make_synthetic_refuses_bad_sizes_and_leaves_no_folder(tmp_path, args, named):
    out = tmp_path / "data"
    assert_refused(run_cli("make_synthetic", *args, "--out", out), *named)
    assert not out.exists()


def test_make_synthetic_refuses_an_out_path_that_is_a_file(tmp_path):
    out = tmp_path / "data"
    out.write_text("mine")
    result = run_cli("make_synthetic", "motion", "--out", out, "--train", "2", "--test", "1",
                     "--width", "64", "--height", "48")  # fmt: skip
    assert_user_error(result, str(out), "is a file")
    assert out.read_text() == "mine"


def _interrupt_once(command: list[str], appears: Path, timeout: float = 120) -> int:
    """Start ``command``, send Ctrl-C (SIGINT) once ``appears`` exists; its exit status. The
    child gets SIGINT's default action back, as from a terminal: a test run started in the
    background by a shell would otherwise pass it on ignored, and Python would never see it."""
    def default_sigint() -> None:
        signal.signal(signal.SIGINT, signal.SIG_DFL)

    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True, preexec_fn=default_sigint,
                               env={**os.environ, "HRNET_DEBUG": ""})  # fmt: skip
    deadline = time.monotonic() + timeout
    while not appears.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert appears.exists(), "the tool ended before it wrote anything"
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=timeout)
    assert "Traceback" not in stderr, stderr
    return process.returncode


def test_an_interrupted_make_synthetic_leaves_no_half_made_folder(tmp_path):
    out = tmp_path / "data"
    status = _interrupt_once(
        [sys.executable, str(ROOT / "tools/make_synthetic.py"), "motion", "--out", str(out),
         "--train", "400", "--test", "100", "--width", "640", "--height", "360"],
        out / "images",
    )  # fmt: skip
    assert status == 130
    assert not out.exists()


def test_an_interrupted_make_synthetic_keeps_a_folder_that_was_there(tmp_path):
    out = tmp_path / "data"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    status = _interrupt_once(
        [sys.executable, str(ROOT / "tools/make_synthetic.py"), "motion", "--out", str(out),
         "--train", "400", "--test", "100", "--width", "640", "--height", "360"],
        out / "images",
    )  # fmt: skip
    assert status == 130
    assert (out / "notes.txt").read_text() == "mine"


def test_an_interrupted_gesture_report_leaves_no_half_made_work_folder(tmp_path):
    work = tmp_path / "work"
    status = _interrupt_once(
        [sys.executable, str(ROOT / "tools/gesture_report.py"), "--work", str(work),
         "--train-clips", "8", "--test-clips", "2", "--width", "96", "--height", "64"],
        work / "output",  # the data are written, stage one has started
    )  # fmt: skip
    assert status == 130
    assert not work.exists()
