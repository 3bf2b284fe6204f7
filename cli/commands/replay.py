"""``promscope replay FILE``: what a recorded session holds, then its observations again, as they came.

The session file is written by ``--record FILE`` on a live command
(:mod:`promscope.store.session`). This verb prints a summary (sources, time
range, observations by kind and outcome, drops while recording) and then
replays every observation as one line, the way ``promscope tail`` prints
live ones, at the recorded pace (``--speed 10`` ten times faster, ``--fast``
without waiting). The TUI replays through the same engine function
(:func:`promscope.store.session.replay`).

``--output json`` prints JSON Lines: first one ``promscope.replay.summary/v1``
object, then one ``promscope.replay.observation/v1`` object per observation::

    {"schema": "promscope.replay.summary/v1", "file": str, "format_version": int,
     "promscope_version": str, "created_at": str, "closed_at": str|null, "host": str,
     "command_line": [str], "observations": int, "start": float|null, "end": float|null,
     "samples": int, "diagnostics": int, "by_kind": {str: int}, "by_outcome": {str: int},
     "dropped": {str: int},
     "sources": [{"source": str, "observations": int, "first": float, "last": float, "kinds": [str]}]}

    {"schema": "promscope.replay.observation/v1", "time": float, "kind": str, "source": str,
     "outcome": str, "series": int, "samples": int, "families": int, "errors": int,
     "warnings": int, "status": int|null, "duration": float|null, "wire_bytes": int,
     "message": str, "first_error": null | {"code": str, "line": int, "message": str}}

Exit codes: 0 replayed; 1 some observations in the file could not be
decoded (skipped); 2 usage error; 3 the file is not a readable session
(missing, not a session, newer format, corrupt).
"""

from __future__ import annotations

import json
import sys
import time
from typing import TYPE_CHECKING, Any

import click

from cli.exit_codes import ExitCode
from cli.live import recording
from cli.options import parse_duration, record_option
from cli.output import OUTCOME_STYLE, Styler, print_error, wants_color

if TYPE_CHECKING:
    from promscope.observation import Observation
    from promscope.store.session import SessionSummary

__all__ = [
    "observation_json",
    "observation_line",
    "record_option",
    "recording",
    "replay",
    "summary_json",
    "summary_text",
]

SUMMARY_SCHEMA = "promscope.replay.summary/v1"
OBSERVATION_SCHEMA = "promscope.replay.observation/v1"

_HELP = """Replay a session recorded with --record FILE.

Prints what the session holds (sources, time range, observations by kind
and outcome, anything dropped while recording), then every observation as
one line (time, kind, source, series, outcome, errors) at the recorded pace.

\b
Examples:
  promscope replay incident.psession --fast
  promscope replay incident.psession --speed 10 --source http://app:8080/metrics
  promscope replay incident.psession --summary
  promscope replay incident.psession --fast -o json | jq 'select(.outcome != "accepted")'

\b
Exit codes:
  0  replayed
  1  some observations could not be decoded and were skipped
  2  usage error
  3  not a readable session file (missing, newer format, corrupt)
"""


def _positive(ctx: click.Context, param: click.Parameter, value: float | None) -> float | None:
    if value is not None and not value > 0:
        raise click.BadParameter("must be a positive number", ctx=ctx, param=param)
    return value


