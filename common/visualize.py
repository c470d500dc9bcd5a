"""Pictures people would rather look at: skeletons, boxes, side-by-side truth, contact sheets."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from common.keypoints import BUILTIN_SETS, load_keypoint_set

PRED_COLOUR = (0, 200, 255)  # BGR: orange-yellow for predictions
TRUTH_COLOUR = (80, 220, 80)  # green for ground truth
BOX_COLOUR = (255, 160, 0)


def default_skeleton(num_joints: int) -> tuple[tuple[int, int], ...]:
    """The skeleton of the built-in set with ``num_joints`` joints; none (points only) else."""
    for name in BUILTIN_SETS:
        kp_set = load_keypoint_set(name)
        if kp_set.num_joints == num_joints:
            return kp_set.skeleton
    return ()


def draw_skeleton(
    image: np.ndarray,
    keypoints: np.ndarray,
    colour: tuple[int, int, int],
    box_xywh: np.ndarray | None = None,
    thickness: int | None = None,
    skeleton: Sequence[tuple[int, int]] | None = None,
) -> np.ndarray:
    """A copy of ``image`` with the skeleton of ``keypoints`` (J, 2) and an optional box;
    ``skeleton`` (index pairs, from the keypoint set) defaults to the built-in set's."""
    canvas = image.copy()
    height, width = canvas.shape[:2]
    thickness = thickness or max(1, round(max(height, width) / 400))
    if skeleton is None:
        skeleton = default_skeleton(len(keypoints))
    points = np.round(keypoints).astype(int)
    for a, b in skeleton:
        cv2.line(canvas, tuple(points[a]), tuple(points[b]), colour, thickness, cv2.LINE_AA)
    for point in points:
        cv2.circle(canvas, tuple(point), thickness + 1, colour, -1, cv2.LINE_AA)
    if box_xywh is not None:
        x, y, w, h = np.round(box_xywh).astype(int)
        cv2.rectangle(canvas, (x, y), (x + w, y + h), BOX_COLOUR, thickness)
    return canvas


def side_by_side(
    image: np.ndarray,
    pred: np.ndarray,
    truth: np.ndarray | None = None,
    box_xywh: np.ndarray | None = None,
    title: str = "",
    crop_to_person: bool = True,
    skeleton: Sequence[tuple[int, int]] | None = None,
) -> np.ndarray:
    """Prediction (left) and ground truth (right, when known), cropped around the person."""
    panels = [draw_skeleton(image, pred, PRED_COLOUR, box_xywh, skeleton=skeleton)]
    if truth is not None:
        panels.append(draw_skeleton(image, truth, TRUTH_COLOUR, skeleton=skeleton))
    if crop_to_person:
        points = pred if truth is None else np.concatenate([pred, truth])
        if box_xywh is not None:
            points = np.concatenate([points, [box_xywh[:2], box_xywh[:2] + box_xywh[2:]]])
        height, width = image.shape[:2]
        low = np.clip(points.min(0) - 0.15 * np.ptp(points, 0) - 10, 0, [width - 1, height - 1])
        high = np.clip(points.max(0) + 0.15 * np.ptp(points, 0) + 10, 1, [width, height])
        x0, y0 = low.astype(int)
        x1, y1 = np.maximum(high.astype(int), [x0 + 2, y0 + 2])
        panels = [panel[y0:y1, x0:x1] for panel in panels]
    target_height = 360
    panels = [
        cv2.resize(p, (max(1, round(p.shape[1] * target_height / p.shape[0])), target_height))
        for p in panels
    ]
    picture = np.concatenate(panels, axis=1)
    if title:
        cv2.putText(picture, title, (6, 22), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 0), 3)
        cv2.putText(picture, title, (6, 22), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 255), 1)
    return picture


def contact_sheet(
    pictures: list[np.ndarray], columns: int = 4, cell_width: int = 480
) -> np.ndarray:
    """Tile pictures into one image, each scaled to ``cell_width`` and padded to a grid."""
    if not pictures:
        raise ValueError("no pictures for a contact sheet")
    cells = [
        cv2.resize(p, (cell_width, max(1, round(p.shape[0] * cell_width / p.shape[1]))))
        for p in pictures
    ]
    cell_height = max(c.shape[0] for c in cells)
    rows = []
    for start in range(0, len(cells), columns):
        row = [
            np.pad(c, ((0, cell_height - c.shape[0]), (0, 0), (0, 0)))
            for c in cells[start : start + columns]
        ]
        row += [np.zeros((cell_height, cell_width, 3), np.uint8)] * (columns - len(row))
        rows.append(np.concatenate(row, axis=1))
    return np.concatenate(rows, axis=0)


def draw_boxes(
    image: np.ndarray, pred_xywh: np.ndarray, truth_xywh: np.ndarray | None = None
) -> np.ndarray:
    """A copy of ``image`` with the predicted box (orange) and the true box (green) drawn."""
    canvas = image.copy()
    thickness = max(1, round(max(canvas.shape[:2]) / 400))
    for box, colour in ((truth_xywh, TRUTH_COLOUR), (pred_xywh, PRED_COLOUR)):
        if box is not None:
            x, y, w, h = np.round(box).astype(int)
            cv2.rectangle(canvas, (x, y), (x + w, y + h), colour, thickness)
    return canvas


def write_training_samples(writer, epoch: int, pictures: list[np.ndarray]) -> Path | None:
    """Tile one epoch's validation pictures, save them as ``<TensorBoard dir>/samples/
    epoch_NNN.jpg`` next to the curves, and add them to TensorBoard as ``valid/samples``."""
    if writer is None or not pictures:
        return None
    sheet = contact_sheet(pictures, columns=min(4, len(pictures)), cell_width=320)
    path = Path(writer.logdir) / "samples" / f"epoch_{epoch:03d}.jpg"
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), sheet):
        raise OSError(f"could not write {path}")
    writer.add_image("valid/samples", sheet[:, :, ::-1].copy(), epoch, dataformats="HWC")
    return path
