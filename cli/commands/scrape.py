"""``promscope scrape URL``: scrape a target once, the way Prometheus 3 would, and show what came back.

With ``--interval`` (or ``--count``, ``--duration``, ``--record``, several URLs,
or a target source such as ``--prometheus-config``) the command runs live
instead: :mod:`cli.commands.scrape_live` scrapes every target each interval
with the engine's ScrapeManager and prints one line (or JSON object, schema
``promscope.scrape.live/v1``) per scrape, then a health summary.

The command builds a :class:`promscope.scrape.Target` from the flags, asks
the engine to scrape it (:func:`promscope.scrape.scrape_sync`), filters the
families with ``--match`` selectors, and prints one of four outputs:

``table`` (default)
    A summary (status, Content-Type, format, sizes, timings, predicted ``up``),
    the families (and with ``--series`` or ``--match`` their series) and the
    diagnostics, drawn with Rich.
``json``
    One JSON object, schema ``promscope.scrape/v1`` (below). Stable: fields
    are only ever added.
``text`` / ``openmetrics``
    The (filtered) families re-rendered through
    :mod:`promscope.exposition.render`.

``--diag`` adds what a Prometheus 3 server would act on: the Accept header
sent, the status, the Content-Type and what Prometheus does with it, the
format actually found, compressed and uncompressed bytes, timings, the
series Prometheus records for the scrape (``up`` and ``scrape_*``), and
every diagnostic with its line, column and source line. With ``text`` or
``openmetrics`` output the report goes to stderr so stdout stays an
exposition.

JSON schema ``promscope.scrape/v1``::

    {
      "schema": "promscope.scrape/v1",
      "target": str, "final_url": str|null, "redirects": int, "accept": str,
      "status": int|null, "reason": str, "http_version": str|null,
      "content_type": str|null, "content_encoding": str|null,
      "negotiation": null | {"format": str|null, "version": str|null,
                             "prometheus3_fails": bool, "note": str,
                             "warnings": [str], "escaping": str|null, "charset": str|null},
      "format": "text"|"openmetrics"|"protobuf"|null,
      "bytes": {"compressed": int, "uncompressed": int, "limit": int},
      "timings": {"connect": float|null, "tls": float|null, "first_byte": float|null,
                  "total": float, "parse": float},                       # seconds
      "up": 0|1, "up_reason": str,
      "error": null | {"kind": str, "message": str, "hint": str},
      "prometheus_series": {"up": float, "scrape_duration_seconds": float, ...},
      "match": [str],
      "samples": int, "series": int,                 # after --match
      "families": [{"name": str, "type": str, "help": str|null, "unit": str|null, "line": int,
                    "samples": [{"name": str, "labels": {str: str}, "value": float|"NaN"|"+Inf"|"-Inf",
                                 "timestamp": float|null, "line": int,
                                 "exemplar": null | {"labels": {}, "value": ..., "timestamp": ...},
                                 "native_histogram": null | {...}}]}],
      "diagnostics": [{"code": str, "severity": str, "line": int, "column": int,
                       "message": str, "metric": str|null}],
      "suppressed": int
    }

Exit codes: 0 ``up`` would be 1 and nothing at or above ``--fail-on``;
1 ``up`` would be 0 or diagnostics at or above ``--fail-on``; 2 usage or
configuration error; 3 the target could not be reached (no HTTP response).
"""

from __future__ import annotations

import json
import math
import re
import sys
from collections.abc import Iterable, Sequence
from typing import IO, TYPE_CHECKING, Any

import click

from cli.exit_codes import ExitCode
from cli.options import parse_duration, record_option, value_callback
from cli.output import format_bytes, print_error, wants_color

if TYPE_CHECKING:
    from rich.console import Console

    from promscope.model import Diagnostic, MetricFamily, Sample
    from promscope.scrape import ScrapeResult, Selector, Target

__all__ = ["JSON_SCHEMA", "parse_byte_size", "parse_duration", "scrape"]

JSON_SCHEMA = "promscope.scrape/v1"

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgtpe]?i?b?)?\s*$", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50, "e": 1 << 60}


