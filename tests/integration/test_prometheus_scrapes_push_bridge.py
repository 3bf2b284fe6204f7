"""A real Prometheus scrapes promscope's ``/metrics``: ``up == 1``, the pushed groups and the StatsD series.

promscope's :class:`ReceiverServer` runs the Pushgateway API and the StatsD
receiver (UDP) in this process, on an event loop in a thread, with the shared
``/metrics`` on a free 127.0.0.1 port. ``/usr/bin/prometheus`` (Debian, 2.42)
scrapes it every second with ``honor_labels: true``, as users configure a
Pushgateway job. prometheus_client pushes a group with ``push_to_gateway`` and
another with ``pushadd_to_gateway``, a StatsD line goes to the UDP port, and the
test asks Prometheus's HTTP API (bounded wait) until it has:

* ``up{job="promscope"} == 1``: the scrape succeeds (Prometheus 2.42 asks for
  OpenMetrics first, so this also checks that rendering against its parser);
* the pushed series with their grouping labels (``job``, ``instance`` and a
  custom one, kept by ``honor_labels``), and each group's ``push_time_seconds``;
* the StatsD-derived series, with the scrape job's labels (it has no ``job``).

Then a ``delete_from_gateway`` removes a group, and Prometheus sees its series
go stale while the other group stays. Nothing here asserts how long anything
takes; the waits are bounds against a hang.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from promscope.observation import Observation, ObservationKind
from promscope.receive.pushgateway import PushgatewayReceiver
from promscope.receive.server import ReceiverServer
from promscope.receive.statsd import StatsdReceiver

if TYPE_CHECKING:  # the classes live in tests/conftest.py, which pytest loads itself
    from tests.conftest import BinaryRunner, LoopThread

PROMETHEUS = "/usr/bin/prometheus"
WAIT_SECONDS = 60.0

pytestmark = pytest.mark.slow


class Bridge:
    """promscope's receivers as a user runs them with ``promscope tail --pushgateway … --statsd …``."""

    def __init__(self, loop: LoopThread) -> None:
        self.seen: list[Observation] = []
        self.loop = loop
        self.server = ReceiverServer(sinks=[self.seen.append])
        self.pushgateway = PushgatewayReceiver(sink=self.server.sink)
        self.statsd = StatsdReceiver(udp="127.0.0.1:0", tcp=None, sink=self.server.sink)
        self.server.add_http(self.pushgateway, ("127.0.0.1", 0), name="pushgateway")
        self.server.add_socket(self.statsd, name="statsd")

    @property
    def address(self) -> str:
        return self.server.urls()["pushgateway"].removeprefix("http://")

    def statsd_line(self, line: bytes) -> None:
        port = self.statsd.udp_port
        assert port is not None
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.sendto(line, ("127.0.0.1", port))


@pytest.fixture
def bridge(loop_thread: LoopThread) -> Iterator[Bridge]:
    running = Bridge(loop_thread)
    running.loop.run(running.server.start())
    try:
        yield running
    finally:
        running.loop.run(running.server.stop())


def _config(tmp_path: Path, target: str) -> Path:
    config = tmp_path / "prometheus.yml"
    config.write_text(
        f"""
global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: promscope
    honor_labels: true
    static_configs:
      - targets: ["{target}"]
"""
    )
    return config


class PrometheusAPI:
    def __init__(self, base: str) -> None:
        self.client = httpx.Client(base_url=base, timeout=5)

    def query(self, promql: str) -> list[dict[str, Any]]:
        answer = self.client.get("/api/v1/query", params={"query": promql})
        answer.raise_for_status()
        body = answer.json()
        assert body["status"] == "success", body
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    def wait(self, promql: str, done: Callable[[list[dict[str, Any]]], bool], log: Callable[[], str]) -> Any:
        """Query until ``done(result)``, for at most WAIT_SECONDS (a bound against a hang, not an assert)."""
        deadline = time.monotonic() + WAIT_SECONDS
        result: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            result = self.query(promql)
            if done(result):
                return result
            time.sleep(0.25)
        targets = self.client.get("/api/v1/targets").json()
        pytest.fail(
            f"{promql}: still {result} after {WAIT_SECONDS:g}s; targets: {targets}\n"
            f"--- prometheus log ---\n{log()[-3000:]}",
            pytrace=False,
        )


def _one(result: list[dict[str, Any]]) -> dict[str, Any]:
    assert len(result) == 1, result
    return result[0]


