"""The shared epoch loop on a toy stage: LR steps, best keeping, NaN stop, corrupt checkpoints."""

from __future__ import annotations

import logging

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from common.checkpoint import CheckpointError, load_safely, load_training_checkpoint, save_atomic
from common.config import load_config
from common.trainer import Stage, TrainingDiverged, build_optimizer, build_scheduler, fit

LOGGER = logging.getLogger("test")


def toy_stage(poison_epoch: int | None = None, val_metrics=None) -> Stage:
    torch.manual_seed(0)
    data = TensorDataset(torch.randn(32, 3), torch.randn(32, 1))
    model = nn.Linear(3, 1)
    epochs_seen = []

    def train_step(net, batch):
        x, y = batch
        loss = ((net(x) - y) ** 2).mean()
        if poison_epoch is not None and len(epochs_seen) == poison_epoch:
            loss = loss * float("nan")
        return loss

    def validate(net, epoch):
        epochs_seen.append(epoch)
        value = val_metrics[epoch] if val_metrics else 1.0 / (epoch + 1)
        return {"metric": value}

    return Stage(
        model=model,
        make_train_loader=lambda gen: DataLoader(data, batch_size=8, shuffle=True, generator=gen),
        train_step=train_step,
        validate=validate,
        metric_name="toy",
    )


def cfg_for(epochs: int, **extra):
    opts = ["TRAIN.END_EPOCH", str(epochs), "TRAIN.LR", "0.01", "TRAIN.LR_STEP", "[2, 3]"]
    for key, value in extra.items():
        opts += [key, str(value)]
    return load_config(None, opts)


def test_lr_schedule_matches_the_reference_start_of_epoch_stepping():
    cfg = load_config(None, ["TRAIN.LR", "1.0", "TRAIN.LR_STEP", "[170, 200]"])
    optimizer = build_optimizer(cfg, nn.Linear(1, 1))
    scheduler = build_scheduler(cfg, optimizer)
    rates = []
    for _ in range(200):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    # The reference: 1e-3 for epochs 0-168, 1e-4 for 169-198, 1e-5 for 199 (here LR 1).
    assert rates[168] == 1.0 and rates[169] == pytest.approx(0.1)
    assert rates[198] == pytest.approx(0.1) and rates[199] == pytest.approx(0.01)


def test_best_epoch_kept_with_ties_going_to_the_later_epoch(tmp_path):
    stage = toy_stage(val_metrics=[3.0, 1.0, 2.0, 1.0])
    summary = fit(cfg_for(4), stage, tmp_path, LOGGER)
    assert summary["best_epoch"] == 3 and summary["best_perf"] == 1.0
    checkpoint = load_training_checkpoint(tmp_path / "checkpoint.pth")
    assert checkpoint["epoch"] == 4 and checkpoint["best_epoch"] == 3
    assert (tmp_path / "final_state.pth").is_file()


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path):
    stage = toy_stage(poison_epoch=2)
    with pytest.raises(TrainingDiverged, match="loss is nan at epoch 2"):
        fit(cfg_for(4), stage, tmp_path, LOGGER)
    checkpoint = load_training_checkpoint(tmp_path / "checkpoint.pth")
    assert checkpoint["epoch"] == 2  # epochs 0 and 1 completed, epoch 2 never saved
    assert all(torch.isfinite(v).all() for v in checkpoint["state_dict"].values())
    assert not (tmp_path / "final_state.pth").exists()


def test_auto_resume_continues_to_end_epoch(tmp_path):
    fit(cfg_for(2), toy_stage(), tmp_path, LOGGER)
    summary = fit(cfg_for(4, AUTO_RESUME=True), toy_stage(), tmp_path, LOGGER)
    assert [h["epoch"] for h in summary["history"]] == [2, 3]
    assert load_training_checkpoint(tmp_path / "checkpoint.pth")["epoch"] == 4


def test_truncated_and_foreign_checkpoints_are_refused_by_name(tmp_path):
    good = tmp_path / "checkpoint.pth"
    fit(cfg_for(1), toy_stage(), tmp_path, LOGGER)
    data = good.read_bytes()
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated.pth"):
        load_training_checkpoint(truncated)
    foreign = tmp_path / "foreign.pth"
    save_atomic({"weights": torch.zeros(2)}, foreign)
    with pytest.raises(CheckpointError, match="not a training checkpoint"):
        load_training_checkpoint(foreign)
    # A resume from a truncated checkpoint fails before anything is overwritten.
    good.write_bytes(data[:100])
    with pytest.raises(CheckpointError):
        fit(cfg_for(3, AUTO_RESUME=True), toy_stage(), tmp_path, LOGGER)
    assert good.read_bytes() == data[:100]


def test_code_in_a_checkpoint_pickle_is_not_run(tmp_path):
    import pickle

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    path = tmp_path / "evil.pth"
    with open(path, "wb") as handle:
        pickle.dump({"state_dict": Evil()}, handle)
    with pytest.raises(CheckpointError, match="evil.pth"):
        load_safely(path)


