"""Images in, people out: the one loop that finds the people of each picture (a box source)
and their keypoints (stage two), for ``tools/infer.py`` and any other caller.

A box source gives each picture's boxes with scores: boxes a user gave (``GivenBoxes``, from a
JSON box list or a stage-one box file), a model run on the pictures (``ModelBoxes``: stage
one's single box, or a multi-person detector), or the whole picture (``WholePicture``, what
a top-down model sees when nothing says where the people are). Each picture comes out as a
``PicturePeople``: per person the box, its score, the keypoints (J, 2) in the picture's pixels,
their scores (J,) and the person's score; a tracker or a filter takes these as they come.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from yacs.config import CfgNode

from common.box_files import BoxList, read_box_annotations, read_box_list
from common.boxes import clean_box
from common.errors import UserError
from common.media import Media
from common.motion_data import first_items
from HRNet_keypoint import engine as keypoint_engine
from HRNet_keypoint.coco_results import rescore

COCO_PERSON = 1


@dataclass
class Person:
    """One person: box [x, y, w, h] and its score, keypoints (J, 2) in the picture's pixels,
    keypoint scores (J,) (heatmap maxima) and the person's score (box score x mean keypoint
    score above ``TEST.IN_VIS_THRE``). ``track_id`` is for a tracker to set."""

    box: np.ndarray
    box_score: float
    keypoints: np.ndarray
    keypoint_scores: np.ndarray
    score: float
    track_id: int | None = None


@dataclass
class PicturePeople:
    """A picture (a file name, or ``frame_<n>`` of a video), its BGR pixels and its people."""

    name: str
    image: np.ndarray
    people: list[Person] = field(default_factory=list)


Boxes = list[tuple[np.ndarray, float]]  # one picture's boxes [x, y, w, h] with scores


class BoxSourceError(UserError):
    """Boxes that cannot be used with these inputs."""


class WholePicture:
    """Every picture is one box: its whole frame."""

    describe = "the whole picture (no --boxes or box model given)"

    def boxes(self, names: Sequence[str], images: Sequence[np.ndarray]) -> list[Boxes]:
        return [[(np.array([0.0, 0.0, im.shape[1], im.shape[0]]), 1.0)] for im in images]


class ModelBoxes:
    """Boxes from a model run on the pictures: ``predict(names, images)`` gives each
    picture's boxes with scores (stage one: one box of score 1)."""

    def __init__(self, predict: Callable[[Sequence[str], Sequence[np.ndarray]], list[Boxes]],
                 describe: str) -> None:
        self._predict = predict
        self.describe = describe

    def boxes(self, names: Sequence[str], images: Sequence[np.ndarray]) -> list[Boxes]:
        return self._predict(names, images)


class GivenBoxes:
    """Boxes read from a file, matched to the pictures by name."""

    def __init__(self, by_name: dict[str, Boxes], describe: str) -> None:
        self._by_name = by_name
        self.describe = describe

    def boxes(self, names: Sequence[str], images: Sequence[np.ndarray]) -> list[Boxes]:
        return [self._by_name.get(name, []) for name in names]


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
    by_name: dict[str, Boxes] = {}
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


def _select(boxes: Boxes, image: np.ndarray, min_score: float,
            max_people: int | None) -> tuple[Boxes, int]:
    """Boxes scoring at least ``min_score``, best first, at most ``max_people``, clipped to
    the picture; and how many lay outside it."""
    height, width = image.shape[:2]
    kept, outside = [], 0
    for box, score in sorted(boxes, key=lambda item: -item[1]):
        if score < min_score:
            continue
        if clean_box(box, width, height) is None:
            outside += 1
            continue
        kept.append((np.asarray(box, dtype=np.float64), float(score)))
    return kept[:max_people] if max_people else kept, outside


def predict_people(chunks: Iterable[list[tuple[str, np.ndarray]]], source, model: torch.nn.Module,
                   cfg: CfgNode, device: torch.device, min_score: float = 0.0,
                   max_people: int | None = None,
                   outside: list[str] | None = None) -> Iterator[PicturePeople]:
    """Each picture of ``chunks`` (lists of (name, BGR image)) with its people, in order.

    ``source`` gives the boxes (``.boxes(names, images)``); those below ``min_score`` are
    dropped, the best ``max_people`` kept. Boxes that miss their picture are left out and their
    pictures' names added to ``outside``.
    """
    for chunk in chunks:
        names, images = [n for n, _ in chunk], [im for _, im in chunk]
        pictures = [PicturePeople(n, im) for n, im in chunk]
        chosen = []
        for index, boxes in enumerate(source.boxes(names, images)):
            kept, missed = _select(boxes, images[index], min_score, max_people)
            if missed and outside is not None:
                outside.append(names[index])
            chosen += [(index, box, score) for box, score in kept]
        if chosen:
            coords, scores = keypoint_engine.predict_boxes_scored(
                model, cfg, [Path(names[i]) for i, _, _ in chosen],
                np.array([box for _, box, _ in chosen]), device,
                images=[images[i] for i, _, _ in chosen], desc="keypoints")
            person_scores = rescore(np.array([s for _, _, s in chosen]), scores,
                                    cfg.TEST.IN_VIS_THRE)
            for k, (i, box, score) in enumerate(chosen):
                pictures[i].people.append(Person(box, score, coords[k], scores[k],
                                                 float(person_scores[k])))
        yield from pictures
