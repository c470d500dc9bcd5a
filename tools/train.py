"""Train a stage: ``python tools/train.py --cfg experiments/... --test_option False [opts]``.

``TASK`` in the config picks the stage: ``keypoint`` (stage two), ``bbox`` (stage one) or
``gesture``. With ``--test_option True`` 10% of the images are held out first and the best
model is scored on them at the end, as in the reference.
"""

from __future__ import annotations

import argparse
import logging

import _bootstrap  # noqa: F401

from common.config import load_config, str2bool
from common.distributed import init_distributed, is_main_process, world_size
from common.io import atomic_write_text
from common.run_dir import create_logger
from common.seed import seed_everything
from common.stage import TrainRun
from stages import stage_for


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cfg", required=True, help="experiment YAML")
    parser.add_argument("--test_option", type=str2bool, default=False,
                        help="True: hold out 10%% as a test split before the validation split")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="KEY VALUE config overrides")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    cfg = load_config(args.cfg, args.opts)
    seed_everything(cfg.RANDOMSEED, cfg)
    device = init_distributed()
    main_process = is_main_process()
    logger, output_dir, tb_dir = create_logger(cfg, args.cfg, "train")
    if not main_process:
        logger.setLevel(logging.WARNING)
    else:
        atomic_write_text(output_dir / "config.yaml", cfg.dump())
    logger.info("config %s, output %s, TensorBoard %s, %d process(es)",
                args.cfg, output_dir, tb_dir, world_size())  # fmt: skip

    run = TrainRun(output_dir, tb_dir, logger, device, args.test_option, main_process)
    return stage_for(cfg.TASK).train(cfg, run)


if __name__ == "__main__":
    main()
