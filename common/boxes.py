"""Box geometry shared by the stages and the data readers: the official box clipping and the
boxes around keypoints (no file formats here)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def clean_box(box_xywh: Sequence[float] | np.ndarray, width: int, height: int) -> np.ndarray | None:
    """Clip a COCO box to the image the official way; None when the box is rejected.

    x1 = max(0, x), x2 = min(width - 1, x1 + max(0, w - 1)) (same for y). The box is kept only
    when its original area w*h is positive and x2 >= x1, y2 >= y1 (and, added here, all four
    numbers are finite). Returns [x1, y1, x2-x1, y2-y1] (float64), one pixel narrower and lower
    than the input when nothing is clipped.
    """
    x, y, w, h = (float(v) for v in np.asarray(box_xywh, dtype=np.float64).reshape(4))
    if not np.isfinite([x, y, w, h]).all():
        return None
    x1 = max(0.0, x)
    y1 = max(0.0, y)
    x2 = min(width - 1.0, x1 + max(0.0, w - 1.0))
    y2 = min(height - 1.0, y1 + max(0.0, h - 1.0))
    if w * h > 0 and x2 >= x1 and y2 >= y1:
        return np.array([x1, y1, x2 - x1, y2 - y1], dtype=np.float64)
    return None



def keypoint_extent_boxes(keypoints: np.ndarray) -> np.ndarray:
    """Tight ``[x, y, w, h]`` boxes around each image's keypoints (the reference's boxes)."""
    low = keypoints.min(axis=1)
    high = keypoints.max(axis=1)
    return np.concatenate([low, high - low], axis=1)

