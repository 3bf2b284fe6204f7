"""Helpers for the receiver tests: an event loop in a thread, servers on it, raw sockets.

Fixtures defined here:

``serve``
    ``serve(routes, **HttpServer kwargs) -> HttpServer``: a started server on
    127.0.0.1 and a free port, stopped at teardown.
(``loop_thread``, ``module_loop`` and ``tls_files`` live in ``tests/conftest.py``.)

``wire``
    The helpers below as one object (test modules cannot import each other or
    this file): ``wire.echo`` (a handler answering with what it saw, as JSON),
    ``wire.echo_routes()``, ``wire.exchange(port, data)`` (send raw bytes, read
    until the server closes), ``wire.read_response(sock)``, ``wire.status_of(raw)``,
    ``wire.body_json(raw)``.
"""

from __future__ import annotations

import contextlib
import json
import socket
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest

from promscope.receive.http import HttpServer, Request, Response, Route

if TYPE_CHECKING:  # the class lives in tests/conftest.py, which pytest loads itself
    from tests.conftest import LoopThread

ALL_METHODS = frozenset({"GET", "PUT", "POST", "DELETE"})


@pytest.fixture
def serve(loop_thread: LoopThread) -> Iterator[Callable[..., HttpServer]]:
    started: list[HttpServer] = []

    def start(routes: list[Route], **kwargs: Any) -> HttpServer:
        server = HttpServer(routes, **kwargs)
        loop_thread.run(server.start())
        started.append(server)
        return server

    try:
        yield start
    finally:
        for server in started:
            loop_thread.run(server.stop())


async def echo(request: Request) -> Response:
    """Answer with what the handler saw (body as latin-1 text)."""
    return Response.json(
        200,
        {
            "method": request.method,
            "target": request.target,
            "path": request.path,
            "query": request.query,
            "headers": [list(pair) for pair in request.headers],
            "body": request.body.decode("latin-1"),
            "body_len": len(request.body),
            "wire_bytes": request.wire_bytes,
            "content_encoding": request.content_encoding,
            "peer": request.peer,
            "scheme": request.scheme,
            "received_at": request.received_at,
            "user_agent": request.user_agent,
            "content_type": request.content_type,
        },
    )


def echo_routes(**route_kwargs: Any) -> list[Route]:
    return [
        Route(ALL_METHODS, "/echo", echo, **route_kwargs),
        Route(ALL_METHODS, "/prefix/", echo, prefix=True, **route_kwargs),
    ]


def exchange(port: int, data: bytes, *, timeout: float = 5.0, shutdown: bool = False) -> bytes:
    """Send ``data`` on a fresh connection and read until the server closes it (or ``timeout``)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        with contextlib.suppress(OSError):
            sock.sendall(data)
            if shutdown:
                sock.shutdown(socket.SHUT_WR)
        return read_until_closed(sock, timeout)


def read_until_closed(sock: socket.socket, timeout: float = 5.0) -> bytes:
    sock.settimeout(timeout)
    chunks: list[bytes] = []
    with contextlib.suppress(OSError):  # reset or timeout: return what arrived
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
    return b"".join(chunks)


def read_response(sock: socket.socket, timeout: float = 5.0) -> tuple[int, dict[str, str], bytes]:
    """Read one Content-Length-framed response from ``sock``."""
    sock.settimeout(timeout)
    buffer = b""
    while b"\r\n\r\n" not in buffer:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed before a full response head: {buffer!r}")
        buffer += chunk
    head, _, rest = buffer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    while len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        rest += chunk
    return status, headers, rest[:length]


def status_of(raw: bytes) -> int | None:
    """The status code of the first response in ``raw``, or None when nothing came back."""
    if not raw.startswith(b"HTTP/1.1 "):
        return None
    return int(raw[9:12])


def body_json(raw: bytes) -> Any:
    return json.loads(raw.partition(b"\r\n\r\n")[2])


class Wire:
    """The module's helpers, handed to tests by the ``wire`` fixture."""

    ALL_METHODS = ALL_METHODS
    echo = staticmethod(echo)
    echo_routes = staticmethod(echo_routes)
    exchange = staticmethod(exchange)
    read_until_closed = staticmethod(read_until_closed)
    read_response = staticmethod(read_response)
    status_of = staticmethod(status_of)
    body_json = staticmethod(body_json)


@pytest.fixture(scope="session")
def wire() -> type[Wire]:
    return Wire
