"""Pictures people would rather look at: skeletons, boxes, side-by-side truth, contact sheets.

Every picture says what its colours mean: the side-by-side panels carry a label strip
("prediction" with stage one's box, "truth"), box pictures a legend, and people pictures
(``draw_people``: each person in its own colour, by track id on video, unsure joints faint) a
legend that says so. Titles are drawn once,
in a strip above the picture, never over it. A contact sheet is a regular grid: every cell has
the same size, each picture letterboxed into it on a light background.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from common.keypoints import BUILTIN_SETS, load_keypoint_set

PRED_COLOUR = (0, 200, 255)  # BGR: orange-yellow for predictions
TRUTH_COLOUR = (80, 220, 80)  # green for ground truth
BOX_COLOUR = (255, 160, 0)  # azure: stage one's box
SHEET_BACKGROUND = (232, 232, 232)  # letterbox padding and gaps: light, never black
LABEL_BACKGROUND = (45, 45, 45)  # label strips: the colours read best on dark grey
TITLE_BACKGROUND = (255, 255, 255)
FONT = cv2.FONT_HERSHEY_SIMPLEX
STRIP_HEIGHT = 26
FONT_SCALE = 0.5
GAP = 6  # pixels between contact-sheet cells
PANEL_SIZE = 300  # side of each square side-by-side panel
# One colour per person (BGR), bright and far apart in hue, readable on most backgrounds.
PERSON_COLOURS = (
    (0, 200, 255), (255, 120, 0), (60, 220, 60), (220, 60, 255), (0, 80, 255),
    (255, 230, 0), (160, 255, 160), (130, 0, 255), (0, 255, 200), (255, 160, 200),
)
FAINT = 0.3  # opacity of joints (and their bones) scored below the threshold


def default_skeleton(num_joints: int) -> tuple[tuple[int, int], ...]:
    """The skeleton of the built-in set with ``num_joints`` joints; none (points only) else."""
    for name in BUILTIN_SETS:
        kp_set = load_keypoint_set(name)
        if kp_set.num_joints == num_joints:
            return kp_set.skeleton
    return ()


def draw_skeleton(
    image: np.ndarray,
    keypoints: np.ndarray,
    colour: tuple[int, int, int],
    box_xywh: np.ndarray | None = None,
    thickness: int | None = None,
    skeleton: Sequence[tuple[int, int]] | None = None,
) -> np.ndarray:
    """A copy of ``image`` with the skeleton of ``keypoints`` (J, 2) and an optional box;
    ``skeleton`` (index pairs, from the keypoint set) defaults to the built-in set's."""
    canvas = image.copy()
    height, width = canvas.shape[:2]
    thickness = thickness or max(1, round(max(height, width) / 400))
    if skeleton is None:
        skeleton = default_skeleton(len(keypoints))
    points = np.round(keypoints).astype(int)
    for a, b in skeleton:
        cv2.line(canvas, tuple(points[a]), tuple(points[b]), colour, thickness, cv2.LINE_AA)
    for point in points:
        cv2.circle(canvas, tuple(point), thickness + 1, colour, -1, cv2.LINE_AA)
    if box_xywh is not None:
        x, y, w, h = np.round(box_xywh).astype(int)
        cv2.rectangle(canvas, (x, y), (x + w, y + h), BOX_COLOUR, thickness)
    return canvas


def person_colour(number: int) -> tuple[int, int, int]:
    """The colour of person ``number`` (a track id, or 1, 2, ... in a picture)."""
    return PERSON_COLOURS[(int(number) - 1) % len(PERSON_COLOURS)]


