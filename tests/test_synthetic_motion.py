"""The synthetic motion generator: layout, determinism, calibration, readable pictures."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from common.io import image_size
from common.keypoints import MOTION_KEYPOINTS, coordinate_columns
from common.motion_data import (
    check_keypoints_inside,
    keypoints_array,
    parse_motion_filename,
    read_keypoint_csv,
)
from common.synthetic.motion import generate_motion_dataset
from common.synthetic.motion_drawing import FigureStyle, render_figure
from common.synthetic.motion_sequences import BONES, STATS_PATH, J, load_motion_stats

ROOT = Path(__file__).resolve().parents[1]
WIDTH, HEIGHT = 160, 90


def _digest(folder: Path) -> dict[str, str]:
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


@pytest.fixture(scope="module")
def small_set(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("motion")
    counts = generate_motion_dataset(out, 12, 6, WIDTH, HEIGHT, seed=7)
    assert counts == {"train": 12, "test": 6}
    return out


def test_layout_and_columns(small_set: Path) -> None:
    train = read_keypoint_csv(small_set / "train_df.csv")
    test = read_keypoint_csv(small_set / "test_df.csv")
    submission = read_keypoint_csv(small_set / "sample_submission.csv")
    header = (small_set / "train_df.csv").read_text().splitlines()[0].split(",")
    assert header == ["image", *coordinate_columns()]
    assert len(train) == 12 and len(test) == 6
    assert train["image"].tolist() == sorted(train["image"])
    assert submission["image"].tolist() == test["image"].tolist() == sorted(test["image"])
    assert (submission.iloc[:, 1:].to_numpy() == 0).all()
    assert (
        sorted(p.name for p in (small_set / "images/train_imgs").iterdir())
        == train["image"].tolist()
    )
    assert (
        sorted(p.name for p in (small_set / "images/test_imgs").iterdir()) == test["image"].tolist()
    )
    for name in train["image"].tolist()[:3]:
        assert image_size(small_set / "images/train_imgs" / name) == (WIDTH, HEIGHT)


def test_names_form_sequences_and_splits_do_not_share_subjects(small_set: Path) -> None:
    train, test = (
        [parse_motion_filename(n) for n in read_keypoint_csv(small_set / name)["image"]]
        for name in ("train_df.csv", "test_df.csv")
    )
    assert {p.subject for p in train}.isdisjoint({p.subject for p in test})
    assert all(int(p.subject) < 649 for p in train) and all(int(p.subject) >= 649 for p in test)
    assert all(p.frame % 2 == 1 for p in train + test)
    # 12 images: frames capped so that the first subject is seen by all five cameras.
    first = [p for p in train if p.subject == train[0].subject]
    assert {p.camera for p in first} == set("ABCDE")
    stats = load_motion_stats()
    groups = {tuple(g) for g in stats["name_groups_test"]}
    assert all((p.a, p.b, p.code, p.zone) in groups for p in test)


def test_keypoints_inside_their_images(small_set: Path) -> None:
    for split, folder in (("train_df.csv", "train_imgs"), ("test_df.csv", "test_imgs")):
        frame = read_keypoint_csv(small_set / split)
        names = frame["image"].tolist()
        sizes = [image_size(small_set / "images" / folder / name) for name in names]
        check_keypoints_inside(keypoints_array(frame), names, sizes)


def test_same_seed_same_bytes_other_seed_differs(tmp_path: Path) -> None:
    generate_motion_dataset(tmp_path / "a", 6, 3, WIDTH, HEIGHT, seed=11)
    generate_motion_dataset(tmp_path / "b", 6, 3, WIDTH, HEIGHT, seed=11)
    generate_motion_dataset(tmp_path / "c", 6, 3, WIDTH, HEIGHT, seed=12)
    first, again, other = (_digest(tmp_path / n) for n in "abc")
    assert first == again
    assert len(first) == 6 + 3 + 3
    assert first["train_df.csv"] != other["train_df.csv"]
    shared = set(first) & set(other)
    assert not any(first[name] == other[name] for name in shared if name.endswith(".jpg"))


def test_refuses_to_overwrite_without_permission(tmp_path: Path) -> None:
    generate_motion_dataset(tmp_path, 3, 0, WIDTH, HEIGHT, seed=1)
    with pytest.raises(FileExistsError, match="--overwrite"):
        generate_motion_dataset(tmp_path, 3, 0, WIDTH, HEIGHT, seed=2)
    generate_motion_dataset(tmp_path, 2, 1, WIDTH, HEIGHT, seed=2, overwrite=True)
    assert len(list((tmp_path / "images/train_imgs").glob("*.jpg"))) == 2  # stale ones removed


def test_person_is_placed_like_the_real_people(tmp_path: Path) -> None:
    """At 1920x1080 scale, sizes and positions follow the calibrated statistics."""
    stats = load_motion_stats()
    generate_motion_dataset(tmp_path, 60, 0, 480, 270, seed=3)
    keypoints = keypoints_array(read_keypoint_csv(tmp_path / "train_df.csv")) * 4.0
    height = keypoints[..., 1].max(axis=1) - keypoints[..., 1].min(axis=1)
    centre_x = (keypoints[..., 0].max(axis=1) + keypoints[..., 0].min(axis=1)) / 2
    real_height = stats["person_height_px"]
    assert real_height["q05"] * 0.5 < np.median(height) < real_height["q95"]
    assert abs(np.mean(centre_x) - stats["box_center_x_px"]["mean"]) < 200
    torso = np.linalg.norm(keypoints[:, J["neck"]] - keypoints[:, J["spine1(waist)"]], axis=1)
    assert stats["torso_px"]["q05"] * 0.5 < np.median(torso) < stats["torso_px"]["q95"] * 1.2


_POINTS = {
    "nose": (100, 40),
    "left_eye": (106, 35),
    "right_eye": (94, 35),
    "left_ear": (114, 40),
    "right_ear": (86, 40),
    "neck": (100, 62),
    "left_shoulder": (125, 70),
    "right_shoulder": (75, 70),
    "left_elbow": (160, 70),
    "right_elbow": (40, 70),
    "left_wrist": (190, 70),
    "right_wrist": (10, 70),
    "left_palm": (197, 70),
    "right_palm": (3, 70),
    "spine2(back)": (100, 90),
    "spine1(waist)": (100, 120),
    "left_hip": (115, 125),
    "right_hip": (85, 125),
    "left_knee": (150, 160),
    "right_knee": (50, 160),
    "left_ankle": (170, 195),
    "right_ankle": (30, 195),
    "left_instep": (178, 198),
    "right_instep": (22, 198),
}


def _spread_pose() -> np.ndarray:
    """A frontal pose with arms and legs spread, so no limb covers another."""
    pose = np.zeros((len(MOTION_KEYPOINTS), 2))
    for name, xy in _POINTS.items():
        pose[J[name]] = xy
    return pose


def _render(seed: int) -> np.ndarray:
    image = np.full((205, 205, 3), 128, np.uint8)
    render_figure(image, _spread_pose(), 60.0, FigureStyle.sample(np.random.default_rng(seed)))
    return image


def test_left_and_right_limbs_differ_in_colour() -> None:
    """Left limbs are warm (red above blue), right limbs cool, whatever the subject's style."""
    pose = _spread_pose()
    for seed in range(5):
        image = _render(seed)
        for side, sign in (("left", 1), ("right", -1)):
            for a, b in (("shoulder", "elbow"), ("knee", "ankle")):
                middle = (pose[J[f"{side}_{a}"]] + pose[J[f"{side}_{b}"]]) / 2
                blue, _, red = image[int(middle[1]), int(middle[0])].astype(int)
                assert sign * (red - blue) > 40, (seed, side, a, blue, red)


