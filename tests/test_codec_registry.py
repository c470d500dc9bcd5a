"""The codec registry (HRNet_keypoint/codecs/__init__.py): the config picks the codec (old keys
still read), and a new codec is one file plus one registry line."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from common.config import get_defaults, load_config
from common.errors import ConfigError
from HRNet_keypoint.codecs import CODECS, codec_for_config
from HRNet_keypoint.codecs.quarter import get_final_preds
from HRNet_keypoint.dataset import BoxDataset, KeypointDataset
from HRNet_keypoint.engine import predict_boxes_scored
from tests.test_tta import BlobFinder, blob_images

NEW_CODEC = '''
import numpy as np

from HRNet_keypoint.codecs.base import HeatmapCodec
from HRNet_keypoint.transforms import get_affine_transform


class PlainArgmaxCodec(HeatmapCodec):
    """One-hot targets on the nearest cell, decoded by the argmax alone."""

    name = "argmax"

    def crop_matrix(self, center, scale, rotation, output_size, inv=False):
        return get_affine_transform(center, scale, rotation, output_size, inv=inv)

    def encode(self, joints, joints_vis):
        stride = np.asarray(self.image_size) / np.asarray(self.heatmap_size)
        target = np.zeros((len(joints), self.heatmap_size[1], self.heatmap_size[0]), np.float32)
        for j, (x, y) in enumerate(np.rint(np.asarray(joints) / stride).astype(int)):
            target[j, y, x] = 1.0
        return target, np.ones((len(joints), 1), np.float32)

    def refine(self, heatmaps, coords):
        return coords
'''


@pytest.mark.parametrize("opts, name", [
    ([], "quarter"),
    (["TEST.DECODE", "dark"], "dark"),
    (["MODEL.UDP", "True"], "udp"),
    (["MODEL.UDP", "True", "TEST.DECODE", "dark"], "udp"),
    (["MODEL.CODEC", "dark"], "dark"),
    (["MODEL.CODEC", "udp", "TEST.DECODE", "dark"], "udp"),
])  # fmt: skip
def test_the_config_names_the_codec_and_the_old_keys_still_do(opts: list, name: str) -> None:
    assert codec_for_config(load_config(None, opts)).name == name


def test_udp_refines_as_test_decode_says_and_flips_without_a_shift() -> None:
    udp = codec_for_config(load_config(None, ["MODEL.UDP", "True", "TEST.SHIFT_HEATMAP", "True"]))
    assert udp.refinement == "quarter" and not udp.flip_shift
    official = codec_for_config(load_config(None, ["TEST.SHIFT_HEATMAP", "True"]))
    assert official.flip_shift


@pytest.mark.parametrize("opts, message", [
    (["MODEL.CODEC", "simcc"], "MODEL.CODEC must be one of"),
    (["MODEL.CODEC", "dark", "MODEL.UDP", "True"], "MODEL.UDP True asks for the udp codec"),
])  # fmt: skip
def test_a_codec_the_registry_lacks_is_a_config_error(opts: list, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        codec_for_config(load_config(None, opts))


def test_a_new_codec_is_one_file_and_one_registry_line(tmp_path, monkeypatch) -> None:
    (tmp_path / "argmax_codec.py").write_text(NEW_CODEC)  # the one file
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(CODECS, "argmax", "argmax_codec:PlainArgmaxCodec")  # the one line
    cfg = get_defaults()
    cfg.MODEL.CODEC, cfg.MODEL.NUM_JOINTS = "argmax", 24
    cfg.MODEL.IMAGE_SIZE, cfg.MODEL.HEATMAP_SIZE = [48, 64], [12, 16]
    cfg.TEST.POST_PROCESS, cfg.WORKERS = True, 0
    assert codec_for_config(cfg).name == "argmax"

    # Training targets come from it...
    points = np.array([[90.0, 70.0], [110.5, 85.2]])
    images = blob_images(points)
    keypoints = np.repeat(points[:, None, :], 24, axis=1) + np.linspace(-20, 20, 24)[None, :, None]
    dataset = KeypointDataset(cfg, ["a.png", "b.png"], keypoints, False, [], [], [],
                              images=images)  # fmt: skip
    _, target, _, _ = dataset[0]
    assert set(np.unique(target.numpy())) == {0.0, 1.0} and target.sum() == 24
    # ... and test-time decoding too: the argmax alone, not the configured quarter offset.
    boxes = np.array([[60.0, 40.0, 60.0, 80.0], [80.0, 50.0, 55.0, 75.0]])
    model = BlobFinder(24)
    coords, _ = predict_boxes_scored(model, cfg, ["a.png", "b.png"], boxes, torch.device("cpu"),
                                     images=images)  # fmt: skip
    crops = BoxDataset(cfg, ["a.png", "b.png"], boxes, images=images)
    inputs, metas = zip(*(crops[i] for i in range(len(crops))), strict=True)
    heatmaps = model(torch.stack(inputs)).numpy()
    centers = np.stack([meta["center"].numpy() for meta in metas])
    scales = np.stack([meta["scale"].numpy() for meta in metas])
    want, _ = get_final_preds(heatmaps, centers, scales, post_process=False)
    np.testing.assert_array_equal(coords, want)
    quarter, _ = get_final_preds(heatmaps, centers, scales, post_process=True)
    assert not np.array_equal(coords, quarter)
