"""Discovery: file_sd reloads, DNS SRV via a fake resolver, a Prometheus server's targets (mock and real)."""

from __future__ import annotations

import asyncio
import json
import os
import textwrap
from pathlib import Path
from typing import Any

import httpx
import pytest

from promscope.scrape.loop import ScrapeManager
from promscope.scrape.sd import DnsSD, FileSD, PrometheusSD, SrvRecord, sources_for, sources_for_settings
from promscope.scrape.targets import DnsSDConfig, FileSDConfig, ScrapeConfig, parse_scrape_tables

pytestmark = pytest.mark.timeout(60)

JOB = ScrapeConfig(job_name="files", interval=5, timeout=5)


def write_json(path: Path, groups: list[dict[str, Any]], mtime: int) -> None:
    path.write_text(json.dumps(groups))
    os.utime(path, ns=(mtime, mtime))


async def test_file_sd_reads_rereads_on_change_and_keeps_last_good(
    tmp_path: Path, virtual_clock: Any
) -> None:
    a = tmp_path / "a.json"
    write_json(a, [{"targets": ["h1:1", "h2:2"], "labels": {"team": "x"}}], 1_000)
    sd = FileSD(JOB, FileSDConfig((str(tmp_path / "*.json"),), 300), monotonic=virtual_clock.time)
    targets = await sd.discover()
    assert targets is not None and [t.instance for t in targets] == ["h1:1", "h2:2"]
    assert targets[0].labels == (("instance", "h1:1"), ("job", "files"), ("team", "x"))
    assert ("__meta_filepath", str(a)) in targets[0].discovered
    assert await sd.discover() is None  # unchanged: nothing re-read

    write_json(a, [{"targets": ["h3:3"]}], 2_000)
    targets = await sd.discover()
    assert targets is not None and [t.instance for t in targets] == ["h3:3"]

    a.write_text("[{not json")
    os.utime(a, ns=(3_000, 3_000))
    targets = await sd.discover()
    assert targets is not None and [t.instance for t in targets] == ["h3:3"]
    assert "not valid JSON at line 1" in sd.status.errors[str(a)]
    assert "keeping its last good targets" in sd.status.errors[str(a)]

    b = tmp_path / "b.yml"
    b.write_text("- targets: ['y:1']\n")
    sd_yaml = FileSD(JOB, FileSDConfig((str(tmp_path / "*.yml"),)), monotonic=virtual_clock.time)
    found = await sd_yaml.discover()
    assert found is not None and [t.instance for t in found] == ["y:1"]
    b.unlink()
    assert await sd_yaml.discover() == []


async def test_file_sd_full_refresh_and_bounds(tmp_path: Path, virtual_clock: Any) -> None:
    for i in range(4):
        write_json(tmp_path / f"f{i}.json", [{"targets": [f"h{i}:1", f"h{i}:2"]}], 1_000)
    (tmp_path / "huge.yml").write_text("- targets: [" + ", ".join(["'x:1'"] * 5000) + "]\n")
    sd = FileSD(
        JOB,
        FileSDConfig((str(tmp_path / "*.json"),), refresh_interval=60),
        monotonic=virtual_clock.time,
        max_files=3,
        max_targets=4,
        max_file_bytes=10_000,
    )
    targets = await sd.discover()
    assert targets is not None and len(targets) == 4
    assert sd.status.dropped == {"files": 1, "targets": 2}
    assert await sd.discover() is None
    sd_big = FileSD(JOB, FileSDConfig((str(tmp_path / "*.yml"),)), max_file_bytes=10_000)
    assert await sd_big.discover() == []
    assert "over the 10000 byte limit" in sd_big.status.errors[str(tmp_path / "huge.yml")]
    await virtual_clock.advance(61)
    assert await sd.discover() is not None  # the periodic full re-read


