"""The HTTP layer on real 127.0.0.1 connections: httpx for well-behaved senders, raw sockets for the rest."""

from __future__ import annotations

import base64
import gzip
import resource
import socket
import ssl
import threading
import zlib
from collections.abc import Callable, Iterator
from typing import Any

import cramjam
import httpx
import pytest

from promscope.errors import ConfigError, ListenError
from promscope.receive.http import (
    Auth,
    HttpLimits,
    HttpServer,
    RefusedRequest,
    Request,
    Response,
    Route,
    ServerTLS,
    human_bytes,
)

Serve = Callable[..., HttpServer]

SMALL = HttpLimits(header_timeout=0.2, body_timeout=0.2, idle_timeout=0.2)


def _refusals(serve: Serve, wire: Any, **kwargs: Any) -> tuple[HttpServer, list[RefusedRequest]]:
    seen: list[RefusedRequest] = []
    server = serve(wire.echo_routes(), on_refused=seen.append, **kwargs)
    return server, seen


# --- requests as handlers see them ----------------------------------------------------------------


def test_request_fields(serve: Serve, wire: Any) -> None:
    server = serve(wire.echo_routes(), clock=lambda: 1234.5)
    response = httpx.put(
        f"{server.url}/prefix/job/a%2Fb/x?debug=1",
        content=b"up 1\n",
        headers={"User-Agent": "pusher/1.0", "Content-Type": "text/plain; version=0.0.4", "X-Two": "2"},
    )
    assert response.status_code == 200
    seen = response.json()
    assert seen["method"] == "PUT"
    assert seen["target"] == "/prefix/job/a%2Fb/x?debug=1"
    assert seen["path"] == "/prefix/job/a/b/x"
    assert seen["query"] == "debug=1"
    assert ["x-two", "2"] in seen["headers"]
    assert seen["body"] == "up 1\n"
    assert seen["wire_bytes"] == 5
    assert seen["content_encoding"] is None
    assert seen["peer"].startswith("127.0.0.1:")
    assert seen["scheme"] == "http"
    assert seen["received_at"] == 1234.5
    assert seen["user_agent"] == "pusher/1.0"
    assert seen["content_type"] == "text/plain; version=0.0.4"
    assert response.headers["date"]
    assert server.url == f"http://127.0.0.1:{server.port}"
    assert server.address == f"127.0.0.1:{server.port}"


def test_keep_alive_reuses_one_connection(serve: Serve, wire: Any) -> None:
    server = serve(wire.echo_routes())
    with httpx.Client(base_url=server.url) as client:
        for index in range(20):
            assert client.post("/echo", content=str(index)).json()["body"] == str(index)
    assert server.stats.connections_total == 1
    assert server.stats.requests == 20
    assert server.stats.responses == {200: 20}


def test_chunked_body(serve: Serve, wire: Any) -> None:
    server = serve(wire.echo_routes())

    def chunks() -> Iterator[bytes]:
        for index in range(50):
            yield f"line {index}\n".encode()

    response = httpx.post(f"{server.url}/echo", content=chunks())
    assert response.status_code == 200
    assert response.json()["body"] == "".join(f"line {i}\n" for i in range(50))


def test_pipelined_requests_answered_in_order(serve: Serve, wire: Any) -> None:
    server = serve(wire.echo_routes())
    one = b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\none"
    two = b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nConnection: close\r\n\r\ntwo"
    raw = wire.exchange(server.port, one + two)
    assert raw.count(b"HTTP/1.1 200 OK") == 2
    assert raw.index(b'"body":"one"') < raw.index(b'"body":"two"')


def test_not_found_and_method_not_allowed(serve: Serve, wire: Any) -> None:
    server, seen = _refusals(serve, wire)
    server = serve([Route(frozenset({"PUT", "GET"}), "/only", wire.echo)], on_refused=seen.append)
    missing = httpx.get(f"{server.url}/nowhere")
    assert missing.status_code == 404
    assert "no such path: /nowhere" in missing.text
    wrong = httpx.post(f"{server.url}/only", content=b"x")
    assert wrong.status_code == 405
    assert wrong.headers["allow"] == "GET, HEAD, PUT"
    assert [r.reason for r in seen] == ["not_found", "method_not_allowed"]
    assert seen[1].method == "POST" and seen[1].path == "/only" and seen[1].route is None


