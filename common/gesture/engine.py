"""Training and prediction of the gesture classifier (``TASK: gesture``).

Training (:func:`train_gesture`): every annotated training frame is a sample, cropped around
its keypoints; folds are StratifiedKFold per frame (or by folder with GESTURE.GROUP_SPLIT); each
fold in GESTURE.FOLDS trains with warm-up then OneCycle and keeps the epoch of lowest validation
loss in ``fold_<k>/best_model.pth``. The validation frames of each clip are then averaged into a
clip prediction and scored (logloss, accuracy, accuracy on the refiner's pairs) with and without
the refiner, whose thresholds are fitted on that fold's training clips. The thresholds for the
test set, fitted on all training clips, go to ``refiner_thresholds.json``. With
GESTURE.TRAIN_STAGE_RESULT_CSV (the stages' keypoints of every training frame) the refiner is
also fitted and scored on those (``refiner_thresholds_stages.json``, metrics under
``stage_keypoints``): regressed keypoints jitter more than annotated ones, so thresholds for them
must come from keypoints as noisy.

Prediction (:func:`predict_gesture`): each test clip's frames are cropped (keypoints from the
test JSON or the stages' result.csv), the clip's probability is the mean softmax over its
frames, averaged over the folds' models, then refined (stage keypoints use the stage thresholds
where training fitted them). ``submission.csv`` follows
sample_submission.csv's rows and columns; ``submission_no_refiner.csv`` is written beside it.
"""

from __future__ import annotations

import json
import logging
import math
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold
from torch import nn
from torch.utils.data import DataLoader, Dataset
from yacs.config import CfgNode

from common.checkpoint import load_safely, save_atomic
from common.gesture.crops import CropMargins, build_transform, crop_image, to_model_input
from common.gesture.data import (
    GestureClip,
    GestureDataError,
    read_clips,
    read_pose_table,
    read_sample_submission,
    read_test_answers,
    write_submission,
)
from common.gesture.hand_keypoints import read_stage_keypoints
from common.gesture.model import build_classifier
from common.gesture.poses import build_flip_pairs, flip_class_map
from common.gesture.refiner import (
    MODES,
    STATISTICS,
    THRESHOLDS_NAME,
    GroupThreshold,
    RefinerPair,
    clip_statistic,
    fit_thresholds,
    load_thresholds,
    parse_pairs,
    refine,
    save_thresholds,
)
from common.io import atomic_write_text, image_size, read_image
from common.metrics import multiclass_logloss
from common.seed import epoch_generator, seed_worker

MODEL_NAME = "best_model.pth"
# Refiner thresholds by the keypoints they were fitted on.
THRESHOLD_FILES = {"json": THRESHOLDS_NAME, "stages": "refiner_thresholds_stages.json"}
SUBMISSION_NAME = "submission.csv"
RAW_SUBMISSION_NAME = "submission_no_refiner.csv"
VALIDATION_PROBS_NAME = "validation_clip_probs.npz"


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


def _margins(cfg: CfgNode) -> CropMargins:
    g = cfg.GESTURE
    return CropMargins(
        g.MARGIN, g.BOTTOM_MARGIN, g.EXTRA_MARGIN, g.RANDOM_MARGIN_PROB, g.REFERENCE_WIDTH
    )


def _root(cfg: CfgNode) -> Path:
    return Path(cfg.DATASET.ROOT)


def _class_ids(cfg: CfgNode) -> tuple[list[int], pd.DataFrame]:
    pose_table = read_pose_table(_root(cfg) / cfg.GESTURE.POSE_CSV)
    return [int(c) for c in pose_table["pose_id"]], pose_table


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


def _clip_width(clip: GestureClip) -> int:
    return image_size(clip.frame_paths[0])[0]


