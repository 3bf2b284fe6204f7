"""``promscope tail``: real receivers on free 127.0.0.1 ports, pushes from real clients, lines and summaries.

Each test runs the command (through click's CliRunner) in a thread, bounded by
``--count`` and ``--duration``, waits until its ports answer, pushes, and reads
what it printed.
"""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from click.testing import CliRunner, Result

from cli.commands.tail import (
    DEFAULTS,
    Filters,
    TailPrinter,
    _listeners,
    observation_json,
    observation_line,
    tail,
)
from cli.output import Styler
from promscope.model import Diagnostic, Severity
from promscope.observation import Changes, Observation, ObservationKind, Outcome, Transport
from promscope.receive.log import PushLog

GOOD = b"# TYPE backup_done gauge\nbackup_done 1\n"
BAD = b"ok 1\nbroken{ 1\n"


class TailRun:
    """``promscope tail ARGS`` in a thread."""

    def __init__(self, *args: str) -> None:
        self.args = list(args)
        self.result: Result | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        self.result = CliRunner().invoke(tail, self.args, catch_exceptions=False)

    def wait_tcp(self, port: int, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.thread.is_alive():
                raise AssertionError(f"tail ended early: {self.output()}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.02)
        raise AssertionError(f"nothing listens on {port}")

    def finish(self, timeout: float = 20.0) -> Result:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "tail did not stop"
        assert self.result is not None
        return self.result

    def output(self) -> str:
        return self.result.output if self.result else "(still running)"


@pytest.fixture
def ports(free_port: Callable[[], int]) -> Callable[[int], list[int]]:
    def take(n: int) -> list[int]:
        chosen: list[int] = []
        while len(chosen) < n:
            port = free_port()
            if port not in chosen:
                chosen.append(port)
        return chosen

    return take


def test_pushgateway_lines_metrics_and_summary(ports: Callable[[int], list[int]]) -> None:
    (port,) = ports(1)
    run = TailRun(
        "--pushgateway", f"127.0.0.1:{port}", "--count", "2", "--duration", "15", "--color", "never"
    )
    run.wait_tcp(port)
    base = f"http://127.0.0.1:{port}"
    assert httpx.put(f"{base}/metrics/job/batch/instance/a", content=GOOD).status_code == 200
    metrics = httpx.get(f"{base}/metrics").text
    assert 'backup_done{instance="a",job="batch"} 1' in metrics
    assert "promscope_http_requests_total" in metrics
    assert (
        httpx.put(f"{base}/metrics/job/batch", content=BAD, headers={"User-Agent": "bad/1"}).status_code
        == 400
    )
    result = run.finish()
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert "pushgateway" in lines[0] and "127.0.0.1:" in lines[0]
    assert "PUT job=batch/instance=a" in lines[0] and "accepted" in lines[0] and "HTTP 200" in lines[0]
    assert "rejected" in lines[1] and "HTTP 400" in lines[1] and "line 2:" in lines[1]
    assert "--- 2 observations" in result.stdout
    summary = result.stdout[result.stdout.index("--- 2 observations") :]
    assert "SENDER" in summary and "127.0.0.1" in summary and "pushgateway" in summary
    assert f"pushgateway http://127.0.0.1:{port}/metrics/job/" in result.stderr


def test_json_lines(ports: Callable[[int], list[int]]) -> None:
    (port,) = ports(1)
    run = TailRun("--pushgateway", str(port), "--count", "1", "--duration", "15", "-o", "json")
    run.wait_tcp(port)
    httpx.put(f"http://127.0.0.1:{port}/metrics/job/j/path@base64/L3Zhcg==", content=GOOD)
    result = run.finish()
    first, summary = (json.loads(line) for line in result.stdout.splitlines())
    assert first["schema"] == "promscope.tail.observation/v1"
    assert first["kind"] == "pushgateway" and first["outcome"] == "accepted"
    assert first["method"] == "PUT" and first["status"] == 200
    assert first["grouping_key"] == {"job": "j", "path": "/var"}
    assert first["families"] == ["backup_done"]
    assert first["sender_host"] == "127.0.0.1"
    assert summary["schema"] == "promscope.tail.summary/v1"
    assert summary["observations"] == 1 and summary["by_outcome"] == {"accepted": 1}
    assert summary["senders"][0]["key"] == "127.0.0.1"


def test_all_four_receivers_and_a_shared_port(ports: Callable[[int], list[int]]) -> None:
    http_port, statsd_port, otlp_port = ports(3)
    run = TailRun(
        "--pushgateway", f"127.0.0.1:{http_port}",
        "--remote-write", f"127.0.0.1:{http_port}",  # shares the Pushgateway's port
        "--otlp", f"127.0.0.1:{otlp_port}",
        "--statsd", f"127.0.0.1:{statsd_port}",
        "--count", "4", "--duration", "15", "-o", "json",
    )  # fmt: skip
    for port in (http_port, otlp_port, statsd_port):
        run.wait_tcp(port)
    httpx.put(f"http://127.0.0.1:{http_port}/metrics/job/j", content=GOOD)
    import cramjam

    httpx.post(
        f"http://127.0.0.1:{http_port}/api/v1/write",
        content=bytes(cramjam.snappy.compress_raw(b"")),
        headers={"Content-Type": "application/x-protobuf", "Content-Encoding": "snappy"},
    )
    httpx.post(
        f"http://127.0.0.1:{otlp_port}/v1/metrics",
        content=b"{}",
        headers={"Content-Type": "application/json"},
    )
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.sendto(b"jobs.done:1|c", ("127.0.0.1", statsd_port))
    result = run.finish()
    assert result.exit_code == 0, result.output
    kinds = {json.loads(line)["kind"] for line in result.stdout.splitlines()[:-1]}
    assert kinds == {"pushgateway", "remote_write", "otlp", "statsd"}


def test_statsd_alone_serves_metrics_on_its_own_port(ports: Callable[[int], list[int]]) -> None:
    statsd_port, metrics_port = ports(2)
    run = TailRun(
        "--statsd", f"127.0.0.1:{statsd_port}", "--metrics", f"127.0.0.1:{metrics_port}",
        "--count", "2", "--duration", "15", "--color", "never",
    )  # fmt: skip
    run.wait_tcp(metrics_port)
    run.wait_tcp(statsd_port)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.sendto(b"jobs.done:3|c", ("127.0.0.1", statsd_port))
    deadline = time.monotonic() + 10
    text = ""
    while "jobs_done" not in text and time.monotonic() < deadline:
        text = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics").text
        time.sleep(0.05)
    from promscope.exposition import parse

    family = parse(text, "text").family("jobs_done")
    assert family is not None and [s.value for s in family.samples] == [3.0]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:  # another sender: the second line
        udp.sendto(b"jobs.done:1|c", ("127.0.0.1", statsd_port))
    result = run.finish()
    assert "statsd" in result.stdout.splitlines()[0]


def test_filters_hide_what_was_not_asked_for(ports: Callable[[int], list[int]]) -> None:
    (port,) = ports(1)
    run = TailRun(
        "--pushgateway", str(port), "--name", "job=wanted*", "--count", "1", "--duration", "15", "-o", "json"
    )
    run.wait_tcp(port)
    httpx.put(f"http://127.0.0.1:{port}/metrics/job/other", content=GOOD)
    httpx.put(f"http://127.0.0.1:{port}/metrics/job/wanted", content=GOOD)
    result = run.finish()
    first, summary = (json.loads(line) for line in result.stdout.splitlines())
    assert first["source"] == "job=wanted"
    assert summary["hidden"] == 1 and summary["observations"] == 1


def test_auth_applies_and_refusals_are_shown(ports: Callable[[int], list[int]]) -> None:
    (port,) = ports(1)
    run = TailRun(
        "--pushgateway",
        str(port),
        "--basic-auth",
        "pusher:pw",
        "--count",
        "2",
        "--duration",
        "15",
        "-o",
        "json",
    )
    run.wait_tcp(port)
    url = f"http://127.0.0.1:{port}/metrics/job/j"
    assert httpx.put(url, content=GOOD).status_code == 401
    assert httpx.put(url, content=GOOD, auth=("pusher", "pw")).status_code == 200
    result = run.finish()
    refused, accepted, _ = (json.loads(line) for line in result.stdout.splitlines())
    assert refused["outcome"] == "rejected" and refused["status"] == 401
    assert accepted["outcome"] == "accepted"


def test_persistence_file_survives_a_restart(ports: Callable[[int], list[int]], tmp_path: Any) -> None:
    (port,) = ports(1)
    db = str(tmp_path / "push.db")
    first = TailRun("--pushgateway", str(port), "--persistence-file", db, "--count", "1", "--duration", "15")
    first.wait_tcp(port)
    httpx.put(f"http://127.0.0.1:{port}/metrics/job/kept", content=GOOD)
    assert first.finish().exit_code == 0
    second = TailRun("--pushgateway", str(port), "--persistence-file", db, "--duration", "15", "--count", "1")
    second.wait_tcp(port)
    assert 'backup_done{instance="",job="kept"} 1' in httpx.get(f"http://127.0.0.1:{port}/metrics").text
    httpx.put(f"http://127.0.0.1:{port}/metrics/job/end", content=GOOD)  # ends the second run
    assert second.finish().exit_code == 0


def test_duration_ends_a_quiet_tail(ports: Callable[[int], list[int]]) -> None:
    (port,) = ports(1)
    result = CliRunner().invoke(tail, ["--otlp", str(port), "--duration", "0.2", "--color", "never"])
    assert result.exit_code == 0, result.output
    assert "--- 0 observations" in result.stdout and "nothing received" in result.stdout


def test_port_in_use_is_exit_3(ports: Callable[[int], list[int]]) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = CliRunner().invoke(tail, ["--pushgateway", str(port), "--duration", "5"])
    assert result.exit_code == 3
    assert f"127.0.0.1:{port}: cannot listen for pushgateway" in result.stderr


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--protocol", "carrier-pigeon"], "is not one of pushgateway, statsd, remote_write, otlp"),
        (["--pushgateway", "host:notaport"], "port must be a number"),
        (["--tls-cert-file", __file__], "go together"),
        (["--basic-auth", "nopassword"], "is not USER:PASSWORD"),
        (["--count", "0"], "0"),
    ],
)
def test_usage_errors(args: list[str], words: str) -> None:
    result = CliRunner().invoke(tail, [*args, "--duration", "0.1"])
    assert result.exit_code == 2
    assert words in result.output