def test_head_is_answered_by_get_without_body(serve: Serve, wire: Any) -> None:
    server = serve(wire.echo_routes())
    response = httpx.head(f"{server.url}/echo")
    assert response.status_code == 200
    assert response.content == b""
    assert int(response.headers["content-length"]) > 0


def test_longest_prefix_wins(serve: Serve, wire: Any) -> None:
    async def short(request: Request) -> Response:
        return Response.text(200, "short")

    async def long(request: Request) -> Response:
        return Response.text(200, "long")

    server = serve(
        [
            Route(frozenset({"GET"}), "/a/", short, prefix=True),
            Route(frozenset({"GET"}), "/a/b/", long, prefix=True),
        ]
    )
    assert httpx.get(f"{server.url}/a/b/c").text == "long"
    assert httpx.get(f"{server.url}/a/c").text == "short"


def test_refusal_with_complete_body_keeps_the_connection(serve: Serve, wire: Any) -> None:
    server = serve(wire.echo_routes())
    with httpx.Client(base_url=server.url) as client:
        assert client.put("/nowhere", content=b"x" * 100).status_code == 404
        assert client.put("/echo", content=b"y").status_code == 200
    assert server.stats.connections_total == 1


# --- bodies: sizes and encodings ------------------------------------------------------------------


def test_content_length_over_limit_refused_before_the_body(serve: Serve, wire: Any) -> None:
    server, seen = _refusals(serve, wire, limits=HttpLimits(max_body_bytes=1000))
    head = b"PUT /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000000000\r\nUser-Agent: big\r\n\r\n"
    raw = wire.exchange(server.port, head)
    assert wire.status_of(raw) == 413
    assert b"exceeds 1000 B (the body size limit)" in raw
    assert seen[0].reason == "too_large" and seen[0].user_agent == "big" and seen[0].wire_bytes == 0
    assert server.stats.refused == {"too_large": 1}


def test_chunked_body_over_limit(serve: Serve, wire: Any) -> None:
    server, seen = _refusals(serve, wire, limits=HttpLimits(max_body_bytes=10_000))

    def chunks() -> Iterator[bytes]:
        for _ in range(100):
            yield b"z" * 1000

    response = httpx.post(f"{server.url}/echo", content=chunks())
    assert response.status_code == 413
    assert seen[0].reason == "too_large"


ENCODED = [
    pytest.param("gzip", gzip.compress(b"a 1\n" * 500), id="gzip"),
    pytest.param("x-gzip", gzip.compress(b"a 1\n" * 500), id="x-gzip"),
    pytest.param(
        "gzip", gzip.compress(b"a 1\n" * 250) + gzip.compress(b"a 1\n" * 250), id="gzip-two-members"
    ),
    pytest.param("deflate", zlib.compress(b"a 1\n" * 500), id="deflate-zlib"),
    pytest.param("deflate", zlib.compress(b"a 1\n" * 500, wbits=-15), id="deflate-raw"),
    pytest.param("snappy", bytes(cramjam.snappy.compress(b"a 1\n" * 500)), id="snappy-framed"),
    pytest.param("snappy", bytes(cramjam.snappy.compress_raw(b"a 1\n" * 500)), id="snappy-raw"),
    pytest.param("identity", b"a 1\n" * 500, id="identity"),
    pytest.param("GZIP", gzip.compress(b"a 1\n" * 500), id="upper-case"),
]


@pytest.mark.parametrize(("encoding", "payload"), ENCODED)
def test_content_encodings_decoded(serve: Serve, wire: Any, encoding: str, payload: bytes) -> None:
    server = serve(wire.echo_routes())
    response = httpx.put(f"{server.url}/echo", content=payload, headers={"Content-Encoding": encoding})
    assert response.status_code == 200, response.text
    seen = response.json()
    assert seen["body"] == "a 1\n" * 500
    assert seen["wire_bytes"] == len(payload)
    assert seen["content_encoding"] == encoding
    assert server.stats.body_decoded_bytes == 2000


