"""The DataLoaders of every stage, for training and for test time (kept apart from the training
loop, so the test-time paths do not import it)."""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader
from yacs.config import CfgNode

from common.distributed import train_sampler
from common.seed import seed_worker
from common.workers import usable_workers


def make_loader(
    dataset, cfg: CfgNode, train: bool, generator: torch.Generator | None = None
) -> DataLoader:
    """The DataLoader of either stage. Training batches are shuffled by the epoch's
    generator (and sharded across processes under torchrun); test batches keep their order.

    Test batches on a machine without CUDA load in the main process, as the reference's did:
    the CPU forwards use every core, so workers only compete with them, and starting them (the
    leaderboard configs ask for 24) costs more than the decodes they would overlap."""
    sampler = train_sampler(dataset, generator) if train else None
    workers = usable_workers(cfg.WORKERS) if train or torch.cuda.is_available() else 0
    return DataLoader(
        dataset,
        batch_size=cfg.TRAIN.BATCH_SIZE_PER_GPU if train else cfg.TEST.BATCH_SIZE_PER_GPU,
        shuffle=train and cfg.TRAIN.SHUFFLE and sampler is None,
        sampler=sampler,
        num_workers=workers,
        worker_init_fn=seed_worker,
        generator=generator,
        pin_memory=cfg.PIN_MEMORY and torch.cuda.is_available(),
    )