def _draw_person(canvas: np.ndarray, keypoints: np.ndarray, sure: np.ndarray,
                 colour: tuple[int, int, int], thickness: int,
                 skeleton: Sequence[tuple[int, int]]) -> None:
    """Bones and joints in place: the sure ones opaque, the others at ``FAINT`` opacity."""
    points = np.round(keypoints).astype(int)
    faint = canvas.copy()
    for a, b in skeleton:  # a dark edge first, so the colour reads on any background
        target = canvas if sure[a] and sure[b] else faint
        cv2.line(target, tuple(points[a]), tuple(points[b]), (20, 20, 20), thickness + 2,
                 cv2.LINE_AA)  # fmt: skip
        cv2.line(target, tuple(points[a]), tuple(points[b]), colour, thickness, cv2.LINE_AA)
    for point, is_sure in zip(points, sure, strict=True):
        target = canvas if is_sure else faint
        cv2.circle(target, tuple(point), thickness + 2, (20, 20, 20), -1, cv2.LINE_AA)
        cv2.circle(target, tuple(point), thickness + 1, colour, -1, cv2.LINE_AA)
    changed = np.any(faint != canvas, axis=2)
    canvas[changed] = (FAINT * faint[changed] + (1 - FAINT) * canvas[changed]).astype(np.uint8)


def people_legend(width: int, threshold: float, tracked: bool) -> np.ndarray:
    """The legend strip(s) of ``draw_people``: what the colours and faint joints mean, in as
    many rows as ``width`` needs (the same for every frame of a video)."""
    who = "one colour and number per person" + (" (track id)" if tracked else "")
    items = [(who, (235, 235, 235), ""), (f"faint: joint score < {threshold:.2f}",
                                          (150, 150, 150), "line")]
    rows, row = [], []
    for item in items:
        if row and cv2.getTextSize(" ".join(t for t, _, _ in [*row, item]), FONT, FONT_SCALE,
                                   1)[0][0] + 60 > width:
            rows.append(row)
            row = []
        row.append(item)
    rows.append(row)
    rows = [[(_fit_text(text, width - 34), colour, mark) for text, colour, mark in row]
            if len(row) == 1 else row for row in rows]
    return np.concatenate([label_strip(width, row) for row in rows])


def draw_people(
    image: np.ndarray,
    people: Sequence[tuple[int, np.ndarray, np.ndarray, np.ndarray | None]],
    threshold: float,
    skeleton: Sequence[tuple[int, int]] | None = None,
    tracked: bool = False,
) -> np.ndarray:
    """``image`` with every person of ``people`` (number, keypoints (J, 2), joint scores (J,),
    box xywh or None) drawn in the colour of its number, the number at its box's corner,
    joints scored below ``threshold`` faint, and ``people_legend`` below. ``tracked``: the
    numbers are track ids (video)."""
    canvas = image.copy()
    height, width = canvas.shape[:2]
    thickness = max(1, round(max(height, width) / 400))
    for number, keypoints, scores, box in people:
        colour = person_colour(number)
        joints = skeleton if skeleton is not None else default_skeleton(len(keypoints))
        _draw_person(canvas, keypoints, np.asarray(scores) >= threshold, colour, thickness,
                     joints)  # fmt: skip
        corner = np.asarray(keypoints).min(axis=0) if box is None else np.asarray(box[:2])
        if box is not None:
            x, y, w, h = np.round(box).astype(int)
            cv2.rectangle(canvas, (x, y), (x + w, y + h), colour, thickness)
        x, y = (int(v) for v in np.round(corner))
        text = str(number)
        (text_w, text_h), _ = cv2.getTextSize(text, FONT, FONT_SCALE, 1)
        x, y = min(max(x, 0), max(width - text_w - 4, 0)), max(y, text_h + 4)
        cv2.rectangle(canvas, (x, y - text_h - 4), (x + text_w + 4, y), colour, -1)
        cv2.putText(canvas, text, (x + 2, y - 3), FONT, FONT_SCALE, (0, 0, 0), 1, cv2.LINE_AA)
    return np.concatenate([canvas, people_legend(width, threshold, tracked)])


def _fit_text(text: str, width: int) -> str:
    """``text`` shortened in the middle (``...``) until it fits ``width`` pixels."""
    def fits(candidate: str) -> bool:
        return cv2.getTextSize(candidate, FONT, FONT_SCALE, 1)[0][0] <= width

    if fits(text):
        return text
    keep = len(text)
    while keep > 1 and not fits(f"{text[: keep // 2]}...{text[len(text) - keep // 2 :]}"):
        keep -= 2
    return f"{text[: keep // 2]}...{text[len(text) - keep // 2 :]}"


