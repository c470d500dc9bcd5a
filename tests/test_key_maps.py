"""Users' weight files in other projects' layouts: MMPose top-down checkpoints (strict, as
trained weights) and ImageNet classification HRNets (official / timm, as MODEL.PRETRAINED),
each built from the real key names and shapes with random values."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from common.checkpoint import CheckpointError
from common.config import load_config
from common.key_maps import CLASSIFICATION, MMPOSE, OFFICIAL, layout_of
from common.state_dict import CheckpointMismatchError, load_state_dict_strict
from models.hrnet import OFFICIAL_PRETRAINED_LAYERS, PoseHighResolutionNet, hrnet_extra
from models.weights import load_pretrained
from tests.conftest import ROOT


def tiny(joints: int = 17, seed: int = 0) -> PoseHighResolutionNet:
    torch.manual_seed(seed)
    return PoseHighResolutionNet(hrnet_extra([8, 16, 32, 64], blocks=1, modules=(1, 1, 1)),
                                 joints)


def random_like(shapes: dict[str, torch.Size], seed: int = 0) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in shapes.items():
        if key.endswith("num_batches_tracked"):
            state[key] = torch.tensor(7)
        elif key.endswith("running_var"):
            state[key] = torch.rand(shape, generator=generator) + 0.5
        else:
            state[key] = torch.randn(shape, generator=generator) * 0.05
    return state


def mmpose_checkpoint(state: dict[str, torch.Tensor], head: str = "head") -> dict:
    """An MMPose release file: ``{'meta': ..., 'state_dict': backbone.* + <head>.final_layer.*}``
    (MMPose's HRNet backbone keeps the official names: mmpose/models/backbones/hrnet.py)."""
    renamed = {(f"{head}.{k}" if k.startswith("final_layer.") else f"backbone.{k}"): v
               for k, v in state.items()}
    meta = {"epoch": 210, "mmpose_version": "1.3.1", "dataset_meta": {
        "dataset_name": "coco", "num_keypoints": 17, "sigmas": np.full(17, 0.05, np.float32)}}
    return {"meta": meta, "state_dict": renamed}


@pytest.mark.parametrize("head", ["head", "keypoint_head"])  # MMPose 1.x and 0.x
def test_mmpose_checkpoint_loads_strictly_and_exactly(tmp_path, head) -> None:
    source = tiny(seed=1)
    path = tmp_path / "td-hm_hrnet.pth"
    torch.save(mmpose_checkpoint(source.state_dict(), head), path)
    target = tiny(seed=2)
    load_state_dict_strict(target, path)
    for key, tensor in source.state_dict().items():
        assert torch.equal(target.state_dict()[key], tensor), key
    assert layout_of(torch.load(path, weights_only=False)["state_dict"]) == MMPOSE


def test_mmpose_checkpoint_with_wrong_joints_or_head_is_refused(tmp_path) -> None:
    path = tmp_path / "mm17.pth"
    torch.save(mmpose_checkpoint(tiny(joints=17).state_dict()), path)
    with pytest.raises(CheckpointMismatchError, match="17 joints.*MODEL.NUM_JOINTS says 24"):
        load_state_dict_strict(tiny(joints=24), path)
    unpublished = mmpose_checkpoint(tiny().state_dict())  # normalisation buffers kept
    unpublished["state_dict"]["data_preprocessor.mean"] = torch.tensor([123.675, 116.28, 103.53])
    unpublished["state_dict"]["data_preprocessor.std"] = torch.tensor([1.0, 1.0, 1.0])
    torch.save(unpublished, path)
    with pytest.raises(CheckpointError, match="data_preprocessor.std.*ImageNet"):
        load_state_dict_strict(tiny(), path)
    unpublished["state_dict"]["data_preprocessor.std"] = torch.tensor([58.395, 57.12, 57.375])
    torch.save(unpublished, path)
    load_state_dict_strict(tiny(), path)
    deconv = mmpose_checkpoint(tiny().state_dict())
    deconv["state_dict"]["head.deconv_layers.0.weight"] = torch.zeros(8, 8, 4, 4)
    torch.save(deconv, path)
    with pytest.raises(CheckpointError, match="head.deconv_layers.0.weight"):
        load_state_dict_strict(tiny(), path)


def test_official_layout_is_left_alone() -> None:
    assert layout_of(tiny().state_dict()) == OFFICIAL


@pytest.fixture(scope="module")
def imagenet_w32(tmp_path_factory) -> dict:
    """timm's hrnet_w32 keys and shapes (the official HRNet-Image-Classification layout, as in
    hrnet_w32-36af842e.pth), random values, saved as .pth and .safetensors."""
    timm = pytest.importorskip("timm")
    from safetensors.torch import save_file

    with torch.device("meta"):
        model = timm.create_model("hrnet_w32", pretrained=False)
    state = random_like({key: t.shape for key, t in model.state_dict().items()})
    folder = tmp_path_factory.mktemp("imagenet")
    torch.save(state, folder / "hrnet_w32-36af842e.pth")
    save_file(state, str(folder / "model.safetensors"))
    return {"state": state, "pth": folder / "hrnet_w32-36af842e.pth",
            "safetensors": folder / "model.safetensors"}


def _w32_pose(cfg_name: str = "w32_256x192.yaml") -> PoseHighResolutionNet:
    cfg = load_config(ROOT / "experiments/coco" / cfg_name)
    with torch.device("meta"):
        return PoseHighResolutionNet(cfg.MODEL.EXTRA, 17)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["pth", "safetensors"])
