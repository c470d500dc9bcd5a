"""The one error hierarchy for mistakes a user can fix, shared by every stage.

A ``UserError`` is a wrong file, key, value or folder, not a bug. Its message says what is
wrong, where (file, row, key) and what to do, in one line, so that ``common.cli.run_tool``
can print it as ``error: <message>`` without a traceback. Bugs keep their tracebacks.
"""

from __future__ import annotations


class UserError(Exception):
    """A user-input mistake; message convention: "what is wrong, where, what to do"."""

    def __str__(self) -> str:  # also for subclasses of KeyError, which would quote the text
        return Exception.__str__(self)


class MissingFileError(UserError, FileNotFoundError):
    """A file or folder the user named (or the config implies) does not exist."""


class ConfigError(UserError, KeyError, ValueError):
    """A config file or override that cannot be used: unknown key, wrong type, bad syntax."""
