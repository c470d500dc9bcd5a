"""Scores of the two competitions and of the box stage, on plain numpy arrays."""

from __future__ import annotations

import numpy as np


def _pair(pred: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pred = np.asarray(pred, dtype=np.float64)
    truth = np.asarray(truth, dtype=np.float64)
    if pred.shape != truth.shape:
        raise ValueError(f"prediction shape {pred.shape} differs from truth shape {truth.shape}")
    if pred.size == 0:
        raise ValueError("cannot score an empty array")
    return pred, truth


def rmse(pred: np.ndarray, truth: np.ndarray) -> float:
    """The motion competition's metric: sqrt of the mean squared error over every x and y."""
    pred, truth = _pair(pred, truth)
    return float(np.sqrt(np.mean((pred - truth) ** 2)))


def per_keypoint_rmse(pred: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """(J,) RMSE of each keypoint over images and both coordinates, for (N, J, 2) arrays."""
    pred, truth = _pair(pred, truth)
    if pred.ndim != 3 or pred.shape[2] != 2:
        raise ValueError(f"expected (N, J, 2) arrays, got {pred.shape}")
    return np.sqrt(np.mean((pred - truth) ** 2, axis=(0, 2)))


def per_image_rmse(pred: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """(N,) RMSE of each image over its keypoints and both coordinates."""
    pred, truth = _pair(pred, truth)
    return np.sqrt(np.mean((pred - truth).reshape(len(pred), -1) ** 2, axis=1))


def multiclass_logloss(probs: np.ndarray, labels: np.ndarray, eps: float = 1e-15) -> float:
    """The gesture competition's metric, as sklearn's ``log_loss``.

    Probabilities are clipped to [eps, 1 - eps] and each row renormalised to sum to one; the
    score is the mean of -log p(true class).
    """
    probs = np.asarray(probs, dtype=np.float64)
    labels = np.asarray(labels)
    if probs.ndim != 2 or labels.shape != (len(probs),):
        raise ValueError(
            f"expected probs (N, C) and labels (N,), got {probs.shape} and {labels.shape}"
        )
    if len(probs) == 0:
        raise ValueError("cannot score an empty array")
    if not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels must be integer class indices, got dtype {labels.dtype}")
    if labels.min() < 0 or labels.max() >= probs.shape[1]:
        raise ValueError(
            f"labels must lie in [0, {probs.shape[1]}), got {labels.min()}..{labels.max()}"
        )
    clipped = np.clip(probs, eps, 1.0 - eps)
    clipped = clipped / clipped.sum(axis=1, keepdims=True)
    return float(-np.mean(np.log(clipped[np.arange(len(labels)), labels])))


def _xyxy(boxes_xywh: np.ndarray) -> np.ndarray:
    boxes = np.asarray(boxes_xywh, dtype=np.float64)
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(f"expected (N, 4) boxes [x, y, w, h], got {boxes.shape}")
    return np.concatenate([boxes[:, :2], boxes[:, :2] + boxes[:, 2:]], axis=1)


def box_iou(a_xywh: np.ndarray, b_xywh: np.ndarray) -> np.ndarray:
    """(N,) intersection over union of box pairs a[i], b[i] in [x, y, w, h]; 0 if no union."""
    a, b = _xyxy(a_xywh), _xyxy(b_xywh)
    if a.shape != b.shape:
        raise ValueError(f"box arrays differ in shape: {a.shape} vs {b.shape}")
    width = np.clip(np.minimum(a[:, 2], b[:, 2]) - np.maximum(a[:, 0], b[:, 0]), 0, None)
    height = np.clip(np.minimum(a[:, 3], b[:, 3]) - np.maximum(a[:, 1], b[:, 1]), 0, None)
    inter = width * height
    area_a = np.clip(a[:, 2] - a[:, 0], 0, None) * np.clip(a[:, 3] - a[:, 1], 0, None)
    area_b = np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)
    union = area_a + area_b - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def corner_error(a_xywh: np.ndarray, b_xywh: np.ndarray) -> np.ndarray:
    """(N,) mean Euclidean distance, in pixels, of the top-left and bottom-right corners."""
    a, b = _xyxy(a_xywh), _xyxy(b_xywh)
    if a.shape != b.shape:
        raise ValueError(f"box arrays differ in shape: {a.shape} vs {b.shape}")
    top_left = np.linalg.norm(a[:, :2] - b[:, :2], axis=1)
    bottom_right = np.linalg.norm(a[:, 2:] - b[:, 2:], axis=1)
    return (top_left + bottom_right) / 2.0


def mean_pose_prediction(train_keypoints: np.ndarray, boxes_xywh: np.ndarray) -> np.ndarray:
    """The mean-pose baseline: the average training pose, each pose first expressed in its own
    keypoint-extent box (0..1), placed into the given boxes. A keypoint model that sees the
    same boxes must beat it by a wide margin to have learnt anything about the pose."""
    train = np.asarray(train_keypoints, dtype=np.float64)
    low = train.min(axis=1, keepdims=True)
    extent = np.maximum(train.max(axis=1, keepdims=True) - low, 1e-6)
    mean_unit_pose = ((train - low) / extent).mean(axis=0)
    boxes = np.asarray(boxes_xywh, dtype=np.float64)
    return boxes[:, None, :2] + mean_unit_pose[None] * boxes[:, None, 2:]