def test_imagenet_hrnet_gives_the_whole_backbone(imagenet_w32, kind) -> None:
    state = imagenet_w32["state"]
    assert layout_of(state) == CLASSIFICATION
    model = _w32_pose().to_empty(device="cpu")
    report = load_pretrained(model, imagenet_w32[kind], layers=OFFICIAL_PRETRAINED_LAYERS)
    assert report["missing"] == [] and report["skipped_shape"] == []
    assert report["unexpected"] and all(".fuse_layers." in k for k in report["unexpected"])
    loaded = model.state_dict()
    for key in ("conv1.weight", "layer1.0.downsample.0.weight", "stage4.2.branches.3.3.bn2.bias",
                "stage4.2.fuse_layers.0.3.0.weight", "transition3.3.0.0.weight"):
        assert torch.equal(loaded[key], state[key]), key


@pytest.mark.slow
def test_imagenet_hrnet_is_no_keypoint_model_nor_another_width(imagenet_w32) -> None:
    with pytest.raises(CheckpointMismatchError, match="no keypoint head"):
        load_state_dict_strict(_w32_pose(), imagenet_w32["pth"], assign=True)
    with pytest.raises(CheckpointMismatchError, match="ImageNet HRNet whose backbone does not "
                                                      "fit.*NUM_CHANNELS"):
        load_pretrained(tiny(), imagenet_w32["pth"], layers=OFFICIAL_PRETRAINED_LAYERS)


@pytest.mark.slow
def test_infer_with_official_and_mmpose_w48_checkpoints(tmp_path) -> None:
    """The README's command, literally, on a folder (official layout) and a video (MMPose
    layout) with W48 384x288 weights of the real shapes: no option but --input, --cfg and
    --weights (and --out)."""
    import json
    import subprocess
    import sys

    import cv2

    from models.backends import randomize_weights

    cfg = ROOT / "experiments/coco/w48_384x288.yaml"
    with torch.device("meta"):
        model = PoseHighResolutionNet(load_config(cfg).MODEL.EXTRA, 17)
    state = randomize_weights(model.to_empty(device="cpu"), seed=0).state_dict()
    official = tmp_path / "pose_hrnet_w48_384x288.pth"
    torch.save(state, official)
    mmpose = tmp_path / "td-hm_hrnet-w48_8xb32-210e_coco-384x288.pth"
    torch.save(mmpose_checkpoint(state), mmpose)
    photos = tmp_path / "photos"
    photos.mkdir()
    rng = np.random.default_rng(0)
    for name in ("one.jpg",):
        cv2.imwrite(str(photos / name), rng.integers(0, 255, (120, 90, 3), dtype=np.uint8))
    video = tmp_path / "clip.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 5.0, (96, 64))
    for _ in range(1):
        writer.write(rng.integers(0, 255, (64, 96, 3), dtype=np.uint8))
    writer.release()
    for source, weights in ((photos, official), (video, mmpose)):
        out = tmp_path / f"out_{source.name}"
        result = subprocess.run(
            [sys.executable, str(ROOT / "tools/infer.py"), "--input", str(source), "--cfg",
             str(cfg), "--weights", str(weights), "--out", str(out)],
            capture_output=True, text=True, cwd=ROOT, timeout=600)
        assert result.returncode == 0, result.stderr
        assert "warning" not in result.stderr, result.stderr
        entries = json.loads((out / "keypoints.json").read_text())
        assert len(entries) == 1 and all(len(e["keypoints"]) == 17 * 3 for e in entries)
        assert np.isfinite([v for e in entries for v in e["keypoints"]]).all()
