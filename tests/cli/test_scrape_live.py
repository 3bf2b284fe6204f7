"""``promscope scrape`` live mode against real 127.0.0.1 servers: lines, JSON, summary, sources, signals.

Every run is bounded by ``--count`` (a number of scrapes) or, in the subprocess tests, by events
(a line seen, then a signal) with a deadline as a safety net. Intervals are 0.2 s; nothing asserts
how long anything took.
"""

from __future__ import annotations

import dataclasses
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import IO, Any

import httpx
import pytest
from click.testing import CliRunner, Result

from cli.commands.replay import replay
from cli.commands.scrape import scrape
from cli.commands.scrape_live import (
    LINE_SCHEMA,
    SUMMARY_SCHEMA,
    LivePrinter,
    override,
    scrape_json,
    scrape_line,
)
from cli.exit_codes import ExitCode
from cli.output import Styler
from promscope.observation import Observation
from promscope.scrape.health import FailureClass, TargetHealth
from promscope.scrape.loop import LoopStats, TargetStatus
from promscope.scrape.observe import ScrapeObserver
from promscope.scrape.sd import SrvRecord
from promscope.scrape.targets import targets_from_urls

TEXT_CT = "text/plain; version=0.0.4; charset=utf-8"
BROKEN = b'# TYPE a_total counter\na_total{path="/x" 1\n'
LINE_KEYS = {
    "schema",
    "time",
    "source",
    "job",
    "instance",
    "url",
    "up",
    "outcome",
    "status",
    "duration",
    "samples",
    "series_added",
    "series",
    "body_bytes",
    "wire_bytes",
    "content_type",
    "format",
    "failure",
    "error",
    "errors",
    "warnings",
    "first_error",
}
TARGET_KEYS = {
    "source",
    "job",
    "instance",
    "url",
    "origin",
    "present",
    "health",
    "interval",
    "scrapes",
    "up_ratio",
    "failures",
    "failures_by_class",
    "last_error",
    "last_error_class",
    "last_scrape",
    "consecutive_failures",
    "missed_intervals",
    "overruns",
    "lag_max",
}
DEADLINE = 20.0
"""Seconds a subprocess test waits for an event before it fails (a safety net, not a measurement)."""


# -- a tiny exporter -----------------------------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    server: Exporter
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        with self.server.lock:
            number = self.server.requests.get(path, 0)
            self.server.requests[path] = number + 1
        if path == "/metrics":
            # Changing bodies: a counter that grows, and a series that comes and goes.
            body = (
                "# HELP jobs_total Jobs done.\n# TYPE jobs_total counter\n"
                f'jobs_total{{q="a"}} {number * 10}\n'
                + (f'jobs_total{{q="b"}} {number}\n' if number % 2 else "")
                + "# TYPE busy gauge\nbusy 1\n"
            ).encode()
            status, content_type = 200, TEXT_CT
        elif path == "/broken":
            body, status, content_type = BROKEN, 200, TEXT_CT
        else:
            body, status, content_type = b"oops\n", 500, "text/plain"
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class Exporter(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.lock = threading.Lock()
        self.requests: dict[str, int] = {}

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.server_address[1]}"

    def url(self, path: str = "/metrics") -> str:
        return f"http://{self.address}{path}"


def _serve(server: ThreadingHTTPServer) -> Iterator[Any]:
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def exporter() -> Iterator[Exporter]:
    yield from _serve(Exporter())


@pytest.fixture
def other() -> Iterator[Exporter]:
    yield from _serve(Exporter())


@pytest.fixture
def closed_port(free_port: Callable[[], int]) -> int:
    """A port nothing listens on: scrapes are refused."""
    return free_port()


