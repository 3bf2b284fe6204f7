"""Collecting diagnostics with a bound, so hostile input cannot exhaust memory."""

from __future__ import annotations

from dataclasses import dataclass

from promscope.model import Diagnostic, Severity

__all__ = ["DiagnosticSink", "ParseLimits"]


@dataclass(frozen=True, slots=True)
class ParseLimits:
    """Explicit bounds a parser enforces; each one hit becomes a diagnostic, never an exception.

    The defaults are generous for real expositions and small enough that a
    hostile body cannot make promscope hang or run out of memory.
    """

    max_line_length: int = 1 << 20
    """Characters in one line; a longer line is reported and skipped."""
    max_labels: int = 1_000
    """Label pairs on one sample; more is reported and the sample skipped."""
    max_label_name_length: int = 1_024
    max_label_value_length: int = 1 << 16
    max_diagnostics: int = 10_000
    """Diagnostics kept; beyond this they are counted in ``ParseResult.suppressed``."""
    max_samples: int = 0
    """Samples accepted before the rest is reported and skipped (0: no limit)."""


class DiagnosticSink:
    """Appends diagnostics up to a limit and counts the ones it had to drop."""

    __slots__ = ("diagnostics", "limit", "suppressed")

    def __init__(self, limit: int = 10_000) -> None:
        self.diagnostics: list[Diagnostic] = []
        self.limit = limit
        self.suppressed = 0

    def add(
        self,
        code: str,
        severity: Severity,
        line: int,
        column: int,
        message: str,
        metric: str | None = None,
    ) -> None:
        if len(self.diagnostics) >= self.limit:
            self.suppressed += 1
            return
        self.diagnostics.append(Diagnostic(code, severity, line, column, message, metric))

    def extend(self, diagnostics: list[Diagnostic]) -> None:
        for diagnostic in diagnostics:
            if len(self.diagnostics) >= self.limit:
                self.suppressed += 1
            else:
                self.diagnostics.append(diagnostic)

    def error(self, code: str, line: int, column: int, message: str, metric: str | None = None) -> None:
        self.add(code, Severity.ERROR, line, column, message, metric)

    def warning(self, code: str, line: int, column: int, message: str, metric: str | None = None) -> None:
        self.add(code, Severity.WARNING, line, column, message, metric)
