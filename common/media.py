"""What tools/infer.py reads: one image, a folder of images (any names and sizes) or a video
(decoded with OpenCV frame by frame), as chunks of (name, BGR image) items."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from common.errors import UserError
from common.io import ImageReadError, read_image

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg")


class MediaError(UserError, ValueError):
    """The input is not an image, a folder of images or a video."""


@dataclass
class Media:
    """An input: its kind ('image', 'folder', 'video'), its image files, or its video's
    frame count (0 when the container does not say) and frame rate."""

    kind: str
    path: Path
    files: list[Path]
    frames: int = 0
    fps: float = 25.0


def _is_video(path: Path) -> tuple[bool, int, float]:
    capture = cv2.VideoCapture(str(path))
    try:
        ok = capture.isOpened() and capture.read()[0]
        frames = int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        fps = float(capture.get(cv2.CAP_PROP_FPS) or 0.0)
    finally:
        capture.release()
    return bool(ok), max(frames, 0), fps if fps > 0 else 25.0


def open_media(path: str | Path) -> Media:
    """Classify ``path``; anything that is neither a readable image, a folder holding images,
    nor a video OpenCV can decode is a ``MediaError`` that says which."""
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.iterdir()
                       if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise MediaError(f"{path}: no image files ({', '.join(IMAGE_SUFFIXES)}) in the folder")
        return Media("folder", path, files)
    if not path.is_file():
        raise MediaError(f"{path}: no such file or folder")
    if path.suffix.lower() not in VIDEO_SUFFIXES:
        try:
            read_image(path)
            return Media("image", path, [path])
        except ImageReadError as error:
            if path.suffix.lower() in IMAGE_SUFFIXES:
                raise MediaError(f"{path}: not a readable image: {error}") from error
    is_video, frames, fps = _is_video(path)
    if not is_video:
        raise MediaError(f"{path}: neither an image nor a video OpenCV can decode; give an "
                         f"image ({', '.join(IMAGE_SUFFIXES)}), a folder of them or a video")
    return Media("video", path, [], frames, fps)


def iterate_chunks(media: Media, size: int, unreadable: list[str] | None = None
                   ) -> Iterator[list[tuple[str, np.ndarray]]]:
    """Lists of up to ``size`` (name, BGR image) items: file names relative to the folder, or
    ``frame_<n>`` (from 0) for a video, decoded as they are needed. With ``unreadable``, an
    image that cannot be read is left out and its error (naming it) added to it (the others go
    on); without, it raises ``ImageReadError``."""
    if media.kind != "video":
        for start in range(0, len(media.files), size):
            chunk = []
            for path in media.files[start:start + size]:
                try:
                    chunk.append((path.name, read_image(path)))
                except ImageReadError as error:
                    if unreadable is None:
                        raise
                    unreadable.append(str(error))
            if chunk:
                yield chunk
        return
    capture = cv2.VideoCapture(str(media.path))
    try:
        chunk, index = [], 0
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            chunk.append((f"frame_{index:06d}", frame))
            index += 1
            if len(chunk) == size:
                yield chunk
                chunk = []
        if chunk:
            yield chunk
    finally:
        capture.release()