@pytest.fixture(autouse=True)
def _plain_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("NO_COLOR", "FORCE_COLOR", "PROMSCOPE_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)  # no promscope.toml around unless a test writes one


def run(*args: str) -> Result:
    return CliRunner().invoke(scrape, [*args, "--color", "never"])


def _json_lines(result: Result) -> list[dict[str, Any]]:
    return [json.loads(line) for line in result.stdout.splitlines() if line.strip()]


# -- lines, JSON, summary, exit codes ------------------------------------------------------------------


def test_text_lines_then_a_health_summary(exporter: Exporter, closed_port: int) -> None:
    bad = f"http://127.0.0.1:{closed_port}/metrics"
    result = run(exporter.url(), bad, "--interval", "0.2s", "--count", "4", "--no-jitter")
    assert result.exit_code == ExitCode.OK, result.output
    lines = result.stdout.splitlines()
    head = next(i for i, line in enumerate(lines) if line.startswith("--- "))
    scrapes, summary = lines[:head], lines[head:]
    assert len(scrapes) == 4
    good = [line for line in scrapes if f"promscope/{exporter.address}" in line]
    down = [line for line in scrapes if f"promscope/127.0.0.1:{closed_port}" in line]
    assert good and down
    assert all("  up  " in line and " samples" in line and "series" in line for line in good)
    assert "+3 series" in good[0] or "+2 series" in good[0]  # the first scrape adds every series it has
    assert all("DOWN" in line and "refused: connection to" in line for line in down)
    assert summary[0].startswith("--- 4 scrapes of 2 targets in ") and summary[0].endswith(" down ---")
    assert summary[1].split() == ["TARGET", "UP", "SCRAPES", "FAILURES", "MISSED", "LAST", "ERROR"]
    good_row = next(row for row in summary if row.startswith(f"promscope/{exporter.address}"))
    bad_row = next(row for row in summary if row.startswith(f"promscope/127.0.0.1:{closed_port}"))
    assert "100.0%" in good_row and " - " in good_row  # no failure
    assert "0.0%" in bad_row and "refused " in bad_row and "connection to 127.0.0.1" in bad_row
    assert "2 targets from 2 URLs, every 200ms" in result.stderr
    assert "\x1b[" not in result.stdout


def test_json_lines_follow_the_documented_schema(exporter: Exporter) -> None:
    result = run(exporter.url(), "--interval", "0.2s", "--count", "3", "--no-jitter", "-o", "json")
    assert result.exit_code == ExitCode.OK, result.output
    *scrapes, summary = _json_lines(result)
    assert len(scrapes) == 3
    for doc in scrapes:
        assert doc["schema"] == LINE_SCHEMA
        assert set(doc) == LINE_KEYS
        assert doc["source"] == f"promscope/{exporter.address}"
        assert (doc["job"], doc["instance"], doc["url"]) == ("promscope", exporter.address, exporter.url())
        assert doc["up"] == 1 and doc["outcome"] == "accepted" and doc["status"] == 200
        assert doc["failure"] is None and doc["error"] is None and doc["first_error"] is None
        assert doc["format"] == "text" and doc["content_type"] == TEXT_CT
        assert doc["body_bytes"] > 0 and doc["duration"] >= 0
    # The exporter alternates between 2 and 3 jobs_total series plus `busy`.
    assert [d["samples"] for d in scrapes] == [2, 3, 2]
    assert [d["series_added"] for d in scrapes] == [2, 1, 0]
    assert scrapes[0]["series"] == 2 + 8  # what is ingested: the samples and the up/scrape_* series
    assert summary["schema"] == SUMMARY_SCHEMA
    assert (summary["scrapes"], summary["up"], summary["down"]) == (3, 3, 0)
    (target,) = summary["targets"]
    assert set(target) == TARGET_KEYS
    assert target["health"] == "up" and target["up_ratio"] == 1.0 and target["scrapes"] == 3
    assert target["origin"] == "cli" and target["present"] is True and target["interval"] == 0.2
    assert target["failures_by_class"] == {} and target["last_error"] == ""
    assert summary["sources"][0]["name"] == "cli"


def test_no_target_scraped_exits_3(exporter: Exporter, closed_port: int) -> None:
    refused = f"http://127.0.0.1:{closed_port}/metrics"
    result = run(refused, exporter.url("/fail"), "--interval", "0.2s", "--count", "4", "--no-jitter")
    assert result.exit_code == ExitCode.UNREADABLE, result.output
    assert "no target could be scraped: all 4 scrapes failed" in result.stderr
    assert "HTTP status" in result.stdout and "refused" in result.stdout
    assert "server returned HTTP status 500" in result.stdout


def test_parse_errors_name_their_class_and_position(exporter: Exporter) -> None:
    result = run(exporter.url("/broken"), "--interval", "0.2s", "--count", "1", "--no-jitter", "-o", "json")
    assert result.exit_code == ExitCode.UNREADABLE
    doc, summary = _json_lines(result)
    assert doc["up"] == 0 and doc["failure"] == FailureClass.PARSE.value and doc["errors"] >= 1
    assert doc["first_error"]["line"] == 2 and doc["first_error"]["code"]
    assert summary["targets"][0]["failures_by_class"] == {"parse": 1}

    text = run(exporter.url("/broken"), "--interval", "0.2s", "--count", "1", "--no-jitter", "-v")
    line = text.stdout.splitlines()[0]
    assert "DOWN" in line and "parse error: " in line and f"{doc['first_error']['code']} at 2:" in line
    assert text.stdout.splitlines()[1].strip() == exporter.url(
        "/broken"
    )  # --verbose: the URL, then every diagnostic
    assert "error " in text.stdout.splitlines()[2]


def test_record_then_replay_shows_the_scrapes(exporter: Exporter, closed_port: int, tmp_path: Path) -> None:
    session = tmp_path / "live.psession"
    refused = f"http://127.0.0.1:{closed_port}/metrics"
    result = run(
        exporter.url(), refused, "--interval", "0.2s", "--count", "4", "--no-jitter", "--record", str(session)
    )
    assert result.exit_code == ExitCode.OK, result.output
    assert f"recorded 4 observations to {session}" in result.stderr
    replayed = CliRunner().invoke(replay, [str(session), "--fast", "-o", "json"])
    assert replayed.exit_code == ExitCode.OK, replayed.output
    summary, *observations = _json_lines(replayed)
    assert summary["observations"] == 4 and summary["by_kind"] == {"scrape": 4}
    assert {o["kind"] for o in observations} == {"scrape"}
    assert {o["source"] for o in observations} == {
        f"promscope/{exporter.address}",
        f"promscope/127.0.0.1:{closed_port}",
    }
    assert {o["outcome"] for o in observations} == {"accepted", "failed"}
    up = [o for o in observations if o["outcome"] == "accepted"]
    assert all(o["samples"] >= 2 + 8 for o in up)  # the scraped samples and the up/scrape_* series


def test_two_urls_on_one_address_stay_two_targets(exporter: Exporter) -> None:
    result = run(exporter.url(), exporter.url("/fail"), "--interval", "0.2s", "--count", "4", "--no-jitter")
    assert result.exit_code == ExitCode.OK, result.output
    assert "2 targets from 2 URLs" in result.stderr
    summary = result.stdout.split("--- ", 1)[1]
    assert f"promscope/{exporter.address} {exporter.url()}" in summary
    assert f"promscope/{exporter.address} {exporter.url('/fail')}" in summary


# -- target sources ------------------------------------------------------------------------------------


def test_file_sd_targets_with_labels_and_a_job(exporter: Exporter, tmp_path: Path) -> None:
    sd = tmp_path / "targets.yml"
    sd.write_text(f"- targets: ['{exporter.address}']\n  labels: {{env: dev}}\n")
    args = ["--file-sd", str(sd), "--job", "node", "--interval", "0.2s", "--count", "2", "--no-jitter"]
    result = run(*args, "-o", "json")
    assert result.exit_code == ExitCode.OK, result.output
    *scrapes, summary = _json_lines(result)
    assert {d["source"] for d in scrapes} == {f"node/{exporter.address}"}
    assert scrapes[0]["url"] == exporter.url()
    (target,) = summary["targets"]
    assert target["origin"] == f"{sd}:0"
    assert summary["sources"][0]["name"].startswith("file_sd:node:")


def test_dns_srv_targets(exporter: Exporter, monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[tuple[str, str]] = []

    async def resolver(name: str, rdtype: str) -> list[SrvRecord]:
        asked.append((name, rdtype))
        return [SrvRecord("127.0.0.1.", exporter.server_address[1])]

    monkeypatch.setattr("promscope.scrape.sd.dnspython_resolver", resolver)
    args = ["--dns-srv", "_metrics._tcp.example.test", "--job", "app", "--interval", "0.2s", "--count", "2"]
    result = run(*args, "--no-jitter", "-o", "json")
    assert result.exit_code == ExitCode.OK, result.output
    assert asked[0] == ("_metrics._tcp.example.test", "SRV")
    *scrapes, _ = _json_lines(result)
    assert {d["source"] for d in scrapes} == {f"app/{exporter.address}"}
    assert "DNS SRV _metrics._tcp.example.test" in result.stderr


def test_dns_srv_without_records_scrapes_nothing_and_exits_3(monkeypatch: pytest.MonkeyPatch) -> None:
    async def resolver(name: str, rdtype: str) -> list[SrvRecord]:
        return []

    monkeypatch.setattr("promscope.scrape.sd.dnspython_resolver", resolver)
    result = run("--dns-srv", "_none._tcp.example.test", "--interval", "0.2s", "--duration", "0.3s")
    assert result.exit_code == ExitCode.UNREADABLE
    assert "0 targets from DNS SRV" in result.stderr
    assert "nothing was scraped" in result.stderr
    assert "no targets" in result.stdout


def test_duration_ends_a_first_discovery_that_hangs() -> None:
    import socket

    # A "Prometheus" that accepts connections and never answers: --duration ends the run during the
    # first discovery pass, before the source's own 10 s timeout could report anything.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        result = run("--prometheus-url", url, "--interval", "0.2s", "--duration", "0.3s")
    assert result.exit_code == ExitCode.UNREADABLE, result.output
    assert "nothing was scraped" in result.stderr
    assert "cannot list targets" not in result.stderr


class _FakePrometheus(ThreadingHTTPServer):
    """Answers /api/v1/targets and /api/v1/status/config as a Prometheus scraping ``target_url`` would."""

    daemon_threads = True

    def __init__(self, target_url: str, instance: str) -> None:
        self.target_url = target_url
        self.instance = instance

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_GET(handler) -> None:  # the handler, beside the server's self
                if handler.path.startswith("/api/v1/targets"):
                    data: Any = {
                        "activeTargets": [
                            {
                                "discoveredLabels": {"__address__": self.instance},
                                "labels": {"job": "node", "instance": "node-1"},
                                "scrapePool": "node",
                                "scrapeUrl": self.target_url,
                                "scrapeInterval": "1m",
                                "scrapeTimeout": "10s",
                                "health": "up",
                            }
                        ],
                        "droppedTargets": [],
                    }
                elif handler.path == "/api/v1/status/config":
                    data = {"yaml": "global: {}\nscrape_configs:\n- job_name: node\n  honor_labels: true\n"}
                else:
                    data = None
                body = json.dumps({"status": "success", "data": data}).encode()
                handler.send_response(200 if data is not None else 404)
                handler.send_header("Content-Type", "application/json")
                handler.send_header("Content-Length", str(len(body)))
                handler.end_headers()
                handler.wfile.write(body)

        super().__init__(("127.0.0.1", 0), Handler)


def test_prometheus_url_scrapes_what_that_server_scrapes(exporter: Exporter) -> None:
    for prometheus in _serve(_FakePrometheus(exporter.url(), exporter.address)):
        url = f"http://127.0.0.1:{prometheus.server_address[1]}"
        # Its interval is 1m; --interval overrides it, so the test sees scrapes at once.
        result = run(
            "--prometheus-url", url, "--interval", "0.2s", "--count", "2", "--no-jitter", "-o", "json"
        )
        assert result.exit_code == ExitCode.OK, result.output
        *scrapes, summary = _json_lines(result)
        assert {d["source"] for d in scrapes} == {"node/node-1"}
        assert summary["targets"][0]["interval"] == 0.2
        assert summary["sources"][0]["name"] == f"prometheus:{url}"
        assert f"what {url} scrapes" in result.stderr


@pytest.mark.integration
@pytest.mark.slow
def test_prometheus_url_against_a_real_prometheus(
    exporter: Exporter, tmp_path: Path, run_binary: Any
) -> None:
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1m}\n"
        "scrape_configs:\n"
        "  - job_name: exporter\n"
        f"    static_configs: [{{targets: ['{exporter.address}'], labels: {{team: a}}}}]\n"
    )
    prometheus = run_binary(
        "/usr/bin/prometheus",
        f"--config.file={config}",
        "--web.listen-address={address}",
        "--storage.tsdb.path={tmp}/data",
        ready_path="/-/ready",
    )
    url = prometheus.url("/").rstrip("/")
    # A fresh Prometheus lists its targets after its first discovery round (a few seconds); promscope
    # would pick them up at its next refresh, 30 s later. Wait for them so the run itself is short.
    deadline = time.monotonic() + 60
    while not httpx.get(f"{url}/api/v1/targets", timeout=5).json()["data"]["activeTargets"]:
        assert time.monotonic() < deadline, "Prometheus never listed its target"
        time.sleep(0.2)
    result = run("--prometheus-url", url, "--interval", "0.2s", "--count", "2", "--no-jitter", "-o", "json")
    assert result.exit_code == ExitCode.OK, result.output
    *scrapes, summary = _json_lines(result)
    assert {d["source"] for d in scrapes} == {f"exporter/{exporter.address}"}
    assert all(d["up"] == 1 and d["url"] == exporter.url() for d in scrapes)
    (target,) = summary["targets"]
    assert target["origin"] == f"prometheus:{url}" and target["job"] == "exporter"


