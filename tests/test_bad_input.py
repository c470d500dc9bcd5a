"""Bad input injected into the pipeline: broken images, keypoints off the image, broken box
files, checkpoints of another config, odd image formats and interrupted writers. Each fault
must give an error that names what is wrong, or be handled as documented, and never leave a
half-written output. (Reader-level checks are in tests/test_motion_data.py and
tests/test_box_files.py.)"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import stat
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import torch

from common import stage_data
from common.box_files import write_box_annotations
from common.boxes import clean_box
from common.config import load_config
from common.gesture.submission import SubmissionLayout, write_submission
from common.io import ImageReadError, atomic_write_text, check_images, read_image
from common.motion_data import (
    DataFormatError,
    keypoints_array,
    read_keypoint_csv,
    write_keypoint_csv,
)
from common.run_dir import output_dir_for
from common.stage_data import load_training_table
from common.state_dict import CheckpointMismatchError
from common.synthetic.motion import generate_motion_dataset
from HRNet_bbox import engine as bbox_engine
from HRNet_bbox.dataset import WholeImageBoxDataset
from HRNet_keypoint.dataset import BoxDataset
from HRNet_keypoint.transforms import box_to_center_scale
from models.hrnet import build_pose_hrnet
from tests.bbox_setup import ConstantCorners
from tests.conftest import ROOT, load_tool

KP_CFG = ROOT / "experiments/keypoint/tiny_cpu_keypoint.yaml"
BOX_CFG = ROOT / "experiments/bbox/tiny_cpu_bbox.yaml"
WIDTH, HEIGHT = 128, 72


@pytest.fixture(scope="module")
def clean_data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("bad_input") / "data"
    generate_motion_dataset(root, 10, 4, width=WIDTH, height=HEIGHT, seed=1)
    return root


@pytest.fixture
def data(clean_data: Path, tmp_path: Path) -> Path:
    """A private copy of the small data set, free to break."""
    root = tmp_path / "data"
    shutil.copytree(clean_data, root)
    return root


def opts(data: Path, out: Path, *extra: str) -> list[str]:
    return ["OUTPUT_DIR", str(out), "LOG_DIR", str(out / "tb"), "DATASET.ROOT", str(data), *extra]


def train_tool(data: Path, out: Path, *extra: str) -> dict:
    return load_tool("train").main(
        ["--cfg", str(KP_CFG), "--test_option", "False", *opts(data, out, *extra)]
    )


def run_test_tool(data: Path, out: Path, *extra: str, cfg: Path = KP_CFG) -> Path:
    return load_tool("test").main(
        ["--cfg", str(cfg), "--output_path", str(out), *opts(data, out, *extra)]
    )


def keypoint_cfg(data: Path, *extra: str):
    return load_config(KP_CFG, ["DATASET.ROOT", str(data), *extra])


def run_folder(tmp_path: Path) -> Path:
    """A test-time output folder holding a previous ``result.csv`` that must survive."""
    out = tmp_path / "run"
    out.mkdir()
    (out / "result.csv").write_text("previous result\n")
    return out


# --------------------------------------------------------------------------- broken images


def break_two_training_images(data: Path) -> tuple[str, str]:
    names = read_keypoint_csv(data / "train_df.csv")["image"].tolist()
    image_dir = data / "images/train_imgs"
    (image_dir / names[2]).write_bytes(b"\xff\xd8 not really a jpeg " * 8)
    (image_dir / names[7]).unlink()
    return names[2], names[7]


def test_bad_training_images_stop_the_run_before_it_starts_naming_every_file(data, tmp_path):
    corrupt, missing = break_two_training_images(data)
    with pytest.raises(ImageReadError) as error:
        train_tool(data, tmp_path / "out", "TRAIN.END_EPOCH", "1")
    message = str(error.value)
    assert "2 training images are missing or unreadable" in message
    assert f"cannot decode image (corrupt or not an image): {data}" in message
    assert corrupt in message
    assert f"image not found: {data}" in message and missing in message
    assert "DATASET.SKIP_BAD_IMAGES True" in message
    assert not list((tmp_path / "out").rglob("*.pth"))


def test_skip_bad_images_trains_without_them_and_lists_them_at_the_end(data, tmp_path):
    corrupt, missing = break_two_training_images(data)
    extra = ("TRAIN.END_EPOCH", "1", "DATASET.SKIP_BAD_IMAGES", "True")
    summary = train_tool(data, tmp_path, *extra)
    assert summary["skipped_images"] == [corrupt, missing]
    run = output_dir_for(keypoint_cfg(data, *opts(data, tmp_path, *extra)), KP_CFG)
    assert (run / "final_state.pth").is_file()
    splits = json.loads((run / "splits.json").read_text())
    used = [name for part in splits.values() for name in part]
    assert len(used) == 8 and corrupt not in used and missing not in used
    log = next(run.glob("*_train.log")).read_text().splitlines()
    last_epoch = max(i for i, line in enumerate(log) if " best rmse " in line)
    listed = [i for i, line in enumerate(log) if "trained without 2 unreadable images" in line]
    assert listed and listed[-1] > last_epoch
    assert corrupt in log[listed[-1]] and missing in log[listed[-1]]


def test_a_bad_test_image_is_refused_before_any_work_even_with_skip(data, tmp_path):
    """A submission needs every row: test images are never skipped. The check runs before the
    model is even looked for (there is none here)."""
    bad = stage_data.test_image_names(keypoint_cfg(data))[1]
    (data / "images/test_imgs" / bad).write_bytes(b"garbage")
    out = run_folder(tmp_path)
    with pytest.raises(ImageReadError) as error:
        run_test_tool(data, out, "DATASET.SKIP_BAD_IMAGES", "True", "TEST.BOX_SOURCE", "truth")
    message = str(error.value)
    assert "1 test images are missing or unreadable" in message and bad in message
    assert "never skipped" in message
    assert (out / "result.csv").read_text() == "previous result\n"


def test_an_image_with_a_good_header_but_broken_pixels_is_named_when_read(tmp_path):
    """The up-front check reads headers only; what it cannot see fails by name on reading."""
    image = np.random.default_rng(0).integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8)
    encoded = cv2.imencode(".png", image)[1].tobytes()
    path = tmp_path / "broken.png"  # complete (IEND kept), pixel data garbled in the middle
    middle = len(encoded) // 2
    path.write_bytes(encoded[:middle] + bytes(200) + encoded[middle + 200 :])
    sizes, bad = check_images([path])
    assert bad == [] and sizes.tolist() == [[WIDTH, HEIGHT]]
    dataset = BoxDataset(keypoint_cfg(tmp_path), [path], np.array([[10.0, 10.0, 40.0, 40.0]]))
    with pytest.raises(ImageReadError, match=r"cannot decode image .*broken\.png"):
        dataset[0]


# --------------------------------------------------------------------------- keypoints


def test_keypoints_far_outside_their_image_are_refused_with_file_row_and_keypoint(data):
    frame = read_keypoint_csv(data / "train_df.csv")
    keypoints = keypoints_array(frame).copy()
    keypoints[3] *= 2  # annotated on an image twice this size
    write_keypoint_csv(data / "train_df.csv", frame["image"].tolist(), keypoints)
    with pytest.raises(DataFormatError) as error:
        load_training_table(keypoint_cfg(data))
    message = str(error.value)
    assert "train_df.csv" in message and f"{frame['image'][3]} (row 4)" in message
    assert f"in a {WIDTH}x{HEIGHT} image" in message and "more than 25% of its size" in message
    assert "DATASET.DROP_ROWS [3]" in message
    table = load_training_table(keypoint_cfg(data, "DATASET.DROP_ROWS", "[3]"))
    assert len(table.names) == 9 and frame["image"][3] not in table.names


def test_keypoints_a_little_outside_are_kept_as_annotated(data):
    """People partly out of frame are real: such keypoints are kept (the crop box is clipped to
    the image, and targets outside the crop get weight 0)."""
    frame = read_keypoint_csv(data / "train_df.csv")
    keypoints = keypoints_array(frame).copy()
    keypoints[0, 0] = (-10.0, HEIGHT + 10.0)
    write_keypoint_csv(data / "train_df.csv", frame["image"].tolist(), keypoints)
    table = load_training_table(keypoint_cfg(data))
    np.testing.assert_array_equal(table.keypoints[0, 0], (-10.0, HEIGHT + 10.0))


# --------------------------------------------------------------------------- box files


class _Exploit:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # noqa: ANN204
        import os

        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize(
    "fault, expected",
    [
        ("zero_area", "has zero or negative size"),
        ("inverted", "has zero or negative size"),
        ("missing_image", "1 test images have no box record"),
        ("unknown_image", "records name images that are not in the test set"),
        ("malicious", "refused to load global 'posix.system'"),
    ],
)
def test_a_bad_box_file_is_refused_by_name_before_predicting(data, tmp_path, fault, expected):
    names = stage_data.test_image_names(keypoint_cfg(data))
    records = [
        {"filename": n, "bbox": [10.0, 10.0, 40.0, 40.0], "width": WIDTH, "height": HEIGHT}
        for n in names
    ]
    named = names[1]
    if fault == "zero_area":
        records[1]["bbox"] = [10.0, 10.0, 0.0, 40.0]
    elif fault == "inverted":  # x2 < x1, as [x1, y1, x2 - x1, y2 - y1]
        records[1]["bbox"] = [50.0, 10.0, -30.0, 40.0]
    elif fault == "missing_image":
        records.pop(1)
    elif fault == "unknown_image":
        named = "999-1-1-01-Z1_A-0000001.jpg"
        records.append({**records[0], "filename": named})
    box_file = data / "annotations/test_annotation.pkl"
    write_box_annotations(box_file, records)
    marker = tmp_path / "pwned"
    if fault == "malicious":
        named = "test_annotation.pkl"
        box_file.write_bytes(pickle.dumps([_Exploit(marker)]))
    out = run_folder(tmp_path)
    with pytest.raises(DataFormatError) as error:
        run_test_tool(data, out)
    message = str(error.value)
    assert str(box_file) in message and expected in message and named in message
    assert (out / "result.csv").read_text() == "previous result\n"
    assert not marker.exists()


# --------------------------------------------------------------------------- checkpoints


@pytest.mark.parametrize(
    "override, expected",
    [
        (("MODEL.NUM_JOINTS", "17"), "final_layer.weight: checkpoint (17, 16, 1, 1) vs model "
         "(24, 16, 1, 1)"),
        (("MODEL.EXTRA.STAGE4.NUM_CHANNELS", "[16, 32, 64, 96]"), "widths differ: check MODEL"),
    ],
)  # fmt: skip
def test_a_checkpoint_of_another_config_is_refused_naming_keys_and_shapes(
    data, tmp_path, override, expected
):
    out = run_folder(tmp_path)
    other = keypoint_cfg(data, *override)
    torch.save(build_pose_hrnet(other, is_train=False).state_dict(), out / "model_best.pth")
    with pytest.raises(CheckpointMismatchError) as error:
        run_test_tool(data, out, "TEST.BOX_SOURCE", "truth")
    message = str(error.value)
    assert f"{out / 'model_best.pth'} does not fit the model" in message and expected in message
    assert (out / "result.csv").read_text() == "previous result\n"


# --------------------------------------------------------------------------- image formats


@pytest.fixture
def image_variants(tmp_path: Path) -> dict[str, Path]:
    """One picture as 8-bit BGR, grayscale, 3-channel gray, BGRA and 16-bit PNG files."""
    rng = np.random.default_rng(3)
    bgr = cv2.GaussianBlur(rng.integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8), (5, 5), 0)
    gray = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
    alpha = rng.integers(0, 256, (HEIGHT, WIDTH), dtype=np.uint8)
    low_bits = rng.integers(1, 200, (HEIGHT, WIDTH, 3))
    arrays = {
        "bgr": bgr,
        "gray": gray,
        "gray3": cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR),
        "bgra": np.dstack([bgr, alpha]),
        # 8-bit value v at 16 bits is 257 v; the low bits below 257 must not leak into 8 bits.
        "bgr16": bgr.astype(np.uint16) * 257 + np.where(bgr < 255, low_bits, 0).astype(np.uint16),
    }
    paths = {}
    for name, array in arrays.items():
        paths[name] = tmp_path / f"{name}.png"
        cv2.imwrite(str(paths[name]), array)
    return paths


@pytest.mark.parametrize("variant, same_as", [("gray", "gray3"), ("bgra", "bgr"), ("bgr16", "bgr")])
def test_grayscale_rgba_and_16_bit_images_give_the_same_inputs(image_variants, variant, same_as):
    image = read_image(image_variants[variant])
    assert image.shape == (HEIGHT, WIDTH, 3) and image.dtype == np.uint8
    np.testing.assert_array_equal(image, read_image(image_variants[same_as]))
    paths = [image_variants[variant], image_variants[same_as]]
    keypoint_items = BoxDataset(keypoint_cfg(ROOT), paths, np.array([[20.0, 10.0, 50.0, 40.0]] * 2))
    crop, same_crop = keypoint_items[0][0], keypoint_items[1][0]
    assert crop.shape == (3, 128, 96)
    torch.testing.assert_close(crop, same_crop, rtol=0, atol=0)
    box_items = WholeImageBoxDataset(load_config(BOX_CFG), paths, None, is_train=False)
    (whole, _, meta), (same_whole, _, _) = box_items[0], box_items[1]
    assert whole.shape == (3, 96, 160) and (meta["width"], meta["height"]) == (WIDTH, HEIGHT)
    torch.testing.assert_close(whole, same_whole, rtol=0, atol=0)


def test_landscape_and_portrait_files_predict_in_their_own_pixels(tmp_path):
    paths = []
    for width, height in ((640, 360), (360, 640)):
        paths.append(tmp_path / f"{width}x{height}.jpg")
        cv2.imwrite(str(paths[-1]), np.full((height, width, 3), 90, dtype=np.uint8))
    assert check_images(paths)[0].tolist() == [[640, 360], [360, 640]]
    cfg = load_config(BOX_CFG)
    boxes = bbox_engine.predict_boxes_xywh(
        ConstantCorners([0.25, 0.5, 0.75, 0.75]), cfg, paths, torch.device("cpu")
    )
    np.testing.assert_allclose(boxes, [[160, 180, 320, 90], [90, 320, 180, 160]])
    # Stage two on the portrait image: a box below row 360 is inside it, so nothing is clipped.
    portrait_box = np.array([[100.0, 400.0, 150.0, 200.0]])
    _, meta = BoxDataset(keypoint_cfg(ROOT), paths[1:], portrait_box)[0]
    center, scale = box_to_center_scale(clean_box(portrait_box[0], 360, 640), 96 / 128)
    np.testing.assert_array_equal(meta["center"].numpy(), center)
    assert clean_box(portrait_box[0], 640, 360) is None  # what a landscape assumption would do
    np.testing.assert_array_equal(meta["scale"].numpy(), scale)


# --------------------------------------------------------------------------- atomic outputs


def test_an_interrupted_result_csv_leaves_the_previous_file(data, tmp_path, monkeypatch):
    out = run_folder(tmp_path)
    torch.manual_seed(0)
    model = build_pose_hrnet(keypoint_cfg(data), is_train=False)
    torch.save(model.state_dict(), out / "model_best.pth")
    real_to_csv = pd.DataFrame.to_csv

    def half_then_interrupted(self, path, *args, **kwargs):
        real_to_csv(self.iloc[: len(self) // 2], path, *args, **kwargs)  # a complete-looking file
        raise KeyboardInterrupt

    monkeypatch.setattr(pd.DataFrame, "to_csv", half_then_interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_test_tool(data, out, "TEST.BOX_SOURCE", "truth")
    assert (out / "result.csv").read_text() == "previous result\n"
    assert not list(out.glob("*.tmp")) and not list(out.glob(".*.tmp"))


def test_an_interrupted_box_file_leaves_the_previous_file(data, tmp_path, monkeypatch):
    out = tmp_path / "run"
    out.mkdir()
    (out / "test_annotation.pkl").write_bytes(b"previous boxes")
    torch.manual_seed(0)
    model = bbox_engine.build_model(load_config(BOX_CFG, ["DATASET.ROOT", str(data)]), False)
    torch.save(model.state_dict(), out / "model_best.pth")
    real_dumps = pickle.dumps

    def half_then_interrupted(obj, handle, protocol=None, **kwargs):
        data_bytes = real_dumps(obj, protocol=protocol)
        handle.write(data_bytes[: len(data_bytes) // 2])
        raise KeyboardInterrupt

    monkeypatch.setattr(pickle, "dump", half_then_interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_test_tool(data, out, cfg=BOX_CFG)
    assert (out / "test_annotation.pkl").read_bytes() == b"previous boxes"
    assert sorted(p.name for p in out.iterdir() if "test_annotation" in p.name) == [
        "test_annotation.pkl"
    ]


def test_an_interrupted_gesture_submission_leaves_the_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "submission.csv"
    path.write_text("previous submission\n")
    layout = SubmissionLayout(("test/649/649.png", "test/650/650.png"), ("649", "650"), (0, 3))

    def interrupted(self, target, *args, **kwargs):
        Path(target).write_text("Image_Path,Label_0,Label_3\ntest/649/649.png,0.5,0.5\n")
        raise KeyboardInterrupt

    monkeypatch.setattr(pd.DataFrame, "to_csv", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_submission(path, layout, np.full((2, 2), 0.5))
    assert path.read_text() == "previous submission\n"
    assert [p.name for p in tmp_path.iterdir()] == ["submission.csv"]


def test_atomic_outputs_get_the_permissions_of_a_plain_write(tmp_path):
    """Not a temporary file's private mode: a submission stays readable by the team."""
    previous = os.umask(0o022)
    try:
        (tmp_path / "plain.csv").write_text("image\n")
        atomic_write_text(tmp_path / "result.csv", "image\n")
    finally:
        os.umask(previous)
    mode = stat.S_IMODE((tmp_path / "result.csv").stat().st_mode)
    assert mode == stat.S_IMODE((tmp_path / "plain.csv").stat().st_mode) == 0o644
