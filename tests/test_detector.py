"""The multi-person detector (TASK detect): torchvision's FCOS, RetinaNet and Faster R-CNN on a
tiny HRNet, boxes back in original pixels, letterboxing and flips, torchvision's COCO weights
from a local file (random tensors in the real key layout), the bbox scores."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from common.detection_eval import bbox_ap, count_threshold, detection_results, right_count
from common.errors import ConfigError, MissingFileError
from common.state_dict import CheckpointMismatchError
from HRNet_bbox.detect_engine import Detections, _to_original
from HRNet_bbox.detection_data import DetectionDataset, letterbox, targets_of
from HRNet_bbox.detector import HRNET_DETECTORS, build_detector
from models.hrnet import build_pose_hrnet
from tests.bbox_setup import tiny_cfg


def detect_cfg(name: str = "fcos", size=(64, 64)):
    cfg = tiny_cfg(size=size)
    cfg.TASK = "detect"
    cfg.MODEL.DETECTOR.NAME = name
    cfg.MODEL.DETECTOR.FPN_CHANNELS = 32
    return cfg


@pytest.mark.parametrize("name", [
    HRNET_DETECTORS[0], *(pytest.param(n, marks=pytest.mark.slow) for n in HRNET_DETECTORS[1:])])
def test_hrnet_detectors_train_and_detect(name):
    torch.manual_seed(0)
    model = build_detector(detect_cfg(name), is_train=True)
    images = [torch.rand(3, 64, 64) for _ in range(2)]
    corners = torch.tensor([[[4.0, 6.0, 30.0, 60.0], [0, 0, 0, 0]],
                            [[10.0, 2.0, 40.0, 50.0], [36.0, 8.0, 60.0, 62.0]]])  # fmt: skip
    targets = targets_of(corners, torch.tensor([1, 2]), label=1)
    assert [len(t["boxes"]) for t in targets] == [1, 2]
    losses = model(images, targets)
    total = sum(losses.values())
    assert torch.isfinite(total) and total > 0
    total.backward()
    assert model.backbone.body.conv1.weight.grad.abs().sum() > 0, "the HRNet learns too"
    model.eval()
    with torch.no_grad():
        outputs = model(images)
    assert len(outputs) == 2 and outputs[0]["boxes"].shape[1] == 4


def test_hrnet_keys_are_the_official_ones_under_backbone_body():
    cfg = detect_cfg()
    state = build_detector(cfg, is_train=False).state_dict()
    detector_keys = {k.removeprefix("backbone.body.") for k in state
                     if k.startswith("backbone.body.")}  # fmt: skip
    hrnet_keys = {k for k in build_pose_hrnet(cfg, is_train=False).state_dict()
                  if not k.startswith("final_layer")}  # fmt: skip
    assert detector_keys == hrnet_keys


def test_unknown_detector_and_odd_size_are_config_errors():
    with pytest.raises(ConfigError, match="MODEL.DETECTOR.NAME must be one of"):
        build_detector(detect_cfg("yolo"), is_train=False)
    with pytest.raises(ConfigError, match="multiples of 32"):
        build_detector(detect_cfg(size=(72, 64)), is_train=False)
    cfg = detect_cfg()
    cfg.MODEL.DETECTOR.FPN_CHANNELS = 48
    with pytest.raises(ConfigError, match="FPN_CHANNELS must be a positive multiple of 32"):
        build_detector(cfg, is_train=False)


def test_nms_threshold_reaches_each_detector():
    """MODEL.DETECTOR.NMS_THRE sets the NMS IoU of FCOS/RetinaNet and of Faster R-CNN's box
    head; 0 keeps torchvision's own; a value above 1 is refused."""
    assert build_detector(detect_cfg(), is_train=False).nms_thresh == 0.6
    for name, where in (("fcos", lambda m: m), ("retinanet", lambda m: m),
                        ("fasterrcnn", lambda m: m.roi_heads)):  # fmt: skip
        cfg = detect_cfg(name)
        cfg.MODEL.DETECTOR.NMS_THRE = 0.35
        assert where(build_detector(cfg, is_train=False)).nms_thresh == 0.35
    cfg.MODEL.DETECTOR.NMS_THRE = 1.5
    with pytest.raises(ConfigError, match="NMS_THRE must be between 0 and 1"):
        build_detector(cfg, is_train=False)