def test_promscope_toml_targets_when_no_target_is_given(
    exporter: Exporter, other: Exporter, tmp_path: Path
) -> None:
    (tmp_path / "promscope.toml").write_text(
        f'[scrape]\ninterval = "200ms"\n\n[[targets]]\njob = "toml"\nurls = ["{exporter.url()}"]\n'
    )
    result = run("--count", "2", "--no-jitter", "-o", "json")
    assert result.exit_code == ExitCode.OK, result.output
    *scrapes, summary = _json_lines(result)
    assert {d["source"] for d in scrapes} == {f"toml/{exporter.address}"}
    assert summary["targets"][0]["interval"] == 0.2

    # A URL on the command line replaces the file's targets; the file's [scrape] defaults still apply.
    result = run(other.url(), "--count", "2", "--no-jitter", "-o", "json")
    assert result.exit_code == ExitCode.OK, result.output
    *scrapes, summary = _json_lines(result)
    assert {d["source"] for d in scrapes} == {f"promscope/{other.address}"}
    assert summary["targets"][0]["interval"] == 0.2

    # --config FILE names the file explicitly: its targets and the URLs are both scraped.
    config = str(tmp_path / "promscope.toml")
    result = run(other.url(), "--config", config, "--count", "4", "--no-jitter", "-o", "json")
    assert result.exit_code == ExitCode.OK, result.output
    *_, summary = _json_lines(result)
    assert {t["source"] for t in summary["targets"]} == {
        f"toml/{exporter.address}",
        f"promscope/{other.address}",
    }


