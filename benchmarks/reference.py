"""The reference chain, as the competition solution runs the official HRNet code at test time:
the yardstick that ``tools/benchmark.py --against-reference`` times the project's chain against.

``python -m benchmarks.reference box --cfg B.yaml --weights W.pth --images DIR --out PKL``
``python -m benchmarks.reference keypoint --cfg K.yaml --weights W.pth --images DIR --boxes PKL
--out CSV``

Each stage is its own process and does what the reference's ``test.py`` does, no more and no
less: build the network (stage one with ``is_train=True``, so the official init runs), load
``model_best.pth`` with ``torch.load``, list the image folder, decode every image with OpenCV in
the stage's own loader (so each image is decoded once per stage), batch the inputs in the main
process (stage one ``TEST.BATCH_SIZE_PER_GPU * 4``, stage two ``TEST.BATCH_SIZE_PER_GPU``), run
the forwards under ``torch.no_grad`` and write the stage's file with pickle or pandas.

- Stage one: albumentations ``Resize`` + ``Normalize`` + ``ToTensorV2`` of the whole BGR (or RGB,
  ``DATASET.COLOR_RGB``) image; corners scaled by the image's size over the input's (read in the
  head's units, so that the 'pooled' head of the W32 box config can be timed too); the record
  ``bbox`` is ``[x1, y1, |x2 - x1|, |y2 - y1|]``, unclipped, as the competition wrote it.
- Stage two: the official box cleaning, ``_xywh2cs`` with padding 1.25, the 3-point affine crop,
  ``ToTensor`` + ``Normalize``, the flip test of the official ``validate`` (mirror, ``flip_back``,
  one-column shift) and ``get_final_preds``.

One deliberate change: ``model.eval()`` is called, which the competition's test scripts never
did (their batch norm ran on each batch's statistics), so that the answers can be compared with
the project's; it costs nothing. The numerics come from the project's own implementations of the
official functions (``HRNet_keypoint.transforms``, ``HRNet_keypoint.codec``), which the test
suite checks against the official behaviour.
"""

from __future__ import annotations

import argparse
import os
import pickle
from pathlib import Path

import albumentations as A
import cv2
import numpy as np
import pandas as pd
import torch
from albumentations.pytorch import ToTensorV2
from torchvision import transforms as T

from common.config import load_config
from common.image_data import IMAGENET_MEAN, IMAGENET_STD
from common.keypoint_config import config_keypoint_set
from HRNet_bbox.codec import head_scale
from HRNet_bbox.model import build_box_model
from HRNet_keypoint.codecs.quarter import get_final_preds
from HRNet_keypoint.transforms import box_to_center_scale, get_affine_transform
from models.hrnet import PoseHighResolutionNet

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


def _image_names(folder: Path) -> list[str]:
    return [name for name in os.listdir(folder) if name.lower().endswith(IMAGE_SUFFIXES)]


def _load_weights(model: torch.nn.Module, weights: Path) -> torch.nn.Module:
    model.load_state_dict(torch.load(weights, map_location="cpu"))
    return model.eval()


def run_box_stage(cfg_path: str, weights: Path, images: Path, out: Path) -> None:
    """Stage one's ``test.py``: whole images -> ``test_annotation.pkl``."""
    cfg = load_config(cfg_path, ["MODEL.PRETRAINED", ""])
    model = _load_weights(build_box_model(cfg, is_train=True), weights)
    width, height = (int(v) for v in cfg.MODEL.IMAGE_SIZE)
    to_fractions = head_scale(cfg.MODEL.BBOX_HEAD, (width, height)).numpy()
    transform = A.Compose([A.Resize(height=height, width=width),
                           A.Normalize(mean=IMAGENET_MEAN, std=IMAGENET_STD), ToTensorV2()])
    names = _image_names(images)
    batch = int(cfg.TEST.BATCH_SIZE_PER_GPU) * 4
    records = []
    with torch.no_grad():
        for start in range(0, len(names), batch):
            inputs, sizes = [], []
            for name in names[start:start + batch]:
                image = cv2.imread(str(images / name), cv2.IMREAD_COLOR)
                if cfg.DATASET.COLOR_RGB:
                    image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
                sizes.append(image.shape[1::-1])
                inputs.append(transform(image=image)["image"])
            corners = model(torch.stack(inputs)).numpy() / to_fractions
            part = names[start:start + batch]
            for name, (w, h), (x1, y1, x2, y2) in zip(part, sizes, corners, strict=True):
                x1, x2, y1, y2 = x1 * w, x2 * w, y1 * h, y2 * h
                box = [x1, y1, abs(x2 - x1), abs(y2 - y1)]
                records.append({"width": w, "height": h, "area": box[2] * box[3],
                                "bbox": box, "filename": name})  # fmt: skip
    with open(out, "wb") as handle:
        pickle.dump(records, handle)


