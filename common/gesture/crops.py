"""Hand crops from keypoints, flip augmentation and the classifier's image transforms.

The crop is the keypoint extent widened by ``margin`` on every side and by ``bottom_margin``
more below (the wrist lies under the points), then by ``extra_margin`` per side: in training
each side independently with probability ``random_prob`` (so crops of one clip differ from epoch
to epoch), at evaluation always. Margins are reference-width pixels (1920 in the competition)
scaled by the image's own width, then the box is clipped to the image. With the defaults the
evaluation crop is extent -100/+100 with +200 at the bottom: the reference's test crop.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
from torchvision import transforms

from common.image_data import IMAGENET_MEAN, IMAGENET_STD


@dataclass(frozen=True)
class CropMargins:
    """Margins in reference-width pixels (see the module docstring)."""

    margin: float
    bottom_margin: float
    extra_margin: float
    random_prob: float
    reference_width: float


def crop_box(
    points: np.ndarray,
    image_width: int,
    image_height: int,
    margins: CropMargins,
    rng: random.Random | None = None,
) -> tuple[int, int, int, int]:
    """Integer (x0, y0, x1, y1) of the crop, clipped to the image.

    ``rng`` given = training (random extra margins); None = evaluation (all extra margins).
    A box left empty by clipping (points outside the image) becomes the whole image.
    """
    scale = image_width / margins.reference_width
    margin, extra = margins.margin * scale, margins.extra_margin * scale
    x0 = float(points[:, 0].min()) - margin
    y0 = float(points[:, 1].min()) - margin
    x1 = float(points[:, 0].max()) + margin
    y1 = float(points[:, 1].max()) + margin + margins.bottom_margin * scale
    sides = [True] * 4 if rng is None else [rng.random() < margins.random_prob for _ in range(4)]
    x0 -= extra * sides[0]
    y0 -= extra * sides[1]
    x1 += extra * sides[2]
    y1 += extra * sides[3]
    box = (
        max(0, int(np.floor(x0))),
        max(0, int(np.floor(y0))),
        min(image_width, int(np.ceil(x1))),
        min(image_height, int(np.ceil(y1))),
    )
    if box[2] - box[0] < 2 or box[3] - box[1] < 2:
        return 0, 0, image_width, image_height
    return box


def crop_image(
    image: np.ndarray,
    points: np.ndarray | None,
    margins: CropMargins,
    rng: random.Random | None = None,
) -> np.ndarray:
    """The keypoint crop of an (H, W, 3) image; the whole image when there are no points."""
    if points is None or len(points) == 0:
        return image
    height, width = image.shape[:2]
    x0, y0, x1, y1 = crop_box(points, width, height, margins, rng)
    return image[y0:y1, x0:x1]


def build_transform(image_size: int, train: bool, augment: bool) -> transforms.Compose:
    """RGB uint8 crop -> normalised (3, S, S) tensor.

    Training adds the reference's RandomAffine(20) and RandomPerspective() (defaults). The
    resize comes first (cheaper than warping full-size crops; the warps are scale-free).
    """
    steps: list = [transforms.Resize((image_size, image_size))]
    if train and augment:
        steps += [transforms.RandomAffine(20), transforms.RandomPerspective()]
    steps += [transforms.ToTensor(), transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD)]
    return transforms.Compose(steps)


def to_model_input(crop_rgb: np.ndarray, transform: transforms.Compose) -> torch.Tensor:
    """Apply a :func:`build_transform` pipeline to an RGB uint8 array."""
    return transform(Image.fromarray(np.ascontiguousarray(crop_rgb)))