def test_prometheus_config_static_targets_and_its_issues(exporter: Exporter, tmp_path: Path) -> None:
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1m\n"
        "scrape_configs:\n"
        "  - job_name: static\n"
        "    scrape_interval: 200ms\n"
        "    scrape_timeout: 100ms\n"
        f"    static_configs: [{{targets: ['{exporter.address}'], labels: {{team: a}}}}]\n"
        "    relabel_configs: [{action: drop, source_labels: [x]}]\n"
    )
    result = run("--prometheus-config", str(config), "--count", "2", "--no-jitter", "-o", "json")
    assert result.exit_code == ExitCode.OK, result.output
    *scrapes, summary = _json_lines(result)
    assert {d["source"] for d in scrapes} == {f"static/{exporter.address}"}
    assert summary["targets"][0]["interval"] == 0.2  # the job's own interval
    assert "warning: " in result.stderr and "relabel_configs" in result.stderr


# -- usage ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["http://127.0.0.1:1/metrics", "--interval", "1s", "-o", "openmetrics"], "-o openmetrics"),
        (["http://127.0.0.1:1/metrics", "--interval", "1s", "--diag"], "--diag applies to a single scrape"),
        (["http://127.0.0.1:1/metrics", "--interval", "1s", "--match", "up"], "--match"),
        (["http://127.0.0.1:1/metrics", "--interval", "1s", "--timeout", "2s"], "longer than --interval"),
        (["http://127.0.0.1:1/metrics", "--interval", "nope"], "not a duration"),
        (["--file-sd", "targets.txt"], "end in .json, .yml or .yaml"),
        (["--prometheus-url", "ftp://example.org"], "not an http(s) URL"),
        (["http://127.0.0.1:1/metrics", "--job", "node"], "--job applies to live mode"),
        ([], "nothing to scrape"),
        (["--prometheus-config", "missing.yml"], "cannot read the file"),
    ],
    ids=[
        "openmetrics",
        "diag",
        "match",
        "timeout-over-interval",
        "bad-interval",
        "file-sd-suffix",
        "prometheus-url",
        "job-one-shot",
        "nothing",
        "missing-config",
    ],
)
def test_usage_errors_exit_2(args: list[str], message: str) -> None:
    result = run(*args)
    assert result.exit_code == ExitCode.USAGE, result.output
    assert message in result.stderr or message in result.output
    assert "Traceback" not in result.output


