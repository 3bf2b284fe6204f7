"""A real Prometheus remote-writes to promscope: its samples and metadata arrive, answered as it expects.

``/usr/bin/prometheus`` (Debian, 2.42: remote_write 1.0) scrapes a real
node_exporter every second and sends everything to promscope's
:class:`RemoteWriteReceiver`, served by promscope's own :class:`HttpServer` on
an event loop in a thread of the test process. The test waits (bounded) until
``up``, node_exporter's ``node_exporter_build_info`` and the metadata that types
``node_cpu_seconds_total`` have arrived, and checks every request was answered
204 with nothing refused. remote_write 2.0 is covered by the unit tests and
``fixtures/push/``, checked against the spec (2.42 cannot send it).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from promscope.model import MetricFamily, MetricType
from promscope.observation import Observation, ObservationKind, Outcome
from promscope.receive.http import HttpServer
from promscope.receive.remote_write import RemoteWriteReceiver

if TYPE_CHECKING:  # the classes live in tests/conftest.py, which pytest loads itself
    from tests.conftest import BinaryRunner, LoopThread, RunningBinary

PROMETHEUS = "/usr/bin/prometheus"
WAIT_SECONDS = 60.0


@pytest.fixture
def promscope_remote_write(
    loop_thread: LoopThread,
) -> Iterator[tuple[RemoteWriteReceiver, HttpServer, list[Observation], LoopThread]]:
    seen: list[Observation] = []
    receiver = RemoteWriteReceiver(sink=seen.append)
    loop = loop_thread
    server = HttpServer(receiver.routes(), host="127.0.0.1", port=0, name="remote_write")
    loop.run(server.start())
    try:
        yield receiver, server, seen, loop
    finally:
        loop.run(server.stop())


def _config(tmp_path: Path, node_exporter: RunningBinary, write_url: str) -> Path:
    config = tmp_path / "prometheus.yml"
    config.write_text(
        f"""
global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: node
    static_configs:
      - targets: ["{node_exporter.address}"]
remote_write:
  - url: {write_url}
    queue_config:
      batch_send_deadline: 1s
      min_backoff: 100ms
      max_backoff: 1s
    metadata_config:
      send: true
      send_interval: 1s
"""
    )
    return config


def _family(families: list[MetricFamily], name: str) -> MetricFamily | None:
    return next((f for f in families if f.name == name), None)


@pytest.mark.slow
def test_prometheus_remote_write_samples_and_metadata_arrive(
    tmp_path: Path,
    run_binary: BinaryRunner,
    node_exporter: RunningBinary,
    promscope_remote_write: tuple[RemoteWriteReceiver, HttpServer, list[Observation], LoopThread],
) -> None:
    receiver, server, seen, loop = promscope_remote_write
    config = _config(tmp_path, node_exporter, f"{server.url}/api/v1/write")
    prometheus = run_binary(
        PROMETHEUS,
        f"--config.file={config}",
        "--web.listen-address={address}",
        "--storage.tsdb.path={tmp}/data",
        ready_path="/-/ready",
    )

    def arrived() -> tuple[list[MetricFamily], int]:
        return receiver.latest_families(), len(seen)

    deadline = time.monotonic() + WAIT_SECONDS
    families: list[MetricFamily] = []
    while time.monotonic() < deadline:
        families, _ = loop.call(arrived)
        up = _family(families, "up")
        build = _family(families, "node_exporter_build_info")
        cpu = _family(families, "node_cpu_seconds_total")
        if up and build and cpu and cpu.type is MetricType.COUNTER:
            break
        time.sleep(0.2)
    else:
        names = sorted(f.name for f in families)[:20]
        pytest.fail(
            f"Prometheus' samples did not all arrive within {WAIT_SECONDS:g}s; got {len(seen)} requests, "
            f"families {names}…\n--- prometheus log ---\n{prometheus.log()[-3000:]}",
            pytrace=False,
        )

    up_family = _family(families, "up")
    assert up_family is not None
    (up,) = [s for s in up_family.samples if s.label("job") == "node"]
    assert up.value == 1.0
    assert up.label("instance") == node_exporter.address
    assert up.timestamp is not None and abs(up.timestamp - time.time()) < 600
    build_family = _family(families, "node_exporter_build_info")
    assert build_family is not None and build_family.type is MetricType.GAUGE
    assert build_family.help  # metadata carried the HELP text

    observations = loop.call(lambda: list(seen))
    assert observations, "the sink saw no observation"
    for observation in observations:
        assert observation.kind is ObservationKind.REMOTE_WRITE
        assert observation.outcome is Outcome.ACCEPTED, observation.message
        assert observation.transport.status == 204
        assert observation.transport.extra["remote_write_version"] == "1.0"
        assert [d for d in observation.diagnostics if d.severity.value == "error"] == []
    first = observations[0].transport
    assert first.user_agent is not None and first.user_agent.startswith("Prometheus/")
    assert first.content_encoding == "snappy"
    assert first.extra.get("sender_version_header") == "0.1.0"
    (sender,) = loop.call(receiver.senders)
    assert sender.refused == 0 and sender.samples > 0
