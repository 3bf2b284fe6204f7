"""ReceiverServer: several receivers per address, the shared /metrics, refusals as observations, lifecycle."""

from __future__ import annotations

import gzip
import socket
from typing import Any

import httpx
import pytest

from promscope.errors import ConfigError, ListenError
from promscope.exposition import parse
from promscope.model import MetricFamily, MetricType, Sample
from promscope.observation import Observation, ObservationKind, Outcome, Transport
from promscope.receive.http import HttpLimits, RefusedRequest, Request, Response, Route
from promscope.receive.log import PushLog
from promscope.receive.server import (
    FanOut,
    ReceiverServer,
    choose_exposition,
    merge_families,
    parse_address,
)


def gauge(name: str, *samples: tuple[tuple[tuple[str, str], ...], float]) -> MetricFamily:
    return MetricFamily(
        name, MetricType.GAUGE, f"{name} help", None, tuple(Sample(name, labels, v) for labels, v in samples)
    )


class FakeHttpReceiver:
    """Answers one path, records an observation per request, exposes one family."""

    def __init__(
        self, path: str, kind: ObservationKind, sink: Any, family: MetricFamily | None = None
    ) -> None:
        self.path = path
        self.kind = kind
        self.sink = sink
        self.family = family
        self.events: list[str] = []

    def routes(self) -> list[Route]:
        return [Route(frozenset({"POST", "PUT"}), self.path, self.handle)]

    async def handle(self, request: Request) -> Response:
        self.sink(
            Observation(
                kind=self.kind,
                source=self.path,
                time=request.received_at,
                outcome=Outcome.ACCEPTED,
                transport=Transport(protocol=request.scheme, sender=request.peer, status=200),
            )
        )
        return Response.text(200, f"{self.kind.value} got {len(request.body)} bytes")

    def exposition_families(self) -> list[MetricFamily]:
        return [self.family] if self.family else []


class LifecycleReceiver(FakeHttpReceiver):
    async def start(self) -> None:
        self.events.append("start")

    async def stop(self) -> None:
        self.events.append("stop")


class RefusalTaker(FakeHttpReceiver):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.refused: list[RefusedRequest] = []

    def on_refused(self, refused: RefusedRequest) -> None:
        self.refused.append(refused)


class FakeSocketReceiver:
    def __init__(self, family: MetricFamily) -> None:
        self.family = family
        self.running = False

    async def start(self) -> None:
        self.running = True

    async def stop(self) -> None:
        self.running = False

    def exposition_families(self) -> list[MetricFamily]:
        return [self.family]


@pytest.fixture
def run(loop_thread: Any) -> Any:
    started: list[ReceiverServer] = []

    def start(server: ReceiverServer) -> ReceiverServer:
        loop_thread.run(server.start())
        started.append(server)
        return server

    yield start
    for server in started:
        loop_thread.run(server.stop())


def test_receivers_share_an_address_and_each_gets_its_own_when_asked(run: Any) -> None:
    push_log = PushLog()
    server = ReceiverServer(sinks=[push_log])
    pushgateway = FakeHttpReceiver("/push", ObservationKind.PUSHGATEWAY, server.sink)
    remote_write = FakeHttpReceiver("/api/v1/write", ObservationKind.REMOTE_WRITE, server.sink)
    otlp = FakeHttpReceiver("/v1/metrics", ObservationKind.OTLP, server.sink)
    server.add_http(pushgateway, ("127.0.0.1", 0), name="pushgateway")
    server.add_http(remote_write, ("127.0.0.1", 0), name="remote_write")
    server.add_http(otlp, "127.0.0.1:0", name="otlp")  # same (host, 0) key: shared too
    run(server)
    assert len(server.servers) == 1
    urls = server.urls()
    assert urls["pushgateway"] == urls["remote_write"] == urls["otlp"]
    base = urls["pushgateway"]
    assert httpx.post(f"{base}/push", content=b"abc").text == "pushgateway got 3 bytes"
    assert httpx.post(f"{base}/api/v1/write", content=b"").text == "remote_write got 0 bytes"
    assert [o.kind for o in push_log] == [ObservationKind.PUSHGATEWAY, ObservationKind.REMOTE_WRITE]
    assert server.servers[0].name == "pushgateway+remote_write+otlp"


def test_separate_addresses(run: Any, free_port: Any) -> None:
    server = ReceiverServer()
    port_a, port_b = free_port(), free_port()
    server.add_http(
        FakeHttpReceiver("/a", ObservationKind.PUSHGATEWAY, server.sink), f"127.0.0.1:{port_a}", name="a"
    )
    server.add_http(
        FakeHttpReceiver("/b", ObservationKind.OTLP, server.sink), f"127.0.0.1:{port_b}", name="b"
    )
    run(server)
    assert server.urls() == {"a": f"http://127.0.0.1:{port_a}", "b": f"http://127.0.0.1:{port_b}"}
    assert httpx.post(f"http://127.0.0.1:{port_a}/a").status_code == 200
    assert httpx.post(f"http://127.0.0.1:{port_a}/b").status_code == 404
    # Every address serves /metrics and health.
    for port in (port_a, port_b):
        assert httpx.get(f"http://127.0.0.1:{port}/-/healthy").text == "OK"
        assert httpx.get(f"http://127.0.0.1:{port}/-/ready").text == "OK"
        assert httpx.get(f"http://127.0.0.1:{port}/metrics").status_code == 200


