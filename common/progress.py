"""Progress that reads well on a terminal and in a log file.

On a terminal (stderr is a tty) a loop shows a tqdm bar. Written to a file or a pipe, a bar is
hundreds of carriage-return redraws; there a loop shows nothing while it runs and one line at
the end: how many items, how long, how many per second. Only the outermost loop says so (the
pipeline's chain, not each chunk inside it), and ``quiet()`` silences loops that a caller
reports itself (validation inside a training epoch, which logs one line per epoch).
"""

from __future__ import annotations

import contextlib
import logging
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from tqdm import tqdm

_LOG = logging.getLogger("hrnet.progress")
_state = {"depth": 0, "quiet": 0}


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at the time (pytest and tools swap it)."""

    @property
    def stream(self):  # noqa: ANN201
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:  # noqa: ANN001
        pass


def _logger() -> logging.Logger:
    """The end-of-loop logger: its own stderr handler, so it prints without any set-up."""
    if not _LOG.handlers:
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
        _LOG.addHandler(handler)
        _LOG.setLevel(logging.INFO)
        _LOG.propagate = False
    return _LOG


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Inside this block loops draw no bar end line (the caller logs its own summary)."""
    _state["quiet"] += 1
    try:
        yield
    finally:
        _state["quiet"] -= 1


def batch_size(batch: Any) -> int:
    """Samples in a DataLoader batch: the length of its first tensor."""
    first = batch[0] if isinstance(batch, list | tuple) else batch
    return int(first.shape[0]) if hasattr(first, "shape") else 0


class Progress:
    """An iterable wrapper with tqdm's ``set_postfix`` and ``close``; see the module doc."""

    def __init__(self, iterable: Iterable, desc: str, total: int | None = None,
                 unit: str = "it", size: Callable[[Any], int] | None = None,
                 summary: bool = True, disable: bool = False) -> None:
        self.iterable, self.desc, self.unit, self.size = iterable, desc, unit, size
        if total is None and size is None and hasattr(iterable, "__len__"):
            total = len(iterable)
        self.total = total
        self.count = 0
        self.silent = disable or _state["quiet"] > 0
        self.summary = summary and not self.silent and _state["depth"] == 0
        self.bar = None
        if not self.silent and sys.stderr.isatty():
            self.bar = tqdm(total=total, desc=desc, unit=unit, leave=False, dynamic_ncols=True)

    def __iter__(self) -> Iterator:
        start = time.perf_counter()
        _state["depth"] += 1
        try:
            for item in self.iterable:
                yield item
                step = self.size(item) if self.size is not None else 1
                self.count += step
                if self.bar is not None:
                    self.bar.update(step)
        finally:
            _state["depth"] -= 1
            self.close()
        if self.summary and self.bar is None:
            seconds = max(time.perf_counter() - start, 1e-9)
            _logger().info("%s: %d %s in %.1f s (%.1f %s/s)", self.desc, self.count, self.unit,
                           seconds, self.count / seconds, self.unit)  # fmt: skip

    def set_postfix(self, **values: object) -> None:
        if self.bar is not None:
            self.bar.set_postfix(**values)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def progress(iterable: Iterable, desc: str, total: int | None = None, unit: str = "it",
             size: Callable[[Any], int] | None = None, summary: bool = True,
             disable: bool = False) -> Progress:
    """Wrap a loop: a bar on a terminal, else one end line with the count and items/s.

    ``size(item)`` counts the items in each element (images in a batch); ``summary=False``
    leaves the end line to the caller.
    """
    return Progress(iterable, desc, total, unit, size, summary, disable)
