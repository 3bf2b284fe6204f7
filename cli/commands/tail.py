"""``promscope tail``: receive pushes and print one line per push, packet or request as it arrives.

Listeners (all bound to 127.0.0.1 unless an address says otherwise):

==================  ====================  ===========================================================
flag                default               why this default
==================  ====================  ===========================================================
``--pushgateway``   ``127.0.0.1:9091``    the Pushgateway's own port: clients need no change
``--statsd``        ``127.0.0.1:9125``    statsd_exporter's port (UDP and TCP): promscope maps StatsD
                                          as statsd_exporter does, and 8125 is often taken by a real
                                          StatsD or a Datadog agent; ``--statsd 8125`` to take it
``--remote-write``  ``127.0.0.1:9201``    Prometheus' remote storage adapter example port; 9090 would
                                          clash with the very Prometheus sending to it. Path:
                                          ``/api/v1/write``
``--otlp``          ``127.0.0.1:4318``    the OTLP/HTTP port every SDK and collector defaults to;
                                          path ``/v1/metrics``
==================  ====================  ===========================================================

With none of the four flags, all four listen at their defaults. With some,
only those listen; ``--all`` adds the others at their defaults. Give two
HTTP receivers the same address and they share one port.

Every HTTP listener also serves the re-exposed ``/metrics`` (pushed groups and
StatsD series, plus ``promscope_*`` metrics), ``/-/healthy`` and ``/-/ready``;
with StatsD alone, ``/metrics`` is served on ``--metrics`` (default
``127.0.0.1:9102``, statsd_exporter's web port).

Security: ``--basic-auth`` and ``--bearer-token`` apply to every HTTP listener.
The TLS flags (``--tls-cert-file``, ``--tls-key-file``, ``--tls-client-ca-file``)
apply to every TCP listener: the HTTP ones *and* StatsD's TCP listener, which then
speaks TLS only; with ``--tls-client-ca-file`` every listener requires a client
certificate signed by that CA, the one authentication a line protocol can carry.
One set of flags, because a user who turns TLS on means every stream socket, and a
StatsD listener left in plaintext beside HTTPS ones would be a quiet hole. StatsD
over UDP (and unixgram) cannot carry TLS or any credential: it stays plaintext and
open to whoever can reach it, whatever these flags say; the startup line says so.

``--max-body-size`` is one limit for every HTTP listener: the HTTP layer refuses a
larger body (413, before reading it), the Pushgateway API refuses a larger decoded
body, remote_write a larger decompressed snappy block. ``--stale-after`` marks
Pushgateway groups stale (shown, kept); ``--expire-after`` deletes them (off by
default), and each deletion is printed like a push: ``EXPIRE job=…``, outcome
accepted, the families and series removed, ``expired after 10m (last push …)``.

``--output json`` prints one JSON object per line (JSON Lines), each an
observation::

    {"schema": "promscope.tail.observation/v1", "time": float, "kind": str, "source": str,
     "outcome": "accepted"|"partial"|"rejected"|"failed", "sender": str|null, "sender_host": str,
     "what": str, "user_agent": str|null, "protocol": str, "method": str|null, "path": str|null,
     "status": int|null, "content_type": str|null, "content_encoding": str|null,
     "wire_bytes": int, "body_bytes": int, "duration": float|null, "grouping_key": {str: str},
     "series": int, "families": [str] (at most 100), "message": str,
     "errors": [{"code": str, "line": int, "column": int, "message": str, "metric": str|null}]
               (at most 100), "errors_total": int, "warnings": int,
     "changes": null | {"families_added": [str], "families_removed": [str], "families_changed": [str],
                        "series_added": int, "series_removed": int, "series_changed": int},
     "extra": {str: str}}

``what`` is the text line's fourth column: ``METHOD grouping-key`` for a push,
``EXPIRE grouping-key`` for an expired group, the first metric name and how many
more (``api_requests +2 more``) for StatsD, whose ``source`` is its sender.
``protocol`` is ``http``/``https``, ``udp``/``tcp``/``tls``/``unixgram``, or
``internal`` for what promscope did itself (an expiry; ``sender`` is null).

and, when the tail ends, one summary::

    {"schema": "promscope.tail.summary/v1", "observations": int, "hidden": int, "elapsed": float,
     "by_outcome": {str: int}, "by_kind": {str: int}, "lines_dropped": int,
     "log_dropped": {"events": int, "senders": int, "sources": int},
     "senders": [SenderStats as JSON, see promscope.receive.log.SenderStats.as_dict]}

Exit codes: 0 stopped (Ctrl-C, SIGTERM, --duration or --count); 2 usage or
configuration error; 3 a listener could not start (address in use).
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import json
import re
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import click

from cli.exit_codes import ExitCode
from cli.live import (
    LineWriter,
    diagnostic_lines,
    install_signals,
    recording,
    remove_signals,
    warnings_text,
    write_lines,
)
from cli.options import parse_listener_duration, record_option, value_callback
from cli.output import OUTCOME_STYLE, Styler, print_error, wants_color

if TYPE_CHECKING:
    from promscope.observation import Observation
    from promscope.receive.http import Auth, HttpLimits, ServerTLS
    from promscope.receive.log import PushLog
    from promscope.receive.server import ReceiverServer

__all__ = ["DEFAULTS", "TailPrinter", "observation_json", "observation_line", "observation_what", "tail"]

OBSERVATION_SCHEMA = "promscope.tail.observation/v1"
SUMMARY_SCHEMA = "promscope.tail.summary/v1"

DEFAULTS = {
    "pushgateway": "127.0.0.1:9091",
    "statsd": "127.0.0.1:9125",
    "remote_write": "127.0.0.1:9201",
    "otlp": "127.0.0.1:4318",
}
DEFAULT_METRICS = "127.0.0.1:9102"
PROTOCOLS = ("pushgateway", "statsd", "remote_write", "otlp")
_PROTOCOL_ALIASES = {"remote-write": "remote_write", "remotewrite": "remote_write", "rw": "remote_write"}

_MAX_LISTED = 100


_HELP = f"""Receive pushes and print one line per push, packet or request as it arrives.

