"""The one-shot scraper: request headers, body limits, gzip, errors, TLS, auth, selectors.

Two kinds of target: ``httpx.MockTransport`` for what the scraper does with a
given response, and a real ``http.server`` on 127.0.0.1 (plain and TLS, with
a CA and certificates made here with ``cryptography``) for what only a socket
shows: refused connections, timeouts, handshakes, connect timings.
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import http.server
import itertools
import socket
import ssl
import threading
import time
import zlib
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from promscope.errors import (
    BodyTooLarge,
    ConfigError,
    ConnectError,
    ScrapeTimeout,
    TLSError,
    TransportError,
)
from promscope.exposition.negotiate import ACCEPT_PROMETHEUS3, ACCEPT_TEXT, ScrapeProtocol
from promscope.model import Format, MetricFamily, MetricType, Sample
from promscope.scrape import (
    BasicAuth,
    ErrorKind,
    ScrapeResult,
    SelectorError,
    Target,
    TLSConfig,
    fetch,
    parse_selector,
    scrape_sync,
)
from promscope.scrape._fetch import classify
from promscope.scrape.target import _format_seconds

TEXT_CT = "text/plain; version=0.0.4; charset=utf-8"
BODY = (
    b"# HELP up Whether it is up.\n# TYPE up gauge\nup 1\n"
    b'# TYPE reqs counter\nreqs{code="200"} 5\nreqs{code="500"} 1\n'
)


def many(count: int) -> bytes:
    """A valid text exposition of ``count`` distinct series."""
    return b"# TYPE m gauge\n" + b"".join(b'm{i="%d"} %d\n' % (i, i) for i in range(count))


# -- helpers ----------------------------------------------------------------------------------------------

Handler = Callable[[httpx.Request], httpx.Response]


class RawStream(httpx.AsyncByteStream):
    """A body httpx does not read (and decode) when the Response is built, as a socket would not."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for start in range(0, len(self.data), 65536):
            yield self.data[start : start + 65536]


def run(target: Target, handler: Handler, **kwargs: object) -> ScrapeResult:
    async def go() -> ScrapeResult:
        async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
            return await fetch(target, client=client, **kwargs)  # type: ignore[arg-type]

    return asyncio.run(go())


def respond(
    body: bytes = BODY, *, status: int = 200, content_type: str | None = TEXT_CT, **headers: str
) -> Handler:
    def handler(request: httpx.Request) -> httpx.Response:
        out = {key.replace("_", "-"): value for key, value in headers.items()}
        if content_type is not None:
            out["content-type"] = content_type
        return httpx.Response(status, headers=out, stream=RawStream(body))

    return handler


URL = "http://127.0.0.1:9999/metrics"


# -- request: what goes over the wire -------------------------------------------------------------------


def test_request_headers_are_what_prometheus3_sends() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return respond()(request)

    result = run(Target(URL, timeout=1.5), handler)
    assert result.ok
    request = seen[0]
    assert request.method == "GET"
    assert request.headers["accept"] == ACCEPT_PROMETHEUS3
    assert request.headers["accept-encoding"] == "gzip"
    assert request.headers["x-prometheus-scrape-timeout-seconds"] == "1.5"
    assert request.headers["user-agent"].startswith("promscope/")
    assert "authorization" not in request.headers
    assert result.accept == ACCEPT_PROMETHEUS3


def test_request_without_compression_asks_for_identity() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return respond()(request)

    run(Target(URL, compression=False, accept=ACCEPT_TEXT), handler)
    assert seen[0].headers["accept-encoding"] == "identity"
    assert seen[0].headers["accept"] == ACCEPT_TEXT


def test_basic_auth_bearer_token_and_extra_headers(tmp_path: Path) -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return respond()(request)

    run(Target(URL, basic_auth=BasicAuth("admin", "s3:cret")), handler)
    expected = base64.b64encode(b"admin:s3:cret").decode()
    assert seen[-1].headers["authorization"] == f"Basic {expected}"

    run(Target(URL, bearer_token="tok"), handler)
    assert seen[-1].headers["authorization"] == "Bearer tok"

    token_file = tmp_path / "token"
    token_file.write_text("from-file\n")
    run(Target(URL, bearer_token_file=str(token_file)), handler)
    assert seen[-1].headers["authorization"] == "Bearer from-file"

    run(Target.build(URL, headers={"X-Scope-OrgID": "t1", "accept": "text/plain"}), handler)
    assert seen[-1].headers["x-scope-orgid"] == "t1"
    assert seen[-1].headers["accept"] == "text/plain"
    assert seen[-1].headers.get_list("accept") == ["text/plain"]


