"""Health history: every failure class, from MockTransport responses and from real 127.0.0.1 servers."""

from __future__ import annotations

import gzip
import http.server
import socket
import ssl
import time
from typing import Any

import httpx
import pytest

from promscope.observation import Outcome
from promscope.scrape import fetch
from promscope.scrape.health import FailureClass, HealthEvent, HealthState, TargetHealth
from promscope.scrape.observe import ScrapeObserver
from promscope.scrape.targets import ScrapeConfig

pytestmark = pytest.mark.timeout(30)


def config(**settings: Any) -> ScrapeConfig:
    return ScrapeConfig(job_name="j", interval=5, timeout=settings.pop("timeout", 2), **settings)


async def observe(url: str, handler: Any = None, **settings: Any) -> Any:
    t = config(**settings).url_target(url)
    if handler is None:
        result = await fetch(t.request)
    else:
        async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
            result = await fetch(t.request, client=client)
    return ScrapeObserver(t).observe(result, time.time())


def dns_failure(request: httpx.Request) -> httpx.Response:
    try:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    except socket.gaierror as exc:
        raise httpx.ConnectError("name resolution failed", request=request) from exc


def tls_failure(request: httpx.Request) -> httpx.Response:
    error = ssl.SSLCertVerificationError(1, "certificate verify failed")
    error.verify_message = "self-signed certificate"
    try:
        raise error
    except ssl.SSLError as exc:
        raise httpx.ConnectError("handshake", request=request) from exc


def refused(request: httpx.Request) -> httpx.Response:
    try:
        raise ConnectionRefusedError(111, "Connection refused")
    except OSError as exc:
        raise httpx.ConnectError("refused", request=request) from exc


def respond(status: int = 200, body: bytes = b"a 1\n", **headers: str) -> Any:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, content=body, headers={"Content-Type": "text/plain", **headers})

    return handler


@pytest.mark.parametrize(
    ("handler", "settings", "failure", "outcome", "words"),
    [
        (dns_failure, {}, FailureClass.DNS, Outcome.FAILED, "cannot resolve"),
        (refused, {}, FailureClass.REFUSED, Outcome.FAILED, "refused"),
        (tls_failure, {}, FailureClass.TLS, Outcome.FAILED, "not trusted"),
        (respond(503), {}, FailureClass.HTTP_STATUS, Outcome.REJECTED, "503"),
        (
            respond(**{"Content-Type": "application/json"}),
            {},
            FailureClass.CONTENT_TYPE,
            Outcome.REJECTED,
            "json",
        ),
        (
            respond(body=b"x" * 100),
            {"body_size_limit": 50},
            FailureClass.BODY_TOO_LARGE,
            Outcome.REJECTED,
            "limit",
        ),
        (respond(body=b"a{ 1\n"), {}, FailureClass.PARSE, Outcome.REJECTED, "rejects"),
        (
            respond(body=b"a 1\nb 2\n"),
            {"sample_limit": 1},
            FailureClass.SAMPLE_LIMIT,
            Outcome.REJECTED,
            "limit",
        ),
        (
            respond(body=b"\x1f\x8b broken", **{"Content-Encoding": "gzip"}),
            {},
            FailureClass.DECODE,
            Outcome.FAILED,
            "decoded",
        ),
    ],
    ids=lambda v: v.value if isinstance(v, FailureClass) else None,
)
async def test_failure_classes_from_mock_responses(
    handler: Any, settings: dict[str, Any], failure: FailureClass, outcome: Outcome, words: str
) -> None:
    health = TargetHealth()
    observation = await observe("http://h:1/metrics", handler, **settings)
    event = health.record(observation)
    assert observation.outcome is outcome
    assert event.failure is failure and not event.up
    assert words in event.message
    assert health.state is HealthState.DOWN and health.by_class[failure] == 1


async def test_refused_and_timeout_against_real_sockets(serve_http: Any) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    observation = await observe(f"http://127.0.0.1:{port}/metrics")
    assert observation.transport.extra["failure"] == "refused"

    def slow(handler: http.server.BaseHTTPRequestHandler) -> None:
        time.sleep(1.5)
        handler.send_response(200)
        handler.send_header("Content-Length", "0")
        handler.end_headers()

    base = serve_http(slow)
    observation = await observe(f"{base}/metrics", timeout=0.3)
    assert observation.transport.extra["failure"] == "timeout" and observation.outcome is Outcome.FAILED


async def test_healthy_real_server_gzip_and_up(serve_http: Any) -> None:
    body = gzip.compress(b"# TYPE a gauge\na 1\n")

    def ok(handler: http.server.BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", "text/plain; version=0.0.4")
        handler.send_header("Content-Encoding", "gzip")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    base = serve_http(ok)
    observation = await observe(f"{base}/metrics")
    assert observation.outcome is Outcome.ACCEPTED
    assert observation.transport.wire_bytes == len(body) and observation.transport.status == 200


def test_timeline_runs_bounds_and_counters() -> None:
    health = TargetHealth(limit=5)
    assert health.state is HealthState.UNKNOWN and health.availability() is None
    pattern = [True, True, False, False, True, False, True]
    for i, up in enumerate(pattern):
        failure = None if up else (FailureClass.TIMEOUT if i < 4 else FailureClass.REFUSED)
        health.add(
            HealthEvent(time=float(i), up=up, duration=0.1, failure=failure, message="" if up else f"e{i}")
        )
    assert len(health) == 5 and health.dropped == 2
    assert [(r.up, r.start, r.end, r.scrapes) for r in health.runs()] == [
        (False, 2, 3, 2),
        (True, 4, 4, 1),
        (False, 5, 5, 1),
        (True, 6, 6, 1),
    ]
    assert health.runs()[0].failures == (FailureClass.TIMEOUT,)
    assert health.state is HealthState.UP and health.consecutive_failures == 0
    assert health.last_error is not None and health.last_error.message == "e5"
    assert health.last_error_message == ""
    assert health.by_class == {FailureClass.TIMEOUT: 2, FailureClass.REFUSED: 1}
    assert health.scrapes == 7 and health.failures == 3 and health.since == 6
    assert health.availability() == pytest.approx(2 / 5)
    assert health.to_dict()["failuresByClass"] == {"refused": 1, "timeout": 2}
