"""The epoch loop both stages share: optimiser, LR steps, exact resume, best-epoch keeping.

A stage supplies a :class:`Stage` (its model, how to build one epoch's loader, how to train one
batch and how to validate); this module owns everything around it, so the two stages checkpoint,
resume and fail the same way.
"""

from __future__ import annotations

import bisect
import logging
import math
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader
from yacs.config import CfgNode

from common.checkpoint import (
    BEST_NAME,
    CHECKPOINT_NAME,
    FINAL_NAME,
    CheckpointError,
    first_non_finite,
    load_training_checkpoint,
    restore_rng_state,
    rng_state,
    save_atomic,
)
from common.distributed import (
    average,
    barrier,
    is_main_process,
    main_process_says,
    replicas_in_sync,
    unwrap_model,
    world_size,
    wrap_model,
)
from common.errors import ConfigError
from common.progress import batch_size, progress
from common.progress import quiet as quiet_progress
from common.seed import epoch_generator


class TrainingDiverged(RuntimeError):
    """The loss or the weights became NaN or infinite; the last good checkpoint is kept."""


def _what_is_kept(checkpoint_path: Path) -> str:
    """The end of a divergence message: which checkpoint survives, if any does."""
    if checkpoint_path.exists():
        return f"the last good checkpoint ({checkpoint_path}) is kept"
    return (
        f"no checkpoint was written yet (nothing at {checkpoint_path}); lower TRAIN.LR or check "
        "the data, then start again"
    )


@dataclass
class Stage:
    """What a stage plugs into :func:`fit`.

    ``train_step(model, batch)`` returns the loss tensor of one batch. ``validate(model, epoch)``
    returns a dict with at least ``metric`` (lower is better), logged and written to TensorBoard.
    """

    model: nn.Module
    make_train_loader: Callable[[torch.Generator], DataLoader]
    train_step: Callable[[nn.Module, Any], torch.Tensor]
    validate: Callable[[nn.Module, int], dict[str, float]]
    metric_name: str
    after_validation: Callable[[nn.Module, int, dict[str, float], Any], None] | None = None


def build_optimizer(cfg: CfgNode, model: nn.Module) -> torch.optim.Optimizer:
    """Adam as the reference (no weight decay unless ``TRAIN.USE_WD``), or SGD."""
    weight_decay = cfg.TRAIN.WD if cfg.TRAIN.USE_WD else 0.0
    name = cfg.TRAIN.OPTIMIZER.lower()
    if name == "adam":
        return torch.optim.Adam(model.parameters(), lr=cfg.TRAIN.LR, weight_decay=weight_decay)
    if name == "sgd":
        return torch.optim.SGD(
            model.parameters(),
            lr=cfg.TRAIN.LR,
            momentum=cfg.TRAIN.MOMENTUM,
            weight_decay=weight_decay,
            nesterov=cfg.TRAIN.NESTEROV,
        )
    raise ConfigError(f"TRAIN.OPTIMIZER must be 'adam' or 'sgd', got {cfg.TRAIN.OPTIMIZER!r}")


def build_scheduler(cfg: CfgNode, optimizer: torch.optim.Optimizer):
    """The reference's LR steps: it stepped MultiStepLR at the start of every epoch, so epoch
    ``e`` (0-based) ran at ``LR * factor**#{m : m <= e + 1}``. Milestones ``m - 1`` stepped at
    the end of each epoch give the same rates without stepping before the optimiser.
    """
    return torch.optim.lr_scheduler.MultiStepLR(optimizer, _milestones(cfg), cfg.TRAIN.LR_FACTOR)


def _milestones(cfg: CfgNode) -> list[int]:
    return [max(int(m) - 1, 1) for m in cfg.TRAIN.LR_STEP]


def _adopt_new_schedule(
    cfg: CfgNode, scheduler, optimizer: torch.optim.Optimizer, checkpoint: dict, logger
) -> None:
    """After a resume, follow this config's TRAIN.LR_STEP / LR_FACTOR / END_EPOCH rather than
    the ones saved in the checkpoint, and say so; an unchanged schedule is left bit for bit."""
    milestones, gamma = Counter(_milestones(cfg)), cfg.TRAIN.LR_FACTOR
    saved_end = checkpoint.get("end_epoch")
    if saved_end is not None and int(saved_end) != cfg.TRAIN.END_EPOCH:
        logger.info("resume: TRAIN.END_EPOCH changed from %d to %d; training to epoch %d",
                    int(saved_end), cfg.TRAIN.END_EPOCH, cfg.TRAIN.END_EPOCH)  # fmt: skip
    if scheduler.milestones == milestones and scheduler.gamma == gamma:
        return
    before = sorted(scheduler.milestones.elements())
    scheduler.milestones, scheduler.gamma = milestones, gamma
    steps_taken = bisect.bisect_right(sorted(milestones.elements()), scheduler.last_epoch)
    for group, base_lr in zip(optimizer.param_groups, scheduler.base_lrs, strict=True):
        group["lr"] = base_lr * gamma**steps_taken
    scheduler._last_lr = [group["lr"] for group in optimizer.param_groups]
    logger.info(
        "resume: the LR schedule changed (milestones %s -> %s, factor %s); epoch %d runs at "
        "lr %.2e under the new TRAIN.LR_STEP", before, sorted(scheduler.milestones.elements()),
        scheduler.gamma, scheduler.last_epoch, optimizer.param_groups[0]["lr"],
    )  # fmt: skip


