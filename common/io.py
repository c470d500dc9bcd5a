"""Safe file input and output: atomic writes and image reading with clear errors."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it over ``path`` only on success.

    An interrupted writer leaves the old file (or none), never a half-written one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def atomic_write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


class ImageReadError(RuntimeError):
    """An image file is missing or cannot be decoded."""


def read_image(path: str | Path, reduce: int = 1) -> np.ndarray:
    """Read any image file as a 3-channel BGR uint8 array.

    Grayscale is expanded, an alpha channel dropped, 16-bit scaled down. ``reduce`` in
    {1, 2, 4, 8} asks the JPEG decoder for a smaller image directly (much cheaper than a full
    decode followed by a resize).
    """
    path = Path(path)
    if not path.is_file():
        raise ImageReadError(f"image not found: {path}")
    flags = {1: cv2.IMREAD_UNCHANGED, 2: cv2.IMREAD_REDUCED_COLOR_2,
             4: cv2.IMREAD_REDUCED_COLOR_4, 8: cv2.IMREAD_REDUCED_COLOR_8}  # fmt: skip
    if reduce not in flags:
        raise ValueError(f"reduce must be 1, 2, 4 or 8, got {reduce}")
    image = cv2.imread(str(path), flags[reduce])
    if image is None:
        raise ImageReadError(f"cannot decode image (corrupt or not an image): {path}")
    if image.dtype == np.uint16:
        image = (image / 257).astype(np.uint8)
    elif image.dtype != np.uint8:
        raise ImageReadError(f"unsupported pixel type {image.dtype}: {path}")
    if image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    elif image.shape[2] == 4:
        image = cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    elif image.shape[2] == 1:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    return np.ascontiguousarray(image)


def image_size(path: str | Path) -> tuple[int, int]:
    """(width, height) of an image file, from its header when possible."""
    path = Path(path)
    try:
        from PIL import Image

        with Image.open(path) as img:
            return int(img.width), int(img.height)
    except (ImportError, OSError):
        height, width = read_image(path).shape[:2]
        return width, height
