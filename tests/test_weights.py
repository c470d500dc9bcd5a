"""Checkpoint reading, pretrained loading (lenient, reported) and strict test-time loading."""

from __future__ import annotations

import logging
from pathlib import PurePosixPath

import numpy as np
import pytest
import torch

from common.checkpoint import CheckpointError
from common.state_dict import CheckpointMismatchError, load_state_dict_strict, read_state_dict
from models.hrnet import OFFICIAL_PRETRAINED_LAYERS, PoseHighResolutionNet, hrnet_extra
from models.weights import load_pretrained


def tiny(joints: int = 24, widths=(8, 16, 32, 64), seed: int = 0) -> PoseHighResolutionNet:
    torch.manual_seed(seed)
    return PoseHighResolutionNet(hrnet_extra(list(widths), blocks=1, modules=(1, 1, 1)), joints)


def save(obj, path) -> str:
    torch.save(obj, path)
    return str(path)


def test_17_joint_checkpoint_into_24_joint_model(tmp_path, caplog) -> None:
    source = tiny(joints=17, seed=1)
    wrapped = {"epoch": 3, "perf": 0.5,
               "state_dict": {f"module.{k}": v for k, v in source.state_dict().items()}}
    path = save(wrapped, tmp_path / "coco17.pth")
    target = tiny(joints=24, seed=2)
    head_before = target.final_layer.weight.detach().clone()
    with caplog.at_level(logging.INFO, logger="models.weights"):
        report = load_pretrained(target, path)
    assert report["skipped_shape"] == [("final_layer.weight", (17, 8, 1, 1), (24, 8, 1, 1)),
                                       ("final_layer.bias", (17,), (24,))]
    assert "final_layer.weight: checkpoint (17, 8, 1, 1) vs model (24, 8, 1, 1), kept the " \
           "model's init" in caplog.text
    assert report["missing"] == [] and report["unexpected"] == []
    assert len(report["loaded"]) == len(source.state_dict()) - 2
    target_state = target.state_dict()
    for key, tensor in source.state_dict().items():
        if not key.startswith("final_layer."):
            assert torch.equal(target_state[key], tensor), key
    assert torch.equal(target.final_layer.weight, head_before)


def test_pretrained_layers_filter(tmp_path) -> None:
    source = tiny(seed=1)
    path = save(source.state_dict(), tmp_path / "w.pth")
    target = tiny(seed=2)
    layer1_before = target.layer1[0].conv1.weight.detach().clone()
    report = load_pretrained(target, path, layers=["conv1", "bn1"])
    assert sorted(report["loaded"]) == sorted(
        k for k in source.state_dict() if k.split(".")[0] in ("conv1", "bn1"))
    assert "layer1.0.conv1.weight" in report["skipped_layer"]
    assert report["missing"] == []
    assert torch.equal(target.conv1.weight, source.conv1.weight)
    assert torch.equal(target.bn1.running_var, source.bn1.running_var)
    assert torch.equal(target.layer1[0].conv1.weight, layer1_before)
    with pytest.raises(ValueError, match="empty"):
        load_pretrained(target, path, layers=[])


def test_file_without_num_batches_tracked(tmp_path) -> None:
    source = tiny(seed=1)
    state = {k: v for k, v in source.state_dict().items()
             if not k.endswith("num_batches_tracked")}
    path = save(state, tmp_path / "old.pth")
    target = tiny(seed=2)
    report = load_pretrained(target, path)
    assert report["missing"] == [] and len(report["loaded"]) == len(state)
    load_state_dict_strict(tiny(seed=3), path)


def test_imagenet_style_extras_are_skipped(tmp_path) -> None:
    source = tiny(joints=17, seed=1)
    state = dict(source.state_dict())
    del state["final_layer.weight"], state["final_layer.bias"]
    extras = {
        "incre_modules.0.0.conv1.weight": torch.zeros(32, 8, 1, 1),
        "downsamp_modules.0.0.weight": torch.zeros(256, 128, 3, 3),
        "final_layer.0.weight": torch.zeros(2048, 1024, 1, 1),
        "classifier.weight": torch.zeros(1000, 2048),
        "stage4.0.fuse_layers.1.0.0.0.weight": torch.zeros(16, 8, 3, 3),  # multi-scale stage 4
    }
    path = save({**state, **extras}, tmp_path / "imagenet.pth")
    report = load_pretrained(tiny(seed=2), path, layers=OFFICIAL_PRETRAINED_LAYERS)
    # the classification head is dropped by the key map (common/key_maps.py), not loaded
    assert report["skipped_layer"] == []
    assert report["unexpected"] == ["stage4.0.fuse_layers.1.0.0.0.weight"]
    assert report["skipped_shape"] == [] and report["missing"] == []
    everything = load_pretrained(tiny(seed=2), path)
    assert everything["unexpected"] == ["stage4.0.fuse_layers.1.0.0.0.weight"]
    assert everything["missing"] == ["final_layer.weight", "final_layer.bias"]


def test_nothing_fits_is_an_error(tmp_path) -> None:
    path = save({"classifier.weight": torch.zeros(3, 3)}, tmp_path / "foreign.pth")
    with pytest.raises(CheckpointMismatchError, match="foreign.pth"):
        load_pretrained(tiny(), path)


def test_read_state_dict_unwraps_and_strips(tmp_path) -> None:
    state = {"a.weight": torch.ones(2), "module.b.bias": torch.zeros(3)}
    for obj in (state, {"state_dict": state, "epoch": 1}, {"model": state, "optimizer": {}}):
        loaded = read_state_dict(save(obj, tmp_path / "c.pth"))
        assert sorted(loaded) == ["a.weight", "b.bias"]
        assert torch.equal(loaded["a.weight"], torch.ones(2))


