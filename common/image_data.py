"""What both stages do with an image before the network: read it (whole, from a shared decode,
or at a reduced JPEG size) and normalise it (torchvision's ToTensor + ImageNet Normalize).

Stage one's whole-image data set and stage two's crop data sets derive from ``ImageDataset``,
so an image is read and checked the same way by both.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from common.io import read_image, read_image_at_least

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def normalize_crop(crop: np.ndarray, color_rgb: bool) -> torch.Tensor:
    """uint8 BGR crop (H, W, 3) to the network input (3, H, W): ToTensor + ImageNet Normalize.

    Same operations as torchvision's ToTensor and Normalize, so the numbers match bit for bit.
    """
    if color_rgb:
        crop = cv2.cvtColor(crop, cv2.COLOR_BGR2RGB)
    tensor = torch.from_numpy(np.ascontiguousarray(crop.transpose(2, 0, 1))).float().div(255)
    mean = torch.tensor(IMAGENET_MEAN, dtype=tensor.dtype)[:, None, None]
    std = torch.tensor(IMAGENET_STD, dtype=tensor.dtype)[:, None, None]
    return tensor.sub(mean).div(std)


class ImageDataset(Dataset):
    """Images by path, or the BGR decodes of those paths shared by the caller (``images``).

    ``reduced_decode`` reads each file at a reduced JPEG size (``read_reduced``); it is off when
    ``images`` are given, since they are decoded already.
    """

    def __init__(
        self,
        image_paths: Sequence[Path | str],
        images: Sequence[np.ndarray] | None = None,
        reduced_decode: bool = False,
    ) -> None:
        self.image_paths = [Path(path) for path in image_paths]
        if images is not None and len(images) != len(self.image_paths):
            raise ValueError(
                f"got {len(images)} decoded images for {len(self.image_paths)} image paths"
            )
        self.images = images
        self.reduced_decode = reduced_decode and images is None

    def __len__(self) -> int:
        return len(self.image_paths)

    def load_image(self, index: int) -> np.ndarray:
        """BGR uint8 image of one sample, from the shared decodes when given (checked)."""
        if self.images is None:
            return read_image(self.image_paths[index])
        image = self.images[index]
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(
                f"decoded image for {self.image_paths[index]} must be uint8 (H, W, 3) BGR, "
                f"got {image.dtype} {image.shape}"
            )
        return image

    def read_reduced(
        self, index: int, image_wh: Sequence[int], needed_wh: Sequence[float]
    ) -> tuple[np.ndarray, np.ndarray]:
        """The smallest JPEG reduction of an ``image_wh`` file that still covers ``needed_wh``
        pixels, and its 2x3 pixels->original matrix."""
        return read_image_at_least(self.image_paths[index], image_wh, needed_wh)
