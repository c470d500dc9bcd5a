"""Test set-up: the repository root on sys.path, and the real data folder when present."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

REAL_MOTION_DIR = ROOT.parent / "shared" / "data" / "dacon_motion"


@pytest.fixture
def real_motion_dir() -> Path:
    """The real competition annotations; tests that need them skip where they are absent."""
    if not (REAL_MOTION_DIR / "train_df.csv").is_file():
        pytest.skip(f"real motion annotations not found at {REAL_MOTION_DIR}")
    return REAL_MOTION_DIR


def pytest_configure(config: pytest.Config) -> None:
    """Under pytest-xdist each worker gets one core's worth of torch threads."""
    import os

    if os.environ.get("PYTEST_XDIST_WORKER"):
        import torch

        torch.set_num_threads(1)


def load_tool(name: str):
    """Import ``tools/<name>.py`` as a module, so tests call its ``main(argv)`` in-process."""
    import importlib.util

    tools_dir = ROOT / "tools"
    if str(tools_dir) not in sys.path:
        sys.path.insert(0, str(tools_dir))
    spec = importlib.util.spec_from_file_location(f"tool_{name}", tools_dir / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def tiny_motion(tmp_path_factory) -> Path:
    """A small synthetic motion set (96 train, 24 test images at 320x180), made once."""
    from common.synthetic.motion import generate_motion_dataset

    root = tmp_path_factory.mktemp("tiny_motion") / "data"
    generate_motion_dataset(root, 96, 24, width=320, height=180, seed=0)
    return root


@pytest.fixture(scope="session")
def learning_motion(tmp_path_factory) -> Path:
    """A synthetic motion set with many short sequences (240 train, 40 test at 320x180), so that
    a tiny model trained for a minute generalises to unseen subjects."""
    from common.synthetic.motion import generate_motion_dataset

    root = tmp_path_factory.mktemp("learning_motion") / "data"
    generate_motion_dataset(root, 240, 40, width=320, height=180, seed=0, max_frames=2)
    return root


@pytest.fixture(scope="module")
def synthetic_root(tmp_path_factory) -> Path:
    """A very small synthetic motion set (6 train, 5 test images at 128x72) for stage one."""
    from common.synthetic.motion import generate_motion_dataset

    root = tmp_path_factory.mktemp("motion")
    generate_motion_dataset(root, n_train=6, n_test=5, width=128, height=72, seed=3)
    return root
