"""Pictures: a regular contact-sheet grid with one title per cell, labelled panels and legends,
the per-keypoint error chart and the training curves as valid PNG files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from tensorboardX import SummaryWriter

from common.charts import plot_keypoint_errors, plot_training_curves, read_scalars
from common.keypoints import MOTION_KEYPOINTS
from common.visualize import (
    GAP,
    PANEL_SIZE,
    SHEET_BACKGROUND,
    STRIP_HEIGHT,
    contact_sheet,
    draw_boxes,
    side_by_side,
)
from tests.conftest import load_tool


def person(centre: tuple[float, float], size: tuple[float, float]) -> np.ndarray:
    rng = np.random.default_rng(0)
    return np.asarray(centre) + (rng.random((len(MOTION_KEYPOINTS), 2)) - 0.5) * size


@pytest.fixture
def image() -> np.ndarray:
    return np.random.default_rng(1).integers(0, 256, (540, 960, 3), dtype=np.uint8)


def test_side_by_side_panels_have_one_shape_whatever_the_pose(image):
    standing = person((480, 270), (80, 400))
    lying = person((100, 500), (500, 60))  # wide, at the image's corner
    box = np.array([400.0, 60.0, 160.0, 420.0])
    shapes = {side_by_side(image, pose, pose + 3, box).shape for pose in (standing, lying)}
    assert shapes == {(STRIP_HEIGHT + PANEL_SIZE, 2 * PANEL_SIZE + GAP // 2, 3)}
    alone = side_by_side(image, standing)
    assert alone.shape == (STRIP_HEIGHT + PANEL_SIZE, PANEL_SIZE, 3)
    titled = side_by_side(image, standing, title="a.jpg  RMSE 3.0 px")
    assert titled.shape[0] == alone.shape[0] + STRIP_HEIGHT


def test_the_contact_sheet_is_a_grid_of_equal_cells_with_light_padding():
    rng = np.random.default_rng(2)
    shapes = [(300, 606), (300, 606), (200, 500), (400, 300), (300, 606)]
    pictures = [rng.integers(1, 255, (*s, 3), dtype=np.uint8) for s in shapes]
    titles = [f"{i}.jpg  RMSE {i}.0 px" for i in range(len(pictures))]
    sheet = contact_sheet(pictures, columns=3, titles=titles)
    cell_w, cell_h = 606, 300 + STRIP_HEIGHT  # the median picture's size, plus the title
    assert sheet.shape == (2 * (cell_h + GAP) + GAP, 3 * (cell_w + GAP) + GAP, 3)
    # The empty sixth cell and the gaps are the light sheet colour, never black.
    empty = sheet[GAP + cell_h + GAP :, GAP + 2 * (cell_w + GAP) :][:cell_h, :cell_w]
    assert (empty == SHEET_BACKGROUND).all()
    assert (sheet == 0).all(axis=2).mean() < 0.01  # black only in the title text
    # A picture of another shape is letterboxed inside its cell, not stretched over the grid.
    third = sheet[GAP + STRIP_HEIGHT : GAP + cell_h, GAP + 2 * (cell_w + GAP) :][:, :cell_w]
    assert (third[:, 0] == SHEET_BACKGROUND).all() or (third[0] == SHEET_BACKGROUND).all()
    with pytest.raises(ValueError, match="2 titles for 5 pictures"):
        contact_sheet(pictures, titles=titles[:2])


def test_box_pictures_carry_their_legend(image):
    picture = draw_boxes(image, np.array([10.0, 10, 100, 200]), np.array([20.0, 15, 90, 190]))
    assert picture.shape == (540 + STRIP_HEIGHT, 960, 3)


def png_size(path: Path) -> tuple[int, int]:
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(path) as picture:
        picture.verify()
    with Image.open(path) as picture:
        return picture.size


def test_the_keypoint_error_chart_is_a_png_of_sane_size(tmp_path):
    errors = {name: float(i) for i, name in enumerate(MOTION_KEYPOINTS)}
    width, height = png_size(plot_keypoint_errors(errors, tmp_path / "errors.png", overall=9.0))
    assert 500 <= width <= 2000 and 500 <= height <= 2000


def test_score_plot_writes_the_chart(tmp_path, tiny_motion):
    truth = tiny_motion / "test_df.csv"
    out = tmp_path / "chart.png"
    assert load_tool("score").main(["--pred", str(truth), "--truth", str(truth),
                                    "--plot", str(out)]) == 0  # fmt: skip
    png_size(out)


def test_training_curves_are_read_back_from_the_event_files_and_drawn(tmp_path):
    runs = {}
    for stage, tag in (("boxes", "valid/corner_error"), ("keypoints", "valid/rmse")):
        writer = SummaryWriter(str(tmp_path / stage))
        for epoch in range(5):
            writer.add_scalar("train/loss", 1.0 / (epoch + 1), epoch)
            writer.add_scalar(tag, 10.0 - epoch, epoch)
        writer.close()
        runs[stage] = (tmp_path / stage, tag)
    scalars = read_scalars(tmp_path / "keypoints")
    assert scalars["valid/rmse"] == [(e, 10.0 - e) for e in range(5)]
    assert [v for _, v in scalars["train/loss"]] == pytest.approx([1, 1 / 2, 1 / 3, 1 / 4, 1 / 5])
    width, height = png_size(plot_training_curves(runs, tmp_path / "curves.png"))
    assert 800 <= width <= 2000 and 400 <= height <= 2000
