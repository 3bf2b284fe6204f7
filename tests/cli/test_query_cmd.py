"""``promscope query``: every kind of source, both outputs, the exit codes, and carets under errors.

The command object is driven with click's CliRunner. URL sources and
``--prometheus`` talk to small HTTP servers on 127.0.0.1 started here (one
serving an exposition whose counter grows per request, one answering like
Prometheus's HTTP API).
"""

from __future__ import annotations

import http.server
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest
from click.testing import CliRunner

from cli.commands.query import parse_time, query

T0 = 1_700_000_000

BACKFILL = f"""# TYPE req counter
req_total{{ns="a",pod="1"}} 0 {T0}
req_total{{ns="a",pod="1"}} 30 {T0 + 15}
req_total{{ns="a",pod="1"}} 60 {T0 + 30}
req_total{{ns="a",pod="1"}} 5 {T0 + 45}
req_total{{ns="b",pod="2"}} 100 {T0}
req_total{{ns="b",pod="2"}} 130 {T0 + 45}
# TYPE temp gauge
temp{{ns="a"}} 21.5 {T0 + 45}
# EOF
"""


def run(*args: str, input: str | bytes | None = None) -> Any:
    return CliRunner().invoke(query, list(args), input=input, catch_exceptions=False)


@pytest.fixture
def backfill(tmp_path: Path) -> Path:
    path = tmp_path / "backfill.om"
    path.write_text(BACKFILL, encoding="utf-8")
    return path


