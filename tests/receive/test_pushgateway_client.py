"""prometheus_client's push_to_gateway, pushadd_to_gateway and delete_from_gateway, pointed at promscope."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from concurrent.futures import Future
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Summary
from prometheus_client.exposition import delete_from_gateway, push_to_gateway, pushadd_to_gateway

from promscope.observation import Observation, Outcome
from promscope.receive.http import HttpServer
from promscope.receive.pushgateway import PushgatewayReceiver


class Served:
    """The receiver behind promscope's HTTP server, on an event loop in a thread (the client blocks)."""

    def __init__(self) -> None:
        self.seen: list[Observation] = []
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.receiver = PushgatewayReceiver(sink=self.seen.append)
        self.server = HttpServer(self.receiver.routes())
        self.call(self.server.start())

    def call(self, coro: Any) -> Any:
        future: Future[Any] = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return future.result(timeout=30)

    def series(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        async def read() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
            return {
                (s.name, tuple(sorted(s.labels))): s.value
                for f in self.receiver.exposition_families()
                if not f.name.startswith("promscope_") and not f.name.startswith("push_")
                for s in f.samples
            }

        result: dict[tuple[str, tuple[tuple[str, str], ...]], float] = self.call(read())
        return result

    def settle(self) -> None:
        """Let the loop run the observation hand-overs scheduled after the last response."""
        self.call(asyncio.sleep(0))

    def close(self) -> None:
        self.call(self.server.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()


@pytest.fixture
def served() -> Iterator[Served]:
    server = Served()
    try:
        yield server
    finally:
        server.close()


def test_push_pushadd_and_delete_work_unchanged(served: Served) -> None:
    gateway = served.server.address
    registry = CollectorRegistry()
    done = Counter("jobs_done", "Jobs done.", ["kind"], registry=registry)
    done.labels("full").inc(3)
    Gauge("last_success_unixtime", "Last success.", registry=registry).set(1234.5)
    Histogram("duration_seconds", "Duration.", buckets=(0.1, 1.0), registry=registry).observe(0.5)
    Summary("payload_bytes", "Payload.", registry=registry).observe(42)
    grouping = {"instance": "host/1", "shard": ""}  # a slash and an empty value: base64 in the URL

    push_to_gateway(gateway, job="nightly", registry=registry, grouping_key=grouping)
    labels = (("instance", "host/1"), ("job", "nightly"), ("shard", ""))
    series = served.series()
    assert (
        series[("jobs_done_total", (*labels[:1], ("job", "nightly"), ("kind", "full"), ("shard", "")))] == 3.0
    )
    assert series[("last_success_unixtime", labels)] == 1234.5
    assert series[("duration_seconds_bucket", tuple(sorted((*labels, ("le", "1")))))] == 1.0
    assert series[("payload_bytes_sum", labels)] == 42.0

    other = CollectorRegistry()
    Gauge("last_success_unixtime", "Last success.", registry=other).set(99.0)
    pushadd_to_gateway(gateway, job="nightly", registry=other, grouping_key=grouping)
    series = served.series()
    assert series[("last_success_unixtime", labels)] == 99.0
    assert ("payload_bytes_sum", labels) in series  # POST kept the other families

    push_to_gateway(gateway, job="nightly", registry=other, grouping_key=grouping)
    assert ("payload_bytes_sum", labels) not in served.series()  # PUT replaced the group

    delete_from_gateway(gateway, job="nightly", grouping_key=grouping)
    assert served.series() == {}
    served.settle()
    assert [o.outcome for o in served.seen] == [Outcome.ACCEPTED] * 4
    assert {o.source for o in served.seen} == {"job=nightly/instance=host/1/shard="}
    assert all(o.transport.user_agent and "Python" in o.transport.user_agent for o in served.seen)


def test_a_refused_push_raises_in_the_client_with_every_error(served: Served) -> None:
    gateway = served.server.address
    registry = CollectorRegistry()
    Gauge("clash_total", "A gauge.", registry=registry).set(1)
    push_to_gateway(gateway, job="a", registry=registry)
    registry = CollectorRegistry()
    Counter("clash", "A counter.", registry=registry).inc()  # exposed as the counter clash_total
    with pytest.raises(OSError, match="400"):
        push_to_gateway(gateway, job="b", registry=registry)
    served.settle()
    rejected = served.seen[-1]
    assert rejected.outcome is Outcome.REJECTED
    assert {d.code for d in rejected.errors()} == {"PG-002"}
