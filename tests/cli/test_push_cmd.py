"""``promscope push``: grouping keys as prometheus_client builds them, validation, retries, exit codes."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from click.testing import CliRunner
from prometheus_client import CollectorRegistry, Gauge, push_to_gateway

from cli.commands.push import grouping_path, push, push_url
from promscope.receive.http import Auth, HttpServer, Request, Response, Route, ServerTLS

if TYPE_CHECKING:  # the class lives in tests/conftest.py, which pytest loads itself
    from tests.conftest import LoopThread


class Gateway:
    """A stand-in gateway on a real port: records requests, answers from a script."""

    def __init__(self, loop: LoopThread, answers: list[Response] | None = None, **kwargs: Any) -> None:
        self.requests: list[Request] = []
        self.answers = list(answers or [])
        methods = frozenset({"PUT", "POST", "DELETE"})
        self.server = HttpServer([Route(methods, "/metrics/", self.handle, prefix=True)], **kwargs)
        self.loop = loop
        loop.run(self.server.start())

    async def handle(self, request: Request) -> Response:
        self.requests.append(request)
        return self.answers.pop(0) if self.answers else Response(200)

    @property
    def url(self) -> str:
        return self.server.url


@pytest.fixture
def gateway(loop_thread: LoopThread) -> Iterator[Callable[..., Gateway]]:
    loop = loop_thread
    made: list[Gateway] = []

    def make(answers: list[Response] | None = None, **kwargs: Any) -> Gateway:
        made.append(Gateway(loop, answers, **kwargs))
        return made[-1]

    try:
        yield make
    finally:
        for gw in made:
            loop.run(gw.server.stop())


def run(*args: str, stdin: bytes | None = None) -> Any:
    return CliRunner().invoke(push, list(args), input=stdin, catch_exceptions=False)


GOOD = b"# TYPE backup_done gauge\nbackup_done 1\nbackup_bytes 42\n"


# --- grouping keys --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("job", "labels", "path"),
    [
        ("backup", [], "/metrics/job/backup"),
        ("backup", [("instance", "db1")], "/metrics/job/backup/instance/db1"),
        ("a/b", [], f"/metrics/job@base64/{base64.urlsafe_b64encode(b'a/b').decode()}"),
        (
            "backup",
            [("path", "/var/lib")],
            f"/metrics/job/backup/path@base64/{base64.urlsafe_b64encode(b'/var/lib').decode()}",
        ),
        ("backup", [("instance", "")], "/metrics/job/backup/instance@base64/="),
        ("backup", [("z", "1"), ("a", "2")], "/metrics/job/backup/a/2/z/1"),
        ("backup", [("v", "a+b=c?d%")], "/metrics/job/backup/v/a%2Bb%3Dc%3Fd%25"),
        ("backup", [("v", "ü")], "/metrics/job/backup/v/%C3%BC"),
    ],
)
def test_grouping_path(job: str, labels: list[tuple[str, str]], path: str) -> None:
    assert grouping_path(job, labels) == path


@pytest.mark.parametrize(
    "grouping",
    [
        {},
        {"instance": "db1"},
        {"instance": ""},
        {"path": "/a/b", "zone": "eu west"},
        {"v": "a+b=c?d%&#"},
        {"v": "ü~-._"},
    ],
)
def test_grouping_path_matches_prometheus_client(grouping: dict[str, str]) -> None:
    seen: list[str] = []

    def handler(url: str, method: str, timeout: Any, headers: Any, data: bytes) -> Callable[[], None]:
        seen.append(url)
        return lambda: None

    registry = CollectorRegistry()
    Gauge("g", "help", registry=registry).set(1)
    push_to_gateway("http://gw:9091", job="my/job", registry=registry, grouping_key=grouping, handler=handler)
    assert push_url("gw:9091", "my/job", grouping.items()) == seen[0]


# --- pushing ---------------------------------------------------------------------------------------


def test_push_a_file(gateway: Callable[..., Gateway], tmp_path: Path) -> None:
    gw = gateway()
    metrics = tmp_path / "metrics.prom"
    metrics.write_bytes(GOOD)
    result = run(gw.url, str(metrics), "--job", "backup", "--label", "instance=db1")
    assert result.exit_code == 0, result.output
    (request,) = gw.requests
    assert request.method == "PUT"
    assert request.target == "/metrics/job/backup/instance/db1"
    assert request.body == GOOD
    assert request.content_type == "text/plain; version=0.0.4; charset=utf-8"
    assert request.user_agent is not None and request.user_agent.startswith("promscope-push/")
    assert (
        f"PUT {gw.url}/metrics/job/backup/instance/db1: 200 OK ({len(GOOD)} bytes, 2 series, 1 attempt)"
        in (result.stdout)
    )


def test_push_stdin_post_gzip(gateway: Callable[..., Gateway]) -> None:
    gw = gateway()
    result = run(gw.url, "-", "--job", "j", "--method", "post", "--gzip", stdin=GOOD)
    assert result.exit_code == 0, result.output
    (request,) = gw.requests
    assert request.method == "POST"
    assert request.content_encoding == "gzip"
    assert request.body == GOOD
    assert request.wire_bytes != len(GOOD)


def test_delete(gateway: Callable[..., Gateway]) -> None:
    gw = gateway([Response(202)])
    result = run(gw.url, "--job", "j", "-X", "delete")
    assert result.exit_code == 0, result.output
    assert gw.requests[0].method == "DELETE" and gw.requests[0].body == b""
    assert run(gw.url, "somefile", "--job", "j", "-X", "delete").exit_code == 2


def test_invalid_body_is_not_sent(gateway: Callable[..., Gateway]) -> None:
    gw = gateway()
    body = b"good 1\nbad{ 1\nworse 1 2 3 4\n"
    result = run(gw.url, "-", "--job", "j", stdin=body)
    assert result.exit_code == 1
    assert gw.requests == []
    assert "<stdin>:2:" in result.stderr and "<stdin>:3:" in result.stderr
    assert "does not validate; nothing was pushed" in result.stderr
    assert "--no-validate" in result.stderr


def test_timestamps_are_refused_locally(gateway: Callable[..., Gateway]) -> None:
    gw = gateway()
    result = run(gw.url, "-", "--job", "j", stdin=b"a 1 1700000000000\n")
    assert result.exit_code == 1
    assert "<stdin>:1:0: PUSH-TIMESTAMP a carries a timestamp" in result.stderr
    assert gw.requests == []


def test_rejection_prints_the_whole_answer(gateway: Callable[..., Gateway]) -> None:
    answer = "pushed metrics are invalid:\nline 1 column 5: bad\nline 2 column 1: worse\n"
    gw = gateway([Response.text(400, answer)])
    result = run(gw.url, "-", "--job", "j", "--no-validate", stdin=b"x{ 1\n")
    assert result.exit_code == 1
    assert answer in result.stdout
    assert "the gateway rejected the push: 400 Bad Request" in result.stderr


def test_retries_on_5xx_then_succeeds(gateway: Callable[..., Gateway]) -> None:
    gw = gateway([Response(503), Response(500), Response(200)])
    result = run(gw.url, "-", "--job", "j", "--retries", "2", "--backoff", "0", stdin=GOOD)
    assert result.exit_code == 0, result.output
    assert len(gw.requests) == 3
    assert result.stderr.count("retrying in 0s") == 2
    assert "3 attempts" in result.stdout


def test_gives_up_after_the_retries(gateway: Callable[..., Gateway]) -> None:
    gw = gateway([Response(503)] * 5)
    result = run(gw.url, "-", "--job", "j", "--retries", "1", "--backoff", "0", "-o", "json", stdin=GOOD)
    assert result.exit_code == 1
    assert len(gw.requests) == 2
    outcome = json.loads(result.stdout)
    assert outcome["status"] == 503 and outcome["attempts"] == 2 and outcome["ok"] is False


def test_unreachable_is_exit_3(free_port: Callable[[], int]) -> None:
    port = free_port()
    result = run(f"127.0.0.1:{port}", "-", "--job", "j", "--retries", "1", "--backoff", "0", stdin=GOOD)
    assert result.exit_code == 3
    assert f"cannot reach http://127.0.0.1:{port}/metrics/job/j: ConnectError" in result.stderr
    assert "retrying" in result.stderr


def test_json_output(gateway: Callable[..., Gateway]) -> None:
    gw = gateway()
    result = run(gw.url, "-", "--job", "j", "-o", "json", stdin=GOOD)
    outcome = json.loads(result.stdout)
    assert outcome == {
        "method": "PUT",
        "url": f"{gw.url}/metrics/job/j",
        "ok": True,
        "status": 200,
        "reason": "OK",
        "body": "",
        "error": None,
        "attempts": 1,
        "elapsed_seconds": outcome["elapsed_seconds"],
        "body_bytes": len(GOOD),
        "series": 2,
    }


def test_auth(gateway: Callable[..., Gateway], tmp_path: Path) -> None:
    gw = gateway(auth=Auth(basic=(("pusher", "pw"),), bearer_tokens=("tok",)))
    assert run(gw.url, "-", "--job", "j", stdin=GOOD).exit_code == 1
    assert run(gw.url, "-", "--job", "j", "--basic-auth", "pusher:pw", stdin=GOOD).exit_code == 0
    assert run(gw.url, "-", "--job", "j", "--bearer-token", "tok", stdin=GOOD).exit_code == 0
    token_file = tmp_path / "token"
    token_file.write_text("tok\n")
    assert run(gw.url, "-", "--job", "j", "--bearer-token-file", str(token_file), stdin=GOOD).exit_code == 0


def test_tls_with_ca_file(gateway: Callable[..., Gateway], tls_files: Any) -> None:
    gw = gateway(tls=ServerTLS(str(tls_files.server_cert), str(tls_files.server_key)))
    assert gw.url.startswith("https://")
    result = run(gw.url, "-", "--job", "j", "--ca-file", str(tls_files.ca_cert), stdin=GOOD)
    assert result.exit_code == 0, result.output
    assert run(gw.url, "-", "--job", "j", "--insecure", stdin=GOOD).exit_code == 0
    refused = run(gw.url, "-", "--job", "j", "--retries", "0", stdin=GOOD)
    assert refused.exit_code == 3
    assert "CERTIFICATE_VERIFY_FAILED" in refused.stderr


def test_tls_client_certificate(gateway: Callable[..., Gateway], tls_files: Any) -> None:
    tls = ServerTLS(str(tls_files.server_cert), str(tls_files.server_key), str(tls_files.ca_cert))
    gw = gateway(tls=tls)
    args = [gw.url, "-", "--job", "j", "--ca-file", str(tls_files.ca_cert)]
    assert run(*args, "--retries", "0", stdin=GOOD).exit_code == 3
    client = ["--cert-file", str(tls_files.client_cert), "--key-file", str(tls_files.client_key)]
    with_cert = run(*args, *client, stdin=GOOD)
    assert with_cert.exit_code == 0, with_cert.output


def test_protobuf_body_detected(gateway: Callable[..., Gateway]) -> None:
    from promscope.exposition import parse
    from promscope.exposition.protobuf import encode_protobuf

    gw = gateway()
    body = encode_protobuf(parse(GOOD).families)
    result = run(gw.url, "-", "--job", "j", stdin=body)
    assert result.exit_code == 0, result.output
    assert gw.requests[0].content_type == (
        "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited"
    )


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--label", "instance"], "is not NAME=VALUE"),
        (["--label", "1x=2"], "not a valid label name"),
        (["--label", "job=x"], "give the job with --job"),
        (["--label", "a=1", "--label", "a=2"], "given twice"),
        (["--basic-auth", "nocolon"], "USER:PASSWORD"),
        (["--cert-file", __file__], "go together"),
        (["--header", "novalue"], "is not 'Name: value'"),
    ],
)
def test_usage_errors(args: list[str], words: str) -> None:
    result = run("localhost:9091", "-", "--job", "j", *args, stdin=GOOD)
    assert result.exit_code == 2
    assert words in result.output


def test_dry_run_redacts_credentials() -> None:
    result = run(
        "localhost:9091",
        "-",
        "--job",
        "j",
        "--bearer-token",
        "secret",
        "--dry-run",
        "-H",
        "X-Team: ops",
        stdin=GOOD,
    )
    assert result.exit_code == 0
    assert "PUT http://localhost:9091/metrics/job/j" in result.stdout
    assert "Authorization: <redacted>" in result.stdout and "secret" not in result.stdout
    assert "X-Team: ops" in result.stdout


def test_against_promscope_pushgateway(tmp_path: Path, loop_thread: LoopThread) -> None:
    """End to end: the push verb against promscope's own Pushgateway receiver."""
    from promscope.receive.pushgateway import PushgatewayReceiver

    loop = loop_thread
    receiver = PushgatewayReceiver()
    server = HttpServer(receiver.routes())
    try:
        loop.run(receiver.start())
        loop.run(server.start())
        ok = run(server.url, "-", "--job", "backup", "--label", "path=/var/lib", stdin=GOOD)
        assert ok.exit_code == 0, ok.output
        bad = run(server.url, "-", "--job", "backup", "--no-validate", stdin=b"a 1\nb{ 2\nc 3 x\n")
        assert bad.exit_code == 1
        assert "line" in bad.stdout  # promscope's Pushgateway names each error's line
        assert [dict(group.labels).get("path") for group in receiver.groups()] == ["/var/lib"]
    finally:
        loop.run(server.stop())
        loop.run(receiver.stop())