def test_listener_defaults() -> None:
    everything, metrics = _listeners(False, dict.fromkeys(DEFAULTS), None)
    assert everything == {
        "pushgateway": ("127.0.0.1", 9091),
        "statsd": ("127.0.0.1", 9125),
        "remote_write": ("127.0.0.1", 9201),
        "otlp": ("127.0.0.1", 4318),
    }
    assert metrics is None
    statsd_only, metrics = _listeners(False, {**dict.fromkeys(DEFAULTS), "statsd": "8125"}, None)
    assert statsd_only == {"statsd": ("127.0.0.1", 8125)} and metrics == ("127.0.0.1", 9102)
    all_plus, _ = _listeners(True, {**dict.fromkeys(DEFAULTS), "statsd": "0.0.0.0:8125"}, None)
    assert all_plus["statsd"] == ("0.0.0.0", 8125) and all_plus["otlp"] == ("127.0.0.1", 4318)
    only_host, _ = _listeners(False, {**dict.fromkeys(DEFAULTS), "otlp": "localhost"}, None)
    assert only_host == {"otlp": ("localhost", 4318)}


# --- presentation and the printer, without sockets ---------------------------------------------------


def _observation(**kwargs: Any) -> Observation:
    values: dict[str, Any] = {
        "kind": ObservationKind.PUSHGATEWAY,
        "source": "job=a",
        "time": 0.25,
        "outcome": Outcome.ACCEPTED,
        "transport": Transport("http", sender="10.1.2.3:4000", method="PUT", status=200, user_agent="ua/1"),
        "series": 3,
    }
    values.update(kwargs)
    return Observation(**values)


