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
    assert cfg.TASK in ("keypoint", "bbox", "detect", "gesture")


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


# --------------------------------------------------------------------------- honest keys


def test_every_key_is_read_somewhere_or_declared_a_compatibility_key():
    """A key that no code names (by its last component) must be in COMPAT_KEYS, and every
    compatibility key must exist."""
    from common.config import COMPAT_KEYS, get_defaults
    from common.config_check import full_keys

    defaults = get_defaults()
    keys = [k for k in full_keys(defaults) if not k.startswith("MODEL.EXTRA.")]
    assert set(COMPAT_KEYS) <= set(keys)
    sources = [p for d in ("common", "HRNet_bbox", "HRNet_keypoint", "models", "tools",
                           "benchmarks") for p in (ROOT / d).rglob("*.py")]
    code = "\n".join(p.read_text() for p in sources if p.name not in ("config.py",))
    import re

    unread = [k for k in keys if k not in COMPAT_KEYS
              and not re.search(rf"\b{re.escape(k.split('.')[-1])}\b", code)]
    assert unread == []


def test_a_compatibility_key_set_to_another_value_warns_with_the_replacement(caplog):
    with caplog.at_level("WARNING", logger="common.config"):
        load_config(None, ["TRAIN.RESUME", "True"])
    assert any("TRAIN.RESUME" in r.message and "AUTO_RESUME" in r.message for r in caplog.records)
    caplog.clear()
    with caplog.at_level("WARNING", logger="common.config"):
        load_config(None, ["TRAIN.RESUME", "False", "AUTO_RESUME", "True"])
    assert caplog.records == []


def test_a_misspelled_key_on_the_command_line_is_refused_with_the_closest_key():
    from common.errors import ConfigError

    with pytest.raises(ConfigError) as error:
        load_config(None, ["TRAIN.END_EPOHC", "3"])
    message = str(error.value)
    assert "TRAIN.END_EPOHC" in message and "command line" in message
    assert "did you mean TRAIN.END_EPOCH?" in message


def test_a_misspelled_key_in_a_yaml_file_is_refused_naming_the_file(tmp_path):
    from common.errors import ConfigError

    path = tmp_path / "typo.yaml"
    path.write_text("TASK: keypoint\nDATASET:\n  FLIPP: false\n")
    with pytest.raises(ConfigError) as error:
        load_config(path)
    message = str(error.value)
    assert "DATASET.FLIPP" in message and str(path) in message
    assert "did you mean DATASET.FLIP?" in message


def test_new_keys_are_still_allowed_under_model_extra(tmp_path):
    path = tmp_path / "extra.yaml"
    path.write_text("MODEL:\n  EXTRA:\n    SOMETHING_NEW: 3\n")
    assert load_config(path).MODEL.EXTRA.SOMETHING_NEW == 3


def test_a_value_of_the_wrong_type_names_the_key_its_type_and_the_source(tmp_path):
    from common.errors import ConfigError

    with pytest.raises(ConfigError, match=r"END_EPOCH in the command line must be of type int"):
        load_config(None, ["TRAIN.END_EPOCH", "abc"])
    path = tmp_path / "typed.yaml"
    path.write_text("TRAIN:\n  LR_STEP: fast\n")
    with pytest.raises(ConfigError, match=rf"TRAIN.LR_STEP in {path} must be of type list"):
        load_config(path)


def test_a_yaml_syntax_error_names_the_file_and_line(tmp_path):
    from common.errors import ConfigError

    path = tmp_path / "broken.yaml"
    path.write_text("TASK: keypoint\nTRAIN:\n  LR: [0.1\n  END_EPOCH: 3\n")
    with pytest.raises(ConfigError) as error:
        load_config(path)
    message = str(error.value)
    assert f"YAML syntax error in {path}, line 4" in message