@click.command(
    "replay",
    help=_HELP,
    short_help="Replay a recorded session (summary, then every observation).",
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.argument("file", metavar="FILE")
@click.option(
    "--speed", type=float, callback=_positive, help="Replay N times faster than recorded.  [default: 1]"
)
@click.option("--fast", is_flag=True, help="Replay without waiting between observations.")
@click.option(
    "--max-gap",
    metavar="DURATION",
    help="Shorten recorded silences longer than this (e.g. 10s), so idle stretches pass quickly.",
)
@click.option("--source", "sources", multiple=True, metavar="SOURCE", help="Only this source; repeat.")
@click.option(
    "--kind", "kinds", multiple=True, metavar="KIND", help="Only this kind (scrape, pushgateway, ...)."
)
@click.option("--summary", "summary_only", is_flag=True, help="Print the summary only.")
@click.option(
    "--output",
    "-o",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="Output format.",
)
@click.option(
    "--color",
    type=click.Choice(["auto", "always", "never"]),
    default="auto",
    show_default=True,
    help="Colour text output.",
)
@click.pass_context
def replay(
    ctx: click.Context,
    file: str,
    speed: float | None,
    fast: bool,
    max_gap: str | None,
    sources: tuple[str, ...],
    kinds: tuple[str, ...],
    summary_only: bool,
    output: str,
    color: str,
) -> None:
    import asyncio

    from promscope.observation import ObservationKind
    from promscope.store.session import SessionFileError, SessionReader
    from promscope.store.session import replay as replay_session

    if fast and speed is not None:
        raise click.UsageError("--fast and --speed exclude each other", ctx)
    gap: float | None = None
    if max_gap is not None:
        try:
            gap = parse_duration(max_gap)
        except ValueError as exc:
            raise click.BadParameter(str(exc), ctx=ctx, param_hint="--max-gap") from None
    known_kinds = {k.value for k in ObservationKind}
    for kind in kinds:
        if kind not in known_kinds:
            raise click.BadParameter(
                f"{kind!r} is not one of {', '.join(sorted(known_kinds))}", ctx=ctx, param_hint="--kind"
            )

    out, err = sys.stdout, sys.stderr
    style = Styler(output == "text" and wants_color(color, out))
    try:
        reader = SessionReader(file)
    except SessionFileError as exc:
        print_error(exc.message, hint=exc.hint, stream=err)
        ctx.exit(ExitCode.UNREADABLE)
    with reader:
        try:
            summary = reader.summary()
            if output == "json":
                out.write(json.dumps(summary_json(summary, reader.name), ensure_ascii=False) + "\n")
            else:
                out.write(summary_text(summary, reader.name, style))
            out.flush()
            if summary_only:
                ctx.exit(ExitCode.OK)

            def emit(observation: Observation) -> None:
                if output == "json":
                    out.write(json.dumps(observation_json(observation), ensure_ascii=False) + "\n")
                else:
                    out.write(observation_line(observation, style) + "\n")
                out.flush()

            if output == "text":
                out.write("\n")
            stats = asyncio.run(
                replay_session(
                    reader,
                    emit,
                    speed=None if fast else (speed or 1.0),
                    max_gap=gap,
                    sources=sources or None,
                    kinds=kinds or None,
                )
            )
        except SessionFileError as exc:
            out.flush()
            print_error(exc.message, hint=exc.hint, stream=err)
            ctx.exit(ExitCode.UNREADABLE)
    if stats.skipped:
        these = "1 observation was" if stats.skipped == 1 else f"{stats.skipped:,} observations were"
        print_error(
            f"{file}: {these} undecodable and skipped (the file is damaged)",
            stream=err,
            level="warning",
        )
        ctx.exit(ExitCode.PROBLEMS)
    ctx.exit(ExitCode.OK)


# -- presentation --------------------------------------------------------------------------------------------


def _utc(seconds: float, *, date: bool = True) -> str:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S" if date else "%H:%M:%S", time.gmtime(seconds))
    return f"{stamp}.{int(seconds * 1000) % 1000:03d}Z"


def _span(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.3g}s"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"


def _counts(counts: dict[str, int] | Any) -> str:
    return ", ".join(f"{name} {count:,}" for name, count in counts.items()) or "none"


def summary_text(summary: SessionSummary, name: str, style: Styler) -> str:
    meta = summary.meta
    lines = [
        f"{style('session', 'bold')}  {name}  (format {meta.format_version}, promscope "
        f"{meta.promscope_version}, recorded on {meta.host} at {meta.created_at})",
    ]
    if meta.command_line:
        lines.append(f"{style('command', 'bold')}  {' '.join(meta.command_line)}")
    if summary.start is not None and summary.end is not None:
        span = _span(summary.duration)
        lines.append(f"{style('time', 'bold')}     {_utc(summary.start)} .. {_utc(summary.end)}  ({span})")
    lines.append(
        f"{style('observations', 'bold')}  {summary.observations:,}: {_counts(dict(summary.by_kind))}; "
        f"{_counts(dict(summary.by_outcome))}; {summary.samples:,} samples, "
        f"{summary.diagnostics:,} diagnostics"
    )
    lines.append(f"{style('sources', 'bold')}  {len(summary.sources):,}")
    width = max((len(s.source) for s in summary.sources), default=0)
    for source in summary.sources:
        lines.append(
            f"  {source.source:<{width}}  {source.observations:>6,}  {','.join(source.kinds):<12}  "
            f"{_utc(source.first, date=False)} .. {_utc(source.last, date=False)}"
        )
    if meta.dropped and sum(meta.dropped.values()):
        reasons = ", ".join(
            f"{count:,} {reason.replace('_', ' ')}" for reason, count in meta.dropped.items() if count
        )
        lines.append(style(f"dropped while recording: {sum(meta.dropped.values()):,} ({reasons})", "yellow"))
    if meta.closed_at is None:
        lines.append(
            style(
                "the recorder did not finish this file: it holds what was written until it stopped", "yellow"
            )
        )
    return "\n".join(lines) + "\n"


def summary_json(summary: SessionSummary, name: str) -> dict[str, Any]:
    meta = summary.meta
    return {
        "schema": SUMMARY_SCHEMA,
        "file": name,
        "format_version": meta.format_version,
        "promscope_version": meta.promscope_version,
        "created_at": meta.created_at,
        "closed_at": meta.closed_at,
        "host": meta.host,
        "command_line": list(meta.command_line),
        "observations": summary.observations,
        "start": summary.start,
        "end": summary.end,
        "samples": summary.samples,
        "diagnostics": summary.diagnostics,
        "by_kind": dict(summary.by_kind),
        "by_outcome": dict(summary.by_outcome),
        "dropped": dict(meta.dropped),
        "sources": [
            {
                "source": s.source,
                "observations": s.observations,
                "first": s.first,
                "last": s.last,
                "kinds": list(s.kinds),
            }
            for s in summary.sources
        ],
    }


def _sample_count(observation: Observation) -> int:
    return sum(len(f.samples) for f in observation.families)


def observation_line(observation: Observation, style: Styler) -> str:
    """``12:00:01.250Z  scrape       http://a/metrics  507 series  accepted  2 errors  message``."""
    from promscope.model import Severity

    errors = sum(1 for d in observation.diagnostics if d.severity is Severity.ERROR)
    series = observation.series or _sample_count(observation)
    parts = [
        style(_utc(observation.time, date=False), "dim"),
        f"{observation.kind.value:<12}",
        observation.source,
        f"{series:,} series",
        style(observation.outcome.value, *OUTCOME_STYLE.get(observation.outcome.value, ())),
    ]
    if errors:
        parts.append(style(f"{errors} error{'s' if errors != 1 else ''}", "red"))
    transport = observation.transport
    if transport.status is not None:
        parts.append(f"HTTP {transport.status}")
    if observation.message:
        parts.append(observation.message)
    return "  ".join(parts)


def observation_json(observation: Observation) -> dict[str, Any]:
    from promscope.model import Severity

    errors = [d for d in observation.diagnostics if d.severity is Severity.ERROR]
    transport = observation.transport
    duration = transport.duration
    return {
        "schema": OBSERVATION_SCHEMA,
        "time": observation.time,
        "kind": observation.kind.value,
        "source": observation.source,
        "outcome": observation.outcome.value,
        "series": observation.series,
        "samples": _sample_count(observation),
        "families": len(observation.families),
        "errors": len(errors),
        "warnings": sum(1 for d in observation.diagnostics if d.severity is Severity.WARNING),
        "status": transport.status,
        "duration": duration if duration is None or duration == duration else None,
        "wire_bytes": transport.wire_bytes,
        "message": observation.message,
        "first_error": (
            {"code": errors[0].code, "line": errors[0].line, "message": errors[0].message} if errors else None
        ),
    }
