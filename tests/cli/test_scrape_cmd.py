"""``promscope scrape`` end to end against a real server on 127.0.0.1: outputs, flags, exit codes."""

from __future__ import annotations

import base64
import gzip
import json
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from cli.commands.scrape import JSON_SCHEMA, parse_byte_size, parse_duration, scrape
from cli.exit_codes import ExitCode
from cli.main import cli
from promscope.exposition import parse
from promscope.exposition.negotiate import ACCEPT_PROMETHEUS3, ACCEPT_TEXT

REPO = Path(__file__).resolve().parents[2]
TEXT_CT = "text/plain; version=0.0.4; charset=utf-8"
CLEAN = (
    b"# HELP http_requests_total Requests.\n# TYPE http_requests_total counter\n"
    b'http_requests_total{code="200",method="GET"} 10\n'
    b'http_requests_total{code="500",method="GET"} 2\n'
    b"# HELP up_gauge Up.\n# TYPE up_gauge gauge\nup_gauge 1\n"
)
BROKEN = b'# TYPE a_total counter\na_total{path="/x" 1\nb 2\n'
DUPLICATE = b"# TYPE d gauge\nd 1\nd 2\n"


@dataclass
class Reply:
    body: bytes = CLEAN
    status: int = 200
    headers: dict[str, str] = field(default_factory=lambda: {"Content-Type": TEXT_CT})
    auth: str | None = None


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        self.server.seen.append(dict(self.headers.items()))
        reply = self.server.replies.get(self.path)
        if reply is None:
            reply = Reply(body=b"not found\n", status=404, headers={"Content-Type": "text/plain"})
        if reply.auth is not None and self.headers.get("Authorization") != reply.auth:
            reply = Reply(body=b"", status=401, headers={})
        self.send_response(reply.status)
        for key, value in reply.headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(reply.body)))
        self.end_headers()
        self.wfile.write(reply.body)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.replies: dict[str, Reply] = {}
        self.seen: list[dict[str, str]] = []

    def url(self, path: str = "/metrics") -> str:
        return f"http://127.0.0.1:{self.server_address[1]}{path}"


