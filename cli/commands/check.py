"""``promscope check``: validate and lint expositions from files, stdin and URLs.

The command reads every input, asks the engine to parse it
(:func:`promscope.exposition.parse`) and to run the rules over it
(:func:`promscope.check.check_result`), then hands the outcome to one
reporter from :mod:`cli.reporters`. It never parses or fetches by itself.

Heavy imports stay inside the function: the parsers load when there is
something to parse, httpx only when an input is a URL, Textual never.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Sequence
from typing import IO, TYPE_CHECKING, Any

import click

from cli.exit_codes import EPILOG, PROMTOOL_EPILOG, ExitCode
from cli.options import EXTENSION_FORMATS, input_format, read_input
from cli.output import print_error, wants_color
from cli.reporters import OUTPUTS

if TYPE_CHECKING:
    from pathlib import Path

    from cli.reporters import CheckRun, FileOutcome
    from promscope.check import CheckOptions, CheckReport
    from promscope.model import ParseResult, Severity

__all__ = ["EXTENSION_FORMATS", "check"]

_DIRECTORY_GLOBS = ("*.prom", "*.om", "*.pb")

_HELP = f"""Validate and lint Prometheus expositions.

INPUT is a file, a directory (its *.prom, *.om and *.pb files), a URL
(http:// or https://, scraped once) or - for stdin; with no INPUT and stdin
not a terminal, stdin is read. With --format auto a file's extension decides
its format (.prom text, .om OpenMetrics, .pb protobuf); anything else is
sniffed, and a URL is parsed as its Content-Type says.

\b
Examples:
  promscope check metrics.prom
  curl -s localhost:9100/metrics | promscope check --fail-on warning
  promscope check http://localhost:9090/metrics --output json
  promscope check --output promtool < metrics.prom   # drop-in for promtool check metrics

{EPILOG}

{PROMTOOL_EPILOG}
"""


def _stdin_is_terminal() -> bool:
    """True when nobody piped anything in: reading stdin would wait for typing."""
    return sys.stdin.isatty()


@click.command(
    "check",
    help=_HELP,
    short_help="Validate and lint expositions (files, stdin, URLs).",
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.argument("inputs", metavar="[INPUT]...", nargs=-1)
@click.option(
    "--format",
    "format_",
    type=click.Choice(["auto", "text", "openmetrics", "protobuf"]),
    default=None,
    help="Wire format of the inputs.  [default: auto]",
)
@click.option(
    "--output",
    "-o",
    type=click.Choice(OUTPUTS),
    default=None,
    help="Report format.  [default: text]",
)
@click.option(
    "--fail-on",
    type=click.Choice(["error", "warning", "style"]),
    default=None,
    help="Lowest severity that makes the exit code 1.  [default: error]",
)
@click.option(
    "--ignore",
    "ignores",
    metavar="CODE[:METRIC-GLOB]",
    multiple=True,
    help="Drop a diagnostic code, optionally only for metrics matching a glob; repeatable, "
    "added to the configuration's list.",
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="Configuration file (default: $PROMSCOPE_CONFIG, else promscope.toml or [tool.promscope] in "
    "pyproject.toml, searched upward to the repository root).",
)
@click.option("--no-lint", is_flag=True, default=None, help="Skip naming lint (LINT-* codes).")
@click.option("--cardinality", is_flag=True, default=None, help="Report series counts per metric and label.")
@click.option("--list-codes", is_flag=True, help="List every diagnostic code and exit.")
@click.option(
    "--color",
    type=click.Choice(["auto", "always", "never"]),
    default="auto",
    show_default=True,
    help="Colour text output.",
)
@click.option(
    "--quiet",
    "-q",
    is_flag=True,
    help="Only diagnostics at or above --fail-on; no source lines, no summary.",
)
@click.pass_context
def check(
    ctx: click.Context,
    inputs: tuple[str, ...],
    format_: str | None,
    output: str | None,
    fail_on: str | None,
    ignores: tuple[str, ...],
    config_path: str | None,
    no_lint: bool | None,
    cardinality: bool | None,
    list_codes: bool,
    color: str,
    quiet: bool,
) -> None:
    out = sys.stdout
    err = sys.stderr
    if list_codes:
        _list_codes(output or "text", out)
        ctx.exit(ExitCode.OK)
    settings = _settings(
        config_path,
        format_=format_,
        output=output,
        fail_on=fail_on,
        ignores=ignores,
        no_lint=no_lint,
        cardinality=cardinality,
    )

    if not inputs:
        if _stdin_is_terminal():
            raise click.UsageError("no input: give a file, a directory, a URL, or - for stdin", ctx)
        inputs = ("-",)

    promtool = settings.output == "promtool"
    outcomes: list[FileOutcome] = []
    for name in _expand(inputs):
        outcome = _check_one(name, settings, promtool=promtool)
        if outcome.error is not None and not promtool:
            print_error(f"{outcome.path}: {outcome.error}", stream=err)
        outcomes.append(outcome)

    from cli.reporters import CheckRun, promtool_exit_code, report

    run = CheckRun(files=tuple(outcomes), fail_on=settings.fail_on, codes=_catalogue(settings.output))
    report(
        settings.output,
        run,
        out=out,
        err=err,
        color=wants_color(color, out),
        quiet=quiet,
    )
    out.flush()
    ctx.exit(promtool_exit_code(run) if promtool else _exit_code(run))


def _exit_code(run: CheckRun) -> ExitCode:
    if run.unreadable:
        return ExitCode.UNREADABLE
    if run.failed:
        return ExitCode.PROBLEMS
    return ExitCode.OK


# -- settings: flags > environment > config file > defaults ------------------------------------------


class _Settings:
    """The options one run uses, after flags, environment and configuration are merged."""

    __slots__ = ("format", "options", "output")

    def __init__(self, *, format: str, output: str, options: CheckOptions) -> None:
        self.format = format
        self.output = output
        self.options = options

    @property
    def fail_on(self) -> Severity:
        return self.options.fail_on


def _settings(
    config_path: str | None,
    *,
    format_: str | None,
    output: str | None,
    fail_on: str | None,
    ignores: Sequence[str],
    no_lint: bool | None,
    cardinality: bool | None,
) -> _Settings:
    """Flags over ``PROMSCOPE_*`` over the config file over defaults (:mod:`promscope.config`)."""
    from promscope.config import apply_overrides, load_config

    config = apply_overrides(
        load_config(explicit=_as_path(config_path)),
        ignore=ignores,
        fail_on=fail_on,
        lint=False if no_lint else None,
        cardinality=cardinality,
    )
    options = config.check.options()
    output = output or "text"
    if output == "promtool":  # promtool's rule set and nothing else
        options = dataclasses.replace(options, lint=True, promtool_only=True, cardinality=False)
    return _Settings(format=format_ or "auto", output=output, options=options)


# -- inputs -------------------------------------------------------------------------------------------


def _as_path(name: str | None) -> Path | None:
    """``name`` as a Path; pathlib is loaded only when there is a name (it costs start-up time)."""
    if name is None:
        return None
    from pathlib import Path

    return Path(name)


def _is_url(name: str) -> bool:
    return name.startswith(("http://", "https://"))


def _expand(inputs: Sequence[str]) -> list[str]:
    """Inputs in order, a directory replaced by its exposition files (sorted)."""
    expanded: list[str] = []
    for name in inputs:
        if name != "-" and not _is_url(name) and os.path.isdir(name):
            from pathlib import Path

            path = Path(name)
            found = sorted({str(p) for glob in _DIRECTORY_GLOBS for p in path.rglob(glob) if p.is_file()})
            expanded.extend(found or [name])
            continue
        expanded.append(name)
    return expanded


def _read(name: str) -> bytes:
    """The bytes of a file or stdin; :class:`OSError` when they cannot be read."""
    if name != "-" and os.path.isdir(name):
        raise IsADirectoryError(f"no exposition files ({', '.join(_DIRECTORY_GLOBS)}) in this directory")
    return read_input(name)


def _os_error_text(error: OSError) -> str:
    if isinstance(error, FileNotFoundError):
        return "no such file"
    if isinstance(error, PermissionError):
        return "permission denied"
    if isinstance(error, IsADirectoryError) and error.args and isinstance(error.args[0], str):
        return error.args[0]
    return error.strerror.lower() if error.strerror else str(error)


def _check_one(name: str, settings: _Settings, *, promtool: bool) -> FileOutcome:
    from cli.reporters import FileOutcome
    from promscope.exposition import parse
    from promscope.model import Format

    display = "<stdin>" if name == "-" else name
    if _is_url(name):
        fetched = _scrape(name, settings, sys.stderr)
        if isinstance(fetched, str):
            return FileOutcome(display, error=fetched)
        result, data = fetched
    else:
        try:
            data = _read(name)
        except OSError as exc:
            return FileOutcome(display, error=_os_error_text(exc))
        result = parse(data, format=input_format(settings.format, name), semantics=not promtool)

    from promscope.check import check_result

    base = FileOutcome(
        display,
        format=result.format.value,
        source=None if result.format is Format.PROTOBUF else data,
        lines=result.lines,
        families=len(result.families),
        samples=result.sample_count,
        suppressed=result.suppressed,
    )
    checked = check_result(result, settings.options)
    if promtool:
        return _promtool_outcome(checked, base)
    return dataclasses.replace(
        base,
        diagnostics=checked.diagnostics,
        ignored=checked.ignored,
        cardinality=checked.cardinality,
    )


def _promtool_outcome(checked: CheckReport, base: FileOutcome) -> FileOutcome:
    """promtool's view: input its decoder rejects is fatal (a syntax error, or quoted names, which
    promtool 2.42 predates), else promlint's findings with promtool's repeats."""
    from promscope.check.lint import to_diagnostics

    error = checked.promtool_error()
    if error is not None:
        return dataclasses.replace(base, source=None, error=error)
    diagnostics = []
    for finding in checked.lint_findings:
        diagnostics.extend(to_diagnostics([finding]) * finding.count)
    return dataclasses.replace(base, diagnostics=tuple(diagnostics), ignored=checked.ignored)


def _scrape(url: str, settings: _Settings, err: IO[str]) -> tuple[ParseResult, bytes] | str:
    """Scrape ``url`` once: ``(ParseResult, body)``, or why there is nothing to check as a string.

    A response whose body was parsed is checked even when Prometheus would
    fail the scrape for another reason (a wrong Content-Type); that reason
    is printed on stderr. ``--format`` other than auto re-parses the body.
    """
    from promscope.exposition import parse
    from promscope.scrape import Target, scrape_sync

    scraped = scrape_sync(Target(url))
    error = scraped.error
    body = scraped.body
    if scraped.parse is None:
        if error is not None:
            return str(error)
        return "no exposition in the response"
    if error is not None and error.kind.value not in ("parse", "content_type"):
        return str(error)  # a cut or undecodable body is not worth checking
    if error is not None and error.kind.value == "content_type":
        print_error(f"{url}: {error}", stream=err, level="warning")
    if settings.format != "auto":
        return parse(body, format=settings.format), body
    return scraped.parse, body


# -- catalogue ----------------------------------------------------------------------------------------


def _catalogue(output: str) -> dict[str, Any]:
    """The code catalogue, loaded only for reporters that show it."""
    if output != "sarif":
        return {}
    from promscope.codes import all_codes

    return dict(all_codes())


def _list_codes(output: str, out: IO[str]) -> None:
    from promscope.codes import all_codes

    codes = all_codes()
    if output == "json":
        import json

        document = [
            {"code": code, "severity": info.severity.value, "summary": info.summary}
            for code, info in codes.items()
        ]
        json.dump(document, out, indent=2)
        out.write("\n")
        return
    width = max((len(code) for code in codes), default=4)
    for code, info in codes.items():
        out.write(f"{code:<{width}}  {info.severity.value:<7}  {info.summary}\n")