def _clean(box: list[float], width: int, height: int) -> list[float] | None:
    """The official COCO box cleaning (``_load_coco_keypoint_annotation_kernal``)."""
    x, y, w, h = box
    x1, y1 = max(0.0, x), max(0.0, y)
    x2 = min(width - 1.0, x1 + max(0.0, w - 1.0))
    y2 = min(height - 1.0, y1 + max(0.0, h - 1.0))
    if w * h > 0 and x2 >= x1 and y2 >= y1:
        return [x1, y1, x2 - x1, y2 - y1]
    return None


def _flip_back(heatmaps: np.ndarray, flip_pairs: list[list[int]]) -> np.ndarray:
    flipped = heatmaps[:, :, :, ::-1].copy()
    for left, right in flip_pairs:
        flipped[:, [left, right]] = flipped[:, [right, left]]
    return flipped


def run_keypoint_stage(cfg_path: str, weights: Path, images: Path, boxes: Path,
                       out: Path) -> None:  # fmt: skip
    """Stage two's test path with the flip test of the official ``validate``: boxes ->
    ``result.csv`` (columns ``image, <name>_x, <name>_y, ...``)."""
    cfg = load_config(cfg_path, ["MODEL.PRETRAINED", ""])
    # is_train=False: the official get_pose_net builds the network and runs no init_weights.
    net = PoseHighResolutionNet(cfg.MODEL.EXTRA, int(cfg.MODEL.NUM_JOINTS))
    model = _load_weights(net, weights)
    keypoints = config_keypoint_set(cfg)
    width, height = (int(v) for v in cfg.MODEL.IMAGE_SIZE)
    to_tensor = T.Compose([T.ToTensor(), T.Normalize(mean=IMAGENET_MEAN, std=IMAGENET_STD)])
    with open(boxes, "rb") as handle:
        records = pickle.load(handle)
    samples = []
    for record in records:
        box = _clean(record["bbox"], record["width"], record["height"])
        if box is not None:
            center, scale = box_to_center_scale(box, width / height)
            samples.append((record["filename"], center, scale))
    batch = int(cfg.TEST.BATCH_SIZE_PER_GPU)
    rows = []
    with torch.no_grad():
        for start in range(0, len(samples), batch):
            part = samples[start:start + batch]
            inputs = []
            for name, center, scale in part:
                flags = cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION
                image = cv2.imread(str(images / name), flags)
                if cfg.DATASET.COLOR_RGB:
                    image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
                matrix = get_affine_transform(center, scale, 0, (width, height))
                crop = cv2.warpAffine(image, matrix, (width, height), flags=cv2.INTER_LINEAR)
                inputs.append(to_tensor(crop))
            inputs = torch.stack(inputs)
            output = model(inputs)
            if cfg.TEST.FLIP_TEST:
                flipped = model(torch.from_numpy(np.flip(inputs.numpy(), 3).copy()))
                flipped = torch.from_numpy(_flip_back(flipped.numpy(), keypoints.flip_pairs))
                if cfg.TEST.SHIFT_HEATMAP:
                    flipped[:, :, :, 1:] = flipped.clone()[:, :, :, 0:-1]
                output = (output + flipped) * 0.5
            preds, _ = get_final_preds(output.clone().numpy(), np.stack([s[1] for s in part]),
                                       np.stack([s[2] for s in part]),
                                       bool(cfg.TEST.POST_PROCESS))  # fmt: skip
            names = [name for name, _, _ in part]
            rows += [[name, *coords.reshape(-1)]
                     for name, coords in zip(names, preds, strict=True)]  # fmt: skip
    columns = ["image"] + [f"{n}_{axis}" for n in keypoints.names for axis in ("x", "y")]
    pd.DataFrame(rows, columns=columns).to_csv(out, index=False)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("stage", choices=("box", "keypoint"))
    parser.add_argument("--cfg", required=True)
    parser.add_argument("--weights", type=Path, required=True)
    parser.add_argument("--images", type=Path, required=True)
    parser.add_argument("--boxes", type=Path, help="stage one's test_annotation.pkl")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    if args.stage == "box":
        run_box_stage(args.cfg, args.weights, args.images, args.out)
    else:
        run_keypoint_stage(args.cfg, args.weights, args.images, args.boxes, args.out)


if __name__ == "__main__":
    main()
