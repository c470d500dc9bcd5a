"""Train a stage: ``python tools/train.py --cfg experiments/... --test_option False [opts]``.

``TASK`` in the config picks the stage: ``keypoint`` (stage two), ``bbox`` (stage one) or
``gesture``. With ``--test_option True`` 10% of the images are held out first and the best
model is scored on them at the end, as in the reference.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import _bootstrap  # noqa: F401

from common.cli import run_tool
from common.config import load_config, str2bool
from common.distributed import barrier, init_distributed, is_main_process, world_size
from common.io import atomic_write_text
from common.run_dir import create_logger, lock_run_folder, prepare_run_folder
from common.seed import seed_everything
from common.stage import TrainRun
from stages import stage_for


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cfg", required=True, help="experiment YAML")
    parser.add_argument("--test_option", type=str2bool, default=False,
                        help="True: hold out 10%% as a test split before the validation split")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an earlier run's files in the output folder")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="KEY VALUE config overrides")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    cfg = load_config(args.cfg, args.opts)
    seed_everything(cfg.RANDOMSEED, cfg)
    device = init_distributed()
    logger, output_dir, tb_dir = create_logger(cfg, args.cfg, "train")
    if not is_main_process():
        logger.setLevel(logging.WARNING)
        barrier()  # the first process has checked (or cleared) the folder
        return _train(args, cfg, logger, output_dir, tb_dir, device)
    with lock_run_folder(output_dir, logger):
        prepare_run_folder(output_dir, cfg.AUTO_RESUME, args.overwrite, logger)
        barrier()
        atomic_write_text(output_dir / "config.yaml", cfg.dump())
        return _train(args, cfg, logger, output_dir, tb_dir, device)


def _train(args: argparse.Namespace, cfg, logger: logging.Logger, output_dir: Path,
           tb_dir: Path, device) -> dict:
    logger.info("config %s, output %s, TensorBoard %s, %d process(es)",
                args.cfg, output_dir, tb_dir, world_size())  # fmt: skip
    run = TrainRun(output_dir, tb_dir, logger, device, args.test_option, is_main_process())
    return stage_for(cfg.TASK).train(cfg, run)


if __name__ == "__main__":
    run_tool(main)