def test_observation_line() -> None:
    plain = Styler(False)
    line = observation_line(
        _observation(changes=Changes(families_added=("a",), series_added=3)),
        plain,
    )
    assert line == (
        "00:00:00.250Z  pushgateway   10.1.2.3:4000  PUT job=a  3 series  accepted  HTTP 200  "
        "families +1 -0 ~0, series +3 -0 ~0"
    )
    bad = _observation(
        outcome=Outcome.REJECTED,
        diagnostics=(
            Diagnostic("PS-201", Severity.ERROR, 2, 7, "unexpected '{'"),
            Diagnostic("PS-202", Severity.ERROR, 3, 1, "bad value"),
            Diagnostic("LINT-1", Severity.WARNING, 1, 1, "naming"),
        ),
    )
    line = observation_line(bad, plain)
    assert "rejected" in line and "PS-201 line 2:7: unexpected '{' (+1 more)" in line and "1 warning" in line
    verbose = observation_line(bad, plain, verbose=True).splitlines()
    assert verbose[1] == "    user-agent: ua/1"
    assert verbose[2:] == [
        "    error PS-201 line 2:7: unexpected '{'",
        "    error PS-202 line 3:1: bad value",
        "    warning LINT-1 line 1:1: naming",
    ]


def test_observation_json_is_plain_json() -> None:
    document = observation_json(
        _observation(diagnostics=(Diagnostic("X-1", Severity.ERROR, 1, 2, "m", "foo"),))
    )
    assert json.loads(json.dumps(document)) == document
    assert document["errors"] == [{"code": "X-1", "line": 1, "column": 2, "message": "m", "metric": "foo"}]
    assert document["errors_total"] == 1 and document["changes"] is None


