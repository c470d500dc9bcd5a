"""Every tool answers a user's mistake with one ``error:`` line and exit status 2, never a
traceback; ``--debug`` (or ``HRNET_DEBUG=1``) shows the traceback. Each case runs the tool as a
user would, in its own process; most stop before any model is built."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import torch

from common import stage_data
from common.box_files import write_box_annotations
from common.config import load_config
from common.synthetic.motion import generate_motion_dataset
from stages import stage_for
from tests.conftest import ROOT

# every case starts a tool in its own process (about 10 s each on 2 cores)
pytestmark = pytest.mark.slow

KP_CFG = ROOT / "experiments/keypoint/tiny_cpu_keypoint.yaml"
BOX_CFG = ROOT / "experiments/bbox/tiny_cpu_bbox.yaml"
WIDTH, HEIGHT = 128, 72


def run_tool(name: str, *args: object) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "tools" / f"{name}.py"), *map(str, args)],
        capture_output=True, text=True, cwd=ROOT, timeout=300,
        env={**os.environ, "HRNET_DEBUG": ""},
    )  # fmt: skip


def assert_user_error(result: subprocess.CompletedProcess, *named: str) -> str:
    """Exit 2, no traceback, one ``error:`` line naming each of ``named``; returns the line."""
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, result.stderr
    for text in named:
        assert text in lines[0], lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    """Clean data, broken copies of it, and run folders with a (misfitting) checkpoint."""
    root = tmp_path_factory.mktemp("cli_errors")
    data = root / "data"
    generate_motion_dataset(data, 10, 4, width=WIDTH, height=HEIGHT, seed=1)
    (root / "empty").mkdir()
    (root / "no_model").mkdir()

    bad_csv = root / "bad_csv"
    shutil.copytree(data, bad_csv)
    lines = (bad_csv / "train_df.csv").read_text().splitlines()
    cells = lines[3].split(",")
    cells[5] = "abc"
    lines[3] = ",".join(cells)
    (bad_csv / "train_df.csv").write_text("\n".join(lines) + "\n")

    cfg = load_config(KP_CFG, ["DATASET.ROOT", str(data)])
    names = stage_data.test_image_names(cfg)
    records = [{"filename": n, "bbox": [10.0, 10.0, 40.0, 40.0], "width": WIDTH,
                "height": HEIGHT} for n in names]  # fmt: skip
    for folder, fault in (("bad_box", "garbage"), ("short_box", "missing")):
        shutil.copytree(data, root / folder)
        box_file = root / folder / "annotations/test_annotation.pkl"
        if fault == "garbage":
            box_file.parent.mkdir(parents=True, exist_ok=True)
            box_file.write_bytes(b"not a pickle at all")
        else:
            write_box_annotations(box_file, records[:1] + records[2:])

    state = stage_for("keypoint").build_model(cfg, is_train=False).state_dict()
    (root / "keypoint_model").mkdir()
    torch.save(state, root / "keypoint_model/model_best.pth")
    state.pop("final_layer.bias")
    (root / "one_key_short").mkdir()
    torch.save(state, root / "one_key_short/model_best.pth")
    (root / "typo.yaml").write_text("TASK: keypoint\nTRAIN:\n  END_EPOHC: 3\n")
    return root


def opts(work: Path, data: str = "data") -> list[str]:
    """Overrides for one run: its own output folder, since a run folder is locked while used."""
    out = Path(tempfile.mkdtemp(dir=work, prefix="out_"))
    return ["OUTPUT_DIR", out, "LOG_DIR", out / "tb", "DATASET.ROOT", work / data]


@pytest.mark.parametrize("tool, args", [
    ("train", ["--cfg", "experiments/keypoint/nope.yaml"]),
    ("pipeline", ["--bbox-cfg", "experiments/keypoint/nope.yaml", "--bbox-output", ".",
                  "--keypoint-cfg", str(KP_CFG), "--keypoint-output", "."]),
])  # fmt: skip
def test_a_wrong_cfg_path_is_named(tool, args):
    assert_user_error(run_tool(tool, *args), "experiments/keypoint/nope.yaml", "--cfg")


def test_an_output_path_without_model_best_is_named(work):
    result = run_tool("test", "--cfg", KP_CFG, "--output_path", work / "no_model",
                      *opts(work), "TEST.BOX_SOURCE", "truth")  # fmt: skip
    assert_user_error(result, str(work / "no_model/model_best.pth"), "train first")


def test_a_dataset_root_without_train_df_is_named(work):
    result = run_tool("train", "--cfg", KP_CFG, *opts(work, "empty"))
    assert_user_error(result, str(work / "empty/train_df.csv"))


def test_a_missing_box_file_is_named(work):
    result = run_tool("test", "--cfg", KP_CFG, "--output_path", work / "keypoint_model",
                      *opts(work))  # fmt: skip
    assert_user_error(result, str(work / "data/annotations/test_annotation.pkl"),
                      "TEST.BOX_SOURCE truth")  # fmt: skip


def test_a_checkpoint_missing_one_key_names_it(work):
    result = run_tool("test", "--cfg", KP_CFG, "--output_path", work / "one_key_short",
                      *opts(work), "TEST.BOX_SOURCE", "truth")  # fmt: skip
    assert_user_error(result, "model_best.pth does not fit the model", "final_layer.bias")


def test_a_keypoint_checkpoint_under_a_box_config_says_the_model_is_the_wrapped_one(work):
    result = run_tool("test", "--cfg", BOX_CFG, "--output_path", work / "keypoint_model",
                      *opts(work))  # fmt: skip
    assert_user_error(result, "the model's keys carry the prefix '0.'",
                      "the checkpoint holds a bare HRNet")  # fmt: skip
    assert "it holds a wrapped model" not in result.stderr


@pytest.mark.parametrize("extra, named", [
    (["TRAIN.LRR", "0.1"], ["TRAIN.LRR", "the command line", "did you mean TRAIN.LR?"]),
    (["TRAIN.END_EPOCH", "abc"], ["TRAIN.END_EPOCH", "the command line", "type int"]),
])  # fmt: skip
def test_config_mistakes_on_the_command_line_are_named(work, extra, named):
    assert_user_error(run_tool("train", "--cfg", KP_CFG, *opts(work), *extra), *named)


def test_an_unknown_key_in_a_yaml_file_names_the_file_and_the_closest_key(work):
    result = run_tool("train", "--cfg", work / "typo.yaml", *opts(work))
    assert_user_error(result, "TRAIN.END_EPOHC", str(work / "typo.yaml"), "TRAIN.END_EPOCH")


def test_a_malformed_csv_row_is_named(work):
    assert_user_error(run_tool("train", "--cfg", KP_CFG, *opts(work, "bad_csv")),
                      str(work / "bad_csv/train_df.csv"), "abc")  # fmt: skip


@pytest.mark.parametrize("folder, named", [
    ("bad_box", ["test_annotation.pkl", "not a readable pickle"]),
    ("short_box", ["test_annotation.pkl", "1 test images have no box record"]),
])  # fmt: skip
def test_a_bad_box_file_is_named(work, folder, named):
    result = run_tool("test", "--cfg", KP_CFG, "--output_path", work / "keypoint_model",
                      *opts(work, folder))  # fmt: skip
    assert_user_error(result, *named)


def test_the_other_tools_name_their_missing_inputs(work):
    missing = work / "none.csv"
    truth = work / "data/test_df.csv"
    assert_user_error(run_tool("score", "--pred", missing, "--truth", truth), str(missing))
    assert_user_error(run_tool("visualize", "--pred", missing, "--images", work,
                               "--out", work / "pictures"), str(missing))  # fmt: skip
    assert_user_error(run_tool("export_onnx", "--cfg", KP_CFG, "--weights", work / "no.pth",
                               "--out", work / "m.onnx"), str(work / "no.pth"))  # fmt: skip
    assert_user_error(run_tool("pipeline", "--bbox-cfg", BOX_CFG, "--bbox-output",
                               work / "no_model", "--keypoint-cfg", KP_CFG, "--keypoint-output",
                               work / "keypoint_model", *opts(work)),
                      str(work / "no_model/model_best.pth"))  # fmt: skip
    assert_user_error(run_tool("derive_motion_stats", "--train-csv", missing, "--out",
                               work / "stats.json"), str(missing))  # fmt: skip
    assert_user_error(run_tool("make_synthetic", "motion", "--out", work / "synthetic",
                               "--width", "10"),
                      "argument --width", "at least 32", "--help")  # fmt: skip
    assert_user_error(run_tool("benchmark", "--sizes", "w99", "--out", work / "b.json"),
                      "--sizes", "w99")  # fmt: skip


def test_the_demo_passes_a_steps_user_error_on(work):
    result = run_tool("demo", "--data", work / "bad_csv", "--out", work / "demo")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "train_df.csv" in result.stderr and "stage one: train the box model" in result.stderr


def test_debug_shows_the_traceback_of_a_user_error():
    result = run_tool("train", "--debug", "--cfg", "experiments/keypoint/nope.yaml")
    assert result.returncode == 1
    assert "Traceback" in result.stderr and "MissingFileError" in result.stderr


def test_run_tool_exit_statuses(monkeypatch, capsys):
    from common.cli import run_tool as run
    from common.errors import UserError

    monkeypatch.setattr(sys, "argv", ["tool"])
    monkeypatch.delenv("HRNET_DEBUG", raising=False)

    def user_error():
        raise UserError("x.csv: row 3 is broken; fix it")

    def interrupted():
        raise KeyboardInterrupt

    def bug():
        raise ZeroDivisionError("a bug")

    def read_only():
        raise PermissionError(13, "Permission denied", "/out/result.csv")

    for main, status in ((user_error, 2), (interrupted, 130), (lambda: 3, 3), (lambda: {}, 0),
                         (read_only, 2)):  # fmt: skip
        with pytest.raises(SystemExit) as exit_info:
            run(main)
        assert exit_info.value.code == status
    assert capsys.readouterr().err.splitlines() == [
        "error: x.csv: row 3 is broken; fix it", "interrupted",
        "error: permission denied: /out/result.csv: choose a path you may write to, or fix its "
        "permissions"]  # fmt: skip
    with pytest.raises(ZeroDivisionError):
        run(bug)
    monkeypatch.setenv("HRNET_DEBUG", "1")
    with pytest.raises(UserError):
        run(user_error)
    monkeypatch.setenv("HRNET_DEBUG", "")
    monkeypatch.setattr(sys, "argv", ["tool", "--debug", "--cfg", "x"])
    with pytest.raises(UserError):
        run(user_error)
    assert sys.argv == ["tool", "--cfg", "x"]


@pytest.mark.parametrize("option, value", [("--image-size", "10by10"), ("--image-size", "8x8"),
                                           ("--rounds", "0"), ("--images", "-3")])  # fmt: skip
def test_benchmark_refuses_bad_numbers_before_it_starts(option: str, value: str) -> None:
    result = run_tool("benchmark", "--against-reference", option, value)
    assert_user_error(result, "benchmark.py", f"argument {option}:", repr(value))
