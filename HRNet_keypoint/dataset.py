"""Stage-two datasets: person crops with heatmap targets (training/validation) or from boxes.

Both follow the official HRNet input path: box -> (center, scale) -> 3-point affine crop with
cv2.warpAffine (bilinear, black border) -> optional BGR->RGB -> ToTensor -> ImageNet Normalize.
Image sizes are always read from the image (its header, or the decoded array), never assumed.
With ``reduced_decode`` (training) the JPEG is decoded at the smallest 1/2, 1/4 or 1/8 size
that still gives the crop one decoded pixel per input pixel; the crop's geometry stays in
original pixels and only the warp reads the smaller image.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import cv2
import numpy as np
import torch
from yacs.config import CfgNode

from common.boxes import clean_box, keypoint_extent_boxes
from common.image_data import ImageDataset, normalize_crop
from common.io import image_size
from common.keypoint_config import config_keypoint_set
from HRNet_keypoint.codecs import codec_for_config
from HRNet_keypoint.transforms import (
    PIXEL_STD,
    affine_transform,
    box_to_center_scale,
    fliplr_joints,
    get_affine_transform,
    half_body_transform,
)


def crop_image(
    image: np.ndarray,
    center: np.ndarray,
    scale: np.ndarray,
    rotation: float,
    image_size: Sequence[int],
    to_original: np.ndarray | None = None,
    crop_matrix: Callable[..., np.ndarray] = get_affine_transform,
    mirror: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """The official crop: (input-sized uint8 image, the 2x3 original->input matrix).

    ``to_original`` (2x3) maps ``image``'s pixels to the original's when ``image`` is a reduced
    decode; the geometry (center, scale, the returned matrix) is in original pixels.
    ``crop_matrix`` makes the matrix: the codec's (UDP has its own), the official by default.
    ``mirror``: crop the left-right mirror of ``image`` (center, scale and the matrix are in the
    mirrored image), by reading ``image`` through the mirror instead of copying it mirrored:
    the official flip copies the whole decode, most of a cached sample's time. The bilinear
    weights are the same up to OpenCV's 1/32-pixel rounding of source coordinates, so a crop
    may differ from the copy's by one grey level (tests/test_loader_crops.py).
    """
    matrix = crop_matrix(center, scale, rotation, image_size)
    warp = np.vstack([matrix, [0.0, 0.0, 1.0]])
    if to_original is not None:
        warp = warp @ np.vstack([to_original, [0.0, 0.0, 1.0]])
    if mirror:
        warp = warp @ np.array([[-1.0, 0.0, image.shape[1] - 1.0], [0.0, 1.0, 0.0], [0, 0, 1]])
    crop = cv2.warpAffine(
        np.ascontiguousarray(image),
        warp[:2],
        (int(image_size[0]), int(image_size[1])),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=0,
    )
    return crop, matrix


class _CropDataset(ImageDataset):
    """Shared crop geometry of the two datasets."""

    def __init__(
        self,
        cfg: CfgNode,
        image_paths: Sequence[Path | str],
        images: Sequence[np.ndarray] | None,
        reduced_decode: bool = False,
    ) -> None:
        super().__init__(image_paths, images, reduced_decode)
        self.image_size = [int(v) for v in cfg.MODEL.IMAGE_SIZE]
        self.aspect_ratio = self.image_size[0] * 1.0 / self.image_size[1]
        self.color_rgb = bool(cfg.DATASET.COLOR_RGB)
        self.codec = codec_for_config(cfg)

    def _load_reduced(self, index: int, image_wh: tuple[int, int],
                        scale: np.ndarray) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
        """The smallest decode that still gives a crop of ``scale`` (pixel_std units) one
        decoded pixel per input pixel, and its pixels->original matrix."""
        zoom = np.array(self.image_size, dtype=np.float64) / (np.asarray(scale) * PIXEL_STD)
        needed = np.asarray(image_wh, dtype=np.float64) * zoom
        return self.read_reduced(index, image_wh, needed)

    def _center_scale(
        self, index: int, box_xywh: np.ndarray, image_wh: tuple[int, int], what: str
    ) -> tuple[np.ndarray, np.ndarray]:
        width, height = image_wh
        box = clean_box(box_xywh, width, height)
        if box is None:
            raise ValueError(
                f"{self.image_paths[index]} (row {index}): {what} [x, y, w, h] = "
                f"{np.round(np.asarray(box_xywh, dtype=np.float64), 3).tolist()} is empty, "
                f"non-finite or outside the {width}x{height} image; expected a box with w, h > 0 "
                f"that overlaps the image"
            )
        return box_to_center_scale(box, self.aspect_ratio)


class KeypointDataset(_CropDataset):
    """Crops around each image's tight keypoint box with gaussian heatmap targets.

    Training adds the official augmentation, in its order: half body, scale, rotation, flip.
    The random numbers come from a numpy Generator seeded from torch's RNG at each
    ``__getitem__``, so ``torch.manual_seed`` (and DataLoader worker seeding) fixes them.
    Items: (input (3, H, W) float32, target (J, hh, hw), target_weight (J, 1), meta) with meta
    ``index``, ``center``, ``scale`` (of the crop actually taken; after a flip the center is in
    the mirrored image), ``rotation`` (degrees) and ``joints`` (J, 2): the unaugmented
    keypoints in original pixels.
    """

    def __init__(
        self,
        cfg: CfgNode,
        image_paths: Sequence[Path | str],
        keypoints: np.ndarray,
        is_train: bool,
        flip_pairs: Sequence[Sequence[int]],
        upper_body: Sequence[int],
        lower_body: Sequence[int],
        images: Sequence[np.ndarray] | None = None,
        reduced_decode: bool = False,
        boxes: np.ndarray | None = None,
        visibility: np.ndarray | None = None,
    ) -> None:
        super().__init__(cfg, image_paths, images, reduced_decode)
        keypoints = np.asarray(keypoints, dtype=np.float64)
        num_joints = int(cfg.MODEL.NUM_JOINTS)
        if keypoints.shape != (len(self.image_paths), num_joints, 2):
            raise ValueError(
                f"keypoints must be (N={len(self.image_paths)}, J={num_joints}, 2) for "
                f"{len(self.image_paths)} images and MODEL.NUM_JOINTS {num_joints}, "
                f"got {keypoints.shape}"
            )
        bad_rows, bad_joints = np.nonzero(~np.isfinite(keypoints).all(axis=2))
        if len(bad_rows):
            row, joint = int(bad_rows[0]), int(bad_joints[0])
            raise ValueError(
                f"{self.image_paths[row]} (row {row}): keypoint {joint} is "
                f"{keypoints[row, joint].tolist()}; expected finite pixel coordinates"
            )
        self.keypoints = keypoints
        # COCO people bring their own boxes and v flags (v = 0: target weight 0).
        self.boxes = keypoint_extent_boxes(keypoints) if boxes is None else np.asarray(boxes)
        self.visibility = None if visibility is None else np.asarray(visibility) > 0
        self.is_train = is_train
        self.flip_pairs = [tuple(pair) for pair in flip_pairs]
        self.upper_body = tuple(upper_body)
        self.lower_body = tuple(lower_body)
        self.flip = bool(cfg.DATASET.FLIP)
        self.scale_factor = float(cfg.DATASET.SCALE_FACTOR)
        self.rotation_factor = float(cfg.DATASET.ROT_FACTOR)
        self.prob_half_body = float(cfg.DATASET.PROB_HALF_BODY)
        self.num_joints_half_body = int(cfg.DATASET.NUM_JOINTS_HALF_BODY)
        # Official LOSS.USE_DIFFERENT_JOINTS_WEIGHT: the keypoint set's joint_weights scale the
        # target weights (all 1 where the set declares none).
        self.joint_weights = None
        if cfg.LOSS.USE_DIFFERENT_JOINTS_WEIGHT:
            weights = config_keypoint_set(cfg).joint_weights or (1.0,) * num_joints
            self.joint_weights = np.asarray(weights, dtype=np.float32)[:, None]

    def _augment(
        self,
        width: int,
        joints: np.ndarray,
        joints_vis: np.ndarray,
        center: np.ndarray,
        scale: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, float, bool]:
        """Official training augmentation of an image ``width`` pixels wide; returns joints,
        vis, center, scale, rotation and whether the image is to be mirrored."""
        rng = np.random.default_rng(torch.randint(2**31, (1,)).item())
        if joints_vis.sum() > self.num_joints_half_body and rng.random() < self.prob_half_body:
            half_center, half_scale = half_body_transform(
                joints, joints_vis, self.upper_body, self.lower_body, self.aspect_ratio, rng
            )
            if half_center is not None and half_scale is not None:
                center, scale = half_center, half_scale

        sf, rf = self.scale_factor, self.rotation_factor
        # float32 times a float32 factor, as numpy 1.x computed the official float32 * float64.
        scale = scale * np.float32(np.clip(rng.standard_normal() * sf + 1, 1 - sf, 1 + sf))
        rotation = 0.0
        if rng.random() <= 0.6:
            rotation = float(np.clip(rng.standard_normal() * rf, -rf * 2, rf * 2))

        mirror = bool(self.flip and rng.random() <= 0.5)
        if mirror:
            joints, joints_vis = fliplr_joints(joints, joints_vis, width, self.flip_pairs)
            center = center.copy()
            center[0] = width - center[0] - 1
        return joints, joints_vis, center, scale, rotation, mirror

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, dict]:
        # Whole images are decoded first and give their size; reduced ones are decoded once the
        # crop's scale is known, so the size comes from the file's header.
        image = None if self.reduced_decode else self.load_image(index)
        image_wh = image_size(self.image_paths[index]) if image is None else image.shape[1::-1]
        center, scale = self._center_scale(index, self.boxes[index], image_wh, "keypoint box")
        joints = self.keypoints[index].copy()
        joints_vis = np.ones(len(joints), dtype=np.float64)
        if self.visibility is not None:
            joints_vis = self.visibility[index].astype(np.float64)
        rotation, mirror = 0.0, False
        if self.is_train:
            joints, joints_vis, center, scale, rotation, mirror = self._augment(
                image_wh[0], joints, joints_vis, center, scale
            )
        to_original = None
        if image is None:
            image, to_original = self._load_reduced(index, image_wh, scale)
        # a mirrored decode of any size maps to the mirrored original
        crop, matrix = crop_image(image, center, scale, rotation, self.image_size, to_original,
                                  self.codec.crop_matrix, mirror)  # fmt: skip
        visible = joints_vis > 0
        joints_input = joints.copy()
        joints_input[visible] = affine_transform(joints[visible], matrix)
        target, target_weight = self.codec.encode(joints_input, joints_vis)
        if self.joint_weights is not None:
            target_weight = target_weight * self.joint_weights
        meta = {
            "index": index,
            "center": torch.from_numpy(np.asarray(center, dtype=np.float32)),
            "scale": torch.from_numpy(np.asarray(scale, dtype=np.float32)),
            "rotation": rotation,
            "joints": torch.from_numpy(self.keypoints[index].astype(np.float32)),
        }
        return (
            normalize_crop(crop, self.color_rgb),
            torch.from_numpy(target),
            torch.from_numpy(target_weight),
            meta,
        )


class BoxDataset(_CropDataset):
    """Test-time crops from given person boxes [x, y, w, h] in original pixels.

    A box that the official cleaning rejects raises (naming the image) instead of silently
    dropping the image. Items: (input (3, H, W) float32, meta {index, center, scale}).
    """

    def __init__(
        self,
        cfg: CfgNode,
        image_paths: Sequence[Path | str],
        boxes_xywh: np.ndarray,
        images: Sequence[np.ndarray] | None = None,
    ) -> None:
        super().__init__(cfg, image_paths, images)
        boxes = np.asarray(boxes_xywh, dtype=np.float64)
        if boxes.shape != (len(self.image_paths), 4):
            raise ValueError(
                f"boxes must be (N={len(self.image_paths)}, 4) [x, y, w, h], got {boxes.shape}"
            )
        self.boxes = boxes

    def __getitem__(self, index: int) -> tuple[torch.Tensor, dict]:
        image = self.load_image(index)
        center, scale = self._center_scale(index, self.boxes[index], image.shape[1::-1], "box")
        crop, _ = crop_image(image, center, scale, 0.0, self.image_size,
                             crop_matrix=self.codec.crop_matrix)
        meta = {
            "index": index,
            "center": torch.from_numpy(center),
            "scale": torch.from_numpy(scale),
        }
        return normalize_crop(crop, self.color_rgb), meta