def test_printer_drops_lines_it_cannot_queue_and_counts_them() -> None:
    async def scenario() -> TailPrinter:
        printer = TailPrinter(PushLog(), Filters(), "text", Styler(False))
        for _ in range(10_005):  # nobody writes: the queue fills
            printer(_observation())
        return printer

    printer = asyncio.run(scenario())
    assert printer.shown == 10_005
    assert printer.lines_dropped == 5
    assert printer.push_log.total == 10_005


def test_filters() -> None:
    statsd = _observation(kind=ObservationKind.STATSD, source="10.0.0.9:5000")
    assert Filters(protocols=frozenset({"statsd"})).match(statsd)
    assert not Filters(protocols=frozenset({"otlp"})).match(statsd)
    assert Filters(senders=("10.1.2.*",)).match(statsd)
    assert Filters(senders=("10.1.2.3",)).match(statsd)
    assert not Filters(senders=("192.*",)).match(statsd)
    assert Filters(names=("10.0.0.9*",)).match(statsd)
    assert not Filters(names=("job=*",)).match(statsd)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_prints_the_summary(ports: Callable[[int], list[int]], signum: int) -> None:
    (port,) = ports(1)
    code = "import sys; from cli.commands.tail import tail; tail(sys.argv[1:], prog_name='promscope tail')"
    process = subprocess.Popen(
        [sys.executable, "-c", code, "--pushgateway", str(port), "--duration", "30", "--color", "never"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 15
        while True:
            assert process.poll() is None, process.communicate()
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    break
            except OSError:
                assert time.monotonic() < deadline, "tail never listened"
                time.sleep(0.05)
        assert httpx.put(f"http://127.0.0.1:{port}/metrics/job/j", content=GOOD).status_code == 200
        process.send_signal(signum)
        stdout, stderr = process.communicate(timeout=15)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, stderr
    assert "PUT job=j" in stdout
    assert "--- 1 observation in" in stdout and "127.0.0.1" in stdout.split("---")[-1]


# --- group expiry, body size, the StatsD column, TLS for StatsD ----------------------------------------


def _json_lines(result: Result) -> list[dict[str, Any]]:
    return [json.loads(line) for line in result.stdout.splitlines()]


def _columns(line: str) -> list[str]:
    import re

    return re.split(r" {2,}", line)


def test_expire_after_deletes_groups_and_shows_each_deletion(ports: Callable[[int], list[int]]) -> None:
    (port,) = ports(1)
    run = TailRun(
        "--pushgateway", str(port), "--expire-after", "200ms", "--stale-after", "100ms",
        "--count", "2", "--duration", "15", "--color", "never",
    )  # fmt: skip
    run.wait_tcp(port)
    base = f"http://127.0.0.1:{port}"
    body = b'a 1\nb{x="1"} 2\nb{x="2"} 3\n'
    assert httpx.put(f"{base}/metrics/job/gone/instance/i", content=body).status_code == 200
    result = run.finish()  # the second line is the expiry (bounded by --duration)
    assert result.exit_code == 0, result.output
    pushed, expired = result.stdout.splitlines()[:2]
    assert "PUT job=gone/instance=i" in pushed
    assert _columns(expired)[1:6] == [
        "pushgateway",
        "-",
        "EXPIRE job=gone/instance=i",
        "0 series",
        "accepted",
    ]
    assert "families +0 -2 ~0, series +0 -3 ~0" in expired
    assert "expired after 200ms (last push " in expired
    summary = result.stdout[result.stdout.index("--- 2 observations") :]
    assert "unknown" not in summary  # the expiry belongs to no sender


def test_expire_after_in_json_and_both_durations_reach_the_receiver(
    ports: Callable[[int], list[int]],
) -> None:
    (port,) = ports(1)
    run = TailRun(
        "--pushgateway", str(port), "--expire-after", "0.2", "--stale-after", "1m30s",
        "--count", "2", "--duration", "15", "-o", "json",
    )  # fmt: skip
    run.wait_tcp(port)
    base = f"http://127.0.0.1:{port}"
    flags = httpx.get(f"{base}/api/v1/status").json()["data"]["flags"]
    assert flags["promscope.expire-after"] == "0.2s" and flags["promscope.stale-after"] == "90s"
    assert httpx.put(f"{base}/metrics/job/gone", content=GOOD).status_code == 200
    result = run.finish()
    pushed, expired, summary = _json_lines(result)
    assert pushed["what"] == "PUT job=gone" and pushed["protocol"] == "http"
    assert expired["what"] == "EXPIRE job=gone" and expired["source"] == "job=gone"
    assert expired["kind"] == "pushgateway" and expired["outcome"] == "accepted"
    assert expired["protocol"] == "internal" and expired["sender"] is None and expired["status"] is None
    assert expired["grouping_key"] == {"job": "gone"}
    assert expired["changes"]["families_removed"] == ["backup_done"]
    assert expired["changes"]["series_removed"] == 1
    assert expired["message"].startswith("expired after 200ms (last push ")
    assert expired["extra"]["last_sender"].startswith("127.0.0.1:")
    assert [s["key"] for s in summary["senders"]] == ["127.0.0.1"]


def test_without_expire_after_nothing_expires(ports: Callable[[int], list[int]]) -> None:
    (port,) = ports(1)
    run = TailRun("--pushgateway", str(port), "--count", "1", "--duration", "15")
    run.wait_tcp(port)
    base = f"http://127.0.0.1:{port}"
    assert httpx.get(f"{base}/api/v1/status").json()["data"]["flags"]["promscope.expire-after"] == ""
    httpx.put(f"{base}/metrics/job/kept", content=GOOD)
    assert run.finish().exit_code == 0


def test_max_body_size_is_one_limit_for_the_http_layer_and_the_pushgateway(
    ports: Callable[[int], list[int]],
) -> None:
    import gzip

    (port,) = ports(1)
    run = TailRun(
        "--pushgateway", str(port), "--max-body-size", "1KiB",
        "--count", "3", "--duration", "15", "-o", "json",
    )  # fmt: skip
    run.wait_tcp(port)
    base = f"http://127.0.0.1:{port}"
    flags = httpx.get(f"{base}/api/v1/status").json()["data"]["flags"]
    assert flags["promscope.max-body-size"] == "1024"
    fits = b"".join(b"m%d 1\n" % i for i in range(100))[:1000].rpartition(b"\n")[0] + b"\n"
    too_big = b"".join(b"m%d 1\n" % i for i in range(400))
    assert len(fits) <= 1024 < len(too_big)
    assert httpx.put(f"{base}/metrics/job/j", content=fits).status_code == 200
    refused = httpx.put(f"{base}/metrics/job/j", content=too_big)
    assert refused.status_code == 413 and "1 KiB" in refused.text
    bomb = httpx.put(
        f"{base}/metrics/job/j", content=gzip.compress(too_big), headers={"Content-Encoding": "gzip"}
    )
    assert len(gzip.compress(too_big)) < 1024 and bomb.status_code == 413  # decoded size counts too
    result = run.finish()
    accepted, *rejected, _ = _json_lines(result)
    assert accepted["outcome"] == "accepted"
    assert [r["status"] for r in rejected] == [413, 413]
    assert all(r["outcome"] == "rejected" and r["what"] == "PUT job=j" for r in rejected)


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--expire-after", "soon"], "is not a duration"),
        (["--expire-after", "0s"], "must be positive"),
        (["--stale-after", "-5"], "must be positive"),
        (["--max-body-size", "lots"], "is not a size"),
        (["--max-body-size", "0"], "at least 1 byte"),
    ],
)
def test_duration_and_size_usage_errors(args: list[str], words: str) -> None:
    result = CliRunner().invoke(tail, [*args, "--duration", "0.1"])
    assert result.exit_code == 2
    assert words in result.output