def label_strip(width: int, items: Sequence[tuple[str, tuple[int, int, int], str]],
                background: tuple[int, int, int] = LABEL_BACKGROUND) -> np.ndarray:
    """A strip of legend entries ``(text, colour, mark)``, mark 'line', 'box' or '' (none)."""
    strip = np.full((STRIP_HEIGHT, max(1, width), 3), background, np.uint8)
    x, middle = 6, STRIP_HEIGHT // 2
    for text, colour, mark in items:
        if mark == "line":
            cv2.line(strip, (x, middle), (x + 16, middle), colour, 2, cv2.LINE_AA)
            cv2.circle(strip, (x + 16, middle), 3, colour, -1, cv2.LINE_AA)
            x += 22
        elif mark == "box":
            cv2.rectangle(strip, (x, middle - 6), (x + 16, middle + 6), colour, 2)
            x += 22
        cv2.putText(strip, text, (x, middle + 5), FONT, FONT_SCALE, colour, 1, cv2.LINE_AA)
        x += cv2.getTextSize(text, FONT, FONT_SCALE, 1)[0][0] + 16
    return strip


def title_strip(width: int, title: str) -> np.ndarray:
    """One line of black text on white, shortened to fit."""
    strip = np.full((STRIP_HEIGHT, max(1, width), 3), TITLE_BACKGROUND, np.uint8)
    text = _fit_text(title, width - 12)
    cv2.putText(strip, text, (6, STRIP_HEIGHT // 2 + 5), FONT, FONT_SCALE, (0, 0, 0), 1,
                cv2.LINE_AA)  # fmt: skip
    return strip


def _square_crop(image: np.ndarray, points: np.ndarray) -> np.ndarray:
    """The square around ``points`` (with a margin), moved inside the image where it fits and
    padded with the sheet colour where the image is smaller, so every panel has one shape."""
    height, width = image.shape[:2]
    centre = (points.min(0) + points.max(0)) / 2
    side = int(round(max(np.ptp(points, 0)) * 1.3 + 20))
    x0, y0 = (int(round(c - side / 2)) for c in centre)
    x0 = min(max(x0, 0), max(width - side, 0)) if side <= width else (width - side) // 2
    y0 = min(max(y0, 0), max(height - side, 0)) if side <= height else (height - side) // 2
    square = np.full((side, side, 3), SHEET_BACKGROUND, np.uint8)
    sx0, sy0 = max(x0, 0), max(y0, 0)
    sx1, sy1 = min(x0 + side, width), min(y0 + side, height)
    square[sy0 - y0 : sy1 - y0, sx0 - x0 : sx1 - x0] = image[sy0:sy1, sx0:sx1]
    return square


def side_by_side(
    image: np.ndarray,
    pred: np.ndarray,
    truth: np.ndarray | None = None,
    box_xywh: np.ndarray | None = None,
    title: str = "",
    crop_to_person: bool = True,
    skeleton: Sequence[tuple[int, int]] | None = None,
) -> np.ndarray:
    """Prediction (left) and ground truth (right, when known), cropped around the person, each
    panel labelled; ``title`` goes in a strip above."""
    panels = [draw_skeleton(image, pred, PRED_COLOUR, box_xywh, skeleton=skeleton)]
    if truth is not None:
        panels.append(draw_skeleton(image, truth, TRUTH_COLOUR, skeleton=skeleton))
    if crop_to_person:
        points = pred if truth is None else np.concatenate([pred, truth])
        if box_xywh is not None:
            points = np.concatenate([points, [box_xywh[:2], box_xywh[:2] + box_xywh[2:]]])
        panels = [_square_crop(panel, points) for panel in panels]
    panels = [
        cv2.resize(p, (max(1, round(p.shape[1] * PANEL_SIZE / p.shape[0])), PANEL_SIZE),
                   interpolation=cv2.INTER_AREA)
        for p in panels
    ]  # fmt: skip
    labels = [[("prediction", PRED_COLOUR, "line")]
              + ([("stage one box", BOX_COLOUR, "box")] if box_xywh is not None else [])]
    if truth is not None:
        labels.append([("truth", TRUTH_COLOUR, "line")])
    panels = [np.concatenate([label_strip(p.shape[1], items), p]) for p, items in
              zip(panels, labels, strict=True)]  # fmt: skip
    separator = np.full((panels[0].shape[0], GAP // 2, 3), SHEET_BACKGROUND, np.uint8)
    picture = np.concatenate([part for panel in panels for part in (separator, panel)][1:],
                             axis=1)  # fmt: skip
    if title:
        picture = np.concatenate([title_strip(picture.shape[1], title), picture])
    return picture


def letterbox(picture: np.ndarray, width: int, height: int) -> np.ndarray:
    """``picture`` scaled to fit ``width`` x ``height`` whole, centred on the sheet colour."""
    scale = min(width / picture.shape[1], height / picture.shape[0])
    size = (max(1, round(picture.shape[1] * scale)), max(1, round(picture.shape[0] * scale)))
    resized = cv2.resize(picture, size, interpolation=cv2.INTER_AREA)
    cell = np.full((height, width, 3), SHEET_BACKGROUND, np.uint8)
    top, left = (height - size[1]) // 2, (width - size[0]) // 2
    cell[top : top + size[1], left : left + size[0]] = resized
    return cell


def contact_sheet(
    pictures: list[np.ndarray], columns: int = 4, cell_width: int | None = None,
    titles: Sequence[str] | None = None,
) -> np.ndarray:
    """A regular grid: every cell ``cell_width`` wide (default: the median picture's width, so
    labels keep their size) and as tall as the median picture's shape asks, each picture
    letterboxed into it, with its title (if given) above it."""
    if not pictures:
        raise ValueError("no pictures for a contact sheet")
    if titles is not None and len(titles) != len(pictures):
        raise ValueError(f"{len(titles)} titles for {len(pictures)} pictures")
    columns = max(1, min(columns, len(pictures)))
    if cell_width is None:
        cell_width = int(np.median([p.shape[1] for p in pictures]))
    aspect = float(np.median([p.shape[0] / p.shape[1] for p in pictures]))
    cell_height = max(1, round(cell_width * aspect))
    cells = []
    for index, picture in enumerate(pictures):
        cell = letterbox(picture, cell_width, cell_height)
        if titles is not None:
            cell = np.concatenate([title_strip(cell_width, titles[index]), cell])
        cells.append(cell)
    full_height = cells[0].shape[0]
    rows = -(-len(cells) // columns)
    sheet = np.full((rows * (full_height + GAP) + GAP, columns * (cell_width + GAP) + GAP, 3),
                    SHEET_BACKGROUND, np.uint8)  # fmt: skip
    for index, cell in enumerate(cells):
        row, column = divmod(index, columns)
        top, left = GAP + row * (full_height + GAP), GAP + column * (cell_width + GAP)
        sheet[top : top + full_height, left : left + cell_width] = cell
    return sheet


def draw_boxes(
    image: np.ndarray, pred_xywh: np.ndarray, truth_xywh: np.ndarray | None = None
) -> np.ndarray:
    """A copy of ``image`` with the predicted box (orange) and the true box (green) drawn, and
    a legend strip below."""
    canvas = image.copy()
    thickness = max(1, round(max(canvas.shape[:2]) / 400))
    for box, colour in ((truth_xywh, TRUTH_COLOUR), (pred_xywh, PRED_COLOUR)):
        if box is not None:
            x, y, w, h = np.round(box).astype(int)
            cv2.rectangle(canvas, (x, y), (x + w, y + h), colour, thickness)
    items = [("predicted box", PRED_COLOUR, "box")]
    if truth_xywh is not None:
        items.append(("true box", TRUTH_COLOUR, "box"))
    return np.concatenate([canvas, label_strip(canvas.shape[1], items)])


def write_training_samples(writer, epoch: int, pictures: list[np.ndarray]) -> Path | None:
    """Tile one epoch's validation pictures, save them as ``<TensorBoard dir>/samples/
    epoch_NNN.jpg`` next to the curves, and add them to TensorBoard as ``valid/samples``."""
    if writer is None or not pictures:
        return None
    sheet = contact_sheet(pictures, columns=min(4, len(pictures)))
    path = Path(writer.logdir) / "samples" / f"epoch_{epoch:03d}.jpg"
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), sheet):
        raise OSError(f"could not write {path}")
    writer.add_image("valid/samples", sheet[:, :, ::-1].copy(), epoch, dataformats="HWC")
    return path
