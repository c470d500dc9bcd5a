"""Stage one's codec: a person box to the head's target (encode), the head's output back to a box
in the image's own pixels (decode), and the loss weights of the 'reference' head.

Targets are the corners x1, y1, x2, y2 in the head's units: fractions of the input width and
height for 'pooled', input pixels for 'reference' (``head_scale``). Decoding divides by the same
factors, scales the fractions by each image's own size and sanitises the corners into a valid
``[x, y, w, h]`` box inside the image. ``TEST.REFERENCE_BOXES`` writes the competition's boxes
instead (``reference_boxes_xywh``).

The 'reference' loss scales both sides to original pixels, as the reference did: x by
``width / INPUT_SIZE`` and y by ``height / INPUT_SIZE`` when ``INPUT_SIZE`` > 0 (the reference's
288, which weighs x errors 1.78x at 384x288: REFERENCE.md pitfall 2), else by
``width / input width`` and ``height / input height`` (true original pixels).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from yacs.config import CfgNode

from common.errors import ConfigError
from HRNet_bbox.model import BOX_HEADS, POOLED_HEAD


def head_scale(head: str, image_size: Sequence[int]) -> torch.Tensor:
    """The factors (4,) from normalised corners (fractions of the input width and height) to the
    head's units: input pixels for 'reference', 1 for 'pooled'."""
    if head not in BOX_HEADS:
        raise ConfigError(f"MODEL.BBOX_HEAD must be one of {list(BOX_HEADS)}, got {head!r}")
    if head == POOLED_HEAD:
        return torch.ones(4)
    width, height = (float(v) for v in image_size)
    return torch.tensor([width, height, width, height])


def sanitize_boxes_xyxy(boxes_xyxy: np.ndarray, image_sizes_wh: np.ndarray) -> np.ndarray:
    """Corners (N, 4) -> valid ``[x, y, w, h]`` boxes inside their images.

    Corners are sorted (x1 <= x2, y1 <= y2), clipped to pixel coordinates 0..size-1, and a box
    thinner than 1 px is widened to 1 px about its centre (kept inside the image), so no box is
    empty, inverted or outside: stage two drops such images silently.
    """
    boxes = np.asarray(boxes_xyxy, dtype=np.float64).reshape(-1, 4)
    sizes = np.asarray(image_sizes_wh, dtype=np.float64).reshape(-1, 2)
    if len(sizes) != len(boxes):
        raise ValueError(f"{len(boxes)} boxes but {len(sizes)} image sizes")
    bad = np.flatnonzero(~np.isfinite(boxes).all(axis=1))
    if len(bad):
        raise ValueError(f"box {int(bad[0])} is not finite: {boxes[bad[0]].tolist()}")
    out = np.empty_like(boxes)
    for axis in (0, 1):
        low = np.minimum(boxes[:, axis], boxes[:, axis + 2])
        high = np.maximum(boxes[:, axis], boxes[:, axis + 2])
        last = np.maximum(sizes[:, axis] - 1.0, 1.0)  # the last pixel; 1 for a 1-pixel image
        low, high = np.clip(low, 0.0, last), np.clip(high, 0.0, last)
        thin = high - low < 1.0
        centre = (low + high) / 2.0
        low = np.where(thin, np.clip(centre - 0.5, 0.0, last - 1.0), low)
        high = np.where(thin, low + 1.0, high)
        out[:, axis], out[:, axis + 2] = low, high - low
    return out


def reference_boxes_xywh(boxes_xyxy: np.ndarray) -> np.ndarray:
    """Corners (N, 4) -> ``[x1, y1, |x2 - x1|, |y2 - y1|]`` as the competition's test script
    wrote them: the first corner even when it is the larger, nothing clipped. Stage two's
    official cleaning then clips at the last pixel, so a box crossing the right or bottom edge
    gives a crop one pixel longer than the sanitised box's (which is clipped first, then loses
    the cleaning's pixel)."""
    boxes = np.asarray(boxes_xyxy, dtype=np.float64).reshape(-1, 4)
    return np.concatenate([boxes[:, :2], np.abs(boxes[:, 2:] - boxes[:, :2])], axis=1)


class BoxCodec:
    """Encoding and decoding for one head (``MODEL.BBOX_HEAD``) and input size ([w, h]);
    ``reference_boxes`` decodes to the competition's unclipped boxes."""

    def __init__(self, head: str, input_size: Sequence[int], reference_boxes: bool = False) -> None:
        self.head = head
        self.input_size = tuple(int(v) for v in input_size)
        self.scale = head_scale(head, self.input_size)
        self.reference_boxes = reference_boxes

    @classmethod
    def from_cfg(cls, cfg: CfgNode) -> BoxCodec:
        return cls(cfg.MODEL.BBOX_HEAD, cfg.MODEL.IMAGE_SIZE, bool(cfg.TEST.REFERENCE_BOXES))

    def encode(self, box_xywh: np.ndarray) -> np.ndarray:
        """A box ``[x, y, w, h]`` in input pixels -> the head's target (4,) float32."""
        in_width, in_height = self.input_size
        x, y, w, h = box_xywh
        corners = np.array([x / in_width, y / in_height, (x + w) / in_width, (y + h) / in_height])
        return (corners * self.scale.numpy()).astype(np.float32)

    def normalized_corners(self, output: torch.Tensor) -> torch.Tensor:
        """The head's output (N, 4) as x1, y1, x2, y2 fractions of the input width and height."""
        return output / self.scale.to(output)

    def decode(
        self, output: torch.Tensor, sizes_wh: np.ndarray, sources: Sequence[object]
    ) -> np.ndarray:
        """The head's output (N, 4) -> clean ``[x, y, w, h]`` boxes (N, 4) in the pixels of
        images of ``sizes_wh`` (N, 2); ``sources`` name the images in an error."""
        corners = self.normalized_corners(output).double().cpu().numpy()
        bad = np.flatnonzero(~np.isfinite(corners).all(axis=1))
        if len(bad):
            raise ValueError(
                f"the model predicted a non-finite box for {sources[bad[0]]}: "
                f"{corners[bad[0]].tolist()} (are the weights broken?)"
            )
        corners = corners * np.tile(sizes_wh, 2)
        if self.reference_boxes:
            return reference_boxes_xywh(corners)
        return sanitize_boxes_xyxy(corners, sizes_wh)


def loss_weights(cfg: CfgNode, meta: dict) -> torch.Tensor:
    """(N, 4) factors from the 'reference' head's input pixels to (the reference's) original
    pixels; see the module docstring."""
    in_width, in_height = (float(v) for v in cfg.MODEL.IMAGE_SIZE)
    divisor_x = float(cfg.INPUT_SIZE) if cfg.INPUT_SIZE > 0 else in_width
    divisor_y = float(cfg.INPUT_SIZE) if cfg.INPUT_SIZE > 0 else in_height
    x = meta["width"].double() / divisor_x
    y = meta["height"].double() / divisor_y
    return torch.stack([x, y, x, y], dim=1).float()
