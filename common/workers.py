"""DataLoader workers that fit the machine.

The leaderboard configs ask for ``WORKERS: 24``; on a machine with fewer usable CPUs that many
processes only compete for the cores (and PyTorch warns about it). Capping changes which worker
loads which batch, so runs on one machine stay reproducible, but a capped run's augmentation
draws differ from an uncapped one's.
"""

from __future__ import annotations

import logging
import os

_LOG = logging.getLogger(__name__)
_reported: set[tuple[int, int]] = set()


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask where the OS has one)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def usable_workers(requested: int) -> int:
    """``requested`` DataLoader workers, at most the usable CPUs; logs once when it caps."""
    requested = max(0, int(requested))
    cpus = usable_cpus()
    if requested <= cpus:
        return requested
    if (requested, cpus) not in _reported:
        _reported.add((requested, cpus))
        _LOG.warning("WORKERS %d: using %d DataLoader workers, the usable CPUs of this machine",
                     requested, cpus)  # fmt: skip
    return cpus
