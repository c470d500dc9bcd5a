"""Train a stage: ``python tools/train.py --cfg experiments/... --test_option False [opts]``.

``TASK`` in the config picks the stage: ``keypoint`` (stage two), ``bbox`` (stage one) or
``gesture``. With ``--test_option True`` 10% of the images are held out first and the best
model is scored on them at the end, as in the reference.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

import _bootstrap  # noqa: F401

from common.cli import ToolParser, run_tool
from common.config import str2bool
from stages.training import train_from_config


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = ToolParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cfg", required=True, help="experiment YAML")
    parser.add_argument("--test_option", type=str2bool, default=False,
                        help="True: hold out 10%% as a test split before the validation split")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an earlier run's files in the output folder")
    parser.add_argument("--folds", type=int, default=0,
                        help="K >= 2: train K models on folds grouped by subject, each in "
                             "<run folder>/fold<k>, and write the out-of-fold RMSE (oof.csv)")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="KEY VALUE config overrides")
    args = parser.parse_args(argv)
    if args.folds == 1 or args.folds < 0 or (args.folds and args.test_option):
        parser.error("--folds needs K >= 2 and no --test_option True (the folds hold out data)")
    return args


def main(
    argv: list[str] | None = None,
    on_epoch_end: Callable[[int, dict[str, float]], None] | None = None,
) -> dict:
    """Train; ``on_epoch_end(epoch, metrics)`` is passed to ``common.trainer.fit``."""
    args = parse_args(argv)
    return train_from_config(args.cfg, args.opts, args.test_option, args.folds, args.overwrite,
                             on_epoch_end)  # fmt: skip


if __name__ == "__main__":
    run_tool(main)
