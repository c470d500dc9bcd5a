"""What ``tools/infer.py`` writes, and how it writes it so that a failed run leaves nothing.

Pictures keep their input's file name (``a.jpg`` and ``a.png`` stay two pictures); a video is
drawn into ``<video name>_keypoints.mp4``. Everything goes to a temporary folder beside the
output folder and is moved into place only when the run ends well (``staged_folder``).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from common.errors import UserError
from common.keypoints import KeypointSet, coordinate_columns
from common.media import Media
from common.visualize import draw_people
from stages.multi_person import Person, PicturePeople

RESULT_FILES = ("keypoints.json", "keypoints.csv")
PICTURES = "pictures"


def _video_name(media: Media) -> str:
    return f"{media.path.stem}_keypoints.mp4"


def check_out_folder(out: Path) -> None:
    """``out`` may be new, empty, or an earlier infer output (its results are replaced); any
    other folder or a file is refused before any work is done."""
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file: give a folder for the results")
    if out.is_dir() and any(out.iterdir()) and not (out / RESULT_FILES[0]).is_file():
        raise UserError(f"--out {out} is a folder holding other files (no keypoints.json of an "
                        "earlier infer run): give a new or empty folder")


def _existing_ancestor(path: Path) -> Path:
    path = path.absolute()
    while not path.exists():
        path = path.parent
    return path


@contextlib.contextmanager
def staged_folder(out: Path) -> Iterator[Path]:
    """A temporary folder to write into; on success its contents replace the results of an
    earlier run in ``out`` (made if needed), on any failure it is removed and ``out`` is left
    as it was."""
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-",
                                    dir=_existing_ancestor(out.parent)))
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    try:
        out.mkdir(parents=True, exist_ok=True)
        old = [out / name for name in RESULT_FILES] + [out / PICTURES]
        old += list(out.glob("*_keypoints.mp4"))
        for path in old:
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()
        for item in staging.iterdir():
            os.replace(item, out / item.name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def person_entry(where: dict, person: Person) -> dict:
    """One person as a keypoints.json entry (COCO keypoint results, plus ``bbox``)."""
    triples = np.concatenate([person.keypoints, person.keypoint_scores[:, None]], axis=1)
    if not np.isfinite(triples).all():
        raise UserError(f"{where}: the model predicted NaN or infinite keypoints (broken "
                        "weights?); nothing was written")
    entry = {**where, "bbox": [float(v) for v in person.box],
             "keypoints": triples.ravel().tolist(), "score": float(person.score)}
    if person.track_id is not None:
        entry["track_id"] = int(person.track_id)
    return entry


class PeopleWriter:
    """Draws each picture as it comes and keeps its people for keypoints.json and .csv."""

    def __init__(self, folder: Path, media: Media, keypoint_set: KeypointSet,
                 faint_below: float) -> None:
        self.folder, self.media, self.keypoint_set = folder, media, keypoint_set
        self.faint_below = faint_below
        self.entries: list[dict] = []
        self.pictures = 0
        self.video = None
        if media.kind != "video":
            (folder / PICTURES).mkdir()

    def _where(self, name: str) -> dict:
        if self.media.kind == "video":
            return {"frame": int(name.split("_")[1])}
        return {"file_name": name}

    def add(self, picture: PicturePeople) -> None:
        drawn_people = []
        for number, person in enumerate(picture.people, start=1):
            self.entries.append(person_entry(self._where(picture.name), person))
            drawn_people.append((number if person.track_id is None else person.track_id,
                                 person.keypoints, person.keypoint_scores, person.box))
        drawn = draw_people(picture.image, drawn_people, self.faint_below,
                            self.keypoint_set.skeleton, tracked=self.media.kind == "video")
        self.pictures += 1
        if self.media.kind != "video":
            path = self.folder / PICTURES / picture.name
            if not cv2.imwrite(str(path), drawn):
                raise UserError(f"could not write the picture {path}: OpenCV cannot encode "
                                f"'{path.suffix}' files here")
            return
        if self.video is None:
            size = (drawn.shape[1], drawn.shape[0])
            self.video = cv2.VideoWriter(str(self.folder / _video_name(self.media)),
                                         cv2.VideoWriter_fourcc(*"mp4v"), self.media.fps, size)
        self.video.write(drawn)

    def close(self) -> dict:
        """Write keypoints.json and keypoints.csv; a summary of what was written."""
        if self.video is not None:
            self.video.release()
        key = "frame" if self.media.kind == "video" else "file_name"
        (self.folder / "keypoints.json").write_text(json.dumps(self.entries), encoding="utf-8")
        table = pd.DataFrame(
            [[e[key], e["score"], *np.asarray(e["keypoints"]).reshape(-1, 3)[:, :2].ravel()]
             for e in self.entries],
            columns=["image", "score", *coordinate_columns(self.keypoint_set.names)])
        table.to_csv(self.folder / "keypoints.csv", index=False)
        return {"kind": self.media.kind, "people": len(self.entries), "pictures": self.pictures,
                "video": None if self.video is None else _video_name(self.media)}