def test_prometheus_scrapes_pushed_groups_and_statsd_series(
    tmp_path: Path, run_binary: BinaryRunner, bridge: Bridge
) -> None:
    from prometheus_client import CollectorRegistry, Counter, Gauge
    from prometheus_client.exposition import delete_from_gateway, push_to_gateway, pushadd_to_gateway

    prometheus = run_binary(
        PROMETHEUS,
        f"--config.file={_config(tmp_path, bridge.address)}",
        "--web.listen-address={address}",
        "--storage.tsdb.path={tmp}/data",
        ready_path="/-/ready",
    )
    api = PrometheusAPI(prometheus.url())

    backup = CollectorRegistry()
    Gauge("backup_last_success_unixtime", "When the backup last succeeded.", registry=backup).set(
        1_700_000_000
    )
    Counter("backup_files", "Files written.", ["volume"], registry=backup).labels("data").inc(42)
    push_to_gateway(
        bridge.address, job="backup", registry=backup, grouping_key={"instance": "db-1", "site": "lab"}
    )
    report = CollectorRegistry()
    Gauge("report_rows", "Rows in the last report.", registry=report).set(7)
    pushadd_to_gateway(bridge.address, job="report", registry=report)
    bridge.statsd_line(b"api.requests:3|c|#route:users\napi.latency:250|ms")

    up = api.wait('up{job="promscope"}', lambda r: bool(r) and r[0]["value"][1] == "1", prometheus.log)
    assert _one(up)["metric"] == {"__name__": "up", "job": "promscope", "instance": bridge.address}

    # the pushed series keep their grouping labels (honor_labels), help and types made it through
    gauge = _one(api.wait("backup_last_success_unixtime", bool, prometheus.log))
    assert gauge["metric"] == {
        "__name__": "backup_last_success_unixtime",
        "job": "backup",
        "instance": "db-1",
        "site": "lab",
    }
    assert float(gauge["value"][1]) == 1_700_000_000
    files = _one(api.wait("backup_files_total", bool, prometheus.log))
    assert files["metric"] == {
        "__name__": "backup_files_total",
        "job": "backup",
        "instance": "db-1",
        "site": "lab",
        "volume": "data",
    }
    assert float(files["value"][1]) == 42
    rows = _one(api.wait('report_rows{job="report"}', bool, prometheus.log))
    assert "instance" not in rows["metric"]  # instance="" (added as upstream adds it) is no label at all
    assert float(rows["value"][1]) == 7
    push_times = api.wait("push_time_seconds", lambda r: len(r) == 2, prometheus.log)
    assert {(p["metric"]["job"], p["metric"].get("instance", "")) for p in push_times} == {
        ("backup", "db-1"),
        ("report", ""),
    }
    assert all(float(p["value"][1]) > 0 for p in push_times)
    metadata = api.client.get("/api/v1/metadata", params={"metric": "backup_files"}).json()["data"]
    assert metadata.get("backup_files", [{}])[0].get("type") == "counter", metadata

    # the StatsD-derived series carry the scrape's job and instance (they have none of their own)
    requests = _one(api.wait('{__name__=~"api_requests(_total)?"}', bool, prometheus.log))
    assert requests["metric"]["route"] == "users" and requests["metric"]["job"] == "promscope"
    assert requests["metric"]["instance"] == bridge.address
    assert float(requests["value"][1]) == 3
    latency = api.wait('api_latency_count{job="promscope"}', bool, prometheus.log)
    assert float(_one(latency)["value"][1]) == 1
    assert _one(api.query('api_latency{quantile="0.5"}'))["value"][1] == "0.25"  # timers in seconds

    # a deleted group goes stale in Prometheus; the other stays
    delete_from_gateway(bridge.address, job="backup", grouping_key={"instance": "db-1", "site": "lab"})
    api.wait("backup_last_success_unixtime", lambda r: not r, prometheus.log)
    assert api.query('report_rows{job="report"}')
    assert _one(api.query('up{job="promscope"}'))["value"][1] == "1"

    kinds = bridge.loop.call(lambda: {o.kind for o in bridge.seen})
    assert kinds == {ObservationKind.PUSHGATEWAY, ObservationKind.STATSD}
    pushes = bridge.loop.call(lambda: [o for o in bridge.seen if o.kind is ObservationKind.PUSHGATEWAY])
    assert [(o.transport.method, o.source, o.accepted) for o in pushes] == [
        ("PUT", "job=backup/instance=db-1/site=lab", True),
        ("POST", "job=report", True),
        ("DELETE", "job=backup/instance=db-1/site=lab", True),
    ]