def test_secrets_stay_out_of_repr() -> None:
    target = Target(URL, basic_auth=BasicAuth("admin", "hunter2"))
    assert "hunter2" not in repr(target)
    assert "sekrit" not in repr(Target(URL, bearer_token="sekrit"))


@pytest.mark.parametrize(
    ("seconds", "text"), [(10, "10"), (1.5, "1.5"), (0.25, "0.25"), (120.0, "120"), (1e-7, "0.0000001")]
)
def test_timeout_header_is_formatted_like_go(seconds: float, text: str) -> None:
    assert _format_seconds(seconds) == text


# -- target validation ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"url": "ftp://host/metrics"}, "scheme"),
        ({"url": "127.0.0.1:9100/metrics"}, "scheme"),
        ({"url": "http:///metrics"}, "no host"),
        ({"url": "http://host:99999/metrics"}, "port"),
        ({"url": URL, "timeout": 0}, "timeout"),
        ({"url": URL, "body_size_limit": -1}, "body size"),
        ({"url": URL, "basic_auth": BasicAuth("a", "b"), "bearer_token": "t"}, "mutually exclusive"),
        ({"url": URL, "bearer_token": "t", "bearer_token_file": "/x"}, "not both"),
        ({"url": URL, "headers": (("Bad Name", "v"),)}, "invalid header name"),
        ({"url": URL, "headers": (("X-A", "a\r\nX-B: b"),)}, "line break"),
        ({"url": URL, "headers": (("Host", "evil"),)}, "cannot be overridden"),
        ({"url": URL, "max_decompression_ratio": 0.5}, "ratio"),
    ],
)
def test_target_refuses_bad_configuration(kwargs: dict[str, object], fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment):
        Target(**kwargs)  # type: ignore[arg-type]


def test_basic_auth_parse() -> None:
    assert BasicAuth.parse("u:p:q") == BasicAuth("u", "p:q")
    with pytest.raises(ConfigError):
        BasicAuth.parse("nocolon")


def test_key_without_certificate_is_refused() -> None:
    with pytest.raises(ConfigError, match="client key"):
        TLSConfig(key_file="/k.pem")


def test_unreadable_local_files_raise_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="bearer token file"):
        run(Target(URL, bearer_token_file=str(tmp_path / "missing")), respond())
    empty = tmp_path / "empty"
    empty.write_text("  \n")
    with pytest.raises(ConfigError, match="empty"):
        run(Target(URL, bearer_token_file=str(empty)), respond())
    with pytest.raises(ConfigError, match="CA file"):
        scrape_sync(Target("https://127.0.0.1:1/", tls=TLSConfig(ca_file=str(tmp_path / "nope.pem"))))


# -- response: format, sizes, the series Prometheus records ------------------------------------------------


def test_plain_text_scrape() -> None:
    result = run(Target(URL), respond())
    assert result.error is None
    assert result.up == 1
    assert "would ingest 3 samples" in result.up_reason
    assert result.status == 200
    assert result.final_url == URL
    assert result.format is Format.TEXT
    assert result.negotiated is not None and result.negotiated.version == "0.0.4"
    assert result.compressed_bytes == result.uncompressed_bytes == len(BODY)
    assert result.body == BODY
    assert result.content_type == TEXT_CT
    assert result.header("Content-Type") == TEXT_CT
    assert [f.name for f in result.families] == ["up", "reqs"]
    series = result.prometheus_series()
    assert series["up"] == 1
    assert series["scrape_samples_scraped"] == 3
    assert series["scrape_series_added"] == 3
    assert series["scrape_body_size_bytes"] == len(BODY)
    assert result.reachable and not result.unreachable
    assert result.to_exception() is None


def test_series_added_counts_distinct_series() -> None:
    body = b'a 1\na 2\nb{x="1",y="2"} 1\nb{y="2",x="1"} 1\n'
    result = run(Target(URL), respond(body))
    assert result.scrape_series_added == 2
    # Duplicates break the spec, but Prometheus drops the second sample and keeps the scrape.
    assert result.up == 1
    assert "spec errors it does not check (SEM-001)" in result.up_reason


