"""Random bytes and malformed requests thrown at the HTTP layer: it answers or closes, never dies.

After every example a well-formed request must still be served, and no
handler may have been reached with something it should not see.
"""

from __future__ import annotations

import gzip
import socket
from collections.abc import Iterator
from typing import Any

import cramjam
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from promscope.receive.http import HttpLimits, HttpServer

LIMITS = HttpLimits(
    max_body_bytes=64 * 1024,
    max_header_bytes=4 * 1024,
    header_timeout=0.5,
    body_timeout=0.5,
    idle_timeout=0.5,
)
FUZZ = settings(
    max_examples=400,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
GOOD = b"PUT /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nConnection: close\r\n\r\nup 1"


@pytest.fixture(scope="module")
def server(module_loop: Any, wire: Any) -> Iterator[HttpServer]:
    running = HttpServer(wire.echo_routes(), limits=LIMITS)
    module_loop.run(running.start())
    try:
        yield running
    finally:
        module_loop.run(running.stop())


def _throw(server: HttpServer, wire: Any, data: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        try:
            sock.sendall(data)
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the server may have answered and closed already
        answer: bytes = wire.read_until_closed(sock, timeout=5)
    return answer


def _still_serving(server: HttpServer, wire: Any) -> None:
    answer = wire.exchange(server.port, GOOD)
    assert wire.status_of(answer) == 200, answer[:200]
    assert b'"body":"up 1"' in answer


def _check(answer: bytes) -> None:
    # Either nothing (closed) or HTTP/1.1 responses; never a traceback or garbage.
    if answer:
        assert answer.startswith(b"HTTP/1.1 "), answer[:200]
        assert b"Traceback" not in answer


@FUZZ
@given(data=st.binary(max_size=3000))
def test_random_bytes(server: HttpServer, wire: Any, data: bytes) -> None:
    _check(_throw(server, wire, data))
    _still_serving(server, wire)
    assert server.stats.handler_errors == 0


_TOKEN = st.text(st.characters(min_codepoint=33, max_codepoint=126), min_size=0, max_size=12)
_METHODS = st.sampled_from(["GET", "PUT", "POST", "DELETE", "HEAD", "OPTIONS", "PATCH", "BREW", ""]) | _TOKEN
_TARGETS = st.sampled_from(
    ["/echo", "/prefix/a%2Fb", "/prefix/", "*", "http://x/echo", "/%zz", "/nope"]
) | st.text(max_size=40)
_VERSIONS = st.sampled_from(["HTTP/1.1", "HTTP/1.0", "HTTP/2.0", "HTTP/1.1 extra", "", "HTTP/x"])
_ENCODINGS = st.sampled_from(["gzip", "deflate", "snappy", "identity", "br", "gzip, gzip", ""])


@st.composite
def _bodies(draw: st.DrawFn) -> tuple[bytes, str | None]:
    encoding = draw(st.none() | _ENCODINGS)
    raw = draw(st.binary(max_size=600))
    shape = draw(st.sampled_from(["plain", "encoded", "encoded-cut", "garbage"]))
    if shape == "encoded" and encoding == "gzip":
        return gzip.compress(raw), encoding
    if shape == "encoded" and encoding == "snappy":
        return bytes(cramjam.snappy.compress(raw)), encoding
    if shape == "encoded-cut" and encoding == "snappy":
        return bytes(cramjam.snappy.compress_raw(raw))[: draw(st.integers(0, 50))], encoding
    if shape == "encoded-cut" and encoding == "gzip":
        return gzip.compress(raw)[: draw(st.integers(0, 50))], encoding
    return raw, encoding


@st.composite
def _requests(draw: st.DrawFn) -> bytes:
    method = draw(_METHODS)
    target = draw(_TARGETS)
    version = draw(_VERSIONS)
    body, encoding = draw(_bodies())
    headers: list[tuple[str, str]] = []
    if draw(st.booleans()):
        headers.append(("Host", "x"))
    framing = draw(
        st.sampled_from(["length", "wrong-length", "huge-length", "chunked", "bad-chunked", "none"])
    )
    if framing == "length":
        headers.append(("Content-Length", str(len(body))))
    elif framing == "wrong-length":
        headers.append(("Content-Length", str(draw(st.integers(-5, 2000)))))
    elif framing == "huge-length":
        headers.append(("Content-Length", "9" * draw(st.integers(6, 40))))
    elif framing in ("chunked", "bad-chunked"):
        headers.append(("Transfer-Encoding", "chunked"))
        if framing == "chunked":
            body = (b"%x\r\n" % len(body) + body + b"\r\n0\r\n\r\n") if body else b"0\r\n\r\n"
        else:
            body = draw(st.sampled_from([b"zz\r\n", b"5\r\nab", b"-1\r\n", b"ffffffffffffffffff\r\n"])) + body
    if encoding is not None:
        headers.append(("Content-Encoding", encoding))
    extra = draw(
        st.lists(
            st.tuples(_TOKEN, st.text(max_size=30)),
            max_size=4,
        )
    )
    headers.extend(extra)
    if draw(st.booleans()):
        headers.append(("Expect", "100-continue"))
    line_end = draw(st.sampled_from(["\r\n", "\n", "\r"]))
    head = f"{method} {target} {version}{line_end}" + "".join(f"{k}: {v}{line_end}" for k, v in headers)
    return head.encode("utf-8", "surrogateescape") + line_end.encode() + body


@FUZZ
@given(request=_requests(), pipelined=st.booleans())
def test_malformed_requests(server: HttpServer, wire: Any, request: bytes, pipelined: bool) -> None:
    data = request + (GOOD if pipelined else b"")
    _check(_throw(server, wire, data))
    _still_serving(server, wire)
    assert server.stats.handler_errors == 0
