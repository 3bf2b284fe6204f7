"""``promscope diff``: what differs between two expositions, against a baseline, or in one endpoint over time.

Three modes, one verb:

``promscope diff A B``
    A and B are URLs (scraped once, as ``promscope scrape`` does) or files
    in any format (``-`` is stdin). The report lists families added and
    removed, type/help/unit and label-name changes, series added and removed
    (counts and examples) and gauge values that moved.
``promscope diff --baseline FILE CURRENT``
    For CI: fails (exit 1) when metric names, types, units or label names
    differ from the baseline, or series grow by more than
    ``--max-series-growth`` percent in one family or in total.
``promscope diff URL --interval 10s [--count N] [--record FILE]``
    Scrapes URL every interval and prints, per round, the series that
    appeared, vanished or changed, and counter rates (reset-aware).
    ``--record FILE`` writes every scrape to a session file
    (``promscope replay FILE``), as the live ``scrape`` does.

The engine does the work (:mod:`promscope.diff`); this module reads inputs
and prints. ``--output json`` prints ``promscope.diff/v1``,
``promscope.diff.baseline/v1``, or one ``promscope.diff.round/v1`` object per
line; the schemas are documented in :mod:`promscope.diff`.
"""

from __future__ import annotations

import json
import math
import sys
import time
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any

import click

from cli.exit_codes import ExitCode
from cli.options import input_format, parse_duration, read_input, record_option, value_callback
from cli.output import Styler, print_error, wants_color

if TYPE_CHECKING:
    from promscope.diff import BaselineReport, ExpositionDiff, RoundDiff
    from promscope.model import MetricFamily

__all__ = ["Loaded", "diff", "load_input"]


_HELP = """Show what differs between two expositions, or in one endpoint over time.

A and B are URLs (http:// or https://, scraped once) or exposition files in
any format (- for stdin; .prom text, .om OpenMetrics, .pb protobuf, other
names sniffed). The report lists families added and removed, type, help,
unit and label-name changes, series added and removed, and gauge values
that moved.

\b
--baseline FILE compares CURRENT (a URL or file) with FILE and fails when
metric names, types, units or label names change, or series grow by more
than --max-series-growth percent in one family or in total.

\b
--interval scrapes one URL repeatedly and reports, per round, the series
that appeared, vanished or changed, with counter rates (reset-aware);
--record FILE also writes every scrape to a session (promscope replay FILE).

\b
Examples:
  promscope diff before.prom after.prom
  promscope diff http://old:9100/metrics http://new:9100/metrics -o json
  promscope diff --baseline metrics.baseline.prom http://localhost:8080/metrics
  promscope diff http://localhost:9100/metrics --interval 10s --count 6
  promscope diff http://localhost:9100/metrics --interval 10s --record watch.psession

\b
Exit codes:
  0  no structural difference (A B); within the baseline; interval rounds done
  1  A and B differ in families, types, help, units, labels or series
     (value changes alone do not count); the baseline check failed
  2  usage error
  3  an input was unreadable or unreachable (interval: every round failed)
"""


@dataclass(frozen=True, slots=True)
class Loaded:
    """One input, read and parsed: its families and how many parse errors it had."""

    name: str
    families: tuple[MetricFamily, ...]
    errors: int


class _Unreadable(Exception):
    def __init__(self, name: str, message: str, hint: str = "") -> None:
        super().__init__(f"{name}: {message}")
        self.message = f"{name}: {message}"
        self.hint = hint


def _is_url(name: str) -> bool:
    return name.startswith(("http://", "https://"))


def _build_target(url: str, timeout: float) -> Any:
    from promscope.errors import ConfigError
    from promscope.scrape import Target

    try:
        return Target(url, timeout=timeout)
    except ConfigError as exc:
        raise click.BadParameter(exc.message) from None


def load_input(name: str, *, format_: str = "auto", timeout: float = 10.0) -> Loaded:
    """Read a URL, a file or ``-`` and parse it; :class:`_Unreadable` when there is nothing to compare."""
    from promscope.exposition import parse

    if _is_url(name):
        from promscope.scrape import scrape_sync

        result = scrape_sync(_build_target(name, timeout))
        if result.parse is None or (
            result.error is not None and result.error.kind.value not in ("parse", "content_type")
        ):
            error = result.error
            raise _Unreadable(
                name, error.message if error else "no exposition in the response", error.hint if error else ""
            )
        parsed = result.parse if format_ == "auto" else parse(result.body, format=format_)
    else:
        try:
            data = read_input(name)
        except OSError as exc:
            reason = (
                "no such file" if isinstance(exc, FileNotFoundError) else (exc.strerror or str(exc)).lower()
            )
            raise _Unreadable(name, reason) from None
        parsed = parse(data, format=input_format(format_, name))
    return Loaded(name, parsed.families, len(parsed.errors()))


