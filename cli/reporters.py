"""How ``promscope check`` presents what it found: one reporter per ``--output``.

Reporters are presentation only. ``cli/commands/check.py`` turns inputs into
a :class:`CheckRun` (one :class:`FileOutcome` per input, diagnostics already
filtered by ``--ignore`` and re-graded by severity overrides) and hands it to
:func:`report`; the reporter writes, the command decides the exit code.

``text``
    ``path:line:col: severity CODE message``, the offending source line with a
    caret under the column (gcc/ruff style), then
    ``N errors, N warnings, N style in M files``. Colour only on a terminal.
``json``
    One JSON document on stdout, schema below.
``github``
    GitHub Actions workflow commands,
    ``::error file=PATH,line=L,col=C,title=CODE::message`` (``warning`` for
    warnings, ``notice`` for style), so problems show as annotations on a PR.
``sarif``
    SARIF 2.1.0 (GitHub code scanning, GitLab, Azure DevOps); every code of
    the catalogue is a rule, columns are Unicode code points.
``junit``
    JUnit XML as CI systems read it: one ``<testsuite>`` per input, one
    ``<testcase>`` per diagnostic (a ``<failure>`` when at or above
    ``--fail-on``), one passing testcase for a clean input, an ``<error>``
    for an unreadable one.
``promtool``
    A drop-in for ``promtool check metrics``: promlint's rules only, each
    problem as ``<metric> <text>`` on **stderr** sorted as promlint sorts them,
    a parse failure as ``error while linting: ...``; exit 0 clean, 3 lint
    problems, 1 parse failure (see :func:`promtool_exit_code`).

JSON schema (``"version": 1``; fields are only ever added, never renamed or
removed, within a version)::

    {
      "version": 1,
      "tool": {"name": "promscope", "version": "0.1.0"},
      "fail_on": "error" | "warning" | "style",
      "failed": bool,                  # some diagnostic at/above fail_on, or an input unreadable
      "files": [
        {
          "path": str,                 # as given; "<stdin>" for stdin; the URL for a scrape
          "format": "text" | "openmetrics" | "protobuf" | null,   # null when unreadable
          "error": str | null,         # why the input could not be read, else null
          "lines": int,                # lines (text formats) or messages (protobuf) read
          "families": int,
          "samples": int,
          "ignored": int,              # diagnostics dropped by --ignore / config
          "suppressed": int,           # diagnostics beyond the parser's limit
          "diagnostics": [
            {
              "code": str,             # stable, e.g. "PS-201", "LINT-003"
              "severity": "error" | "warning" | "style",
              "line": int,             # 1-based; 0: not tied to a line (protobuf: message index)
              "column": int,           # 1-based code point; 0: whole line
              "message": str,
              "metric": str | null
            }
          ],
          "cardinality": object        # only with --cardinality
        }
      ],
      "summary": {"files": int, "unreadable": int, "errors": int, "warnings": int,
                  "style": int, "ignored": int}
    }
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import IO, Any

from cli.output import Styler
from promscope import __version__
from promscope.model import Diagnostic, Severity

__all__ = [
    "JSON_SCHEMA_VERSION",
    "OUTPUTS",
    "CheckRun",
    "FileOutcome",
    "promtool_exit_code",
    "report",
]

JSON_SCHEMA_VERSION = 1
OUTPUTS = ("text", "json", "github", "sarif", "junit", "promtool")


@dataclass(frozen=True, slots=True)
class FileOutcome:
    """What checking one input gave: its diagnostics, or why it could not be read."""

    path: str
    """As the user gave it; ``<stdin>`` for stdin, the URL for a scrape."""
    format: str | None = None
    diagnostics: tuple[Diagnostic, ...] = ()
    error: str | None = None
    """Why the input could not be read (or, in promtool mode, parsed); None when it was."""
    source: bytes | None = None
    """The raw input, kept so the text reporter can quote lines; None for protobuf or unreadable."""
    lines: int = 0
    families: int = 0
    samples: int = 0
    ignored: int = 0
    suppressed: int = 0
    cardinality: Any = None
    """The cardinality report for this input (``--cardinality``), else None."""

    def source_lines(self) -> list[str]:
        """The input split into lines as the parsers count them (``\\n``, with a ``\\r`` dropped)."""
        if self.source is None:
            return []
        text = self.source.decode("utf-8", "replace")
        return [line.removesuffix("\r") for line in text.split("\n")]

    def source_line_texts(self, numbers: Iterable[int]) -> dict[int, str]:
        """Lines ``numbers`` (1-based) of :meth:`source_lines`, without splitting the whole input.

        Only the wanted lines are decoded; the rest is skipped by counting
        newlines a block at a time, so a diagnostic in a 1M-line file costs
        one pass of ``bytes.count``, not a list of a million strings.
        Numbers past the end are left out.
        """
        data = self.source
        found: dict[int, str] = {}
        if data is None:
            return found
        line, position = 1, 0
        for number in sorted({n for n in numbers if n > 0}):
            position = _skip_lines(data, position, number - line)
            if position < 0:
                break
            line = number
            end = data.find(b"\n", position)
            raw = data[position:] if end < 0 else data[position:end]
            found[number] = raw.decode("utf-8", "replace").removesuffix("\r")
        return found


_SKIP_BLOCK = 1 << 16
"""Bytes whose newlines :func:`_skip_lines` counts at once."""


def _skip_lines(data: bytes, position: int, count: int) -> int:
    """Where the line ``count`` lines after the one starting at ``position`` starts, or -1."""
    while count > 0:
        if count <= 64:
            # Near lines (diagnostics come sorted): step newline to newline, no block count.
            for _ in range(count):
                position = data.find(b"\n", position) + 1
                if position == 0:
                    return -1
            return position
        end = min(len(data), position + _SKIP_BLOCK)
        newlines = data.count(b"\n", position, end)
        if newlines >= count:
            for _ in range(count):
                position = data.index(b"\n", position) + 1
            return position
        if end >= len(data):
            return -1
        count -= newlines
        position = end
    return position


@dataclass(frozen=True, slots=True)
class CheckRun:
    """Everything one ``promscope check`` produced, ready to present."""

    files: tuple[FileOutcome, ...]
    fail_on: Severity = Severity.ERROR
    codes: dict[str, Any] = field(default_factory=dict)
    """The code catalogue (``promscope.codes.all_codes()``), for SARIF rules; may be empty."""

    def count(self, severity: Severity) -> int:
        return sum(1 for f in self.files for d in f.diagnostics if d.severity is severity)

    @property
    def unreadable(self) -> int:
        return sum(1 for f in self.files if f.error is not None)

    @property
    def ignored(self) -> int:
        return sum(f.ignored for f in self.files)

    def is_failure(self, diagnostic: Diagnostic) -> bool:
        return diagnostic.severity.at_least(self.fail_on)

    @property
    def failed(self) -> bool:
        """Some diagnostic is at or above ``fail_on``, or an input was unreadable."""
        return self.unreadable > 0 or any(self.is_failure(d) for f in self.files for d in f.diagnostics)


Reporter = Callable[[CheckRun, IO[str], IO[str], Styler, bool], None]


def report(
    output: str,
    run: CheckRun,
    *,
    out: IO[str],
    err: IO[str],
    color: bool = False,
    quiet: bool = False,
) -> None:
    """Write ``run`` with the reporter named ``output`` (one of :data:`OUTPUTS`)."""
    reporter = _REPORTERS[output]
    reporter(run, out, err, Styler(color), quiet)


# -- text ---------------------------------------------------------------------------------------------

_MAX_SNIPPET = 160
"""Characters of a source line shown; longer lines are cut around the column."""


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def _location(path: str, diagnostic: Diagnostic, fmt: str | None = None) -> str:
    """``path:line:col`` (``path (message N)`` for protobuf, whose "line" is a message index)."""
    if fmt == "protobuf" and diagnostic.line > 0:
        return f"{path} (message {diagnostic.line})"
    if diagnostic.line <= 0:
        return path
    # A whole-line diagnostic (column 0) is shown at column 1, so every location has the
    # ``path:line:col`` shape that editors' and CI problem matchers expect.
    return f"{path}:{diagnostic.line}:{max(diagnostic.column, 1)}"


def display_message(diagnostic: Diagnostic) -> str:
    """The message as people read it: prefixed with the metric when the text does not name it.

    promlint's texts ("no help text", "metric not unique") never name the metric; promtool
    prints ``<metric> <text>``, and a report line must say which metric it is about too.
    """
    metric = diagnostic.metric
    if metric and metric not in diagnostic.message:
        return f"{metric}: {diagnostic.message}"
    return diagnostic.message


def _snippet(line_text: str, column: int) -> tuple[str, int]:
    """The part of ``line_text`` to show and the 0-based caret offset in it (-1: no caret).

    Every character stays one cell wide, so the caret lands under the column
    the parser counted: a tab shows as a space and a control character as
    U+FFFD, which also keeps input from driving the terminal.
    """
    text = "".join(ch if ch.isprintable() else (" " if ch == "\t" else "\ufffd") for ch in line_text)
    caret = min(column - 1, len(text)) if column > 0 else -1
    if len(text) <= _MAX_SNIPPET:
        return text, caret
    start = max(0, caret - _MAX_SNIPPET // 2) if caret >= 0 else 0
    shown = text[start : start + _MAX_SNIPPET]
    prefix = "…" if start > 0 else ""
    suffix = "…" if start + _MAX_SNIPPET < len(text) else ""
    offset = caret - start + len(prefix) if caret >= 0 else -1
    return prefix + shown + suffix, offset


def _printable(text: str) -> str:
    """Control characters as visible escapes, so input cannot drive the terminal."""
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else f"\\x{ord(ch):02x}" for ch in text)


def _report_text(run: CheckRun, out: IO[str], err: IO[str], style: Styler, quiet: bool) -> None:
    for outcome in run.files:
        if outcome.error is not None:
            continue  # the command has already said so on stderr, in one line
        lines: dict[int, str] | None = None
        for diagnostic in outcome.diagnostics:
            if quiet and not run.is_failure(diagnostic):
                continue
            out.write(
                f"{style(_location(outcome.path, diagnostic, outcome.format), 'bold')}: "
                f"{style.severity(diagnostic.severity)} {style(diagnostic.code, 'bold')} "
                f"{_printable(display_message(diagnostic))}\n"
            )
            if quiet or diagnostic.line <= 0 or outcome.source is None:
                continue
            if lines is None:
                lines = outcome.source_line_texts(d.line for d in outcome.diagnostics)
            line_text = lines.get(diagnostic.line)
            if line_text is None:
                continue
            shown, caret = _snippet(line_text, diagnostic.column)
            gutter = " " * len(str(diagnostic.line))
            out.write(f" {style(str(diagnostic.line), 'blue')} {style('|', 'blue')} {shown}\n")
            if caret >= 0:
                marker = style.severity(diagnostic.severity, "^")
                out.write(f" {gutter} {style('|', 'blue')} {' ' * caret}{marker}\n")
        if outcome.suppressed and not quiet:
            out.write(f"{outcome.path}: {outcome.suppressed} more diagnostics not kept (limit reached)\n")
        if outcome.cardinality is not None and not quiet:
            _write_cardinality_text(outcome, out, style)
    if quiet:
        return
    readable = len(run.files) - run.unreadable
    summary = (
        f"{_plural(run.count(Severity.ERROR), 'error')}, "
        f"{_plural(run.count(Severity.WARNING), 'warning')}, "
        f"{run.count(Severity.STYLE)} style in {_plural(readable, 'file')}"
    )
    extras = []
    if run.ignored:
        extras.append(f"{run.ignored} ignored")
    if run.unreadable:
        extras.append(f"{run.unreadable} unreadable")
    if extras:
        summary += f" ({', '.join(extras)})"
    out.write(style(summary, "bold", "red") if run.failed else style(summary, "bold", "green"))
    out.write("\n")


_CARDINALITY_TOP = 10
"""Families listed in the text cardinality table."""


def _write_cardinality_text(outcome: FileOutcome, out: IO[str], style: Styler) -> None:
    """A table of the families with most series, and the label driving each."""
    report_ = outcome.cardinality
    families = getattr(report_, "families", None)
    if families is None:  # not a CardinalityReport: show what it is
        import json

        out.write(json.dumps(_cardinality_dict(report_), indent=2, default=str) + "\n")
        return
    total = report_.total_series
    noun = "family" if len(families) == 1 else "families"
    out.write(style(f"{outcome.path}: {total} series in {len(families)} {noun}", "bold") + "\n")
    if not families:
        return
    rows = [("series", "share", "family", "top label")]
    for family in families[:_CARDINALITY_TOP]:
        top = family.top_label
        label = ""
        if top is not None:
            label = f"{top.name} ({top.distinct} values"
            label += f", {top.id_kind} IDs)" if top.id_kind else ")"
        share = report_.share(family) * 100
        rows.append((str(family.series), f"{share:.1f}%", family.name, label))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    for i, row in enumerate(rows):
        line = f"  {row[0]:>{widths[0]}}  {row[1]:>{widths[1]}}  {row[2]:<{widths[2]}}  {row[3]}".rstrip()
        out.write((style(line, "dim") if i == 0 else line) + "\n")
    if len(families) > _CARDINALITY_TOP:
        out.write(f"  … {len(families) - _CARDINALITY_TOP} more (--output json lists them all)\n")


def _cardinality_dict(report_: Any) -> Any:
    to_dict = getattr(report_, "to_dict", None)
    if callable(to_dict):
        return to_dict()
    import dataclasses

    if dataclasses.is_dataclass(report_) and not isinstance(report_, type):
        return dataclasses.asdict(report_)
    return report_


# -- json ---------------------------------------------------------------------------------------------


def diagnostic_dict(diagnostic: Diagnostic) -> dict[str, Any]:
    return {
        "code": diagnostic.code,
        "severity": diagnostic.severity.value,
        "line": diagnostic.line,
        "column": diagnostic.column,
        "message": diagnostic.message,
        "metric": diagnostic.metric,
    }


def run_dict(run: CheckRun) -> dict[str, Any]:
    """The JSON document (see the module docstring for its schema)."""
    files = []
    for outcome in run.files:
        entry: dict[str, Any] = {
            "path": outcome.path,
            "format": outcome.format if outcome.error is None else None,
            "error": outcome.error,
            "lines": outcome.lines,
            "families": outcome.families,
            "samples": outcome.samples,
            "ignored": outcome.ignored,
            "suppressed": outcome.suppressed,
            "diagnostics": [diagnostic_dict(d) for d in outcome.diagnostics],
        }
        if outcome.cardinality is not None:
            entry["cardinality"] = _cardinality_dict(outcome.cardinality)
        files.append(entry)
    return {
        "version": JSON_SCHEMA_VERSION,
        "tool": {"name": "promscope", "version": __version__},
        "fail_on": run.fail_on.value,
        "failed": run.failed,
        "files": files,
        "summary": {
            "files": len(run.files),
            "unreadable": run.unreadable,
            "errors": run.count(Severity.ERROR),
            "warnings": run.count(Severity.WARNING),
            "style": run.count(Severity.STYLE),
            "ignored": run.ignored,
        },
    }


def _report_json(run: CheckRun, out: IO[str], err: IO[str], style: Styler, quiet: bool) -> None:
    import json

    json.dump(run_dict(run), out, indent=2, ensure_ascii=False, default=str)
    out.write("\n")


# -- github -------------------------------------------------------------------------------------------

_GITHUB_LEVEL = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.STYLE: "notice"}


def _gh_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _gh_property(text: str) -> str:
    return _gh_data(text).replace(":", "%3A").replace(",", "%2C")


def github_command(level: str, message: str, **properties: str | int | None) -> str:
    """One workflow command, ``::level k=v,...::message``, escaped as the runner expects."""
    props = ",".join(f"{key}={_gh_property(str(value))}" for key, value in properties.items() if value)
    return f"::{level} {props}::{_gh_data(message)}" if props else f"::{level}::{_gh_data(message)}"


def _report_github(run: CheckRun, out: IO[str], err: IO[str], style: Styler, quiet: bool) -> None:
    for outcome in run.files:
        is_file = not outcome.path.startswith(("<", "http://", "https://"))
        if outcome.error is not None:
            out.write(
                github_command(
                    "error",
                    f"{outcome.path}: {outcome.error}",
                    file=outcome.path if is_file else None,
                    title="unreadable input",
                )
                + "\n"
            )
            continue
        for diagnostic in outcome.diagnostics:
            if quiet and not run.is_failure(diagnostic):
                continue
            message = display_message(diagnostic)
            if not is_file:
                message = f"{outcome.path}: {message}"
            located = is_file and diagnostic.line > 0 and outcome.format != "protobuf"
            out.write(
                github_command(
                    _GITHUB_LEVEL[diagnostic.severity],
                    message,
                    file=outcome.path if is_file else None,
                    line=diagnostic.line if located else None,
                    col=diagnostic.column if located and diagnostic.column > 0 else None,
                    title=diagnostic.code,
                )
                + "\n"
            )


# -- sarif --------------------------------------------------------------------------------------------

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
_SARIF_LEVEL = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.STYLE: "note"}


def _sarif_uri(path: str) -> str:
    from urllib.parse import quote

    if path.startswith(("http://", "https://")):
        return path
    if path.startswith("<"):
        return quote(path.strip("<>"))
    from pathlib import PurePath

    pure = PurePath(path)
    if pure.is_absolute():
        from pathlib import Path

        return Path(path).as_uri()
    return quote(pure.as_posix())


def _sarif_location(path: str, diagnostic: Diagnostic | None = None) -> dict[str, Any]:
    physical: dict[str, Any] = {"artifactLocation": {"uri": _sarif_uri(path)}}
    if diagnostic is not None and diagnostic.line > 0:
        region: dict[str, int] = {"startLine": diagnostic.line}
        if diagnostic.column > 0:
            region["startColumn"] = diagnostic.column
        physical["region"] = region
    return {"physicalLocation": physical}


def sarif_dict(run: CheckRun) -> dict[str, Any]:
    """The SARIF 2.1.0 log for ``run``."""
    catalogue: dict[str, tuple[str, Severity]] = {
        code: (info.summary, info.severity) for code, info in run.codes.items()
    }
    for outcome in run.files:
        for diagnostic in outcome.diagnostics:
            catalogue.setdefault(diagnostic.code, (diagnostic.code, diagnostic.severity))
    rule_ids = sorted(catalogue)
    index = {code: i for i, code in enumerate(rule_ids)}
    rules = [
        {
            "id": code,
            "shortDescription": {"text": catalogue[code][0]},
            "defaultConfiguration": {"level": _SARIF_LEVEL[catalogue[code][1]]},
            "properties": {"tags": [code.split("-", 1)[0]]},
        }
        for code in rule_ids
    ]
    results = []
    notifications = []
    for outcome in run.files:
        if outcome.error is not None:
            notifications.append(
                {
                    "level": "error",
                    "message": {"text": f"{outcome.path}: {outcome.error}"},
                    "locations": [_sarif_location(outcome.path)],
                }
            )
            continue
        for diagnostic in outcome.diagnostics:
            result: dict[str, Any] = {
                "ruleId": diagnostic.code,
                "ruleIndex": index[diagnostic.code],
                "level": _SARIF_LEVEL[diagnostic.severity],
                "message": {"text": display_message(diagnostic)},
                "locations": [
                    _sarif_location(outcome.path, None if outcome.format == "protobuf" else diagnostic)
                ],
            }
            properties: dict[str, Any] = {}
            if diagnostic.metric:
                properties["metric"] = diagnostic.metric
            if outcome.format == "protobuf" and diagnostic.line > 0:
                properties["message_index"] = diagnostic.line
            if properties:
                result["properties"] = properties
            results.append(result)
    invocation: dict[str, Any] = {"executionSuccessful": run.unreadable == 0}
    if notifications:
        invocation["toolExecutionNotifications"] = notifications
    return {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "promscope",
                        "version": __version__,
                        "semanticVersion": __version__,
                        "rules": rules,
                    }
                },
                "columnKind": "unicodeCodePoints",
                "invocations": [invocation],
                "results": results,
            }
        ],
    }


def _report_sarif(run: CheckRun, out: IO[str], err: IO[str], style: Styler, quiet: bool) -> None:
    import json

    json.dump(sarif_dict(run), out, indent=2, ensure_ascii=False)
    out.write("\n")


# -- junit --------------------------------------------------------------------------------------------


def _xml_safe(text: str) -> str:
    """Drop what XML 1.0 cannot carry even escaped (most C0 controls, lone surrogates)."""
    return "".join(
        ch
        if ch in "\t\n\r" or ("\x20" <= ch <= "\ud7ff") or ("\ue000" <= ch <= "\ufffd") or ch > "\uffff"
        else "\ufffd"
        for ch in text
    )


def junit_xml(run: CheckRun) -> str:
    """The JUnit XML report for ``run``."""
    import xml.etree.ElementTree as ET

    root = ET.Element("testsuites", name="promscope check")
    total = failures = errors = 0
    for outcome in run.files:
        path = _xml_safe(outcome.path)
        suite = ET.SubElement(root, "testsuite", name=path)
        cases = failed = errored = 0
        if outcome.error is not None:
            case = ET.SubElement(suite, "testcase", name="read", classname=path, file=path, time="0")
            error = ET.SubElement(case, "error", message=_xml_safe(outcome.error), type="unreadable")
            error.text = _xml_safe(f"{outcome.path}: {outcome.error}")
            cases, errored = 1, 1
        elif not outcome.diagnostics:
            ET.SubElement(suite, "testcase", name="clean", classname=path, file=path, time="0")
            cases = 1
        for diagnostic in outcome.diagnostics if outcome.error is None else ():
            if diagnostic.line <= 0:
                where = "file level"
            elif outcome.format == "protobuf":
                where = f"message {diagnostic.line}"
            elif diagnostic.column <= 0:
                where = f"line {diagnostic.line}"
            else:
                where = f"{diagnostic.line}:{diagnostic.column}"
            case = ET.SubElement(
                suite,
                "testcase",
                name=f"{diagnostic.code} at {where}",
                classname=path,
                file=path,
                time="0",
            )
            if diagnostic.line > 0 and outcome.format != "protobuf":
                case.set("line", str(diagnostic.line))
            text = _xml_safe(
                f"{_location(outcome.path, diagnostic, outcome.format)}: {diagnostic.severity.value} "
                f"{diagnostic.code} {display_message(diagnostic)}"
            )
            if run.is_failure(diagnostic):
                failure = ET.SubElement(
                    case, "failure", message=_xml_safe(display_message(diagnostic)), type=diagnostic.code
                )
                failure.text = text
                failed += 1
            else:
                ET.SubElement(case, "system-out").text = text
            cases += 1
        suite.set("tests", str(cases))
        suite.set("failures", str(failed))
        suite.set("errors", str(errored))
        suite.set("skipped", "0")
        suite.set("time", "0")
        total, failures, errors = total + cases, failures + failed, errors + errored
    root.set("tests", str(total))
    root.set("failures", str(failures))
    root.set("errors", str(errors))
    root.set("time", "0")
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def _report_junit(run: CheckRun, out: IO[str], err: IO[str], style: Styler, quiet: bool) -> None:
    out.write(junit_xml(run))


# -- promtool -----------------------------------------------------------------------------------------


def promtool_lines(run: CheckRun) -> list[str]:
    """The stderr lines ``promtool check metrics`` would print, input by input."""
    lines: list[str] = []
    for outcome in run.files:
        if outcome.error is not None:
            where = f"{outcome.path}: " if outcome.format is None else ""  # unreadable, not unparsable
            lines.append(f"error while linting: {where}{outcome.error}")
            continue
        # promlint sorts problems by metric name, then by text (byte order, as Go compares strings).
        problems = sorted((d.metric or "", d.message) for d in outcome.diagnostics)
        lines.extend(f"{metric} {text}" for metric, text in problems)
    return lines


def promtool_exit_code(run: CheckRun) -> int:
    """promtool's exit code: 1 when an input could not be linted, else 3 for problems, else 0."""
    if run.unreadable:
        return 1
    if any(outcome.diagnostics for outcome in run.files):
        return 3
    return 0


def _report_promtool(run: CheckRun, out: IO[str], err: IO[str], style: Styler, quiet: bool) -> None:
    for line in promtool_lines(run):
        err.write(line + "\n")


_REPORTERS: dict[str, Reporter] = {
    "text": _report_text,
    "json": _report_json,
    "github": _report_github,
    "sarif": _report_sarif,
    "junit": _report_junit,
    "promtool": _report_promtool,
}


def iter_failures(run: CheckRun) -> Iterable[tuple[FileOutcome, Diagnostic]]:
    """Every diagnostic at or above the run's ``fail_on``, with its input."""
    for outcome in run.files:
        for diagnostic in outcome.diagnostics:
            if run.is_failure(diagnostic):
                yield outcome, diagnostic
