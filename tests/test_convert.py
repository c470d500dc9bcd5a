"""CSV <-> COCO conversion round-trips exactly; the COCO generator writes valid files with
several people in some images."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from common.coco import load_coco_keypoints, read_coco_json, validate_coco
from common.synthetic.motion import generate_motion_dataset
from common.synthetic.motion_coco import DETECTIONS_JSON, TEST_JSON, TRAIN_JSON

ROOT = Path(__file__).resolve().parents[1]


def _tool(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=ROOT)


def test_motion_csv_to_coco_and_back_is_the_same_file(tmp_path):
    generate_motion_dataset(tmp_path / "m", 12, 0, width=160, height=96, seed=3)
    csv_path = tmp_path / "m" / "train_df.csv"
    coco = tmp_path / "train.json"
    done = _tool("tools/convert.py", "csv2coco", "--csv", str(csv_path),
                 "--images", str(tmp_path / "m/images/train_imgs"), "--out", str(coco))
    assert done.returncode == 0, done.stderr
    kp_set, records = load_coco_keypoints(coco)
    assert kp_set.name == "motion24" and len(records) == 12
    assert records[0].width == 160 and records[0].height == 96
    back = tmp_path / "back.csv"
    done = _tool("tools/convert.py", "coco2csv", "--json", str(coco), "--out", str(back))
    assert done.returncode == 0, done.stderr
    assert back.read_bytes() == csv_path.read_bytes()


def test_coco_generator_several_people_and_errors(tmp_path):
    out = tmp_path / "c"
    done = _tool("tools/make_synthetic.py", "motion", "--format", "coco", "--out", str(out),
                 "--train", "10", "--test", "4", "--width", "160", "--height", "96")
    assert done.returncode == 0, done.stderr
    train = read_coco_json(out / TRAIN_JSON)
    validate_coco(train, "train")
    per_image = Counter(a["image_id"] for a in train["annotations"])
    assert len(per_image) == 10 and max(per_image.values()) >= 2 and min(per_image.values()) == 1
    assert all((out / "images/train_imgs" / i["file_name"]).is_file() for i in train["images"])
    assert len(read_coco_json(out / TEST_JSON)["images"]) == 4
    assert (out / DETECTIONS_JSON).is_file()
    first = (out / TRAIN_JSON).read_bytes()
    again = _tool("tools/make_synthetic.py", "motion", "--format", "coco", "--out", str(out),
                  "--train", "10", "--test", "4", "--width", "160", "--height", "96",
                  "--overwrite")
    assert again.returncode == 0 and (out / TRAIN_JSON).read_bytes() == first
    bad = _tool("tools/convert.py", "coco2csv", "--json", str(out / TRAIN_JSON),
                "--out", str(tmp_path / "x.csv"))
    assert bad.returncode == 2
    assert bad.stderr.startswith("error: ") and "annotated people" in bad.stderr
    assert not (tmp_path / "x.csv").exists()


@pytest.mark.parametrize("command", ["csv2coco", "coco2csv"])
def test_missing_input_is_one_line_error(tmp_path, command):
    args = (["--csv", str(tmp_path / "no.csv"), "--images", str(tmp_path)]
            if command == "csv2coco" else ["--json", str(tmp_path / "no.json")])
    done = _tool("tools/convert.py", command, *args, "--out", str(tmp_path / "o"))
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "not found" in done.stderr