def test_metrics_merges_providers_and_adds_own_metrics(run: Any) -> None:
    push_log = PushLog()
    server = ReceiverServer(sinks=[push_log])
    receiver = FakeHttpReceiver(
        "/push", ObservationKind.PUSHGATEWAY, server.sink, gauge("shared", ((("job", "a"),), 1.0))
    )
    statsd = FakeSocketReceiver(gauge("shared", ((("job", "b"),), 2.0)))
    server.add_http(receiver, ("127.0.0.1", 0), name="pushgateway")
    server.add_socket(statsd, name="statsd")
    run(server)
    assert statsd.running
    base = server.urls()["pushgateway"]
    httpx.post(f"{base}/push", content=b"x")
    httpx.get(f"{base}/nowhere")
    response = httpx.get(f"{base}/metrics")
    assert response.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    result = parse(response.content, "text")
    assert not result.errors(), result.errors()
    shared = result.family("shared")
    assert shared is not None
    assert [dict(s.labels) for s in shared.samples] == [{"job": "a"}, {"job": "b"}]
    text = response.text
    assert 'promscope_http_requests_total{listener="127.0.0.1:' in text
    assert 'code="200"} 1' in text
    assert 'promscope_http_refused_total{listener="127.0.0.1:' in text and 'reason="not_found"} 1' in text
    assert 'promscope_observations_total{kind="pushgateway",outcome="accepted"} 1' in text
    assert 'promscope_push_log_dropped_total{what="events"} 0' in text
    assert "promscope_build_info{version=" in text


