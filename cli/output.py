"""Terminal output shared by the verbs: colour decisions, a tiny ANSI styler, one-line errors.

Rich is not imported here on purpose: ``promscope check`` must start fast, and
a handful of SGR codes is all plain diagnostics need. Verbs that draw tables
import Rich themselves.

Conventions (see the CLI section of STYLE.md):

* data goes to stdout, diagnostics about the run itself to stderr;
* an error is one line, ``promscope: error: what went wrong``, optionally
  followed by ``hint: what to do`` on a second line;
* colour only when the stream is a terminal, unless ``--color always``;
  ``NO_COLOR`` turns it off and ``FORCE_COLOR`` on, as https://no-color.org
  and most tools agree.
"""

from __future__ import annotations

import os
import sys
from typing import IO, Literal

from promscope.model import Severity

__all__ = [
    "OUTCOME_STYLE",
    "ColorChoice",
    "Styler",
    "error_line",
    "format_bytes",
    "print_error",
    "wants_color",
]

ColorChoice = Literal["auto", "always", "never"]

_RESET = "\x1b[0m"
_SGR = {
    "bold": "1",
    "dim": "2",
    "red": "31",
    "green": "32",
    "yellow": "33",
    "blue": "34",
    "magenta": "35",
    "cyan": "36",
}
OUTCOME_STYLE = {
    "accepted": ("green",),
    "partial": ("yellow",),
    "rejected": ("bold", "red"),
    "failed": ("bold", "red"),
}
"""Styles for an observation's outcome (``Outcome.value``) in the live verbs and replay."""
_SEVERITY_STYLE = {
    Severity.ERROR: ("bold", "red"),
    Severity.WARNING: ("bold", "yellow"),
    Severity.STYLE: ("bold", "cyan"),
}


def wants_color(choice: str, stream: IO[str]) -> bool:
    """Decide whether to colour ``stream`` for a ``--color`` choice."""
    if choice == "always":
        return True
    if choice == "never":
        return False
    if os.environ.get("NO_COLOR"):
        return False
    if os.environ.get("FORCE_COLOR"):
        return True
    if os.environ.get("TERM") == "dumb":
        return False
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except ValueError:  # closed stream
        return False


class Styler:
    """Wraps text in ANSI SGR codes when enabled, and is the identity otherwise."""

    __slots__ = ("enabled",)

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled

    def __call__(self, text: str, *styles: str) -> str:
        if not self.enabled or not styles or not text:
            return text
        codes = ";".join(_SGR[style] for style in styles)
        return f"\x1b[{codes}m{text}{_RESET}"

    def severity(self, severity: Severity, text: str | None = None) -> str:
        """``text`` (default: the severity's name) in the severity's colour."""
        return self(text if text is not None else severity.value, *_SEVERITY_STYLE[severity])


def format_bytes(count: int) -> str:
    """``512 B``, ``84.1 KiB``, ``3.0 MiB``: a size for people, in base-2 units up to GiB."""
    if count < 1024:
        return f"{count} B"
    value = float(count)
    for unit in ("KiB", "MiB", "GiB"):
        value /= 1024
        if value < 1024 or unit == "GiB":
            return f"{value:.1f} {unit}"
    return f"{count} B"  # pragma: no cover


def error_line(message: str, *, prog: str = "promscope", level: str = "error") -> str:
    """The one line an error (or warning) is reported as."""
    first = " ".join(message.strip().splitlines()) or "unknown error"
    return f"{prog}: {level}: {first}"


def print_error(
    message: str,
    *,
    hint: str = "",
    prog: str = "promscope",
    stream: IO[str] | None = None,
    level: str = "error",
) -> None:
    """Print a one-line error (and an optional hint line) to stderr."""
    out = stream if stream is not None else sys.stderr
    styler = Styler(wants_color("auto", out))
    line = error_line(message, prog=prog, level=level)
    head, sep, rest = line.partition(f": {level}: ")
    colour = "red" if level == "error" else "yellow"
    out.write(f"{head}: {styler(level, 'bold', colour)}: {rest}\n" if sep else line + "\n")
    if hint:
        out.write(f"{styler('hint', 'bold')}: {hint}\n")
    out.flush()
