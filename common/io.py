"""Safe file input and output: atomic writes and image reading with clear errors."""

from __future__ import annotations

import contextlib
import math
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
        replace_durably(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def replace_durably(written: str | Path, path: str | Path) -> None:
    """Flush ``written`` to disk, then rename it over ``path`` (same file system)."""
    with open(written, "rb+") as handle:
        os.fsync(handle.fileno())
    os.replace(written, path)


def atomic_write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


class ImageReadError(RuntimeError):
    """An image file is missing or cannot be decoded."""


REDUCE_FACTORS = (8, 4, 2)  # what the JPEG decoder can scale by while decoding


def read_image(path: str | Path, reduce: int = 1) -> np.ndarray:
    """Read any image file as a 3-channel BGR uint8 array.

    Grayscale is expanded, an alpha channel dropped, 16-bit scaled down. ``reduce`` in
    {1, 2, 4, 8} asks the JPEG decoder for a smaller image directly (much cheaper than a full
    decode followed by a resize; other formats are decoded, then resized). EXIF orientation is
    ignored either way, so both decodes show the same pixels.
    """
    path = Path(path)
    if not path.is_file():
        raise ImageReadError(f"image not found: {path}")
    reduced = {2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4,
               8: cv2.IMREAD_REDUCED_COLOR_8}  # fmt: skip
    if reduce == 1:
        flags = cv2.IMREAD_UNCHANGED
    elif reduce in reduced:
        flags = reduced[reduce] | cv2.IMREAD_IGNORE_ORIENTATION
    else:
        raise ValueError(f"reduce must be 1, 2, 4 or 8, got {reduce}")
    image = cv2.imread(str(path), flags)
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


def reduce_factor(image_wh: Sequence[float], needed_wh: Sequence[float]) -> int:
    """The largest decode reduction (8, 4 or 2; else 1) that still leaves at least
    ``needed_wh`` pixels across the whole image, i.e. one decoded pixel or more per network
    input pixel. ``needed_wh``: the size the whole image would have at the input's scale."""
    for factor in REDUCE_FACTORS:
        if all(math.ceil(side / factor) >= need for side, need in zip(image_wh, needed_wh,
                                                                        strict=True)):
            return factor
    return 1


def read_image_at_least(
    path: str | Path, image_wh: Sequence[int], needed_wh: Sequence[float]
) -> tuple[np.ndarray, np.ndarray]:
    """Decode ``path`` (``image_wh`` pixels) at the smallest size that keeps ``needed_wh``.

    Returns the image and the 2x3 affine matrix from its pixels to the original's (pixel
    centres: a decoded pixel covers ``s`` original ones, ``x = s * (u + 0.5) - 0.5``); the
    identity when the image is decoded whole.
    """
    image = read_image(path, reduce_factor(image_wh, needed_wh))
    sx = image_wh[0] / image.shape[1]
    sy = image_wh[1] / image.shape[0]
    to_original = np.array([[sx, 0.0, (sx - 1) / 2], [0.0, sy, (sy - 1) / 2]])
    return image, to_original


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
