"""Concurrent and interrupted runs (issue 15): the run-folder lock, temporary files removed on
SIGTERM/SIGINT and after a dead writer, and a new run refusing to mix with an earlier one."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from common.io import remove_stale_temps
from common.run_dir import LOCK_NAME, RunFolderError, lock_run_folder, prepare_run_folder

ROOT = Path(__file__).resolve().parents[1]
LOGGER = logging.getLogger("test.run_lock")

WRITER = """
import signal, sys, time
# as a program started from a terminal: a background job inherits SIGINT ignored
signal.signal(signal.SIGINT, signal.default_int_handler)
sys.path.insert(0, {root!r})
from common.io import atomic_path
with atomic_path({target!r}) as tmp:
    tmp.write_text("half of the new file")
    print("ready", flush=True)
    time.sleep(60)
"""

HOLDER = """
import logging, sys, time
sys.path.insert(0, {root!r})
from common.run_dir import lock_run_folder
with lock_run_folder({folder!r}, logging.getLogger("holder")):
    print("ready", flush=True)
    time.sleep(60)
"""


def _start(script: str, **values: str) -> subprocess.Popen:
    process = subprocess.Popen([sys.executable, "-c", script.format(root=str(ROOT), **values)],
                               stdout=subprocess.PIPE, text=True)  # fmt: skip
    assert process.stdout.readline().strip() == "ready"
    return process


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_mid_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path, signum):
    target = tmp_path / "result.csv"
    target.write_text("the old submission")
    writer = _start(WRITER, target=str(target))
    assert len(list(tmp_path.glob(".result.csv.*.tmp"))) == 1
    writer.send_signal(signum)
    assert writer.wait(timeout=60) == -signum  # died of the signal, as without the handler
    assert target.read_text() == "the old submission"
    assert [p.name for p in tmp_path.iterdir()] == ["result.csv"]


def test_stale_temporaries_of_dead_writers_are_removed_and_live_ones_kept(tmp_path):
    dead = tmp_path / f".checkpoint.pth.{_dead_pid()}.0123456789ab.tmp"
    live = tmp_path / f".result.csv.{os.getpid()}.0123456789ab.tmp"
    foreign = tmp_path / ".notes.txt.tmp"
    for path in (dead, live, foreign):
        path.write_text("x")
    assert remove_stale_temps(tmp_path, LOGGER) == [dead]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([live.name, foreign.name])


def test_a_second_run_into_a_locked_folder_stops_naming_the_first(tmp_path, caplog):
    holder = _start(HOLDER, folder=str(tmp_path))
    try:
        with pytest.raises(RunFolderError, match=rf"in use by another run \(process {holder.pid}"):
            with lock_run_folder(tmp_path, LOGGER):
                pass
    finally:
        holder.kill()
        holder.wait(timeout=60)
    caplog.set_level(logging.INFO, logger=LOGGER.name)
    with lock_run_folder(tmp_path, LOGGER):  # the kernel dropped the dead holder's lock
        assert (tmp_path / LOCK_NAME).read_text().strip() == str(os.getpid())
    assert f"took over the stale lock {tmp_path / LOCK_NAME} of process {holder.pid}" in (
        caplog.text
    )


def test_a_stale_lock_file_is_taken_over_and_its_runs_leftovers_removed(tmp_path, caplog):
    pid = _dead_pid()
    (tmp_path / LOCK_NAME).write_text(f"{pid}\n")
    leftover = tmp_path / f".checkpoint.pth.{pid}.00000000abcd.tmp"
    leftover.write_bytes(b"\0" * 1000)
    caplog.set_level(logging.INFO, logger=LOGGER.name)
    with lock_run_folder(tmp_path, LOGGER) as folder:
        assert folder == tmp_path and not leftover.exists()
        with pytest.raises(RunFolderError, match=f"process {os.getpid()}"):
            with lock_run_folder(tmp_path, LOGGER):
                pass
    assert f"of process {pid} (no longer running)" in caplog.text
    assert f"removed {leftover}" in caplog.text
    with lock_run_folder(tmp_path, LOGGER):  # released on exit: the folder can be taken again
        pass


def test_a_new_run_refuses_to_mix_with_an_earlier_one_unless_told(tmp_path):
    assert prepare_run_folder(tmp_path, auto_resume=False, overwrite=False, logger=LOGGER) is False
    for name in ("checkpoint.pth", "model_best.pth", "final_state.pth", "train_summary.json"):
        (tmp_path / name).write_text("old run")
    (tmp_path / "old_train.log").write_text("kept")
    with pytest.raises(RunFolderError, match="holds a finished run .*--overwrite.*OUTPUT_DIR"):
        prepare_run_folder(tmp_path, auto_resume=False, overwrite=False, logger=LOGGER)
    assert prepare_run_folder(tmp_path, auto_resume=True, overwrite=False, logger=LOGGER)
    (tmp_path / "final_state.pth").unlink()
    (tmp_path / "checkpoint.pth").unlink()
    with pytest.raises(RunFolderError, match="holds an unfinished run"):
        prepare_run_folder(tmp_path, auto_resume=True, overwrite=False, logger=LOGGER)
    assert prepare_run_folder(tmp_path, auto_resume=False, overwrite=True, logger=LOGGER) is False
    assert [p.name for p in tmp_path.iterdir()] == ["old_train.log"]


def test_a_run_of_the_other_stage_is_refused_even_with_overwrite(tmp_path):
    """Two stages' configs of the same name share ``OUTPUT_DIR/lr_*/<dataset>/<model>/<name>``."""
    (tmp_path / "model_best.pth").write_text("box run")
    (tmp_path / "config.yaml").write_text("TASK: bbox\nTRAIN:\n  LR: 0.001\n")
    for overwrite in (False, True):
        with pytest.raises(RunFolderError, match="TASK bbox run and this is a TASK keypoint"):
            prepare_run_folder(tmp_path, auto_resume=True, overwrite=overwrite, logger=LOGGER,
                               task="keypoint")  # fmt: skip
    assert (tmp_path / "model_best.pth").read_text() == "box run"
    assert prepare_run_folder(tmp_path, auto_resume=False, overwrite=True, logger=LOGGER,
                              task="bbox") is False  # fmt: skip
