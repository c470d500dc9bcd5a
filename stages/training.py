"""One training run from a config file, as ``tools/train.py`` starts it: the library entry that
the tuner and the benchmarks call instead of loading a tool."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path

from yacs.config import CfgNode

from common.config import load_config
from common.distributed import barrier, init_distributed, is_main_process, world_size
from common.errors import ConfigError
from common.io import atomic_write_text
from common.run_dir import create_logger, lock_run_folder, prepare_run_folder
from common.seed import seed_everything
from common.stage import TrainRun
from stages import stage_for


def train_from_config(
    cfg_path: str | Path,
    opts: Sequence[str] = (),
    test_option: bool = False,
    folds: int = 0,
    overwrite: bool = False,
    on_epoch_end: Callable[[int, dict[str, float]], None] | None = None,
) -> dict:
    """Train the stage of the config's ``TASK`` into its run folder and return the summary.

    The first process locks the run folder for the run and refuses to mix with an earlier run
    there (unless ``overwrite``, or ``AUTO_RESUME`` with a checkpoint); ``on_epoch_end(epoch,
    metrics)`` is passed to ``common.trainer.fit``.
    """
    cfg = load_config(cfg_path, list(opts))
    seed_everything(cfg.RANDOMSEED, cfg)
    device = init_distributed()
    logger, output_dir, tb_dir = create_logger(cfg, cfg_path, "train")
    if folds and cfg.TASK != "keypoint":
        raise ConfigError(f"--folds trains stage two (TASK keypoint); {cfg_path} has TASK "
                          f"{cfg.TASK!r}: drop --folds")  # fmt: skip
    run = TrainRun(output_dir, tb_dir, logger, device, test_option, is_main_process(),
                   folds=folds, on_epoch_end=on_epoch_end)  # fmt: skip
    if not is_main_process():
        logger.setLevel(logging.WARNING)
        barrier()  # the first process has checked (or cleared) the folder
        return _train(cfg, cfg_path, run)
    with lock_run_folder(output_dir, logger):
        prepare_run_folder(output_dir, cfg.AUTO_RESUME, overwrite, logger, task=cfg.TASK)
        barrier()
        atomic_write_text(output_dir / "config.yaml", cfg.dump())
        return _train(cfg, cfg_path, run)


def _train(cfg: CfgNode, cfg_path: str | Path, run: TrainRun) -> dict:
    run.logger.info("config %s, output %s, TensorBoard %s, %d process(es)",
                    cfg_path, run.output_dir, run.tb_dir, world_size())  # fmt: skip
    return stage_for(cfg.TASK).train(cfg, run)