def test_every_keypoint_is_drawn_and_joints_are_marked() -> None:
    """Each keypoint lies on the figure, and elbows and knees are darker discs on their limb."""
    pose = _spread_pose()
    for seed in range(3):
        image = _render(seed).astype(int)
        for index, (x, y) in enumerate(pose):
            x, y = min(int(x), 204), min(int(y), 204)
            assert np.abs(image[y, x] - 128).sum() > 30, (seed, MOTION_KEYPOINTS[index])
        for side in ("left", "right"):
            for joint, towards in (("elbow", "shoulder"), ("knee", "hip")):
                at = pose[J[f"{side}_{joint}"]]
                beside = at + 0.3 * (pose[J[f"{side}_{towards}"]] - at)
                mark = image[int(at[1]), int(at[0])].sum()
                limb = image[int(beside[1]), int(beside[0])].sum()
                assert mark < 0.8 * limb, (seed, side, joint, mark, limb)


def test_stats_file_is_small_and_derived_only() -> None:
    assert STATS_PATH.stat().st_size < 30_000
    stats = json.loads(STATS_PATH.read_text())
    centres = np.asarray(stats["pose_clusters"]["centres"])
    assert centres.shape[0] <= 16 and centres.shape[1:] == (24, 2)
    np.testing.assert_allclose(centres[:, J["spine1(waist)"]], 0.0, atol=1e-9)
    assert abs(sum(stats["pose_clusters"]["weights"]) - 1.0) < 1e-3
    assert len(stats["bones"]) == len(BONES)
    assert ".jpg" not in STATS_PATH.read_text()  # no file names, hence no rows