@pytest.mark.slow
@pytest.mark.parametrize("builder", ["fasterrcnn_mobilenet_v3_large_320_fpn", "fcos_resnet50_fpn"])
def test_torchvision_coco_weights_load_from_a_local_file(builder, tmp_path):
    """A state dict in torchvision's own key layout (random tensors of the real shapes) loads
    strictly; the trained-file path ignores it; a file of another builder is one clear error."""
    cfg = detect_cfg(builder, size=(320, 320))
    reference = build_detector(cfg, is_train=True).state_dict()
    generator = torch.Generator().manual_seed(1)
    state = {k: torch.rand(v.shape, generator=generator) if v.is_floating_point() else v
             for k, v in reference.items()}  # fmt: skip
    torch.save(state, tmp_path / "coco.pth")
    cfg.MODEL.DETECTOR.WEIGHTS = str(tmp_path / "coco.pth")
    loaded = build_detector(cfg, is_train=True).state_dict()
    assert all(torch.equal(loaded[k], state[k]) for k in state)
    assert not torch.equal(build_detector(cfg, is_train=False).state_dict()[
        next(k for k in state if state[k].is_floating_point())], next(
        v for v in state.values() if v.is_floating_point()))  # fmt: skip

    cut = dict(list(state.items())[1:])
    torch.save(cut, tmp_path / "cut.pth")
    cfg.MODEL.DETECTOR.WEIGHTS = str(tmp_path / "cut.pth")
    with pytest.raises(CheckpointMismatchError, match="1 missing keys"):
        build_detector(cfg, is_train=True)
    cfg.MODEL.DETECTOR.WEIGHTS = str(tmp_path / "absent.pth")
    with pytest.raises(MissingFileError, match="MODEL.DETECTOR.WEIGHTS file not found"):
        build_detector(cfg, is_train=True)


def test_letterbox_keeps_aspect_and_pads_right_and_below():
    image = np.full((90, 160, 3), 255, np.uint8)
    canvas, scale = letterbox(image, (64, 64))
    assert canvas.shape == (64, 64, 3) and scale == pytest.approx(0.4)
    assert (canvas[:36] == 255).all() and (canvas[36:] != 255).all()


def test_training_flip_moves_boxes_with_the_figure(tmp_path):
    """A white block and its box stay together after the flip (padding stays right)."""
    image = np.zeros((60, 120, 3), np.uint8)
    image[10:50, 8:30] = 255
    dataset = DetectionDataset(detect_cfg(size=(64, 64)), [tmp_path / "a.jpg"],
                               [np.array([[8.0, 10.0, 22.0, 40.0]])], is_train=True,
                               images=[image])  # fmt: skip
    seen = set()
    for seed in range(8):
        np.random.seed(seed)
        tensor, corners, meta = dataset[0]
        x1, y1, x2, y2 = corners[0].numpy()
        white = tensor[0].numpy() > 0.9
        columns = np.flatnonzero(white.any(axis=0))
        assert abs(columns.min() - x1) <= 1 and abs(columns.max() + 1 - x2) <= 1
        assert meta["count"] == 1
        seen.add(round(float(x1)))
    assert len(seen) == 2, "both the plain and the flipped image were drawn"