def test_instant_query_over_a_backfill_defaults_to_the_newest_sample(backfill: Path) -> None:
    result = run(str(backfill), "sum by (ns) (increase(req_total[1m]))", "-o", "json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["resultType"] == "vector"
    values = {s["metric"]["ns"]: float(s["value"][1]) for s in data["result"]}
    # a: 60 before the reset + 5 after; it starts at 0, so Prometheus extrapolates no further back.
    assert values["a"] == pytest.approx(65.0)
    assert values["b"] == pytest.approx(30 * 60 / 45)  # two points 45 s apart, extrapolated to the minute
    assert {s["value"][0] for s in data["result"]} == {T0 + 45}


def test_table_output_lists_series_and_values(backfill: Path) -> None:
    result = run(str(backfill), "req_total", "--at", str(T0 + 30), "--color", "never")
    assert result.exit_code == 0
    assert 'req_total{ns="a", pod="1"}' in result.output and "60" in result.output
    assert "vector, 2 series at 2023-11-14T22:13:50Z" in result.output


def test_at_takes_rfc3339_and_relative_times(backfill: Path) -> None:
    result = run(str(backfill), "req_total", "--at", "2023-11-14T22:13:35Z", "-o", "json")
    data = json.loads(result.stdout)
    assert {float(s["value"][1]) for s in data["result"]} == {30.0, 100.0}
    assert parse_time("now-5m", now=1000.0) == 700.0
    assert parse_time("2023-11-14T22:13:20.5+00:00") == T0 + 0.5
    with pytest.raises(ValueError, match="not a time"):
        parse_time("yesterday")


def test_range_query_prints_a_matrix(backfill: Path) -> None:
    args = ("--range", str(T0), str(T0 + 45), "--step", "15s")
    result = run(str(backfill), 'req_total{ns="a"}', *args, "-o", "json")
    assert result.exit_code == 0
    (only,) = json.loads(result.stdout)["result"]
    assert only["values"] == [[T0, "0"], [T0 + 15, "30"], [T0 + 30, "60"], [T0 + 45, "5"]]
    table = run(str(backfill), "req_total", *args, "--color", "never")
    assert "matrix, 2 series" in table.output and "points" in table.output


def test_scalar_and_string_results(backfill: Path) -> None:
    data = json.loads(run(str(backfill), "2 * 21", "-o", "json").stdout)
    assert data == {"resultType": "scalar", "result": [T0 + 45, "42"]}
    assert "hello" in run(str(backfill), '"hello"').output


def test_an_empty_result_exits_1(backfill: Path) -> None:
    result = run(str(backfill), "no_such_metric", "-o", "json")
    assert result.exit_code == 1
    assert json.loads(result.stdout) == {"resultType": "vector", "result": []}


def test_a_parse_error_exits_2_with_a_caret(backfill: Path) -> None:
    result = run(str(backfill), "sum(rate(req_total[5m])")
    assert result.exit_code == 2
    assert "1:4: parse error: unclosed left parenthesis" in result.stderr
    assert "  sum(rate(req_total[5m])\n     ^" in result.stderr


def test_an_evaluation_error_exits_2(backfill: Path) -> None:
    result = run(str(backfill), "req_total / on() req_total")
    assert result.exit_code == 2
    assert "many-to-many matching not allowed" in result.stderr


def test_unreadable_sources_exit_3(tmp_path: Path) -> None:
    assert run(str(tmp_path / "missing.om"), "x").exit_code == 3
    assert run(str(tmp_path), "x").exit_code == 3
    garbage = tmp_path / "garbage.prom"
    garbage.write_text("{{{ not an exposition\n", encoding="utf-8")
    result = run(str(garbage), "x")
    assert result.exit_code == 3 and "nothing could be read" in result.stderr


def test_usage_errors_exit_2(backfill: Path) -> None:
    assert run("just_an_expression").exit_code == 2
    assert run("--session", "a", "--prometheus", "http://x", "up").exit_code == 2
    assert run(str(backfill), "x", "--at", "soon").exit_code == 2
    assert run(str(backfill), "x", "--step", "1m").exit_code == 2
    assert run(str(backfill), "x", "--range", str(T0 + 10), str(T0)).exit_code == 2


def test_stdin_is_a_source() -> None:
    result = run("-", "sum(req_total)", "-o", "json", input=BACKFILL.replace("# EOF\n", ""))
    assert result.exit_code == 0
    assert json.loads(result.stdout)["result"][0]["value"][1] == "135"


def test_a_session_file_is_a_source(tmp_path: Path) -> None:
    from promscope.model import MetricFamily, MetricType, Sample
    from promscope.observation import Observation, ObservationKind, Outcome, Transport
    from promscope.store.session import SessionRecorder

    path = tmp_path / "incident.psession"
    recorder = SessionRecorder(path)
    recorder.start()
    for i in range(3):
        family = MetricFamily(
            "jobs", MetricType.COUNTER, samples=(Sample("jobs_total", (("q", "x"),), 10.0 * i),)
        )
        recorder(
            Observation(
                kind=ObservationKind.SCRAPE,
                source="http://app/metrics",
                time=T0 + 15 * i,
                outcome=Outcome.ACCEPTED,
                transport=Transport("http"),
                families=(family,),
            )
        )
    recorder.close()
    for args in (("--session", str(path)), (str(path),)):
        result = run(*args, "rate(jobs_total[1m])", "-o", "json")
        assert result.exit_code == 0, result.output + result.stderr
        (sample,) = json.loads(result.stdout)["result"]
        assert sample["value"][0] == T0 + 30


class _Exporter(http.server.BaseHTTPRequestHandler):
    hits = 0

    def do_GET(self) -> None:
        type(self).hits += 1
        body = f"# TYPE work_total counter\nwork_total {10 * type(self).hits}\n".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


class _FakePrometheus(http.server.BaseHTTPRequestHandler):
    seen: list[tuple[str, dict[str, list[str]]]] = []

    def do_GET(self) -> None:
        url = urlparse(self.path)
        params = parse_qs(url.query)
        type(self).seen.append((url.path, params))
        expr = params["query"][0]
        if expr == "bad(":
            status, body = (
                400,
                {
                    "status": "error",
                    "errorType": "bad_data",
                    "error": "1:5: parse error: unclosed left parenthesis",
                },
            )
        elif url.path == "/api/v1/query_range":
            status, body = (
                200,
                {
                    "status": "success",
                    "data": {
                        "resultType": "matrix",
                        "result": [{"metric": {"job": "p"}, "values": [[T0, "1"], [T0 + 60, "2"]]}],
                    },
                },
            )
        elif expr == "none":
            status, body = 200, {"status": "success", "data": {"resultType": "vector", "result": []}}
        else:
            status, body = (
                200,
                {
                    "status": "success",
                    "warnings": ["slow"],
                    "data": {
                        "resultType": "vector",
                        "result": [{"metric": {"__name__": "up", "job": "p"}, "value": [T0, "1"]}],
                    },
                },
            )
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: object) -> None:
        pass


