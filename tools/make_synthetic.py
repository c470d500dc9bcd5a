"""Write synthetic data sets that stand in for the competitions' (non-public) images.

python tools/make_synthetic.py motion --out data/synthetic/motion --train 200 --test 50
python tools/make_synthetic.py gesture --help
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
from pathlib import Path

import _bootstrap  # noqa: F401

from common.cli import ToolParser, bounded_int, run_tool
from common.errors import UserError
from common.run_dir import removed_if_failed

GESTURE_MODULE = "common.synthetic.gesture"


def add_motion_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("data/synthetic/motion"),
        help="data set folder (the config's DATASET.ROOT)",
    )
    parser.add_argument("--train", type=bounded_int(1), default=200,
                        help="number of training images")
    parser.add_argument("--test", type=bounded_int(0), default=50, help="number of test images")
    parser.add_argument("--width", type=bounded_int(32), default=1920)
    parser.add_argument("--height", type=bounded_int(32), default=1080)
    parser.add_argument("--seed", type=int, default=0, help="same seed, same bytes")
    parser.add_argument("--jpeg-quality", type=bounded_int(1, 100), default=90)
    parser.add_argument(
        "--max-frames",
        type=bounded_int(1),
        default=None,
        help="at most this many frames per sequence: more poses for a small training set",
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="replace an existing data set in --out"
    )
    parser.add_argument("--format", choices=("csv", "coco"), default="csv",
                        help="coco: person-keypoints JSON files, several people in some images")
    parser.add_argument("--max-people", type=bounded_int(1), default=3,
                        help="coco: people per image")


def run_motion(args: argparse.Namespace) -> int:
    from common.synthetic.motion import generate_motion_dataset
    from common.synthetic.motion_coco import generate_motion_coco

    start = time.perf_counter()
    if args.format == "coco":
        counts = generate_motion_coco(
            args.out, args.train, args.test, width=args.width, height=args.height,
            seed=args.seed, overwrite=args.overwrite, jpeg_quality=args.jpeg_quality,
            max_people=args.max_people,
        )  # fmt: skip
    else:
        counts = generate_motion_dataset(
            args.out, args.train, args.test, width=args.width, height=args.height,
            seed=args.seed, overwrite=args.overwrite, jpeg_quality=args.jpeg_quality,
            max_frames=args.max_frames,
        )  # fmt: skip
    print(
        f"wrote {counts['train']} train and {counts['test']} test images "
        f"({args.width}x{args.height}) to {args.out} in {time.perf_counter() - start:.1f} s"
    )
    return 0


def _chosen_command(argv: list[str]) -> str | None:
    return next((arg for arg in argv if not arg.startswith("-")), None)


def build_parser(gesture_module: object | None = None) -> argparse.ArgumentParser:
    """The CLI; gesture options are added only when that generator has been imported."""
    parser = ToolParser(description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    motion = commands.add_parser("motion", help="the motion keypoint data set (24 keypoints)")
    add_motion_arguments(motion)
    gesture = commands.add_parser("gesture", help=f"the hand gesture data set ({GESTURE_MODULE})")
    if gesture_module is not None:
        gesture_module.add_cli_arguments(gesture)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    gesture_module = None
    if _chosen_command(argv) == "gesture":
        # Imported only when asked for, so the motion generator works without it.
        try:
            gesture_module = importlib.import_module(GESTURE_MODULE)
        except ImportError as error:
            print(
                f"error: the gesture generator ({GESTURE_MODULE}) cannot be imported: {error}",
                file=sys.stderr,
            )
            return 2
    args = build_parser(gesture_module).parse_args(argv)
    try:
        with removed_if_failed(args.out):  # a data set that failed half-way is not left behind
            if args.command == "motion":
                return run_motion(args)
            result = gesture_module.run_from_args(args)
    except (FileExistsError, ValueError) as error:  # the generators' refusals
        raise UserError(str(error)) from None
    return result if isinstance(result, int) else 0  # it may return a summary instead


if __name__ == "__main__":
    run_tool(main)
