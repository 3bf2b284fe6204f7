"""Rules over parsed families: promlint-parity lint, cardinality, ignores and severities.

The API the ``check`` command (and anything else) uses::

    from promscope.check import CheckOptions, Ignore, check, check_result

    result = parse(body, format="text")
    report = check_result(result, CheckOptions(
        lint=True,                      # LINT-… findings (promscope.check.lint)
        promtool_only=False,            # only the rules promtool 2.42 has
        cardinality=False,              # CARD-… warnings and report.cardinality
        ignores=(Ignore.parse("LINT-001:go_*"),),
        severity_overrides={"LINT-*": Severity.WARNING},
        fail_on=Severity.ERROR,
    ))
    report.diagnostics      # parse + lint (+ cardinality) diagnostics, ignores applied,
                            # severities overridden, sorted by line
    report.ignored          # how many were ignored
    report.cardinality      # CardinalityReport | None
    report.failed()         # any diagnostic at fail_on or worse
    report.promtool_lines() # what `promtool check metrics` prints on stderr
    report.promtool_exit_code()  # 0 clean, 1 unparsable, 3 lint problems
    report.promtool_error()      # why promtool could not parse it, or None

    report = check(data, format="auto", options=...)   # parse + check_result

* :class:`CheckOptions` ``(lint=True, promtool_only=False, cardinality=False,
  cardinality_options=CardinalityOptions(), ignores=(), severity_overrides={},
  fail_on=Severity.ERROR)``
* :func:`check_result` ``(result: ParseResult, options: CheckOptions | None = None) -> CheckReport``
* :func:`check` ``(data, format="auto", *, content_type=None, options=None) -> CheckReport``
* :class:`CheckReport`: ``result``, ``diagnostics``, ``lint_findings``, ``ignored``,
  ``cardinality``, ``fail_on``; ``failed(fail_on=None)``, ``worst()``, ``counts()``,
  ``syntax_errors()``, ``promtool_error()``, ``promtool_lines()``, ``promtool_exit_code()``
* :class:`Ignore` ``.parse("CODE[:METRIC-GLOB]")`` (both parts globs, fnmatch),
  :class:`SeverityOverrides` (exact code beats glob).
* Submodules: :mod:`~promscope.check.lint` (rules, ``LintFinding``,
  ``promtool_lines``), :mod:`~promscope.check.cardinality` (``analyze``,
  report dataclasses), :mod:`~promscope.check.ignore`.

``--output promtool`` mode: run with ``promtool_only=True`` and print
``report.promtool_lines()`` to stderr, exit with ``report.promtool_exit_code()``.
When the parser found an error in the syntax (``PS-``/``OM-``/``PB-`` codes),
or the input uses quoted names (text format 1.0.0, which promtool 2.42's
decoder predates), promtool would print only ``error while linting: …`` and
exit 1, and so does this mode (``report.promtool_error()``; the text after
the prefix is promscope's own). Semantic errors (``SEM-``) do not count:
promtool's decoder does not look at values. promtool reads only the text
format; OpenMetrics and protobuf input are linted as parsed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from operator import attrgetter
from typing import TYPE_CHECKING

from promscope.check.ignore import Ignore, SeverityOverrides
from promscope.check.lint import LintFinding, lint, promtool_lines, to_diagnostics
from promscope.check.options import CardinalityOptions
from promscope.model import Diagnostic, Format, ParseResult, Severity

if TYPE_CHECKING:
    from promscope.check.cardinality import CardinalityReport

__all__ = [
    "PROMTOOL_EXIT_CLEAN",
    "PROMTOOL_EXIT_LINT",
    "PROMTOOL_EXIT_UNPARSABLE",
    "CardinalityOptions",
    "CheckOptions",
    "CheckReport",
    "Ignore",
    "SeverityOverrides",
    "check",
    "check_result",
]

PROMTOOL_EXIT_CLEAN = 0
PROMTOOL_EXIT_UNPARSABLE = 1
"""promtool's ``failureExitCode``: the input could not be parsed."""
PROMTOOL_EXIT_LINT = 3
"""promtool's ``lintErrExitCode``: lint problems were found."""

_SYNTAX_PREFIXES = ("PS-", "OM-", "PB-")


@dataclass(frozen=True, slots=True)
class CheckOptions:
    """What to check and how to judge it."""

    lint: bool = True
    promtool_only: bool = False
    """Only the lint rules promtool 2.42 has (for ``--output promtool``)."""
    cardinality: bool = False
    cardinality_options: CardinalityOptions = field(default_factory=CardinalityOptions)
    ignores: tuple[Ignore, ...] = ()
    severity_overrides: Mapping[str, Severity] = field(default_factory=dict)
    """Code (or code glob) -> severity; applied after ignores."""
    fail_on: Severity = Severity.ERROR