async def test_manager_follows_file_sd_changes(tmp_path: Path, virtual_clock: Any, expo: Any) -> None:
    path = tmp_path / "t.json"
    write_json(path, [{"targets": ["a:1"]}], 1_000)
    seen: set[str] = set()

    async def handler(request: httpx.Request) -> httpx.Response:
        seen.add(request.url.netloc.decode())
        return expo.response(expo(1))

    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    m = ScrapeManager(
        lambda o: None,
        client=client,
        clock=virtual_clock.time,
        monotonic=virtual_clock.time,
        sleep=virtual_clock.sleep,
    )
    (source,) = sources_for(
        ScrapeConfig(job_name="f", interval=5, timeout=5, file_sd_configs=(FileSDConfig((str(path),)),)),
        monotonic=virtual_clock.time,
    )
    m.add_source(source)
    async with m:
        await virtual_clock.advance(6)
        assert [s.target.instance for s in m.targets()] == ["a:1"]
        write_json(path, [{"targets": ["a:1", "b:2"]}], 2_000)
        await virtual_clock.advance(11)
        assert [s.target.instance for s in m.targets()] == ["a:1", "b:2"]
        assert m.targets()[0].stats.restarts == 0
        m.remove_source(source.name)
        await virtual_clock.advance(0)
        assert m.targets() == []
    assert seen == {"a:1", "b:2"}


async def test_dns_srv_with_a_fake_resolver(fake_resolver: Any) -> None:
    fake_resolver.answers["_node._tcp.example.org"] = [
        SrvRecord("n1.example.org.", 9100),
        SrvRecord("n2.example.org", 9101),
    ]
    sd = DnsSD(JOB, DnsSDConfig(("_node._tcp.example.org",)), resolver=fake_resolver)
    targets = await sd.discover()
    assert targets is not None
    assert [t.url for t in targets] == [
        "http://n1.example.org:9100/metrics",
        "http://n2.example.org:9101/metrics",
    ]
    discovered = dict(targets[0].discovered)
    assert discovered["__meta_dns_name"] == "_node._tcp.example.org"
    assert discovered["__meta_dns_srv_record_target"] == "n1.example.org."
    assert discovered["__meta_dns_srv_record_port"] == "9100"
    assert await sd.discover() is None  # same answer
    fake_resolver.answers["_node._tcp.example.org"] = TimeoutError("resolver timed out")
    assert await sd.discover() is None  # failure keeps the last answer
    assert "keeping the last answer" in sd.status.errors["_node._tcp.example.org"]
    fake_resolver.answers["_node._tcp.example.org"] = []
    assert await sd.discover() == []
    assert fake_resolver.calls[0] == ("_node._tcp.example.org", "SRV")


async def test_dns_a_records_take_the_configured_port(fake_resolver: Any) -> None:
    fake_resolver.answers["db"] = [SrvRecord("10.0.0.5"), SrvRecord("::1")]
    sd = DnsSD(JOB, DnsSDConfig(("db",), "A", 9187), resolver=fake_resolver)
    targets = await sd.discover()
    assert targets is not None and [t.instance for t in targets] == ["10.0.0.5:9187", "[::1]:9187"]


TARGETS = {
    "status": "success",
    "data": {
        "activeTargets": [
            {
                "discoveredLabels": {"__address__": "127.0.0.1:9100", "job": "node"},
                "labels": {"instance": "127.0.0.1:9100", "job": "node", "env": "prod"},
                "scrapePool": "node",
                "scrapeUrl": "http://127.0.0.1:9100/metrics?x=1",
                "globalUrl": "http://host:9100/metrics?x=1",
                "lastError": "",
                "health": "up",
                "scrapeInterval": "30s",
                "scrapeTimeout": "7s",
            }
        ],
        "droppedTargets": [],
    },
}
CONFIG_YAML = textwrap.dedent(
    """
    global: {scrape_interval: 1m}
    scrape_configs:
      - job_name: node
        honor_labels: true
        sample_limit: 5000
        body_size_limit: 1MB
        basic_auth: {username: u, password: <secret>}
    """
)