@pytest.mark.slow
def test_derived_stats_match_the_real_file(real_motion_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "stats.json"
    subprocess.run(
        [
            sys.executable,
            "tools/derive_motion_stats.py",
            "--train-csv",
            str(real_motion_dir / "train_df.csv"),
            "--submission-csv",
            str(real_motion_dir / "sample_submission.csv"),
            "--out",
            str(out),
        ],
        cwd=ROOT,
        check=True,
        capture_output=True,
        timeout=120,
    )
    derived, packaged = json.loads(out.read_text()), load_motion_stats()
    for key in (
        "torso_px",
        "person_height_px",
        "box_center_x_px",
        "bones",
        "frames_per_sequence",
        "facing_front_by_camera",
        "name_groups_train",
        "name_groups_test",
    ):
        assert derived[key] == packaged[key], key
    np.testing.assert_allclose(
        derived["pose_clusters"]["weights"], packaged["pose_clusters"]["weights"], atol=0.02
    )


def test_derive_runs_on_a_synthetic_csv(small_set: Path, tmp_path: Path) -> None:
    """The derivation needs no real data to be exercised (here: on the synthetic train_df)."""
    sys.path.insert(0, str(ROOT / "tools"))
    try:
        import derive_motion_stats
    finally:
        sys.path.remove(str(ROOT / "tools"))
    stats = derive_motion_stats.derive(small_set / "train_df.csv", None, clusters=2, seed=0)
    assert stats["rows"] == 12
    assert len(stats["pose_clusters"]["centres"]) == 2
    assert stats["cameras_per_subject"]


@pytest.mark.slow
def test_cli_writes_a_data_set(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "tools/make_synthetic.py",
            "motion",
            "--out",
            str(tmp_path),
            "--train",
            "2",
            "--test",
            "1",
            "--width",
            "96",
            "--height",
            "64",
            "--seed",
            "4",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert len(read_keypoint_csv(tmp_path / "train_df.csv")) == 2
    again = subprocess.run(
        [sys.executable, "tools/make_synthetic.py", "motion", "--out", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert again.returncode == 2 and "--overwrite" in again.stderr


def test_gesture_subcommand_reports_a_missing_module(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    sys.path.insert(0, str(ROOT / "tools"))
    try:
        import make_synthetic
    finally:
        sys.path.remove(str(ROOT / "tools"))

    def refuse(name: str) -> None:
        raise ImportError(f"No module named {name!r}")

    monkeypatch.setattr(make_synthetic.importlib, "import_module", refuse)
    assert make_synthetic.main(["gesture", "--out", "x"]) == 2
    assert "common.synthetic.gesture" in capsys.readouterr().err