def test_large_snappy_framed_body_in_many_chunks(serve: Serve, wire: Any) -> None:
    data = b"".join(f"metric_{i} {i}\n".encode() for i in range(100_000))
    server = serve(wire.echo_routes())
    payload = bytes(cramjam.snappy.compress(data))

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(payload), 777):
            yield payload[start : start + 777]

    response = httpx.put(f"{server.url}/echo", content=chunks(), headers={"Content-Encoding": "snappy"})
    assert response.status_code == 200
    assert response.json()["body_len"] == len(data)


def test_raw_body_route_keeps_the_encoding_to_the_handler(serve: Serve, wire: Any) -> None:
    server = serve(wire.echo_routes(decode_body=False))
    payload = bytes(cramjam.snappy.compress_raw(b"write request"))
    response = httpx.post(f"{server.url}/echo", content=payload, headers={"Content-Encoding": "snappy"})
    assert response.json()["body"] == payload.decode("latin-1")
    # Unknown encodings too: the handler decides.
    response = httpx.post(f"{server.url}/echo", content=b"x", headers={"Content-Encoding": "zstd"})
    assert response.status_code == 200


def test_unsupported_encoding_is_415(serve: Serve, wire: Any) -> None:
    server, seen = _refusals(serve, wire)
    response = httpx.put(f"{server.url}/echo", content=b"xx", headers={"Content-Encoding": "br"})
    assert response.status_code == 415
    assert "unsupported Content-Encoding 'br'" in response.text
    assert response.headers["accept-encoding"] == "gzip, deflate, snappy, identity"
    assert seen[0].reason == "unsupported_encoding" and seen[0].content_encoding == "br"


@pytest.mark.parametrize(
    ("encoding", "payload", "words"),
    [
        pytest.param("gzip", b"not gzip at all", "gzip body is corrupt", id="gzip-garbage"),
        pytest.param(
            "gzip", gzip.compress(b"a 1\n" * 100)[:-12], "gzip body is truncated", id="gzip-truncated"
        ),
        pytest.param("gzip", gzip.compress(b"a") + b"trailing", "gzip body is corrupt", id="gzip-trailing"),
        pytest.param("deflate", b"\x78\x9c\xff\xff", "deflate body is corrupt", id="deflate-garbage"),
        pytest.param(
            "snappy", b"\xff\x06\x00\x00sNaPpY\x00\x10\x00\x00" + b"\x00" * 16, "snappy", id="snappy-crc"
        ),
        pytest.param("snappy", b"\xff\x06\x00\x00sNaPpY\x05\x01\x00\x00x", "reserved", id="snappy-reserved"),
        pytest.param("snappy", b"\xff\x06\x00\x00sNaPpY\x01\x09\x00", "truncated", id="snappy-framed-cut"),
        pytest.param("snappy", b"\x20\xff\xff\xff", "snappy body is corrupt", id="snappy-raw-garbage"),
        pytest.param("snappy", b"\x80\x80", "truncated", id="snappy-raw-cut-header"),
    ],
)
def test_corrupt_bodies_are_400(serve: Serve, wire: Any, encoding: str, payload: bytes, words: str) -> None:
    server, seen = _refusals(serve, wire)
    response = httpx.put(f"{server.url}/echo", content=payload, headers={"Content-Encoding": encoding})
    assert response.status_code == 400, response.text
    assert words in response.text
    assert seen[0].reason == "bad_encoding"


