"""The gesture pipeline on regressed hand keypoints, end to end on a CPU, with its numbers.

``python tools/gesture_report.py [--work output/gesture_report] [--overwrite] [sizes, epochs]``

1. a synthetic gesture set (``tools/make_synthetic.py gesture``, with the hand tables);
2. stage one on the hands (``experiments/bbox/tiny_cpu_hand_bbox.yaml``): train, predict the test
   frames' boxes, copy ``test_annotation.pkl`` to the data's ``annotations/``;
3. stage two (``experiments/keypoint/tiny_cpu_hand_keypoint.yaml``): train, predict 21 keypoints
   per test frame (``result.csv``); both stages also predict every training frame
   (``hand_train_list.csv``), for the refiner's thresholds on regressed keypoints;
4. the classifier (``experiments/gesture/tiny_cpu_gesture.yaml``): train on crops around the
   training clips' JSON keypoints, one model per fold (``--folds``, 4 by default, so every
   training clip is a validation clip once); the validation clips of all folds give logloss and
   pair accuracy with and without the refiner, whose thresholds are fitted (on each fold's
   training clips) and applied once with JSON and once with regressed keypoints;
5. the test clips predicted with the regressed keypoints (``GESTURE.KEYPOINT_SOURCE stages``) and,
   where the test JSONs exist, with those (``json``) for comparison, each scored against
   ``test_answer.csv`` with and without the refiner; ``tools/score.py`` scores the submission.

Every step is the tool a user would run (called in-process); ``<work>/report.json`` keeps the
numbers. Thread count: set ``OMP_NUM_THREADS``. ``--rescore`` reuses a finished ``--work``: it
refits and rescores only the refiner (settings from ``--gesture-opts``; the classifier's
validation probabilities were saved by training) and predicts the test clips again, so refiner
settings are compared on the same data, stages and classifier in seconds (``--report`` names
each result file). ``--cam [N]`` draws Grad-CAM pictures of the N (6) validation clips whose true
class got the lowest probability into ``<work>/cam`` (:mod:`common.gesture.cam`).

The refiner's fist pairs get separate groups here (one hand: 146/163, both hands: 171/191; the
reference pooled them): the stages regress one hand per frame, so the two-hand clips' statistics
are unreliable and would otherwise set the one-hand threshold. ``--gesture-opts`` overrides it.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import json
import logging
import shutil
import time
from pathlib import Path
from types import ModuleType

import _bootstrap  # noqa: F401
from yacs.config import CfgNode

from common.cli import ToolParser, bounded_int, run_tool
from common.config import load_config
from common.gesture.cam import worst_validation_cams
from common.gesture.hand_keypoints import TRAIN_LIST_NAME
from common.gesture.refiner_folds import fit_and_score_refiner
from common.gesture.report import keypoint_errors, pair_statistics, print_summary
from common.io import atomic_write_text
from common.run_dir import output_dir_for, removed_if_failed
from common.synthetic.gesture import add_data_arguments, generate_gesture_dataset

ROOT = Path(__file__).resolve().parents[1]
BBOX_CFG = ROOT / "experiments" / "bbox" / "tiny_cpu_hand_bbox.yaml"
KEYPOINT_CFG = ROOT / "experiments" / "keypoint" / "tiny_cpu_hand_keypoint.yaml"
GESTURE_CFG = ROOT / "experiments" / "gesture" / "tiny_cpu_gesture.yaml"
SEPARATE_FIST_GROUPS = (
    "[[0, 42, 'tip_x_range', 'index'], [10, 67, 'tip_x_range', 'index'], "
    "[100, 142, 'tip_x_range', 'index'], [110, 167, 'tip_x_range', 'index'], "
    "[146, 163, 'size_change', 'fist'], [171, 191, 'size_change', 'fist_both']]"
)
TRAIN_BOX_FILE = "annotations/train_frames_annotation.pkl"
TRAIN_KEYPOINT_DIR = "train_frames_keypoint"


def _tool(name: str) -> ModuleType:
    """``tools/<name>.py`` as a module (``test`` would otherwise be the standard library's)."""
    spec = importlib.util.spec_from_file_location(f"tool_{name}", ROOT / "tools" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _lr_steps(epochs: int) -> str:
    """The tiny configs' LR drops (x0.1 at 75% and 90% of training), for another length."""
    first = max(1, round(0.75 * epochs))
    return f"[{first}, {max(first + 1, round(0.9 * epochs))}]"


def _step(title: str) -> float:
    print(f"\n=== {title}", flush=True)
    return time.perf_counter()


def _stage_opts(opts: list[str], epochs: int) -> list[str]:
    return [*opts, "TRAIN.END_EPOCH", str(epochs), "TRAIN.LR_STEP", _lr_steps(epochs)]


def _train_and_test_stage(cfg_path: Path, opts: list[str], epochs: int) -> Path:
    """Train one stage, predict its test set; returns its output folder."""
    opts = _stage_opts(opts, epochs)
    _tool("train").main(["--cfg", str(cfg_path), "--test_option", "False", *opts])
    output_dir = output_dir_for(load_config(cfg_path, opts), cfg_path)
    _tool("test").main(["--cfg", str(cfg_path), "--output_path", str(output_dir), *opts])
    return output_dir


def _predict_training_frames(cfg_path: Path, opts: list[str], model_dir: Path, out: Path) -> Path:
    """A trained stage's predictions for every training frame, written into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    _tool("test").main([
        "--cfg", str(cfg_path), "--output_path", str(out), *opts,
        "DATASET.TEST_CSV", TRAIN_LIST_NAME, "DATASET.TEST_IMAGE_DIR", "train",
        "TEST.MODEL_FILE", str(model_dir / "model_best.pth"),
    ])  # fmt: skip
    return out


def _score_tool(pred: Path, truth: Path) -> str:
    """The last line ``tools/score.py`` prints for a submission."""
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        code = _tool("score").main(["--pred", str(pred), "--truth", str(truth)])
    if code != 0:
        raise RuntimeError(f"tools/score.py refused {pred} (exit {code})")
    return printed.getvalue().strip().splitlines()[-1]


def _data_and_stages(
    args: argparse.Namespace, work: Path, common: list[str], seconds: dict[str, float]
) -> tuple[dict, Path]:
    """Steps 1-3: the synthetic data, both stages trained and run on the test and training
    frames; returns the data summary and stage two's test ``result.csv``."""
    data = work / "data"
    started = _step("synthetic gesture data")
    summary = generate_gesture_dataset(
        data, args.train_clips, args.test_clips, args.frames, args.width, args.height,
        args.seed, args.test_json,
    )  # fmt: skip
    seconds["data"] = time.perf_counter() - started

    started = _step("stage one: hand boxes")
    bbox_dir = _train_and_test_stage(BBOX_CFG, common, args.bbox_epochs)
    box_file = data / load_config(KEYPOINT_CFG, common).DATASET.BOX_FILE
    box_file.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(bbox_dir / "test_annotation.pkl", box_file)
    seconds["stage_one"] = time.perf_counter() - started

    started = _step("stage two: 21 hand keypoints")
    keypoint_dir = _train_and_test_stage(KEYPOINT_CFG, common, args.keypoint_epochs)
    seconds["stage_two"] = time.perf_counter() - started

    started = _step("both stages on the training frames")
    train_boxes = _predict_training_frames(BBOX_CFG, common, bbox_dir, work / "train_frames_bbox")
    shutil.copyfile(train_boxes / "test_annotation.pkl", data / TRAIN_BOX_FILE)
    _predict_training_frames(
        KEYPOINT_CFG, [*common, "DATASET.BOX_FILE", TRAIN_BOX_FILE], keypoint_dir,
        work / TRAIN_KEYPOINT_DIR,
    )  # fmt: skip
    seconds["stages_on_training_frames"] = time.perf_counter() - started
    return summary, keypoint_dir / "result.csv"


def main(argv: list[str] | None = None) -> dict:
    parser = ToolParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--work",
        type=Path,
        default=Path("output/gesture_report"),
        help="data, runs and report.json go here",
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="delete a non-empty --work folder first"
    )
    parser.add_argument(
        "--rescore",
        action="store_true",
        help="reuse --work's data, stages and classifier: refit and rescore only "
        "the refiner (with --gesture-opts), then predict the test clips again",
    )
    parser.add_argument("--report", default="report.json", help="file name under --work")
    add_data_arguments(parser)
    parser.add_argument("--bbox-epochs", type=bounded_int(1), default=20)
    parser.add_argument("--keypoint-epochs", type=bounded_int(1), default=12)
    parser.add_argument("--gesture-epochs", type=bounded_int(1), default=30)
    parser.add_argument("--gesture-image-size", type=bounded_int(16), default=64)
    parser.add_argument(
        "--folds",
        type=bounded_int(0),
        default=4,
        help="GESTURE.NUM_FOLDS, every fold trained: each training clip is validated once (more "
        "clips per refiner pair than one fold's), the test clips get the folds' ensemble; "
        "0 keeps the config's folds",
    )
    parser.add_argument(
        "--gesture-opts",
        nargs="*",
        default=[],
        help="more KEY VALUE overrides of the gesture config",
    )
    parser.add_argument(
        "--cam",
        type=int,
        nargs="?",
        const=6,
        default=0,
        metavar="N",
        help="Grad-CAM pictures of the N (6) worst validation clips into <work>/cam",
    )
    args = parser.parse_args(argv)  # fmt: skip

    if args.cam < 0:
        parser.error(f"--cam {args.cam}: the number of clips must be 0 or more")
    if args.folds == 1:
        parser.error("--folds 1: give 0 (the config's folds) or at least 2 (a fold is held out)")
    work = args.work.resolve()
    if work.exists() and not work.is_dir():
        parser.error(f"--work {work} is a file: name a folder for the data, runs and report")
    previous = None
    replace = work.exists() and any(work.iterdir())
    if args.rescore:
        try:
            previous = json.loads((work / "report.json").read_text())
        except (OSError, ValueError):
            previous = None
        if not (work / TRAIN_KEYPOINT_DIR / "result.csv").is_file() or not isinstance(
            previous, dict
        ) or "data" not in previous:
            parser.error(f"--rescore needs a finished run (its report.json) in --work {work}")
        args.test_json = bool(previous["data"]["test_json"])
        args.folds = previous.get("folds", 0)  # the trained folds' validation probabilities
    elif replace and not args.overwrite:
        parser.error(f"--work {work} is not empty (pass --overwrite to replace it)")
    common = ["DATASET.ROOT", str(work / "data"), "OUTPUT_DIR", str(work / "output"),
              "LOG_DIR", str(work / "log")]  # fmt: skip
    train_result_csv = work / TRAIN_KEYPOINT_DIR / "result.csv"
    gesture_opts = [
        *common,
        "GESTURE.EPOCHS", str(args.gesture_epochs),
        "GESTURE.PATIENCE", str(args.gesture_epochs),
        "GESTURE.IMAGE_SIZE", str(args.gesture_image_size),
        "GESTURE.REFINER.PAIRS", SEPARATE_FIST_GROUPS,
        "GESTURE.TRAIN_STAGE_RESULT_CSV", str(train_result_csv),
    ]  # fmt: skip
    if args.folds:
        gesture_opts += ["GESTURE.NUM_FOLDS", str(args.folds),
                         "GESTURE.FOLDS", str(list(range(args.folds)))]  # fmt: skip
    gesture_opts += args.gesture_opts
    # every config checked (keys and values) before any data or training
    load_config(BBOX_CFG, _stage_opts(common, args.bbox_epochs))
    load_config(KEYPOINT_CFG, _stage_opts(common, args.keypoint_epochs))
    gesture_cfg = load_config(GESTURE_CFG, gesture_opts)
    if previous is not None:
        return _report(args, work, common, gesture_opts, gesture_cfg, previous)
    if replace:
        shutil.rmtree(work)
    with removed_if_failed(work):  # a run that fails leaves no half-made --work behind
        return _report(args, work, common, gesture_opts, gesture_cfg, None)


def _report(
    args: argparse.Namespace, work: Path, common: list[str], gesture_opts: list[str],
    gesture_cfg: CfgNode, previous: dict | None,
) -> dict:
    """Steps 1-5, or with ``previous`` (``--rescore``) the refiner and the test clips again."""
    data = work / "data"
    seconds: dict[str, float] = {}
    if previous is not None:
        summary = previous["data"]
        result_csv = output_dir_for(load_config(KEYPOINT_CFG, common), KEYPOINT_CFG) / "result.csv"
    else:
        summary, result_csv = _data_and_stages(args, work, common, seconds)

    started = _step("gesture classifier")
    gesture_dir = output_dir_for(gesture_cfg, GESTURE_CFG)
    if args.rescore:
        metrics = fit_and_score_refiner(gesture_cfg, gesture_dir, logging.getLogger(__name__))
    else:
        metrics = _tool("train").main(["--cfg", str(GESTURE_CFG), *gesture_opts])
    seconds["classifier"] = time.perf_counter() - started
    pictures = (
        worst_validation_cams(gesture_cfg, gesture_dir, work / "cam", args.cam) if args.cam else []
    )

    started = _step("test clips")
    test_tool = _tool("test")
    report: dict = {
        "data": summary,
        "folds": args.folds,
        "refiner": {
            "pairs": gesture_cfg.GESTURE.REFINER.PAIRS,
            "mode": gesture_cfg.GESTURE.REFINER.MODE,
            "median_frames": gesture_cfg.GESTURE.REFINER.MEDIAN_FRAMES,
            "max_chance_p": gesture_cfg.GESTURE.REFINER.MAX_CHANCE_P,
        },
        "thresholds": metrics["thresholds"],
        "thresholds_stages": metrics["thresholds_stages"],
        "confidences": metrics["confidences"],
        "confidences_stages": metrics["confidences_stages"],
        "confidences_in_sample": metrics.get("confidences_in_sample"),
        "confidences_in_sample_stages": metrics.get("confidences_in_sample_stages"),
        "chance_p": metrics.get("chance_p"),
        "chance_p_stages": metrics.get("chance_p_stages"),
        # every trained fold's validation clips pooled (thresholds fitted per fold)
        "validation": metrics["out_of_fold"],
        "validation_fold_mean": metrics["mean"],
    }
    if args.test_json:
        test_tool.main(["--cfg", str(GESTURE_CFG), "--output_path", str(gesture_dir),
                        *gesture_opts, "GESTURE.KEYPOINT_SOURCE", "json"])  # fmt: skip
        report["test_json"] = json.loads((gesture_dir / "test_scores.json").read_text())
    submission = test_tool.main(["--cfg", str(GESTURE_CFG), "--output_path", str(gesture_dir),
                                 *gesture_opts, "GESTURE.KEYPOINT_SOURCE", "stages",
                                 "GESTURE.STAGE_RESULT_CSV", str(result_csv)])  # fmt: skip
    report["test_regressed"] = json.loads((gesture_dir / "test_scores.json").read_text())
    report["submission"] = str(submission)
    report["score_tool"] = _score_tool(submission, data / "test_answer.csv")
    report["keypoint_error"] = keypoint_errors(data, result_csv)
    report["pair_statistics"] = pair_statistics(data, result_csv, gesture_dir)
    report["cam"] = [str(path) for path in pictures]
    seconds["test"] = time.perf_counter() - started
    report["seconds"] = {name: round(value, 1) for name, value in seconds.items()}
    atomic_write_text(work / args.report, json.dumps(report, indent=1))
    print_summary(report)
    return report


if __name__ == "__main__":
    run_tool(main)
