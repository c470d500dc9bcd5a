"""DataLoader workers are capped at the usable CPUs, and the cap is logged once."""

from __future__ import annotations

import logging

import pytest

from common import workers


@pytest.fixture
def two_cpus(monkeypatch):
    monkeypatch.setattr(workers, "usable_cpus", lambda: 2)
    monkeypatch.setattr(workers, "_reported", set())


def test_a_request_within_the_cpus_is_kept(two_cpus, caplog):
    with caplog.at_level(logging.INFO, logger="common.workers"):
        assert [workers.usable_workers(n) for n in (0, 1, 2)] == [0, 1, 2]
    assert caplog.records == []


def test_a_larger_request_is_capped_and_said_once(two_cpus, caplog):
    with caplog.at_level(logging.INFO, logger="common.workers"):
        assert workers.usable_workers(24) == 2
        assert workers.usable_workers(24) == 2
    messages = [r.getMessage() for r in caplog.records]
    assert messages == ["WORKERS 24: using 2 DataLoader workers, the usable CPUs of this machine"]


def test_the_training_loader_of_both_stages_uses_the_cap(two_cpus):
    import torch
    from torch.utils.data import TensorDataset

    from common.config import load_config
    from common.loaders import make_loader

    cfg = load_config(None, ["WORKERS", "24"])
    loader = make_loader(TensorDataset(torch.zeros(4, 1)), cfg, train=True)
    assert loader.num_workers == 2


def test_test_loaders_on_the_cpu_use_no_workers(two_cpus, monkeypatch):
    import torch
    from torch.utils.data import TensorDataset

    from common.config import load_config
    from common.loaders import make_loader

    cfg = load_config(None, ["WORKERS", "24"])
    dataset = TensorDataset(torch.zeros(4, 1))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert make_loader(dataset, cfg, train=False).num_workers == 0
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert make_loader(dataset, cfg, train=False).num_workers == 2


def test_usable_cpus_is_at_least_one():
    assert workers.usable_cpus() >= 1