def test_record_file_that_cannot_be_created_exits_3(exporter: Exporter, tmp_path: Path) -> None:
    result = run(
        exporter.url(), "--interval", "0.2s", "--count", "1", "--record", str(tmp_path / "no" / "x.db")
    )
    assert result.exit_code == ExitCode.UNREADABLE, result.output
    assert "Traceback" not in result.output


def test_one_shot_is_unchanged_without_live_flags(exporter: Exporter) -> None:
    result = run(exporter.url(), "-o", "json")
    assert result.exit_code == ExitCode.OK
    assert json.loads(result.stdout)["schema"] == "promscope.scrape/v1"


# -- pieces --------------------------------------------------------------------------------------------


def _failed_observation(url: str = "http://127.0.0.1:9/metrics") -> Observation:
    (target,) = targets_from_urls([url], job="j", interval=5)
    return ScrapeObserver(target).failed(1_700_000_000.25, FailureClass.TIMEOUT, "took too long", 0.5)


def test_line_and_json_of_a_failed_scrape() -> None:
    observation = _failed_observation()
    line = scrape_line(observation, Styler(False))
    assert line.startswith("22:13:20.250Z  j/127.0.0.1:9  DOWN")
    assert "500.0ms" in line and "0 samples" in line and "+0 series" in line
    assert line.endswith("timeout: took too long")
    doc = scrape_json(observation)
    assert set(doc) == LINE_KEYS
    assert (doc["up"], doc["failure"], doc["error"], doc["status"]) == (0, "timeout", "took too long", None)
    assert json.loads(json.dumps(doc)) == doc