Listens for Pushgateway pushes, StatsD/DogStatsD, Prometheus remote_write and
OTLP/HTTP metrics (all four by default, on 127.0.0.1), prints what arrived,
who sent it and what was wrong with it, and serves the pushed series on
/metrics like a Pushgateway or statsd_exporter would. Ctrl-C prints a
summary by sender.

\b
Defaults:
  --pushgateway   {DEFAULTS["pushgateway"]}  (the Pushgateway's port)
  --statsd        {DEFAULTS["statsd"]}  (UDP+TCP; statsd_exporter's port, 8125 is often taken)
  --remote-write  {DEFAULTS["remote_write"]}  (POST /api/v1/write; 9090 is Prometheus itself)
  --otlp          {DEFAULTS["otlp"]}  (POST /v1/metrics; the OTLP/HTTP port)
ADDR is HOST:PORT, :PORT or PORT. Giving some of these flags listens on
those only; --all adds the rest at their defaults.

\b
Examples:
  promscope tail
  promscope tail --pushgateway :9091 --protocol pushgateway --name 'job=backup*'
  promscope tail --statsd 8125 --output json | jq .
  promscope tail --all --persistence-file push.db --basic-auth admin:secret
  promscope tail --pushgateway :9091 --stale-after 5m --expire-after 1h

\b
Security: --basic-auth and --bearer-token protect every HTTP listener. The
--tls-* flags apply to every TCP listener: HTTP, and StatsD over TCP, which
then takes TLS only; with --tls-client-ca-file every listener requires a
client certificate (for StatsD the only authentication there is). StatsD
over UDP cannot carry TLS or credentials and stays plaintext.

\b
Exit codes:
  0  stopped (Ctrl-C, SIGTERM, --duration or --count)
  2  usage or configuration error
  3  a listener could not start (address in use or not available)
"""


# --- presentation ----------------------------------------------------------------------------------


def _utc(timestamp: float) -> str:
    seconds = time.gmtime(timestamp)
    millis = int((timestamp - int(timestamp)) * 1000) if timestamp >= 0 else 0
    return f"{time.strftime('%H:%M:%S', seconds)}.{millis:03d}Z"


def observation_what(observation: Observation) -> str:
    """What arrived, in a few words: the text line's fourth column and the JSON ``what``.

    A push: ``PUT job=a``. An expired group: ``EXPIRE job=a``. StatsD (whose
    source is the sender, already in the third column): the first metric name
    and how many more, ``api_requests +2 more``.
    """
    from promscope.observation import ObservationKind

    transport = observation.transport
    if transport.extra.get("expired"):
        return f"EXPIRE {observation.source}"
    if observation.kind is ObservationKind.STATSD:
        names = [family.name for family in observation.families]
        if not names:
            names = list(dict.fromkeys(d.metric for d in observation.diagnostics if d.metric))
        if names:
            return names[0] + (f" +{len(names) - 1} more" if len(names) > 1 else "")
        if transport.extra.get("refused") == "tls":
            return "(TLS handshake)"
        lines = int(transport.extra.get("lines", "0") or 0)
        return _plural(lines, "line") if lines else "(empty)"
    method = transport.method
    return f"{method} {observation.source}" if method else observation.source


def observation_line(observation: Observation, style: Styler, *, verbose: bool = False) -> str:
    """One line (more with ``verbose``: every error, the user agent) for an observation."""
    from promscope.receive.log import INTERNAL_PROTOCOL, describe_error

    transport = observation.transport
    outcome = observation.outcome.value
    parts = [
        style(_utc(observation.time), "dim"),
        f"{observation.kind.value:<12}",
        transport.sender or "-",
        style(observation_what(observation), "bold"),
        f"{observation.series:,} series",
        style(outcome, *OUTCOME_STYLE.get(outcome, ())),
    ]
    if transport.status is not None:
        parts.append(f"HTTP {transport.status}")
    error = describe_error(observation)
    if error:
        parts.append(style(error, "red"))
    elif observation.changes is not None and not observation.changes.empty:
        changes = observation.changes
        parts.append(
            f"families +{len(changes.families_added)} -{len(changes.families_removed)} "
            f"~{len(changes.families_changed)}, series +{changes.series_added} -{changes.series_removed} "
            f"~{changes.series_changed}"
        )
    if observation.message and (
        (not error and not observation.accepted) or transport.protocol == INTERNAL_PROTOCOL
    ):
        parts.append(observation.message)
    warnings = warnings_text(observation.diagnostics, style)
    if warnings:
        parts.append(warnings)
    line = "  ".join(parts)
    if not verbose:
        return line
    more: list[str] = []
    if transport.user_agent:
        more.append(f"    user-agent: {transport.user_agent}")
    if observation.message and (observation.accepted or error) and transport.protocol != INTERNAL_PROTOCOL:
        more.append(f"    {observation.message}")
    more.extend(diagnostic_lines(observation.diagnostics, style))
    return "\n".join([line, *more])


def observation_json(observation: Observation) -> dict[str, Any]:
    """The ``promscope.tail.observation/v1`` object (see the module docstring)."""
    from promscope.model import Severity
    from promscope.receive.log import sender_host

    transport = observation.transport
    errors = [d for d in observation.diagnostics if d.severity is Severity.ERROR]
    changes = observation.changes
    duration = transport.duration
    return {
        "schema": OBSERVATION_SCHEMA,
        "time": observation.time,
        "kind": observation.kind.value,
        "source": observation.source,
        "outcome": observation.outcome.value,
        "sender": transport.sender,
        "sender_host": sender_host(transport.sender),
        "what": observation_what(observation),
        "user_agent": transport.user_agent,
        "protocol": transport.protocol,
        "method": transport.method,
        "path": transport.path,
        "status": transport.status,
        "content_type": transport.content_type,
        "content_encoding": transport.content_encoding,
        "wire_bytes": transport.wire_bytes,
        "body_bytes": transport.body_bytes,
        "duration": duration if duration is None or duration == duration else None,
        "grouping_key": dict(transport.grouping_key),
        "series": observation.series,
        "families": [family.name for family in observation.families[:_MAX_LISTED]],
        "message": observation.message,
        "errors": [
            {"code": d.code, "line": d.line, "column": d.column, "message": d.message, "metric": d.metric}
            for d in errors[:_MAX_LISTED]
        ],
        "errors_total": len(errors),
        "warnings": sum(1 for d in observation.diagnostics if d.severity is Severity.WARNING),
        "changes": (
            None
            if changes is None
            else {
                "families_added": list(changes.families_added),
                "families_removed": list(changes.families_removed),
                "families_changed": list(changes.families_changed),
                "series_added": changes.series_added,
                "series_removed": changes.series_removed,
                "series_changed": changes.series_changed,
            }
        ),
        "extra": dict(transport.extra),
    }


# --- filtering and printing --------------------------------------------------------------------------


@dataclass
class Filters:
    protocols: frozenset[str] = frozenset()
    senders: tuple[str, ...] = ()
    names: tuple[str, ...] = ()

    def match(self, observation: Observation) -> bool:
        if self.protocols and observation.kind.value not in self.protocols:
            return False
        if self.senders:
            from promscope.receive.log import sender_host

            sender = observation.transport.sender or ""
            host = sender_host(sender)
            if not any(fnmatch.fnmatchcase(sender, g) or fnmatch.fnmatchcase(host, g) for g in self.senders):
                return False
        if self.names:
            candidates = [observation.source, *(family.name for family in observation.families)]
            candidates.extend(value for _, value in observation.transport.grouping_key)
            if not any(fnmatch.fnmatchcase(c, g) for c in candidates for g in self.names):
                return False
        return True


@dataclass
class TailPrinter(LineWriter):
    """The tail's sink: filters, logs to a PushLog, formats, and queues lines for a writer task.

    Formatting happens on the loop (cheap); writing happens in a worker thread, so
    a slow terminal or pipe never stalls the receivers. When the queue is full
    the line is dropped and counted.
    """

    push_log: PushLog
    filters: Filters
    output: str
    style: Styler
    verbose: bool = False
    limit: int | None = None
    on_limit: Callable[[], None] | None = None
    hidden: int = 0
    shown: int = 0
    lines_dropped: int = 0
    _queue: asyncio.Queue[str] = field(default_factory=asyncio.Queue)

    def __call__(self, observation: Observation) -> None:
        if self.limit is not None and self.shown >= self.limit:
            return
        if not self.filters.match(observation):
            self.hidden += 1
            return
        self.shown += 1
        self.push_log(observation)
        if self.output == "json":
            line = json.dumps(observation_json(observation), ensure_ascii=False)
        else:
            line = observation_line(observation, self.style, verbose=self.verbose)
        self.emit(line)
        if self.limit is not None and self.shown >= self.limit and self.on_limit is not None:
            self.on_limit()


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def summary_text(printer: TailPrinter, elapsed: float, style: Styler) -> str:
    push_log = printer.push_log
    outcomes = {outcome.value: count for outcome, count in push_log.outcomes.items()}
    by_outcome = (
        ", ".join(f"{count} {name}" for name, count in sorted(outcomes.items())) or "nothing received"
    )
    lines = [
        style(f"--- {_plural(push_log.total, 'observation')} in {elapsed:.1f}s ({by_outcome}) ---", "bold"),
    ]
    if printer.hidden:
        lines.append(f"{printer.hidden} more hidden by --protocol/--sender/--name")
    senders = sorted(push_log.senders(), key=lambda s: (-s.count, s.key))
    if senders:
        rows = [("SENDER", "SEEN", "ACCEPTED", "REJECTED", "SERIES", "LAST SEEN", "KINDS", "LAST ERROR")]
        for stats in senders:
            rows.append(
                (
                    stats.key,
                    str(stats.count),
                    str(stats.accepted),
                    str(stats.rejected),
                    str(stats.series),
                    _utc(stats.last_seen),
                    ",".join(sorted(kind.value for kind in stats.kinds)),
                    (stats.last_error or "")[:120],
                )
            )
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
        for index, row in enumerate(rows):
            text = (
                "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False))
                + "  "
                + row[-1]
            )
            lines.append(style(text.rstrip(), "bold") if index == 0 else text.rstrip())
    dropped = push_log.dropped
    if dropped.total or printer.lines_dropped:
        lines.append(
            f"dropped: {dropped.events} old events, {dropped.senders} senders, {dropped.sources} sources "
            f"(log bounds); {printer.lines_dropped} lines (output too slow)"
        )
    return "\n".join(lines)


def summary_json(printer: TailPrinter, elapsed: float) -> dict[str, Any]:
    push_log = printer.push_log
    return {
        "schema": SUMMARY_SCHEMA,
        "observations": push_log.total,
        "hidden": printer.hidden,
        "elapsed": round(elapsed, 6),
        "by_outcome": {outcome.value: count for outcome, count in push_log.outcomes.items()},
        "by_kind": {kind.value: count for kind, count in push_log.kinds.items()},
        "lines_dropped": printer.lines_dropped,
        "log_dropped": {
            "events": push_log.dropped.events,
            "senders": push_log.dropped.senders,
            "sources": push_log.dropped.sources,
        },
        "senders": [stats.as_dict() for stats in push_log.senders()],
    }


# --- options -----------------------------------------------------------------------------------------


_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([kmg]i?b?|b)?", re.IGNORECASE)


def parse_size(text: str) -> int:
    """``1048576``, ``512KiB``, ``64MiB``, ``1GB`` (units base 2, as Prometheus reads sizes) -> bytes."""
    found = _SIZE.fullmatch(text.strip())
    if found is None:
        raise ValueError(f"{text!r} is not a size (e.g. 1048576, 512KiB, 64MiB)")
    number, unit = found.groups()
    power = {"": 0, "b": 0, "k": 1, "m": 2, "g": 3}[(unit or "")[:1].lower()]
    size = int(float(number) * 1024**power)
    if size < 1:
        raise ValueError(f"{text!r}: the size must be at least 1 byte")
    return size


def _protocols(values: Sequence[str]) -> frozenset[str]:
    out: set[str] = set()
    for value in values:
        for item in value.split(","):
            name = item.strip().lower()
            name = _PROTOCOL_ALIASES.get(name, name)
            if not name:
                continue
            if name not in PROTOCOLS:
                raise click.BadParameter(
                    f"{item!r} is not one of {', '.join(PROTOCOLS)}", param_hint="--protocol"
                )
            out.add(name)
    return frozenset(out)


def _basic_pairs(values: Sequence[str]) -> tuple[tuple[str, str], ...]:
    pairs = []
    for value in values:
        user, sep, password = value.partition(":")
        if not sep or not user:
            raise click.BadParameter(f"{value!r} is not USER:PASSWORD", param_hint="--basic-auth")
        pairs.append((user, password))
    return tuple(pairs)


def _listeners(
    all_: bool, given: dict[str, str | None], metrics: str | None
) -> tuple[dict[str, tuple[str, int]], tuple[str, int] | None]:
    """Which receivers listen where, and where /metrics goes when no HTTP receiver runs."""
    from promscope.errors import ConfigError
    from promscope.receive.server import parse_address

    wanted = {name: address for name, address in given.items() if address is not None}
    if all_ or not wanted:
        for name in PROTOCOLS:
            wanted.setdefault(name, DEFAULTS[name])
    out: dict[str, tuple[str, int]] = {}
    for name, address in wanted.items():
        default_port = parse_address(DEFAULTS[name])[1]
        try:
            out[name] = parse_address(address, default_port=default_port)
        except ConfigError as exc:
            raise click.BadParameter(exc.message, param_hint=f"--{name.replace('_', '-')}") from None
    metrics_address: tuple[str, int] | None = None
    if metrics is not None or set(out) == {"statsd"}:
        try:
            metrics_address = parse_address(metrics or DEFAULT_METRICS, default_port=9102)
        except ConfigError as exc:
            raise click.BadParameter(exc.message, param_hint="--metrics") from None
    return out, metrics_address


# --- the command -------------------------------------------------------------------------------------


@click.command(
    "tail",
    help=_HELP,
    short_help="Receive pushes (Pushgateway, StatsD, remote_write, OTLP) and print each as it arrives.",
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.option("--pushgateway", metavar="ADDR", default=None, help="Pushgateway API listener.")
@click.option("--statsd", metavar="ADDR", default=None, help="StatsD/DogStatsD listener (UDP and TCP).")
@click.option("--remote-write", "remote_write", metavar="ADDR", default=None, help="remote_write listener.")
@click.option("--otlp", metavar="ADDR", default=None, help="OTLP/HTTP metrics listener.")
@click.option("--all", "all_", is_flag=True, help="All four receivers (at their defaults unless given).")
@click.option("--metrics", "metrics", metavar="ADDR", default=None, help="Also serve /metrics here.")
@click.option(
    "--protocol",
    "-p",
    "protocols",
    multiple=True,
    metavar="NAME",
    help="Show only these: pushgateway, statsd, remote_write, otlp; repeatable or comma-separated.",
)
@click.option(
    "--sender",
    "senders",
    multiple=True,
    metavar="GLOB",
    help="Show only senders matching (host or host:port).",
)
@click.option(
    "--name",
    "names",
    multiple=True,
    metavar="GLOB",
    help="Show only observations whose source (grouping key, sender) or a metric name matches.",
)
@click.option("--output", "-o", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option("--verbose", "-v", is_flag=True, help="Every diagnostic and the user agent under each line.")
@click.option(
    "--color",
    type=click.Choice(["auto", "always", "never"]),
    default="auto",
    show_default=True,
    help="Colour text.",
)
@click.option(
    "--duration", type=click.FloatRange(min=0.0, min_open=True), default=None, help="Stop after SECONDS."
)
@click.option("--count", type=click.IntRange(min=1), default=None, help="Stop after N observations shown.")
@click.option(
    "--persistence-file",
    type=click.Path(dir_okay=False),
    default=None,
    help="Keep pushed groups in this SQLite file across restarts (upstream's --persistence.file).",
)
@click.option(
    "--stale-after",
    metavar="DURATION",
    callback=value_callback(parse_listener_duration),
    default=None,
    help="Mark Pushgateway groups not pushed to for DURATION stale (shown, kept): 300, 90s, 5m, 1h30m.",
)
@click.option(
    "--expire-after",
    metavar="DURATION",
    callback=value_callback(parse_listener_duration),
    default=None,
    help="Delete Pushgateway groups not pushed to for DURATION; each deletion is shown.  [default: off]",
)
@click.option(
    "--statsd-mapping",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="statsd_exporter mapping YAML.",
)
@click.option(
    "--basic-auth",
    "basic_auth",
    multiple=True,
    metavar="USER:PASSWORD",
    help="Accepted credentials; repeatable.",
)
@click.option(
    "--bearer-token",
    "bearer_tokens",
    multiple=True,
    metavar="TOKEN",
    help="Accepted bearer token; repeatable.",
)
@click.option(
    "--tls-cert-file",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="Serve TLS on every TCP listener: HTTPS, and StatsD over TCP (UDP stays plaintext).",
)
@click.option(
    "--tls-key-file",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="Key for --tls-cert-file.",
)
@click.option(
    "--tls-client-ca-file",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="Require client certificates signed by this CA, on every TCP listener.",
)
@click.option(
    "--max-body-size",
    metavar="SIZE",
    callback=value_callback(parse_size),
    default=None,
    help="Largest request body on every HTTP listener, as sent and decoded: 1048576, 512KiB, 64MiB.  "
    "[default: 64MiB]",
)
@click.option(
    "--max-events",
    type=click.IntRange(min=1),
    default=10_000,
    show_default=True,
    help="Observations kept for the summary's statistics window.",
)
@record_option
@click.pass_context
def tail(
    ctx: click.Context,
    pushgateway: str | None,
    statsd: str | None,
    remote_write: str | None,
    otlp: str | None,
    all_: bool,
    metrics: str | None,
    protocols: tuple[str, ...],
    senders: tuple[str, ...],
    names: tuple[str, ...],
    output: str,
    verbose: bool,
    color: str,
    duration: float | None,
    count: int | None,
    persistence_file: str | None,
    stale_after: float | None,
    expire_after: float | None,
    statsd_mapping: str | None,
    basic_auth: tuple[str, ...],
    bearer_tokens: tuple[str, ...],
    tls_cert_file: str | None,
    tls_key_file: str | None,
    tls_client_ca_file: str | None,
    max_body_size: int | None,
    max_events: int,
    record: str | None = None,
) -> None:
    from promscope.errors import ConfigError, ListenError, PromscopeError
    from promscope.receive.http import Auth, HttpLimits, ServerTLS

    listeners, metrics_address = _listeners(
        all_,
        {"pushgateway": pushgateway, "statsd": statsd, "remote_write": remote_write, "otlp": otlp},
        metrics,
    )
    filters = Filters(_protocols(protocols), tuple(senders), tuple(names))
    if bool(tls_cert_file) != bool(tls_key_file):
        raise click.UsageError("--tls-cert-file and --tls-key-file go together")
    if tls_client_ca_file and not tls_cert_file:
        raise click.UsageError("--tls-client-ca-file needs --tls-cert-file and --tls-key-file")
    auth = (
        Auth(basic=_basic_pairs(basic_auth), bearer_tokens=tuple(bearer_tokens))
        if basic_auth or bearer_tokens
        else None
    )
    tls = (
        ServerTLS(tls_cert_file, tls_key_file, tls_client_ca_file) if tls_cert_file and tls_key_file else None
    )
    limits = HttpLimits(max_body_bytes=max_body_size) if max_body_size else HttpLimits()

    options = _Options(
        listeners=listeners,
        metrics_address=metrics_address,
        filters=filters,
        output=output,
        verbose=verbose,
        color=color,
        duration=duration,
        count=count,
        persistence_file=persistence_file,
        stale_after=stale_after,
        expire_after=expire_after,
        statsd_mapping=statsd_mapping,
        auth=auth,
        tls=tls,
        limits=limits,
        max_events=max_events,
        record=record,
    )
    try:
        asyncio.run(_run(options))
    except ListenError as exc:
        print_error(exc.message, hint=exc.hint or "choose another address for that listener")
        ctx.exit(ExitCode.UNREADABLE)
    except ConfigError as exc:
        print_error(exc.message, hint=exc.hint)
        ctx.exit(ExitCode.USAGE)
    except PromscopeError as exc:
        print_error(exc.message, hint=exc.hint)
        ctx.exit(ExitCode.UNREADABLE)
    ctx.exit(ExitCode.OK)


@dataclass
class _Options:
    listeners: dict[str, tuple[str, int]]
    metrics_address: tuple[str, int] | None
    filters: Filters
    output: str
    verbose: bool
    color: str
    duration: float | None
    count: int | None
    persistence_file: str | None
    stale_after: float | None
    expire_after: float | None
    statsd_mapping: str | None
    auth: Auth | None
    tls: ServerTLS | None
    limits: HttpLimits
    max_events: int
    record: str | None


def _build(options: _Options, server: ReceiverServer) -> list[str]:
    """Construct the receivers (imported only when asked for) and add them; returns startup notes."""
    from promscope.receive.server import format_address

    notes: list[str] = []
    scheme = "https" if options.tls else "http"
    body_limit = options.limits.max_body_bytes  # one figure for the HTTP layer and every receiver
    for name, (host, port) in options.listeners.items():
        address = format_address(host, port)
        if name == "pushgateway":
            from promscope.receive.pushgateway import PushgatewayReceiver, PushLimits

            receiver: Any = PushgatewayReceiver(
                sink=server.sink,
                persistence_file=options.persistence_file,
                limits=PushLimits(max_body_bytes=body_limit),
                stale_after=options.stale_after,
                expire_after=options.expire_after,
            )
            server.add_http(receiver, (host, port), name=name)
            notes.append(f"pushgateway {scheme}://{address}/metrics/job/…")
        elif name == "remote_write":
            from promscope.receive.remote_write import PushLimits as WriteLimits
            from promscope.receive.remote_write import RemoteWriteReceiver

            server.add_http(
                RemoteWriteReceiver(sink=server.sink, limits=WriteLimits(max_decompressed_bytes=body_limit)),
                (host, port),
                name=name,
            )
            notes.append(f"remote_write {scheme}://{address}/api/v1/write")
        elif name == "otlp":
            from promscope.receive.otlp import OtlpReceiver
            from promscope.receive.remote_write import PushLimits as WriteLimits

            server.add_http(
                OtlpReceiver(sink=server.sink, limits=WriteLimits(max_decompressed_bytes=body_limit)),
                (host, port),
                name=name,
            )
            notes.append(f"otlp {scheme}://{address}/v1/metrics")
        elif name == "statsd":
            from promscope.receive.statsd import StatsdReceiver
            from promscope.receive.statsd_mapping import MappingConfig

            mapping = MappingConfig.from_file(options.statsd_mapping) if options.statsd_mapping else None
            server.add_socket(
                StatsdReceiver(udp=address, tcp=address, tls=options.tls, mapping=mapping, sink=server.sink),
                name=name,
            )
            if options.tls is None:
                notes.append(
                    f"statsd udp+tcp {address}"
                    + (" (open: auth flags cannot protect StatsD)" if options.auth else "")
                )
            else:
                client = " with client certificates" if options.tls.client_ca_file else ""
                notes.append(f"statsd tcp+tls{client} and udp {address} (UDP cannot carry TLS: plaintext)")
    if options.metrics_address is not None:
        server.serve_metrics(options.metrics_address)
    return notes


async def _run(options: _Options) -> None:
    from promscope.receive.log import PushLog
    from promscope.receive.server import ReceiverServer

    out = sys.stdout
    style = Styler(options.output == "text" and wants_color(options.color, out))
    stop = asyncio.Event()
    push_log = PushLog(max_events=options.max_events)
    printer = TailPrinter(
        push_log=push_log,
        filters=options.filters,
        output=options.output,
        style=style,
        verbose=options.verbose,
        limit=options.count,
        on_limit=stop.set,
    )
    async with recording(options.record, verb="tail") as recorder:
        sinks: list[Any] = [printer]
        if recorder is not None:
            sinks.append(recorder)
        server = ReceiverServer(sinks=sinks, limits=options.limits, auth=options.auth, tls=options.tls)
        notes = _build(options, server)
        install_signals(stop)
        started = time.monotonic()
        writer = asyncio.get_running_loop().create_task(printer.writer(out))
        try:
            await server.start()
            metrics_urls = sorted({s.url + "/metrics" for s in server.servers})
            sys.stderr.write(
                "promscope tail: listening: "
                + "; ".join(notes)
                + (f"; /metrics on {', '.join(metrics_urls)}" if metrics_urls else "")
                + "; Ctrl-C stops and prints a summary\n"
            )
            sys.stderr.flush()
            if options.duration is not None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), options.duration)
            else:
                await stop.wait()
        finally:
            await server.stop()
            await printer.finish(writer)
            remove_signals()
    elapsed = time.monotonic() - started
    if options.output == "json":
        write_lines(out, [json.dumps(summary_json(printer, elapsed), ensure_ascii=False)])
    else:
        write_lines(out, [summary_text(printer, elapsed, style)])
