"""Faults around checkpoints: a crash during a save, foreign or mismatched files on AUTO_RESUME,
and a run that diverges. In every case the last good file must survive byte for byte."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from common.checkpoint import BEST_NAME, CHECKPOINT_NAME, CheckpointError, save_atomic
from common.config import load_config
from common.trainer import Stage, TrainingDiverged, fit

LOGGER = logging.getLogger("test_checkpoint")


def toy_stage(width: int = 3, poison=None) -> Stage:
    """A linear model on random data; ``poison(epochs_run, batch, net, loss)`` may spoil a batch
    (``epochs_run`` counts the epochs this stage has validated, from 0 at each ``fit``)."""
    torch.manual_seed(0)
    data = TensorDataset(torch.randn(16, width), torch.randn(16, 1))
    model = nn.Linear(width, 1)
    state = {"epochs_run": 0, "batch": 0}

    def train_step(net, batch):
        x, y = batch
        loss = ((net(x) - y) ** 2).mean()
        if poison is not None:
            loss = poison(state["epochs_run"], state["batch"], net, loss)
        state["batch"] += 1
        return loss

    def validate(net, epoch):
        state["epochs_run"], state["batch"] = state["epochs_run"] + 1, 0
        return {"metric": 1.0 / (epoch + 1)}

    return Stage(
        model=model,
        make_train_loader=lambda gen: DataLoader(data, batch_size=8, shuffle=True, generator=gen),
        train_step=train_step,
        validate=validate,
        metric_name="toy",
    )


def cfg_for(epochs: int, resume: bool = False):
    return load_config(None, ["TRAIN.END_EPOCH", str(epochs), "AUTO_RESUME", str(resume)])


def snapshot(folder: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir())}


def test_a_crash_during_save_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / CHECKPOINT_NAME
    save_atomic({"epoch": 1, "weights": torch.ones(1000)}, path)
    before = path.read_bytes()
    real_save = torch.save

    def save_half_then_die(obj, target, *args, **kwargs):
        real_save(obj, target, *args, **kwargs)
        data = Path(target).read_bytes()
        Path(target).write_bytes(data[: len(data) // 2])
        raise KeyboardInterrupt("killed during the save")

    monkeypatch.setattr(torch, "save", save_half_then_die)
    with pytest.raises(KeyboardInterrupt):
        save_atomic({"epoch": 2, "weights": torch.zeros(1000)}, path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == [CHECKPOINT_NAME]  # no partial file left


def test_auto_resume_refuses_a_foreign_checkpoint_by_name(tmp_path):
    """A bare state dict (say model_best.pth copied over) is not a resumable checkpoint."""
    fit(cfg_for(1), toy_stage(), tmp_path, LOGGER)
    torch.save(nn.Linear(3, 1).state_dict(), tmp_path / CHECKPOINT_NAME)
    before = snapshot(tmp_path)
    with pytest.raises(CheckpointError, match=rf"{CHECKPOINT_NAME} is not a training checkpoint"):
        fit(cfg_for(3, resume=True), toy_stage(), tmp_path, LOGGER)
    assert snapshot(tmp_path) == before


def test_auto_resume_refuses_a_checkpoint_of_another_model_naming_file_and_shapes(tmp_path):
    fit(cfg_for(1), toy_stage(width=3), tmp_path, LOGGER)
    before = snapshot(tmp_path)
    with pytest.raises(CheckpointError) as error:
        fit(cfg_for(3, resume=True), toy_stage(width=5), tmp_path, LOGGER)
    message = str(error.value)
    assert str(tmp_path / CHECKPOINT_NAME) in message and "does not fit" in message
    assert "weight" in message and "[1, 3]" in message and "[1, 5]" in message
    assert snapshot(tmp_path) == before


def test_infinite_loss_stops_and_keeps_the_previous_epochs_files(tmp_path):
    fit(cfg_for(1), toy_stage(), tmp_path, LOGGER)
    before = snapshot(tmp_path)

    def infinite_in_first_epoch(epochs_run, batch, net, loss):
        return loss * float("inf") if epochs_run == 0 and batch == 1 else loss

    with pytest.raises(TrainingDiverged, match=r"loss is inf at epoch 1, batch 1"):
        fit(cfg_for(3, resume=True), toy_stage(poison=infinite_in_first_epoch), tmp_path, LOGGER)
    assert snapshot(tmp_path) == before
    assert sorted(before) == sorted([BEST_NAME, CHECKPOINT_NAME, "final_state.pth"])


def test_weights_broken_by_the_last_step_of_an_epoch_are_never_saved(tmp_path):
    """The loss was finite but the step it drove broke the weights; with the epoch's last batch
    no later loss shows it, so the weights themselves are checked before saving."""
    fit(cfg_for(1), toy_stage(), tmp_path, LOGGER)
    before = snapshot(tmp_path)

    def break_weights_on_last_batch(epochs_run, batch, net, loss):
        if epochs_run == 0 and batch == 1:  # 16 samples, batches of 8: batch 1 is the last
            with torch.no_grad():
                net.weight.fill_(float("nan"))
        return loss

    stage = toy_stage(poison=break_weights_on_last_batch)
    with pytest.raises(TrainingDiverged, match=r"weight holds NaN .* after epoch 1"):
        fit(cfg_for(3, resume=True), stage, tmp_path, LOGGER)
    assert snapshot(tmp_path) == before
