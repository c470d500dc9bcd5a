"""The layout the code keeps: no stage imports another, ``common/`` imports neither ``models``
nor a stage, no import cycle (function-level imports included), every ``TASK`` has a stage
behind the stage interface, and no source module is over 400 lines."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from common.stage import StageTask
from stages import STAGE_MODULES, stage_for

ROOT = Path(__file__).resolve().parents[1]
SOURCE_DIRS = ("common", "HRNet_bbox", "HRNet_keypoint", "models", "stages", "tools", "benchmarks")
PACKAGES = ("common", "HRNet_bbox", "HRNet_keypoint", "models", "stages", "benchmarks")
MAX_LINES = 400


def imported_modules(path: Path) -> set[str]:
    """Every module a file imports, at any depth (function-level imports too): static imports,
    ``from M import name`` also as ``M.name`` (a submodule, when it is one), and
    ``importlib``'s string argument."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif (isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "import_module"
              and node.args and isinstance(node.args[0], ast.Constant)):  # fmt: skip
            found.add(str(node.args[0].value))
    return found


def imports_under(folder: str) -> dict[str, set[str]]:
    return {str(path.relative_to(ROOT)): imported_modules(path)
            for path in sorted((ROOT / folder).rglob("*.py"))}  # fmt: skip


def test_common_imports_neither_models_nor_a_stage() -> None:
    offending = {
        path: sorted(m for m in modules
                     if m.startswith(("HRNet_", "stages", "importlib", "models")))
        for path, modules in imports_under("common").items()
    }
    assert not {path: mods for path, mods in offending.items() if mods}


def module_name(path: Path) -> str:
    name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
    return name.removesuffix(".__init__")


def import_graph() -> dict[str, set[str]]:
    """Module -> the project modules it imports (function-level imports included)."""
    paths = {module_name(path): path
             for folder in PACKAGES for path in (ROOT / folder).rglob("*.py")}  # fmt: skip
    return {name: {m for m in imported_modules(path) if m in paths and m != name}
            for name, path in paths.items()}  # fmt: skip


def find_cycle(graph: dict[str, set[str]]) -> list[str]:
    """One import cycle of ``graph`` as [a, b, ..., a], or [] when there is none."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        state[node] = 2
        path.pop()
        return []

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)):
            return cycle
    return []


def test_find_cycle_finds_one() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) == []


def test_function_level_imports_are_walked(tmp_path: Path) -> None:
    source = tmp_path / "m.py"
    source.write_text("def f():\n    from common.coco_data import split_file\n")
    assert "common.coco_data" in imported_modules(source)


def test_no_import_cycle() -> None:
    graph = import_graph()
    assert "common.stage_data" in graph and "HRNet_keypoint.engine" in graph
    assert find_cycle(graph) == []


@pytest.mark.parametrize("stage, other", [("HRNet_bbox", "HRNet_keypoint"),
                                          ("HRNet_keypoint", "HRNet_bbox")])  # fmt: skip
def test_no_stage_imports_the_other(stage: str, other: str) -> None:
    offending = {path: modules for path, modules in imports_under(stage).items()
                 if any(m.startswith((other, "stages")) for m in modules)}  # fmt: skip
    assert not offending


def test_every_task_has_a_stage_behind_the_interface() -> None:
    assert sorted(STAGE_MODULES) == ["bbox", "detect", "gesture", "keypoint"]
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
