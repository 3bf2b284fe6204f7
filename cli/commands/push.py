"""``promscope push``: push an exposition to a Pushgateway (or to promscope's), as client libraries do.

The grouping key becomes the URL path the way ``prometheus_client``'s
``push_to_gateway`` builds it: ``/metrics/job/<job>{/<label>/<value>}``, labels
sorted by name, a value with ``/`` or a space base64url-encoded under
``<label>@base64``, an empty value as ``<label>@base64/=``, anything else
percent-encoded.

The body is checked with :func:`promscope.exposition.parse` before it is
sent (``--no-validate`` skips that), so a typo is reported with its line and
column here rather than as a Pushgateway 400. Connection errors and 5xx
answers are retried with exponential backoff, a bounded number of times.

Exit codes: 0 pushed; 1 rejected (a 4xx, a 5xx after the retries, or a body
that does not validate); 2 usage; 3 the gateway could not be reached.
"""

from __future__ import annotations

import base64
import re
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import click

from cli.exit_codes import ExitCode
from cli.output import print_error

if TYPE_CHECKING:
    import httpx

    from promscope.model import ParseResult

__all__ = ["grouping_path", "push", "push_url"]

CONTENT_TYPE_TEXT = "text/plain; version=0.0.4; charset=utf-8"
CONTENT_TYPE_PROTOBUF = (
    "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited"
)

_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_MAX_BACKOFF = 5.0

_HELP = """Push an exposition to a Pushgateway, the way client libraries do.

URL is the Pushgateway (http://host:9091; a bare host:port means http).
FILE is the exposition to push (text 0.0.4 or delimited protobuf), or - for
stdin; with no FILE and stdin not a terminal, stdin is read. DELETE sends no
body.

The grouping key (--job and each --label) becomes the path
/metrics/job/<job>/<label>/<value>..., as prometheus_client's push_to_gateway
builds it (base64 for values with '/' or spaces, '=' for empty values).

\b
Examples:
  promscope push localhost:9091 metrics.prom --job backup --label instance=db1
  echo 'backup_done 1' | promscope push http://localhost:9091 --job backup
  promscope push localhost:9091 --job backup --method delete

\b
Exit codes:
  0  pushed (2xx)
  1  rejected: a 4xx (its body is printed in full), a 5xx after the retries,
     or a body that does not validate
  2  usage error
  3  the gateway could not be reached (after the retries)
"""


# --- the grouping key -------------------------------------------------------------------------------


def _escape(name: str, value: str) -> tuple[str, str]:
    if value == "":
        return f"{name}@base64", "="
    if "/" in value or " " in value:
        return f"{name}@base64", base64.urlsafe_b64encode(value.encode("utf-8")).decode("ascii")
    return name, quote(value, safe="")


def grouping_path(job: str, labels: Iterable[tuple[str, str]] = ()) -> str:
    """``/metrics/job/<job>{/<label>/<value>}``, escaped as prometheus_client escapes it."""
    parts = ["/metrics", *_escape("job", job)]
    for name, value in sorted(labels):
        parts.extend(_escape(name, value))
    return "/".join(parts)


def push_url(gateway: str, job: str, labels: Iterable[tuple[str, str]] = ()) -> str:
    """The full URL to push to: ``gateway`` (scheme added when missing) plus :func:`grouping_path`."""
    base = gateway.strip()
    if "://" not in base:
        base = f"http://{base}"
    return base.rstrip("/") + grouping_path(job, labels)


def _parse_labels(values: Sequence[str]) -> list[tuple[str, str]]:
    labels: dict[str, str] = {}
    for item in values:
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep:
            raise click.BadParameter(f"{item!r} is not NAME=VALUE", param_hint="--label")
        if not _LABEL_NAME.fullmatch(name) or name.startswith("__"):
            raise click.BadParameter(f"{name!r} is not a valid label name", param_hint="--label")
        if name == "job":
            raise click.BadParameter("give the job with --job, not --label job=…", param_hint="--label")
        if name in labels:
            raise click.BadParameter(f"label {name!r} given twice", param_hint="--label")
        labels[name] = value
    return sorted(labels.items())


