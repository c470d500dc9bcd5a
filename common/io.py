"""Safe file input and output: atomic writes and image reading with clear errors."""

from __future__ import annotations

import contextlib
import logging
import math
import os
import re
import signal
import threading
import uuid
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path

import cv2
import numpy as np

from common.errors import UserError

MAX_IMAGE_PIXELS = 100_000_000  # DATASET.MAX_IMAGE_PIXELS: far above 8000x6000 (48 MP)
_max_image_pixels = MAX_IMAGE_PIXELS  # the limit in force: DATASET.MAX_IMAGE_PIXELS of the run


def set_max_image_pixels(value: int) -> None:
    """Set the pixel limit every image reader of this process (and its forked loader workers)
    applies when no ``max_pixels`` is passed."""
    global _max_image_pixels
    if int(value) <= 0:
        raise ValueError(f"DATASET.MAX_IMAGE_PIXELS must be a positive pixel count, got {value}")
    _max_image_pixels = int(value)
_TEMP_PATTERN = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)\.[0-9a-f]{12}\.tmp$")
_live_temps: set[Path] = set()
_previous_handlers: dict[int, object] = {}
_lock = threading.Lock()


class AtomicWriteError(UserError, OSError):
    """A file could not be written (disk full, no permission); the previous one is untouched."""


def _remove_live_temps_and_die(signum: int, frame: object) -> None:
    """On SIGTERM/SIGINT: delete the temporary files being written, then act as before."""
    for tmp in list(_live_temps):
        with contextlib.suppress(OSError):
            tmp.unlink()
    _live_temps.clear()
    previous = _previous_handlers.get(signum, signal.SIG_DFL)
    if callable(previous):
        previous(signum, frame)
        return
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)  # the usual death by this signal, and its exit status


def _track(tmp: Path) -> None:
    with _lock:
        if not _live_temps and threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGTERM, signal.SIGINT):
                previous = signal.getsignal(signum)
                if previous is not signal.SIG_IGN and previous is not None:
                    _previous_handlers[signum] = previous
                    signal.signal(signum, _remove_live_temps_and_die)
        _live_temps.add(tmp)