def test_gzip_body_is_decoded_and_both_sizes_reported() -> None:
    body = many(500)
    packed = gzip.compress(body)
    result = run(Target(URL), respond(packed, content_encoding="gzip"))
    assert result.ok, result.up_reason
    assert result.compressed_bytes == len(packed) < len(body)
    assert result.uncompressed_bytes == len(body)
    assert result.scrape_body_size_bytes == len(body)


def test_concatenated_gzip_members_are_read_like_go() -> None:
    packed = gzip.compress(b"a 1\n") + gzip.compress(b"b 2\n")
    result = run(Target(URL), respond(packed, content_encoding="gzip"))
    assert result.ok
    assert result.body == b"a 1\nb 2\n"


@pytest.mark.parametrize(
    ("payload", "fragment"),
    [
        (b"\x1f\x8b\x08\x00garbage-not-deflate", "corrupt"),
        (gzip.compress(BODY)[:-12], "ends before"),
        (gzip.compress(BODY) + b"trailing junk", "corrupt"),
    ],
    ids=["corrupt", "truncated", "trailing-junk"],
)
def test_broken_gzip_is_a_decode_error(payload: bytes, fragment: str) -> None:
    result = run(Target(URL), respond(payload, content_encoding="gzip"))
    assert result.error is not None and result.error.kind is ErrorKind.DECODE
    assert fragment in result.error.message
    assert result.up == 0
    assert result.parse is None


def test_unsupported_content_encoding_is_a_decode_error() -> None:
    result = run(Target(URL), respond(b"\x00\x01", content_encoding="br"))
    assert result.error is not None and result.error.kind is ErrorKind.DECODE
    assert "only decodes gzip" in result.error.message


def test_body_at_the_limit_fails_like_prometheus() -> None:
    # Prometheus reads at most body_size_limit bytes and fails when it read that many.
    result = run(Target(URL, body_size_limit=len(BODY)), respond())
    assert result.error is not None and result.error.kind is ErrorKind.BODY_TOO_LARGE
    assert result.scrape_body_size_bytes == -1
    assert result.uncompressed_bytes == len(BODY)
    assert result.up == 0
    assert isinstance(result.to_exception(), BodyTooLarge)
    assert run(Target(URL, body_size_limit=len(BODY) + 1), respond()).ok


def test_limit_applies_to_decompressed_bytes() -> None:
    packed = gzip.compress(many(5000))
    assert len(packed) < 30_000
    result = run(Target(URL, body_size_limit=30_000), respond(packed, content_encoding="gzip"))
    assert result.error is not None and result.error.kind is ErrorKind.BODY_TOO_LARGE
    assert "after decompression" in result.error.message
    assert result.uncompressed_bytes == 30_000


def test_gzip_bomb_is_stopped_by_the_ratio_without_a_limit() -> None:
    bomb = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    packed = bomb.compress(b"\0" * (200 << 20)) + bomb.flush()
    assert len(packed) < 300_000
    result = run(Target(URL, body_size_limit=0), respond(packed, content_encoding="gzip"))
    assert result.error is not None and result.error.kind is ErrorKind.BODY_TOO_LARGE
    assert "decompression bomb" in result.error.message
    assert result.uncompressed_bytes < 64 << 20


def test_gzip_bomb_is_stopped_by_the_limit() -> None:
    bomb = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    packed = bomb.compress(b"\0" * (50 << 20)) + bomb.flush()
    result = run(Target(URL, body_size_limit=1 << 20), respond(packed, content_encoding="gzip"))
    assert result.error is not None and result.error.kind is ErrorKind.BODY_TOO_LARGE
    assert result.uncompressed_bytes == 1 << 20


def test_missing_content_type_fails_prometheus3_but_is_still_parsed() -> None:
    result = run(Target(URL), respond(content_type=None))
    assert result.error is not None and result.error.kind is ErrorKind.CONTENT_TYPE
    assert "fallback_scrape_protocol" in result.error.message
    assert result.up == 0
    assert result.format is Format.TEXT  # sniffed
    assert result.parse is not None and len(result.families) == 2
    assert result.scrape_samples_scraped == 0  # Prometheus never parsed it
    assert result.scrape_series_added == 0


