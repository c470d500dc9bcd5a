"""Reading a stage's training table and test list from ``DATASET.ROOT``, for both stages."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from yacs.config import CfgNode

from common.boxes import clean_box, keypoint_extent_boxes
from common.coco_data import coco_test_image_names, coco_training_table
from common.errors import ConfigError
from common.io import ImageReadError, check_images, set_max_image_pixels
from common.keypoint_config import config_keypoint_set
from common.keypoint_table import KeypointTable, dataset_root
from common.motion_data import (
    DataFormatError,
    keypoints_array,
    parse_motion_filename,
    read_keypoint_csv,
)

_LOG = logging.getLogger(__name__)
# Keypoints may lie this far outside their image, as a fraction of its width and height: people
# and hands partly out of frame are real. Further out means the annotations do not belong to
# these images (another resolution, x and y swapped) and training on them would be silent
# garbage.
OUTSIDE_MARGIN = 0.25
_SHOW = 5  # how many offending files an error message lists

# The reference's delete_list: positional rows of the real train_df.csv with bad annotations.
REFERENCE_DROP_ROWS: tuple[int, ...] = (
    317, 869, 873, 877, 911, 1216, 1559, 1560, 1562, 1566, 1575, 1577, 1578, 1582, 1597, 1606,
    1607, 1622, 1623, 1624, 1625, 1629, 3864, 3968, *range(4115, 4195),
)


COMPETITION_ROWS = 4195
COMPETITION_LAST_TAKE = "642-2-4-31-Z148_"  # rows 4115-4194, all dropped by the reference


def is_competition_table(image_names: Sequence[str]) -> bool:
    """The competition's train_df.csv, known by its shape and names: 4195 rows, the last 80
    from the take the reference drops whole. Only there do its positional drops mean anything."""
    names = [str(name) for name in image_names]
    return len(names) == COMPETITION_ROWS and all(
        name.startswith(COMPETITION_LAST_TAKE) for name in names[4115:]
    )


def _bad_images_message(bad: Sequence[tuple[int, str]], what: str) -> str:
    shown = "; ".join(reason for _, reason in bad[:_SHOW])
    more = f" ... ({len(bad)} in all)" if len(bad) > _SHOW else ""
    return f"{len(bad)} {what} images are missing or unreadable: {shown}{more}"


def _check_keypoints_near_image(
    names: Sequence[str],
    keypoints: np.ndarray,
    sizes: np.ndarray,
    rows: Sequence[int],
    source: Path,
    joint_names: Sequence[str],
) -> None:
    """Refuse keypoints further than ``OUTSIDE_MARGIN`` of the image outside it.

    Nearer ones are kept as they are, as the reference kept them: the crop box is clipped to
    the image and a target that falls outside the crop gets weight 0.
    """
    size = sizes[:, None, :].astype(np.float64)
    margin = OUTSIDE_MARGIN * size
    far = ((keypoints < -margin) | (keypoints >= size + margin)).any(axis=2)
    if not far.any():
        return
    bad_rows, bad_joints = np.nonzero(far)
    described = [
        f"{names[r]} (row {rows[r] + 1}): {joint_names[j]} at ({keypoints[r, j, 0]:.1f}, "
        f"{keypoints[r, j, 1]:.1f}) in a {sizes[r, 0]}x{sizes[r, 1]} image"
        for r, j in zip(bad_rows[:_SHOW], bad_joints[:_SHOW], strict=True)
    ]
    positions = sorted({int(rows[r]) for r in bad_rows})
    raise DataFormatError(
        f"{source}: {len(bad_rows)} keypoints in {len(positions)} images lie far outside their "
        f"image (more than {OUTSIDE_MARGIN:.0%} of its size): "
        + "; ".join(described)
        + ". Do the annotations belong to these images (same resolution, x before y)? To "
        f"train without these rows set DATASET.DROP_ROWS {positions[:20]}"
    )


def _check_boxes_usable(
    names: Sequence[str], keypoints: np.ndarray, sizes: np.ndarray, rows: Sequence[int],
    source: Path,
) -> None:
    """Refuse rows whose keypoint-extent box the official cleaning would reject (all keypoints
    on one point or one line, e.g. a row of zeros, or a box starting past the image's edge):
    such a sample would stop training in the middle of an epoch. Every bad row is listed."""
    boxes = keypoint_extent_boxes(keypoints)
    bad = np.array([r for r, (box, (width, height)) in enumerate(zip(boxes, sizes, strict=True))
                    if clean_box(box, width, height) is None], dtype=np.int64)  # fmt: skip
    if not bad.size:
        return
    described = [
        f"{names[r]} (row {rows[r] + 1}): keypoint box [x, y, w, h] = "
        f"{np.round(boxes[r], 1).tolist()} in a {sizes[r, 0]}x{sizes[r, 1]} image"
        for r in bad[:_SHOW]
    ]
    positions = [int(rows[r]) for r in bad]
    more = f" ... ({bad.size} in all)" if bad.size > _SHOW else ""
    raise DataFormatError(
        f"{source}: {bad.size} rows cannot be trained on, their keypoints span no box (all on "
        "one point or line, or off the image): " + "; ".join(described) + more
        + f". Fix the annotations or set DATASET.DROP_ROWS {positions[:20]}"
    )


def load_training_table(cfg: CfgNode, logger: logging.Logger | None = None) -> KeypointTable:
    """``TRAIN_CSV`` minus the positional rows ``DATASET.DROP_ROWS`` (and the reference's
    delete_list with ``DROP_REFERENCE_ROWS``), with every image checked before training starts.

    A missing or unreadable image stops here with the files named; with
    ``DATASET.SKIP_BAD_IMAGES`` its row is left out instead, logged, and listed in
    ``KeypointTable.skipped``. Keypoints far outside their image are refused (see
    ``OUTSIDE_MARGIN``), naming the file, the row and the keypoint.
    """
    logger = logger or _LOG
    set_max_image_pixels(cfg.DATASET.MAX_IMAGE_PIXELS)
    if cfg.DATASET.FORMAT == "coco":
        return coco_training_table(cfg, logger)
    root = dataset_root(cfg)
    names = config_keypoint_set(cfg).names
    csv_path = root / cfg.DATASET.TRAIN_CSV
    frame = read_keypoint_csv(csv_path, names)
    drop = {int(i) for i in cfg.DATASET.DROP_ROWS}
    outside = sorted(i for i in drop if not 0 <= i < len(frame))
    if outside:
        raise ConfigError(
            f"DATASET.DROP_ROWS {outside[:5]} lie outside {csv_path} ({len(frame)} rows): "
            "list positional rows of that file"
        )
    if cfg.DATASET.DROP_REFERENCE_ROWS and not is_competition_table(frame["image"]):
        logger.warning(
            "DATASET.DROP_REFERENCE_ROWS: %s (%d rows) is not the competition's train_df.csv, so "
            "the reference's %d row drops are not applied", csv_path, len(frame),
            len(REFERENCE_DROP_ROWS),
        )  # fmt: skip
    elif cfg.DATASET.DROP_REFERENCE_ROWS:
        logger.info("DATASET.DROP_REFERENCE_ROWS: %s is the competition's file; dropping the "
                    "reference's %d rows", csv_path, len(REFERENCE_DROP_ROWS))  # fmt: skip
        drop.update(REFERENCE_DROP_ROWS)
    rows = [i for i in range(len(frame)) if i not in drop]
    frame = frame.iloc[rows].reset_index(drop=True)
    image_dir = root / cfg.DATASET.TRAIN_IMAGE_DIR
    image_names = frame["image"].astype(str).tolist()
    paths = [image_dir / n for n in image_names]
    keypoints = keypoints_array(frame, names)
    sizes, bad = check_images(paths)
    skipped: list[str] = []
    if bad and not cfg.DATASET.SKIP_BAD_IMAGES:
        raise ImageReadError(
            f"{csv_path}: " + _bad_images_message(bad, "training")
            + ". Fix or remove them, or set DATASET.SKIP_BAD_IMAGES True to train without them"
        )
    if bad:
        skipped = [image_names[i] for i, _ in bad]
        logger.warning("DATASET.SKIP_BAD_IMAGES: leaving out %d of %d training images:\n%s",
                       len(bad), len(paths), "\n".join(reason for _, reason in bad))  # fmt: skip
        keep = sorted(set(range(len(paths))) - {i for i, _ in bad})
        image_names = [image_names[i] for i in keep]
        paths = [paths[i] for i in keep]
        keypoints, sizes, rows = keypoints[keep], sizes[keep], [rows[i] for i in keep]
    _check_keypoints_near_image(image_names, keypoints, sizes, rows, csv_path, names)
    _check_boxes_usable(image_names, keypoints, sizes, rows, csv_path)
    return KeypointTable(image_names, paths, keypoints, skipped)


def test_image_paths(cfg: CfgNode, names: Sequence[str]) -> list[Path]:
    """The paths of the test images ``names`` (``DATASET.TEST_IMAGE_DIR`` under the root)."""
    image_dir = dataset_root(cfg) / cfg.DATASET.TEST_IMAGE_DIR
    return [image_dir / name for name in names]


def read_truth_table(cfg: CfgNode, path: Path) -> KeypointTable:
    """The keypoints of the test images in the CSV ``path`` (``MODEL.NUM_JOINTS``' columns)."""
    names = config_keypoint_set(cfg).names
    frame = read_keypoint_csv(path, names)
    image_names = frame["image"].astype(str).tolist()
    return KeypointTable(
        image_names, test_image_paths(cfg, image_names), keypoints_array(frame, names)
    )


def load_truth_table(cfg: CfgNode) -> KeypointTable | None:
    """Ground truth of the test images (``TRUTH_CSV``), or None where it is not known (and for
    COCO sets, whose truth is scored by OKS from the test file itself)."""
    if cfg.DATASET.FORMAT == "coco":
        return None
    path = dataset_root(cfg) / cfg.DATASET.TRUTH_CSV
    if not path.is_file():
        return None
    return read_truth_table(cfg, path)


def truth_by_name(table: KeypointTable, names: Sequence[str], source: object) -> np.ndarray:
    """The keypoints (N, J, 2) of ``table`` for the images ``names``, in that order; refuses a
    name that ``table`` (read from ``source``) lacks."""
    row = {name: i for i, name in enumerate(table.names)}
    missing = [name for name in names if name not in row]
    if missing:
        raise DataFormatError(
            f"{len(missing)} test images have no ground truth in {source}, e.g. {missing[:3]}"
        )
    return table.keypoints[[row[name] for name in names]]


def test_image_names(cfg: CfgNode) -> list[str]:
    """The test images, in the row order of ``TEST_CSV`` (the submission template), each
    checked to exist and be readable before any prediction is made.

    A bad test image is an error even with ``DATASET.SKIP_BAD_IMAGES``: the submission needs a
    row for every template row, and a dropped or invented row would be a wrong submission
    that looks complete.
    """
    set_max_image_pixels(cfg.DATASET.MAX_IMAGE_PIXELS)
    if cfg.DATASET.FORMAT == "coco":
        return coco_test_image_names(cfg)
    root = dataset_root(cfg)
    path = root / cfg.DATASET.TEST_CSV
    names = config_keypoint_set(cfg).names
    image_names = read_keypoint_csv(path, names)["image"].astype(str).tolist()
    _, bad = check_images(test_image_paths(cfg, image_names))
    if bad:
        raise ImageReadError(
            f"{path}: " + _bad_images_message(bad, "test")
            + ". Every test image needs a prediction, so they are never skipped "
            "(DATASET.SKIP_BAD_IMAGES applies to training only): restore them"
        )
    return image_names


def split_groups(image_names: list[str]) -> list[str]:
    """The group of each image for group-aware splits: the subject id of a competition file
    name, or the folder of a ``<folder>/<frame>`` name (gesture clips)."""
    groups = []
    for name in image_names:
        if "/" in name:
            groups.append(name.split("/", 1)[0])
        else:
            groups.append(parse_motion_filename(name).subject)
    return groups


def table_groups(table: KeypointTable, by_subject: bool = True) -> tuple[list[str] | None, str]:
    """The groups that splits and folds keep together, and what they are: a COCO table's own
    (image or the file's subject field), else with ``by_subject`` the competition subject of
    each file name (``split_groups``), else none."""
    if table.groups is not None:
        return table.groups, table.grouped_by or "image"
    if by_subject:
        return split_groups(table.names), "subject (from the file names)"
    return None, "nothing"
