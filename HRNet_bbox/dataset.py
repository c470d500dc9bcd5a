"""Stage one's data: whole images resized to the input, with one person box each.

Path: read (BGR; to RGB only with ``DATASET.COLOR_RGB``; the reference never converted; with
``reduced_decode`` the JPEG is decoded at the smallest 1/2, 1/4 or 1/8 size that still covers the
input, and boxes are scaled to it) ->
albumentations Resize to ``MODEL.IMAGE_SIZE`` ([width, height]) -> training augmentation ->
ImageNet normalisation. Test images (no boxes) are resized by OpenCV directly, the same pixels
as albumentations' Resize, which is imported only where boxes travel (0.5 s a process). Boxes
travel through albumentations (COCO format, ``min_visibility`` 0.05); where the augmentation
loses the box, the sample falls back to the plain resize instead of failing (the reference then
crashed). Targets are x1, y1, x2, y2 in the head's units; each image's own size maps
predictions back to its pixels.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np
import torch
from yacs.config import CfgNode

from common.image_data import ImageDataset, normalize_crop
from common.io import image_size
from HRNet_bbox.codec import BoxCodec, sanitize_boxes_xyxy

if TYPE_CHECKING:
    import albumentations as A

MIN_VISIBILITY = 0.05  # the reference's BboxParams
BOX_LABEL = "person"
BBOX_AUGMENTATIONS = ("reference", "mild")


def _reference_augmentation() -> list[A.BasicTransform]:
    """The reference's training set for non-square inputs, with the defaults of the
    albumentations it used (Rotate: limit 90, reflected border; GaussNoise: variance 10..50)."""
    import albumentations as A

    return [
        A.OneOf([
            A.HorizontalFlip(p=1.0),
            A.VerticalFlip(p=1.0),
            A.Rotate(limit=90, border_mode=cv2.BORDER_REFLECT_101, p=1.0),
        ], p=0.5),
        A.OneOf([
            A.MotionBlur(blur_limit=(3, 7), p=1.0),
            A.GaussNoise(std_range=(10**0.5 / 255, 50**0.5 / 255), p=1.0),
        ], p=0.5),
        A.OneOf([A.CropAndPad(percent=fraction, p=1.0) for fraction in (0.1, 0.2, 0.3)], p=0.5),
    ]  # fmt: skip


def _mild_augmentation(flip: bool) -> list[A.BasicTransform]:
    """Mirror, a small shift and zoom, colour jitter. No rotation: a rotated box is no longer
    the tight extent of the person, so rotations would teach loose boxes."""
    import albumentations as A

    transforms: list[A.BasicTransform] = [A.HorizontalFlip(p=0.5)] if flip else []
    transforms += [
        A.Affine(scale=(0.85, 1.15), translate_percent=(-0.08, 0.08), p=0.7),
        A.ColorJitter(brightness=0.2, contrast=0.2, saturation=0.2, hue=0.02, p=0.5),
    ]
    return transforms


def build_transforms(cfg: CfgNode, is_train: bool) -> A.Compose:
    """Resize to ``MODEL.IMAGE_SIZE`` then, for training, ``DATASET.BBOX_AUG``'s set."""
    import albumentations as A

    width, height = (int(v) for v in cfg.MODEL.IMAGE_SIZE)
    transforms: list[A.BasicTransform] = [A.Resize(height=height, width=width)]
    if is_train:
        name = cfg.DATASET.BBOX_AUG
        if name == "reference":
            transforms += _reference_augmentation()
        elif name == "mild":
            transforms += _mild_augmentation(bool(cfg.DATASET.FLIP))
        else:
            raise ValueError(
                f"DATASET.BBOX_AUG must be one of {list(BBOX_AUGMENTATIONS)}, got {name!r}"
            )
    return A.Compose(
        transforms,
        bbox_params=A.BboxParams(
            format="coco", min_visibility=MIN_VISIBILITY, label_fields=["labels"]
        ),
    )


