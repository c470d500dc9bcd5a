"""The frames data set: one annotated or test frame, cropped around its keypoints, per sample;
its loader and the models' softmax over it."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset
from yacs.config import CfgNode

from common.gesture.crops import CropMargins, build_transform, crop_image, to_model_input
from common.gesture.data import GestureClip
from common.io import read_image
from common.seed import epoch_generator, seed_worker
from common.workers import usable_workers


@dataclass(frozen=True)
class FrameItem:
    """One frame to classify: its file, crop points, class index (-1 unknown) and clip."""

    image_path: Path
    points: np.ndarray | None
    label: int
    clip: int


class GestureFrames(Dataset):
    """Frames -> (tensor, label). Training draws random margins and the left/right flip."""

    def __init__(
        self,
        items: Sequence[FrameItem],
        margins: CropMargins,
        image_size: int,
        train: bool,
        augment: bool = True,
        flip_map: dict[int, int] | None = None,
        flip_prob: float = 0.0,
    ) -> None:
        self.items = list(items)
        self.margins = margins
        self.train = train
        self.transform = build_transform(image_size, train, augment)
        self.flip_map = flip_map or {}
        self.flip_prob = flip_prob if train else 0.0

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        item = self.items[index]
        image = read_image(item.image_path)[:, :, ::-1]  # BGR -> RGB, as the reference's PIL
        # torch's generator drives every random choice, so the DataLoader's seed fixes them.
        rng = random.Random(int(torch.randint(0, 2**31 - 1, (1,)).item())) if self.train else None
        crop = crop_image(image, item.points, self.margins, rng)
        label = item.label
        if rng is not None and label in self.flip_map and rng.random() < self.flip_prob:
            crop = crop[:, ::-1]
            label = self.flip_map[label]
        return to_model_input(crop, self.transform), label


def crop_margins(cfg: CfgNode) -> CropMargins:
    g = cfg.GESTURE
    return CropMargins(
        g.MARGIN, g.BOTTOM_MARGIN, g.EXTRA_MARGIN, g.RANDOM_MARGIN_PROB, g.REFERENCE_WIDTH
    )


def _without_ignored_points(
    points: np.ndarray, folder: str, regions: Sequence[Sequence]
) -> np.ndarray:
    """Points with those inside the folder's ignore regions removed (all kept if none left)."""
    keep = np.ones(len(points), dtype=bool)
    for region in regions:
        if len(region) != 5:
            raise ValueError(
                f"GESTURE.IGNORE_POINT_REGIONS entry must be [folder, x_min, y_min, "
                f"x_max, y_max], got {region!r}"
            )
        if str(region[0]) != folder:
            continue
        x_min, y_min, x_max, y_max = (float(v) for v in region[1:])
        inside = (
            (points[:, 0] > x_min)
            & (points[:, 0] < x_max)
            & (points[:, 1] > y_min)
            & (points[:, 1] < y_max)
        )
        keep &= ~inside
    return points[keep] if keep.any() else points


def training_items(
    cfg: CfgNode, clips: Sequence[GestureClip], class_index: dict[int, int]
) -> list[FrameItem]:
    dropped = {str(entry) for entry in cfg.GESTURE.DROP_FRAMES}
    items = []
    for clip_number, clip in enumerate(clips):
        for frame, (path, points) in enumerate(zip(clip.frame_paths, clip.keypoints, strict=True)):
            if f"{clip.folder}/{frame}" in dropped:
                continue
            points = _without_ignored_points(points, clip.folder, cfg.GESTURE.IGNORE_POINT_REGIONS)
            items.append(FrameItem(path, points, class_index[clip.pose_id], clip_number))
    return items


def frame_loader(dataset: Dataset, cfg: CfgNode, shuffle: bool, epoch: int) -> DataLoader:
    return DataLoader(
        dataset,
        batch_size=cfg.GESTURE.BATCH_SIZE,
        shuffle=shuffle,
        num_workers=usable_workers(cfg.WORKERS),
        worker_init_fn=seed_worker,
        pin_memory=torch.cuda.is_available(),
        generator=epoch_generator(cfg.RANDOMSEED, epoch),
    )


def flip_permutation(flip_map: dict[int, int], num_classes: int) -> torch.Tensor:
    """Index ``i`` -> the class a mirrored image of class ``i`` shows (itself if unpaired)."""
    return torch.tensor([flip_map.get(i, i) for i in range(num_classes)])


@torch.no_grad()
def predict_frames(
    models: Sequence[nn.Module],
    loader: DataLoader,
    device: torch.device,
    flip_map: dict[int, int] | None = None,
) -> np.ndarray:
    """(frames, classes) softmax, averaged over the models.

    With ``flip_map`` (test-time flip) each model also sees the mirrored images; their softmax,
    with every left/right class swapped to its partner, is averaged with the plain one.
    """
    for model in models:
        model.eval()
    outputs = []
    for images, _ in loader:
        images = images.to(device)
        probs = torch.stack([torch.softmax(model(images).float(), dim=1) for model in models])
        if flip_map is not None:
            mirrored = images.flip(-1)
            flipped = torch.stack([torch.softmax(m(mirrored).float(), dim=1) for m in models])
            swap = flip_permutation(flip_map, probs.shape[-1]).to(device)
            probs = (probs + flipped[..., swap]) / 2
        outputs.append(probs.mean(0).cpu().numpy())
    return np.concatenate(outputs).astype(np.float64)