def _serve(handler: type[http.server.BaseHTTPRequestHandler]) -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def exporter() -> Iterator[str]:
    _Exporter.hits = 0
    yield from _serve(_Exporter)


@pytest.fixture
def prometheus() -> Iterator[str]:
    _FakePrometheus.seen = []
    yield from _serve(_FakePrometheus)


def test_a_url_is_scraped_once_for_an_instant_expression(exporter: str) -> None:
    result = run(exporter + "/metrics", "work_total", "-o", "json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["result"][0]["value"][1] == "10"
    assert _Exporter.hits == 1


def test_a_url_is_scraped_twice_window_apart_for_rates(exporter: str) -> None:
    started = time.time()
    result = run(exporter + "/metrics", "increase(work_total[1s])", "--window", "200ms", "-o", "json")
    assert result.exit_code == 0, result.stderr
    assert _Exporter.hits == 2
    (sample,) = json.loads(result.stdout)["result"]
    assert float(sample["value"][1]) >= 10.0
    assert sample["value"][0] >= started
    warned = run(exporter + "/metrics", "rate(work_total[5m])", "--window", "100ms")
    assert "understates" in warned.stderr


def test_an_unreachable_url_exits_3(free_port: Any) -> None:
    result = run(f"http://127.0.0.1:{free_port()}/metrics", "up", "--timeout", "2s")
    assert result.exit_code == 3


def test_prometheus_instant_and_range_queries(prometheus: str) -> None:
    result = run("--prometheus", prometheus, "up", "--at", str(T0), "-o", "json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["result"][0]["metric"] == {"__name__": "up", "job": "p"}
    assert "prometheus: slow" in result.stderr
    path, params = _FakePrometheus.seen[-1]
    assert path == "/api/v1/query" and params["time"] == [repr(float(T0))]
    ranged = run("--prometheus", prometheus + "/", "up", "--range", str(T0), str(T0 + 60), "--step", "1m")
    assert ranged.exit_code == 0 and "matrix, 1 series" in ranged.output
    path, params = _FakePrometheus.seen[-1]
    assert path == "/api/v1/query_range" and params["step"] == ["60.0"]
    assert run("--prometheus", prometheus, "none").exit_code == 1


def test_prometheus_parse_errors_get_a_caret(prometheus: str) -> None:
    result = run("--prometheus", prometheus, "bad(")
    assert result.exit_code == 2
    assert "prometheus: 1:5: parse error: unclosed left parenthesis" in result.stderr
    assert "  bad(\n      ^" in result.stderr


def test_an_unreachable_prometheus_exits_3(free_port: Any) -> None:
    assert run("--prometheus", f"http://127.0.0.1:{free_port()}", "up", "--timeout", "2s").exit_code == 3


def test_a_gzip_file_is_queried_as_what_it_holds(tmp_path: Path) -> None:
    import gzip

    from click.testing import CliRunner

    from cli.commands.query import query

    packed = tmp_path / "metrics.prom.gz"
    packed.write_bytes(gzip.compress(b"# TYPE up gauge\nup 1 1700000000000\n"))
    result = CliRunner().invoke(query, [str(packed), "up", "-o", "json"])
    assert result.exit_code == 0, result.output
    assert '"1"' in result.output
