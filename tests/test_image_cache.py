"""The decoded-image cache of small training sets: the same samples as reading the files, made
only within its budget, one decode per distinct file; and the loader benchmark runs."""

from __future__ import annotations

import numpy as np
import torch

from benchmarks.loader_speed import parse_args, run
from common.config import load_config
from common.image_cache import cached_decodes, decoded_bytes
from common.io import read_image
from common.keypoint_config import config_keypoint_set
from common.stage_data import load_training_table
from HRNet_keypoint.dataset import KeypointDataset

KEYPOINT_CFG = "experiments/keypoint/tiny_cpu_keypoint.yaml"


def test_cached_samples_are_the_samples_read_from_files(tiny_motion):
    cfg = load_config(KEYPOINT_CFG, ["DATASET.ROOT", str(tiny_motion)])
    table = load_training_table(cfg)
    paths = table.paths[:6] + table.paths[:2]  # a file named twice is decoded once
    decodes = cached_decodes(paths, cfg.DATASET.CACHE_DECODED_MB)
    assert decodes is not None and decodes[6] is decodes[0]
    assert np.array_equal(decodes[3], read_image(paths[3]))
    kp_set = config_keypoint_set(cfg)
    keypoints = np.concatenate([table.keypoints[:6], table.keypoints[:2]])
    samples = {}
    for name, images in (("files", None), ("cache", decodes)):
        dataset = KeypointDataset(cfg, paths, keypoints, True, kp_set.flip_pairs,
                                  kp_set.upper_body, kp_set.lower_body, images=images)
        torch.manual_seed(4)  # the same augmentation draw for both
        samples[name] = [dataset[i] for i in range(len(paths))]
    for read, cached in zip(samples["files"], samples["cache"], strict=True):
        for a, b in zip(read[:3], cached[:3], strict=True):
            assert torch.equal(a, b)


def test_the_cache_keeps_to_its_budget(tiny_motion):
    cfg = load_config(KEYPOINT_CFG, ["DATASET.ROOT", str(tiny_motion)])
    paths = load_training_table(cfg).paths[:4]
    size = decoded_bytes(paths)
    assert size == 4 * 320 * 180 * 3
    assert cached_decodes(paths, size / 2**20) is not None
    assert cached_decodes(paths, size / 2**20 * 0.99) is None
    assert cached_decodes(paths, 0) is None


def test_the_loader_benchmark_runs_on_a_tiny_config(capsys):
    report = run(parse_args(["--cfg", KEYPOINT_CFG, "--images", "3", "--samples", "8",
                             "--batch", "2", "--repeats", "1", "--workers", "1"]))  # fmt: skip
    rows = report["rows"]
    assert set(rows) == {"official-style|1", "ours, decoded-image cache|1", "ours, no cache|1",
                         "ours, no cache, reduced decode|1"}  # fmt: skip
    assert all(row["images_per_s"] > 0 for row in rows.values())
    assert "per core" in capsys.readouterr().out
