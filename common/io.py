"""Safe file input and output: atomic writes and image reading with clear errors."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path

import cv2
import numpy as np


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it over ``path`` only on success.

    An interrupted writer leaves the old file (or none), never a half-written one. The file gets
    the permissions a plain ``open`` would give (mode 666 less the umask), not a temporary
    file's private 600, so others can still read a submission.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp_path = path.parent / f".{path.name}.{uuid.uuid4().hex[:12]}.tmp"
    os.close(os.open(tmp_path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
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
    """(width, height) of an image file, from its header when possible.

    A file that is missing or cannot be decoded raises :class:`ImageReadError` naming it.
    """
    path = Path(path)
    try:
        from PIL import Image

        with Image.open(path) as img:
            return int(img.width), int(img.height)
    except (ImportError, OSError):
        height, width = read_image(path).shape[:2]
        return width, height


def check_images(paths: Sequence[str | Path]) -> tuple[np.ndarray, list[tuple[int, str]]]:
    """Sizes (N, 2) [width, height] of images read from their headers, and the bad ones.

    Cheap enough to run over a whole data set before training (no pixel decoding), so a
    missing or unreadable file is found at the start, not hours into a run. Returns the
    (index, reason) of every file that is missing or not an image; their sizes are 0. A file
    whose header is intact but whose pixels are broken is found when it is read.
    """
    sizes = np.zeros((len(paths), 2), dtype=np.int64)
    bad: list[tuple[int, str]] = []
    for index, path in enumerate(paths):
        try:
            sizes[index] = image_size(path)
        except ImageReadError as error:
            bad.append((index, str(error)))
    return sizes, bad