def test_fallback_protocol_rescues_a_missing_content_type() -> None:
    result = run(
        Target(URL, fallback_protocol=ScrapeProtocol.PROMETHEUS_TEXT_0_0_4), respond(content_type=None)
    )
    assert result.ok, result.up_reason
    assert result.format is Format.TEXT


def test_unsupported_content_type_fails() -> None:
    result = run(Target(URL), respond(b"<html></html>", content_type="text/html; charset=utf-8"))
    assert result.error is not None and result.error.kind is ErrorKind.CONTENT_TYPE
    assert "text/html" in result.error.message


@pytest.mark.parametrize(
    ("status", "hint"),
    [(404, "metrics path"), (401, "credentials"), (500, "logs"), (204, "only 200"), (503, "logs")],
)
def test_status_other_than_200_fails(status: int, hint: str) -> None:
    result = run(Target(URL), respond(b"nope", status=status))
    assert result.error is not None and result.error.kind is ErrorKind.HTTP_STATUS
    assert f"HTTP status {status}" in result.error.message
    assert hint in result.error.hint
    assert result.parse is None
    assert result.up == 0
    assert result.reachable and not result.unreachable


def _redirecting(request: httpx.Request) -> httpx.Response:
    if request.url.path == "/old":
        return httpx.Response(302, headers={"location": "/metrics"})
    return respond()(request)


def test_redirects_are_followed_by_default() -> None:
    result = run(Target("http://127.0.0.1:9999/old"), _redirecting)
    assert result.ok
    assert result.redirects == 1
    assert result.final_url == "http://127.0.0.1:9999/metrics"


def test_redirects_can_be_refused() -> None:
    result = run(Target("http://127.0.0.1:9999/old", follow_redirects=False), _redirecting)
    assert result.error is not None and result.error.kind is ErrorKind.HTTP_STATUS
    assert "302" in result.error.message
    assert "--follow-redirects" in result.error.hint


def test_parse_errors_predict_up_zero_with_the_first_error() -> None:
    result = run(Target(URL), respond(b"ok 1\nbroken{a=} 1\nalso broken 1 2 3\n"))
    assert result.up == 0
    assert result.error is not None and result.error.kind is ErrorKind.PARSE
    assert "line 2" in result.up_reason
    assert "and 1 more" in result.up_reason
    assert result.scrape_samples_scraped == len(result.parse.families[0].samples) if result.parse else False
    assert result.scrape_series_added == 0


def test_protobuf_scrape() -> None:
    from promscope.exposition.protobuf import encode_protobuf

    families = [
        MetricFamily("up", MetricType.GAUGE, "Up.", samples=(Sample("up", (), 1.0),)),
        MetricFamily(
            "reqs_total", MetricType.COUNTER, samples=(Sample("reqs_total", (("code", "200"),), 5.0),)
        ),
    ]
    payload = encode_protobuf(families)
    ct = "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited"
    result = run(Target(URL), respond(payload, content_type=ct))
    assert result.ok, result.up_reason
    assert result.format is Format.PROTOBUF
    assert [f.name for f in result.families] == ["up", "reqs_total"]


def test_openmetrics_scrape() -> None:
    pytest.importorskip("promscope.exposition.openmetrics")
    body = b"# TYPE up gauge\nup 1\n# EOF\n"
    ct = "application/openmetrics-text; version=1.0.0; charset=utf-8"
    result = run(Target(URL), respond(body, content_type=ct))
    assert result.format is Format.OPENMETRICS
    assert result.ok, result.up_reason


def test_big_bodies_are_parsed_in_a_thread() -> None:
    body = many(2000)
    result = run(Target(URL), respond(body), thread_threshold=100)
    assert result.ok
    assert result.scrape_samples_scraped == 2000


def test_injected_clock_makes_timings_deterministic() -> None:
    ticks = itertools.count()
    result = run(Target(URL), respond(), clock=lambda: float(next(ticks)))
    assert result.timings.total == float(int(result.timings.total)) > 0
    assert result.timings.first_byte is not None and result.timings.first_byte < result.timings.total
    assert result.timings.parse == 1.0
    assert result.timings.connect is None  # no sockets behind a MockTransport
    assert result.scrape_duration_seconds == result.timings.total


# -- transport errors -------------------------------------------------------------------------------------


def _raiser(exc: BaseException) -> Handler:
    def handler(request: httpx.Request) -> httpx.Response:
        raise exc

    return handler


def _chained(outer: Exception, inner: BaseException) -> Exception:
    outer.__cause__ = inner
    return outer