def test_metrics_negotiates_openmetrics_and_gzip(run: Any, wire: Any) -> None:
    server = ReceiverServer()
    big = gauge("big", *[((("i", str(i)),), float(i)) for i in range(200)])
    server.add_http(FakeHttpReceiver("/p", ObservationKind.PUSHGATEWAY, server.sink, big), ("127.0.0.1", 0))
    run(server)
    base = server.servers[0].url
    prometheus_accept = (
        "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,"
        "text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
    )
    response = httpx.get(f"{base}/metrics", headers={"Accept": prometheus_accept, "Accept-Encoding": "gzip"})
    assert response.headers["content-type"].startswith("application/openmetrics-text; version=1.0.0")
    assert response.headers["content-encoding"] == "gzip"
    assert response.text.endswith("# EOF\n")
    assert not parse(response.content, "openmetrics").errors()
    raw = httpx.get(f"{base}/metrics", headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in raw.headers
    port = server.servers[0].port
    request = b"GET /metrics HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\nConnection: close\r\n\r\n"
    on_the_wire = wire.exchange(port, request).partition(b"\r\n\r\n")[2]
    assert gzip.decompress(on_the_wire).startswith(b"# HELP big")


@pytest.mark.parametrize(
    ("accept", "fmt"),
    [
        (None, "text"),
        ("*/*", "text"),
        ("text/plain", "text"),
        ("application/openmetrics-text", "openmetrics"),
        ("text/plain;q=0.9, application/openmetrics-text;q=0.5", "text"),
        ("text/plain;version=1.0.0;escaping=allow-utf-8", "text-1.0.0"),
        ("application/openmetrics-text;q=0", "text"),
        ("application/json", "text"),
        ("application/openmetrics-text;q=bogus,text/plain", "text"),
    ],
)
def test_choose_exposition(accept: str | None, fmt: str) -> None:
    assert choose_exposition(accept)[0] == fmt


def test_refusals_become_observations_against_the_sender(run: Any) -> None:
    push_log = PushLog()
    server = ReceiverServer(sinks=[push_log], limits=HttpLimits(max_body_bytes=100))
    server.add_http(FakeHttpReceiver("/push", ObservationKind.PUSHGATEWAY, server.sink), ("127.0.0.1", 0))
    run(server)
    base = server.servers[0].url
    response = httpx.post(f"{base}/push", content=b"x" * 500, headers={"User-Agent": "big-pusher"})
    assert response.status_code == 413
    (observation,) = push_log.events()
    assert observation.kind is ObservationKind.PUSHGATEWAY
    assert observation.outcome is Outcome.REJECTED
    assert observation.source == "/push"
    assert observation.transport.status == 413
    assert observation.transport.user_agent == "big-pusher"
    assert observation.transport.extra["refused"] == "too_large"
    assert observation.message.startswith("413 request body of 500 B exceeds 100 B")
    assert server.refused_observations == 1


def test_receiver_with_on_refused_takes_its_refusals(run: Any) -> None:
    push_log = PushLog()
    server = ReceiverServer(sinks=[push_log], limits=HttpLimits(max_body_bytes=10))
    taker = RefusalTaker("/push", ObservationKind.PUSHGATEWAY, server.sink)
    server.add_http(taker, ("127.0.0.1", 0))
    run(server)
    httpx.post(f"{server.servers[0].url}/push", content=b"y" * 50)
    assert [r.reason for r in taker.refused] == ["too_large"]
    assert len(push_log) == 0


def test_metrics_only_listener_records_no_observations(run: Any) -> None:
    push_log = PushLog()
    server = ReceiverServer(sinks=[push_log])
    server.serve_metrics("127.0.0.1:0")
    run(server)
    base = server.servers[0].url
    assert httpx.get(f"{base}/metrics").status_code == 200
    assert httpx.get(f"{base}/favicon.ico").status_code == 404
    assert len(push_log) == 0


def test_lifecycle_order_and_stop(loop_thread: Any) -> None:
    server = ReceiverServer()
    receiver = LifecycleReceiver("/p", ObservationKind.PUSHGATEWAY, server.sink)
    server.add_http(receiver, ("127.0.0.1", 0))
    loop_thread.run(server.start())
    assert receiver.events == ["start"]
    assert server.ready
    loop_thread.run(server.stop())
    loop_thread.run(server.stop())
    assert receiver.events == ["start", "stop"]
    assert not server.ready


def test_listen_error_stops_what_started(loop_thread: Any) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        server = ReceiverServer()
        first = LifecycleReceiver("/a", ObservationKind.PUSHGATEWAY, server.sink)
        statsd = FakeSocketReceiver(gauge("x"))
        server.add_http(first, ("127.0.0.1", 0), name="pushgateway")
        server.add_http(
            FakeHttpReceiver("/b", ObservationKind.OTLP, server.sink), ("127.0.0.1", port), name="otlp"
        )
        server.add_socket(statsd)
        with pytest.raises(ListenError) as caught:
            loop_thread.run(server.start())
        assert caught.value.address == f"127.0.0.1:{port}"
        assert "cannot listen for otlp" in str(caught.value)
    assert first.events == ["start", "stop"]
    assert not statsd.running
    assert all(not s.running for s in server.servers)


def test_fan_out_survives_a_failing_sink() -> None:
    seen: list[Observation] = []

    def broken(observation: Observation) -> None:
        raise RuntimeError("sink bug")

    fan = FanOut([broken, seen.append])
    observation = Observation(
        kind=ObservationKind.STATSD,
        source="s",
        time=1.0,
        outcome=Outcome.ACCEPTED,
        transport=Transport("udp"),
    )
    fan(observation)
    fan.remove(broken)
    fan.remove(broken)
    fan(observation)
    assert len(seen) == 2
    assert fan.errors == 1
    assert fan.counts == {(ObservationKind.STATSD, Outcome.ACCEPTED): 2}


def test_merge_families_keeps_the_first_type() -> None:
    families, conflicts = merge_families(
        [
            [gauge("a", ((("x", "1"),), 1.0))],
            [MetricFamily("a", MetricType.COUNTER, None, None, ()), gauge("a", ((("x", "1"),), 9.0))],
        ]
    )
    assert conflicts == 1
    assert len(families) == 1 and [s.value for s in families[0].samples] == [1.0]  # duplicate series dropped


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:9091", ("127.0.0.1", 9091)),
        (":9091", ("127.0.0.1", 9091)),
        ("9091", ("127.0.0.1", 9091)),
        ("0.0.0.0:80", ("0.0.0.0", 80)),
        ("[::1]:9091", ("::1", 9091)),
        ("localhost", ("localhost", 1234)),
        ("[::1]", ("::1", 1234)),
        ("::1", ("::1", 1234)),
    ],
)
def test_parse_address(text: str, expected: tuple[str, int]) -> None:
    assert parse_address(text, default_port=1234) == expected


@pytest.mark.parametrize("text", ["", "host:port", "host:70000", "[::1", "[::1]x", "localhost"])
def test_parse_address_errors(text: str) -> None:
    with pytest.raises(ConfigError):
        parse_address(text)


def test_real_pushgateway_receiver_behind_the_server(run: Any) -> None:
    from promscope.receive.pushgateway import PushgatewayReceiver

    push_log = PushLog()
    server = ReceiverServer(sinks=[push_log])
    server.add_http(PushgatewayReceiver(sink=server.sink), ("127.0.0.1", 0), name="pushgateway")
    run(server)
    base = server.urls()["pushgateway"]
    pushed = httpx.put(f"{base}/metrics/job/batch/instance/a", content=b"# TYPE done gauge\ndone 1\n")
    assert pushed.status_code == 200, pushed.text
    bad = httpx.put(f"{base}/metrics/job/batch", content=b"done{ 1\n")
    assert bad.status_code == 400
    metrics = parse(httpx.get(f"{base}/metrics").content, "text")
    done = metrics.family("done")
    assert done is not None and dict(done.samples[0].labels) == {"instance": "a", "job": "batch"}
    assert metrics.family("promscope_http_requests_total") is not None
    kinds = [(o.kind, o.outcome) for o in push_log]
    assert (ObservationKind.PUSHGATEWAY, Outcome.ACCEPTED) in kinds
    assert (ObservationKind.PUSHGATEWAY, Outcome.REJECTED) in kinds
