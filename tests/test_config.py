"""Configs: every experiment file loads, overrides work, official HRNet keys are accepted."""

from __future__ import annotations

from pathlib import Path

import pytest

from common.config import load_config, str2bool
from common.stage_data import REFERENCE_DROP_ROWS

ROOT = Path(__file__).resolve().parents[1]
EXPERIMENTS = sorted((ROOT / "experiments").rglob("*.yaml"))


@pytest.mark.parametrize("path", EXPERIMENTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_experiment_file_loads(path: Path):
    cfg = load_config(path)
    assert cfg.TASK in ("keypoint", "bbox", "gesture")


def test_leaderboard_keypoint_config_has_reference_values():
    cfg = load_config(ROOT / "experiments/keypoint/w48_384x288_adam_lr1e-3_02.yaml")
    assert list(cfg.MODEL.IMAGE_SIZE) == [288, 384] and list(cfg.MODEL.HEATMAP_SIZE) == [72, 96]
    assert cfg.MODEL.EXTRA.STAGE4.NUM_CHANNELS == [48, 96, 192, 384]
    assert cfg.TRAIN.END_EPOCH == 200 and list(cfg.TRAIN.LR_STEP) == [170, 200]
    assert cfg.TRAIN.BATCH_SIZE_PER_GPU == 8 and cfg.TEST_RATIO == 0.2
    assert cfg.DATASET.DROP_REFERENCE_ROWS and len(REFERENCE_DROP_ROWS) == 104


def test_overrides_and_bad_overrides():
    cfg = load_config(None, ["TRAIN.LR", "0.01", "MODEL.NUM_JOINTS", "21"])
    assert cfg.TRAIN.LR == 0.01 and cfg.MODEL.NUM_JOINTS == 21
    with pytest.raises(ValueError, match="KEY VALUE"):
        load_config(None, ["TRAIN.LR"])
    with pytest.raises(KeyError):
        load_config(None, ["TRAIN.NOT_A_KEY", "1"])
    with pytest.raises(FileNotFoundError, match="config file not found"):
        load_config(ROOT / "experiments/none.yaml")


def test_test_option_parsing_never_evaluates_code():
    assert str2bool("True") is True and str2bool("false") is False
    with pytest.raises(Exception, match="expected True or False"):
        str2bool("__import__('os')")
