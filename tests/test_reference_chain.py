"""The reference chain of benchmarks/reference.py, the reproduction switches that make the
project's answers comparable with it (TEST.REFERENCE_BOXES, TEST.BN_BATCH_STATS), and the
test-time costs removed for issue 16 (lazy stage imports, meta-device model builds)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from common.box_files import read_box_annotations
from common.boxes import clean_box
from common.config import load_config
from common.errors import ConfigError
from common.keypoints import keypoint_set
from common.motion_data import keypoints_array, read_keypoint_csv
from HRNet_bbox.codec import BoxCodec, reference_boxes_xywh
from HRNet_keypoint import engine as keypoint_engine
from models.backends import load_inference_model, prepare_inference_model, randomize_weights
from tests.conftest import ROOT, load_tool

TINY_BBOX = "experiments/bbox/tiny_cpu_bbox.yaml"
TINY_KEYPOINT = "experiments/keypoint/tiny_cpu_keypoint.yaml"


def test_reference_boxes_keep_the_first_corner_and_are_not_clipped():
    corners = np.array([[300.0, 20.0, 350.0, 190.0], [50.0, 80.0, 10.0, 40.0]])
    assert reference_boxes_xywh(corners).tolist() == [[300, 20, 50, 170], [50, 80, 40, 40]]
    codec = BoxCodec("pooled", (64, 64), reference_boxes=True)
    sizes = np.array([[320, 180], [320, 180]])
    boxes = codec.decode(torch.tensor(corners / [320, 180, 320, 180]), sizes, ["a", "b"])
    np.testing.assert_allclose(boxes, reference_boxes_xywh(corners))
    clipped = BoxCodec("pooled", (64, 64)).decode(
        torch.tensor(corners / [320, 180, 320, 180]), sizes, ["a", "b"])
    assert clipped[0].tolist() == [300, 20, 19, 159]  # clipped at the last pixel, 319 and 179


def test_a_box_over_the_edge_crops_one_pixel_longer_with_reference_boxes():
    corners = np.array([[300.0, 20.0, 350.0, 190.0]])
    sizes = np.array([[320, 180]])
    reference = clean_box(reference_boxes_xywh(corners)[0], 320, 180)
    project = clean_box(BoxCodec("pooled", (64, 64)).decode(
        torch.tensor(corners / [320, 180, 320, 180]), sizes, ["a"])[0], 320, 180)
    assert reference.tolist() == [300, 20, 19, 159]
    assert project.tolist() == [300, 20, 18, 158]


def tiny_keypoint_model(opts: list[str] = ()) -> tuple[torch.nn.Module, object]:
    cfg = load_config(ROOT / TINY_KEYPOINT, ["MODEL.PRETRAINED", "", *opts])
    model = randomize_weights(keypoint_engine.build_model(cfg, is_train=False), 0)
    return model, cfg


def test_bn_batch_stats_runs_batch_norm_on_each_batch():
    model, cfg = tiny_keypoint_model(["TEST.BN_BATCH_STATS", "True"])
    images = torch.randn(3, 3, *reversed(cfg.MODEL.IMAGE_SIZE))
    with torch.no_grad():
        expected_eval = model.eval()(images)
        test_model = prepare_inference_model(model, cfg).eval()
        batch_stats = test_model(images)
        alone = test_model(images[:1])
    bns = [m for m in test_model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert bns and all(bn.training for bn in bns)
    assert (batch_stats - expected_eval).abs().max() > 1e-3
    assert (alone[0] - batch_stats[0]).abs().max() > 1e-4  # answers depend on the batch


def test_bn_batch_stats_is_refused_by_the_folding_backends():
    model, cfg = tiny_keypoint_model(["TEST.BN_BATCH_STATS", "True", "TEST.BACKEND", "fused"])
    with pytest.raises(ConfigError, match="TEST.BN_BATCH_STATS True needs TEST.BACKEND torch"):
        prepare_inference_model(model, cfg)


def test_a_test_model_is_built_on_meta_and_gets_the_file_weights(tmp_path):
    model, cfg = tiny_keypoint_model(["TEST.BACKEND", "torch"])
    state = model.state_dict()
    del state[next(k for k in state if k.endswith("num_batches_tracked"))]
    torch.save(state, tmp_path / "model_best.pth")
    build = lambda: keypoint_engine.build_model(cfg, is_train=False)  # noqa: E731
    loaded = load_inference_model(build, cfg, tmp_path / "model_best.pth", torch.device("cpu"))
    assert not any(t.is_meta for t in [*loaded.parameters(), *loaded.buffers()])
    images = torch.randn(2, 3, *reversed(cfg.MODEL.IMAGE_SIZE))
    with torch.no_grad():
        torch.testing.assert_close(loaded(images), model.eval()(images))


def test_box_and_keypoint_runs_do_not_import_the_gesture_stage_or_sklearn():
    code = ("import sys; from stages import stage_for; stage_for('bbox'); stage_for('keypoint');"
            "import stages.chain; print(sorted(m for m in sys.modules "
            "if m.startswith(('sklearn', 'common.gesture', 'tensorboardX'))))")  # fmt: skip
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, check=True)  # fmt: skip
    assert done.stdout.strip() == "[]"


def test_the_single_box_chain_imports_neither_torchvision_nor_albumentations():
    # about 1.5 s of each chain process (W48: 13 s for 16 images) before they were made lazy
    code = ("import runpy, sys; sys.path.insert(0, 'tools'); from stages import stage_for;"
            "stage_for('bbox'); stage_for('keypoint'); import stages.chain;"
            "runpy.run_path('tools/pipeline.py'); print(sorted({m.split('.')[0] for m in "
            "sys.modules if m.startswith(('torchvision', 'albumentations'))}))")  # fmt: skip
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, check=True)  # fmt: skip
    assert done.stdout.strip() == "[]"


def _keypoints(path, joints):
    names = keypoint_set(joints)["names"]
    table = read_keypoint_csv(path, names).sort_values("image")
    return list(table["image"]), keypoints_array(table, names)


@pytest.mark.slow
def test_the_reference_chain_and_the_two_step_way_agree(tiny_motion, tmp_path):
    from benchmarks.reference import run_box_stage, run_keypoint_stage
    from HRNet_bbox import engine as bbox_engine

    opts = ["MODEL.PRETRAINED", "", "DATASET.ROOT", str(tiny_motion),
            "DATASET.DROP_REFERENCE_ROWS", "False", "TEST.REFERENCE_BOXES", "True"]  # fmt: skip
    official = [*opts, "TEST.BACKEND", "torch", "TEST.PRECISION", "fp32"]  # as the README says
    for stage, cfg_path, engine in (("bbox", TINY_BBOX, bbox_engine),
                                    ("keypoint", TINY_KEYPOINT, keypoint_engine)):
        cfg = load_config(ROOT / cfg_path, opts)
        folder = tmp_path / stage
        folder.mkdir()
        seed = 1 if stage == "bbox" else 2
        model = randomize_weights(engine.build_model(cfg, is_train=False), seed)
        torch.save(model.state_dict(), folder / "model_best.pth")
    images = tiny_motion / "images" / "test_imgs"
    run_box_stage(TINY_BBOX, tmp_path / "bbox" / "model_best.pth", images, tmp_path / "ref.pkl")
    run_keypoint_stage(TINY_KEYPOINT, tmp_path / "keypoint" / "model_best.pth", images,
                       tmp_path / "ref.pkl", tmp_path / "ref.csv")  # fmt: skip
    test = load_tool("test")
    test.main(["--cfg", TINY_BBOX, "--output_path", str(tmp_path / "bbox"), *official])
    box_file = tmp_path / "bbox" / "test_annotation.pkl"
    test.main(["--cfg", TINY_KEYPOINT, "--output_path", str(tmp_path / "keypoint"), *official,
               "DATASET.BOX_FILE", str(box_file)])  # fmt: skip
    ours, reference = read_box_annotations(box_file), read_box_annotations(tmp_path / "ref.pkl")
    assert sorted(ours) == sorted(reference)
    for name in ours:
        np.testing.assert_allclose(ours[name]["bbox"], reference[name]["bbox"], atol=1e-3)
    names, coords = _keypoints(tmp_path / "keypoint" / "result.csv", 24)
    ref_names, ref_coords = _keypoints(tmp_path / "ref.csv", 24)
    assert names == ref_names
    assert np.abs(coords - ref_coords).max() <= 0.05


@pytest.mark.slow
def test_against_reference_quick_times_every_variant(tmp_path):
    out = tmp_path / "against.json"
    load_tool("benchmark").main(["--against-reference", "--quick", "--out", str(out)])
    report = json.loads(out.read_text())["sizes"]["tiny"]
    assert set(report["variants"]) == {"reference", "plain", "chain_onnxruntime"}
    assert report["variants"]["reference"]["speed_vs_reference"] == 1.0
    for variant in ("plain", "chain_onnxruntime"):
        assert report["variants"][variant]["best_s"] > 0
        assert report["parity"][variant]["result_csv_max_abs_px"] <= 0.05
        assert report["parity"][variant]["boxes_max_abs_px"] <= 0.05


def test_onnxruntime_splits_a_batch_across_cores_without_changing_a_number(tmp_path):
    from models.backends import OnnxRuntimeModel, export_onnx

    model, cfg = tiny_keypoint_model()
    shape = (1, 3, *reversed(cfg.MODEL.IMAGE_SIZE))
    onnx_path = export_onnx(model.eval(), tmp_path / "model.onnx", shape)
    images = torch.randn(5, *shape[1:])
    one_core = OnnxRuntimeModel(onnx_path, threads=1)(images)
    split = OnnxRuntimeModel(onnx_path, threads=2)
    assert torch.equal(split(images), one_core)  # chunks of 3 and 2, one per thread
    assert split._single_image_session is None
    torch.testing.assert_close(split(images[:1]), one_core[:1])  # the multi-threaded session
    assert split._single_image_session is not None
