"""Multi-GPU and multi-node training with DistributedDataParallel, launched by ``torchrun``.

``torchrun --nproc_per_node N tools/train.py --cfg ...`` sets ``WORLD_SIZE``, ``RANK`` and
``LOCAL_RANK``; a plain ``python tools/train.py`` runs as a single process, unchanged.
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import Dataset, DistributedSampler


def default_device() -> torch.device:
    """The device of a single-process run: the (current) GPU where there is one, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def init_distributed() -> torch.device:
    """Join the process group when launched by torchrun; return this process's device."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend=backend)
    if torch.cuda.is_available():
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local_rank)
        return torch.device("cuda", local_rank)
    return torch.device("cpu")


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def is_main_process() -> bool:
    return rank() == 0


def barrier() -> None:
    if is_distributed():
        dist.barrier()


def wrap_model(model: nn.Module, device: torch.device) -> nn.Module:
    """DDP around the model when distributed; the model itself otherwise."""
    if not is_distributed():
        return model
    device_ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=device_ids)


def unwrap_model(model: nn.Module) -> nn.Module:
    """The bare model, so checkpoints carry no ``module.`` prefix."""
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def train_sampler(dataset: Dataset, generator: torch.Generator) -> DistributedSampler | None:
    """This process's shard of an epoch, shuffled by the epoch's generator; None when single."""
    if not is_distributed():
        return None
    seed = int(torch.randint(2**31 - 1, (1,), generator=generator))
    return DistributedSampler(dataset, num_replicas=world_size(), rank=rank(), shuffle=True,
                              seed=seed, drop_last=False)  # fmt: skip


def average(value: float) -> float:
    """The mean of a number over all processes."""
    if not is_distributed():
        return value
    on_gpu = dist.get_backend() == "nccl"
    device = torch.device("cuda", torch.cuda.current_device()) if on_gpu else None
    tensor = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(tensor)
    return float(tensor.item()) / world_size()


def main_process_says(flag: bool) -> bool:
    """The first process's ``flag`` on every process: for decisions only it can make (it alone
    validates), such as stopping early."""
    if not is_distributed():
        return flag
    on_gpu = dist.get_backend() == "nccl"
    device = torch.device("cuda", torch.cuda.current_device()) if on_gpu else None
    tensor = torch.tensor([int(flag)], dtype=torch.int64, device=device)
    dist.broadcast(tensor, src=0)
    return bool(tensor.item())


def replicas_in_sync(model: nn.Module) -> bool:
    """Whether every process holds the same parameters (a sum and a sum of squares per tensor,
    in float64, compared exactly); always True when single. DDP keeps them identical, so a
    difference means the processes trained apart. Buffers (BN statistics) are rank 0's."""
    if not is_distributed():
        return True
    with torch.no_grad():
        values = [p.detach().double() for p in model.parameters()]
        fingerprint = torch.stack([v.sum() for v in values] + [v.square().sum() for v in values])
    gathered = [torch.empty_like(fingerprint) for _ in range(world_size())]
    dist.all_gather(gathered, fingerprint)
    return all(torch.equal(other, gathered[0]) for other in gathered)


def cleanup() -> None:
    if is_distributed():
        dist.destroy_process_group()
