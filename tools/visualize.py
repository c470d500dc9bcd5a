"""Draw predicted skeletons (and boxes) per image, truth beside them, and a contact sheet of
the worst images: ``python tools/visualize.py --pred result.csv --images DIR --out DIR
[--truth test_df.csv] [--boxes test_annotation.pkl] [--worst 12] [--limit N]``."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import _bootstrap  # noqa: F401
import cv2
import numpy as np
import pandas as pd

from common.box_files import read_box_annotations
from common.cli import ToolParser, run_tool
from common.errors import MissingFileError
from common.io import atomic_path, read_image
from common.keypoints import names_from_columns
from common.metrics import per_image_rmse
from common.motion_data import keypoints_array, read_keypoint_csv
from common.progress import progress
from common.visualize import contact_sheet, side_by_side, title_strip


def _names_for(csv_path: Path) -> tuple[str, ...]:
    if not csv_path.is_file():
        raise MissingFileError(f"prediction CSV not found: {csv_path}; check --pred")
    columns = pd.read_csv(csv_path, nrows=0).columns
    return names_from_columns(list(columns))


def _write_jpg(path: Path, image: np.ndarray) -> None:
    with atomic_path(path) as tmp:
        ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 90])
        if not ok:
            raise RuntimeError(f"could not encode {path}")
        tmp.write_bytes(data.tobytes())


def draw_results(
    pred_csv: Path,
    image_dir: Path,
    out_dir: Path,
    truth_csv: Path | None = None,
    box_file: Path | None = None,
    worst: int = 12,
    limit: int | None = None,
) -> dict:
    """Per-image pictures (the ``limit`` worst when truth is known, else the first ``limit``)
    and ``worst_contact_sheet.jpg``; returns the paths and the worst images' errors."""
    names = _names_for(pred_csv)
    pred_df = read_keypoint_csv(pred_csv, names)
    pred = dict(zip(pred_df["image"], keypoints_array(pred_df, names), strict=True))
    truth = None
    if truth_csv is not None:
        truth_df = read_keypoint_csv(truth_csv, names)
        truth = dict(zip(truth_df["image"], keypoints_array(truth_df, names), strict=True))
    boxes = read_box_annotations(box_file) if box_file is not None else {}
    images = list(pred)
    errors: dict[str, float] = {}
    if truth is not None:
        common = [n for n in images if n in truth]
        values = per_image_rmse(
            np.stack([pred[n] for n in common]), np.stack([truth[n] for n in common])
        )
        errors = dict(zip(common, map(float, values), strict=True))
        images = sorted(common, key=errors.get, reverse=True)
    chosen = images if limit is None else images[:limit]
    out_dir.mkdir(parents=True, exist_ok=True)
    file_names = picture_names(chosen)
    pictures: dict[str, np.ndarray] = {}
    titles = {n: f"{n}  RMSE {errors[n]:.1f} px" if n in errors else n for n in chosen}
    for name in progress(chosen, "drawing", unit="pictures"):
        image = read_image(image_dir / name)
        box = np.asarray(boxes[name]["bbox"]) if name in boxes else None
        pictures[name] = side_by_side(
            image, pred[name], None if truth is None else truth.get(name), box
        )
        titled = np.concatenate([title_strip(pictures[name].shape[1], titles[name]),
                                 pictures[name]])  # fmt: skip
        _write_jpg(out_dir / file_names[name], titled)
    sheet_names = chosen[:worst]
    sheet = out_dir / "worst_contact_sheet.jpg"
    if sheet_names:
        _write_jpg(sheet, contact_sheet([pictures[n] for n in sheet_names], columns=4,
                                        titles=[titles[n] for n in sheet_names]))  # fmt: skip
    return {
        "out_dir": str(out_dir),
        "contact_sheet": str(sheet),
        "worst": [(n, errors.get(n)) for n in sheet_names],
    }


def picture_names(names: list[str]) -> dict[str, str]:
    """``<stem>_pred.jpg`` per image; images that share a stem (``a.jpg``, ``a.png``) keep their
    extension in the name (``a_jpg_pred.jpg``, ``a_png_pred.jpg``), so no picture replaces
    another."""
    stems = Counter(Path(name).stem for name in names)
    result = {}
    for name in names:
        path = Path(name)
        extension = f"_{path.suffix[1:]}" if stems[path.stem] > 1 else ""
        result[name] = f"{path.stem}{extension}_pred.jpg"
    return result


def main(argv: list[str] | None = None) -> dict:
    parser = ToolParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pred", type=Path, required=True)
    parser.add_argument("--images", type=Path, required=True, help="folder of the test images")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--truth", type=Path)
    parser.add_argument("--boxes", type=Path, help="stage one's test_annotation.pkl")
    parser.add_argument("--worst", type=int, default=12, help="images on the contact sheet")
    parser.add_argument("--limit", type=int, help="draw only this many images")
    args = parser.parse_args(argv)
    result = draw_results(
        args.pred, args.images, args.out, args.truth, args.boxes, args.worst, args.limit
    )
    print(f"pictures in {result['out_dir']}; contact sheet of the worst: {result['contact_sheet']}")
    return result


if __name__ == "__main__":
    run_tool(main)
