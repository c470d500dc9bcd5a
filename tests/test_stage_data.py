"""common/stage_data.py: the reference's row drops apply only to the competition's own file."""

from __future__ import annotations

import logging

from common.config import load_config
from common.stage_data import (
    COMPETITION_LAST_TAKE,
    REFERENCE_DROP_ROWS,
    is_competition_table,
    load_training_table,
)
from common.synthetic.motion import generate_motion_dataset
from tests.conftest import ROOT

KP_CFG = ROOT / "experiments/keypoint/tiny_cpu_keypoint.yaml"


def competition_like_names() -> list[str]:
    return [f"001-1-1-01-Z17_A-{i:07d}.jpg" for i in range(4115)] + [
        f"{COMPETITION_LAST_TAKE}{c}-{i:07d}.jpg" for i in range(16) for c in "ABCDE"
    ]


def test_the_competition_file_is_known_by_its_shape_and_names():
    names = competition_like_names()
    assert len(names) == 4195 and max(REFERENCE_DROP_ROWS) == 4194
    assert is_competition_table(names)
    assert not is_competition_table(names[:-1])
    assert not is_competition_table(names[:-1] + ["852-3-5-36-Z94_A-0000001.jpg"])


def test_reference_drops_on_another_file_are_not_applied_and_said(tmp_path, caplog):
    generate_motion_dataset(tmp_path, 6, 2, width=128, height=72, seed=5)
    cfg = load_config(KP_CFG, ["DATASET.ROOT", str(tmp_path), "DATASET.DROP_REFERENCE_ROWS",
                               "True", "DATASET.DROP_ROWS", "[1]"])  # fmt: skip
    with caplog.at_level(logging.WARNING):
        table = load_training_table(cfg, logging.getLogger("test"))
    assert len(table.names) == 5  # only DROP_ROWS applied
    assert "is not the competition's train_df.csv" in caplog.text
    assert f"the reference's {len(REFERENCE_DROP_ROWS)} row drops are not applied" in caplog.text
