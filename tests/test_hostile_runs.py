"""Hostile runs through the tools: weights with NaN, predictions that are NaN or collapsed, a
second run into a locked folder and a new run over a finished one (issue 15, cases 1, 2, 8)."""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import torch

from common import io as common_io
from common import stage_data
from common.box_files import write_box_annotations
from common.checkpoint import CheckpointError, load_training_checkpoint, save_atomic
from common.config import load_config
from common.io import ImageReadError
from common.motion_data import DataFormatError, check_predictions, write_keypoint_csv
from common.run_dir import LOCK_NAME, RunFolderError, output_dir_for
from common.stage_data import load_training_table
from common.state_dict import NonFiniteWeightsError, load_state_dict_strict
from common.synthetic.motion import generate_motion_dataset
from HRNet_keypoint import engine as keypoint_engine
from models.hrnet import build_pose_hrnet
from models.weights import load_pretrained
from tests.conftest import ROOT, load_tool

KP_CFG = ROOT / "experiments/keypoint/tiny_cpu_keypoint.yaml"


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("hostile_runs") / "data"
    generate_motion_dataset(root, 8, 3, width=128, height=72, seed=3)
    return root


def opts(data: Path, out: Path, *extra: str) -> list[str]:
    return ["OUTPUT_DIR", str(out), "LOG_DIR", str(out / "tb"), "DATASET.ROOT", str(data),
            "TRAIN.END_EPOCH", "1", *extra]  # fmt: skip


def train(data: Path, out: Path, *flags: str) -> dict:
    return load_tool("train").main(
        ["--cfg", str(KP_CFG), "--test_option", "False", *flags, *opts(data, out)]
    )


def run_folder(data: Path, out: Path) -> Path:
    return output_dir_for(load_config(KP_CFG, opts(data, out)), KP_CFG)


def tiny_model() -> torch.nn.Module:
    return build_pose_hrnet(load_config(KP_CFG), is_train=False)


def poisoned_state(name_index: int = 3) -> tuple[dict, str]:
    state = tiny_model().state_dict()
    name = [key for key, value in state.items() if value.is_floating_point()][name_index]
    state[name] = state[name].clone()
    state[name].view(-1)[0] = float("nan")
    return state, name


# ------------------------------------------------------------------------- non-finite weights


def test_weights_with_nan_are_refused_for_test_and_as_pretrained(tmp_path):
    state, name = poisoned_state()
    path = tmp_path / "model_best.pth"
    torch.save(state, path)
    with pytest.raises(NonFiniteWeightsError, match=f"{path}: tensor {name} holds NaN"):
        load_state_dict_strict(tiny_model(), path)
    with pytest.raises(NonFiniteWeightsError, match=name):
        load_pretrained(tiny_model(), path)


def test_a_training_checkpoint_with_inf_is_not_resumed(tmp_path):
    state, name = poisoned_state(5)
    state[name].view(-1)[0] = float("inf")
    path = tmp_path / "checkpoint.pth"
    save_atomic({"epoch": 1, "state_dict": state, "optimizer": {}, "scheduler": {},
                 "best_perf": 1.0, "best_epoch": 0}, path)  # fmt: skip
    with pytest.raises(CheckpointError, match=f"tensor {name} holds NaN or inf.*cannot resume"):
        load_training_checkpoint(path)


@pytest.mark.slow
def test_test_tool_refuses_nan_weights_and_keeps_the_old_result(data, tmp_path):
    train(data, tmp_path)
    out = run_folder(data, tmp_path)
    (out / "result.csv").write_text("previous result\n")
    state, name = poisoned_state()
    torch.save(state, out / "model_best.pth")
    with pytest.raises(NonFiniteWeightsError, match=name):
        load_tool("test").main(["--cfg", str(KP_CFG), "--output_path", str(out),
                                *opts(data, tmp_path, "TEST.BOX_SOURCE", "truth")])  # fmt: skip
    assert (out / "result.csv").read_text() == "previous result\n"


def test_nan_predictions_are_refused_and_collapsed_ones_are_announced(tmp_path, caplog):
    path = tmp_path / "result.csv"
    path.write_text("previous\n")
    coords = np.random.default_rng(0).uniform(0, 100, (3, 24, 2))
    coords[1, 4, 0] = np.nan
    with pytest.raises(DataFormatError, match=r"result.csv not written.*1 images.*b\.jpg"):
        check_predictions(path, ["a.jpg", "b.jpg", "c.jpg"], coords)
    assert path.read_text() == "previous\n"
    coords[1] = 50.0  # every keypoint of b.jpg on one point
    with caplog.at_level(logging.WARNING):
        check_predictions(path, ["a.jpg", "b.jpg", "c.jpg"], coords)
    assert "every keypoint of 1 of 3 images lies on one point ('b.jpg')" in caplog.text


# ------------------------------------------------------------------------- run folders


@pytest.mark.slow
def test_a_finished_run_is_not_overwritten_without_overwrite(data, tmp_path):
    train(data, tmp_path)
    out = run_folder(data, tmp_path)
    final = (out / "final_state.pth").read_bytes()
    with pytest.raises(RunFolderError, match="holds a finished run.*--overwrite"):
        train(data, tmp_path)
    assert (out / "final_state.pth").read_bytes() == final
    train(data, tmp_path, "--overwrite")
    assert sorted(p.name for p in out.glob("*.pth")) == [
        "checkpoint.pth", "final_state.pth", "model_best.pth"]