def _train_items(
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


def assign_folds(
    labels: Sequence[int], groups: Sequence[str], num_folds: int, seed: int, group_split: bool
) -> np.ndarray:
    """Fold number of every frame: StratifiedKFold(shuffle) per frame, or by group."""
    labels = np.asarray(labels)
    folds = np.full(len(labels), -1)
    if group_split:
        splitter = StratifiedGroupKFold(n_splits=num_folds, shuffle=True, random_state=seed)
        splits = splitter.split(np.zeros(len(labels)), labels, groups=np.asarray(groups))
    else:
        splitter = StratifiedKFold(n_splits=num_folds, shuffle=True, random_state=seed)
        splits = splitter.split(np.zeros(len(labels)), labels)
    for fold, (_, val_index) in enumerate(splits):
        folds[val_index] = fold
    return folds


def _loader(dataset: Dataset, cfg: CfgNode, shuffle: bool, epoch: int) -> DataLoader:
    return DataLoader(
        dataset,
        batch_size=cfg.GESTURE.BATCH_SIZE,
        shuffle=shuffle,
        num_workers=cfg.WORKERS,
        worker_init_fn=seed_worker,
        pin_memory=torch.cuda.is_available(),
        generator=epoch_generator(cfg.RANDOMSEED, epoch),
    )


def _optimizer(cfg: CfgNode, model: nn.Module) -> torch.optim.Optimizer:
    g = cfg.GESTURE
    name = g.OPTIMIZER.lower()
    if name == "adamw":
        return torch.optim.AdamW(model.parameters(), lr=g.WARMUP_LR, weight_decay=g.WEIGHT_DECAY)
    if name == "adam":
        return torch.optim.Adam(model.parameters(), lr=g.WARMUP_LR, weight_decay=g.WEIGHT_DECAY)
    if name == "sgd":
        return torch.optim.SGD(
            model.parameters(),
            lr=g.WARMUP_LR,
            momentum=cfg.TRAIN.MOMENTUM,
            weight_decay=g.WEIGHT_DECAY,
            nesterov=cfg.TRAIN.NESTEROV,
        )
    raise ValueError(f"GESTURE.OPTIMIZER must be adamw, adam or sgd, got {g.OPTIMIZER!r}")


class WarmupOneCycle:
    """Per-iteration LR: linear warm-up to WARMUP_LR, then OneCycleLR(MAX_LR) to the end."""

    def __init__(self, cfg: CfgNode, optimizer: torch.optim.Optimizer, iters_per_epoch: int):
        g = cfg.GESTURE
        self.optimizer = optimizer
        self.warmup_iters = max(0, g.WARMUP_EPOCHS) * iters_per_epoch
        self.cycle_iters = max(0, g.EPOCHS - g.WARMUP_EPOCHS) * iters_per_epoch
        self.warmup_lr = g.WARMUP_LR
        self.max_lr = g.MAX_LR
        self.cycle: torch.optim.lr_scheduler.OneCycleLR | None = None
        self.iteration = 0

    def before_step(self) -> None:
        if self.iteration < self.warmup_iters:
            lr = self.warmup_lr * (self.iteration + 1) / self.warmup_iters
            for group in self.optimizer.param_groups:
                group["lr"] = lr
        elif self.cycle is None and self.cycle_iters > 0:
            self.cycle = torch.optim.lr_scheduler.OneCycleLR(
                self.optimizer, max_lr=self.max_lr, total_steps=self.cycle_iters
            )

    def after_step(self) -> None:
        if self.cycle is not None and self.cycle.last_epoch < self.cycle_iters:
            self.cycle.step()
        self.iteration += 1


@torch.no_grad()
def _predict(models: Sequence[nn.Module], loader: DataLoader, device: torch.device) -> np.ndarray:
    """(frames, classes) softmax, averaged over the models."""
    for model in models:
        model.eval()
    outputs = []
    for images, _ in loader:
        images = images.to(device)
        probs = torch.stack([torch.softmax(model(images).float(), dim=1) for model in models])
        outputs.append(probs.mean(0).cpu().numpy())
    return np.concatenate(outputs).astype(np.float64)


def _clip_means(probs: np.ndarray, clip_of_frame: Sequence[int]) -> dict[int, np.ndarray]:
    by_clip: dict[int, list[int]] = {}
    for row, clip in enumerate(clip_of_frame):
        by_clip.setdefault(clip, []).append(row)
    return {clip: probs[rows].mean(0) for clip, rows in by_clip.items()}


def refine_clips(
    probs: np.ndarray,
    class_ids: Sequence[int],
    frames_per_clip: Sequence[Sequence[np.ndarray]],
    widths: Sequence[int],
    pairs: Sequence[RefinerPair],
    thresholds: dict[str, GroupThreshold],
    reference_width: float,
) -> dict[str, np.ndarray]:
    """Every clip's probabilities after the refiner, in each of its modes."""
    return {
        name: np.stack(
            [
                refine(p, class_ids, frames, width, pairs, thresholds, reference_width, name)[0]
                for p, frames, width in zip(probs, frames_per_clip, widths, strict=True)
            ]
        )
        for name in MODES
    }


def summarize_clips(
    probs: np.ndarray,
    refined_by_mode: dict[str, np.ndarray],
    labels: np.ndarray,
    class_ids: Sequence[int],
    pairs: Sequence[RefinerPair],
    thresholds: dict[str, GroupThreshold],
    mode: str,
) -> dict:
    """Clip logloss and accuracy without and with the refiner (in ``mode``; the logloss also in
    every mode), and per refiner group the logloss and accuracy on clips whose true class is in
    it (with the group's threshold and confidence from ``thresholds``)."""
    refined = refined_by_mode[mode]
    result = {
        "clips": len(labels),
        "logloss": multiclass_logloss(probs, labels),
        "logloss_refined": multiclass_logloss(refined, labels),
        "logloss_refined_by_mode": {
            name: multiclass_logloss(values, labels) for name, values in refined_by_mode.items()
        },
        "accuracy": float(np.mean(probs.argmax(1) == labels)),
        "accuracy_refined": float(np.mean(refined.argmax(1) == labels)),
        "pairs": {},
    }
    for group in sorted({pair.group for pair in pairs}):
        ids = {i for p in pairs if p.group == group for i in (p.static_id, p.moving_id)}
        members = np.array([class_ids[label] in ids for label in labels])
        if not members.any():
            continue
        result["pairs"][group] = {
            "clips": int(members.sum()),
            "logloss": multiclass_logloss(probs[members], labels[members]),
            "logloss_refined": multiclass_logloss(refined[members], labels[members]),
            "accuracy": float(np.mean(probs[members].argmax(1) == labels[members])),
            "accuracy_refined": float(np.mean(refined[members].argmax(1) == labels[members])),
            "threshold": thresholds[group].threshold if group in thresholds else None,
            "confidence": thresholds[group].confidence if group in thresholds else None,
        }
    return result


def score_clips(
    probs: np.ndarray,
    labels: np.ndarray,
    class_ids: Sequence[int],
    frames_per_clip: Sequence[Sequence[np.ndarray]],
    widths: Sequence[int],
    pairs: Sequence[RefinerPair],
    thresholds: dict[str, GroupThreshold],
    reference_width: float,
    mode: str,
) -> dict:
    """:func:`summarize_clips` of the clips refined with ``thresholds``."""
    refined_by_mode = refine_clips(
        probs, class_ids, frames_per_clip, widths, pairs, thresholds, reference_width
    )
    return summarize_clips(probs, refined_by_mode, labels, class_ids, pairs, thresholds, mode)


def _fit_refiner(
    cfg: CfgNode,
    pairs: Sequence[RefinerPair],
    clips: Sequence[GestureClip],
    widths: dict[str, int],
    keypoints: dict[str, Sequence[np.ndarray]],
) -> dict[str, GroupThreshold]:
    """Thresholds from the clips' statistics on ``keypoints`` ({folder: frames})."""
    reference_width = cfg.GESTURE.REFERENCE_WIDTH
    median_frames = cfg.GESTURE.REFINER.MEDIAN_FRAMES
    stats = [
        {
            name: clip_statistic(
                name, keypoints[c.folder], widths[c.folder], reference_width, median_frames
            )
            for name in STATISTICS
        }
        for c in clips
    ]
    return fit_thresholds(
        pairs,
        [c.pose_id for c in clips],
        stats,
        cfg.GESTURE.REFINER.MARGIN,
        cfg.GESTURE.REFINER.OUTLIER_IQR,
        median_frames,
        cfg.GESTURE.REFINER.MAX_CHANCE_P,
    )


def _train_fold(
    cfg: CfgNode,
    fold: int,
    train_items: list[FrameItem],
    val_items: list[FrameItem],
    class_ids: list[int],
    flip_map: dict[int, int],
    output_dir: Path,
    logger: logging.Logger,
    device: torch.device,
) -> tuple[np.ndarray, dict]:
    """Train one fold; returns the best epoch's validation softmax and a summary."""
    g = cfg.GESTURE
    if not train_items or not val_items:
        raise ValueError(
            f"fold {fold} has {len(train_items)} training and {len(val_items)} validation "
            "frames; it needs both (more clips per class, or fewer GESTURE.NUM_FOLDS)"
        )
    torch.manual_seed(cfg.RANDOMSEED + fold)
    margins = _margins(cfg)
    train_set = GestureFrames(
        train_items, margins, g.IMAGE_SIZE, True, g.AUGMENT, flip_map, g.FLIP_PROB
    )
    val_set = GestureFrames(val_items, margins, g.IMAGE_SIZE, False)
    model = build_classifier(g.BACKBONE, len(class_ids), g.DROP_PATH_RATE, g.PRETRAINED, logger).to(
        device
    )
    optimizer = _optimizer(cfg, model)
    iters_per_epoch = math.ceil(len(train_set) / g.BATCH_SIZE)
    schedule = WarmupOneCycle(cfg, optimizer, iters_per_epoch)
    use_amp = bool(g.AMP) and device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    criterion = nn.CrossEntropyLoss()
    val_labels = np.array([item.label for item in val_items])
    fold_dir = output_dir / f"fold_{fold}"
    best_loss, best_epoch, best_probs, stale = float("inf"), -1, None, 0
    for epoch in range(g.EPOCHS):
        start = time.time()
        model.train()
        total_loss, correct, seen = 0.0, 0, 0
        for images, labels in _loader(train_set, cfg, True, epoch):
            images, labels = images.to(device), labels.to(device)
            schedule.before_step()
            optimizer.zero_grad(set_to_none=True)
            with torch.autocast(device_type=device.type, enabled=use_amp):
                logits = model(images)
                loss = criterion(logits, labels)
            scaler.scale(loss).backward()
            if g.GRAD_CLIP > 0:
                scaler.unscale_(optimizer)
                nn.utils.clip_grad_norm_(model.parameters(), g.GRAD_CLIP)
            scaler.step(optimizer)
            scaler.update()
            schedule.after_step()
            total_loss += loss.item() * len(labels)
            correct += int((logits.argmax(1) == labels).sum())
            seen += len(labels)
        val_probs = _predict([model], _loader(val_set, cfg, False, epoch), device)
        val_loss = multiclass_logloss(val_probs, val_labels)
        val_acc = float(np.mean(val_probs.argmax(1) == val_labels))
        logger.info(
            "fold %d epoch %d/%d lr %.2e train loss %.4f acc %.4f | val loss %.4f acc %.4f | %.1fs",
            fold,
            epoch + 1,
            g.EPOCHS,
            optimizer.param_groups[0]["lr"],
            total_loss / seen,
            correct / seen,
            val_loss,
            val_acc,
            time.time() - start,
        )
        if val_loss < best_loss:
            best_loss, best_epoch, best_probs, stale = val_loss, epoch + 1, val_probs, 0
            save_atomic(
                {
                    "epoch": epoch + 1,
                    "state_dict": model.state_dict(),
                    "class_ids": list(class_ids),
                    "backbone": g.BACKBONE,
                    "image_size": int(g.IMAGE_SIZE),
                    "val_loss": val_loss,
                },
                fold_dir / MODEL_NAME,
            )
        else:
            stale += 1
            if stale >= g.PATIENCE:
                logger.info(
                    "fold %d: no lower validation loss for %d epochs, stopping", fold, stale
                )
                break
    summary = {
        "best_epoch": best_epoch,
        "val_frame_loss": best_loss,
        "val_frame_accuracy": float(np.mean(best_probs.argmax(1) == val_labels)),
        "train_frames": len(train_items),
        "val_frames": len(val_items),
    }
    return best_probs, summary


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def mean_metrics(per_fold: list[dict]) -> dict:
    """The folds' mean of every number (dicts such as ``pairs`` recursively, over the keys all
    folds share). A value that is None in some folds, such as the threshold of a refiner pair
    that a fold could not fit (that fold did not refine the pair), is averaged over the folds
    that have it, and ``<key>_folds`` says how many those were."""
    mean: dict = {}
    for key, value in per_fold[0].items():
        values = [fold.get(key) for fold in per_fold]
        if isinstance(value, dict):
            shared = [v for v in values if isinstance(v, dict)]
            common_keys = set.intersection(*(set(v) for v in shared))
            mean[key] = (
                mean_metrics([{k: v[k] for k in common_keys} for v in shared])
                if common_keys
                else {}
            )
            continue
        numbers = [v for v in values if _is_number(v)]
        if not numbers or any(v is not None and not _is_number(v) for v in values):
            continue
        mean[key] = float(np.mean(numbers))
        if len(numbers) < len(values):
            mean[f"{key}_folds"] = len(numbers)
    return mean


def train_gesture(cfg: CfgNode, output_dir: Path, logger: logging.Logger) -> dict:
    """Train the folds of GESTURE.FOLDS, fit the refiner; returns (and saves) the metrics."""
    g = cfg.GESTURE
    output_dir = Path(output_dir)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    class_ids, pose_table = _class_ids(cfg)
    class_index = {pose_id: index for index, pose_id in enumerate(class_ids)}
    clips = read_clips(_root(cfg) / cfg.DATASET.TRAIN_IMAGE_DIR, "train", class_ids)
    items = _train_items(cfg, clips, class_index)
    pairs, notes = parse_pairs(g.REFINER.PAIRS, class_ids)
    flip_pairs, flip_notes = build_flip_pairs(pose_table, g.FLIP_EXCLUDE_IDS, g.FLIP_NAME_OVERRIDES)
    flip_map = flip_class_map(flip_pairs, class_ids)
    for note in notes + flip_notes:
        logger.info("%s", note)
    logger.info(
        "%d training clips, %d frames, %d classes, %d flip pairs, refiner pairs %s; device %s",
        len(clips),
        len(items),
        len(class_ids),
        len(flip_pairs),
        [(p.static_id, p.moving_id) for p in pairs],
        device,
    )
    folds = assign_folds(
        [item.label for item in items],
        [clips[item.clip].folder for item in items],
        g.NUM_FOLDS,
        cfg.RANDOMSEED,
        g.GROUP_SPLIT,
    )
    unknown = [f for f in g.FOLDS if not 0 <= f < g.NUM_FOLDS]
    if unknown or not g.FOLDS:
        raise ValueError(
            f"GESTURE.FOLDS {list(g.FOLDS)} must be non-empty, in 0..{g.NUM_FOLDS - 1}"
        )
    for fold in g.FOLDS:
        train_items = [item for item, f in zip(items, folds, strict=True) if f != fold]
        val_items = [item for item, f in zip(items, folds, strict=True) if f == fold]
        val_probs, summary = _train_fold(
            cfg, fold, train_items, val_items, class_ids, flip_map, output_dir, logger, device
        )
        clip_probs = _clip_means(val_probs, [item.clip for item in val_items])
        train_clips = sorted({item.clip for item in train_items})
        (output_dir / f"fold_{fold}").mkdir(parents=True, exist_ok=True)
        np.savez(
            output_dir / f"fold_{fold}" / VALIDATION_PROBS_NAME,
            folders=np.array([clips[i].folder for i in clip_probs]),
            probs=np.stack(list(clip_probs.values())),
            train_folders=np.array([clips[i].folder for i in train_clips]),
            summary=np.array(json.dumps(summary)),
        )
    return fit_and_score_refiner(cfg, output_dir, logger)


def fit_and_score_refiner(cfg: CfgNode, output_dir: Path, logger: logging.Logger) -> dict:
    """Fit the refiner on each fold's training clips and score its validation clips (from the
    clip probabilities training saved), then fit on all training clips and save the thresholds
    and ``gesture_metrics.json``. Separate from training so refiner settings can be compared
    without retraining the classifier."""
    g = cfg.GESTURE
    output_dir = Path(output_dir)
    class_ids, _ = _class_ids(cfg)
    class_index = {pose_id: index for index, pose_id in enumerate(class_ids)}
    clips = read_clips(_root(cfg) / cfg.DATASET.TRAIN_IMAGE_DIR, "train", class_ids)
    by_folder = {clip.folder: clip for clip in clips}
    widths = {clip.folder: _clip_width(clip) for clip in clips}
    pairs, _ = parse_pairs(g.REFINER.PAIRS, class_ids)
    # The refiner's statistics: from the JSON keypoints, and also from the stages' keypoints of
    # the training frames when given (thresholds as noisy as the stage keypoints of the test).
    refiner_keypoints = {"json": {clip.folder: list(clip.keypoints) for clip in clips}}
    if g.TRAIN_STAGE_RESULT_CSV:
        refiner_keypoints["stages"] = _stage_keypoints(g.TRAIN_STAGE_RESULT_CSV, clips, "training")
    results: dict = {"folds": {}}
    # every fold's validation clips, refined with that fold's thresholds, pooled by source
    pooled: dict[str, dict[str, list]] = {
        source: {"probs": [], "labels": [], "refined": []} for source in refiner_keypoints
    }
    for fold in g.FOLDS:
        path = output_dir / f"fold_{fold}" / VALIDATION_PROBS_NAME
        if not path.is_file():
            raise FileNotFoundError(f"{path} not found: train fold {fold} first")
        with np.load(path) as saved:
            val_clips = [by_folder[str(folder)] for folder in saved["folders"]]
            train_clips = [by_folder[str(folder)] for folder in saved["train_folders"]]
            probs = saved["probs"]
            summary = json.loads(str(saved["summary"])) if "summary" in saved else {}
        labels = np.array([class_index[c.pose_id] for c in val_clips])
        for source, keypoints in refiner_keypoints.items():
            fold_thresholds = _fit_refiner(cfg, pairs, train_clips, widths, keypoints)
            refined_by_mode = refine_clips(
                probs,
                class_ids,
                [keypoints[c.folder] for c in val_clips],
                [widths[c.folder] for c in val_clips],
                pairs,
                fold_thresholds,
                g.REFERENCE_WIDTH,
            )
            scores = summarize_clips(
                probs, refined_by_mode, labels, class_ids, pairs, fold_thresholds, g.REFINER.MODE
            )
            pooled[source]["probs"].append(probs)
            pooled[source]["labels"].append(labels)
            pooled[source]["refined"].append(refined_by_mode)
            if source == "json":
                summary.update(scores)
            else:
                summary["stage_keypoints"] = scores
        results["folds"][str(fold)] = summary
        logger.info("fold %d: %s", fold, json.dumps(summary))
    results["mean"] = mean_metrics(list(results["folds"].values()))
    for source, keypoints in refiner_keypoints.items():
        thresholds = _fit_refiner(cfg, pairs, clips, widths, keypoints)
        # out of fold: all validation clips at once (each fold's own thresholds); the pairs'
        # threshold and confidence shown are those of the fit on all training clips
        out_of_fold = summarize_clips(
            np.concatenate(pooled[source]["probs"]),
            {
                name: np.concatenate([refined[name] for refined in pooled[source]["refined"]])
                for name in MODES
            },
            np.concatenate(pooled[source]["labels"]),
            class_ids,
            pairs,
            thresholds,
            g.REFINER.MODE,
        )
        if source == "json":
            results["out_of_fold"] = {**results.get("out_of_fold", {}), **out_of_fold}
        else:
            results.setdefault("out_of_fold", {})["stage_keypoints"] = out_of_fold
        save_thresholds(
            output_dir / THRESHOLD_FILES[source],
            thresholds,
            pairs,
            g.REFERENCE_WIDTH,
            g.REFINER.MARGIN,
            g.REFINER.OUTLIER_IQR,
        )
        suffix = "" if source == "json" else "_stages"
        results[f"thresholds{suffix}"] = {group: fit.threshold for group, fit in thresholds.items()}
        results[f"confidences{suffix}"] = {
            group: fit.confidence for group, fit in thresholds.items()
        }
        results[f"confidences_in_sample{suffix}"] = {
            group: fit.in_sample_confidence for group, fit in thresholds.items()
        }
        results[f"chance_p{suffix}"] = {group: fit.chance_p for group, fit in thresholds.items()}
        for group, fit in thresholds.items():
            if fit.confidence <= 0.5 or fit.chance_p > fit.max_chance_p:
                logger.info(
                    "refiner group %s on %s keypoints: rule not shown better than chance on "
                    "training clips left out of its fit (confidence %.3f, in-sample %.3f, "
                    "chance p %.3f), left untouched in 'calibrated' mode",
                    group,
                    source,
                    fit.confidence,
                    fit.in_sample_confidence,
                    fit.chance_p,
                )
    validations = [("JSON", results["out_of_fold"])]
    if "stage_keypoints" in results["out_of_fold"]:
        validations.append(("stage", results["out_of_fold"]["stage_keypoints"]))
    for label, mean in validations:
        logger.info(
            "validation clips of folds %s, refiner on %s keypoints: clip logloss %.4f -> %.4f, "
            "accuracy %.4f -> %.4f; pairs %s",
            list(g.FOLDS),
            label,
            mean["logloss"],
            mean["logloss_refined"],
            mean["accuracy"],
            mean["accuracy_refined"],
            json.dumps(mean.get("pairs", {})),
        )
    logger.info(
        "thresholds %s (confidences %s)%s",
        results["thresholds"],
        results["confidences"],
        f", on stage keypoints {results['thresholds_stages']} "
        f"(confidences {results['confidences_stages']})"
        if "stages" in refiner_keypoints
        else "",
    )
    atomic_write_text(output_dir / "gesture_metrics.json", json.dumps(results, indent=1))
    return results


def _stage_keypoints(
    result_csv: str, clips: Sequence[GestureClip], split: str
) -> dict[str, list[np.ndarray]]:
    """{folder: frames} of stage two's result.csv, which must cover every frame of the clips."""
    stage = read_stage_keypoints(result_csv)
    keypoints = {}
    for clip in clips:
        if clip.folder not in stage or len(stage[clip.folder]) != clip.num_frames:
            found = len(stage[clip.folder]) if clip.folder in stage else 0
            raise GestureDataError(
                f"{result_csv}: {split} folder {clip.folder} has {clip.num_frames} frames "
                f"but {found} keypoint rows"
            )
        keypoints[clip.folder] = list(stage[clip.folder])
    return keypoints


def _test_keypoints(cfg: CfgNode, clips: dict[str, GestureClip]) -> dict[str, list[np.ndarray]]:
    source = cfg.GESTURE.KEYPOINT_SOURCE
    if source == "json":
        missing = [folder for folder, clip in clips.items() if clip.keypoints is None]
        if missing:
            raise GestureDataError(
                f"test folders without keypoint JSON: {missing[:10]}; use "
                "GESTURE.KEYPOINT_SOURCE stages with GESTURE.STAGE_RESULT_CSV"
            )
        return {folder: list(clip.keypoints) for folder, clip in clips.items()}
    if source != "stages":
        raise ValueError(f"GESTURE.KEYPOINT_SOURCE must be 'json' or 'stages', got {source!r}")
    if not cfg.GESTURE.STAGE_RESULT_CSV:
        raise ValueError(
            "GESTURE.KEYPOINT_SOURCE is 'stages' but GESTURE.STAGE_RESULT_CSV is empty"
        )
    return _stage_keypoints(cfg.GESTURE.STAGE_RESULT_CSV, list(clips.values()), "test")


def _load_fold_models(
    cfg: CfgNode, output_dir: Path, class_ids: list[int], device: torch.device
) -> list[nn.Module]:
    g = cfg.GESTURE
    paths = [output_dir / f"fold_{fold}" / MODEL_NAME for fold in g.FOLDS]
    missing = [str(path) for path in paths if not path.is_file()]
    if missing:
        raise FileNotFoundError(
            f"trained fold models not found: {missing} (GESTURE.FOLDS "
            f"{list(g.FOLDS)}; train them first)"
        )
    models = []
    for path in paths:
        checkpoint = load_safely(path)
        if checkpoint.get("image_size") != g.IMAGE_SIZE:
            raise ValueError(
                f"{path} was trained at image size {checkpoint.get('image_size')}, "
                f"GESTURE.IMAGE_SIZE is {g.IMAGE_SIZE}"
            )
        if list(checkpoint.get("class_ids", [])) != class_ids:
            raise ValueError(
                f"{path} was trained on classes {checkpoint.get('class_ids')}, "
                f"but the data has {class_ids}"
            )
        model = build_classifier(checkpoint["backbone"], len(class_ids))
        model.load_state_dict(checkpoint["state_dict"])
        models.append(model.to(device))
    return models


def predict_gesture(cfg: CfgNode, output_dir: Path, logger: logging.Logger) -> Path:
    """Write ``submission.csv`` (and ``submission_no_refiner.csv``) into ``output_dir``."""
    g = cfg.GESTURE
    output_dir = Path(output_dir)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    class_ids, _ = _class_ids(cfg)
    layout = read_sample_submission(_root(cfg) / cfg.DATASET.TEST_CSV)
    if list(layout.class_ids) != class_ids:
        raise GestureDataError(
            f"{cfg.DATASET.TEST_CSV}: Label columns {list(layout.class_ids)} "
            f"differ from the pose table's ids {class_ids}"
        )
    test_clips = {
        clip.folder: clip for clip in read_clips(_root(cfg) / cfg.DATASET.TEST_IMAGE_DIR, "test")
    }
    absent = [folder for folder in layout.folders if folder not in test_clips]
    if absent:
        raise GestureDataError(
            f"sample submission lists test folders that do not exist: {absent[:10]}"
        )
    clips = [test_clips[folder] for folder in layout.folders]
    keypoints = _test_keypoints(cfg, {clip.folder: clip for clip in clips})
    items = [
        FrameItem(path, points, -1, number)
        for number, clip in enumerate(clips)
        for path, points in zip(clip.frame_paths, keypoints[clip.folder], strict=True)
    ]
    models = _load_fold_models(cfg, output_dir, class_ids, device)
    dataset = GestureFrames(items, _margins(cfg), g.IMAGE_SIZE, False)
    frame_probs = _predict(models, _loader(dataset, cfg, False, 0), device)
    clip_means = _clip_means(frame_probs, [item.clip for item in items])
    probs = np.stack([clip_means[number] for number in range(len(clips))])
    raw_path = write_submission(output_dir / RAW_SUBMISSION_NAME, layout, probs)
    pairs: list[RefinerPair] = []
    thresholds: dict[str, GroupThreshold] = {}
    reference_width = float(g.REFERENCE_WIDTH)
    if g.REFINER.ENABLED:
        thresholds_path = output_dir / THRESHOLDS_NAME
        stage_thresholds = output_dir / THRESHOLD_FILES["stages"]
        if g.KEYPOINT_SOURCE == "stages" and stage_thresholds.is_file():
            thresholds_path = stage_thresholds
        elif g.KEYPOINT_SOURCE == "stages":
            logger.info(
                "no %s (train with GESTURE.TRAIN_STAGE_RESULT_CSV): the refiner uses thresholds "
                "fitted on JSON keypoints for stage keypoints",
                stage_thresholds,
            )
        pairs, thresholds, reference_width = load_thresholds(thresholds_path)
        logger.info("refiner thresholds: %s", thresholds_path)
    widths = [_clip_width(clip) for clip in clips]
    refined, decisions = probs.copy(), []
    for number, clip in enumerate(clips):
        refined[number], decision = refine(
            probs[number],
            class_ids,
            keypoints[clip.folder],
            widths[number],
            pairs,
            thresholds,
            reference_width,
            g.REFINER.MODE,
        )
        if decision is not None:
            decisions.append({"folder": clip.folder, **decision})
    atomic_write_text(output_dir / "refiner_decisions.json", json.dumps(decisions, indent=1))
    path = write_submission(output_dir / SUBMISSION_NAME, layout, refined)
    logger.info(
        "%d test clips from %d fold models; refiner changed %d clips' top class among "
        "%d decisions; wrote %s and %s",
        len(clips),
        len(models),
        sum(d["top_id"] != d["chosen_id"] for d in decisions),
        len(decisions),
        path,
        raw_path,
    )
    truth_path = _root(cfg) / cfg.DATASET.TRUTH_CSV
    if truth_path.is_file():
        answers = read_test_answers(truth_path)
        if all(folder in answers for folder in layout.folders):
            labels = np.array([class_ids.index(answers[f]) for f in layout.folders])
            scores = score_clips(
                probs,
                labels,
                class_ids,
                [keypoints[clip.folder] for clip in clips],
                widths,
                pairs,
                thresholds,
                reference_width,
                g.REFINER.MODE,
            )
            atomic_write_text(output_dir / "test_scores.json", json.dumps(scores, indent=1))
            logger.info("test answers %s: %s", truth_path, json.dumps(scores))
    return path
