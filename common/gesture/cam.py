"""Grad-CAM pictures of the frame classifier: where in the crop the model looked for the class it
chose, drawn for the validation clips it got most wrong (``tools/gesture_report.py --cam``)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import torch
from pytorch_grad_cam import GradCAM
from pytorch_grad_cam.utils.image import show_cam_on_image
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from torch import nn
from yacs.config import CfgNode

from common.gesture.data import read_clips
from common.gesture.files import VALIDATION_PROBS_NAME, class_ids_of, data_root
from common.gesture.frames import GestureFrames, crop_margins, training_items
from common.gesture.prediction import load_fold_models
from common.image_data import IMAGENET_MEAN, IMAGENET_STD

TITLE_HEIGHT = 24  # pixels of the white band above the two panels


def last_conv_block(model: nn.Module) -> nn.Module:
    """The deepest feature stage of a timm classifier (the last entry of its feature_info)."""
    return model.get_submodule(model.feature_info[-1]["module"])


def _to_rgb(images: torch.Tensor) -> np.ndarray:
    """Normalised (N, 3, H, W) model inputs back to (N, H, W, 3) RGB in [0, 1]."""
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    rgb = (images.detach().cpu() * std + mean).clamp(0, 1)
    return rgb.permute(0, 2, 3, 1).numpy().astype(np.float32)


def draw_cams(
    model: nn.Module,
    images: torch.Tensor,
    titles: Sequence[str],
    paths: Sequence[Path],
    classes: Sequence[int] | None = None,
    panel: int = 256,
) -> list[Path]:
    """One PNG per image: the crop and its Grad-CAM overlay for ``classes`` (default: each
    image's predicted class), each ``panel`` pixels square, side by side under a title band:
    (panel + TITLE_HEIGHT, 2 * panel) pixels.
    """
    model.eval()
    device = next(model.parameters()).device
    targets = None if classes is None else [ClassifierOutputTarget(int(c)) for c in classes]
    with GradCAM(model=model, target_layers=[last_conv_block(model)]) as cam:
        heat = cam(input_tensor=images.to(device), targets=targets)
    written = []
    for rgb, mask, title, path in zip(_to_rgb(images), heat, titles, paths, strict=True):
        overlay = show_cam_on_image(rgb, mask, use_rgb=True)
        panels = [np.uint8(np.round(rgb * 255)), overlay]
        panels = [cv2.resize(p, (panel, panel), interpolation=cv2.INTER_NEAREST) for p in panels]
        band = np.full((TITLE_HEIGHT, 2 * panel, 3), 255, np.uint8)
        cv2.putText(band, title, (4, TITLE_HEIGHT - 7), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0))
        picture = np.concatenate([band, np.concatenate(panels, axis=1)], axis=0)
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        if not cv2.imwrite(str(path), cv2.cvtColor(picture, cv2.COLOR_RGB2BGR)):
            raise OSError(f"could not write {path}")
        written.append(path)
    return written


def worst_validation_cams(cfg: CfgNode, run_dir: Path, out_dir: Path, count: int = 4) -> list[Path]:
    """Grad-CAM of the middle frame of the ``count`` validation clips whose true class got the
    lowest probability, for the clip's predicted class, from the fold model that validated it."""
    g = cfg.GESTURE
    run_dir, out_dir = Path(run_dir), Path(out_dir)
    class_ids, _ = class_ids_of(cfg)
    class_index = {pose_id: index for index, pose_id in enumerate(class_ids)}
    clips = read_clips(data_root(cfg) / cfg.DATASET.TRAIN_IMAGE_DIR, "train", class_ids)
    by_folder = {clip.folder: clip for clip in clips}
    rows = []
    for model_number, fold in enumerate(g.FOLDS):
        with np.load(run_dir / f"fold_{fold}" / VALIDATION_PROBS_NAME) as saved:
            for folder, probs in zip(saved["folders"], saved["probs"], strict=True):
                label = class_index[by_folder[str(folder)].pose_id]
                rows.append((float(probs[label]), str(folder), model_number, label, probs))
    rows.sort(key=lambda row: row[:2])
    models = load_fold_models(cfg, run_dir, torch.device("cpu"))
    written = []
    for true_prob, folder, model_number, label, probs in rows[:count]:
        items = training_items(cfg, [by_folder[folder]], class_index)
        frames = GestureFrames(items, crop_margins(cfg), g.IMAGE_SIZE, False)
        image, _ = frames[len(items) // 2]
        chosen = int(np.argmax(probs))
        title = (
            f"{folder}: true {class_ids[label]} ({true_prob:.2f}), "
            f"predicted {class_ids[chosen]} ({probs[chosen]:.2f})"
        )
        written += draw_cams(
            models[model_number], image[None], [title], [out_dir / f"cam_{folder}.png"], [chosen]
        )
    return written
