"""The layout the code keeps: no stage imports another, ``common/`` imports no stage, every
``TASK`` has a stage behind the stage interface, and no source module is over 400 lines."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from common.stage import StageTask
from stages import STAGE_MODULES, stage_for

ROOT = Path(__file__).resolve().parents[1]
SOURCE_DIRS = ("common", "HRNet_bbox", "HRNet_keypoint", "models", "stages", "tools", "benchmarks")
MAX_LINES = 400


def imported_modules(path: Path) -> set[str]:
    """Every module a file imports (static imports and ``importlib``'s string argument)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif (isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "import_module"
              and node.args and isinstance(node.args[0], ast.Constant)):  # fmt: skip
            found.add(str(node.args[0].value))
    return found


def imports_under(folder: str) -> dict[str, set[str]]:
    return {str(path.relative_to(ROOT)): imported_modules(path)
            for path in sorted((ROOT / folder).rglob("*.py"))}  # fmt: skip


def test_common_imports_no_stage() -> None:
    offending = {
        path: sorted(m for m in modules if m.startswith(("HRNet_", "stages", "importlib")))
        for path, modules in imports_under("common").items()
    }
    assert not {path: mods for path, mods in offending.items() if mods}


@pytest.mark.parametrize("stage, other", [("HRNet_bbox", "HRNet_keypoint"),
                                          ("HRNet_keypoint", "HRNet_bbox")])  # fmt: skip
def test_no_stage_imports_the_other(stage: str, other: str) -> None:
    offending = {path: modules for path, modules in imports_under(stage).items()
                 if any(m.startswith((other, "stages")) for m in modules)}  # fmt: skip
    assert not offending


def test_every_task_has_a_stage_behind_the_interface() -> None:
    assert sorted(STAGE_MODULES) == ["bbox", "gesture", "keypoint"]
    members = [name for name in vars(StageTask) if not name.startswith("_")]
    assert {"build_model", "train", "read_test_inputs", "load_for_test", "predict",
            "write_outputs"} <= set(members)  # fmt: skip
    for task in STAGE_MODULES:
        stage = stage_for(task)
        assert stage.task == task and stage_for(task) is stage
        for name in members:
            assert hasattr(stage, name), (task, name)
    with pytest.raises(ValueError, match="TASK must be one of"):
        stage_for("pose")


def test_no_source_module_over_400_lines() -> None:
    long = {str(path.relative_to(ROOT)): count
            for folder in SOURCE_DIRS for path in (ROOT / folder).rglob("*.py")
            if (count := len(path.read_text().splitlines())) > MAX_LINES}  # fmt: skip
    assert not long
