"""Stage one: head shapes for any input size, reference checkpoint layout, box post-processing,
the augmentation fallback, training plumbing and the test_annotation.pkl round trip."""

from __future__ import annotations

import logging
import math
import pickle
from pathlib import Path

import albumentations as A
import numpy as np
import pytest
import torch
from torch import nn

from common import stage_data
from common.box_files import read_box_annotations
from common.config import get_defaults, load_config
from common.io import read_image
from common.stage_data import keypoint_extent_boxes, load_training_table
from common.synthetic.motion import generate_motion_dataset
from common.trainer import fit
from HRNet_bbox import engine
from HRNet_bbox.codec import BoxCodec, loss_weights, sanitize_boxes_xyxy
from HRNet_bbox.dataset import (
    BOX_LABEL,
    WholeImageBoxDataset,
    build_transforms,
    transform_with_fallback,
)
from HRNet_bbox.model import (
    BoxRegressor,
    ReferenceBoxHead,
    SoftArgmaxBoxHead,
    build_box_model,
    heatmap_size_for,
)
from models.hrnet import PoseHighResolutionNet, hrnet_extra
from models.weights import load_state_dict_strict

ROOT = Path(__file__).resolve().parents[1]
TINY_WIDTHS = [8, 16, 32, 64]
SIZES = [[384, 288], [288, 384], [256, 256], [160, 96]]  # [width, height]
LOGGER = logging.getLogger("test_bbox")


def tiny_cfg(head: str = "pooled", size=(64, 32), root: Path | None = None):
    cfg = get_defaults()
    cfg.MODEL.EXTRA = hrnet_extra(TINY_WIDTHS, blocks=1, modules=(1, 1, 1))
    cfg.MODEL.BBOX_HEAD = head
    cfg.MODEL.IMAGE_SIZE = list(size)
    cfg.WORKERS = 0
    cfg.TRAIN.BATCH_SIZE_PER_GPU = 4
    cfg.TEST.BATCH_SIZE_PER_GPU = 3
    if root is not None:
        cfg.DATASET.ROOT = str(root)
    return cfg


@pytest.fixture(scope="module")
def synthetic_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("motion")
    generate_motion_dataset(root, n_train=6, n_test=5, width=128, height=72, seed=3)
    return root


# --------------------------------------------------------------------------- model


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("head", ["reference", "pooled"])
def test_head_output_shapes(head: str, size: list[int]) -> None:
    model = build_box_model(tiny_cfg(head, size), is_train=False).eval()
    width, height = size
    with torch.no_grad():
        output = model(torch.randn(2, 3, height, width))
        corners = BoxCodec(head, size).normalized_corners(output)
    assert output.shape == (2, 4)
    assert torch.isfinite(output).all()
    if head == "pooled":
        assert isinstance(model[1], SoftArgmaxBoxHead)
        assert ((corners >= 0) & (corners < 1)).all()
    else:
        assert isinstance(model[1], ReferenceBoxHead)
        assert torch.allclose(corners * torch.tensor([width, height, width, height]), output)