@pytest.mark.parametrize(
    ("exc", "kind", "exception_type"),
    [
        (
            _chained(httpx.ConnectError("x"), socket.gaierror(-2, "Name or service not known")),
            ErrorKind.DNS,
            ConnectError,
        ),
        (
            _chained(
                httpx.ConnectError("All connection attempts failed"),
                _chained(OSError("All connection attempts failed"), ConnectionRefusedError(111, "refused")),
            ),
            ErrorKind.REFUSED,
            ConnectError,
        ),
        (
            _chained(
                httpx.ConnectError("x"),
                ExceptionGroup("attempts", [ConnectionRefusedError(111, "Connection refused")]),
            ),
            ErrorKind.REFUSED,
            ConnectError,
        ),
        (
            _chained(httpx.ConnectError("x"), OSError(113, "No route to host")),
            ErrorKind.CONNECT,
            ConnectError,
        ),
        (_chained(httpx.ConnectError("x"), ssl.SSLError(1, "wrong version number")), ErrorKind.TLS, TLSError),
        (httpx.ConnectTimeout("timed out"), ErrorKind.TIMEOUT, ScrapeTimeout),
        (httpx.ReadTimeout("timed out"), ErrorKind.TIMEOUT, ScrapeTimeout),
        (httpx.RemoteProtocolError("illegal header"), ErrorKind.PROTOCOL, ConnectError),
        (httpx.TooManyRedirects("loop"), ErrorKind.PROTOCOL, ConnectError),
    ],
    ids=[
        "dns",
        "refused",
        "refused-group",
        "unreachable",
        "tls",
        "connect-timeout",
        "read-timeout",
        "protocol",
        "redirect-loop",
    ],
)
def test_transport_errors_are_classified_never_raised(
    exc: Exception, kind: ErrorKind, exception_type: type[TransportError]
) -> None:
    result = run(Target(URL), _raiser(exc))
    assert result.error is not None
    assert result.error.kind is kind, result.error
    assert result.status is None
    assert result.unreachable
    assert result.up == 0 and result.up_reason == result.error.message
    assert result.error.hint
    assert isinstance(result.to_exception(), exception_type)


def test_classify_certificate_failure_names_the_fix() -> None:
    error = ssl.SSLCertVerificationError(1, "certificate verify failed")
    error.verify_message = "self-signed certificate"
    scraped = classify(_chained(httpx.ConnectError("x"), error), Target("https://127.0.0.1:1/"))
    assert scraped.kind is ErrorKind.TLS
    assert "self-signed certificate" in scraped.message
    assert "--ca-file" in scraped.hint and "--insecure" in scraped.hint


# -- a real server ---------------------------------------------------------------------------------------


@dataclass
class Route:
    status: int = 200
    body: bytes = BODY
    headers: dict[str, str] = field(default_factory=lambda: {"Content-Type": TEXT_CT})
    delay: float = 0.0
    trickle: float = 0.0
    """Seconds between body bytes (a slow body)."""
    auth: str | None = None
    """The Authorization header required, else 401."""
    cut: bool = False
    """Promise more body than is sent, then close."""


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        route = self.server.routes.get(self.path)
        self.server.requests.append(dict(self.headers.items()))
        if route is None:
            self.send_error(404)
            return
        if route.delay:
            time.sleep(route.delay)
        if route.auth is not None and self.headers.get("Authorization") != route.auth:
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="metrics"')
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(route.status)
        for key, value in route.headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(route.body) + (100 if route.cut else 0)))
        self.end_headers()
        try:
            if route.trickle:
                for index in range(len(route.body)):
                    self.wfile.write(route.body[index : index + 1])
                    self.wfile.flush()
                    time.sleep(route.trickle)
            else:
                self.wfile.write(route.body)
            if route.cut:
                self.wfile.flush()
                self.close_connection = True
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
            pass


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, context: ssl.SSLContext | None) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.routes: dict[str, Route] = {}
        self.requests: list[dict[str, str]] = []
        self.context = context

    def get_request(self) -> tuple[socket.socket, object]:
        sock, address = super().get_request()
        if self.context is not None:
            sock = self.context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        return sock, address

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # handshake failures are the point of some tests

    def url(self, path: str = "/metrics", host: str = "127.0.0.1") -> str:
        scheme = "https" if self.context is not None else "http"
        return f"{scheme}://{host}:{self.server_address[1]}{path}"