def _amp_dtype(name: str) -> torch.dtype:
    """``TRAIN.AMP_DTYPE`` as a torch dtype; only the two autocast types are accepted."""
    dtypes = {"float16": torch.float16, "bfloat16": torch.bfloat16}
    if name not in dtypes:
        raise ConfigError(f"TRAIN.AMP_DTYPE must be one of {list(dtypes)}, got {name!r}")
    return dtypes[name]


def _metric_is_better(value: float, best: float) -> bool:
    return value <= best  # the reference keeps the later epoch on a tie


def _plateaued(cfg: CfgNode, epoch: int, improved_epoch: int) -> bool:
    """``TRAIN.PATIENCE`` epochs since the validation metric last went strictly lower."""
    return cfg.TRAIN.PATIENCE > 0 and epoch - improved_epoch >= cfg.TRAIN.PATIENCE


def fit(
    cfg: CfgNode,
    stage: Stage,
    output_dir: Path,
    logger: logging.Logger,
    writer=None,
    device: torch.device | None = None,
    on_epoch_end: Callable[[int, dict[str, float]], None] | None = None,
) -> dict[str, Any]:
    """Train from ``TRAIN.BEGIN_EPOCH`` (or the checkpoint, with ``AUTO_RESUME``) to
    ``TRAIN.END_EPOCH``, or until ``TRAIN.PATIENCE`` epochs pass without a lower validation
    metric. Writes ``checkpoint.pth`` every epoch, ``model_best.pth`` when the
    validation metric is at least as good as the best so far, and ``final_state.pth`` at the end.
    ``on_epoch_end(epoch, metrics)`` is called on the main process after each epoch's
    checkpoint (e.g. to report to a tuner).
    """
    device = device or torch.device("cpu")
    model = stage.model.to(device)
    if cfg.TRAIN.CHANNELS_LAST:
        model = model.to(memory_format=torch.channels_last)
    optimizer = build_optimizer(cfg, model)
    main = is_main_process()
    scheduler = build_scheduler(cfg, optimizer)
    use_amp = bool(cfg.TRAIN.AMP) and device.type == "cuda"
    amp_dtype = _amp_dtype(cfg.TRAIN.AMP_DTYPE)
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp and amp_dtype == torch.float16)
    begin_epoch = cfg.TRAIN.BEGIN_EPOCH
    best_perf, best_epoch = math.inf, -1
    improved_epoch = -1  # the last epoch whose metric was strictly lower than all before

    checkpoint_path = output_dir / CHECKPOINT_NAME
    if cfg.AUTO_RESUME and checkpoint_path.exists():
        checkpoint = load_training_checkpoint(checkpoint_path)
        try:
            model.load_state_dict(checkpoint["state_dict"])
            optimizer.load_state_dict(checkpoint["optimizer"])
            scheduler.load_state_dict(checkpoint["scheduler"])
        except (RuntimeError, ValueError, KeyError) as error:
            raise CheckpointError(
                f"{checkpoint_path} does not fit the model or optimiser of this config (another "
                f"MODEL.NUM_JOINTS, widths or TRAIN.OPTIMIZER?); move it away to start afresh: "
                f"{error}"
            ) from error
        _adopt_new_schedule(cfg, scheduler, optimizer, checkpoint, logger)
        if "scaler" in checkpoint and use_amp:
            scaler.load_state_dict(checkpoint["scaler"])
        if "rng" in checkpoint:
            restore_rng_state(checkpoint["rng"])
        begin_epoch = int(checkpoint["epoch"])
        best_perf, best_epoch = float(checkpoint["best_perf"]), int(checkpoint["best_epoch"])
        improved_epoch = int(checkpoint.get("improved_epoch", best_epoch))
        logger.info(
            "resumed from %s: epoch %d of %d, best %s %.4f (epoch %d)",
            checkpoint_path, begin_epoch, cfg.TRAIN.END_EPOCH, stage.metric_name,
            best_perf, best_epoch,
        )  # fmt: skip

    net = wrap_model(model, device)  # DDP under torchrun; the checkpoints hold the bare model
    history: list[dict[str, float]] = []
    if begin_epoch > 0 and _plateaued(cfg, begin_epoch - 1, improved_epoch):
        logger.info("the run had stopped: no lower val %s for TRAIN.PATIENCE %d epochs since "
                    "epoch %d", stage.metric_name, cfg.TRAIN.PATIENCE, improved_epoch)  # fmt: skip
        begin_epoch = cfg.TRAIN.END_EPOCH
    for epoch in range(begin_epoch, cfg.TRAIN.END_EPOCH):
        # Each epoch's randomness depends only on (seed, epoch), so a resume replays it exactly.
        torch.manual_seed(cfg.RANDOMSEED * 1000003 + epoch)
        loader = stage.make_train_loader(epoch_generator(cfg.RANDOMSEED, epoch))
        lr = optimizer.param_groups[0]["lr"]
        net.train()
        running, count, samples = 0.0, 0, 0
        input_wait = 0.0  # time the steps waited for the loader: its share of the epoch
        epoch_start = fetch_start = time.perf_counter()
        bar = progress(loader, f"epoch {epoch} train", unit="batch", summary=False,
                       disable=not main)  # fmt: skip
        for batch in bar:
            input_wait += time.perf_counter() - fetch_start
            with torch.autocast(device.type, dtype=amp_dtype, enabled=use_amp):
                loss = stage.train_step(net, batch)
            if not torch.isfinite(loss):
                raise TrainingDiverged(
                    f"loss is {loss.item()} at epoch {epoch}, batch {count}: training stopped; "
                    + _what_is_kept(checkpoint_path)
                )
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            running += loss.item()
            count += 1
            samples += batch_size(batch)
            bar.set_postfix(loss=f"{running / count:.5f}")
            fetch_start = time.perf_counter()
        bar.close()
        epoch_seconds = max(time.perf_counter() - epoch_start, 1e-9)
        images_per_second = samples / epoch_seconds
        wait_share = input_wait / epoch_seconds
        broken = first_non_finite(model.state_dict())
        if broken is not None:
            raise TrainingDiverged(
                f"{broken} holds NaN or infinite values after epoch {epoch} (the last optimiser "
                "step diverged): training stopped; " + _what_is_kept(checkpoint_path)
            )
        scheduler.step()
        train_loss = average(running / max(count, 1))
        if not main:  # validation, checkpoints and logs belong to the first process
            barrier()
            if main_process_says(False):
                break
            continue

        model.eval()
        with torch.no_grad():
            with quiet_progress():  # the epoch's line below says it all
                metrics = stage.validate(unwrap_model(net), epoch)
        value = float(metrics["metric"])
        if value < best_perf:
            improved_epoch = epoch
        is_best = _metric_is_better(value, best_perf)
        if is_best:
            best_perf, best_epoch = value, epoch
            save_atomic(model.state_dict(), output_dir / BEST_NAME)
        state = {
            "epoch": epoch + 1,
            "end_epoch": cfg.TRAIN.END_EPOCH,
            "model": cfg.MODEL.NAME,
            "state_dict": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "scaler": scaler.state_dict(),
            "rng": rng_state(),
            "best_perf": best_perf,
            "best_epoch": best_epoch,
            "improved_epoch": improved_epoch,
            "perf": value,
        }
        save_atomic(state, checkpoint_path)
        logger.info(
            "epoch %d lr %.2e train loss %.6f val %s %.4f%s (training %.1f images/s, %.0f%% of "
            "it waiting for input)",
            epoch, lr, train_loss, stage.metric_name, value, " (best)" if is_best else "",
            images_per_second, 100 * wait_share,
        )  # fmt: skip
        if writer is not None:
            writer.add_scalar("train/loss", train_loss, epoch)
            writer.add_scalar("train/lr", lr, epoch)
            writer.add_scalar("train/images_per_second", images_per_second, epoch)
            writer.add_scalar("train/input_wait_share", wait_share, epoch)
            for key, val in metrics.items():
                if isinstance(val, (int, float)):
                    writer.add_scalar(f"valid/{key}", val, epoch)
            writer.flush()
        if stage.after_validation is not None:
            stage.after_validation(model, epoch, metrics, writer)
        history.append({"epoch": epoch, "train_loss": train_loss, **{
            k: v for k, v in metrics.items() if isinstance(v, (int, float))}})
        if on_epoch_end is not None:
            on_epoch_end(epoch, history[-1])
        stop = _plateaued(cfg, epoch, improved_epoch)
        if stop:
            logger.info("stopping after epoch %d: no lower val %s for TRAIN.PATIENCE %d epochs "
                        "(last at epoch %d)", epoch, stage.metric_name, cfg.TRAIN.PATIENCE,
                        improved_epoch)  # fmt: skip
        barrier()
        if main_process_says(stop):
            break

    if not replicas_in_sync(model):
        raise RuntimeError("the processes ended training with different weights: DDP lost sync")
    if world_size() > 1:
        logger.info("weights identical on all %d processes", world_size())
    if main:
        save_atomic(model.state_dict(), output_dir / FINAL_NAME)
    logger.info("best %s %.4f at epoch %d", stage.metric_name, best_perf, best_epoch)
    return {"best_perf": best_perf, "best_epoch": best_epoch, "history": history}
