"""Training of the gesture classifier (``TASK: gesture``): :func:`train_gesture`.

Every annotated training frame is a sample, cropped around its keypoints; folds are
StratifiedKFold per frame (or by folder with GESTURE.GROUP_SPLIT); each fold in GESTURE.FOLDS
trains with warm-up then OneCycle and keeps the epoch of lowest validation loss in
``fold_<k>/best_model.pth``. Each fold's validation clip probabilities are saved, and the refiner
is then fitted and scored on them (:mod:`common.gesture.refiner_folds`).

Why not ``common.trainer.fit``: that loop serves the HRNet stages with their TRAIN.* settings (an
epoch-level MultiStep schedule, ``checkpoint.pth`` every epoch and resuming, ``model_best.pth``
by a stage metric, a fixed number of epochs). The classifier steps its LR every iteration
(linear warm-up to GESTURE.WARMUP_LR, then OneCycle to GESTURE.MAX_LR), clips gradients, stops
early after GESTURE.PATIENCE epochs without a lower validation loss, and needs the best epoch's
validation softmax back for the refiner; fitting it into ``fit`` would change the trained
weights of existing runs, which must stay as they are.
"""

from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
from yacs.config import CfgNode

from common.checkpoint import save_atomic
from common.distributed import default_device
from common.gesture.cutmix import cutmix_batch, mixed_loss
from common.gesture.data import read_clips
from common.gesture.files import MODEL_NAME, VALIDATION_PROBS_NAME, class_ids_of, data_root
from common.gesture.folds import assign_folds
from common.gesture.frames import (
    FrameItem,
    GestureFrames,
    crop_margins,
    frame_loader,
    predict_frames,
    training_items,
)
from common.gesture.model import build_classifier
from common.gesture.optim import WarmupOneCycle, build_optimizer
from common.gesture.poses import build_flip_pairs, flip_class_map
from common.gesture.refiner import parse_pairs
from common.gesture.refiner_folds import fit_and_score_refiner
from common.gesture.scoring import mean_by_clip
from common.metrics import multiclass_logloss


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
    margins = crop_margins(cfg)
    train_set = GestureFrames(
        train_items, margins, g.IMAGE_SIZE, True, g.AUGMENT, flip_map, g.FLIP_PROB
    )
    val_set = GestureFrames(val_items, margins, g.IMAGE_SIZE, False)
    model = build_classifier(g.BACKBONE, len(class_ids), g.DROP_PATH_RATE, g.PRETRAINED, logger).to(
        device
    )
    optimizer = build_optimizer(cfg, model)
    iters_per_epoch = math.ceil(len(train_set) / g.BATCH_SIZE)
    schedule = WarmupOneCycle(cfg, optimizer, iters_per_epoch)
    use_amp = bool(g.AMP) and device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    criterion = nn.CrossEntropyLoss()
    val_labels = np.array([item.label for item in val_items])
    fold_dir = output_dir / f"fold_{fold}"
    best_loss, best_epoch, best_probs, stale = float("inf"), -1, None, 0
    mix_generator = torch.Generator().manual_seed(cfg.RANDOMSEED + fold)
    for epoch in range(g.EPOCHS):
        start = time.time()
        model.train()
        total_loss, correct, seen = 0.0, 0, 0
        for images, labels in frame_loader(train_set, cfg, True, epoch):
            images, labels = images.to(device), labels.to(device)
            images, partner_labels, lam = cutmix_batch(images, labels, g.CUTMIX_PROB, mix_generator)
            schedule.before_step()
            optimizer.zero_grad(set_to_none=True)
            with torch.autocast(device_type=device.type, enabled=use_amp):
                logits = model(images)
                loss = mixed_loss(criterion, logits, labels, partner_labels, lam)
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
        val_probs = predict_frames([model], frame_loader(val_set, cfg, False, epoch), device)
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


def train_gesture(cfg: CfgNode, output_dir: Path, logger: logging.Logger) -> dict:
    """Train the folds of GESTURE.FOLDS, fit the refiner; returns (and saves) the metrics."""
    g = cfg.GESTURE
    output_dir = Path(output_dir)
    device = default_device()
    class_ids, pose_table = class_ids_of(cfg)
    class_index = {pose_id: index for index, pose_id in enumerate(class_ids)}
    clips = read_clips(data_root(cfg) / cfg.DATASET.TRAIN_IMAGE_DIR, "train", class_ids)
    items = training_items(cfg, clips, class_index)
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
        clip_probs = mean_by_clip(val_probs, [item.clip for item in val_items])
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
