"""The README's winning-recipe commands (tune, train the folds, ensemble them), read from the
README and run as written, in a folder holding a small synthetic set at the README's relative
``DATASET.ROOT`` (so the tuner's workers get the relative path as a user's would). The only
additions: the ``SPACE.yaml`` the README's comment shows, the run folder for ``RUN``, and size
overrides appended to each command (a one-epoch tiny model on 64x64 crops, boxes from the truth
table) so that the chain runs in minutes."""

from __future__ import annotations

import csv
import math
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from common.synthetic.motion import generate_motion_dataset
from tests.conftest import ROOT

pytestmark = pytest.mark.slow

SMALL = ["TRAIN.END_EPOCH", "1", "MODEL.IMAGE_SIZE", "[64, 64]", "MODEL.HEATMAP_SIZE",
         "[16, 16]", "MODEL.SIGMA", "1", "TEST.BOX_SOURCE", "truth",
         "TRAIN.BATCH_SIZE_PER_GPU", "8"]  # fmt: skip


def readme_recipe() -> tuple[str, list[list[str]]]:
    """The SPACE.yaml text the README shows and its tune, train and ensemble commands."""
    text = (ROOT / "README.md").read_text()
    block = next(b for b in re.findall(r"```bash\n(.*?)```", text, re.S) if "tools/tune.py" in b)
    lines = block.replace("\\\n", " ").splitlines()
    space = next(re.search(r"SPACE\.yaml: (.*)$", line)[1]
                 for line in lines if "SPACE.yaml:" in line)  # fmt: skip
    commands = [shlex.split(line, comments=True) for line in lines]
    wanted = ("tools/tune.py", "tools/train.py", "tools/ensemble.py")
    return space, [c for c in commands if len(c) > 1 and c[1] in wanted]


def run(command: list[str], cwd: Path) -> subprocess.CompletedProcess:
    assert command[0] == "python"
    result = subprocess.run([sys.executable, str(ROOT / command[1]), *command[2:], *SMALL],
                            cwd=cwd, capture_output=True, text=True, timeout=900,
                            env={**os.environ, "HRNET_DEBUG": ""})  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def test_the_readme_tuning_and_ensemble_commands_run_as_written(tmp_path):
    space, (tune, train, ensemble) = readme_recipe()
    (tmp_path / "experiments").symlink_to(ROOT / "experiments")
    generate_motion_dataset(tmp_path / "data/synthetic/motion", 36, 6, width=128, height=72,
                            seed=3, max_frames=1)  # fmt: skip
    (tmp_path / "SPACE.yaml").write_text(space + "\n")

    run(tune, tmp_path)
    best = tmp_path / "output/tune/best.yaml"
    assert best.is_file() and "LR" in best.read_text()
    with open(tmp_path / "output/tune/trials.csv") as handle:
        trials = list(csv.DictReader(handle))
    assert trials and all(row["status"] == "done" for row in trials), trials

    run(train, tmp_path)
    folds = sorted(tmp_path.glob("output/**/fold0"))
    assert len(folds) == 1, folds
    run_folder = folds[0].parent
    ensemble = [str(run_folder) + arg[3:] if arg.startswith("RUN/") else arg for arg in ensemble]
    run(ensemble, tmp_path)
    with open(tmp_path / "result.csv") as handle:
        rows = list(csv.reader(handle))
    assert len(rows) == 7  # the header and the 6 test images
    assert all(math.isfinite(float(cell)) for row in rows[1:] for cell in row[1:])