@pytest.mark.parametrize("size", SIZES)
def test_reference_head_input_matches_the_real_heatmaps(size: list[int]) -> None:
    cfg = tiny_cfg("reference", size)
    model = build_box_model(cfg, is_train=False).eval()
    width, height = size
    with torch.no_grad():
        heatmaps = model[0](torch.randn(1, 3, height, width))
    assert heatmaps.shape[1:] == (24, height // 4, width // 4)
    assert heatmap_size_for(size) == (height // 4, width // 4)
    assert model[1].bbox_layer.in_features == math.prod(heatmaps.shape[1:])
    with pytest.raises(ValueError, match="input size differs"):
        model[1](torch.zeros(1, 24, height // 4 + 1, width // 4))


def test_reference_w48_head_matches_the_competition_model() -> None:
    """At [288, 384] (h, w) the reference head has 663,556 + 48 (bn1) parameters; with the
    W48 backbone (63,596,088, tests/test_hrnet.py) the model has the reference's 64,259,692."""
    head = ReferenceBoxHead(24, heatmap_size_for([384, 288]))
    assert head.bbox_layer.in_features == 24 * 72 * 96 == 165888
    head_params = sum(p.numel() for p in head.parameters())
    assert head_params == 663_556 + 48
    assert 63_596_088 + head_params == 64_259_692
    state = build_box_model(tiny_cfg("reference"), is_train=False).state_dict()
    for key in ("0.conv1.weight", "0.final_layer.weight", "1.bbox_layer.weight",
                "1.bn1.running_mean"):
        assert key in state


def test_reference_checkpoint_layout_loads_strictly(tmp_path: Path) -> None:
    """A model saved as nn.Sequential(pose_hrnet, head with bbox_layer and bn1), as the
    reference saved it, loads into our reference model with no missing or extra key."""
    cfg = tiny_cfg("reference", (64, 32))

    class Head(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.bbox_layer = nn.Linear(24 * 8 * 16, 4)
            self.bn1 = nn.BatchNorm2d(24)

    foreign = nn.Sequential(PoseHighResolutionNet(cfg.MODEL.EXTRA, 24), Head())
    torch.save(foreign.state_dict(), tmp_path / "model_best.pth")
    model = build_box_model(cfg, is_train=False)
    load_state_dict_strict(model, tmp_path / "model_best.pth")
    assert torch.equal(model[1].bbox_layer.weight, foreign[1].bbox_layer.weight)


def test_pooled_head_drops_the_unused_keypoint_layer_and_is_small() -> None:
    model = build_box_model(tiny_cfg("pooled"), is_train=False)
    assert not any(key.startswith("0.final_layer") for key in model.state_dict())
    reference = build_box_model(tiny_cfg("reference", (384, 288)), is_train=False)
    assert sum(p.numel() for p in model[1].parameters()) * 20 < sum(
        p.numel() for p in reference[1].parameters())


def test_unknown_head_and_bad_input_size_are_refused() -> None:
    with pytest.raises(ValueError, match="BBOX_HEAD"):
        build_box_model(tiny_cfg("linear"), is_train=False)
    with pytest.raises(ValueError, match="multiples of 32"):
        build_box_model(tiny_cfg("pooled", (128, 72)), is_train=False)


# --------------------------------------------------------------------------- post-processing


def test_sanitize_clips_sorts_and_keeps_boxes_positive() -> None:
    sizes = np.array([[100, 50]] * 6)
    corners = np.array([
        [-20.0, -5.0, 130.0, 70.0],  # outside on every side
        [80.0, 40.0, 20.0, 10.0],  # inverted
        [30.0, 20.0, 30.0, 20.0],  # zero size
        [150.0, 60.0, 170.0, 90.0],  # wholly outside (bottom right)
        [-9.0, -9.0, -3.0, -2.0],  # wholly outside (top left)
        [10.0, 10.0, 60.0, 30.0],  # fine: unchanged
    ])
    boxes = sanitize_boxes_xyxy(corners, sizes)
    np.testing.assert_allclose(boxes[0], [0, 0, 99, 49])
    np.testing.assert_allclose(boxes[1], [20, 10, 60, 30])
    np.testing.assert_allclose(boxes[2], [29.5, 19.5, 1, 1])
    np.testing.assert_allclose(boxes[3], [98, 48, 1, 1])
    np.testing.assert_allclose(boxes[4], [0, 0, 1, 1])
    np.testing.assert_allclose(boxes[5], [10, 10, 50, 20])
    assert (boxes[:, 2:] >= 1).all()
    assert (boxes[:, :2] >= 0).all() and (boxes[:, :2] + boxes[:, 2:] <= sizes - 1).all()
    with pytest.raises(ValueError, match="not finite"):
        sanitize_boxes_xyxy(np.array([[0.0, np.nan, 3.0, 3.0]]), np.array([[10, 10]]))


class ConstantCorners(nn.Module):
    """A stand-in model that always predicts the same normalised corners."""

    def __init__(self, corners: list[float]) -> None:
        super().__init__()
        self.corners = torch.tensor(corners)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.corners.expand(len(inputs), 4)


def test_predictions_use_each_images_own_size() -> None:
    cfg = tiny_cfg("pooled")
    images = [np.zeros((50, 100, 3), np.uint8), np.zeros((300, 400, 3), np.uint8)]
    model = ConstantCorners([0.25, 0.5, 0.75, 1.2])
    boxes = engine.predict_boxes_xywh(model, cfg, [Path("a.jpg"), Path("b.jpg")],
                                      torch.device("cpu"), images=images)
    np.testing.assert_allclose(boxes[0], [25, 25, 50, 24])  # bottom clipped to pixel 49
    np.testing.assert_allclose(boxes[1], [100, 150, 200, 149])


# --------------------------------------------------------------------------- data


def test_augmentation_falls_back_when_the_box_is_dropped() -> None:
    image = np.random.default_rng(0).integers(0, 255, (60, 80, 3), dtype=np.uint8)
    box = np.array([50.0, 30.0, 20.0, 20.0])
    params = A.BboxParams(format="coco", min_visibility=0.05, label_fields=["labels"])
    plain = A.Compose([A.Resize(height=32, width=64)], bbox_params=params)
    loses_box = A.Compose([A.Resize(height=32, width=64),
                           A.Crop(x_min=0, y_min=0, x_max=16, y_max=16)], bbox_params=params)
    keeps_box = A.Compose([A.Resize(height=32, width=64), A.HorizontalFlip(p=1.0)],
                          bbox_params=params)
    out, out_box, fell_back = transform_with_fallback(loses_box, plain, image, box, seed=1)
    expected = plain(image=image, bboxes=[list(box)], labels=[BOX_LABEL])
    assert fell_back
    assert out.shape == (32, 64, 3) and np.array_equal(out, expected["image"])
    np.testing.assert_allclose(out_box, [40.0, 16.0, 16.0, 32 * 20 / 60], rtol=1e-6)
    out, out_box, fell_back = transform_with_fallback(keeps_box, plain, image, box, seed=1)
    assert not fell_back
    np.testing.assert_allclose(out_box, [64 - 40.0 - 16.0, 16.0, 16.0, 32 * 20 / 60], rtol=1e-6)


@pytest.mark.parametrize("augmentation", ["reference", "mild"])
def test_training_items_are_seeded_and_boxes_stay_valid(synthetic_root: Path,
                                                        augmentation: str) -> None:
    cfg = tiny_cfg("pooled", root=synthetic_root)
    cfg.DATASET.BBOX_AUG = augmentation
    table = load_training_table(cfg)
    dataset = WholeImageBoxDataset(cfg, table.paths, keypoint_extent_boxes(table.keypoints),
                                   is_train=True)
    items = []
    for _ in range(2):
        torch.manual_seed(5)
        items.append([dataset[i] for i in range(len(dataset))])
    for (x1, t1, _), (x2, t2, meta) in zip(*items, strict=True):
        assert torch.equal(x1, x2) and torch.equal(t1, t2)
        assert x1.shape == (3, 32, 64)
        assert meta["width"] == 128 and meta["height"] == 72
        assert (t1[2:] > t1[:2]).all() and (t1 >= 0).all() and (t1 <= 1).all()
    cfg.DATASET.BBOX_AUG = "heavy"
    with pytest.raises(ValueError, match="BBOX_AUG"):
        build_transforms(cfg, is_train=True)


@pytest.mark.parametrize("head", ["reference", "pooled"])
def test_targets_are_in_the_heads_units(synthetic_root: Path, head: str) -> None:
    cfg = tiny_cfg(head, (64, 32), root=synthetic_root)
    table = load_training_table(cfg)
    boxes = keypoint_extent_boxes(table.keypoints)
    dataset = WholeImageBoxDataset(cfg, table.paths, boxes, is_train=False)
    _, target, meta = dataset[0]
    x, y, w, h = boxes[0]
    corners = np.array([x / 128, y / 72, (x + w) / 128, (y + h) / 72])
    unit = np.array([64, 32, 64, 32]) if head == "reference" else np.ones(4)
    np.testing.assert_allclose(target.numpy(), corners * unit, rtol=1e-5)


def test_colour_order_follows_the_config(synthetic_root: Path) -> None:
    cfg = tiny_cfg(root=synthetic_root)
    path = load_training_table(cfg).paths[0]
    bgr = WholeImageBoxDataset(cfg, [path], None, is_train=False)[0][0]
    cfg.DATASET.COLOR_RGB = True
    rgb = WholeImageBoxDataset(cfg, [path], None, is_train=False)[0][0]
    mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
    pixels_bgr = bgr.numpy() * std[:, None, None] + mean[:, None, None]
    pixels_rgb = rgb.numpy() * std[:, None, None] + mean[:, None, None]
    np.testing.assert_allclose(pixels_rgb, pixels_bgr[::-1], atol=1e-5)
    assert not np.allclose(pixels_bgr[0], pixels_bgr[2], atol=0.05)


def test_reference_loss_scaling() -> None:
    cfg = tiny_cfg("reference", (384, 288))
    meta = {"width": torch.tensor([1920]), "height": torch.tensor([1080])}
    cfg.INPUT_SIZE = 288  # the reference: x by 1920/288, y by 1080/288
    np.testing.assert_allclose(loss_weights(cfg, meta).numpy()[0],
                               [1920 / 288, 3.75, 1920 / 288, 3.75], rtol=1e-6)
    cfg.INPUT_SIZE = 0  # true original pixels
    np.testing.assert_allclose(loss_weights(cfg, meta).numpy()[0], [5, 3.75, 5, 3.75],
                               rtol=1e-6)


# --------------------------------------------------------------------------- train and test


def test_one_epoch_then_test_writes_valid_records(synthetic_root: Path, tmp_path: Path) -> None:
    cfg = tiny_cfg("pooled", root=synthetic_root)
    cfg.DATASET.BBOX_AUG = "mild"
    cfg.TRAIN.END_EPOCH = 1
    table = load_training_table(cfg)
    model = engine.build_model(cfg, is_train=True)
    stage = engine.build_stage(cfg, model, table.subset(np.arange(4)),
                               table.subset(np.arange(4, 6)), torch.device("cpu"))
    summary = fit(cfg, stage, tmp_path, LOGGER)
    assert summary["best_epoch"] == 0 and math.isfinite(summary["best_perf"])
    scores = engine.evaluate(cfg, model, table.subset(np.arange(4, 6)), torch.device("cpu"))
    assert scores["corner_error"] == pytest.approx(summary["best_perf"])
    assert 0.0 <= scores["iou"] <= 1.0

    result = engine.run_test(cfg, tmp_path, LOGGER, torch.device("cpu"))
    names = stage_data.test_image_names(cfg)  # the submission order
    records = read_box_annotations(result, expected_filenames=names)
    assert len(records) == 5
    for name in names:
        record = records[name]
        x, y, w, h = record["bbox"]
        assert record["width"] == 128 and record["height"] == 72
        assert w >= 1 and h >= 1 and x >= 0 and y >= 0 and x + w <= 128 and y + h <= 72
        assert record["area"] == pytest.approx(w * h)


def test_reference_head_trains_on_scaled_pixels(synthetic_root: Path) -> None:
    cfg = tiny_cfg("reference", root=synthetic_root)
    cfg.DATASET.BBOX_AUG = "reference"
    table = load_training_table(cfg)
    model = engine.build_model(cfg, is_train=True)
    stage = engine.build_stage(cfg, model, table.subset(np.arange(4)),
                               table.subset(np.arange(4, 6)), torch.device("cpu"))
    torch.manual_seed(0)
    batch = next(iter(stage.make_train_loader(torch.Generator().manual_seed(0))))
    loss = stage.train_step(model, batch)
    # An untrained head predicts about 0, so the loss is near the mean squared target corner
    # in original pixels: x times 128/64, y times 72/32.
    _, target, _ = batch
    in_original_pixels = target * torch.tensor([2.0, 2.25, 2.0, 2.25])
    assert loss.item() == pytest.approx(float(in_original_pixels.pow(2).mean()), rel=0.05)
    loss.backward()
    grad = model[1].bbox_layer.weight.grad
    assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0
    metrics = stage.validate(model, 0)
    assert set(metrics) == {"metric", "iou", "corner_error"}
    assert metrics["metric"] == metrics["corner_error"] > 0


def test_run_test_round_trip_with_a_random_model(synthetic_root: Path, tmp_path: Path) -> None:
    cfg = tiny_cfg("pooled", root=synthetic_root)
    model = build_box_model(cfg, is_train=False)
    torch.save(model.state_dict(), tmp_path / "model_best.pth")
    result = engine.run_test(cfg, tmp_path, LOGGER, torch.device("cpu"))
    assert result == tmp_path / "test_annotation.pkl"
    names = stage_data.test_image_names(cfg)  # the submission order
    raw = read_box_annotations(result, expected_filenames=names)
    with open(result, "rb") as handle:
        plain = pickle.load(handle)  # our own file: plain python types only
    assert [record["filename"] for record in plain] == names
    for record in plain:
        assert type(record["width"]) is int and type(record["height"]) is int
        assert all(type(v) is float for v in record["bbox"]) and type(record["area"]) is float
    decoded = [read_image(synthetic_root / cfg.DATASET.TEST_IMAGE_DIR / n) for n in names]
    paths = [synthetic_root / cfg.DATASET.TEST_IMAGE_DIR / n for n in names]
    shared = engine.predict_boxes_xywh(model, cfg, paths, torch.device("cpu"), images=decoded)
    np.testing.assert_allclose(shared, [raw[n]["bbox"] for n in names], rtol=1e-6)

    other = tmp_path / "elsewhere"
    other.mkdir()
    cfg.TEST.MODEL_FILE = str(tmp_path / "model_best.pth")
    assert engine.run_test(cfg, other, LOGGER, torch.device("cpu")).is_file()
    wrong = build_box_model(tiny_cfg("reference"), is_train=False)
    torch.save(wrong.state_dict(), other / "wrong.pth")
    cfg.TEST.MODEL_FILE = str(other / "wrong.pth")
    with pytest.raises(ValueError, match="does not fit"):
        engine.run_test(cfg, other, LOGGER, torch.device("cpu"))


# --------------------------------------------------------------------------- experiment files


def test_tiny_config_builds_the_pooled_model() -> None:
    cfg = load_config(ROOT / "experiments/bbox/tiny_cpu_bbox.yaml")
    assert cfg.TASK == "bbox" and cfg.MODEL.BBOX_HEAD == "pooled"
    assert cfg.DATASET.GROUP_SPLIT and cfg.DATASET.ROOT == "data/synthetic/motion"
    model = build_box_model(cfg, is_train=True)
    assert isinstance(model, BoxRegressor)
    width, height = cfg.MODEL.IMAGE_SIZE
    assert width > height  # wide, like the frames


def test_leaderboard_config_is_the_reference() -> None:
    cfg = load_config(ROOT / "experiments/bbox/w48_384x288_adam_lr1e-3_03_origin.yaml")
    assert cfg.TASK == "bbox" and cfg.MODEL.BBOX_HEAD == "reference"
    assert list(cfg.MODEL.IMAGE_SIZE) == [384, 288]  # 384 wide x 288 tall
    assert cfg.TEST_RATIO == 0.3 and cfg.INPUT_SIZE == 288 and cfg.AUTO_RESUME
    assert not cfg.DATASET.COLOR_RGB and cfg.DATASET.BBOX_AUG == "reference"
    assert cfg.DATASET.DROP_REFERENCE_ROWS and cfg.CUDNN.BENCHMARK
    assert cfg.TRAIN.END_EPOCH == 200 and list(cfg.TRAIN.LR_STEP) == [170, 200]
    assert cfg.TRAIN.BATCH_SIZE_PER_GPU == 8 and cfg.TRAIN.LR == 0.001
    assert list(cfg.MODEL.EXTRA.STAGE4.NUM_CHANNELS) == [48, 96, 192, 384]
    head = ReferenceBoxHead(cfg.MODEL.NUM_JOINTS, heatmap_size_for(cfg.MODEL.IMAGE_SIZE))
    assert head.bbox_layer.in_features == 165888
