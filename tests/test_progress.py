"""Progress: a bar only on a terminal; in a file or pipe one end line with the count and rate."""

from __future__ import annotations

import io
import logging

import pytest
import torch

from common import progress as progress_module
from common.progress import batch_size, progress, quiet


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@pytest.fixture
def end_lines():
    """The end lines (their logger does not propagate, so caplog would not see them)."""
    handler = _Lines()
    logger = progress_module._logger()
    logger.addHandler(handler)
    yield handler.lines
    logger.removeHandler(handler)


def test_in_a_file_there_is_no_bar_and_one_end_line_with_count_and_rate(capsys, end_lines):
    """(pytest's captured stderr is not a terminal.)"""
    assert list(progress(range(5), "drawing", unit="pictures")) == [0, 1, 2, 3, 4]
    [line] = end_lines
    written = capsys.readouterr().err
    assert written.endswith(f" {line}\n") and written.count("\n") == 1 and "\r" not in written
    assert line.startswith("drawing: 5 pictures in ") and line.endswith(" pictures/s)")


def test_only_the_outermost_loop_reports_and_quiet_silences(capsys, end_lines):
    for _ in progress(range(2), "chain", unit="images", size=lambda _: 3):
        list(progress(range(4), "keypoints"))
    with quiet():
        list(progress(range(4), "validation"))
    list(progress(range(4), "summary off", summary=False))
    assert [line.split(" in ")[0] for line in end_lines] == ["chain: 6 images"]


def test_on_a_terminal_it_is_a_tqdm_bar_and_no_end_line(monkeypatch, end_lines):
    stream = io.StringIO()
    stream.isatty = lambda: True
    monkeypatch.setattr(progress_module.sys, "stderr", stream)
    monkeypatch.setattr(progress_module, "tqdm", _recording_tqdm(stream))
    bar = progress(range(3), "epoch 0 train", unit="batch")
    for _ in bar:
        bar.set_postfix(loss="0.1")
    assert bar.count == 3 and end_lines == []
    drawn = stream.getvalue()
    assert "epoch 0 train" in drawn and "loss=0.1" in drawn and "\r" in drawn


def _recording_tqdm(stream: io.StringIO):
    from tqdm import tqdm

    def make(**kwargs):
        return tqdm(file=stream, **kwargs)

    return make


def test_batch_size_counts_the_first_tensor():
    assert batch_size((torch.zeros(5, 3), {"index": torch.arange(5)})) == 5
    assert batch_size(torch.zeros(2, 1)) == 2
