"""Ensemble several stage-two models: ``python tools/ensemble.py --inputs A B ... --out FILE``.

With result files (``result.csv``) as inputs, their coordinates are averaged (``--weights``
for a weighted mean, ``--median`` for the per-coordinate median), and an image that one model
could not predict (row missing, NaN or empty cells) is filled from the others. With trained run
folders as inputs (``config.yaml`` and ``model_best.pth`` in each, e.g. the ``fold<k>``
folders of ``tools/train.py --folds K``), the models' heatmaps are averaged on the test images
before one decoding; ``KEY VALUE`` overrides apply to every model's config.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import _bootstrap  # noqa: F401

from common.cli import ToolParser, run_tool
from common.distributed import default_device
from common.errors import ConfigError, MissingFileError
from HRNet_keypoint.ensemble import (
    check_weights,
    ensemble_model_folders,
    ensemble_results,
    read_result,
    write_result,
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = ToolParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inputs", nargs="+", type=Path, required=True,
                        help="result CSV files, or trained run folders (not both)")
    parser.add_argument("--out", type=Path, required=True, help="the ensemble's CSV")
    parser.add_argument("--weights", nargs="+", type=float, help="one weight per input")
    parser.add_argument("--median", action="store_true",
                        help="per-coordinate median of result files instead of the mean")
    parser.add_argument("opts", nargs=argparse.REMAINDER,
                        help="KEY VALUE config overrides (run folders only)")  # fmt: skip
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> Path:
    args = parse_args(argv)
    check_weights(args.weights, len(args.inputs))  # before any file is read or model built
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    logger = logging.getLogger("ensemble")
    missing = [str(path) for path in args.inputs if not path.exists()]
    if missing:
        raise MissingFileError(f"--inputs: {len(missing)} not found, e.g. {missing[:3]}; pass "
                               "result files or trained run folders")  # fmt: skip
    if args.out.resolve() in [path.resolve() for path in args.inputs] or args.out.is_dir():
        raise ConfigError(f"--out {args.out} is one of the inputs or a folder; name a new file")
    folders = [path.is_dir() for path in args.inputs]
    if all(folders):
        if args.median:
            raise ConfigError("--median applies to result files; heatmaps are averaged")
        return ensemble_model_folders(args.inputs, args.opts, args.out, logger, default_device(),
                                      args.weights)  # fmt: skip
    if any(folders):
        raise ConfigError("--inputs mixes run folders and files; give one kind")
    if args.opts:
        raise ConfigError(f"KEY VALUE overrides {args.opts} apply to run folders only")
    frames = [read_result(path) for path in args.inputs]
    table, filled = ensemble_results(frames, args.weights, args.median)
    write_result(args.out, table)
    print(f"ensemble of {len(frames)} results: {len(table)} images, {filled} filled from the "
          f"others, wrote {args.out}")  # fmt: skip
    return args.out


if __name__ == "__main__":
    run_tool(main)
