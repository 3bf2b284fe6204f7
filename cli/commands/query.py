"""``promscope query SOURCE 'EXPR'``: evaluate PromQL over a target, a file, a session, or a real Prometheus.

SOURCE is one of:

``http://…`` / ``https://…``
    A target, scraped now. When the expression has a range selector
    (``rate(x[1m])``) it is scraped twice, ``--window`` apart, so rate-like
    functions have two points; each sample is taken at its scrape's time
    (or its own timestamp). ``--at`` defaults to the second scrape.
a session file (``--session FILE`` or a positional SQLite file)
    Every sample the recorded observations carried
    (:class:`promscope.store.session.SessionReader`).
an exposition file (``.prom``, ``.om``, ``.pb``; ``-`` for stdin)
    Its samples may carry timestamps and several points per series (a
    backfill, as ``promtool tsdb create-blocks-from openmetrics`` reads it);
    they are loaded as they are, even where a counter goes down. Samples
    without a timestamp are taken at ``--at`` (or now).

For files and sessions ``--at`` defaults to the newest sample. ``--range
START END`` makes it a range query (``--step``, default: 250 steps at most,
at least 1s). ``--prometheus URL`` sends the expression to a real
Prometheus's ``/api/v1/query`` (or ``query_range``) instead and prints the
answer the same way.

``--output json`` prints the ``data`` member of Prometheus's HTTP API answer
(``{"resultType": "vector", "result": [{"metric": {…}, "value": [t, "v"]}]}``,
``matrix`` with ``values``, ``scalar``/``string`` as ``[t, "v"]``), the same
for both engines, so jq scripts work against either.

Exit codes: 0 a non-empty result (or a scalar/string); 1 the query ran and
matched nothing (an empty vector or matrix), as grep does; 2 usage error, or
an expression that does not parse or evaluate (the expression is printed with
a caret under the column); 3 the source could not be read or reached.
"""

from __future__ import annotations

import datetime
import json
import math
import re
import sys
import time
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, NoReturn

import click

from cli.exit_codes import ExitCode
from cli.options import input_format, parse_duration, read_input, value_callback
from cli.output import print_error, wants_color

if TYPE_CHECKING:
    from rich.console import Console

    from promscope.query import QueryError, SeriesSet
    from promscope.query.ast import Expr

__all__ = ["parse_time", "query", "render_table"]

_SQLITE_MAGIC = b"SQLite format 3\x00"
_MAX_STEPS = 250
_RELATIVE = re.compile(r"^now\s*(?:([+-])\s*(.+))?$")

_HELP = """Evaluate a PromQL expression over a target, an exposition file, a session file or a Prometheus.

\b
SOURCE is a URL (scraped now; twice, --window apart, when EXPR has a range
selector), an exposition file (.prom, .om, .pb, - for stdin; timestamped
samples and several points per series are loaded as a backfill), or a
session file (or use --session FILE). With --prometheus URL, give only EXPR:
it is sent to that server's HTTP API.

\b
The subset: selectors with = != =~ !~ and offset; rate, irate, increase,
delta, idelta, deriv, changes, resets, avg/min/max/sum/count/last_over_time,
histogram_quantile, abs, ceil, floor, round, exp, sqrt, ln, log2, log10,
sgn, clamp, clamp_min, clamp_max, time, vector, scalar, sort, sort_desc,
timestamp; sum, avg, min, max, count, topk, bottomk with by/without;
+ - * / % ^, == != > < >= <= (bool), and/or/unless, on()/ignoring().

\b
TIME is RFC 3339 (2024-05-01T12:00:00Z), unix seconds, or now / now-5m.

\b
Examples:
  promscope query http://localhost:9100/metrics 'rate(node_cpu_seconds_total[10s])'
  promscope query backfill.om 'sum by (namespace) (rate(http_requests_total[5m]))' --at 2024-05-01T12:00:00Z
  promscope query --session incident.psession 'topk(5, process_resident_memory_bytes)'
  promscope query metrics.om 'up' --range now-1h now --step 1m -o json | jq '.result[].metric'
  promscope query --prometheus http://prom:9090 'sum(up) by (job)'

\b
Exit codes:
  0  the result is not empty (or is a scalar or string)
  1  the query matched nothing (empty vector or matrix)
  2  usage error, or EXPR does not parse or evaluate
  3  the source could not be read or reached
"""