def parse_byte_size(text: str) -> int:
    """``10MB``, ``512KiB``, ``1.5GB``, ``1048576`` -> bytes; ``0`` means no limit.

    As in Prometheus's ``body_size_limit`` (alecthomas/units ``Base2Bytes``),
    ``KB`` and ``KiB`` both mean 1024 bytes. Raises ValueError.
    """
    found = _SIZE.match(text)
    if not found:
        raise ValueError(f"{text!r} is not a size (e.g. 10MB, 512KiB, 0 for no limit)")
    number, unit = found.groups()
    unit = (unit or "").lower()
    if unit in ("i", "ib") or unit.endswith("i"):
        raise ValueError(f"{text!r} is not a size (e.g. 10MB, 512KiB, 0 for no limit)")
    multiplier = _SIZE_UNITS[unit[:1] if unit not in ("b",) else ""]
    return int(float(number) * multiplier)


_duration_option = value_callback(parse_duration)
_byte_size_option = value_callback(parse_byte_size)


_HELP = """Scrape URL once, the way a Prometheus 3 server would, and show what came back;
or, with --interval, scrape targets until stopped and print every scrape.

The request carries Prometheus 3's Accept header (or --accept), Accept-Encoding
gzip, its User-Agent-style headers and X-Prometheus-Scrape-Timeout-Seconds.
promscope then reports the HTTP status, what Prometheus does with the
Content-Type, the format found, sizes, timings, whether `up` would be 1,
and every problem in the exposition.

\b
--accept takes prometheus3 (default), proto-first, prometheus2,
openmetrics, text, protobuf, or a raw Accept header value.

\b
Live mode (--interval, --count, --duration, --record, several URLs, or a
target source: --config, --prometheus-config, --file-sd, --dns-srv,
--prometheus-url; with no URL at all, the [[targets]] of promscope.toml):
one never-overlapping loop per target, one line per scrape (time,
job/instance, up, duration, samples, series added, body size, the failure
and its class), -o json for JSON Lines. Ctrl-C, SIGTERM, --count or
--duration stop it and print each target's health: up ratio, scrapes,
failures by class, missed intervals, last error. Request flags (auth, TLS,
headers, --accept, limits) apply to URL, --file-sd and --dns-srv targets.

\b
Examples:
  promscope scrape http://localhost:9100/metrics
  promscope scrape localhost:9100/metrics --diag
  promscope scrape https://app:8443/metrics --ca-file ca.pem --bearer-token-file token
  promscope scrape http://localhost:9090/metrics --match 'prometheus_http_*{code=~"5.."}'
  promscope scrape http://localhost:9100/metrics -o json | jq .up
  promscope scrape localhost:9100/metrics localhost:8080/metrics --interval 5s
  promscope scrape --prometheus-config prometheus.yml --interval 15s --record incident.psession
  promscope scrape --file-sd 'targets/*.json' --job node --duration 10m -o json
  promscope scrape --dns-srv _metrics._tcp.example.org --job app --interval 30s
  promscope scrape --prometheus-url http://prometheus:9090 --interval 1m

\b
Exit codes (one scrape):
  0  up would be 1, nothing at or above --fail-on
  1  up would be 0, or diagnostics at or above --fail-on
  2  usage or configuration error
  3  the target could not be reached (no HTTP response)
Exit codes (live mode):
  0  stopped (Ctrl-C, SIGTERM, --count, --duration), some scrape succeeded
  2  usage or configuration error
  3  no target could be scraped at all; the --record file cannot be created
"""