async def test_prometheus_sd_against_a_mock_api() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/v1/targets":
            assert request.url.params["state"] == "active"
            return httpx.Response(200, json=TARGETS)
        return httpx.Response(200, json={"status": "success", "data": {"yaml": CONFIG_YAML}})

    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    sd = PrometheusSD("http://prom:9090/", client=client)
    targets = await sd.discover()
    assert targets is not None
    (target,) = targets
    assert target.url == "http://127.0.0.1:9100/metrics?x=1"
    assert target.labels == (("env", "prod"), ("instance", "127.0.0.1:9100"), ("job", "node"))
    assert (target.interval, target.timeout) == (30.0, 7.0)
    assert target.honor_labels and target.sample_limit == 5000
    assert target.request.body_size_limit == 1 << 20
    assert target.origin == "prometheus:http://prom:9090"
    assert [i.key for i in sd.issues] == ["job node"]
    assert await sd.discover() is None


async def test_prometheus_sd_unreachable_keeps_targets() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(503)

    sd = PrometheusSD("http://prom:9090", client=httpx.AsyncClient(transport=httpx.MockTransport(handler)))
    assert await sd.discover() is None
    assert "HTTP 503" in sd.status.errors["targets"] and sd.status.failures == 1


def test_sources_for_settings(tmp_path: Path) -> None:
    (tmp_path / "p.yml").write_text(
        "scrape_configs:\n  - job_name: x\n    static_configs: [{targets: [h:1]}]\n"
    )
    settings = parse_scrape_tables(
        {
            "scrape": {"prometheus_config": ["p.yml"], "prometheus_server": ["http://p:9090"]},
            "targets": [{"urls": ["http://a:1/m"], "file_sd": ["sd/*.json"], "dns_srv": ["_x._tcp.y"]}],
        },
        str(tmp_path / "promscope.toml"),
    )
    sources, issues = sources_for_settings(settings)
    assert [s.name.split(":")[0] for s in sources] == ["static", "file_sd", "dns_sd", "static", "prometheus"]
    assert issues == []


@pytest.mark.integration
async def test_prometheus_sd_against_a_real_prometheus(
    run_binary: Any, serve_http: Any, tmp_path: Path
) -> None:
    body = b"# TYPE demo gauge\ndemo 1\n"

    def exporter(handler: Any) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", "text/plain; version=0.0.4")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    base = serve_http(exporter)
    address = base.removeprefix("http://")
    config = tmp_path / "prometheus.yml"
    config.write_text(
        textwrap.dedent(
            f"""
            scrape_configs:
              - job_name: local
                scrape_interval: 2s
                scrape_timeout: 1s
                honor_labels: true
                metrics_path: /custom
                params: {{probe: ["yes"]}}
                static_configs:
                  - targets: ["{address}"]
                    labels: {{env: test}}
            """
        )
    )
    prometheus = run_binary(
        "/usr/bin/prometheus",
        f"--config.file={config}",
        "--web.listen-address={address}",
        "--storage.tsdb.path={tmp}/data",
        ready_path="/-/ready",
    )
    sd = PrometheusSD(prometheus.url(""))
    targets = None
    try:
        for _ in range(80):  # Prometheus's discovery hands targets to its scrape manager within ~5 s
            targets = await sd.discover()
            if targets:
                break
            sd = PrometheusSD(prometheus.url(""))
            await asyncio.sleep(0.25)
    finally:
        await sd.aclose()
    assert targets, sd.status.errors
    (target,) = targets
    assert target.url == f"{base}/custom?probe=yes"
    assert dict(target.labels) == {"env": "test", "instance": address, "job": "local"}
    assert (target.interval, target.timeout, target.honor_labels) == (2.0, 1.0, True)
    # What promscope builds from the same config file is the same target.
    from promscope.scrape.targets import load_prometheus_config

    local = load_prometheus_config(config).job("local")
    assert local is not None
    (ours,), _ = local.static_targets()
    assert (ours.url, ours.labels, ours.interval, ours.timeout) == (
        target.url,
        target.labels,
        target.interval,
        target.timeout,
    )