def test_channels_last_training_gives_the_same_weights_on_cpu(tmp_path):
    """TRAIN.CHANNELS_LAST changes the memory layout only: a tiny conv net trained both ways ends
    with (numerically) the same weights, and the channels-last run really used NHWC weights."""

    def conv_stage() -> Stage:
        torch.manual_seed(0)
        data = TensorDataset(torch.randn(16, 3, 8, 8), torch.randn(16, 4, 8, 8))
        model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 4, 1))
        return Stage(
            model=model,
            make_train_loader=lambda gen: DataLoader(data, batch_size=4, shuffle=True,
                                                     generator=gen),  # fmt: skip
            train_step=lambda net, batch: ((net(batch[0]) - batch[1]) ** 2).mean(),
            validate=lambda net, epoch: {"metric": 1.0},
            metric_name="loss",
        )

    results = {}
    for layout in ("False", "True"):
        cfg = load_config(None, ["TRAIN.END_EPOCH", "2", "TRAIN.CHANNELS_LAST", layout])
        stage = conv_stage()
        out = tmp_path / layout
        out.mkdir()
        fit(cfg, stage, out, LOGGER)
        results[layout] = stage.model
    nhwc = results["True"][0].weight
    assert nhwc.is_contiguous(memory_format=torch.channels_last) and not nhwc.is_contiguous()
    for plain, last in zip(results["False"].parameters(), results["True"].parameters(),
                           strict=True):
        torch.testing.assert_close(plain, last, rtol=1e-5, atol=1e-6)


def test_unknown_amp_dtype_is_refused():
    with pytest.raises(ValueError, match="TRAIN.AMP_DTYPE"):  # when the config is loaded
        load_config(None, ["TRAIN.AMP_DTYPE", "int8"])
    cfg = load_config(None)
    cfg.defrost()
    cfg.TRAIN.AMP_DTYPE = "int8"  # a config built in code: refused by fit itself
    with pytest.raises(ValueError, match="TRAIN.AMP_DTYPE"):
        fit(cfg, toy_stage(), None, LOGGER)


class SlowInput(torch.utils.data.Dataset):
    """A data set that takes 20 ms per item: the loop should see itself waiting for it."""

    def __len__(self) -> int:
        return 8

    def __getitem__(self, index: int):
        import time

        time.sleep(0.02)
        return torch.ones(3), torch.zeros(1)


def test_epoch_log_reports_the_share_of_time_spent_waiting_for_input(tmp_path, caplog):
    fast = toy_stage()
    slow = toy_stage()
    slow.make_train_loader = lambda gen: DataLoader(SlowInput(), batch_size=2, generator=gen)
    shares = {}
    for name, stage in (("fast", fast), ("slow", slow)):
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="test"):
            fit(cfg_for(1), stage, tmp_path / name, LOGGER)
        line = next(r.getMessage() for r in caplog.records if "waiting for input" in r.getMessage())
        shares[name] = float(line.split("images/s, ")[1].split("%")[0])
    assert shares["slow"] > 80 and shares["slow"] > shares["fast"]


def test_a_first_epoch_that_diverges_says_no_checkpoint_is_kept(tmp_path):
    with pytest.raises(TrainingDiverged, match="no checkpoint was written yet") as error:
        fit(cfg_for(3), toy_stage(poison_epoch=0), tmp_path, LOGGER)
    assert "last good checkpoint" not in str(error.value)
    assert not (tmp_path / "checkpoint.pth").exists()


def test_resume_follows_a_changed_lr_schedule_and_end_epoch_and_says_so(tmp_path, caplog):
    fit(cfg_for(2), toy_stage(), tmp_path, LOGGER)  # LR_STEP [2, 3]: epoch 2 would run at 1e-4
    caplog.set_level(logging.INFO, logger="test")
    cfg = cfg_for(5, AUTO_RESUME=True, **{"TRAIN.LR_STEP": "[4]"})
    summary = fit(cfg, toy_stage(), tmp_path, LOGGER)
    assert [h["epoch"] for h in summary["history"]] == [2, 3, 4]
    text = caplog.text
    assert "TRAIN.END_EPOCH changed from 2 to 5" in text
    assert "the LR schedule changed (milestones [1, 2] -> [3]" in text
    epochs = [r.getMessage().split() for r in caplog.records if r.getMessage().startswith("epoch")]
    rates = [words[3] for words in epochs]
    assert rates == ["1.00e-02", "1.00e-03", "1.00e-03"]  # as a fresh run with LR_STEP [4]


def test_resume_with_an_unchanged_schedule_logs_no_change(tmp_path, caplog):
    fit(cfg_for(2), toy_stage(), tmp_path, LOGGER)
    caplog.set_level(logging.INFO, logger="test")
    fit(cfg_for(2, AUTO_RESUME=True), toy_stage(), tmp_path, LOGGER)
    assert "schedule changed" not in caplog.text and "END_EPOCH changed" not in caplog.text


def test_patience_stops_when_the_metric_no_longer_goes_lower(tmp_path):
    # lower at epochs 0 and 1, then ties (which model_best keeps, but which are no progress)
    stage = toy_stage(val_metrics=[3.0, 2.0, 2.0, 2.0, 1.0, 1.0])
    summary = fit(cfg_for(6, **{"TRAIN.PATIENCE": 2}), stage, tmp_path, LOGGER)
    assert [row["epoch"] for row in summary["history"]] == [0, 1, 2, 3]
    assert summary["best_epoch"] == 3 and (tmp_path / "final_state.pth").is_file()
    checkpoint = load_training_checkpoint(tmp_path / "checkpoint.pth")
    assert checkpoint["epoch"] == 4 and checkpoint["improved_epoch"] == 1
    # a resume of the stopped run trains no further epoch; without patience it goes on
    again = fit(cfg_for(6, **{"TRAIN.PATIENCE": 2, "AUTO_RESUME": True}),
                toy_stage(val_metrics=[3.0, 2.0, 2.0, 2.0, 1.0, 1.0]), tmp_path, LOGGER)
    assert again["history"] == []
    longer = fit(cfg_for(6, **{"AUTO_RESUME": True}),
                 toy_stage(val_metrics=[3.0, 2.0, 2.0, 2.0, 1.0, 1.0]), tmp_path, LOGGER)
    assert [row["epoch"] for row in longer["history"]] == [4, 5]
    assert longer["best_epoch"] == 5
