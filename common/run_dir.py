"""Output folders and logging, named as the reference names them."""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path

from yacs.config import CfgNode


def config_name(cfg_path: str | Path) -> str:
    """The experiment name: the config file's base name before its first dot."""
    return Path(cfg_path).name.split(".")[0]


def output_dir_for(cfg: CfgNode, cfg_path: str | Path) -> Path:
    """``OUTPUT_DIR/lr_<LR>/<DATASET.DATASET>/<MODEL.NAME>/<config name>`` (reference layout)."""
    return (
        Path(cfg.OUTPUT_DIR)
        / f"lr_{cfg.TRAIN.LR}"
        / cfg.DATASET.DATASET
        / cfg.MODEL.NAME
        / config_name(cfg_path)
    )


def create_logger(
    cfg: CfgNode, cfg_path: str | Path, phase: str, output_dir: Path | None = None
) -> tuple[logging.Logger, Path, Path]:
    """A logger writing to the console and ``<output>/<cfg>_<time>_<phase>.log``.

    Returns the logger, the output folder and the TensorBoard folder
    (``LOG_DIR/<dataset>/<model>/<cfg>_<time>``).
    """
    name = config_name(cfg_path)
    out = Path(output_dir) if output_dir is not None else output_dir_for(cfg, cfg_path)
    out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y-%m-%d-%H-%M")
    tb_dir = Path(cfg.LOG_DIR) / cfg.DATASET.DATASET / cfg.MODEL.NAME / f"{name}_{stamp}"
    logger = logging.getLogger(f"hrnet.{name}.{phase}")
    logger.setLevel(logging.INFO)
    logger.propagate = False
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()
    formatter = logging.Formatter("%(asctime)s %(message)s")
    file_handler = logging.FileHandler(out / f"{name}_{stamp}_{phase}.log")
    console = logging.StreamHandler(sys.stdout)
    for handler in (file_handler, console):
        handler.setFormatter(formatter)
        logger.addHandler(handler)
    return logger, out, tb_dir
