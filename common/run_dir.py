"""Output folders and logging, named as the reference names them."""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import shutil
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from yacs.config import CfgNode

from common.errors import ConfigError, UserError
from common.io import process_alive, remove_stale_temps
from common.trained_with import read_training_config

LOCK_NAME = ".run.lock"
# What a training run writes into its folder; a new run must not mix its files with these.
# A run that stopped before its first epoch (a data error) left only config.yaml and
# splits.json, which the next run rewrites: those alone do not make a run to protect.
RUN_RESULTS = ("checkpoint.pth", "model_best.pth", "final_state.pth", "train_summary.json")
RUN_FILES = (*RUN_RESULTS, "splits.json", "config.yaml")


class RunFolderError(UserError, RuntimeError):
    """An output folder is in use by another run, or holds a run this one would overwrite."""


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


@contextlib.contextmanager
def lock_run_folder(path: str | Path, logger: logging.Logger) -> Iterator[Path]:
    """Hold an advisory lock on the run folder ``path`` for the run (train, test, pipeline).

    A second run into the same folder stops at once, naming the holder's process id, instead
    of mixing the two runs' files. The kernel drops the lock when its holder dies, so a lock
    file left by a dead process is taken over (and logged); temporary files that dead writers
    left are removed then.
    """
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    lock_path = folder / LOCK_NAME
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_pid(fd)
            raise RunFolderError(
                f"{folder} is in use by another run (process {holder or 'unknown'}, lock file "
                f"{lock_path}); wait for it to end or choose another OUTPUT_DIR"
            ) from None
        previous = _read_pid(fd)
        if previous and previous != os.getpid():
            state = "no longer running" if not process_alive(previous) else "lock released"
            logger.info("took over the stale lock %s of process %d (%s)", lock_path, previous,
                        state)  # fmt: skip
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        os.fsync(fd)
        remove_stale_temps(folder, logger)
        try:
            yield folder
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _read_pid(fd: int) -> int | None:
    text = os.pread(fd, 64, 0).decode("ascii", "replace").strip()
    return int(text) if text.isdigit() else None


def _task_of_run(folder: Path) -> str | None:
    """The ``TASK`` of the run whose ``config.yaml`` is in ``folder``, if it can be read."""
    try:
        saved = read_training_config(folder)
    except ConfigError:
        return None
    return str(saved["TASK"]) if saved is not None and "TASK" in saved else None


def prepare_run_folder(
    folder: str | Path, auto_resume: bool, overwrite: bool, logger: logging.Logger,
    task: str | None = None,
) -> bool:
    """Decide what a new training run does with the files of an earlier run in ``folder``.

    Returns True when the run resumes (``AUTO_RESUME`` with a ``checkpoint.pth``), False when it
    starts afresh; with ``overwrite`` the earlier run's files are removed first, so two runs'
    files never mix. Any other earlier run (finished or not) is refused with what to do, and so
    is, even with ``overwrite``, a run of another ``task`` (the other stage's config of the same
    name), which would otherwise be replaced or resumed into the wrong model.
    Call it while holding :func:`lock_run_folder`.
    """
    folder = Path(folder)
    found = [name for name in RUN_FILES if (folder / name).exists()]
    if not any(name in RUN_RESULTS for name in found):
        return False
    earlier_task = _task_of_run(folder) if task else None
    if earlier_task is not None and earlier_task != task:
        raise RunFolderError(
            f"{folder} holds a TASK {earlier_task} run and this is a TASK {task} run (two "
            "stages' config files with the same name share a run folder): choose another "
            "OUTPUT_DIR for one of them, or rename its config file"
        )
    if overwrite:
        for name in found:
            (folder / name).unlink()
        logger.info("--overwrite: removed the earlier run's %s from %s", ", ".join(found), folder)
        return False
    if auto_resume and (folder / "checkpoint.pth").exists():
        return True
    finished = "a finished" if (folder / "final_state.pth").exists() else "an unfinished"
    raise RunFolderError(
        f"{folder} holds {finished} run ({', '.join(found)}); pass --overwrite to replace it, "
        "choose another OUTPUT_DIR, or set AUTO_RESUME True to continue it from checkpoint.pth"
    )


@contextlib.contextmanager
def removed_if_failed(folder: str | Path) -> Iterator[Path]:
    """Yield ``folder``; if the block fails (an error or Ctrl-C) and the folder did not exist
    when it started, remove it, so that a failed tool leaves no half-made output behind.
    A folder that existed before (the user's) is never removed."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise UserError(f"{folder} is a file, not a folder: name a folder for the output")
    created = not folder.exists()
    try:
        yield folder
    except BaseException:
        if created:
            shutil.rmtree(folder, ignore_errors=True)
        raise