@pytest.fixture(scope="module")
def gzip_bomb() -> bytes:
    """1 GiB of zeros, gzip-compressed (about 1 MiB)."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = bytes(16 * 1024 * 1024)
    parts = [compressor.compress(block) for _ in range(64)]
    parts.append(compressor.flush())
    return b"".join(parts)


def _maxrss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def test_gzip_bomb_refused_by_ratio_with_bounded_memory(serve: Serve, wire: Any, gzip_bomb: bytes) -> None:
    server, seen = _refusals(serve, wire)
    before = _maxrss_bytes()
    response = httpx.put(f"{server.url}/echo", content=gzip_bomb, headers={"Content-Encoding": "gzip"})
    assert response.status_code == 413
    assert "decompression bomb" in response.text
    assert seen[0].reason == "ratio"
    # Inflating it would take 1 GiB; refusing it costs a few hundred KiB of output.
    assert _maxrss_bytes() - before < 200 * 1024 * 1024
    assert server.stats.body_decoded_bytes == 0
    # The server is fine afterwards.
    assert httpx.get(f"{server.url}/echo").status_code == 200


def test_gzip_bomb_refused_by_size_when_ratio_allows(serve: Serve, wire: Any, gzip_bomb: bytes) -> None:
    limits = HttpLimits(max_body_bytes=4 * 1024 * 1024, max_decompression_ratio=1e9)
    server, seen = _refusals(serve, wire, limits=limits)
    response = httpx.put(f"{server.url}/echo", content=gzip_bomb, headers={"Content-Encoding": "gzip"})
    assert response.status_code == 413
    assert "decodes to more than 4 MiB" in response.text
    assert seen[0].reason == "too_large"


def test_small_repetitive_gzip_is_not_a_bomb(serve: Serve, wire: Any) -> None:
    server = serve(wire.echo_routes())
    payload = gzip.compress(bytes(512 * 1024))  # ratio ~1000, but under ratio_min_bytes
    response = httpx.put(f"{server.url}/echo", content=payload, headers={"Content-Encoding": "gzip"})
    assert response.status_code == 200


def _uvarint(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def test_snappy_raw_bomb_refused_on_its_declared_length(serve: Serve, wire: Any) -> None:
    server, seen = _refusals(serve, wire)
    payload = _uvarint(1 << 40) + b"\x00" * 64
    response = httpx.put(f"{server.url}/echo", content=payload, headers={"Content-Encoding": "snappy"})
    assert response.status_code == 413
    assert "declares 1024 GiB decoded" in response.text
    assert seen[0].reason == "too_large"


def test_snappy_raw_lying_length_refused_by_ratio(serve: Serve, wire: Any) -> None:
    server, seen = _refusals(serve, wire)
    payload = _uvarint(32 * 1024 * 1024) + b"\x00" * 64
    response = httpx.put(f"{server.url}/echo", content=payload, headers={"Content-Encoding": "snappy"})
    assert response.status_code == 413
    assert seen[0].reason == "ratio"


def test_snappy_framed_bomb_refused_by_size(serve: Serve, wire: Any) -> None:
    limits = HttpLimits(max_body_bytes=1024 * 1024)
    server, seen = _refusals(serve, wire, limits=limits)
    payload = bytes(cramjam.snappy.compress(bytes(16 * 1024 * 1024)))
    assert len(payload) < 1024 * 1024  # the wire limit alone would let it in
    response = httpx.put(f"{server.url}/echo", content=payload, headers={"Content-Encoding": "snappy"})
    assert response.status_code == 413
    assert "snappy body decodes to more than 1 MiB" in response.text
    assert seen[0].reason == "too_large"


# --- slow and stuck clients ------------------------------------------------------------------------


def test_slowloris_is_cut_off_while_others_are_served(serve: Serve, wire: Any) -> None:
    server, seen = _refusals(serve, wire, limits=SMALL)
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as slow:
        slow.sendall(b"PUT /echo HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        # Meanwhile a normal client is served on another connection.
        assert httpx.put(f"{server.url}/echo", content=b"ok").json()["body"] == "ok"
        raw = wire.read_until_closed(slow)
    assert wire.status_of(raw) == 408
    assert b"request head not received within 0.2s" in raw
    assert server.stats.refused["header_timeout"] == 1
    assert seen[0].reason == "header_timeout" and seen[0].peer.startswith("127.0.0.1:")


def test_silent_connection_times_out(serve: Serve, wire: Any) -> None:
    server = serve(wire.echo_routes(), limits=SMALL)
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as silent:
        raw = wire.read_until_closed(silent)
    assert wire.status_of(raw) == 408
    assert server.stats.refused == {"header_timeout": 1}


def test_slow_body_times_out(serve: Serve, wire: Any) -> None:
    server, seen = _refusals(serve, wire, limits=SMALL)
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as slow:
        slow.sendall(b"PUT /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789")
        raw = wire.read_until_closed(slow)
    assert wire.status_of(raw) == 408
    assert b"request body not received within 0.2s (10 B arrived)" in raw
    assert seen[0].reason == "body_timeout" and seen[0].wire_bytes == 10


def test_idle_keep_alive_connection_is_closed(serve: Serve, wire: Any) -> None:
    server = serve(wire.echo_routes(), limits=SMALL)
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(b"GET /echo HTTP/1.1\r\nHost: x\r\n\r\n")
        status, _, _ = wire.read_response(sock)
        assert status == 200
        assert wire.read_until_closed(sock) == b""  # closed by the server, nothing more said
    assert server.stats.idle_closed == 1
    assert server.stats.refused == {}


def test_client_gone_mid_body_is_counted(serve: Serve, wire: Any, loop_thread: Any) -> None:
    server, seen = _refusals(serve, wire)
    raw = wire.exchange(
        server.port, b"PUT /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc", shutdown=True
    )
    assert raw == b""
    assert seen[0].reason == "incomplete_body" and seen[0].status is None


def test_max_connections(serve: Serve, wire: Any) -> None:
    server, seen = _refusals(serve, wire, limits=HttpLimits(max_connections=2))
    open_socks = []
    try:
        for _ in range(2):
            sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
            sock.sendall(b"GET /echo HTTP/1.1\r\nHost: x\r\n\r\n")
            assert wire.read_response(sock)[0] == 200  # accepted, and kept open
            open_socks.append(sock)
        raw = wire.exchange(server.port, b"GET /echo HTTP/1.1\r\nHost: x\r\n\r\n")
        assert wire.status_of(raw) == 503
        assert b"too many connections (max_connections=2)" in raw
        assert seen[-1].reason == "max_connections"
    finally:
        for sock in open_socks:
            sock.close()


def test_expect_100_continue(serve: Serve, wire: Any) -> None:
    server = serve(wire.echo_routes(), limits=HttpLimits(max_body_bytes=100))
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(b"PUT /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
        assert sock.recv(1024).startswith(b"HTTP/1.1 100 ")
        sock.sendall(b"hello")
        status, _, body = wire.read_response(sock)
        assert status == 200 and b'"body":"hello"' in body
    # Over the limit: refused at once, no 100 Continue, so the client never sends the body.
    head = b"PUT /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\nExpect: 100-continue\r\n\r\n"
    raw = wire.exchange(server.port, head)
    assert wire.status_of(raw) == 413 and b" 100 " not in raw.split(b"\r\n")[0]


@pytest.mark.parametrize(
    ("data", "status", "reason"),
    [
        pytest.param(b"NONSENSE\r\n\r\n", 400, "bad_request", id="no-version"),
        pytest.param(b"GET / HTTP/1.1\r\n\r\n", 400, "bad_request", id="no-host"),
        pytest.param(b"GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n", 400, "bad_request", id="bad-header"),
        pytest.param(
            b"GET / HTTP/1.1\r\nHost: x\r\nX: " + b"a" * 70000, 431, "header_too_large", id="huge-head"
        ),
        pytest.param(
            b"PUT /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
            400,
            "bad_request",
            id="two-lengths",
        ),
        pytest.param(
            b"PUT /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            400,
            "bad_request",
            id="bad-chunk",
        ),
    ],
)
def test_malformed_requests(serve: Serve, wire: Any, data: bytes, status: int, reason: str) -> None:
    server, seen = _refusals(serve, wire)
    raw = wire.exchange(server.port, data)
    assert wire.status_of(raw) == status
    assert server.stats.refused == {reason: 1}
    assert seen[0].reason == reason


# --- handlers --------------------------------------------------------------------------------------


def test_handler_exception_is_500_and_counted(serve: Serve, wire: Any) -> None:
    async def broken(request: Request) -> Response:
        raise RuntimeError("boom\nsecond line")

    async def not_a_response(request: Request) -> Response:
        return "nope"  # type: ignore[return-value]

    server = serve(
        [
            Route(frozenset({"GET"}), "/broken", broken),
            Route(frozenset({"GET"}), "/odd", not_a_response),
            *wire.echo_routes(),
        ]
    )
    with httpx.Client(base_url=server.url) as client:
        response = client.get("/broken")
        assert response.status_code == 500
        assert response.text == "internal error: RuntimeError: boom\n"
        assert client.get("/odd").status_code == 500
        assert client.get("/echo").status_code == 200
    assert server.stats.handler_errors == 2
    assert server.stats.responses == {500: 2, 200: 1}


def test_slow_handler_does_not_block_others(serve: Serve, wire: Any, loop_thread: Any) -> None:
    import asyncio

    release = asyncio.Event()

    async def slow(request: Request) -> Response:
        await release.wait()
        return Response.text(200, "slow")

    server = serve([Route(frozenset({"GET"}), "/slow", slow), *wire.echo_routes()])
    result: dict[str, str] = {}
    thread = threading.Thread(target=lambda: result.update(slow=httpx.get(f"{server.url}/slow").text))
    thread.start()
    assert httpx.get(f"{server.url}/echo").status_code == 200
    loop_thread.call(release.set)
    thread.join(5)
    assert result == {"slow": "slow"}


def test_on_refused_errors_do_not_hurt(serve: Serve, wire: Any) -> None:
    def bad(refused: RefusedRequest) -> None:
        raise ValueError("callback bug")

    server = serve(wire.echo_routes(), on_refused=bad)
    assert httpx.get(f"{server.url}/missing").status_code == 404
    assert httpx.get(f"{server.url}/echo").status_code == 200
    assert server.stats.on_refused_errors == 1


# --- auth ------------------------------------------------------------------------------------------


def _basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def test_basic_auth(serve: Serve, wire: Any) -> None:
    server, seen = _refusals(serve, wire, auth=Auth(basic=(("alice", "s3cret"), ("bob", "pw"))))
    url = f"{server.url}/echo"
    assert httpx.get(url, headers=_basic("alice", "s3cret")).status_code == 200
    assert httpx.get(url, headers=_basic("bob", "pw")).status_code == 200
    wrong = httpx.get(url, headers=_basic("alice", "nope"))
    assert wrong.status_code == 401
    assert wrong.headers["www-authenticate"] == 'Basic realm="promscope", charset="UTF-8"'
    assert "missing or wrong credentials" in wrong.text
    missing = httpx.get(url)
    assert missing.status_code == 401 and "authentication required" in missing.text
    assert httpx.get(url, headers={"Authorization": "Basic !!!not-base64"}).status_code == 401
    assert httpx.get(url, headers={"Authorization": "Bearer s3cret"}).status_code == 401
    assert server.stats.refused == {"auth": 4}
    assert {r.reason for r in seen} == {"auth"}


def test_bearer_and_basic_together(serve: Serve, wire: Any) -> None:
    server = serve(wire.echo_routes(), auth=Auth(basic=(("u", "p"),), bearer_tokens=("tok-1", "tok-2")))
    url = f"{server.url}/echo"
    assert httpx.get(url, headers={"Authorization": "Bearer tok-2"}).status_code == 200
    assert httpx.get(url, headers={"Authorization": "bearer tok-1"}).status_code == 200
    assert httpx.get(url, headers=_basic("u", "p")).status_code == 200
    refused = httpx.get(url, headers={"Authorization": "Bearer tok-3"})
    assert refused.status_code == 401
    assert refused.headers.get_list("www-authenticate") == [
        'Basic realm="promscope", charset="UTF-8"',
        'Bearer realm="promscope"',
    ]


def test_auth_refusal_with_large_body_does_not_read_it(serve: Serve, wire: Any) -> None:
    server = serve(wire.echo_routes(), auth=Auth(bearer_tokens=("t",)))
    head = b"PUT /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 50000000\r\n\r\n"
    raw = wire.exchange(server.port, head + b"x" * 1000)
    assert wire.status_of(raw) == 401


def test_empty_auth_means_open(serve: Serve, wire: Any) -> None:
    server = serve(wire.echo_routes(), auth=Auth())
    assert httpx.get(f"{server.url}/echo").status_code == 200


# --- TLS -------------------------------------------------------------------------------------------


def test_tls(serve: Serve, wire: Any, tls_files: Any) -> None:
    tls = ServerTLS(str(tls_files.server_cert), str(tls_files.server_key))
    server = serve(wire.echo_routes(), tls=tls)
    assert server.url.startswith("https://")
    context = ssl.create_default_context(cafile=str(tls_files.ca_cert))
    response = httpx.put(f"{server.url}/echo", content=b"secure", verify=context)
    assert response.status_code == 200
    assert response.json()["scheme"] == "https"
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{server.url}/echo")  # the test CA is not trusted by default


def test_tls_client_certificate_required(serve: Serve, wire: Any, tls_files: Any) -> None:
    tls = ServerTLS(str(tls_files.server_cert), str(tls_files.server_key), str(tls_files.ca_cert))
    server = serve(wire.echo_routes(), tls=tls)
    anonymous = ssl.create_default_context(cafile=str(tls_files.ca_cert))
    with pytest.raises((httpx.ConnectError, httpx.ReadError, httpx.RemoteProtocolError)):
        httpx.get(f"{server.url}/echo", verify=anonymous)
    with_cert = ssl.create_default_context(cafile=str(tls_files.ca_cert))
    with_cert.load_cert_chain(str(tls_files.client_cert), str(tls_files.client_key))
    assert httpx.get(f"{server.url}/echo", verify=with_cert).status_code == 200


def test_tls_files_that_do_not_load_are_config_errors(loop_thread: Any, tmp_path: Any) -> None:
    server = HttpServer([], tls=ServerTLS(str(tmp_path / "missing.pem"), str(tmp_path / "missing-key.pem")))
    with pytest.raises(ConfigError, match="cannot load the TLS certificate"):
        loop_thread.run(server.start())


# --- lifecycle ------------------------------------------------------------------------------------


def test_port_in_use_is_a_listen_error(serve: Serve, wire: Any, loop_thread: Any) -> None:
    first = serve(wire.echo_routes())
    second = HttpServer(wire.echo_routes(), port=first.port, name="pushgateway")
    with pytest.raises(ListenError) as caught:
        loop_thread.run(second.start())
    assert caught.value.address == f"127.0.0.1:{first.port}"
    assert f"127.0.0.1:{first.port}: cannot listen for pushgateway" in str(caught.value)


def test_stop_closes_keep_alive_connections(serve: Serve, wire: Any, loop_thread: Any) -> None:
    server = serve(wire.echo_routes())
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(b"GET /echo HTTP/1.1\r\nHost: x\r\n\r\n")
        assert wire.read_response(sock)[0] == 200
        loop_thread.run(server.stop())
        assert wire.read_until_closed(sock) == b""
    assert not server.running
    assert server.stats.connections_open == 0


def test_human_bytes() -> None:
    assert human_bytes(0) == "0 B"
    assert human_bytes(1536) == "1.5 KiB"
    assert human_bytes(64 * 1024 * 1024) == "64 MiB"
    assert human_bytes(3 * 1024**4) == "3072 GiB"


def test_request_body_is_bytes_for_every_encoding() -> None:
    import asyncio
    import gzip

    import httpx

    from promscope.receive.http import HttpServer, Response, Route

    seen: list[type] = []

    async def handler(request: Request) -> Response:
        seen.append(type(request.body))
        return Response(200)

    async def main() -> None:
        server = HttpServer([Route(frozenset({"POST"}), "/x", handler)])
        await server.start()
        try:
            async with httpx.AsyncClient() as client:
                await client.post(f"{server.url}/x", content=b"plain body")
                await client.post(
                    f"{server.url}/x", content=gzip.compress(b"zipped"), headers={"content-encoding": "gzip"}
                )
        finally:
            await server.stop()

    asyncio.run(main())
    assert seen == [bytes, bytes]