@pytest.fixture
def serve() -> Iterator[Callable[..., _Server]]:
    servers: list[_Server] = []

    def start(routes: dict[str, Route] | None = None, context: ssl.SSLContext | None = None) -> _Server:
        server = _Server(context)
        server.routes.update(routes or {"/metrics": Route()})
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        thread.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def test_real_server_text_scrape_has_connect_timings(serve: Callable[..., _Server]) -> None:
    server = serve()
    result = scrape_sync(server.url())
    assert result.ok, result.up_reason
    assert result.http_version == "HTTP/1.1"
    assert result.timings.connect is not None and result.timings.connect >= 0
    assert result.timings.tls is None
    assert result.timings.first_byte is not None
    assert result.timings.total >= result.timings.first_byte
    assert server.requests[0]["Accept"] == ACCEPT_PROMETHEUS3
    assert server.requests[0]["Accept-Encoding"] == "gzip"


def test_real_server_gzip(serve: Callable[..., _Server]) -> None:
    body = many(300)
    packed = gzip.compress(body)
    headers = {"Content-Type": TEXT_CT, "Content-Encoding": "gzip"}
    server = serve({"/metrics": Route(body=packed, headers=headers)})
    result = scrape_sync(server.url())
    assert result.ok, result.up_reason
    assert (result.compressed_bytes, result.uncompressed_bytes) == (len(packed), len(body))


def test_real_server_huge_body_stops_at_the_limit(serve: Callable[..., _Server]) -> None:
    big = b"x_total 1\n" * 500_000  # 5 MB
    server = serve({"/metrics": Route(body=big)})
    result = scrape_sync(Target(server.url(), body_size_limit=1 << 20))
    assert result.error is not None and result.error.kind is ErrorKind.BODY_TOO_LARGE
    assert result.uncompressed_bytes == 1 << 20
    assert result.compressed_bytes < len(big)


def test_real_server_refused() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = scrape_sync(f"http://127.0.0.1:{port}/metrics")
    assert result.error is not None and result.error.kind is ErrorKind.REFUSED
    assert result.unreachable
    assert f"127.0.0.1:{port}" in result.error.message


def test_real_server_slow_headers_time_out(serve: Callable[..., _Server]) -> None:
    server = serve({"/metrics": Route(delay=2.0)})
    result = scrape_sync(Target(server.url(), timeout=0.3))
    assert result.error is not None and result.error.kind is ErrorKind.TIMEOUT
    assert result.status is None and result.unreachable


def test_real_server_trickling_body_times_out_as_a_whole(serve: Callable[..., _Server]) -> None:
    # Each byte arrives well within any read timeout; only a deadline on the whole scrape stops it.
    server = serve({"/metrics": Route(body=BODY, trickle=0.05)})
    result = scrape_sync(Target(server.url(), timeout=0.5))
    assert result.error is not None and result.error.kind is ErrorKind.TIMEOUT
    assert "body did not finish" in result.error.message
    assert result.status == 200 and not result.unreachable
    assert result.up == 0


def test_real_server_connection_cut_mid_body(serve: Callable[..., _Server]) -> None:
    server = serve({"/metrics": Route(cut=True)})
    result = scrape_sync(server.url())
    assert result.error is not None and result.error.kind is ErrorKind.PROTOCOL
    assert result.status == 200
    assert result.up == 0


def test_real_server_basic_auth(serve: Callable[..., _Server]) -> None:
    wanted = "Basic " + base64.b64encode(b"prom:pw").decode()
    server = serve({"/metrics": Route(auth=wanted)})
    denied = scrape_sync(server.url())
    assert denied.status == 401 and denied.error is not None
    assert "--basic-auth" in denied.error.hint
    assert scrape_sync(Target(server.url(), basic_auth=BasicAuth("prom", "pw"))).ok


def test_real_server_bearer_token(serve: Callable[..., _Server], tmp_path: Path) -> None:
    server = serve({"/metrics": Route(auth="Bearer abc")})
    token = tmp_path / "token"
    token.write_text("abc")
    assert scrape_sync(Target(server.url(), bearer_token_file=str(token))).ok
    assert scrape_sync(Target(server.url(), bearer_token="wrong")).status == 401


# -- TLS --------------------------------------------------------------------------------------------------


