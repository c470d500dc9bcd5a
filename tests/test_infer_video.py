"""tools/infer.py on a video of two crossing people: every entry carries a track id, each
person keeps one through the crossing, with and without --smooth; pictures carry one colour per
person and a legend; bad video options end in one error line."""

from __future__ import annotations

import json
import subprocess
import sys

import cv2
import pytest
import torch

from common.config import load_config
from common.synthetic.crossing import crossing_video, write_crossing_video
from HRNet_keypoint import engine as keypoint_engine
from tests.conftest import ROOT, load_tool

KEYPOINT_CFG = str(ROOT / "experiments/keypoint/tiny_cpu_keypoint.yaml")


@pytest.fixture(scope="module")
def crossing(tmp_path_factory):
    """A randomly weighted keypoint run and a 20-frame crossing video with its true boxes."""
    folder = tmp_path_factory.mktemp("crossing")
    torch.manual_seed(0)
    model = keypoint_engine.build_model(load_config(KEYPOINT_CFG), is_train=False)
    (folder / "kp").mkdir()
    torch.save(model.state_dict(), folder / "kp" / "model_best.pth")
    write_crossing_video(crossing_video(frames=20, width=256, height=144, seed=1), folder)
    return folder


@pytest.mark.slow
@pytest.mark.parametrize("smooth", [[], ["--smooth", "--smooth-beta", "2"]])
def test_crossing_people_keep_their_track_ids(crossing, tmp_path, smooth):
    out = tmp_path / "out"
    assert load_tool("infer").main(
        ["--input", str(crossing / "crossing.mp4"), "--keypoint-cfg", KEYPOINT_CFG,
         "--keypoint-output", str(crossing / "kp"), "--boxes",
         str(crossing / "crossing_truth.json"), "--out", str(out), *smooth]) == 0
    entries = json.loads((out / "keypoints.json").read_text())
    truth = json.loads((crossing / "crossing_truth.json").read_text())
    assert len(entries) == len(truth) == 40
    ids = {0: set(), 1: set()}
    for entry in entries:
        person = next(t["person"] for t in truth
                      if t["frame"] == entry["frame"] and t["bbox"] == entry["bbox"])
        ids[person].add(entry["track_id"])
    assert ids == {0: {1}, 1: {2}}
    capture = cv2.VideoCapture(str(out / "crossing_keypoints.mp4"))
    ok, frame = capture.read()
    capture.release()
    assert ok and frame.shape[1] == 256 and frame.shape[0] > 144  # the legend below


@pytest.mark.slow
def test_smooth_on_an_image_warns_and_draws_people(crossing, tmp_path, capsys):
    capture = cv2.VideoCapture(str(crossing / "crossing.mp4"))
    frame = capture.read()[1]
    capture.release()
    cv2.imwrite(str(tmp_path / "still.png"), frame)
    boxes = tmp_path / "boxes.json"
    boxes.write_text(json.dumps([{"file_name": "still.png", "bbox": box} for box in
                                 ([20, 20, 60, 100], [150, 30, 60, 100])]))
    out = tmp_path / "out"
    assert load_tool("infer").main(
        ["--input", str(tmp_path / "still.png"), "--keypoint-cfg", KEYPOINT_CFG,
         "--keypoint-output", str(crossing / "kp"), "--boxes", str(boxes), "--out", str(out),
         "--smooth"]) == 0
    assert "--smooth" in capsys.readouterr().err
    entries = json.loads((out / "keypoints.json").read_text())
    assert len(entries) == 2 and all("track_id" not in e for e in entries)
    [picture] = (out / "pictures").glob("still.*")
    drawn = cv2.imread(str(picture))
    assert drawn.shape[1] == 256 and drawn.shape[0] > 144


def _arguments(crossing, out, *extra):
    return ["--input", str(crossing / "crossing.mp4"), "--keypoint-cfg", KEYPOINT_CFG,
            "--keypoint-output", str(crossing / "kp"), "--boxes",
            str(crossing / "crossing_truth.json"), "--out", str(out), *extra]


@pytest.mark.parametrize("option, value", [("--smooth-min-cutoff", "0"), ("--smooth-beta", "-1"),
                                           ("--smooth-d-cutoff", "nan"),
                                           ("--track-max-missed", "two"), ("--kp-thr", "1.5"),
                                           ("--det-thr", "1.5"), ("--det-thr", "nan")])
def test_bad_video_options_are_one_error_line(crossing, tmp_path, capsys, option, value):
    with pytest.raises(SystemExit) as stop:
        load_tool("infer").main(_arguments(crossing, tmp_path / "o", option, value))
    err = capsys.readouterr().err.strip().splitlines()
    assert stop.value.code == 2 and option in err[-1] and "error" in err[-1]
    assert not (tmp_path / "o").exists()


@pytest.mark.slow
def test_a_bad_video_option_from_the_command_line(crossing, tmp_path):
    done = subprocess.run([sys.executable, str(ROOT / "tools/infer.py"),
                           *_arguments(crossing, tmp_path / "o", "--smooth-beta", "fast")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "--smooth-beta" in done.stderr.strip().splitlines()[-1]