def _untrack(tmp: Path) -> None:
    with _lock:
        _live_temps.discard(tmp)
        if not _live_temps and threading.current_thread() is threading.main_thread():
            for signum, previous in _previous_handlers.items():
                if signal.getsignal(signum) is _remove_live_temps_and_die:
                    signal.signal(signum, previous)
            _previous_handlers.clear()


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it over ``path`` only on success.

    An interrupted writer leaves the old file (or none), never a half-written one, and no
    temporary file either: SIGTERM and SIGINT delete it before the process ends as usual. A
    failed write (full disk, ``torch.save``'s enforce fail) raises :class:`AtomicWriteError`
    naming ``path``. The file gets the permissions a plain ``open`` would give (mode 666 less
    the umask), not a temporary file's private 600, so others can still read a submission.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp_path = path.parent / f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:12]}.tmp"
    _track(tmp_path)
    try:
        try:
            os.close(os.open(tmp_path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
            yield tmp_path
            replace_durably(tmp_path, path)
        except (OSError, RuntimeError) as error:
            if isinstance(error, AtomicWriteError):
                raise
            before = "the previous file is intact" if path.exists() else "no file was written"
            raise AtomicWriteError(
                f"could not write {path} (disk full or not writable?): {error}; {before}"
            ) from error
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        _untrack(tmp_path)


def remove_stale_temps(folder: str | Path, logger: logging.Logger | None = None) -> list[Path]:
    """Delete the temporary files :func:`atomic_path` left in ``folder`` when its writer died
    (a kill -9 during a checkpoint save leaves hundreds of MB); those of live writers stay."""
    removed = []
    folder = Path(folder)
    if not folder.is_dir():
        return removed
    for candidate in sorted(folder.iterdir()):
        match = _TEMP_PATTERN.match(candidate.name)
        if match is None or not candidate.is_file() or process_alive(int(match["pid"])):
            continue
        with contextlib.suppress(FileNotFoundError):
            candidate.unlink()
            removed.append(candidate)
            if logger is not None:
                logger.info("removed %s, left by a writer that died (process %s)",
                            candidate, match["pid"])  # fmt: skip
    return removed


def process_alive(pid: int) -> bool:
    """Whether a process with this id exists (ours or another user's)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True



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


class ImageReadError(UserError, RuntimeError):
    """An image file is missing or cannot be decoded."""


REDUCE_FACTORS = (8, 4, 2)  # what the JPEG decoder can scale by while decoding


def _declared_size(path: Path, max_pixels: int) -> tuple[int, int] | None:
    """(width, height) from the file's header, or None when PIL does not know the format."""
    try:
        from PIL import Image
    except ImportError:
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                return int(img.width), int(img.height)
    except Image.DecompressionBombError as error:
        raise ImageReadError(
            f"image too large to decode: {error} (DATASET.MAX_IMAGE_PIXELS = {max_pixels}): {path}"
        ) from error
    except OSError:
        return None


_END_MARKERS = {b"\xff\xd8": (b"\xff\xd9", "JPEG end marker"),
                b"\x89PNG": (b"IEND", "PNG IEND chunk")}  # fmt: skip
_TAIL_BYTES = 1024


def _check_complete(path: Path) -> None:
    """Refuse a JPEG or PNG whose end marker is missing: a truncated file, which the decoders
    fill with grey behind a warning on stderr instead of failing."""
    with open(path, "rb") as handle:
        head = handle.read(4)
        handle.seek(max(path.stat().st_size - _TAIL_BYTES, 0))
        tail = handle.read()
    for signature, (marker, what) in _END_MARKERS.items():
        if head.startswith(signature) and marker not in tail:
            raise ImageReadError(f"truncated image (no {what}): {path}")


def _check_header(path: Path, max_pixels: int | None) -> tuple[int, int] | None:
    """Declared size checked against ``max_pixels`` (default: the limit in force) before anything
    is decoded, and a check that the file is complete; the size, or None when only a full decode
    can tell it."""
    max_pixels = _max_image_pixels if max_pixels is None else max_pixels
    if not path.is_file():
        raise ImageReadError(f"image not found: {path}")
    size = _declared_size(path, max_pixels)
    if size is not None and size[0] * size[1] > max_pixels:
        raise ImageReadError(
            f"image too large: its header declares {size[0]}x{size[1]} pixels, more than "
            f"DATASET.MAX_IMAGE_PIXELS = {max_pixels} (a decompression bomb?): {path}"
        )
    if size is not None:  # else a full decode decides; no half-read header gets this far
        _check_complete(path)
    return size


def read_image(path: str | Path, reduce: int = 1, max_pixels: int | None = None) -> np.ndarray:
    """Read any image file as a 3-channel BGR uint8 array.

    Grayscale is expanded, an alpha channel dropped, 16-bit scaled down. ``reduce`` in
    {1, 2, 4, 8} asks the JPEG decoder for a smaller image directly (much cheaper than a full
    decode followed by a resize; other formats are decoded, then resized). EXIF orientation is
    ignored either way, so both decodes show the same pixels. A header declaring more than
    ``max_pixels`` pixels, or a truncated JPEG/PNG, raises :class:`ImageReadError` unread.
    """
    path = Path(path)
    _check_header(path, max_pixels)
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


def image_size(path: str | Path, max_pixels: int | None = None) -> tuple[int, int]:
    """(width, height) of an image file, from its header when possible.

    A file that is missing, cannot be decoded, is truncated or declares more than
    ``max_pixels`` pixels raises :class:`ImageReadError` naming it.
    """
    path = Path(path)
    size = _check_header(path, max_pixels)
    if size is None:
        height, width = read_image(path, max_pixels=max_pixels).shape[:2]
        return width, height
    return size


def check_images(
    paths: Sequence[str | Path], max_pixels: int | None = None
) -> tuple[np.ndarray, list[tuple[int, str]]]:
    """Sizes (N, 2) [width, height] of images read from their headers, and the bad ones.

    Cheap enough to run over a whole data set before training (no pixel decoding), so a
    missing or unreadable file is found at the start, not hours into a run. Returns the
    (index, reason) of every file that is missing, not an image, truncated or too large; their
    sizes are 0. A file whose header and end are intact but whose pixels are broken is found when
    it is read.
    """
    sizes = np.zeros((len(paths), 2), dtype=np.int64)
    bad: list[tuple[int, str]] = []
    for index, path in enumerate(paths):
        try:
            sizes[index] = image_size(path, max_pixels)
        except ImageReadError as error:
            bad.append((index, str(error)))
    return sizes, bad
