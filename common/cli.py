"""How every tool ends: one ``error:`` line for a user's mistake, a traceback for a bug.

``run_tool(main)`` runs a tool's ``main``. A ``UserError`` (or a ``PermissionError`` on a path,
which is almost always one the user named) prints ``error: <message>`` on stderr and exits
with status 2; Ctrl-C prints one line and exits with 130. ``--debug`` on the
command line (removed before the tool parses its arguments) or ``HRNET_DEBUG=1`` shows the
traceback of a user error too.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable
from typing import NoReturn

from common.errors import UserError

DEBUG_FLAG = "--debug"
DEBUG_ENV = "HRNET_DEBUG"
USER_ERROR_STATUS = 2
INTERRUPTED_STATUS = 130


def _debug_requested() -> bool:
    """Pop ``--debug`` from ``sys.argv`` (argparse never sees it) and read the environment."""
    flagged = DEBUG_FLAG in sys.argv[1:]
    if flagged:
        sys.argv[1:] = [arg for arg in sys.argv[1:] if arg != DEBUG_FLAG]
    return flagged or os.environ.get(DEBUG_ENV, "") not in ("", "0")


def _note_in_run_logs(line: str) -> None:
    """Write the line that ends a run into the log files its run folders hold (console
    handlers left out: stderr has it already), so a run folder says why it stopped."""
    for logger in list(logging.Logger.manager.loggerDict.values()):
        if not isinstance(logger, logging.Logger) or not logger.name.startswith("hrnet."):
            continue
        for handler in logger.handlers:
            if isinstance(handler, logging.FileHandler):
                handler.emit(logger.makeRecord(logger.name, logging.ERROR, __file__, 0, line,
                                               None, None))  # fmt: skip
                handler.flush()


def run_tool(main: Callable[[], object]) -> NoReturn:
    """Run ``main`` and exit: its int result (0 for anything else), 2 on a user error."""
    debug = _debug_requested()
    try:
        result = main()
    except UserError as error:
        if debug:
            raise
        print(f"error: {error}", file=sys.stderr)
        _note_in_run_logs(f"error: {error}")
        sys.exit(USER_ERROR_STATUS)
    except PermissionError as error:  # a folder or file the user named that cannot be written
        if debug:
            raise
        where = error.filename or "a file"
        print(f"error: permission denied: {where}: choose a path you may write to, or fix its "
              "permissions", file=sys.stderr)  # fmt: skip
        sys.exit(USER_ERROR_STATUS)
    except KeyboardInterrupt:
        if debug:
            raise
        print("interrupted", file=sys.stderr)
        _note_in_run_logs("interrupted")
        sys.exit(INTERRUPTED_STATUS)
    sys.exit(result if isinstance(result, int) and not isinstance(result, bool) else 0)


def bounded_int(low: int, high: int | None = None) -> Callable[[str], int]:
    """An argparse type: a whole number from ``low`` (to ``high``), refused in argparse's one
    line (exit 2) before the tool starts."""
    wanted = f"from {low} to {high}" if high is not None else f"of at least {low}"

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < low or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"expected a whole number {wanted}, got {text!r}")
        return value

    return parse


class ToolParser(argparse.ArgumentParser):
    """argparse with the tools' error form: a bad option is one ``error:`` line (exit 2) that
    names the tool and points at ``--help``, instead of a usage block and a ``prog: error:``."""

    def error(self, message: str) -> NoReturn:
        print(f"error: {self.prog}: {message}; see `{self.prog} --help`", file=sys.stderr)
        sys.exit(USER_ERROR_STATUS)