@pytest.mark.slow
@pytest.mark.parametrize("tool", ["train", "test"])
def test_a_second_run_into_a_locked_folder_stops_naming_the_holder(data, tmp_path, tool):
    out = run_folder(data, tmp_path)
    out.mkdir(parents=True)
    fd = os.open(out / LOCK_NAME, os.O_RDWR | os.O_CREAT)
    locked_read, locked_write = os.pipe()
    stop_read, stop_write = os.pipe()
    child = os.fork()
    if child == 0:  # a stand-in for the first run: hold the lock until told to stop
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        os.write(locked_write, b"x")
        os.read(stop_read, 1)
        os._exit(0)
    try:
        os.read(locked_read, 1)
        with pytest.raises(RunFolderError, match=f"in use by another run \\(process {child}"):
            if tool == "train":
                train(data, tmp_path)
            else:
                load_tool("test").main(["--cfg", str(KP_CFG), "--output_path", str(out),
                                        *opts(data, tmp_path)])  # fmt: skip
        assert not (out / "config.yaml").exists()
    finally:
        os.write(stop_write, b"x")
        os.waitpid(child, 0)
        os.close(fd)


# ------------------------------------------------------------------------- up-front row checks


def zero_rows(data: Path, tmp_path: Path, rows: list[int]) -> Path:
    copy = tmp_path / "data"
    shutil.copytree(data, copy)
    frame = pd.read_csv(copy / "train_df.csv")
    frame.iloc[rows, 1:] = 0.0
    frame.to_csv(copy / "train_df.csv", index=False)
    return copy


@pytest.mark.slow
def test_rows_without_a_box_are_all_refused_before_a_model_is_built(data, tmp_path):
    broken = zero_rows(data, tmp_path, [2, 5])
    cfg = load_config(KP_CFG, ["DATASET.ROOT", str(broken), "DATASET.DROP_ROWS", "[0]"])
    names = pd.read_csv(broken / "train_df.csv")["image"]
    with pytest.raises(DataFormatError, match=(
        rf"train_df.csv: 2 rows cannot be trained on.*{names[2]} \(row 3\).*"
        rf"{names[5]} \(row 6\).*DATASET.DROP_ROWS \[2, 5\]"
    )):
        load_training_table(cfg)
    with pytest.raises(DataFormatError, match="2 rows cannot be trained on"):
        train(broken, tmp_path / "out")
    assert not list((tmp_path / "out").rglob("*.pth"))
    cfg = load_config(KP_CFG, ["DATASET.ROOT", str(broken), "DATASET.DROP_ROWS", "[2, 5]"])
    assert len(load_training_table(cfg).names) == len(names) - 2


def test_the_pixel_limit_is_the_configs(data, monkeypatch):
    monkeypatch.setattr(common_io, "_max_image_pixels", common_io._max_image_pixels)
    cfg = load_config(KP_CFG, ["DATASET.ROOT", str(data), "DATASET.MAX_IMAGE_PIXELS", "5000"])
    with pytest.raises(ImageReadError, match=r"128x72 pixels, more than .*= 5000"):
        load_training_table(cfg)
    with pytest.raises(ImageReadError, match="test images are missing or unreadable"):
        stage_data.test_image_names(cfg)


def test_a_box_record_of_another_image_size_is_refused(data, tmp_path):
    names = pd.read_csv(data / "sample_submission.csv")["image"].tolist()
    box_file = tmp_path / "test_annotation.pkl"
    records = [{"filename": n, "bbox": [10, 10, 40, 40], "width": 128, "height": 72}
               for n in names]  # fmt: skip
    records[1] = {**records[1], "width": 320, "height": 180}
    write_box_annotations(box_file, records)
    cfg = load_config(KP_CFG, ["DATASET.ROOT", str(data), "DATASET.BOX_FILE", str(box_file)])
    paths = [data / "images/test_imgs" / n for n in names]
    logger = logging.getLogger("test")
    with pytest.raises(DataFormatError, match=(
        rf"1 box records give another image size.*{names[1]}: record 320x180, image 128x72"
    )):
        keypoint_engine.load_test_boxes(cfg, names, paths, logger)
    write_box_annotations(box_file, [{**records[0], "filename": n} for n in names])
    assert keypoint_engine.load_test_boxes(cfg, names, paths, logger).shape == (len(names), 4)


def test_pictures_of_images_sharing_a_stem_are_all_kept(tmp_path):
    images, names = tmp_path / "images", ["a.jpg", "a.png", "b.jpg"]
    images.mkdir()
    rng = np.random.default_rng(0)
    for name in names:
        assert cv2.imwrite(str(images / name), rng.integers(0, 255, (40, 60, 3), dtype=np.uint8))
    pred = tmp_path / "result.csv"
    write_keypoint_csv(pred, names, rng.uniform(5, 35, (3, 24, 2)))
    load_tool("visualize").main(["--pred", str(pred), "--images", str(images),
                                 "--out", str(tmp_path / "out")])  # fmt: skip
    assert sorted(p.name for p in (tmp_path / "out").glob("*_pred.jpg")) == [
        "a_jpg_pred.jpg", "a_png_pred.jpg", "b_pred.jpg"]
