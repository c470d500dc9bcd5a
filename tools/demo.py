"""The main job on the embedded synthetic default, end to end, on a CPU in minutes:
generate data, train both stages briefly, chain them on the test images, score, draw.

``python tools/demo.py [--out output/demo] [--data data/synthetic/motion]``
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import _bootstrap  # noqa: F401

from common.charts import plot_training_curves
from common.cli import USER_ERROR_STATUS, ToolParser, run_tool
from common.config import load_config
from common.errors import UserError
from common.run_dir import config_name, output_dir_for

ROOT = Path(__file__).resolve().parents[1]
BBOX_CFG = "experiments/bbox/tiny_cpu_bbox.yaml"
KEYPOINT_CFG = "experiments/keypoint/tiny_cpu_keypoint.yaml"


def run(step: str, *args: str) -> None:
    """Run one tool as its own process, exactly as a user would type it."""
    command = [sys.executable, *args]
    print(f"\n=== {step}\n$ {' '.join(command[1:])}", flush=True)
    started = time.perf_counter()
    code = subprocess.run(command, cwd=ROOT).returncode
    if code == USER_ERROR_STATUS:
        raise UserError(f"{step} stopped ({args[0]} said why above); fix that and run again")
    if code:
        sys.exit(code)
    print(f"--- {step}: {time.perf_counter() - started:.0f} s", flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = ToolParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="output/demo", help="where runs and pictures go")
    parser.add_argument("--data", default="data/synthetic/motion", help="synthetic data folder")
    parser.add_argument("--train", type=int, default=480, help="synthetic training images")
    parser.add_argument("--test", type=int, default=96, help="synthetic test images")
    parser.add_argument("--width", type=int, default=960)
    parser.add_argument("--height", type=int, default=540)
    parser.add_argument(
        "--max-frames", type=int, default=2, help="frames per sequence: short ones, many poses"
    )
    parser.add_argument("--epochs", type=int, default=0, help="override both stages' END_EPOCH")
    args = parser.parse_args(argv)
    out, data = Path(args.out), Path(args.data)
    started = time.perf_counter()

    if not (ROOT / data / "train_df.csv").is_file():
        run("synthetic data", "tools/make_synthetic.py", "motion", "--out", str(data),
            "--train", str(args.train), "--test", str(args.test),
            "--width", str(args.width), "--height", str(args.height), "--seed", "0",
            "--max-frames", str(args.max_frames))  # fmt: skip
    else:
        print(f"using the synthetic data already in {data}")
    common = ["OUTPUT_DIR", str(out / "runs"), "LOG_DIR", str(out / "tensorboard"),
              "DATASET.ROOT", str(data)]  # fmt: skip
    epochs = ["TRAIN.END_EPOCH", str(args.epochs)] if args.epochs else []
    # --overwrite: each demo trains afresh over the previous demo's runs
    run("stage one: train the box model", "tools/train.py", "--cfg", BBOX_CFG,
        "--test_option", "False", "--overwrite", *common, *epochs)  # fmt: skip
    run("stage two: train the keypoint model", "tools/train.py", "--cfg", KEYPOINT_CFG,
        "--test_option", "False", "--overwrite", *common, *epochs)  # fmt: skip

    bbox_out = output_dir_for(load_config(BBOX_CFG, common + epochs), BBOX_CFG)
    keypoint_out = output_dir_for(load_config(KEYPOINT_CFG, common + epochs), KEYPOINT_CFG)
    run("chain: boxes, keypoints, result.csv, score", "tools/pipeline.py",
        "--bbox-cfg", BBOX_CFG, "--bbox-output", str(bbox_out),
        "--keypoint-cfg", KEYPOINT_CFG, "--keypoint-output", str(keypoint_out),
        "--truth", str(data / "test_df.csv"), "--compare-gt-boxes",
        "DATASET.ROOT", str(data))  # fmt: skip
    pictures = out / "pictures"
    run("pictures", "tools/visualize.py", "--pred", str(keypoint_out / "result.csv"),
        "--images", str(data / "images" / "test_imgs"), "--truth", str(data / "test_df.csv"),
        "--boxes", str(bbox_out / "test_annotation.pkl"), "--out", str(pictures),
        "--limit", "24")  # fmt: skip
    run("per-keypoint errors", "tools/score.py", "--pred", str(keypoint_out / "result.csv"),
        "--truth", str(data / "test_df.csv"), "--plot", str(pictures / "keypoint_errors.png"))
    tensorboard = out / "tensorboard"
    curves = plot_training_curves({
        "stage one (boxes)": (latest_events(tensorboard, BBOX_CFG), "valid/corner_error"),
        "stage two (keypoints)": (latest_events(tensorboard, KEYPOINT_CFG), "valid/rmse"),
    }, tensorboard / "training_curves.png")  # fmt: skip
    scores = json.loads((keypoint_out / "pipeline_summary.json").read_text())
    print(f"\nDone in {time.perf_counter() - started:.0f} s.")
    print(f"box IoU (stage one vs the truth's extent): {scores['box_iou']:.3f}")
    print(f"keypoint RMSE on predicted boxes (chain):  {scores['rmse']:.2f} px")
    print(f"keypoint RMSE on ground-truth boxes:       {scores['rmse_gt_boxes']:.2f} px")
    print(f"mean pose in the true boxes (baseline):    {scores['mean_pose_rmse']:.2f} px")
    print(f"Submission: {keypoint_out / 'result.csv'}")
    print(f"Pictures: {pictures} (worst images: {pictures / 'worst_contact_sheet.jpg'}, "
          f"per-keypoint errors: {pictures / 'keypoint_errors.png'})")
    print(f"Training curves: {curves}; TensorBoard: tensorboard --logdir {tensorboard}")


def latest_events(log_dir: Path, cfg_path: str) -> Path:
    """The newest TensorBoard folder of a config (``<config name>_<time>``, see run_dir)."""
    folders = sorted(Path(ROOT / log_dir).glob(f"*/*/{config_name(cfg_path)}_*"),
                     key=lambda folder: folder.stat().st_mtime)  # fmt: skip
    if not folders:
        raise UserError(f"no TensorBoard logs of {cfg_path} under {log_dir}: train it first")
    return folders[-1]


if __name__ == "__main__":
    run_tool(main)