@pytest.fixture
def server() -> Iterator[_Server]:
    running = _Server()
    running.replies["/metrics"] = Reply()
    thread = threading.Thread(target=running.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield running
    running.shutdown()
    running.server_close()


@pytest.fixture(autouse=True)
def _plain_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("NO_COLOR", "FORCE_COLOR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("COLUMNS", "140")


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, ["scrape", *args])


# -- outputs -------------------------------------------------------------------------------------------


def test_table_output_shows_summary_families_and_up(server: _Server) -> None:
    result = run(server.url())
    assert result.exit_code == ExitCode.OK, result.output
    out = result.stdout
    assert "200 OK" in out
    assert "up 1" in out and "would ingest 3 samples" in out
    assert "http_requests_total" in out and "counter" in out
    assert "format: text 0.0.4" in out
    assert result.stderr == ""
    assert "\x1b[" not in out  # no colour when not a terminal
    assert server.seen[0]["Accept"] == ACCEPT_PROMETHEUS3


def test_the_command_object_runs_on_its_own(server: _Server) -> None:
    result = CliRunner().invoke(scrape, [server.url(), "-o", "json"])
    assert result.exit_code == 0
    assert json.loads(result.stdout)["up"] == 1


def test_json_output_follows_the_documented_schema(server: _Server) -> None:
    result = run(server.url(), "-o", "json")
    assert result.exit_code == ExitCode.OK
    doc = json.loads(result.stdout)
    assert doc["schema"] == JSON_SCHEMA
    assert set(doc) >= {
        "target",
        "final_url",
        "redirects",
        "accept",
        "status",
        "reason",
        "http_version",
        "content_type",
        "content_encoding",
        "negotiation",
        "format",
        "bytes",
        "timings",
        "up",
        "up_reason",
        "error",
        "prometheus_series",
        "match",
        "samples",
        "series",
        "families",
        "diagnostics",
        "suppressed",
    }
    assert doc["status"] == 200 and doc["up"] == 1 and doc["error"] is None
    assert doc["format"] == "text"
    assert doc["negotiation"]["version"] == "0.0.4"
    assert doc["negotiation"]["prometheus3_fails"] is False
    assert doc["bytes"]["uncompressed"] == len(CLEAN)
    assert set(doc["timings"]) == {"connect", "tls", "first_byte", "total", "parse"}
    assert doc["prometheus_series"]["scrape_samples_scraped"] == 3
    assert doc["samples"] == 3 and doc["series"] == 3
    family = doc["families"][0]
    assert family["name"] == "http_requests_total"
    assert family["samples"][0]["labels"] == {"code": "200", "method": "GET"}
    assert family["samples"][0]["value"] == 10


def test_json_encodes_non_finite_values_as_strings(server: _Server) -> None:
    server.replies["/metrics"] = Reply(body=b"a NaN\nb +Inf\nc -Inf\n")
    doc = json.loads(run(server.url(), "-o", "json").stdout)
    values = [f["samples"][0]["value"] for f in doc["families"]]
    assert values == ["NaN", "+Inf", "-Inf"]


def test_text_output_re_renders_the_families(server: _Server) -> None:
    result = run(server.url(), "-o", "text")
    assert result.exit_code == ExitCode.OK
    reparsed = parse(result.stdout.encode(), "text")
    original = parse(CLEAN, "text")
    assert [f.name for f in reparsed.families] == [f.name for f in original.families]
    assert all(a.equivalent(b) for a, b in zip(reparsed.families, original.families, strict=True))


def test_openmetrics_output_ends_with_eof(server: _Server) -> None:
    result = run(server.url(), "-o", "openmetrics")
    assert result.exit_code == ExitCode.OK
    assert result.stdout.endswith("# EOF\n")
    assert "# TYPE http_requests counter" in result.stdout


def test_diag_shows_what_prometheus_acts_on_and_every_diagnostic(server: _Server) -> None:
    server.replies["/metrics"] = Reply(body=BROKEN)
    result = run(server.url(), "--diag")
    assert result.exit_code == ExitCode.PROBLEMS
    out = result.stdout
    for fragment in (
        "What a Prometheus 3 server would act on",
        "Accept sent",
        ACCEPT_PROMETHEUS3[:60],
        "Prometheus 3 parses it with the text parser",
        "format found",
        "bytes on the wire",
        "first byte",
        "up 0",
        "scrape_samples_scraped",
        "Diagnostics",
        "2:",
        "PS-201",
        'a_total{path="/x" 1',
    ):
        assert fragment in out, fragment
    assert "^" in out  # a caret under the column


def test_diag_with_text_output_goes_to_stderr(server: _Server) -> None:
    result = run(server.url(), "-o", "text", "--diag")
    assert result.exit_code == ExitCode.OK
    assert "Accept sent" in result.stderr
    assert "Accept sent" not in result.stdout
    assert parse(result.stdout.encode(), "text").errors() == []


def test_match_filters_series(server: _Server) -> None:
    result = run(server.url(), "--match", 'http_*{code=~"5.."}', "-o", "json")
    doc = json.loads(result.stdout)
    assert doc["match"] == ['http_*{code=~"5.."}']
    assert doc["samples"] == 1
    assert doc["families"][0]["samples"][0]["labels"]["code"] == "500"
    table = run(server.url(), "-m", "up_gauge", "-m", 'http_requests_total{code="200"}')
    assert 'http_requests_total{code="200",method="GET"}' in table.stdout
    assert "up_gauge" in table.stdout
    assert 'code="500"' not in table.stdout


def test_bad_selector_is_a_usage_error_naming_the_column(server: _Server) -> None:
    result = run(server.url(), "--match", "foo{code}")
    assert result.exit_code == ExitCode.USAGE
    assert "column 9" in result.stderr
    assert "Traceback" not in result.output
    assert server.seen == []  # nothing is fetched when the command line is wrong


# -- exit codes -------------------------------------------------------------------------------------------


def test_unreachable_target_exits_3_with_one_line() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = run(f"http://127.0.0.1:{port}/metrics")
    assert result.exit_code == ExitCode.UNREADABLE
    lines = result.stderr.strip().splitlines()
    assert lines[0].startswith("promscope: error: ") and "refused" in lines[0]
    assert lines[1].startswith("hint: ")
    assert "Traceback" not in result.output


def test_unreachable_json_still_prints_the_result() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = run(f"http://127.0.0.1:{port}/metrics", "-o", "json")
    assert result.exit_code == ExitCode.UNREADABLE
    doc = json.loads(result.stdout)
    assert doc["error"]["kind"] == "refused"
    assert doc["status"] is None and doc["up"] == 0


def test_http_error_exits_1(server: _Server) -> None:
    result = run(server.url("/nope"))
    assert result.exit_code == ExitCode.PROBLEMS
    assert "up 0" in result.stdout and "404" in result.stdout
    assert "metrics path" in result.stdout


def test_parse_error_exits_1(server: _Server) -> None:
    server.replies["/metrics"] = Reply(body=BROKEN)
    result = run(server.url())
    assert result.exit_code == ExitCode.PROBLEMS
    assert "PS-201" in result.stdout


@pytest.mark.parametrize(
    ("fail_on", "code"),
    [("error", ExitCode.PROBLEMS), ("warning", ExitCode.PROBLEMS), ("never", ExitCode.OK)],
)
def test_fail_on_decides_for_errors_prometheus_tolerates(
    server: _Server, fail_on: str, code: ExitCode
) -> None:
    server.replies["/metrics"] = Reply(body=DUPLICATE)
    result = run(server.url(), "--fail-on", fail_on)
    assert "up 1" in result.stdout
    assert result.exit_code == code


def test_missing_content_type_exits_1_unless_a_fallback_is_given(server: _Server) -> None:
    server.replies["/metrics"] = Reply(headers={})
    result = run(server.url(), "-o", "json")
    assert result.exit_code == ExitCode.PROBLEMS
    doc = json.loads(result.stdout)
    assert doc["error"]["kind"] == "content_type"
    assert doc["negotiation"]["prometheus3_fails"] is True
    assert "fallback_scrape_protocol" in result.stderr
    rescued = run(server.url(), "--fallback-protocol", "PrometheusText0.0.4")
    assert rescued.exit_code == ExitCode.OK


# -- request flags ---------------------------------------------------------------------------------------


def test_accept_compression_and_headers_flags(server: _Server) -> None:
    run(server.url(), "--accept", "text", "--no-gzip", "-H", "X-Scope-OrgID: team-a", "--timeout", "2.5")
    seen = server.seen[-1]
    assert seen["Accept"] == ACCEPT_TEXT
    assert seen["Accept-Encoding"] == "identity"
    assert seen["X-Scope-OrgID"] == "team-a"
    assert seen["X-Prometheus-Scrape-Timeout-Seconds"] == "2.5"
    run(server.url(), "--accept", "text/plain;version=0.0.4", "--no-compression")
    assert server.seen[-1]["Accept"] == "text/plain;version=0.0.4"


def test_gzip_body_sizes_in_json(server: _Server) -> None:
    packed = gzip.compress(CLEAN)
    server.replies["/metrics"] = Reply(
        body=packed, headers={"Content-Type": TEXT_CT, "Content-Encoding": "gzip"}
    )
    doc = json.loads(run(server.url(), "-o", "json").stdout)
    assert doc["bytes"]["compressed"] == len(packed)
    assert doc["bytes"]["uncompressed"] == len(CLEAN)
    assert doc["content_encoding"] == "gzip"


def test_body_size_limit_flag(server: _Server) -> None:
    result = run(server.url(), "--body-size-limit", "64B", "-o", "json")
    assert result.exit_code == ExitCode.PROBLEMS
    doc = json.loads(result.stdout)
    assert doc["error"]["kind"] == "body_too_large"
    assert doc["prometheus_series"]["scrape_body_size_bytes"] == -1


def test_basic_auth_flags(server: _Server, tmp_path: Path) -> None:
    wanted = "Basic " + base64.b64encode(b"prom:pw").decode()
    server.replies["/metrics"] = Reply(auth=wanted)
    assert run(server.url()).exit_code == ExitCode.PROBLEMS
    assert run(server.url(), "--basic-auth", "prom:pw").exit_code == ExitCode.OK
    password = tmp_path / "pw"
    password.write_text("pw\n")
    assert run(server.url(), "--username", "prom", "--password-file", str(password)).exit_code == ExitCode.OK


def test_bearer_token_flags(server: _Server, tmp_path: Path) -> None:
    server.replies["/metrics"] = Reply(auth="Bearer t0k")
    assert run(server.url(), "--bearer-token", "t0k").exit_code == ExitCode.OK
    token = tmp_path / "token"
    token.write_text("t0k\n")
    assert run(server.url(), "--bearer-token-file", str(token)).exit_code == ExitCode.OK


def test_url_without_scheme_means_http(server: _Server) -> None:
    result = run(server.url().removeprefix("http://"))
    assert result.exit_code == ExitCode.OK


def test_redirect_flags(server: _Server) -> None:
    server.replies["/old"] = Reply(status=302, headers={"Location": "/metrics"}, body=b"")
    assert run(server.url("/old")).exit_code == ExitCode.OK
    refused = run(server.url("/old"), "--no-follow-redirects")
    assert refused.exit_code == ExitCode.PROBLEMS
    assert "--follow-redirects" in refused.stdout


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--timeout", "soon"], "not a duration"),
        (["--timeout", "0"], "positive"),
        (["--body-size-limit", "lots"], "not a size"),
        (["--basic-auth", "nocolon"], "USER:PASSWORD"),
        (["--basic-auth", "a:b", "--bearer-token", "t"], "mutually exclusive"),
        (["--basic-auth", "a:b", "--username", "c"], "not both"),
        (["--password-file", "/nonexistent"], "needs --username"),
        (["--username", "u", "--password-file", "/nonexistent/pw"], "password file"),
        (["--bearer-token-file", "/nonexistent/token"], "bearer token file"),
        (["-H", "no-colon-here"], "'Name: value'"),
        (["-H", "Host: evil"], "cannot be overridden"),
        (["--accept", "yaml"], "unknown Accept choice"),
        (["--output", "xml"], "xml"),
    ],
)
def test_usage_errors_exit_2_without_a_request(server: _Server, args: list[str], fragment: str) -> None:
    result = run(server.url(), *args)
    assert result.exit_code == ExitCode.USAGE, result.output
    assert fragment in result.stderr
    assert "Traceback" not in result.output
    assert server.seen == []