def transform_with_fallback(
    augment: A.Compose, plain: A.Compose, image: np.ndarray, box_xywh: np.ndarray, seed: int
) -> tuple[np.ndarray, np.ndarray, bool]:
    """Apply ``augment`` (seeded); if it loses the box, apply ``plain`` to the original instead.

    Returns (image, box [x, y, w, h] in the output's pixels, whether the fallback was used).
    """
    augment.set_random_seed(seed)
    result = augment(image=image, bboxes=[list(box_xywh)], labels=[BOX_LABEL])
    fell_back = len(result["bboxes"]) == 0
    if fell_back:
        result = plain(image=image, bboxes=[list(box_xywh)], labels=[BOX_LABEL])
        if len(result["bboxes"]) == 0:
            raise ValueError(f"box {list(box_xywh)} does not survive a plain resize")
    return result["image"], np.asarray(result["bboxes"][0], dtype=np.float64), fell_back


class WholeImageBoxDataset(ImageDataset):
    """Whole images with one box each (training, validation) or without boxes (test).

    Items: (input (3, H, W) float32, target (4,) float32 in the head's units (zeros without
    boxes), meta {index, width, height}) where width and height are the original image's.
    Training randomness comes from a seed drawn from torch's RNG at each item, so
    ``torch.manual_seed`` and DataLoader worker seeding fix it. ``reduced_decode`` reads each
    image at the smallest JPEG reduction that still covers the input (not with ``images``,
    which are decoded already).
    """

    def __init__(
        self,
        cfg: CfgNode,
        image_paths: Sequence[Path | str],
        boxes_xywh: np.ndarray | None,
        is_train: bool,
        images: Sequence[np.ndarray] | None = None,
        reduced_decode: bool = False,
    ) -> None:
        super().__init__(image_paths, images, reduced_decode)
        if boxes_xywh is None and is_train:
            raise ValueError("training needs a box per image")
        if boxes_xywh is not None:
            boxes_xywh = np.asarray(boxes_xywh, dtype=np.float64)
            if boxes_xywh.shape != (len(self.image_paths), 4):
                raise ValueError(
                    f"boxes must be (N={len(self.image_paths)}, 4) [x, y, w, h], "
                    f"got {boxes_xywh.shape}"
                )
        self.boxes = boxes_xywh
        self.is_train = is_train
        self.color_rgb = bool(cfg.DATASET.COLOR_RGB)
        self.input_size = tuple(int(v) for v in cfg.MODEL.IMAGE_SIZE)
        self.codec = BoxCodec.from_cfg(cfg)
        self.plain = build_transforms(cfg, is_train=False) if boxes_xywh is not None else None
        self.augment = build_transforms(cfg, is_train=True) if is_train else None

    def _load(self, index: int) -> tuple[np.ndarray, float, float]:
        """The image (RGB with ``COLOR_RGB``), and its original pixels per decoded pixel."""
        if self.reduced_decode:
            whole = image_size(self.image_paths[index])
            image, to_original = self.read_reduced(index, whole, self.input_size)
            sx, sy = to_original[0, 0], to_original[1, 1]
        else:
            image, sx, sy = self.load_image(index), 1.0, 1.0
        return (cv2.cvtColor(image, cv2.COLOR_BGR2RGB) if self.color_rgb else image), sx, sy

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, dict]:
        image, sx, sy = self._load(index)
        height, width = image.shape[:2]
        meta = {"index": index, "width": round(width * sx), "height": round(height * sy)}
        if self.boxes is None:
            resized = cv2.resize(image, self.input_size, interpolation=cv2.INTER_LINEAR)
            return normalize_crop(resized, False), torch.zeros(4), meta

        box = self.boxes[index] / np.array([sx, sy, sx, sy])  # box edges in decoded pixels
        x1, y1, x2, y2 = box[0], box[1], box[0] + box[2], box[1] + box[3]
        box = sanitize_boxes_xyxy(np.array([[x1, y1, x2, y2]]), np.array([[width, height]]))[0]
        if self.augment is not None:
            seed = int(torch.randint(2**31, (1,)).item())
            resized, box, _ = transform_with_fallback(self.augment, self.plain, image, box, seed)
        else:
            result = self.plain(image=image, bboxes=[list(box)], labels=[BOX_LABEL])
            resized, box = result["image"], np.asarray(result["bboxes"][0], dtype=np.float64)
        target = torch.from_numpy(self.codec.encode(box))
        return normalize_crop(resized, False), target, meta
