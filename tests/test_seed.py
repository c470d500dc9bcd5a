"""common/seed.py: the determinism switch follows the config, in both directions."""

from __future__ import annotations

import torch

from common.config import load_config
from common.seed import seed_everything
from tests.conftest import ROOT

CFG = ROOT / "experiments/keypoint/tiny_cpu_keypoint.yaml"


def test_deterministic_algorithms_follow_the_config_both_ways():
    try:
        seed_everything(1, load_config(CFG, ["REPRODUCIBILITY.DETERMINISTIC_ALGORITHMS", "True"]))
        assert torch.are_deterministic_algorithms_enabled()
        seed_everything(1, load_config(CFG))
        assert not torch.are_deterministic_algorithms_enabled()
        seed_everything(1, load_config(CFG))
        assert not torch.are_deterministic_algorithms_enabled()
    finally:
        torch.use_deterministic_algorithms(False)
