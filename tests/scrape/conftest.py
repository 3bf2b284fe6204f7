"""Helpers for the scrape-loop tests: a virtual clock, canned expositions, mock and real targets.

``async def`` tests in this folder run under ``asyncio.run`` (the hook below), one fresh event loop each.
Test modules cannot import this file (pytest imports test files by path), so helpers come as fixtures:

``virtual_clock``
    A :class:`VirtualClock`: ``time()`` (wall and monotonic alike), ``sleep()``
    and ``advance(seconds)``, which runs every task due in that span in due
    order without waiting for real time. Pass ``clock=vc.time,
    monotonic=vc.time, sleep=vc.sleep`` to a ScrapeManager.
``expo``
    ``expo(n)``: a text exposition of ``n`` gauge series (bytes); ``expo.response(body)`` an httpx response.
``recorder``
    A sink that keeps every observation.
``serve_http``
    Starts a ``http.server`` on 127.0.0.1 with a handler function, in a thread,
    and stops it at teardown; returns its base URL.
``fake_resolver``
    A :class:`FakeResolver`: canned DNS answers by name, no network.
"""

from __future__ import annotations

import asyncio
import heapq
import http.server
import inspect
import itertools
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import httpx
import pytest

from promscope.scrape.sd import SrvRecord

TEXT = "text/plain; version=0.0.4; charset=utf-8"


class VirtualClock:
    """Time that moves only when a test says so."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.now = start
        self._waiters: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()

    def time(self) -> float:
        return self.now

    async def sleep(self, delay: float) -> None:
        if delay <= 0:
            await asyncio.sleep(0)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiters, (self.now + delay, next(self._seq), future))
        await future

    async def settle(self) -> None:
        """Let every task that can run, run (until it waits on this clock)."""
        for _ in range(200):
            await asyncio.sleep(0)

    async def advance(self, seconds: float) -> None:
        end = self.now + seconds
        await self.settle()
        while self._waiters and self._waiters[0][0] <= end:
            when, _, future = heapq.heappop(self._waiters)
            self.now = max(self.now, when)
            if not future.done():
                future.set_result(None)
            await self.settle()
        self.now = end
        await self.settle()


@pytest.fixture
def virtual_clock() -> VirtualClock:
    return VirtualClock()


def exposition(n: int = 3, *, name: str = "demo_value", value: float = 1.0, extra: str = "") -> bytes:
    lines = [f"# HELP {name} A demo gauge.", f"# TYPE {name} gauge"]
    lines.extend(f'{name}{{idx="{i}"}} {value + i}' for i in range(n))
    return ("\n".join(lines) + "\n" + extra).encode()


def text_response(body: bytes, status: int = 200, content_type: str = TEXT) -> httpx.Response:
    return httpx.Response(status, content=body, headers={"Content-Type": content_type})


@dataclass
class Recorder:
    """A sink that keeps every observation."""

    observations: list = field(default_factory=list)

    def __call__(self, observation: object) -> None:
        self.observations.append(observation)

    def by_source(self, source: str) -> list:
        return [o for o in self.observations if o.source == source]


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


class Expo:
    """Canned expositions and responses."""

    def __call__(self, n: int = 3, **kwargs: object) -> bytes:
        return exposition(n, **kwargs)  # type: ignore[arg-type]

    @staticmethod
    def response(body: bytes, status: int = 200, content_type: str = TEXT) -> httpx.Response:
        return text_response(body, status, content_type)


@pytest.fixture
def expo() -> Expo:
    return Expo()


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    """Run ``async def`` tests of this folder with ``asyncio.run``."""
    if not inspect.iscoroutinefunction(pyfuncitem.obj):
        return None
    names = pyfuncitem._fixtureinfo.argnames
    asyncio.run(pyfuncitem.obj(**{name: pyfuncitem.funcargs[name] for name in names}))
    return True


class FakeResolver:
    """Canned answers: ``answers[name]`` is a list of records or an exception to raise."""

    def __init__(self) -> None:
        self.answers: dict[str, list[SrvRecord] | Exception] = {}
        self.calls: list[tuple[str, str]] = []

    async def __call__(self, name: str, rdtype: str) -> list[SrvRecord]:
        self.calls.append((name, rdtype))
        answer = self.answers.get(name, [])
        if isinstance(answer, Exception):
            raise answer
        return list(answer)


@pytest.fixture
def fake_resolver() -> FakeResolver:
    return FakeResolver()


Handler = Callable[[http.server.BaseHTTPRequestHandler], None]


@pytest.fixture
def serve_http() -> Iterator[Callable[[Handler], str]]:
    servers: list[http.server.ThreadingHTTPServer] = []

    def start(handle: Handler) -> str:
        class _Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                handle(self)

            def log_message(self, *args: object) -> None:
                return

        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def reply(
    handler: http.server.BaseHTTPRequestHandler, body: bytes, status: int = 200, ctype: str = TEXT
) -> None:
    handler.send_response(status)
    handler.send_header("Content-Type", ctype)
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)