@dataclass(frozen=True, slots=True)
class CheckReport:
    """What checking one parse result found."""

    result: ParseResult
    diagnostics: tuple[Diagnostic, ...]
    """Parse, lint and cardinality diagnostics that were kept, sorted by line."""
    lint_findings: tuple[LintFinding, ...]
    """Lint findings that were kept, in promlint's order (with promtool's repeat counts)."""
    ignored: int
    """Diagnostics dropped by an ignore."""
    cardinality: CardinalityReport | None
    fail_on: Severity = Severity.ERROR

    def worst(self) -> Severity | None:
        worst: Severity | None = None
        for diagnostic in self.diagnostics:
            if worst is None or diagnostic.severity.rank > worst.rank:
                worst = diagnostic.severity
        return worst

    def failed(self, fail_on: Severity | None = None) -> bool:
        """True when a kept diagnostic is at ``fail_on`` (default: the options') or worse."""
        threshold = fail_on or self.fail_on
        return any(d.severity.at_least(threshold) for d in self.diagnostics)

    def counts(self) -> dict[Severity, int]:
        """Kept diagnostics per severity (every severity present, zero when none)."""
        out = dict.fromkeys(Severity, 0)
        for diagnostic in self.diagnostics:
            out[diagnostic.severity] += 1
        return out

    def syntax_errors(self) -> list[Diagnostic]:
        """Parser errors promtool's decoder would also stop at (syntax, not semantics)."""
        return [
            d
            for d in self.result.diagnostics
            if d.severity is Severity.ERROR and d.code.startswith(_SYNTAX_PREFIXES)
        ]

    def promtool_error(self) -> str | None:
        """Why promtool 2.42 could not parse this input (after ``error while linting: ``), or None.

        A syntax error, or quoted names (text format 1.0.0), which its decoder
        predates. Protobuf input says ``protobuf parsing error``.
        """
        errors = self.syntax_errors()
        if errors:
            first = min(errors, key=Diagnostic.sort_key)
            where = f"in line {first.line}: " if first.line > 0 else ""
            kind = "protobuf" if self.result.format is Format.PROTOBUF else "text format"
            return f"{kind} parsing error {where}{first.message}"
        if self.result.format is Format.TEXT and self.result.extra.get("version") == "1.0.0":
            return (
                "text format parsing error: quoted metric or label names (text format 1.0.0) need promtool 3"
            )
        return None

    def promtool_lines(self) -> list[str]:
        """What ``promtool check metrics`` prints on stderr for this input."""
        error = self.promtool_error()
        if error is not None:
            return [f"error while linting: {error}"]
        return promtool_lines(self.lint_findings)

    def promtool_exit_code(self) -> int:
        """0 clean, 1 when the input cannot be parsed, 3 when lint found problems."""
        if self.promtool_error() is not None:
            return PROMTOOL_EXIT_UNPARSABLE
        return PROMTOOL_EXIT_LINT if self.lint_findings else PROMTOOL_EXIT_CLEAN


class _IgnoreFilter:
    """:class:`Ignore` matching with one decision per ``(code, metric)``, not per diagnostic.

    Globs are matched once for each distinct pair; a report with thousands of
    diagnostics about a few metrics does a dict lookup for the rest.
    """

    __slots__ = ("_decided", "_ignores", "ignored")

    def __init__(self, ignores: tuple[Ignore, ...]) -> None:
        self._ignores = ignores
        self._decided: dict[tuple[str, str | None], bool] = {}
        self.ignored = 0

    def keep(self, code: str, metric: str | None) -> bool:
        """False (and counted) when an ignore matches."""
        key = (code, metric)
        drop = self._decided.get(key)
        if drop is None:
            drop = self._decided[key] = any(i.matches_code_metric(code, metric) for i in self._ignores)
        if drop:
            self.ignored += 1
        return not drop

    def diagnostics(self, diagnostics: Iterable[Diagnostic]) -> list[Diagnostic]:
        if not self._ignores:
            return list(diagnostics)
        keep = self.keep
        return [d for d in diagnostics if keep(d.code, d.metric)]


_DIAGNOSTIC_ORDER = attrgetter("line", "column", "code")
""":meth:`Diagnostic.sort_key` as a C-level key function."""


def check_result(result: ParseResult, options: CheckOptions | None = None) -> CheckReport:
    """Run lint (and cardinality when asked) on a parse result; apply ignores and severities."""
    options = options or CheckOptions()
    overrides = SeverityOverrides(options.severity_overrides)
    ignores = _IgnoreFilter(options.ignores)

    findings: list[LintFinding] = []
    if options.lint:
        findings = lint(result.families, result.format, promtool_only=options.promtool_only)
        if options.ignores:
            findings = [f for f in findings if ignores.keep(f.code, f.metric)]

    candidates = ignores.diagnostics(result.diagnostics)
    candidates.extend(to_diagnostics(findings))

    cardinality: CardinalityReport | None = None
    if options.cardinality:
        from promscope.check.cardinality import analyze

        cardinality = analyze(result.families, options.cardinality_options)
        candidates.extend(ignores.diagnostics(cardinality.diagnostics))

    if overrides:
        candidates = [overrides.apply(d) for d in candidates]
    candidates.sort(key=_DIAGNOSTIC_ORDER)
    return CheckReport(
        result=result,
        diagnostics=tuple(candidates),
        lint_findings=tuple(findings),
        ignored=ignores.ignored,
        cardinality=cardinality,
        fail_on=options.fail_on,
    )


def check(
    data: bytes | str,
    format: Format | str = "auto",
    *,
    content_type: str | None = None,
    options: CheckOptions | None = None,
) -> CheckReport:
    """Parse ``data`` and check it: :func:`promscope.exposition.parse` then :func:`check_result`."""
    from promscope.exposition import parse

    return check_result(parse(data, format, content_type=content_type), options)