def test_override_sets_the_interval_and_caps_the_timeout() -> None:
    (target,) = targets_from_urls(["http://127.0.0.1:9/metrics"], interval=60, timeout=10)
    fast = override(target, 0.2, None)
    assert (fast.interval, fast.timeout) == (0.2, 0.2)
    assert fast.key == target.key  # the same target, so its health history carries over
    assert override(target, None, 5).timeout == 5
    assert override(target, None, None) is target


def test_summary_marks_targets_that_went_away() -> None:
    a, b = targets_from_urls(["http://127.0.0.1:1/metrics", "http://127.0.0.1:2/metrics"], interval=5)

    class Manager:
        statuses = [
            TargetStatus(a, TargetHealth(), LoopStats()),
            TargetStatus(b, TargetHealth(), LoopStats()),
        ]

        def targets(self) -> list[TargetStatus]:
            return self.statuses

    manager = Manager()
    printer = LivePrinter("json", Styler(False))
    assert printer.sync(manager) == (["promscope/127.0.0.1:1", "promscope/127.0.0.1:2"], [])  # type: ignore[arg-type]
    manager.statuses = manager.statuses[:1]
    assert printer.sync(manager) == ([], ["promscope/127.0.0.1:2"])  # type: ignore[arg-type]
    from cli.commands.scrape_live import summary_json, summary_text

    doc = summary_json(printer, {}, 1.0)
    assert [(t["source"], t["present"]) for t in doc["targets"]] == [
        ("promscope/127.0.0.1:1", True),
        ("promscope/127.0.0.1:2", False),
    ]
    assert doc["targets"][1]["up_ratio"] is None and doc["targets"][1]["health"] == "unknown"
    assert "promscope/127.0.0.1:2 (gone)" in summary_text(printer, {}, 1.0)


def test_printer_stops_counting_at_the_limit() -> None:
    stopped: list[bool] = []
    printer = LivePrinter("text", Styler(False), limit=2, on_limit=lambda: stopped.append(True))
    for _ in range(3):
        printer(_failed_observation())
    assert (printer.shown, printer.ignored, stopped) == (2, 1, [True])
    (entry,) = printer.tracked.values()
    assert entry.health.scrapes == 2 and entry.health.by_class == {FailureClass.TIMEOUT: 2}


# -- subprocesses: signals, and a file_sd file rewritten while it runs ---------------------------------


class _Lines:
    """Reads a process's stream on a thread, so a test can wait for a line with a deadline."""

    def __init__(self, stream: IO[str]) -> None:
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.seen: list[str] = []
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            self.lines.put(line)
        self.lines.put(None)

    def wait_for(self, predicate: Callable[[str], bool]) -> str:
        deadline = time.monotonic() + DEADLINE
        while True:
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"no such line within {DEADLINE}s; saw {self.seen[-5:]}"
            try:
                line = self.lines.get(timeout=remaining)
            except queue.Empty:
                continue
            assert line is not None, f"the stream ended; saw {self.seen[-5:]}"
            self.seen.append(line)
            if predicate(line):
                return line

    def rest(self) -> list[str]:
        self._thread.join(DEADLINE)
        while True:
            try:
                line = self.lines.get_nowait()
            except queue.Empty:
                return self.seen
            if line is not None:
                self.seen.append(line)


