"""Score a prediction CSV against the truth, as the competitions did.

Keypoints (motion, or any keypoint set of common/keypoints.py):
    python tools/score.py --pred result.csv --truth data/synthetic/motion/test_df.csv
prints per-keypoint RMSE, the 10 worst images, and last ``rmse: <value>``; ``--plot FILE.png``
also draws the per-keypoint RMSE as a bar chart.

Gestures (the truth has ``Image_Path`` and ``pose_id``, the prediction ``Image_Path`` then
``Label_<pose_id>`` probabilities):
    python tools/score.py --pred submission.csv --truth test_answer.csv
prints the accuracy and last ``logloss: <value>``.

COCO keypoint results (any keypoint set; sigmas from ``--keypoints``, else from the built-in set
with the truth category's keypoint names; a truth that matches none is refused, never scored
with guessed sigmas):
    python tools/score.py --pred keypoints_test_results.json --truth person_keypoints_test.json
prints OKS AP/AR (pycocotools), PCK@0.05/0.1 of the box size and the end-point error per
keypoint, where the sigmas came from, and last ``ap: <value>``. Keypoint CSVs also get PCK and
end-point error (boxes: the truth's keypoint extents).

Rows are matched by image name, so their order does not matter. A prediction that cannot be
scored (wrong columns, missing or extra rows, NaN) is refused with exit code 2.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import _bootstrap  # noqa: F401
import numpy as np
import pandas as pd

from common.boxes import keypoint_extent_boxes
from common.cli import ToolParser, run_tool
from common.coco_eval import AP_NAMES, PCK_THRESHOLDS, pck_and_epe, score_coco_files
from common.keypoints import KeypointSetError, names_from_columns
from common.metrics import (
    multiclass_logloss,
    per_image_rmse,
    per_keypoint_rmse,
    rmse,
)
from common.motion_data import (
    IMAGE_COLUMN,
    DataFormatError,
    check_utf8,
    keypoints_array,
    numeric_columns,
    read_keypoint_csv,
    validate_submission,
)

GESTURE_ID_COLUMN = "Image_Path"
GESTURE_LABEL_COLUMN = "pose_id"
LABEL_PREFIX = "Label_"
WORST_COUNT = 10


def _header(path: Path) -> list[str]:
    if path.is_dir():
        raise DataFormatError(f"{path} is a folder; expected a result CSV or JSON file")
    if not path.is_file():
        raise DataFormatError(f"file not found: {path}")
    check_utf8(path)
    with open(path, newline="", encoding="utf-8-sig") as handle:
        header = next(csv.reader(handle), None)
    if not header:
        raise DataFormatError(f"{path}: empty file (expected a header line)")
    return [name.strip() for name in header]


def _read_table(path: Path, id_column: str) -> pd.DataFrame:
    _header(path)
    try:
        table = pd.read_csv(
            path, dtype={id_column: str}, encoding="utf-8-sig", keep_default_na=False
        )  # every name as written: no "NA" or "null" read as missing
    except (pd.errors.ParserError, ValueError) as error:
        raise DataFormatError(f"{path}: cannot parse as CSV: {error}") from error
    table.columns = [str(name).strip() for name in table.columns]
    return table


def is_gesture_truth(truth_path: str | Path) -> bool:
    """Whether a truth file is the gesture answer sheet (``Image_Path``, ``pose_id``)."""
    header = _header(Path(truth_path))
    return GESTURE_ID_COLUMN in header and GESTURE_LABEL_COLUMN in header


def score_keypoints(pred_path: str | Path, truth_path: str | Path) -> dict:
    """RMSE of a keypoint prediction: overall, per keypoint and per image (worst first).

    The keypoint names (any keypoint set) follow from the truth's columns.
    """
    truth_path, pred_path = Path(truth_path), Path(pred_path)
    try:
        names = names_from_columns(_header(truth_path))
    except ValueError as error:
        raise DataFormatError(f"{truth_path}: {error}") from error
    truth = read_keypoint_csv(truth_path, names)
    pred = _read_table(pred_path, IMAGE_COLUMN)
    validate_submission(pred, truth, source=str(pred_path))
    coordinates = numeric_columns(pred, list(truth.columns[1:]), str(pred_path))
    coordinates.insert(0, IMAGE_COLUMN, pred[IMAGE_COLUMN].astype(str))
    aligned = coordinates.set_index(IMAGE_COLUMN).loc[truth[IMAGE_COLUMN]].reset_index()
    pred_keypoints = keypoints_array(aligned, names)
    truth_keypoints = keypoints_array(truth, names)
    image_errors = per_image_rmse(pred_keypoints, truth_keypoints)
    extents = keypoint_extent_boxes(truth_keypoints)
    order = np.argsort(-image_errors, kind="stable")
    images = truth[IMAGE_COLUMN].tolist()
    return {
        "rmse": rmse(pred_keypoints, truth_keypoints),
        "images": len(images),
        "per_keypoint": dict(
            zip(names, per_keypoint_rmse(pred_keypoints, truth_keypoints).tolist(), strict=True)
        ),
        "per_image": dict(zip(images, image_errors.tolist(), strict=True)),
        "worst": [(images[i], float(image_errors[i])) for i in order[:WORST_COUNT]],
        **pck_and_epe(pred_keypoints, truth_keypoints, extents[:, 2:].max(axis=1)),
        "names": list(names),
    }


def _label_columns(columns: list[str], source: Path) -> dict[int, int]:
    """pose_id -> column position among the probability columns."""
    positions = {}
    for position, name in enumerate(columns):
        suffix = name[len(LABEL_PREFIX) :] if name.startswith(LABEL_PREFIX) else ""
        if not suffix.lstrip("-").isdigit():
            raise DataFormatError(
                f"{source}: column {position + 2} is {name!r}; expected '{GESTURE_ID_COLUMN}' "
                f"then '{LABEL_PREFIX}<pose_id>' probability columns"
            )
        positions[int(suffix)] = position
    if not positions:
        raise DataFormatError(f"{source}: no '{LABEL_PREFIX}<pose_id>' probability columns")
    return positions


SUM_TOLERANCE = 1e-3  # how far a row's probabilities may sum from 1 (rounding in the file)


def _check_distributions(
    values: np.ndarray, ids: pd.Series, columns: list[str], pred: pd.DataFrame, source: Path
) -> None:
    """Refuse rows that are not probability distributions, naming the first bad row; a score
    of a renormalised row would hide a broken submission."""
    bad_cells = ~np.isfinite(values) | (values < 0) | (values > 1)
    if bad_cells.any():
        row, column = (int(v) for v in np.argwhere(bad_cells)[0])
        got = pred[columns[column]].iloc[row]
        got_text = "an empty cell" if got == "" else repr(got) if isinstance(got, str) else got
        raise DataFormatError(
            f"{source}: row {row + 1} ({ids.iloc[row]}), column {columns[column]!r}: expected a "
            f"probability between 0 and 1, got {got_text}"
        )
    sums = values.sum(axis=1)
    off = np.abs(sums - 1.0) > SUM_TOLERANCE
    if off.any():
        row = int(np.flatnonzero(off)[0])
        raise DataFormatError(
            f"{source}: row {row + 1} ({ids.iloc[row]}): probabilities sum to {sums[row]:.6g}, "
            f"not 1 (tolerance {SUM_TOLERANCE}; {int(off.sum())} such rows); write one "
            "probability distribution per row"
        )


def score_gesture(pred_path: str | Path, truth_path: str | Path) -> dict:
    """Multiclass log loss and accuracy of a gesture submission against ``test_answer.csv``."""
    truth_path, pred_path = Path(truth_path), Path(pred_path)
    truth = _read_table(truth_path, GESTURE_ID_COLUMN)
    for column in (GESTURE_ID_COLUMN, GESTURE_LABEL_COLUMN):
        if column not in truth.columns:
            raise DataFormatError(f"{truth_path}: missing column {column!r}")
    labels = pd.to_numeric(truth[GESTURE_LABEL_COLUMN], errors="coerce")
    bad = labels.isna() | (labels != labels.round())
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise DataFormatError(
            f"{truth_path}: row {row + 1}, column {GESTURE_LABEL_COLUMN!r}: expected an integer "
            f"pose id, got {truth[GESTURE_LABEL_COLUMN].iloc[row]!r}"
        )
    truth_ids = truth[GESTURE_ID_COLUMN].astype(str)
    if truth_ids.duplicated().any():
        first = truth_ids[truth_ids.duplicated()].iloc[0]
        raise DataFormatError(f"{truth_path}: duplicated {GESTURE_ID_COLUMN} {first!r}")

    pred = _read_table(pred_path, GESTURE_ID_COLUMN)
    columns = list(pred.columns)
    if not columns or columns[0] != GESTURE_ID_COLUMN:
        raise DataFormatError(
            f"{pred_path}: the first column must be {GESTURE_ID_COLUMN!r}, got "
            f"{columns[0] if columns else None!r}"
        )
    if len(set(columns)) != len(columns):
        raise DataFormatError(f"{pred_path}: duplicated columns")
    positions = _label_columns(columns[1:], pred_path)
    unknown = sorted(set(labels.astype(int)) - set(positions))
    if unknown:
        raise DataFormatError(
            f"{pred_path}: no probability column for true pose ids {unknown[:5]} "
            f"(expected columns {LABEL_PREFIX}<pose_id>)"
        )
    pred_ids = pred[GESTURE_ID_COLUMN].astype(str)
    duplicated = pred_ids[pred_ids.duplicated()].unique().tolist()
    if duplicated:
        raise DataFormatError(f"{pred_path}: duplicated rows for {duplicated[:5]}")
    missing = sorted(set(truth_ids) - set(pred_ids))
    if missing:
        raise DataFormatError(f"{pred_path}: {len(missing)} missing rows: {missing[:5]}")
    extra = sorted(set(pred_ids) - set(truth_ids))
    if extra:
        raise DataFormatError(f"{pred_path}: {len(extra)} rows not in the truth: {extra[:5]}")
    values = pred[columns[1:]].apply(pd.to_numeric, errors="coerce").to_numpy(np.float64)
    _check_distributions(values, pred_ids, columns[1:], pred, pred_path)
    row_of = {name: index for index, name in enumerate(pred_ids)}
    probs = values[[row_of[name] for name in truth_ids]]
    label_index = np.array([positions[int(label)] for label in labels])
    return {
        "logloss": multiclass_logloss(probs, label_index),
        "accuracy": float(np.mean(np.argmax(probs, axis=1) == label_index)),
        "images": len(truth_ids),
        "classes": len(positions),
    }


def _print_keypoints(result: dict) -> None:
    print(f"images: {result['images']}")
    print("per-keypoint RMSE (pixels):")
    for name, value in result["per_keypoint"].items():
        print(f"  {name:<16} {value:10.4f}")
    print(f"worst {len(result['worst'])} images (RMSE, pixels):")
    for name, value in result["worst"]:
        print(f"  {name:<40} {value:10.4f}")
    _print_pck(result)
    print(f"rmse: {result['rmse']:.6f}")


def _print_pck(result: dict) -> None:
    header = "".join(f"  PCK@{t:<6}" for t in PCK_THRESHOLDS)
    print(f"per-keypoint end-point error (pixels) and PCK of the box size:\n  {'':<16} "
          f"{'EPE':>10}{header}")
    for index, name in enumerate(result["names"]):
        pcks = "".join(f"  {result[f'per_keypoint_pck@{t}'][index]:10.4f}" for t in PCK_THRESHOLDS)
        print(f"  {name:<16} {result['per_keypoint_epe'][index]:10.4f}{pcks}")
    for threshold in PCK_THRESHOLDS:
        print(f"pck@{threshold}: {result[f'pck@{threshold}']:.6f}")
    print(f"epe: {result['epe']:.6f}")


def _print_coco(result: dict) -> None:
    print(f"people: {result['people']}  matched to a prediction: {result['matched']}  "
          f"keypoint set: {result['keypoint_set']}")
    print(f"OKS sigmas from {result['sigmas_from']}")
    _print_pck(result)
    for name in AP_NAMES:
        print(f"{name}: {result[name]:.6f}")
    print(f"ap: {result['AP']:.6f}")


def _print_gesture(result: dict) -> None:
    print(f"images: {result['images']}  classes: {result['classes']}")
    print(f"accuracy: {result['accuracy']:.6f}")
    print(f"logloss: {result['logloss']:.6f}")


def main(argv: list[str] | None = None) -> int:
    parser = ToolParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pred", type=Path, required=True, help="the prediction CSV")
    parser.add_argument(
        "--truth",
        type=Path,
        required=True,
        help="test_df.csv (keypoints) or test_answer.csv (gestures)",
    )
    parser.add_argument("--plot", type=Path, metavar="FILE.png",
                        help="also draw the per-keypoint RMSE as a bar chart (keypoint CSVs)")
    parser.add_argument("--keypoints", default="",
                        help="COCO files: keypoint set (name or YAML) whose OKS sigmas to use")
    args = parser.parse_args(argv)
    try:
        is_coco = args.truth.suffix.lower() == ".json"
        if args.plot and (is_coco or is_gesture_truth(args.truth)):
            raise DataFormatError(f"--plot draws the per-keypoint RMSE of keypoint CSVs; "
                                  f"{args.truth} is not one: leave --plot out")  # fmt: skip
        if is_coco:
            _print_coco(score_coco_files(args.pred, args.truth, args.keypoints or None))
        elif is_gesture_truth(args.truth):
            _print_gesture(score_gesture(args.pred, args.truth))
        else:
            result = score_keypoints(args.pred, args.truth)
            _print_keypoints(result)
            if args.plot:
                from common.charts import plot_keypoint_errors  # matplotlib only when asked

                plot_keypoint_errors(result["per_keypoint"], args.plot,
                                     f"{args.pred.name} against {args.truth.name}: "
                                     f"{result['images']} images",
                                     overall=result["rmse"])  # fmt: skip
                print(f"chart: {args.plot}")
    except (DataFormatError, KeypointSetError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    run_tool(main)
