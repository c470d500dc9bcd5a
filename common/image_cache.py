"""The decoded-image cache of small training sets (``DATASET.CACHE_DECODED_MB``).

A training epoch decodes every JPEG again: at 1920x1080 the decode is most of a sample's cost
(benchmarks/loader_speed.py). When the whole set's decodes fit the budget they are made once,
in the main process, before the DataLoader starts its workers; the workers are forked with the
decodes already in memory and share them (copy-on-write pages that nobody writes), so each
sample costs only its crop, its target and its normalisation. A set over the budget is read
from its files as before. Each distinct file is decoded once, however many rows name it.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

from common.io import image_size, read_image

MEGABYTE = 1 << 20


def decoded_bytes(paths: Sequence[Path]) -> int:
    """Bytes of the BGR decodes of the distinct ``paths``, from their headers."""
    total = 0
    for path in dict.fromkeys(paths):
        width, height = image_size(path)
        total += width * height * 3
    return total


def cached_decodes(paths: Sequence[Path | str], budget_mb: float) -> list[np.ndarray] | None:
    """Every path's BGR decode (one array per distinct file, shared by its rows) when they
    fit ``budget_mb`` megabytes; None when they do not or the budget is 0. OpenCV's decoder
    releases the GIL, so the decodes run on one thread per core."""
    paths = [Path(path) for path in paths]
    if budget_mb <= 0 or not paths or decoded_bytes(paths) > budget_mb * MEGABYTE:
        return None
    distinct = list(dict.fromkeys(paths))
    with ThreadPoolExecutor(max(1, torch.get_num_threads())) as pool:
        decodes = dict(zip(distinct, pool.map(read_image, distinct), strict=True))
    return [decodes[path] for path in paths]