@dataclass
class PKI:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path

    def server_context(self, *, require_client: bool = False) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.server_cert, self.server_key)
        if require_client:
            context.load_verify_locations(self.ca)
            context.verify_mode = ssl.CERT_REQUIRED
        return context


@pytest.fixture(scope="module")
def pki(make_tls_files: Callable[..., Any]) -> PKI:
    # The server certificate names only "localhost": reaching it as 127.0.0.1 needs server_name.
    files = make_tls_files(("localhost",))
    return PKI(files.ca_cert, files.server_cert, files.server_key, files.client_cert, files.client_key)


def test_tls_with_ca_and_server_name(serve: Callable[..., _Server], pki: PKI) -> None:
    server = serve(context=pki.server_context())
    tls = TLSConfig(ca_file=str(pki.ca), server_name="localhost")
    result = scrape_sync(Target(server.url(), tls=tls))
    assert result.ok, result.up_reason
    assert result.timings.tls is not None and result.timings.tls > 0
    assert result.timings.connect is not None


def test_tls_name_mismatch_is_a_tls_error(serve: Callable[..., _Server], pki: PKI) -> None:
    server = serve(context=pki.server_context())
    result = scrape_sync(Target(server.url(), tls=TLSConfig(ca_file=str(pki.ca))))
    assert result.error is not None and result.error.kind is ErrorKind.TLS
    assert "127.0.0.1" in result.error.message
    assert "--server-name" in result.error.hint


def test_tls_untrusted_ca_is_a_tls_error(serve: Callable[..., _Server], pki: PKI) -> None:
    server = serve(context=pki.server_context())
    result = scrape_sync(Target(server.url(), tls=TLSConfig(server_name="localhost")))
    assert result.error is not None and result.error.kind is ErrorKind.TLS
    assert "not trusted" in result.error.message
    assert result.unreachable


def test_tls_insecure_skips_verification(serve: Callable[..., _Server], pki: PKI) -> None:
    server = serve(context=pki.server_context())
    assert scrape_sync(Target(server.url(), tls=TLSConfig(insecure_skip_verify=True))).ok


def test_tls_client_certificate(serve: Callable[..., _Server], pki: PKI) -> None:
    server = serve(context=pki.server_context(require_client=True))
    base = TLSConfig(ca_file=str(pki.ca), server_name="localhost")
    without = scrape_sync(Target(server.url(), tls=base))
    assert without.error is not None and without.error.kind in (ErrorKind.TLS, ErrorKind.PROTOCOL)
    with_cert = TLSConfig(
        ca_file=str(pki.ca),
        server_name="localhost",
        cert_file=str(pki.client_cert),
        key_file=str(pki.client_key),
    )
    result = scrape_sync(Target(server.url(), tls=with_cert))
    assert result.ok, result.up_reason


def test_http_to_a_tls_port_is_a_protocol_error(serve: Callable[..., _Server], pki: PKI) -> None:
    server = serve(context=pki.server_context())
    result = scrape_sync(Target(server.url().replace("https://", "http://"), timeout=2))
    assert result.error is not None
    assert result.error.kind in (ErrorKind.PROTOCOL, ErrorKind.TIMEOUT)


def test_bad_client_certificate_is_a_config_error(pki: PKI) -> None:
    with pytest.raises(ConfigError, match="client certificate"):
        scrape_sync(
            Target("https://127.0.0.1:1/", tls=TLSConfig(cert_file=str(pki.ca), key_file=str(pki.server_key)))
        )


# -- selectors --------------------------------------------------------------------------------------------

FAMILIES = [
    MetricFamily(
        "http_requests",
        MetricType.COUNTER,
        samples=(
            Sample("http_requests_total", (("code", "200"), ("method", "GET")), 10),
            Sample("http_requests_total", (("code", "500"), ("method", "GET")), 1),
            Sample("http_requests_total", (("code", "503"), ("method", "POST")), 2),
        ),
    ),
    MetricFamily(
        "rpc_seconds",
        MetricType.HISTOGRAM,
        samples=(
            Sample("rpc_seconds_bucket", (("le", "1"),), 1),
            Sample("rpc_seconds_bucket", (("le", "+Inf"),), 2),
            Sample("rpc_seconds_count", (), 2),
            Sample("rpc_seconds_sum", (), 1.5),
        ),
    ),
    MetricFamily("empty_family", MetricType.GAUGE),
]