def parse_time(text: str, *, now: float | None = None) -> float:
    """RFC 3339, unix seconds, ``now`` or ``now-5m`` -> unix seconds. Raises ValueError."""
    value = text.strip()
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        if not math.isfinite(seconds):
            raise ValueError(f"{text!r} is not a time")
        return seconds
    relative = _RELATIVE.match(value)
    if relative:
        base = time.time() if now is None else now
        sign, amount = relative.groups()
        if amount is None:
            return base
        delta = parse_duration(amount)
        return base - delta if sign == "-" else base + delta
    iso = value[:-1] + "+00:00" if value.endswith(("Z", "z")) else value
    try:
        parsed = datetime.datetime.fromisoformat(iso)
    except ValueError:
        raise ValueError(
            f"{text!r} is not a time (RFC 3339 like 2024-05-01T12:00:00Z, unix seconds, or now-5m)"
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=datetime.UTC)
    return parsed.timestamp()


def _time_option(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    if value is None:
        return None
    try:
        if isinstance(value, tuple):
            return tuple(parse_time(v) for v in value)
        return parse_time(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), ctx=ctx, param=param) from None


_duration_option = value_callback(parse_duration)


@click.command(
    "query",
    help=_HELP,
    short_help="Evaluate PromQL over a target, a file, a session or a Prometheus.",
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.argument("args", metavar="[SOURCE] EXPR", nargs=-1, required=True)
@click.option("--session", "session_path", metavar="FILE", help="Query a recorded session file.")
@click.option(
    "--prometheus", "prometheus_url", metavar="URL", help="Send EXPR to this Prometheus server's HTTP API."
)
@click.option("--at", metavar="TIME", callback=_time_option, help="Evaluation time (instant query).")
@click.option(
    "--range",
    "time_range",
    nargs=2,
    metavar="START END",
    callback=_time_option,
    help="Evaluate at every --step from START to END (a range query, a matrix).",
)
@click.option(
    "--step", metavar="DURATION", callback=_duration_option, help="Range query resolution (15s, 1m)."
)
@click.option(
    "--window",
    metavar="DURATION",
    callback=_duration_option,
    default="10s",
    show_default=True,
    help="For a URL: time between the two scrapes rate-like functions need.",
)
@click.option(
    "--lookback",
    metavar="DURATION",
    callback=_duration_option,
    default="5m",
    show_default=True,
    help="How far back an instant selector looks for a sample.",
)
@click.option(
    "--compat",
    type=click.Choice(["3", "2"]),
    default="3",
    show_default=True,
    help="Evaluate as Prometheus 3 or 2.x does (window edges, extrapolation details).",
)
@click.option(
    "--format",
    "format_",
    type=click.Choice(["auto", "text", "openmetrics", "protobuf"]),
    default="auto",
    show_default=True,
    help="Wire format of an exposition file (auto: by extension, else sniffed).",
)
@click.option(
    "--timeout",
    metavar="DURATION",
    callback=_duration_option,
    default="10s",
    show_default=True,
    help="Deadline for each scrape or Prometheus request.",
)
@click.option(
    "--output",
    "-o",
    type=click.Choice(["table", "json"]),
    default="table",
    show_default=True,
    help="table, or json: the `data` of Prometheus's HTTP API answer.",
)
@click.option(
    "--color",
    type=click.Choice(["auto", "always", "never"]),
    default="auto",
    show_default=True,
    help="Colour table output.",
)
@click.pass_context
def query(
    ctx: click.Context,
    args: tuple[str, ...],
    session_path: str | None,
    prometheus_url: str | None,
    at: float | None,
    time_range: tuple[float, float] | None,
    step: float | None,
    window: float,
    lookback: float,
    compat: str,
    format_: str,
    timeout: float,
    output: str,
    color: str,
) -> None:
    if session_path is not None and prometheus_url is not None:
        raise click.UsageError("give --session or --prometheus, not both", ctx)
    needs_source = session_path is None and prometheus_url is None
    wanted = 2 if needs_source else 1
    if len(args) != wanted:
        if needs_source:
            raise click.UsageError(
                "give SOURCE and EXPR (or --session FILE / --prometheus URL and EXPR)", ctx
            )
        raise click.UsageError("with --session or --prometheus give only EXPR", ctx)
    source = args[0] if needs_source else (session_path or "")
    expression = args[-1]
    if time_range is not None and at is not None:
        raise click.UsageError("--at is for instant queries; --range takes START END", ctx)
    if time_range is not None and time_range[1] < time_range[0]:
        raise click.UsageError("--range: END is before START", ctx)
    if step is not None and time_range is None:
        raise click.UsageError("--step needs --range START END", ctx)
    if time_range is not None and step is None:
        step = max(1.0, math.ceil((time_range[1] - time_range[0]) / _MAX_STEPS))

    if prometheus_url is not None:
        data = _ask_prometheus(prometheus_url, expression, at, time_range, step, timeout)
    else:
        from promscope.query import Engine, QueryError, parse

        try:
            node = parse(expression)
        except QueryError as exc:
            _fail_query(exc)
        data_set, newest = _load(
            source,
            node,
            is_session=session_path is not None,
            at=at,
            window=window,
            timeout=timeout,
            format_=format_,
        )
        engine = Engine(data_set, lookback_delta=lookback, compat="2" if compat == "2" else "3")
        try:
            if time_range is not None:
                assert step is not None
                result = engine.range(node, time_range[0], time_range[1], step)
            else:
                result = engine.instant(node, at if at is not None else newest)
        except QueryError as exc:
            _fail_query(exc, expression)
        data = result.data()

    stdout = sys.stdout
    if output == "json":
        stdout.write(json.dumps(data, ensure_ascii=False) + "\n")
    else:
        render_table(_console(stdout, color), data)
    stdout.flush()
    ctx.exit(_exit_code(data))


def _exit_code(data: dict[str, Any]) -> ExitCode:
    if data.get("resultType") in ("vector", "matrix") and not data.get("result"):
        return ExitCode.PROBLEMS
    return ExitCode.OK


def _fail_query(exc: QueryError, expression: str | None = None) -> NoReturn:
    err = sys.stderr
    print_error(exc.message, stream=err)
    if exc.column:
        for line in exc.caret().splitlines():
            err.write(f"  {line}\n")
    elif expression is not None:
        err.write(f"  {expression}\n")
    err.flush()
    sys.exit(ExitCode.USAGE)


def _fail_source(message: str, hint: str = "") -> NoReturn:
    print_error(message, hint=hint)
    sys.exit(ExitCode.UNREADABLE)


# -- sources ------------------------------------------------------------------------------------------


def _load(
    source: str,
    node: Expr,
    *,
    is_session: bool,
    at: float | None,
    window: float,
    timeout: float,
    format_: str,
) -> tuple[SeriesSet, float]:
    """The data to query and the default evaluation time (newest sample, or now)."""
    from promscope.errors import PromscopeError

    try:
        if source.startswith(("http://", "https://")) and not is_session:
            return _scrape(source, node, window=window, timeout=timeout)
        if is_session or _is_session_file(source):
            return _session(source)
        return _exposition(source, at=at, format_=format_)
    except PromscopeError as exc:
        _fail_source(exc.message, exc.hint)


def _is_session_file(path: str) -> bool:
    if path == "-":
        return False
    try:
        with open(path, "rb") as handle:
            return handle.read(len(_SQLITE_MAGIC)) == _SQLITE_MAGIC
    except OSError:
        return False


def _newest(data: SeriesSet, fallback: float) -> float:
    span = data.time_range()
    return span[1] if span is not None else fallback


def _exposition(path: str, *, at: float | None, format_: str) -> tuple[SeriesSet, float]:
    from promscope.exposition import parse
    from promscope.query import SeriesSet

    if path != "-" and Path(path).is_dir():
        _fail_source(f"{path}: is a directory", "give an exposition file, a session file or a URL")
    try:
        body = read_input(path)
    except OSError as exc:
        _fail_source(f"{path}: {exc.strerror or exc}")
    name = "<stdin>" if path == "-" else path
    format_ = input_format(format_, path)
    parsed = parse(body, format=format_, semantics=False)
    errors = parsed.errors()
    if errors:
        first = errors[0]
        print_error(
            f"{name}: {len(errors)} error(s) in the exposition (first, line {first.line}: {first.message}); "
            "querying what parsed",
            level="warning",
        )
    now = time.time()
    data = SeriesSet.from_families(parsed.families, default_time=at if at is not None else now)
    if not len(data) and errors:
        _fail_source(f"{name}: nothing could be read", "run `promscope check` on it to see every problem")
    return data, _newest(data, now)


def _session(path: str) -> tuple[SeriesSet, float]:
    from promscope.query import SeriesSet
    from promscope.store.session import SessionReader

    with SessionReader(path) as reader:
        data = SeriesSet.from_observations(reader.observations())
    return data, _newest(data, time.time())


def _scrape(url: str, node: Expr, *, window: float, timeout: float) -> tuple[SeriesSet, float]:
    from promscope.model import Labels
    from promscope.query import SeriesSet
    from promscope.query.ast import MatrixSelector, walk
    from promscope.scrape import Target, scrape_sync

    ranges = [n.range for n in walk(node) if isinstance(n, MatrixSelector)]
    rounds = 2 if ranges else 1
    samples: list[tuple[Labels, float, float]] = []
    taken = 0.0
    for round_ in range(rounds):
        if round_:
            time.sleep(window)
        result = scrape_sync(Target(url, timeout=timeout))
        taken = time.time()
        if result.error is not None and (result.unreachable or not result.families):
            _fail_source(f"{url}: {result.error.message}", result.error.hint)
        if not result.ok and not result.families:
            _fail_source(f"{url}: the scrape failed (HTTP {result.status})")
        for family in result.families:
            for sample in family.samples:
                if sample.native_histogram is None:
                    stamp = sample.timestamp if sample.timestamp is not None else taken
                    samples.append(((("__name__", sample.name), *sample.labels), stamp, sample.value))
    longest = max(ranges, default=0.0)
    if rounds == 2 and longest > 2 * window:
        print_error(
            f"the range selectors span up to {longest:g}s but the two scrapes are {window:g}s apart; "
            "rate and increase extrapolate from those two points as Prometheus would, which understates "
            f"them; a range of [{math.ceil(window)}s] to [{math.ceil(2 * window)}s] reads them as they are",
            level="warning",
        )
    return SeriesSet.from_samples(samples), taken


def _ask_prometheus(
    url: str,
    expression: str,
    at: float | None,
    time_range: tuple[float, float] | None,
    step: float | None,
    timeout: float,
) -> dict[str, Any]:
    import httpx

    base = url.rstrip("/")
    if time_range is not None:
        path = "/api/v1/query_range"
        params = {
            "query": expression,
            "start": repr(time_range[0]),
            "end": repr(time_range[1]),
            "step": repr(step),
        }
    else:
        path = "/api/v1/query"
        params = {"query": expression}
        if at is not None:
            params["time"] = repr(at)
    try:
        response = httpx.get(base + path, params=params, timeout=timeout)
    except httpx.HTTPError as exc:
        _fail_source(f"{base}: {exc or type(exc).__name__}", "is the Prometheus URL right and the server up?")
    try:
        body = response.json()
    except ValueError:
        _fail_source(f"{base}{path}: HTTP {response.status_code}, not a Prometheus API answer")
    if not isinstance(body, dict):
        _fail_source(f"{base}{path}: HTTP {response.status_code}, not a Prometheus API answer")
    if body.get("status") != "success":
        message = str(body.get("error") or f"HTTP {response.status_code}")
        kind = str(body.get("errorType") or "")
        if kind in ("bad_data", "execution") or response.status_code in (400, 422):
            _fail_remote_query(message, expression)
        _fail_source(f"{base}: {kind + ': ' if kind else ''}{message}")
    for warning in body.get("warnings") or ():
        print_error(f"prometheus: {warning}", level="warning")
    data: dict[str, Any] = body.get("data") or {}
    return data


def _fail_remote_query(message: str, expression: str) -> NoReturn:
    """A Prometheus parse error (``1:5: parse error: …``) printed with a caret, like ours."""
    err = sys.stderr
    print_error(f"prometheus: {message}", stream=err)
    found = re.match(r"^(\d+):(\d+): parse error", message)
    lines = expression.split("\n")
    if found and 1 <= int(found.group(1)) <= len(lines):
        line = lines[int(found.group(1)) - 1]
        err.write(f"  {line}\n  {' ' * (int(found.group(2)) - 1)}^\n")
    else:
        err.write(f"  {expression}\n")
    err.flush()
    sys.exit(ExitCode.USAGE)


# -- output -------------------------------------------------------------------------------------------


def _console(stream: IO[str], color: str) -> Console:
    from rich.console import Console

    return Console(
        file=stream,
        force_terminal=wants_color(color, stream),
        no_color=not wants_color(color, stream),
        highlight=False,
        soft_wrap=False,
        width=None if stream.isatty() else 200,
    )


def _rfc3339(seconds: float) -> str:
    stamp = datetime.datetime.fromtimestamp(seconds, datetime.UTC)
    text = stamp.isoformat(timespec="milliseconds" if seconds % 1 else "seconds")
    return text.replace("+00:00", "Z")


def format_series(metric: dict[str, str]) -> str:
    """``name{a="b", c="d"}`` as Prometheus's UI writes a series."""
    name = metric.get("__name__", "")
    rest = ", ".join(f'{k}="{_escape(v)}"' for k, v in sorted(metric.items()) if k != "__name__")
    if not rest:
        return name or "{}"
    return f"{name}{{{rest}}}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def render_table(console: Console, data: dict[str, Any]) -> None:
    """Print an API ``data`` object (ours or a Prometheus's) for people."""
    from rich.markup import escape
    from rich.table import Table

    kind = data.get("resultType")
    result = data.get("result")
    if kind in ("scalar", "string"):
        assert isinstance(result, list)
        console.print(f"[dim]{kind} at {_rfc3339(float(result[0]))}[/dim]")
        console.print(escape(str(result[1])))
        return
    rows = result if isinstance(result, list) else []
    if kind == "vector":
        when = _rfc3339(float(rows[0]["value"][0])) if rows else ""
        console.print(f"[dim]vector, {len(rows)} series{' at ' + when if when else ''}[/dim]")
        if not rows:
            return
        table = Table(show_edge=False, pad_edge=False, box=None, header_style="bold")
        table.add_column("series", overflow="fold")
        table.add_column("value", justify="right")
        for row in rows:
            table.add_row(escape(format_series(row["metric"])), row["value"][1])
        console.print(table)
        return
    console.print(f"[dim]matrix, {len(rows)} series[/dim]")
    if not rows:
        return
    table = Table(show_edge=False, pad_edge=False, box=None, header_style="bold")
    table.add_column("series", overflow="fold")
    table.add_column("points", justify="right")
    table.add_column("from")
    table.add_column("to")
    table.add_column("min", justify="right")
    table.add_column("max", justify="right")
    table.add_column("last", justify="right")
    for row in rows:
        values = row["values"]
        numbers = [float(v) for _, v in values]
        finite = [v for v in numbers if not math.isnan(v)]
        table.add_row(
            escape(format_series(row["metric"])),
            str(len(values)),
            _rfc3339(float(values[0][0])),
            _rfc3339(float(values[-1][0])),
            _short(min(finite)) if finite else "NaN",
            _short(max(finite)) if finite else "NaN",
            values[-1][1],
        )
    console.print(table)


def _short(value: float) -> str:
    from promscope.query import format_value

    return format_value(value)
