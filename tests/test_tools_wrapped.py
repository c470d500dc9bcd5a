"""Every tool in ``tools/`` hands its ``main`` to ``common.cli.run_tool`` (issue 23, item 6), so
that a user's mistake ends in one ``error:`` line and exit status 2 in all of them.

Each tool file is run as ``__main__`` (as ``python tools/<name>.py`` runs it) with
``common.cli.run_tool`` replaced by a recorder; a tool that calls its ``main`` any other way
runs it on ``--help`` instead and is reported.
"""

from __future__ import annotations

import runpy
import sys

import pytest

import common.cli
from tests.conftest import ROOT
from tests.test_cli_errors import KP_CFG, assert_user_error
from tests.test_cli_errors import run_tool as run_cli

TOOLS = sorted(path for path in (ROOT / "tools").glob("*.py") if not path.name.startswith("_"))


class _Handed(Exception):
    """Raised by the recorder with the function a tool handed to ``run_tool``."""

    def __init__(self, main: object) -> None:
        super().__init__("handed to run_tool")
        self.main = main


def _recorder(main: object) -> None:
    raise _Handed(main)


def test_the_tool_list_is_not_empty():
    assert len(TOOLS) >= 10, [path.name for path in TOOLS]


@pytest.mark.parametrize("tool", TOOLS, ids=lambda path: path.stem)
def test_the_tool_main_goes_through_run_tool(tool, monkeypatch, capsys):
    monkeypatch.syspath_prepend(str(ROOT / "tools"))
    monkeypatch.setattr(common.cli, "run_tool", _recorder)
    monkeypatch.setattr(sys, "argv", [str(tool), "--help"])
    try:
        runpy.run_path(str(tool), run_name="__main__")
    except _Handed as handed:
        main = handed.main
    except SystemExit as stop:
        pytest.fail(f"{tool.name} ran its main itself (exit {stop.code}), not via run_tool")
    else:
        pytest.fail(f"{tool.name} never called common.cli.run_tool")
    assert callable(main)
    assert main.__name__ == "main", f"{tool.name} handed {main!r} to run_tool"
    assert main.__code__.co_filename == str(tool)


@pytest.mark.slow
def test_infer_names_a_config_mistake_in_one_line(tmp_path):
    """Before it went through ``run_tool``, an unknown key ended ``tools/infer.py`` in a
    ``ConfigError`` traceback."""
    result = run_cli(
        "infer", "--input", tmp_path, "--keypoint-cfg", KP_CFG, "--keypoint-output", tmp_path,
        "--boxes", tmp_path / "boxes.json", "--out", tmp_path / "out", "TEST.NOT_A_KEY", "1",
    )  # fmt: skip
    assert_user_error(result, "TEST.NOT_A_KEY", "command line")
    assert not (tmp_path / "out").exists()
