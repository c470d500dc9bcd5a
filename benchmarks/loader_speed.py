"""Stage two's training loader against an official ``JointsDataset``-style loader: images per
second per core, W48 384x288 on synthetic 1920x1080 JPEGs, with 1 and 2 worker processes.

``python -m benchmarks.loader_speed [--images 16] [--samples 96] [--workers 1,2]
[--cfg experiments/keypoint/w48_384x288_adam_lr1e-3_02.yaml]``

``OfficialStyleDataset`` does per sample what the official HRNet ``JointsDataset.__getitem__``
does (written here from its description, to time it): a full ``cv2.imread`` of the image, the
scale/rotation/flip draw from numpy's global RNG, a flip of the whole decoded image, a 3-point
affine matrix and ``cv2.warpAffine`` to the input size, torchvision's ``ToTensor`` and
``Normalize``, each joint moved through the matrix and its gaussian target drawn in a Python
loop over the joints. The project's loader (``KeypointDataset``) runs as configured, then with
the decoded-image cache off (``DATASET.CACHE_DECODED_MB 0``) and with the reduced decode.
Both run in DataLoaders of the same batch size; the first batch (worker start-up) is not
timed. Per core is images/s over the worker count; the figure names its CPU and load.
"""

from __future__ import annotations

import argparse
import math
import os
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms

from benchmarks.rows import ROOT
from common.boxes import keypoint_extent_boxes
from common.config import load_config
from common.image_cache import cached_decodes
from common.keypoint_config import config_keypoint_set
from common.stage_data import load_training_table
from common.synthetic.motion import generate_motion_dataset
from HRNet_keypoint.dataset import KeypointDataset
from HRNet_keypoint.transforms import (
    affine_transform,
    box_to_center_scale,
    fliplr_joints,
    get_affine_transform,
)

W48 = "experiments/keypoint/w48_384x288_adam_lr1e-3_02.yaml"