def _start(args: list[str], cwd: Path) -> subprocess.Popen[str]:
    code = (
        "import sys; from cli.commands.scrape import scrape; "
        "scrape(sys.argv[1:], prog_name='promscope scrape')"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("PROMSCOPE_CONFIG", "NO_COLOR", "FORCE_COLOR")}
    return subprocess.Popen(
        [sys.executable, "-c", code, *args, "--color", "never"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=cwd,
        env=env,
    )


def _finish(process: subprocess.Popen[str], errors: _Lines) -> str:
    """Wait for the process to end; its stderr (stdout stays with the test's own reader)."""
    process.wait(timeout=DEADLINE)
    return "".join(errors.rest())


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_stops_it_with_the_summary(exporter: Exporter, tmp_path: Path, signum: int) -> None:
    process = _start([exporter.url(), "--interval", "0.2s", "--duration", "60s", "--no-jitter"], tmp_path)
    try:
        assert process.stdout is not None and process.stderr is not None
        lines, errors = _Lines(process.stdout), _Lines(process.stderr)
        lines.wait_for(lambda line: f"promscope/{exporter.address}" in line and "  up  " in line)
        process.send_signal(signum)
        stderr = _finish(process, errors)
        out = lines.rest()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == ExitCode.OK, stderr
    text = "".join(out)
    assert "--- " in text and " of 1 target in " in text
    assert f"promscope/{exporter.address}" in text.split("--- ", 1)[1] and "100.0%" in text
    assert "Traceback" not in stderr


def test_prometheus_config_file_sd_rewritten_mid_run_adds_a_target(
    exporter: Exporter, other: Exporter, tmp_path: Path
) -> None:
    sd = tmp_path / "sd" / "targets.json"
    sd.parent.mkdir()
    sd.write_text("[]")
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "scrape_configs:\n"
        "  - job_name: static\n"
        f"    static_configs: [{{targets: ['{exporter.address}']}}]\n"
        "  - job_name: files\n"
        "    file_sd_configs: [{files: ['sd/*.json'], refresh_interval: 5m}]\n"
        "    metric_relabel_configs: [{action: drop, source_labels: [x]}]\n"
    )
    args = [
        "--prometheus-config",
        str(config),
        "--interval",
        "0.2s",
        "--duration",
        "60s",
        "--no-jitter",
        "-o",
        "json",
    ]
    process = _start(args, tmp_path)
    try:
        assert process.stdout is not None and process.stderr is not None
        lines, errors = _Lines(process.stdout), _Lines(process.stderr)
        lines.wait_for(lambda line: f'"static/{exporter.address}"' in line)
        replacement = sd.with_suffix(".tmp")
        replacement.write_text(json.dumps([{"targets": [other.address], "labels": {"env": "test"}}]))
        os.replace(replacement, sd)
        added = json.loads(lines.wait_for(lambda line: f'"files/{other.address}"' in line))
        process.send_signal(signal.SIGTERM)
        stderr = _finish(process, errors)
        out = lines.rest()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == ExitCode.OK, stderr
    assert added["schema"] == LINE_SCHEMA and added["up"] == 1 and added["url"] == other.url()
    summary = json.loads(out[-1])
    assert summary["schema"] == SUMMARY_SCHEMA
    targets = {t["source"]: t for t in summary["targets"]}
    assert set(targets) == {f"static/{exporter.address}", f"files/{other.address}"}
    assert targets[f"files/{other.address}"]["origin"] == f"{sd}:0"  # the file and the group in it
    assert all(t["present"] and t["scrapes"] >= 1 for t in targets.values())
    assert "metric_relabel_configs" in stderr  # what promscope does not apply is said, not ignored
    assert f"target files/{other.address} added" in stderr


def test_dataclass_options_are_frozen() -> None:
    from cli.commands.scrape_live import LiveOptions
    from promscope.scrape.targets import ScrapeConfig, ScrapeSettings

    options = LiveOptions(base=ScrapeConfig(), settings=ScrapeSettings())
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.count = 3  # type: ignore[misc]