def test_scale_jitter_zooms_and_moves_boxes_with_the_figure(tmp_path):
    """With MODEL.DETECTOR.SCALE_JITTER the white block lands at several sizes and places, its
    box always on it; a box pushed off the canvas is dropped; a bad value is refused."""
    image = np.zeros((60, 120, 3), np.uint8)
    image[10:50, 50:70] = 255
    cfg = detect_cfg(size=(64, 64))
    cfg.MODEL.DETECTOR.SCALE_JITTER = 0.5
    boxes = [np.array([[50.0, 10.0, 20.0, 40.0], [112.0, 52.0, 8.0, 8.0]])]
    dataset = DetectionDataset(cfg, [tmp_path / "a.jpg"], boxes, is_train=True, images=[image])
    widths, lefts, counts = set(), set(), set()
    for seed in range(16):
        np.random.seed(seed)
        tensor, corners, meta = dataset[0]
        white = tensor[0].numpy() > 0.9
        rows, columns = np.flatnonzero(white.any(axis=1)), np.flatnonzero(white.any(axis=0))
        x1, y1, x2, y2 = corners[0].numpy()
        assert abs(columns.min() - x1) <= 1.5 and abs(columns.max() + 1 - x2) <= 1.5
        assert abs(rows.min() - y1) <= 1.5 and abs(rows.max() + 1 - y2) <= 1.5
        assert (corners[: meta["count"]] >= 0).all() and (corners[: meta["count"]] <= 64).all()
        widths.add(round(float(x2 - x1)))
        lefts.add(round(float(x1)))
        counts.add(meta["count"])
    assert len(widths) > 3 and len(lefts) > 3
    assert counts == {1, 2}, "the corner box is kept on the canvas and dropped off it"
    cfg.MODEL.DETECTOR.SCALE_JITTER = 1.0
    with pytest.raises(ConfigError, match="SCALE_JITTER must be at least 0 and below 1"):
        DetectionDataset(cfg, [tmp_path / "a.jpg"], boxes, is_train=True, images=[image])


def test_outputs_go_back_to_original_pixels_clipped_and_sorted():
    output = {"boxes": torch.tensor([[10.0, 10.0, 20.0, 30.0], [0.0, 0.0, 64.0, 40.0],
                                     [5.0, 5.0, 5.2, 9.0]]),
              "scores": torch.tensor([0.3, 0.9, 0.8]),
              "labels": torch.tensor([1, 1, 1])}  # fmt: skip
    boxes, scores = _to_original(output, scale=0.4, width=150, height=90)
    np.testing.assert_allclose(scores, [0.9, 0.3])  # the 0.5 px wide box is dropped
    np.testing.assert_allclose(boxes, [[0, 0, 150, 90], [25, 25, 25, 50]])


def test_detections_top_box_and_threshold():
    found = Detections([np.array([[1.0, 2, 3, 4], [5, 6, 7, 8]]), np.zeros((0, 4))],
                       [np.array([0.9, 0.4]), np.zeros(0)], np.array([[10, 20], [30, 40]]))
    np.testing.assert_allclose(found.top_boxes(), [[1, 2, 3, 4], [0, 0, 30, 40]])
    kept = found.above(0.5)
    assert [len(b) for b in kept.boxes] == [1, 0]
    assert [len(b) for b in found.above(0.0, max_people=1).boxes] == [1, 0]


def test_bbox_ap_and_right_count():
    truth = [np.array([[0.0, 0, 10, 20], [30, 0, 10, 20]]), np.array([[5.0, 5, 10, 10]])]
    perfect = detection_results([1, 2], truth, [np.array([0.9, 0.8]), np.array([0.7])])
    assert bbox_ap(truth, perfect)["AP"] == pytest.approx(1.0)
    shifted = detection_results([1, 2], [t + [8, 0, 0, 0] for t in truth],
                                [np.array([0.9, 0.8]), np.array([0.7])])  # fmt: skip
    assert bbox_ap(truth, shifted)["AP"] < 0.5
    assert bbox_ap(truth, [])["AP"] == 0.0
    assert right_count(truth[0], truth[0][::-1])
    assert not right_count(truth[0], truth[0][:1])
    assert not right_count(truth[0], np.array([[0.0, 0, 10, 20], [0, 0, 10, 20]]))
    assert right_count(np.zeros((0, 4)), np.zeros((0, 4)))


def test_count_threshold_is_the_one_that_counts_people_right():
    truth = [np.array([[0.0, 0, 10, 20], [30, 0, 10, 20]]), np.array([[5.0, 5, 10, 10]])]
    boxes = [np.array([[0.0, 0, 10, 20], [30, 0, 10, 20], [60, 0, 10, 20]]),
             np.array([[5.0, 5, 10, 10], [40, 40, 5, 5]])]
    scores = [np.array([0.9, 0.6, 0.3]), np.array([0.8, 0.5])]
    # 0.2 keeps the false boxes, 0.7 loses a person; 0.55 and 0.6 are both right: the lower
    assert count_threshold(truth, boxes, scores, [0.2, 0.55, 0.6, 0.7]) == (0.55, 1.0)
    assert count_threshold(truth, boxes, scores, [0.7, 0.95]) == (0.7, 0.5)