class OfficialStyleDataset(Dataset):
    """The official training sample, step by step (see the module docstring)."""

    def __init__(self, cfg, paths, keypoints, boxes, flip_pairs) -> None:  # noqa: ANN001
        self.paths, self.keypoints, self.boxes = paths, keypoints, boxes
        self.flip_pairs = flip_pairs
        self.image_size = np.array(cfg.MODEL.IMAGE_SIZE)
        self.heatmap_size = np.array(cfg.MODEL.HEATMAP_SIZE)
        self.sigma = float(cfg.MODEL.SIGMA)
        self.sf, self.rf = float(cfg.DATASET.SCALE_FACTOR), float(cfg.DATASET.ROT_FACTOR)
        self.color_rgb = bool(cfg.DATASET.COLOR_RGB)
        self.transform = transforms.Compose([
            transforms.ToTensor(),
            transforms.Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])])

    def __len__(self) -> int:
        return len(self.paths)

    def _target(self, joints: np.ndarray, vis: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        count = len(joints)
        weight = vis.reshape(count, 1).astype(np.float32)
        target = np.zeros((count, self.heatmap_size[1], self.heatmap_size[0]), np.float32)
        radius = self.sigma * 3
        stride = self.image_size / self.heatmap_size
        for joint in range(count):
            mu_x = int(joints[joint][0] / stride[0] + 0.5)
            mu_y = int(joints[joint][1] / stride[1] + 0.5)
            ul = [int(mu_x - radius), int(mu_y - radius)]
            br = [int(mu_x + radius + 1), int(mu_y + radius + 1)]
            if (ul[0] >= self.heatmap_size[0] or ul[1] >= self.heatmap_size[1]
                    or br[0] < 0 or br[1] < 0):  # fmt: skip
                weight[joint] = 0
                continue
            size = 2 * radius + 1
            x = np.arange(0, size, 1, np.float32)
            y = x[:, np.newaxis]
            x0 = y0 = size // 2
            g = np.exp(-((x - x0) ** 2 + (y - y0) ** 2) / (2 * self.sigma**2))
            g_x = max(0, -ul[0]), min(br[0], self.heatmap_size[0]) - ul[0]
            g_y = max(0, -ul[1]), min(br[1], self.heatmap_size[1]) - ul[1]
            img_x = max(0, ul[0]), min(br[0], self.heatmap_size[0])
            img_y = max(0, ul[1]), min(br[1], self.heatmap_size[1])
            if weight[joint] > 0.5:
                target[joint][img_y[0]:img_y[1], img_x[0]:img_x[1]] = \
                    g[g_y[0]:g_y[1], g_x[0]:g_x[1]]
        return target, weight

    def __getitem__(self, index: int):  # noqa: ANN204
        image = cv2.imread(str(self.paths[index]), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
        if self.color_rgb:
            image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
        joints = self.keypoints[index].copy()
        vis = np.ones(len(joints))
        aspect = self.image_size[0] / self.image_size[1]
        center, scale = box_to_center_scale(self.boxes[index], aspect)
        scale = scale * np.clip(np.random.randn() * self.sf + 1, 1 - self.sf, 1 + self.sf)
        rotation = (np.clip(np.random.randn() * self.rf, -self.rf * 2, self.rf * 2)
                    if np.random.random() <= 0.6 else 0)  # fmt: skip
        if np.random.random() <= 0.5:
            image = image[:, ::-1, :]
            joints, vis = fliplr_joints(joints, vis, image.shape[1], self.flip_pairs)
            center[0] = image.shape[1] - center[0] - 1
        matrix = get_affine_transform(center, scale, rotation, self.image_size)
        crop = cv2.warpAffine(image, matrix, (int(self.image_size[0]), int(self.image_size[1])),
                              flags=cv2.INTER_LINEAR)  # fmt: skip
        tensor = self.transform(crop)
        for joint in range(len(joints)):
            if vis[joint] > 0:
                joints[joint, 0:2] = affine_transform(joints[joint, 0:2][None], matrix)[0]
        target, weight = self._target(joints, vis)
        return tensor, torch.from_numpy(target), torch.from_numpy(weight)


def images_per_second(dataset: Dataset, workers: int, samples: int, batch: int) -> float:
    """Samples per second of a shuffled DataLoader pass, the first batch not timed."""
    indices = np.resize(np.random.default_rng(0).permutation(len(dataset)), samples)
    loader = DataLoader(torch.utils.data.Subset(dataset, indices.tolist()), batch_size=batch,
                        num_workers=workers)  # fmt: skip
    batches = iter(loader)
    next(batches)
    start = time.perf_counter()
    count = sum(len(item[0]) for item in batches)
    return count / (time.perf_counter() - start)


def run(args: argparse.Namespace) -> dict:
    with tempfile.TemporaryDirectory(prefix="loader_speed_") as folder:
        data = Path(folder) / "data"
        generate_motion_dataset(data, args.images, 0, width=1920, height=1080, seed=0)
        cfg = load_config(ROOT / args.cfg, ["MODEL.PRETRAINED", "", "DATASET.ROOT", str(data),
                                            "DATASET.DROP_REFERENCE_ROWS", "False"])  # fmt: skip
        table = load_training_table(cfg)
        boxes = keypoint_extent_boxes(table.keypoints) if table.boxes is None else table.boxes
        kp_set = config_keypoint_set(cfg)
        start = time.perf_counter()
        decodes = cached_decodes(table.paths, cfg.DATASET.CACHE_DECODED_MB)
        cache_s = time.perf_counter() - start

        def ours(images, reduced: bool) -> KeypointDataset:  # noqa: ANN001
            return KeypointDataset(cfg, table.paths, table.keypoints, True, kp_set.flip_pairs,
                                   kp_set.upper_body, kp_set.lower_body, images=images,
                                   reduced_decode=reduced, boxes=boxes)  # fmt: skip

        variants = {
            "official-style": OfficialStyleDataset(cfg, table.paths, table.keypoints,
                                                   boxes, kp_set.flip_pairs),
            "ours, decoded-image cache": ours(decodes, False),
            "ours, no cache": ours(None, False),
            "ours, no cache, reduced decode": ours(None, True),
        }  # fmt: skip
        if decodes is None:
            del variants["ours, decoded-image cache"]
        rates: dict[str, dict[int, list[float]]] = {v: {w: [] for w in args.workers}
                                                    for v in variants}  # fmt: skip
        for _ in range(args.repeats):  # alternating, best kept
            for workers in args.workers:
                for name, dataset in variants.items():
                    rates[name][workers].append(
                        images_per_second(dataset, workers, args.samples, args.batch))
    report = {"images": args.images, "samples": args.samples, "cfg": args.cfg,
              "cache_build_s": cache_s, "load_average": list(os.getloadavg()), "rows": {}}
    print(f"{args.cfg}: {args.images} training images 1920x1080, {args.samples} samples, "
          f"batch {args.batch}; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; "
          f"cache built once in {cache_s:.2f} s")
    official = {w: max(rates["official-style"][w]) for w in args.workers}
    for name in variants:
        for workers in args.workers:
            best = max(rates[name][workers])
            per_core = best / workers
            ratio = best / official[workers]
            report["rows"][f"{name}|{workers}"] = {"images_per_s": best, "per_core": per_core,
                                                   "vs_official": ratio}  # fmt: skip
            print(f"  {name:32s} {workers} worker(s): {best:7.1f} img/s, {per_core:7.1f} per "
                  f"core, x{ratio:.2f} official")
    return report


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cfg", default=W48)
    parser.add_argument("--images", type=int, default=16)
    parser.add_argument("--samples", type=int, default=96)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--workers", default="1,2",
                        type=lambda text: [int(v) for v in text.split(",") if v.strip()])
    args = parser.parse_args(argv)
    if min(args.workers, default=0) < 1 or min(args.images, args.samples, args.batch,
                                                args.repeats) < 1:  # fmt: skip
        parser.error("--workers, --images, --samples, --batch and --repeats must be >= 1")
    args.samples = max(args.samples, math.ceil(2 * args.batch))
    return args


if __name__ == "__main__":
    run(parse_args())