def _warn_errors(loaded: Loaded, err: IO[str]) -> None:
    if loaded.errors:
        print_error(
            f"{loaded.name}: {loaded.errors} parse error{'s' if loaded.errors != 1 else ''}; "
            "comparing what parsed",
            hint=f"promscope check {loaded.name} lists them",
            stream=err,
            level="warning",
        )


_duration = value_callback(parse_duration)


@click.command(
    "diff",
    help=_HELP,
    short_help="Compare two expositions, one against a baseline, or one endpoint over time.",
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.argument("inputs", metavar="A [B]", nargs=-1)
@click.option("--baseline", metavar="FILE", help="Compare the one INPUT with this baseline exposition (CI).")
@click.option(
    "--max-series-growth",
    metavar="PCT",
    type=click.FloatRange(min=0),
    default=20.0,
    show_default=True,
    help="With --baseline: most series growth allowed, in percent, per family and in total.",
)
@click.option(
    "--interval", metavar="DURATION", callback=_duration, help="Scrape one URL every DURATION (10s, 1m)."
)
@click.option(
    "--count", type=click.IntRange(min=1), help="With --interval: stop after N rounds.  [default: run]"
)
@click.option(
    "--format",
    "format_",
    type=click.Choice(["auto", "text", "openmetrics", "protobuf"]),
    default="auto",
    show_default=True,
    help="Wire format of file inputs.",
)
@click.option(
    "--timeout",
    metavar="DURATION",
    callback=_duration,
    default="10s",
    show_default=True,
    help="Scrape timeout.",
)
@click.option(
    "--examples", type=click.IntRange(min=0), default=5, show_default=True, help="Series listed per change."
)
@click.option(
    "--output",
    "-o",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="Report format.",
)
@click.option(
    "--color",
    type=click.Choice(["auto", "always", "never"]),
    default="auto",
    show_default=True,
    help="Colour text output.",
)
@record_option
@click.pass_context
def diff(
    ctx: click.Context,
    inputs: tuple[str, ...],
    baseline: str | None,
    max_series_growth: float,
    interval: float | None,
    count: int | None,
    format_: str,
    timeout: float,
    examples: int,
    output: str,
    color: str,
    record: str | None = None,
) -> None:
    out, err = sys.stdout, sys.stderr
    style = Styler(output == "text" and wants_color(color, out))
    if interval is not None:
        if baseline is not None or len(inputs) != 1 or not _is_url(inputs[0]):
            raise click.UsageError("--interval takes exactly one URL (and no --baseline)", ctx)
        target = _build_target(inputs[0], timeout)
        code = _run_interval(
            target,
            interval,
            count,
            output=output,
            examples=examples,
            out=out,
            err=err,
            style=style,
            record=record,
        )
        ctx.exit(code)
    if count is not None:
        raise click.UsageError("--count goes with --interval", ctx)
    if record is not None:
        raise click.UsageError("--record goes with --interval (it records every scrape)", ctx)
    if baseline is not None:
        if len(inputs) != 1:
            raise click.UsageError("--baseline FILE compares one CURRENT input (a URL or file)", ctx)
        names = (baseline, inputs[0])
    else:
        if len(inputs) != 2:
            raise click.UsageError("give two inputs to compare (A B), or --baseline FILE CURRENT", ctx)
        names = (inputs[0], inputs[1])
    if names.count("-") > 1:
        raise click.UsageError("only one input can be stdin (-)", ctx)

    try:
        before = load_input(names[0], format_=format_, timeout=timeout)
        after = load_input(names[1], format_=format_, timeout=timeout)
    except _Unreadable as exc:
        print_error(exc.message, hint=exc.hint, stream=err)
        ctx.exit(ExitCode.UNREADABLE)
    _warn_errors(before, err)
    _warn_errors(after, err)

    from promscope.diff import check_baseline, diff_families

    if baseline is not None:
        report = check_baseline(
            before.families,
            after.families,
            max_series_growth=max_series_growth,
            baseline_name=before.name,
            current_name=after.name,
        )
        if output == "json":
            _write_json(out, report.to_json())
        else:
            out.write(render_baseline(report, style))
        out.flush()
        ctx.exit(ExitCode.OK if report.passed else ExitCode.PROBLEMS)

    result = diff_families(
        before.families, after.families, before_name=before.name, after_name=after.name, max_examples=examples
    )
    if output == "json":
        _write_json(out, result.to_json())
    else:
        out.write(render_diff(result, style))
    out.flush()
    ctx.exit(ExitCode.PROBLEMS if result.structural else ExitCode.OK)


def _write_json(out: IO[str], data: dict[str, Any], *, indent: int | None = 2) -> None:
    out.write(json.dumps(data, indent=indent, ensure_ascii=False, allow_nan=False) + "\n")


# -- text reports --------------------------------------------------------------------------------------------


def _number(value: float) -> str:
    """``7``, ``0.25``, ``1.5e+20``, ``NaN``: whole numbers without ``.0``, the rest round-trip exact."""
    if math.isfinite(value) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    from promscope.exposition.render import format_value

    return format_value(value)


def _plural(count: int, word: str, plural: str | None = None) -> str:
    return f"{count:,} {word if count == 1 else (plural or word + 's')}"


def _families(count: int) -> str:
    return _plural(count, "family", "families")


def render_diff(result: ExpositionDiff, style: Styler) -> str:
    """The readable report: a header, then one block per family that differs, in diff(1)'s +/-/~ marks."""
    from promscope.diff import format_series

    lines = [
        f"{style('---', 'bold', 'red')} {result.before_name}  "
        f"({_families(result.before_families)}, {_series(result.before_series)})",
        f"{style('+++', 'bold', 'green')} {result.after_name}  "
        f"({_families(result.after_families)}, {_series(result.after_series)})",
    ]
    if result.identical:
        lines.append("no differences")
        return "\n".join(lines) + "\n"
    lines.append("")
    for info in result.added:
        lines.append(
            f"{style('+', 'green')} {style(info.name, 'bold')}  {info.type}  ({_series(info.series)})"
        )
    for info in result.removed:
        lines.append(f"{style('-', 'red')} {style(info.name, 'bold')}  {info.type}  ({_series(info.series)})")
    for change in result.changed:
        lines.append(f"{style('~', 'yellow')} {style(change.name, 'bold')}  {change.after.type}")
        if change.type_changed:
            lines.append(f"    type    {change.before.type} -> {change.after.type}")
        if change.help_changed:
            lines.append(f"    help    {json.dumps(change.before.help)} -> {json.dumps(change.after.help)}")
        if change.unit_changed:
            lines.append(f"    unit    {change.before.unit or '(none)'} -> {change.after.unit or '(none)'}")
        if change.labels_changed:
            marks = [style(f"+{n}", "green") for n in change.labels_added]
            marks += [style(f"-{n}", "red") for n in change.labels_removed]
            lines.append(f"    labels  {' '.join(marks)}")
        if change.series_added or change.series_removed:
            lines.append(
                f"    series  {change.before.series:,} -> {change.after.series:,}  "
                f"(+{change.series_added:,} -{change.series_removed:,})"
            )
            for key in change.added_examples:
                lines.append(f"      {style('+', 'green')} {format_series(key)}")
            if change.series_added > len(change.added_examples):
                lines.append(
                    style(f"        … {change.series_added - len(change.added_examples):,} more added", "dim")
                )
            for key in change.removed_examples:
                lines.append(f"      {style('-', 'red')} {format_series(key)}")
            if change.series_removed > len(change.removed_examples):
                more = change.series_removed - len(change.removed_examples)
                lines.append(style(f"        … {more:,} more removed", "dim"))
        if change.value_changes:
            lines.append(f"    values  {change.value_changes:,} changed")
            for value in change.value_examples:
                lines.append(
                    f"      {style('~', 'yellow')} {format_series(value.series)}  "
                    f"{_number(value.before)} -> {_number(value.after)}"
                )
            if change.value_changes > len(change.value_examples):
                more = change.value_changes - len(change.value_examples)
                lines.append(style(f"        … {more:,} more changed", "dim"))
    lines.append("")
    structural = sum(1 for c in result.changed if c.structural)
    values_only = len(result.changed) - structural
    note = f" ({values_only:,} with value changes only)" if values_only else ""
    lines.append(
        f"families: +{len(result.added)} -{len(result.removed)} ~{structural}{note}"
        f", {result.unchanged:,} unchanged; series: +{result.series_added:,} -{result.series_removed:,}"
    )
    return "\n".join(lines) + "\n"


def _series(count: int) -> str:
    return f"{count:,} series"


def render_baseline(report: BaselineReport, style: Styler) -> str:
    diff_ = report.diff
    verdict = style("PASS", "bold", "green") if report.passed else style("FAIL", "bold", "red")
    lines = [f"{verdict}  {diff_.after_name} against baseline {diff_.before_name}"]
    for violation in report.violations:
        lines.append(f"  {style(violation.kind, 'red')}  {violation.message}")
    growth = report.series_growth
    growth_text = "from none" if math.isinf(growth) else f"{growth:+.1f}%"
    limit = "not checked" if report.max_series_growth is None else f"limit +{report.max_series_growth:g}%"
    lines.append(
        f"families {diff_.before_families:,} -> {diff_.after_families:,}; "
        f"series {diff_.before_series:,} -> {diff_.after_series:,} ({growth_text}, {limit})"
    )
    help_changes = sum(1 for c in diff_.changed if c.help_changed)
    if help_changes:
        lines.append(style(f"{_plural(help_changes, 'help text')} changed (not a failure)", "dim"))
    return "\n".join(lines) + "\n"


# -- interval mode ------------------------------------------------------------------------------------------


def _utc(seconds: float) -> str:
    return time.strftime("%H:%M:%S", time.gmtime(seconds)) + f".{int((seconds % 1) * 1000):03d}Z"


def render_round(round_: RoundDiff, style: Styler, examples: int) -> str:
    """One round as a few lines: a header, then +/-/~ series and the fastest counters."""
    from promscope.diff import format_series

    head = f"round {round_.round}  {_utc(round_.time)}"
    if round_.error is not None:
        return f"{head}  {style('failed', 'bold', 'red')}: {round_.error}\n"
    if round_.elapsed is None:
        return f"{head}  {_series(round_.series)} in {_families(round_.families)}\n"
    summary = (
        f"{head}  +{round_.elapsed:.3g}s  {_series(round_.series)}: "
        f"{style(f'+{len(round_.appeared)}', 'green')} appeared, "
        f"{style(f'-{len(round_.vanished)}', 'red')} vanished, "
        f"{style(f'~{len(round_.changed)}', 'yellow')} changed, {_plural(len(round_.rates), 'counter')}"
    )
    if round_.resets:
        summary += style(f" ({_plural(round_.resets, 'reset')})", "yellow")
    lines = [summary]
    for key in round_.appeared[:examples]:
        lines.append(f"  {style('+', 'green')} {format_series(key)}")
    if len(round_.appeared) > examples:
        lines.append(style(f"    … {len(round_.appeared) - examples:,} more appeared", "dim"))
    for key in round_.vanished[:examples]:
        lines.append(f"  {style('-', 'red')} {format_series(key)}")
    if len(round_.vanished) > examples:
        lines.append(style(f"    … {len(round_.vanished) - examples:,} more vanished", "dim"))
    for change in round_.changed[:examples]:
        lines.append(
            f"  {style('~', 'yellow')} {format_series(change.series)}  "
            f"{_number(change.before)} -> {_number(change.after)}"
        )
    if len(round_.changed) > examples:
        lines.append(style(f"    … {len(round_.changed) - examples:,} more changed", "dim"))
    moving = sorted(
        (r for r in round_.rates if r.increase or r.reset),
        key=lambda r: (-(r.rate if math.isfinite(r.rate) else 0.0), r.series),
    )
    for rate in moving[:examples]:
        reset = style("  reset", "yellow") if rate.reset else ""
        lines.append(
            f"  {style('rate', 'cyan')} {format_series(rate.series)}  "
            f"+{_number(rate.increase)} ({_number(rate.rate)}/s){reset}"
        )
    return "\n".join(lines) + "\n"


def _run_interval(
    target: Any,
    interval: float,
    count: int | None,
    *,
    output: str,
    examples: int,
    out: IO[str],
    err: IO[str],
    style: Styler,
    record: str | None = None,
) -> ExitCode:
    import asyncio

    from cli.live import recording
    from promscope.diff import FetchResult, watch
    from promscope.errors import PromscopeError
    from promscope.scrape import fetch, make_client
    from promscope.scrape.observe import ScrapeObserver
    from promscope.scrape.targets import targets_from_urls

    # --record writes each round as the scrape loop would: an Observation with the target labels
    # (job "promscope", instance host:port), the up/scrape_* series and the diagnostics.
    observer = ScrapeObserver(
        targets_from_urls([target.url], interval=interval, timeout=min(target.timeout, interval))[0]
    )

    async def run() -> tuple[int, int]:
        rounds = failures = 0
        async with recording(record, verb="diff") as recorder, make_client(target) as client:

            async def fetch_once() -> FetchResult:
                when = time.time()
                result = await fetch(target, client=client)
                if recorder is not None:
                    recorder(observer.observe(result, when))
                if result.parse is None or (
                    result.error is not None and result.error.kind.value not in ("parse", "content_type")
                ):
                    return FetchResult(
                        error=str(result.error) if result.error else "no exposition in the response"
                    )
                return FetchResult(result.families)

            async for round_ in watch(fetch_once, interval=interval, count=count, clock=time.time):
                rounds += 1
                failures += round_.error is not None
                if output == "json":
                    _write_json(out, round_.to_json(), indent=None)
                else:
                    out.write(render_round(round_, style, examples))
                out.flush()
        return rounds, failures

    try:
        rounds, failures = asyncio.run(run())
    except PromscopeError as exc:  # the --record file cannot be created
        print_error(exc.message, hint=exc.hint, stream=err)
        return ExitCode.UNREADABLE
    if rounds and failures == rounds:
        print_error(f"{target.url}: every round failed", stream=err)
        return ExitCode.UNREADABLE
    return ExitCode.OK