def test_tls_files_are_checked_before_the_request(tmp_path: Path) -> None:
    result = run("https://127.0.0.1:1/metrics", "--ca-file", str(tmp_path / "missing.pem"))
    assert result.exit_code == ExitCode.USAGE
    assert "CA file" in result.stderr


def test_help_lists_the_flags() -> None:
    out = run("--help").stdout
    for flag in (
        "--accept",
        "--no-gzip",
        "--timeout",
        "--body-size-limit",
        "--basic-auth",
        "--bearer-token-file",
        "--header",
        "--ca-file",
        "--insecure",
        "--match",
        "--diag",
        "--fail-on",
        "Exit codes",
    ):
        assert flag in out, flag


# -- units and imports ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("0", 0),
        ("1024", 1024),
        ("10MB", 10 << 20),
        ("10MiB", 10 << 20),
        ("512KiB", 512 << 10),
        ("512kb", 512 << 10),
        ("1.5GB", 3 << 29),
        ("64B", 64),
    ],
)
def test_parse_byte_size(text: str, size: int) -> None:
    assert parse_byte_size(text) == size


@pytest.mark.parametrize("text", ["", "MB", "10XB", "-1", "10 i", "1iB"])
def test_parse_byte_size_refuses(text: str) -> None:
    with pytest.raises(ValueError):
        parse_byte_size(text)


@pytest.mark.parametrize(
    ("text", "seconds"), [("10s", 10.0), ("500ms", 0.5), ("1m30s", 90.0), ("2.5", 2.5), ("1h", 3600.0)]
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "s", "10x", "-1s", "0s", "1m 30s", "nan"])
def test_parse_duration_refuses(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


def test_importing_the_command_loads_neither_httpx_nor_rich() -> None:
    code = (
        "import sys; import cli.commands.scrape; "
        "bad = [m for m in ('httpx', 'rich', 'textual') if m in sys.modules]; "
        "print(','.join(bad)); sys.exit(1 if bad else 0)"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