def test_read_state_dict_accepts_numpy_metrics_refuses_other_classes(tmp_path) -> None:
    checkpoint = {"epoch": 2, "perf": np.float64(0.25), "history": np.zeros(3, np.float32),
                  "state_dict": {"module.a.weight": torch.ones(2)}}
    assert list(read_state_dict(save(checkpoint, tmp_path / "ckpt.pth"))) == ["a.weight"]
    foreign = {"where": PurePosixPath("x"), "a.weight": torch.ones(2)}
    with pytest.raises(CheckpointError, match=r"path.pth.*pathlib.PurePosixPath"):
        read_state_dict(save(foreign, tmp_path / "path.pth"))


def test_read_state_dict_missing_file(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="nope.pth"):
        read_state_dict(tmp_path / "nope.pth")


def test_read_state_dict_corrupt_truncated_and_foreign(tmp_path) -> None:
    corrupt = tmp_path / "random.pth"
    corrupt.write_bytes(torch.randint(0, 256, (4096,), generator=torch.Generator().manual_seed(0),
                                      dtype=torch.uint8).numpy().tobytes())
    with pytest.raises(CheckpointError, match="random.pth"):
        read_state_dict(corrupt)
    whole = tmp_path / "whole.pth"
    torch.save(tiny().state_dict(), whole)
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="truncated.pth"):
        read_state_dict(truncated)
    foreign = save({"epoch": 4, "perf": 1.5}, tmp_path / "foreign.pth")
    with pytest.raises(CheckpointError, match=r"foreign.pth.*'epoch'"):
        read_state_dict(foreign)
    with pytest.raises(CheckpointError, match="list of 2 items"):
        read_state_dict(save([1, 2], tmp_path / "list.pth"))


def test_strict_load_exact(tmp_path) -> None:
    source = tiny(seed=1)
    target = tiny(seed=2)
    load_state_dict_strict(target, save(source.state_dict(), tmp_path / "best.pth"))
    for key, tensor in source.state_dict().items():
        assert torch.equal(target.state_dict()[key], tensor), key
    load_state_dict_strict(tiny(seed=3), {"state_dict": source.state_dict()})


def test_strict_refuses_missing_and_unexpected() -> None:
    state = dict(tiny().state_dict())
    del state["stage3.0.branches.2.0.conv1.weight"]
    state["head.extra.weight"] = torch.zeros(1)
    with pytest.raises(CheckpointMismatchError) as info:
        load_state_dict_strict(tiny(), state)
    message = str(info.value)
    assert "1 missing keys: stage3.0.branches.2.0.conv1.weight" in message
    assert "1 unexpected keys: head.extra.weight" in message


def test_strict_lists_first_ten_and_counts() -> None:
    state = {k: v for k, v in tiny().state_dict().items() if not k.startswith("stage4.")}
    expected_missing = [k for k in tiny().state_dict()
                        if k.startswith("stage4.") and not k.endswith("num_batches_tracked")]
    with pytest.raises(CheckpointMismatchError) as info:
        load_state_dict_strict(tiny(), state)
    message = str(info.value)
    assert f"{len(expected_missing)} missing keys" in message
    assert f"({len(expected_missing) - 10} more)" in message
    assert "NUM_MODULES" in message


def test_strict_refuses_joint_count_with_hint(tmp_path) -> None:
    path = save(tiny(joints=17).state_dict(), tmp_path / "coco.pth")
    with pytest.raises(CheckpointMismatchError) as info:
        load_state_dict_strict(tiny(joints=24), path)
    message = str(info.value)
    assert "coco.pth" in message
    assert "final_layer.weight: checkpoint (17, 8, 1, 1) vs model (24, 8, 1, 1)" in message
    assert "the checkpoint has 17 joints, the config MODEL.NUM_JOINTS says 24" in message
    assert "widths differ" not in message


def test_strict_refuses_other_widths_with_hint() -> None:
    state = tiny(widths=(8, 16, 32, 64)).state_dict()
    with pytest.raises(CheckpointMismatchError, match=r"MODEL.EXTRA.STAGE\*.NUM_CHANNELS"):
        load_state_dict_strict(tiny(widths=(8, 16, 32, 48)), state)


def test_strict_recognises_a_wrapped_model() -> None:
    state = {f"0.{k}": v for k, v in tiny().state_dict().items()}
    with pytest.raises(CheckpointMismatchError, match="prefix '0.'"):
        load_state_dict_strict(tiny(), state)


def test_strict_says_which_side_is_wrapped() -> None:
    """A box checkpoint into a bare HRNet, and a bare (keypoint) checkpoint into a box model
    (``0.<key>`` plus a head): each hint names the side that is wrapped."""
    bare = tiny()
    wrapped = torch.nn.Sequential(tiny(), torch.nn.Linear(2, 4))
    with pytest.raises(CheckpointMismatchError) as error:
        load_state_dict_strict(bare, wrapped.state_dict())
    assert "the checkpoint's keys carry the prefix '0.': it holds a wrapped model" in str(
        error.value)
    with pytest.raises(CheckpointMismatchError) as error:
        load_state_dict_strict(wrapped, bare.state_dict())
    message = str(error.value)
    assert "the model's keys carry the prefix '0.'" in message
    assert "the checkpoint holds a bare HRNet" in message and "it holds a wrapped" not in message