def test_statsd_lines_name_what_arrived_not_the_sender_twice(ports: Callable[[int], list[int]]) -> None:
    statsd_port, metrics_port = ports(2)
    run = TailRun(
        "--statsd", f"127.0.0.1:{statsd_port}", "--metrics", f"127.0.0.1:{metrics_port}",
        "--count", "2", "--duration", "15", "--color", "never",
    )  # fmt: skip
    run.wait_tcp(statsd_port)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.sendto(b"api.requests:1|c\napi.errors:1|c\napi.latency:3|ms", ("127.0.0.1", statsd_port))
        udp.sendto(b"api.requests:1|c", ("127.0.0.1", statsd_port))
    result = run.finish()
    first, second = result.stdout.splitlines()[:2]
    columns = _columns(first)
    sender = columns[2]
    assert sender.startswith("127.0.0.1:")
    assert columns[3] == "api_errors +2 more" and first.count(sender) == 1
    assert _columns(second)[3] == "api_requests"


def test_statsd_what_in_json_matches_the_line() -> None:
    from promscope.model import MetricFamily, MetricType, Sample

    def family(name: str) -> MetricFamily:
        return MetricFamily(name, MetricType.COUNTER, "", None, (Sample(name, (), 1.0),))

    statsd = _observation(
        kind=ObservationKind.STATSD,
        source="10.0.0.9:5000",
        transport=Transport("udp", sender="10.0.0.9:5000", extra={"lines": "3"}),
        families=(family("api_errors"), family("api_latency"), family("api_requests")),
    )
    assert observation_json(statsd)["what"] == "api_errors +2 more"
    assert _columns(observation_line(statsd, Styler(False)))[2:4] == ["10.0.0.9:5000", "api_errors +2 more"]
    bad = _observation(
        kind=ObservationKind.STATSD,
        outcome=Outcome.REJECTED,
        transport=Transport("udp", sender="10.0.0.9:5000", extra={"lines": "1"}),
        diagnostics=(Diagnostic("SD-106", Severity.ERROR, 1, 5, "bad value", "api_x"),),
    )
    assert observation_json(bad)["what"] == "api_x"
    empty = _observation(
        kind=ObservationKind.STATSD, transport=Transport("udp", sender="10.0.0.9:5000", extra={"lines": "2"})
    )
    assert observation_json(empty)["what"] == "2 lines"
    assert observation_json(_observation())["what"] == "PUT job=a"


