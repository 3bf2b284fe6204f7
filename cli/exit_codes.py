"""Exit codes of the ``promscope`` command: one table, shared by every verb.

Scripts and CI jobs branch on these, so they are part of the interface and
never change meaning. When several apply to one run, the highest wins (an
unreadable input outranks problems found in the others).
"""

from __future__ import annotations

import enum

__all__ = ["EPILOG", "PROMTOOL_EPILOG", "ExitCode"]


class ExitCode(enum.IntEnum):
    """What a ``promscope`` run ended with."""

    OK = 0
    """Everything was read; nothing at or above ``--fail-on`` was found."""
    PROBLEMS = 1
    """At least one diagnostic at or above ``--fail-on``."""
    USAGE = 2
    """The command line or the configuration is wrong (unknown flag, bad value, bad config file)."""
    UNREADABLE = 3
    """An input could not be read at all: missing file, permission denied, target unreachable."""


EPILOG = """\b
Exit codes:
  0  no problem at or above --fail-on
  1  problems at or above --fail-on
  2  usage or configuration error
  3  an input was unreadable or unreachable
When several apply, the highest wins."""

PROMTOOL_EPILOG = """\b
With --output promtool the exit codes are promtool's instead:
  0  clean   3  lint problems   1  parse failure or unreadable input"""