@click.command(
    "scrape",
    help=_HELP,
    short_help="Scrape a target once, or targets every interval, and show what came back.",
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.argument("urls", metavar="[URL]...", nargs=-1)
@click.option(
    "--interval",
    metavar="DURATION",
    callback=_duration_option,
    help="Live mode: scrape every DURATION (5s, 500ms, 1m) until stopped; overrides the intervals of "
    "configured targets.",
)
@click.option(
    "--count",
    type=click.IntRange(min=1),
    help="Live mode: stop after N scrapes (all targets together).",
)
@click.option(
    "--duration",
    metavar="DURATION",
    callback=_duration_option,
    help="Live mode: stop after DURATION (30s, 5m).",
)
@click.option(
    "--config",
    "config_file",
    metavar="FILE",
    type=click.Path(dir_okay=False),
    help="Live mode: promscope.toml to read [scrape] and [[targets]] from (default: the one found from "
    "the working directory; its targets are scraped when no target is given).",
)
@click.option(
    "--prometheus-config",
    "prometheus_configs",
    multiple=True,
    metavar="FILE",
    type=click.Path(dir_okay=False),
    help="Live mode: scrape what this Prometheus config's scrape_configs name (static and file_sd, "
    "re-read when the files change); repeat.",
)
@click.option(
    "--file-sd",
    "file_sd",
    multiple=True,
    metavar="FILE",
    help="Live mode: Prometheus file_sd file (.json, .yml, .yaml; a glob in the file name), re-read "
    "when it changes; repeat.",
)
@click.option(
    "--dns-srv",
    "dns_srv",
    multiple=True,
    metavar="NAME",
    help="Live mode: scrape the targets of this DNS SRV record (e.g. _metrics._tcp.example.org); repeat.",
)
@click.option(
    "--prometheus-url",
    "prometheus_urls",
    multiple=True,
    metavar="URL",
    help="Live mode: scrape what the Prometheus server at URL scrapes (its /api/v1/targets); repeat.",
)
@click.option(
    "--job",
    default=None,
    metavar="NAME",
    help="Live mode: job label of URL, --file-sd and --dns-srv targets.  [default: promscope]",
)
@click.option(
    "--scheme",
    type=click.Choice(["http", "https"]),
    default=None,
    help="Live mode: scheme for --file-sd and --dns-srv addresses.  [default: http]",
)
@click.option(
    "--metrics-path",
    metavar="PATH",
    default=None,
    help="Live mode: path for --file-sd and --dns-srv addresses.  [default: /metrics]",
)
@click.option(
    "--sample-limit",
    type=click.IntRange(min=0),
    default=None,
    help="Live mode: refuse a scrape with more samples (as Prometheus's sample_limit; 0: none).",
)
@click.option(
    "--jitter/--no-jitter",
    default=True,
    show_default=True,
    help="Live mode: spread first scrapes over the interval as Prometheus does (--no-jitter: at once).",
)
@click.option(
    "--verbose", "-v", is_flag=True, help="Live mode: every diagnostic and the URL under each line."
)
@click.option(
    "--accept", default="prometheus3", show_default=True, help="Accept header: a name or a raw value."
)
@click.option(
    "--compression/--no-compression",
    "--gzip/--no-gzip",
    default=True,
    show_default=True,
    help="Ask for gzip (Prometheus's enable_compression); --no-gzip asks for identity.",
)
@click.option(
    "--timeout",
    metavar="DURATION",
    callback=_duration_option,
    default="10s",
    show_default=True,
    help="Deadline for the whole scrape (10s, 500ms, 2.5).",
)
@click.option(
    "--body-size-limit",
    metavar="SIZE",
    callback=_byte_size_option,
    default="100MiB",
    show_default=True,
    help="Decompressed body limit, as Prometheus's body_size_limit (10MB, 512KiB; 0 for none).",
)
@click.option(
    "--follow-redirects/--no-follow-redirects", default=True, show_default=True, help="Follow 3xx redirects."
)
@click.option("--basic-auth", metavar="USER:PASS", help="HTTP basic authentication.")
@click.option("--username", help="Basic auth user name (with --password-file).")
@click.option(
    "--password-file", type=click.Path(dir_okay=False), help="File holding the basic auth password."
)
@click.option("--bearer-token", metavar="TOKEN", help="Send 'Authorization: Bearer TOKEN'.")
@click.option(
    "--bearer-token-file", type=click.Path(dir_okay=False), help="File holding the bearer token (re-read)."
)
@click.option(
    "-H", "--header", "headers", multiple=True, metavar="'NAME: VALUE'", help="Extra header; repeat."
)
@click.option("--ca-file", type=click.Path(dir_okay=False), help="CA bundle to verify the server with.")
@click.option("--cert-file", type=click.Path(dir_okay=False), help="Client certificate (PEM).")
@click.option("--key-file", type=click.Path(dir_okay=False), help="Client key (PEM).")
@click.option("--server-name", help="Name the server certificate must carry (and SNI).")
@click.option("--insecure", is_flag=True, help="Skip TLS certificate verification.")
@click.option(
    "--fallback-protocol",
    type=click.Choice(
        [
            "PrometheusText0.0.4",
            "PrometheusText1.0.0",
            "OpenMetricsText0.0.1",
            "OpenMetricsText1.0.0",
            "PrometheusProto",
        ]
    ),
    help="Prometheus's fallback_scrape_protocol: the format assumed for a missing or unsupported "
    "Content-Type.",
)
@click.option(
    "--match",
    "-m",
    "matches",
    multiple=True,
    metavar="SELECTOR",
    help='Only series matching name{label=~"re"} (name may be a glob); repeat for any-of.',
)
@click.option(
    "--series", "show_series", is_flag=True, help="List series in table output (implied by --match)."
)
@click.option(
    "--output",
    "-o",
    type=click.Choice(["table", "json", "text", "openmetrics"]),
    default="table",
    show_default=True,
    help="What to print on stdout.",
)
@click.option(
    "--diag", is_flag=True, help="Show what a Prometheus 3 server would act on, and every diagnostic."
)
@click.option(
    "--fail-on",
    type=click.Choice(["error", "warning", "style", "never"]),
    default="error",
    show_default=True,
    help="Lowest diagnostic severity that makes the exit code 1 (never: only a failed scrape does).",
)
@click.option(
    "--color",
    type=click.Choice(["auto", "always", "never"]),
    default="auto",
    show_default=True,
    help="Colour table output.",
)
@record_option
@click.pass_context
def scrape(
    ctx: click.Context,
    urls: tuple[str, ...],
    interval: float | None,
    count: int | None,
    duration: float | None,
    config_file: str | None,
    prometheus_configs: tuple[str, ...],
    file_sd: tuple[str, ...],
    dns_srv: tuple[str, ...],
    prometheus_urls: tuple[str, ...],
    job: str | None,
    scheme: str | None,
    metrics_path: str | None,
    sample_limit: int | None,
    jitter: bool,
    verbose: bool,
    accept: str,
    compression: bool,
    timeout: float,
    body_size_limit: int,
    follow_redirects: bool,
    basic_auth: str | None,
    username: str | None,
    password_file: str | None,
    bearer_token: str | None,
    bearer_token_file: str | None,
    headers: tuple[str, ...],
    ca_file: str | None,
    cert_file: str | None,
    key_file: str | None,
    server_name: str | None,
    insecure: bool,
    fallback_protocol: str | None,
    matches: tuple[str, ...],
    show_series: bool,
    output: str,
    diag: bool,
    fail_on: str,
    color: str,
    record: str | None = None,
) -> None:
    from promscope.errors import PromscopeError

    live_flags = {
        "--interval": interval is not None,
        "--count": count is not None,
        "--duration": duration is not None,
        "--config": config_file is not None,
        "--prometheus-config": bool(prometheus_configs),
        "--file-sd": bool(file_sd),
        "--dns-srv": bool(dns_srv),
        "--prometheus-url": bool(prometheus_urls),
        "--record": record is not None,
    }
    if any(live_flags.values()) or len(urls) != 1:
        from cli.commands.scrape_live import run_live_command

        run_live_command(ctx, ctx.params)
        return
    live_only = {
        "--job": job is not None,
        "--scheme": scheme is not None,
        "--metrics-path": metrics_path is not None,
        "--sample-limit": sample_limit is not None,
        "--no-jitter": not jitter,
        "--verbose": verbose,
    }
    for flag, given in live_only.items():
        if given:
            raise click.UsageError(f"{flag} applies to live mode: add --interval DURATION", ctx)
    url = urls[0]
    try:
        target = _build_target(
            url, timeout=timeout, body_size_limit=body_size_limit, settings=request_settings(**ctx.params)
        )
        selectors = _parse_selectors(matches)
        from promscope.scrape import scrape_sync

        result = scrape_sync(target)
    except PromscopeError as exc:
        print_error(exc.message, hint=exc.hint)
        ctx.exit(ExitCode.USAGE)

    families = _select(result.families, selectors)
    stdout = sys.stdout
    stderr = sys.stderr
    if output == "json":
        stdout.write(json.dumps(to_json(result, families, matches), indent=2, ensure_ascii=False) + "\n")
    elif output in ("text", "openmetrics"):
        stdout.write(_render(result, families, output))
        if diag:
            _print_report(_console(stderr, color), result, families, diag=True, series=False)
    else:
        _print_report(
            _console(stdout, color), result, families, diag=diag, series=show_series or bool(selectors)
        )
    stdout.flush()
    if (result.error is not None and output != "table") or (result.error is not None and result.unreachable):
        print_error(f"{result.target}: {result.error.message}", hint=result.error.hint, stream=stderr)
    ctx.exit(exit_code(result, fail_on))


def exit_code(result: ScrapeResult, fail_on: str) -> ExitCode:
    """3 unreachable, 1 when ``up`` would be 0 or a diagnostic is at or above ``fail_on``, else 0."""
    from promscope.model import Severity

    if result.unreachable:
        return ExitCode.UNREADABLE
    if not result.ok:
        return ExitCode.PROBLEMS
    if fail_on != "never":
        threshold = Severity(fail_on)
        if any(d.severity.at_least(threshold) for d in result.diagnostics):
            return ExitCode.PROBLEMS
    return ExitCode.OK


# -- building the target ---------------------------------------------------------------------------------


def _build_target(url: str, *, timeout: float, body_size_limit: int, settings: dict[str, Any]) -> Target:
    """The target for one scrape; ``settings`` are :func:`request_settings`."""
    from promscope.scrape import Target

    target = Target(normalize_url(url), timeout=timeout, body_size_limit=body_size_limit, **settings)
    if target.is_https and not target.tls.is_default:
        target.tls.ssl_context()  # a missing CA or key file is a usage error, reported before any request
    target.read_bearer_token()
    return target


def normalize_url(url: str) -> str:
    """``localhost:9100/metrics`` -> ``http://localhost:9100/metrics``, as Prometheus targets are written."""
    return url if "://" in url else f"http://{url}"


def request_settings(
    *,
    accept: str,
    compression: bool,
    follow_redirects: bool,
    basic_auth: str | None,
    username: str | None,
    password_file: str | None,
    bearer_token: str | None,
    bearer_token_file: str | None,
    headers: Sequence[str],
    ca_file: str | None,
    cert_file: str | None,
    key_file: str | None,
    server_name: str | None,
    insecure: bool,
    fallback_protocol: str | None,
    **_: Any,
) -> dict[str, Any]:
    """The request flags as keyword arguments of :class:`~promscope.scrape.Target` (and of
    :class:`~promscope.scrape.ScrapeConfig`, which names them the same). Raises ConfigError."""
    from promscope.errors import ConfigError
    from promscope.exposition.negotiate import ScrapeProtocol, accept_for
    from promscope.scrape import BasicAuth, TLSConfig

    try:
        accept_header = accept_for(accept)
    except ValueError as exc:
        raise ConfigError(
            str(exc), hint="--accept prometheus3|openmetrics|text|protobuf or a raw header"
        ) from None
    auth = None
    if basic_auth is not None and (username is not None or password_file is not None):
        raise ConfigError("give --basic-auth or --username/--password-file, not both")
    if basic_auth is not None:
        auth = BasicAuth.parse(basic_auth)
    elif username is not None:
        password = ""
        if password_file is not None:
            try:
                with open(password_file, encoding="utf-8") as handle:
                    password = handle.read().rstrip("\r\n")
            except OSError as exc:
                reason = exc.strerror.lower() if exc.strerror else str(exc)
                raise ConfigError(f"cannot read the password file: {reason}", path=password_file) from None
        auth = BasicAuth(username, password)
    elif password_file is not None:
        raise ConfigError("--password-file needs --username")
    pairs: list[tuple[str, str]] = []
    for header in headers:
        name, sep, value = header.partition(":")
        if not sep or not name.strip():
            raise ConfigError(
                f"header {header!r} is not 'Name: value'", hint="e.g. -H 'X-Scope-OrgID: team-a'"
            )
        pairs.append((name.strip(), value.strip()))
    tls = TLSConfig(
        ca_file=ca_file,
        cert_file=cert_file,
        key_file=key_file,
        insecure_skip_verify=insecure,
        server_name=server_name,
    )
    return {
        "accept": accept_header,
        "compression": compression,
        "follow_redirects": follow_redirects,
        "basic_auth": auth,
        "bearer_token": bearer_token,
        "bearer_token_file": bearer_token_file,
        "headers": tuple(pairs),
        "tls": tls,
        "fallback_protocol": ScrapeProtocol(fallback_protocol) if fallback_protocol else None,
    }


def _parse_selectors(matches: Iterable[str]) -> list[Selector]:
    from promscope.scrape import parse_selector

    return [parse_selector(text) for text in matches]


def _select(families: Sequence[MetricFamily], selectors: Sequence[Selector]) -> list[MetricFamily]:
    if not selectors:
        return list(families)
    if len(selectors) == 1:
        return selectors[0].filter(families)
    from promscope.model import MetricFamily as Family

    out: list[MetricFamily] = []
    for family in families:
        kept = tuple(s for s in family.samples if any(sel.matches(s, family.name) for sel in selectors))
        if kept:
            out.append(
                Family(family.name, family.type, family.help, family.unit, samples=kept, line=family.line)
            )
        elif not family.samples and any(sel.filter([family]) for sel in selectors):
            out.append(family)
    return out


# -- JSON --------------------------------------------------------------------------------------------------


def _number(value: float) -> float | str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return value


def _sample_json(sample: Sample) -> dict[str, Any]:
    exemplar = sample.exemplar
    native = sample.native_histogram
    return {
        "name": sample.name,
        "labels": dict(sample.labels),
        "value": _number(sample.value),
        "timestamp": sample.timestamp,
        "line": sample.line,
        "exemplar": None
        if exemplar is None
        else {
            "labels": dict(exemplar.labels),
            "value": _number(exemplar.value),
            "timestamp": exemplar.timestamp,
        },
        "native_histogram": None
        if native is None
        else {
            "schema": native.schema,
            "count": _number(native.count),
            "sum": _number(native.sum),
            "zero_threshold": native.zero_threshold,
            "zero_count": _number(native.zero_count),
            "positive": [[index, _number(count)] for index, count in native.buckets(True)],
            "negative": [[index, _number(count)] for index, count in native.buckets(False)],
        },
    }


def _diagnostic_json(diagnostic: Diagnostic) -> dict[str, Any]:
    return {
        "code": diagnostic.code,
        "severity": diagnostic.severity.value,
        "line": diagnostic.line,
        "column": diagnostic.column,
        "message": diagnostic.message,
        "metric": diagnostic.metric,
    }


def to_json(
    result: ScrapeResult, families: Sequence[MetricFamily], matches: Sequence[str] = ()
) -> dict[str, Any]:
    """The ``promscope.scrape/v1`` document for a result (see the module docstring)."""
    negotiated = result.negotiated
    timings = result.timings
    return {
        "schema": JSON_SCHEMA,
        "target": result.target,
        "final_url": result.final_url,
        "redirects": result.redirects,
        "accept": result.accept,
        "status": result.status,
        "reason": result.reason,
        "http_version": result.http_version,
        "content_type": result.content_type,
        "content_encoding": result.content_encoding,
        "negotiation": None
        if negotiated is None
        else {
            "format": negotiated.format.value if negotiated.format else None,
            "version": negotiated.version,
            "prometheus3_fails": negotiated.fallback,
            "note": negotiated.note,
            "warnings": list(negotiated.warnings),
            "escaping": negotiated.escaping,
            "charset": negotiated.charset,
        },
        "format": result.format.value if result.format else None,
        "bytes": {
            "compressed": result.compressed_bytes,
            "uncompressed": result.uncompressed_bytes,
            "limit": result.body_size_limit,
        },
        "timings": {
            "connect": timings.connect,
            "tls": timings.tls,
            "first_byte": timings.first_byte,
            "total": timings.total,
            "parse": timings.parse,
        },
        "up": result.up,
        "up_reason": result.up_reason,
        "error": None
        if result.error is None
        else {"kind": result.error.kind.value, "message": result.error.message, "hint": result.error.hint},
        "prometheus_series": result.prometheus_series(),
        "match": list(matches),
        "samples": sum(len(f.samples) for f in families),
        "series": len({s.key() for f in families for s in f.samples}),
        "families": [
            {
                "name": family.name,
                "type": family.type.value,
                "help": family.help,
                "unit": family.unit,
                "line": family.line,
                "samples": [_sample_json(sample) for sample in family.samples],
            }
            for family in families
        ],
        "diagnostics": [_diagnostic_json(d) for d in result.diagnostics],
        "suppressed": result.parse.suppressed if result.parse is not None else 0,
    }


# -- text / OpenMetrics -----------------------------------------------------------------------------------


def _render(result: ScrapeResult, families: Sequence[MetricFamily], output: str) -> str:
    from promscope.exposition.render import render_openmetrics, render_text

    if output == "openmetrics":
        return render_openmetrics(families)
    version = (
        "1.0.0" if result.parse is not None and result.parse.extra.get("version") == "1.0.0" else "0.0.4"
    )
    return render_text(families, version=version)


# -- table and --diag --------------------------------------------------------------------------------------


def _console(stream: IO[str], color: str) -> Console:
    import shutil

    from rich.console import Console

    colored = wants_color(color, stream)
    width = shutil.get_terminal_size((120, 24)).columns
    return Console(
        file=stream,
        color_system="auto" if colored else None,
        force_terminal=colored,
        no_color=not colored,
        highlight=False,
        emoji=False,
        width=max(width, 100),
        soft_wrap=False,
    )


def _seconds(value: float | None) -> str:
    if value is None:
        return "-"
    if value < 1:
        return f"{value * 1000:.1f} ms"
    return f"{value:.2f} s"


def _quote(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def _series_name(sample: Sample) -> str:
    """``name{label="value",…}`` as the text format writes a series."""
    if not sample.labels:
        return sample.name
    labels = ",".join(f"{name}={_quote(value)}" for name, value in sample.labels)
    return f"{sample.name}{{{labels}}}"


def _print_report(
    console: Console,
    result: ScrapeResult,
    families: Sequence[MetricFamily],
    *,
    diag: bool,
    series: bool,
) -> None:
    from rich.table import Table
    from rich.text import Text

    from promscope.exposition.render import format_value

    # Summary: one line per fact.
    status = "-" if result.status is None else f"{result.status} {result.reason}".rstrip()
    summary = Text()
    summary.append("GET ", style="bold")
    summary.append(result.final_url or result.target)
    summary.append(f"  {status}", style="green" if result.status == 200 else "red")
    if result.http_version:
        summary.append(f"  {result.http_version}", style="dim")
    console.print(summary)
    if result.reachable:
        negotiated = result.negotiated
        fmt = result.format.value if result.format else "-"
        if negotiated is not None and negotiated.format is None and result.format is not None:
            fmt += " (sniffed)"
        elif negotiated is not None and negotiated.version:
            fmt += f" {negotiated.version}"
        size = format_bytes(result.uncompressed_bytes)
        if result.content_encoding and result.content_encoding.lower() not in ("identity",):
            size += f" ({result.content_encoding} {format_bytes(result.compressed_bytes)})"
        facts = Text()
        facts.append(f"Content-Type: {result.content_type or '(none)'}  ")
        facts.append(f"format: {fmt}  ")
        facts.append(f"body: {size}  ")
        facts.append(f"time: {_seconds(result.timings.total)}")
        console.print(facts)
    up = Text()
    up.append(f"up {result.up}", style="bold green" if result.ok else "bold red")
    up.append(f"  {result.up_reason}")
    console.print(up)
    if result.error is not None and result.error.hint:
        console.print(Text(f"hint: {result.error.hint}", style="dim"))

    if diag:
        _print_diag(console, result)

    if families and not (diag and not series):
        table = Table(title=None, show_edge=False, header_style="bold", pad_edge=False)
        table.add_column("family")
        table.add_column("type")
        table.add_column("series", justify="right")
        table.add_column("help", overflow="fold")
        for family in families:
            table.add_row(
                Text(family.name),
                Text(family.type.value),
                Text(str(len(family.samples))),
                Text(family.help or ""),
            )
        console.print()
        console.print(table)
    if series and families:
        table = Table(show_edge=False, header_style="bold", pad_edge=False)
        table.add_column("series", overflow="fold")
        table.add_column("value", justify="right")
        table.add_column("line", justify="right", style="dim")
        for family in families:
            for sample in family.samples:
                value = (
                    "native histogram" if sample.native_histogram is not None else format_value(sample.value)
                )
                table.add_row(Text(_series_name(sample)), Text(value), Text(str(sample.line or "")))
        console.print()
        console.print(table)

    diagnostics = result.diagnostics
    if diagnostics and not diag:
        console.print()
        _print_diagnostics(console, result, limit=20)
    if result.reachable and result.parse is not None:
        counts = {s: 0 for s in ("error", "warning", "style")}
        for diagnostic in diagnostics:
            counts[diagnostic.severity.value] += 1
        shown = sum(len(f.samples) for f in families)
        tail = Text(
            f"\n{len(families)} families, {shown} samples shown of {result.parse.sample_count}; "
            f"{counts['error']} errors, {counts['warning']} warnings, {counts['style']} style",
            style="dim",
        )
        console.print(tail)


def _print_diagnostics(console: Console, result: ScrapeResult, *, limit: int | None) -> None:
    from rich.text import Text

    from promscope.model import Format

    lines = result.body.decode("utf-8", "replace").split("\n") if result.format is not Format.PROTOBUF else []
    style = {"error": "bold red", "warning": "bold yellow", "style": "bold cyan"}
    diagnostics = result.diagnostics
    for diagnostic in diagnostics[:limit] if limit else diagnostics:
        row = Text()
        row.append(f"{diagnostic.line}:{max(diagnostic.column, 1)} ", style="dim")
        row.append(diagnostic.severity.value, style=style[diagnostic.severity.value])
        row.append(f" {diagnostic.code} ", style="bold")
        row.append(diagnostic.message)
        console.print(row)
        if lines and 0 < diagnostic.line <= len(lines):
            source = lines[diagnostic.line - 1].rstrip("\r")
            if len(source) > 200:
                source = source[:200] + "…"
            console.print(Text(f"    {source}", style="dim"))
            if diagnostic.column > 0 and diagnostic.column <= len(source) + 1:
                console.print(Text("    " + " " * (diagnostic.column - 1) + "^", style="bold"))
    if limit and len(diagnostics) > limit:
        console.print(Text(f"… {len(diagnostics) - limit} more (all with --diag or -o json)", style="dim"))
    if result.parse is not None and result.parse.suppressed:
        console.print(Text(f"… {result.parse.suppressed} more were found but not kept", style="dim"))


def _print_diag(console: Console, result: ScrapeResult) -> None:
    from rich.table import Table
    from rich.text import Text

    table = Table(show_header=False, show_edge=False, pad_edge=False, box=None)
    table.add_column(style="bold")
    table.add_column(overflow="fold")

    def row(label: str, value: str, style: str = "") -> None:
        table.add_row(Text(label), Text(value, style=style))

    row("Accept sent", result.accept)
    row("status", "-" if result.status is None else f"{result.status} {result.reason}".rstrip())
    if result.final_url and result.final_url != result.target:
        row(
            "final URL",
            f"{result.final_url} ({result.redirects} redirect{'s' if result.redirects != 1 else ''})",
        )
    negotiated = result.negotiated
    if negotiated is not None:
        row("Content-Type", result.content_type or "(none)")
        row("Prometheus 3", negotiated.note, "red" if negotiated.fallback else "")
        for warning in negotiated.warnings:
            row("", f"warning: {warning}", "yellow")
        found = result.format.value if result.format else "-"
        if result.format is not None and result.parse is not None and result.parse.extra.get("version"):
            found += f" {result.parse.extra['version']}"
        if negotiated.format is None and result.format is not None:
            found += " (sniffed from the body)"
        row("format found", found)
        encoding = result.content_encoding or "identity"
        row(
            "body",
            f"{result.compressed_bytes} bytes on the wire ({encoding}), {result.uncompressed_bytes} decoded"
            + (f", limit {result.body_size_limit}" if result.body_size_limit else ""),
        )
    timings = result.timings
    row(
        "timings",
        f"connect {_seconds(timings.connect)}, TLS {_seconds(timings.tls)}, "
        f"first byte {_seconds(timings.first_byte)}, total {_seconds(timings.total)}, "
        f"parse {_seconds(timings.parse)}",
    )
    if result.parse is not None:
        distinct = len({s.key() for f in result.families for s in f.samples})
        row(
            "samples",
            f"{result.parse.sample_count} samples, {distinct} series, {len(result.families)} families",
        )
    row("up", f"{result.up}: {result.up_reason}", "green" if result.ok else "red")
    for name, value in result.prometheus_series().items():
        text = f"{value:g}" if name != "scrape_duration_seconds" else f"{value:.6f}"
        row("", f"{name} {text}", "dim")
    console.print()
    console.print(Text("What a Prometheus 3 server would act on", style="bold underline"))
    console.print(table)
    if result.diagnostics:
        console.print()
        console.print(Text(f"Diagnostics ({len(result.diagnostics)})", style="bold underline"))
        _print_diagnostics(console, result, limit=None)