def test_tls_flags_cover_statsd_tcp_and_client_certificates_are_required(
    ports: Callable[[int], list[int]], tls_files: Any
) -> None:
    import ssl

    statsd_port, metrics_port = ports(2)
    run = TailRun(
        "--statsd", f"127.0.0.1:{statsd_port}", "--metrics", f"127.0.0.1:{metrics_port}",
        "--tls-cert-file", str(tls_files.server_cert), "--tls-key-file", str(tls_files.server_key),
        "--tls-client-ca-file", str(tls_files.ca_cert),
        "--count", "2", "--duration", "15", "-o", "json",
    )  # fmt: skip
    run.wait_tcp(statsd_port)

    def send(with_cert: bool, data: bytes) -> None:
        context = ssl.create_default_context(cafile=str(tls_files.ca_cert))
        if with_cert:
            context.load_cert_chain(str(tls_files.client_cert), str(tls_files.client_key))
        try:
            with (
                socket.create_connection(("127.0.0.1", statsd_port), timeout=5) as raw,
                context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
            ):
                tls.sendall(data)
                tls.unwrap() if with_cert else tls.recv(1)  # the refusal arrives on the next read
        except (ssl.SSLError, OSError):
            pass  # no certificate: the server ends the handshake

    send(True, b"secure.hits:1|c\n")
    send(False, b"sneaky.hits:1|c\n")
    result = run.finish()
    assert result.exit_code == 0, result.output
    observations = _json_lines(result)[:2]
    by_outcome = {o["outcome"]: o for o in observations}
    assert by_outcome["accepted"]["protocol"] == "tls" and by_outcome["accepted"]["what"] == "secure_hits"
    refused = by_outcome["rejected"]
    assert refused["what"] == "(TLS handshake)" and refused["errors"][0]["code"] == "SD-162"
    assert refused["sender"].startswith("127.0.0.1:")
    assert "tcp+tls with client certificates" in result.stderr and "UDP cannot carry TLS" in result.stderr