# --- the command ------------------------------------------------------------------------------------


@click.command(
    "push",
    help=_HELP,
    short_help="Push an exposition to a Pushgateway (with retries and clear errors).",
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.argument("url")
@click.argument("file", required=False, metavar="[FILE|-]")
@click.option("--job", "-j", required=True, help="The job label of the grouping key.")
@click.option(
    "--label", "-l", "labels", multiple=True, metavar="NAME=VALUE", help="More grouping labels; repeatable."
)
@click.option(
    "--method",
    "-X",
    type=click.Choice(["put", "post", "delete"], case_sensitive=False),
    default="put",
    show_default=True,
    help="put replaces the group; post replaces only the families pushed; delete removes the group.",
)
@click.option(
    "--format",
    "format_",
    type=click.Choice(["auto", "text", "protobuf"]),
    default="auto",
    show_default=True,
    help="Body format (auto: .pb files and binary input are protobuf).",
)
@click.option("--gzip", "use_gzip", is_flag=True, help="Compress the body (Content-Encoding: gzip).")
@click.option(
    "--timeout",
    type=click.FloatRange(min=0.001),
    default=10.0,
    show_default=True,
    help="Seconds per attempt.",
)
@click.option(
    "--retries",
    type=click.IntRange(0, 20),
    default=2,
    show_default=True,
    help="Retries after a connection error or a 5xx, with exponential backoff.",
)
@click.option(
    "--backoff",
    type=click.FloatRange(min=0.0),
    default=0.5,
    show_default=True,
    help="Seconds before the first retry (doubling, at most 5).",
)
@click.option("--basic-auth", metavar="USER:PASSWORD", default=None, help="HTTP basic auth.")
@click.option("--bearer-token", metavar="TOKEN", default=None, help="Bearer token.")
@click.option(
    "--bearer-token-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Read the bearer token from a file.",
)
@click.option(
    "--ca-file",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="CA bundle to verify the gateway.",
)
@click.option(
    "--cert-file",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="Client certificate (PEM).",
)
@click.option(
    "--key-file",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="Client certificate key (PEM).",
)
@click.option("--insecure", "-k", is_flag=True, help="Do not verify the gateway's TLS certificate.")
@click.option("--header", "-H", "headers", multiple=True, metavar="NAME: VALUE", help="Extra request header.")
@click.option("--no-validate", is_flag=True, help="Send the body without checking it first.")
@click.option("--dry-run", is_flag=True, help="Print what would be sent, send nothing.")
@click.option(
    "--output",
    "-o",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="Result format.",
)
@click.pass_context
def push(
    ctx: click.Context,
    url: str,
    file: str | None,
    job: str,
    labels: tuple[str, ...],
    method: str,
    format_: str,
    use_gzip: bool,
    timeout: float,
    retries: int,
    backoff: float,
    basic_auth: str | None,
    bearer_token: str | None,
    bearer_token_file: Path | None,
    ca_file: str | None,
    cert_file: str | None,
    key_file: str | None,
    insecure: bool,
    headers: tuple[str, ...],
    no_validate: bool,
    dry_run: bool,
    output: str,
) -> None:
    method = method.upper()
    grouping = _parse_labels(labels)
    if not job:
        raise click.BadParameter("the job must not be empty", param_hint="--job")
    target = push_url(url, job, grouping)
    if not target.startswith(("http://", "https://")):
        raise click.BadParameter(f"{url!r}: only http:// and https:// gateways", param_hint="URL")
    if basic_auth is not None and ":" not in basic_auth:
        raise click.BadParameter("use USER:PASSWORD", param_hint="--basic-auth")
    if bearer_token and bearer_token_file:
        raise click.UsageError("give --bearer-token or --bearer-token-file, not both")
    if bool(cert_file) != bool(key_file):
        raise click.UsageError("--cert-file and --key-file go together")
    extra_headers = _parse_headers(headers)

    body = b""
    content_type: str | None = None
    series = 0
    if method == "DELETE":
        if file is not None:
            raise click.UsageError("DELETE sends no body; drop FILE")
    else:
        body, source_name = _read_body(ctx, file)
        fmt = _body_format(format_, body, source_name)
        content_type = CONTENT_TYPE_PROTOBUF if fmt == "protobuf" else CONTENT_TYPE_TEXT
        if not no_validate:
            result = _validate(body, fmt)
            series = result.sample_count
            if _report_problems(result, source_name):
                print_error(
                    f"{source_name} does not validate; nothing was pushed",
                    hint="fix the lines above, or send it anyway with --no-validate",
                )
                ctx.exit(ExitCode.PROBLEMS)

    request_headers: dict[str, str] = {"User-Agent": f"promscope-push/{_version()}"}
    if content_type:
        request_headers["Content-Type"] = content_type
    if use_gzip and body:
        import gzip

        body = gzip.compress(body)
        request_headers["Content-Encoding"] = "gzip"
    token = bearer_token
    if bearer_token_file is not None:
        token = bearer_token_file.read_text(encoding="utf-8").strip()
    if token:
        request_headers["Authorization"] = f"Bearer {token}"
    request_headers.update(extra_headers)

    if dry_run:
        _print_dry_run(method, target, request_headers, body, output)
        ctx.exit(ExitCode.OK)

    import httpx

    auth: tuple[str, str] | None = None
    if basic_auth is not None:
        user, _, password = basic_auth.partition(":")
        auth = (user, password)
    verify: Any = True
    if insecure:
        verify = False
    elif ca_file or cert_file:
        import ssl

        context = ssl.create_default_context(cafile=ca_file)
        if cert_file and key_file:
            context.load_cert_chain(cert_file, key_file)
        verify = context
    with httpx.Client(timeout=timeout, verify=verify, auth=auth, follow_redirects=False) as client:
        code = _send(client, method, target, request_headers, body, retries, backoff, output, series)
    ctx.exit(code)


def _version() -> str:
    from promscope import __version__

    return __version__


def _parse_headers(values: Sequence[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in values:
        name, sep, value = item.partition(":")
        if not sep or not name.strip():
            raise click.BadParameter(f"{item!r} is not 'Name: value'", param_hint="--header")
        out[name.strip()] = value.strip()
    return out


def _read_body(ctx: click.Context, file: str | None) -> tuple[bytes, str]:
    from promscope.errors import InputError

    if file is None or file == "-":
        if file is None and sys.stdin.isatty():
            raise click.UsageError(
                "nothing to push: give a FILE, or pipe the exposition in (or use - for stdin)"
            )
        return sys.stdin.buffer.read(), "<stdin>"
    path = Path(file)
    try:
        return path.read_bytes(), file
    except OSError as exc:
        raise InputError(exc.strerror or str(exc), path=file, hint="check the path") from exc


def _body_format(choice: str, body: bytes, source_name: str) -> str:
    if choice != "auto":
        return choice
    if source_name.endswith(".pb"):
        return "protobuf"
    from promscope.exposition import resolve_format
    from promscope.model import Format

    return "protobuf" if resolve_format(body) is Format.PROTOBUF else "text"


def _validate(body: bytes, fmt: str) -> ParseResult:
    from promscope.exposition import parse

    return parse(body, fmt)


def _report_problems(result: ParseResult, source_name: str) -> bool:
    """Print every error (and pushed timestamps, which the Pushgateway refuses); True when any."""
    from promscope.model import Severity

    problems: list[tuple[int, int, str, str]] = [
        (d.line, d.column, d.code, d.message) for d in result.diagnostics if d.severity is Severity.ERROR
    ]
    for family in result.families:
        for sample in family.samples:
            if sample.timestamp is not None:
                problems.append(
                    (
                        sample.line,
                        0,
                        "PUSH-TIMESTAMP",
                        f"{sample.name} carries a timestamp; the Pushgateway refuses it",
                    )
                )
    problems.sort()
    for line, column, code, message in problems:
        where = f"{source_name}:{line}:{column}" if line else source_name
        sys.stderr.write(f"{where}: {code} {message}\n")
    return bool(problems)


def _print_dry_run(method: str, target: str, headers: dict[str, str], body: bytes, output: str) -> None:
    if output == "json":
        import json

        shown = {k: ("<redacted>" if k.lower() == "authorization" else v) for k, v in headers.items()}
        sys.stdout.write(
            json.dumps(
                {"method": method, "url": target, "headers": shown, "body_bytes": len(body), "sent": False}
            )
            + "\n"
        )
        return
    sys.stdout.write(f"{method} {target}\n")
    for name, value in headers.items():
        shown_value = "<redacted>" if name.lower() == "authorization" else value
        sys.stdout.write(f"{name}: {shown_value}\n")
    sys.stdout.write(f"({len(body)} body bytes; not sent: --dry-run)\n")


_RETRYABLE = (
    "ConnectError",
    "ConnectTimeout",
    "ReadError",
    "WriteError",
    "RemoteProtocolError",
    "ReadTimeout",
)


def _send(
    client: httpx.Client,
    method: str,
    target: str,
    headers: dict[str, str],
    body: bytes,
    retries: int,
    backoff: float,
    output: str,
    series: int,
) -> int:
    import httpx

    attempt = 0
    response: httpx.Response | None = None
    failure: str | None = None
    started = time.monotonic()
    while True:
        attempt += 1
        response = None
        failure = None
        try:
            response = client.request(method, target, headers=headers, content=body or None)
        except httpx.TransportError as exc:
            failure = _describe_transport_error(exc)
            if type(exc).__name__ not in _RETRYABLE and not isinstance(exc, httpx.TimeoutException):
                break
        if response is not None and response.status_code < 500:
            break
        if attempt > retries:
            break
        wait = min(_MAX_BACKOFF, backoff * (2 ** (attempt - 1)))
        if response is not None:
            reason = f"{response.status_code} {response.reason_phrase}"
        else:
            reason = failure or "an error"
        sys.stderr.write(
            f"promscope: retrying in {wait:g}s after {reason} (attempt {attempt} of {retries + 1})\n"
        )
        if wait:
            time.sleep(wait)
    elapsed = time.monotonic() - started
    return _report(method, target, response, failure, attempt, elapsed, len(body), series, output)


def _describe_transport_error(exc: Exception) -> str:
    text = str(exc).strip() or type(exc).__name__
    return f"{type(exc).__name__}: {text}"


def _report(
    method: str,
    target: str,
    response: httpx.Response | None,
    failure: str | None,
    attempts: int,
    elapsed: float,
    body_bytes: int,
    series: int,
    output: str,
) -> int:
    if response is None:
        code = ExitCode.UNREADABLE
    elif response.status_code < 300:
        code = ExitCode.OK
    else:
        code = ExitCode.PROBLEMS
    if output == "json":
        import json

        sys.stdout.write(
            json.dumps(
                {
                    "method": method,
                    "url": target,
                    "ok": code == ExitCode.OK,
                    "status": response.status_code if response is not None else None,
                    "reason": response.reason_phrase if response is not None else None,
                    "body": response.text if response is not None else None,
                    "error": failure,
                    "attempts": attempts,
                    "elapsed_seconds": round(elapsed, 6),
                    "body_bytes": body_bytes,
                    "series": series,
                }
            )
            + "\n"
        )
    elif response is not None:
        plural = "s" if attempts != 1 else ""
        facts = (
            f"{body_bytes} bytes" + (f", {series} series" if series else "") + f", {attempts} attempt{plural}"
        )
        sys.stdout.write(f"{method} {target}: {response.status_code} {response.reason_phrase} ({facts})\n")
        text = response.text
        if text:
            sys.stdout.write(text if text.endswith("\n") else text + "\n")
    if response is None:
        print_error(
            f"cannot reach {target}: {failure}",
            hint="is the Pushgateway running there? check the URL, or raise --timeout/--retries",
        )
    elif response.status_code >= 500:
        print_error(f"the gateway failed the push: {response.status_code} {response.reason_phrase}")
    elif response.status_code >= 300:
        print_error(
            f"the gateway rejected the push: {response.status_code} {response.reason_phrase}",
            hint="its answer is printed above" if response.text else "",
        )
    return int(code)
