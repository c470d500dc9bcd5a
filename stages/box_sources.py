"""Boxes a caller gives ``stages.multi_person``'s one path, beside stage one's own
(``StageOneBoxes``): the whole picture (``WholePicture``, what a top-down model sees when
nothing says where the people are) and a user's box file (``given_boxes``: a JSON box list or a
stage-one box file, matched to the pictures of a folder or the frames of a video by
``file_name``, ``frame`` or COCO ``image_id``). A user's boxes are kept one person each (no
OKS-NMS): the boxes you give are the people you get.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from common.box_files import BoxList, read_box_annotations, read_box_list
from common.errors import UserError
from common.media import Media
from common.motion_data import first_items
from stages.multi_person import PictureBoxes

COCO_PERSON = 1


class BoxSourceError(UserError):
    """Boxes that cannot be used with these inputs."""


class WholePicture:
    """Every picture is one box: its whole frame, score 1."""

    describe = "the whole picture (no --boxes or box model given)"
    suppress_duplicates = False

    def boxes(self, names: Sequence[str], images: Sequence[np.ndarray]) -> list[PictureBoxes]:
        return [(np.array([[0.0, 0.0, im.shape[1], im.shape[0]]]), np.ones(1)) for im in images]


class GivenBoxes:
    """Boxes read from a file, matched to the pictures by name; one person each."""

    suppress_duplicates = False

    def __init__(self, by_name: dict[str, list[tuple[np.ndarray, float]]], describe: str) -> None:
        self._by_name = by_name
        self.describe = describe

    def boxes(self, names: Sequence[str], images: Sequence[np.ndarray]) -> list[PictureBoxes]:
        found = [self._by_name.get(name, []) for name in names]
        return [(np.array([box for box, _ in pairs], dtype=np.float64).reshape(-1, 4),
                 np.array([score for _, score in pairs], dtype=np.float64)) for pairs in found]


def _picture_names_by_key(box_list: BoxList, media: Media) -> dict:
    """How the file's keys name this input's pictures: key -> picture name."""
    if media.kind == "video":
        if box_list.key_kind != "frame":
            raise BoxSourceError(
                f"--boxes {box_list.source}: its boxes name pictures by '{box_list.key_kind}', "
                f"but {media.path} is a video, whose pictures are frames: key the boxes by "
                "'frame' (0 for the first frame)")
        return _FrameNames()
    if box_list.key_kind == "frame":
        raise BoxSourceError(
            f"--boxes {box_list.source}: its boxes name pictures by 'frame', but {media.path} is "
            f"{'a folder of images' if media.kind == 'folder' else 'an image'}: key them by "
            "'file_name' (or a COCO 'image_id' equal to the file's number)")
    names = [path.name for path in media.files]
    if box_list.key_kind == "file_name":
        return {name: name for name in names}
    return {int(Path(name).stem): name for name in names if Path(name).stem.isdigit()}


class _FrameNames(dict):
    """Frame numbers -> ``frame_<n>``, for any n."""

    def __missing__(self, key: int) -> str:
        return f"frame_{key:06d}"

    def __contains__(self, key: object) -> bool:
        return isinstance(key, int)


def given_boxes(path: Path, media: Media, category_id: int | None,
                warn: Callable[[str], None]) -> GivenBoxes:
    """The boxes of ``path`` (a JSON box list, or a ``.pkl`` box file of stage one) for
    ``media``'s pictures. No box matching any picture is an error naming the file's keys;
    some unmatched are a warning naming them; a file with boxes of several categories needs
    ``category_id``."""
    if path.suffix.lower() == ".pkl":
        records = read_box_annotations(path)
        box_list = BoxList(str(path), "file_name", [])
        pairs = [(name, np.asarray(r["bbox"], dtype=np.float64), 1.0)
                 for name, r in records.items()]
    else:
        box_list = read_box_list(path, "--boxes")
        categories = sorted({b.category_id for b in box_list.boxes if b.category_id is not None})
        if category_id is None and len(categories) > 1:
            raise BoxSourceError(
                f"--boxes {path}: boxes of {len(categories)} categories {first_items(categories)}"
                f": give --category-id (COCO's person is {COCO_PERSON})")
        if category_id is not None and category_id not in categories:
            raise BoxSourceError(f"--boxes {path}: no box has category_id {category_id} (the "
                                 f"file has {first_items(categories) or 'none'})")
        pairs = [(b.key, np.array(b.box), b.score) for b in box_list.boxes
                 if category_id is None or b.category_id == category_id]
    names = _picture_names_by_key(box_list, media)
    by_name: dict[str, list[tuple[np.ndarray, float]]] = {}
    unmatched = []
    for key, box, score in pairs:
        if key in names:
            by_name.setdefault(names[key], []).append((box, score))
        else:
            unmatched.append(key)
    if media.kind == "video" and media.frames:  # the container's count: warn, never drop
        unmatched += sorted({k for k, _, _ in pairs if k >= media.frames})
        if all(k >= media.frames for k, _, _ in pairs):
            by_name = {}
    shown = first_items(sorted(set(unmatched), key=str))
    what = (f"the frames of {media.path} (0 to {media.frames - 1})" if media.kind == "video"
            and media.frames else f"the pictures of {media.path}")
    if pairs and not by_name:
        raise BoxSourceError(f"--boxes {path}: none of its {len(pairs)} boxes names one of "
                             f"{what}; its names: {shown}; check the names (file names as in "
                             "the folder, without folders)")
    if not pairs:
        warn(f"--boxes {path} holds no boxes: every picture gets 0 people")
    if unmatched:
        warn(f"--boxes {path}: {len(unmatched)} boxes name no picture of the input and are not "
             f"used: {shown}")
    return GivenBoxes(by_name, f"boxes of {path} ({len(pairs) - len(unmatched)} used)")