def _selected(selector: str) -> list[tuple[str, int]]:
    return [(f.name, len(f.samples)) for f in parse_selector(selector).filter(FAMILIES)]


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("http_requests_total", [("http_requests", 3)]),
        ("http_requests", [("http_requests", 3)]),
        ('http_requests_total{code=~"5.."}', [("http_requests", 2)]),
        ('http_requests_total{code=~"5.", method="GET"}', []),
        ('http_*{method!="GET"}', [("http_requests", 1)]),
        ('{code!~"2.*"}', [("http_requests", 2), ("rpc_seconds", 4)]),  # absent label is ""
        ('{code=~"5.*"}', [("http_requests", 2)]),
        ("rpc_seconds_bucket", [("rpc_seconds", 2)]),
        ("rpc_seconds", [("rpc_seconds", 4)]),
        ('rpc_*{le=""}', [("rpc_seconds", 2)]),
        ('{__name__=~"rpc_.*_(count|sum)"}', [("rpc_seconds", 2)]),
        ('{__name__="rpc_seconds"}', [("rpc_seconds", 4)]),
        ("*", [("http_requests", 3), ("rpc_seconds", 4), ("empty_family", 0)]),
        ("empty_*", [("empty_family", 0)]),
        ('{"http_requests_total", code="200"}', [("http_requests", 1)]),
        ("http_requests_total{code=`200`}", [("http_requests", 1)]),
        ("http_requests_total{code='200',}", [("http_requests", 1)]),
        ("  http_requests_total { code = '200' }  ", [("http_requests", 1)]),
        ("rpc_seconds_[bc]*", [("rpc_seconds", 3)]),
    ],
)
def test_selector_filters_families(selector: str, expected: list[tuple[str, int]]) -> None:
    assert _selected(selector) == expected


@pytest.mark.parametrize(
    ("selector", "column", "fragment"),
    [
        ("", 1, "empty selector"),
        ("{}", 1, "matches everything"),
        ("foo{code}", 9, "expected '='"),
        ("foo{code=200}", 10, "quoted value"),
        ('foo{code="200"', 15, "missing '}'"),
        ('foo{code="200" method="GET"}', 16, "expected ',' or '}'"),
        ('foo{code="2', 10, "unterminated"),
        ('foo{code=~"(5"}', 12, "regular expression"),
        ('foo{1code="x"}', 5, "label name"),
        ("9foo", 1, "starts with"),
        ("foo bar", 5, "after the selector"),
        ('foo{"bar"}', 5, "given twice"),
        ("foo[ab", 1, "unbalanced"),
    ],
)
def test_selector_errors_point_at_the_column(selector: str, column: int, fragment: str) -> None:
    with pytest.raises(SelectorError) as caught:
        parse_selector(selector)
    assert caught.value.column == column, caught.value.message
    assert fragment in caught.value.message
    assert caught.value.caret().splitlines()[1] == " " * (column - 1) + "^"


def test_selector_string_escapes_and_str() -> None:
    selector = parse_selector(r'm{a="x\"y", b=~"\d+"}')
    assert selector.matchers[0].value == 'x"y'
    assert selector.matchers[1].value == r"\d+"
    assert str(selector) == r'm{a="x\"y", b=~"\\d+"}'
    assert str(parse_selector("m")) == "m"
    assert str(parse_selector('{a="1"}')) == '{a="1"}'


# -- a real exporter --------------------------------------------------------------------------------------


@pytest.mark.integration
@pytest.mark.parametrize("accept", ["prometheus3", "protobuf", "text"])
def test_real_node_exporter(run_binary: Callable[..., Any], accept: str) -> None:
    from promscope.exposition.negotiate import accept_for

    exporter = run_binary(
        "/usr/bin/prometheus-node-exporter",
        "--web.listen-address={address}",
        "--collector.disable-defaults",
        "--collector.loadavg",
        "--collector.time",
    )
    result = scrape_sync(Target(exporter.url("/metrics"), accept=accept_for(accept)))
    assert result.ok, result.up_reason
    assert result.content_encoding == "gzip"
    assert result.compressed_bytes < result.uncompressed_bytes
    names = {family.name for family in result.families}
    assert "node_load1" in names
    expected = Format.PROTOBUF if accept == "protobuf" else Format.TEXT
    assert result.format is expected
    assert result.timings.connect is not None
