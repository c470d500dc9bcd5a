"""Predict the test set: ``python tools/test.py --cfg ... --output_path DIR [KEY VALUE ...]``.

Loads ``DIR/model_best.pth`` (never the pretrained file). A keypoint config writes
``DIR/result.csv``; a box config writes ``DIR/test_annotation.pkl``; a gesture config writes
``DIR/submission.csv``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import _bootstrap  # noqa: F401

from common.cli import ToolParser, run_tool
from common.config import load_config
from common.distributed import default_device
from common.errors import MissingFileError
from common.run_dir import create_logger, lock_run_folder
from common.seed import seed_everything
from common.stage import run_test
from stages import stage_for


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = ToolParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cfg", required=True, help="experiment YAML")
    parser.add_argument("--output_path", required=True, help="training output folder")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="KEY VALUE config overrides")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> Path:
    args = parse_args(argv)
    cfg = load_config(args.cfg, args.opts)
    seed_everything(cfg.RANDOMSEED, cfg)
    output_dir = Path(args.output_path)
    if not output_dir.is_dir():
        raise MissingFileError(
            f"--output_path {output_dir} does not exist: train first, or check the path"
        )
    logger, _, _ = create_logger(cfg, args.cfg, "test", output_dir=output_dir)
    with lock_run_folder(output_dir, logger):
        return run_test(stage_for(cfg.TASK), cfg, output_dir, logger, default_device())


if __name__ == "__main__":
    run_tool(main)
