"""``promscope diff``: file pairs, URLs, the CI baseline, one endpoint over time (a real 127.0.0.1 server)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from cli.commands.diff import diff
from cli.commands.replay import replay
from cli.exit_codes import ExitCode

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "diff"
BEFORE = str(FIXTURES / "before.prom")
AFTER = str(FIXTURES / "after.prom")
BEFORE_OM = str(FIXTURES / "before.om")
BASELINE = str(FIXTURES / "baseline.prom")
GROWN = str(FIXTURES / "grown.prom")
TEXT_CT = "text/plain; version=0.0.4; charset=utf-8"


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        with self.server.lock:
            index = min(self.server.requests, len(self.server.bodies) - 1)
            self.server.requests += 1
            status, body = self.server.bodies[index]
        self.send_response(status)
        self.send_header("Content-Type", TEXT_CT)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class _Server(ThreadingHTTPServer):
    """Serves its bodies in turn, one per request, then repeats the last one."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.bodies: list[tuple[int, bytes]] = [(200, b"")]
        self.requests = 0
        self.lock = threading.Lock()

    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/metrics"


@pytest.fixture
def server() -> Iterator[_Server]:
    running = _Server()
    thread = threading.Thread(target=running.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield running
    running.shutdown()
    running.server_close()


@pytest.fixture(autouse=True)
def _plain_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("NO_COLOR", "FORCE_COLOR"):
        monkeypatch.delenv(name, raising=False)


def run(*args: str, input: bytes | None = None) -> Result:
    return CliRunner().invoke(diff, list(args), input=input)


# -- two inputs ---------------------------------------------------------------------------------------------


def test_text_report_of_the_fixture_pair() -> None:
    result = run(BEFORE, AFTER)
    assert result.exit_code == ExitCode.PROBLEMS, result.output
    out = result.stdout
    assert f"--- {BEFORE}  (5 families, 8 series)" in out
    assert f"+++ {AFTER}  (5 families, 11 series)" in out
    assert "+ cache_hits_total  counter  (1 series)" in out
    assert "- legacy_errors_total  counter  (1 series)" in out
    assert "    type    summary -> histogram" in out
    assert "    labels  +handler" in out
    assert '      ~ queue_depth{queue="a"}  4 -> 7' in out
    assert '      + build_info{version="1.1"}' in out
    assert "families: +1 -1 ~3 (1 with value changes only), 0 unchanged; series: +7 -4" in out
    assert "\x1b[" not in out
    assert result.stderr == ""


def test_colour_when_asked() -> None:
    assert "\x1b[" in run(BEFORE, AFTER, "--color", "always").stdout


def test_same_metrics_in_two_formats_exit_0() -> None:
    result = run(BEFORE, BEFORE_OM)
    assert result.exit_code == ExitCode.OK, result.output
    assert "no differences" in result.stdout


def test_value_changes_alone_exit_0(tmp_path: Path) -> None:
    (tmp_path / "a.prom").write_text("# TYPE g gauge\ng 1\n")
    (tmp_path / "b.prom").write_text("# TYPE g gauge\ng 2\n")
    result = run(str(tmp_path / "a.prom"), str(tmp_path / "b.prom"))
    assert result.exit_code == ExitCode.OK, result.output
    assert "values  1 changed" in result.stdout


def test_stdin_as_one_input() -> None:
    result = run("-", BEFORE, input=Path(BEFORE).read_bytes())
    assert result.exit_code == ExitCode.OK, result.output
    assert "--- -  (5 families, 8 series)" in result.stdout


def test_json_output(tmp_path: Path) -> None:
    result = run(BEFORE, AFTER, "-o", "json", "--examples", "1")
    assert result.exit_code == ExitCode.PROBLEMS
    data = json.loads(result.stdout)
    assert data["schema"] == "promscope.diff/v1"
    assert data["structural"] is True
    assert [f["name"] for f in data["families"]["added"]] == ["cache_hits_total"]
    requests = next(c for c in data["families"]["changed"] if c["name"] == "http_requests_total")
    assert len(requests["series"]["added_examples"]) == 1 and requests["series"]["added"] == 3


def test_two_urls(server: _Server) -> None:
    server.bodies = [(200, Path(BEFORE).read_bytes()), (200, Path(AFTER).read_bytes())]
    result = run(server.url(), server.url(), "-o", "json")
    assert result.exit_code == ExitCode.PROBLEMS, result.output
    data = json.loads(result.stdout)
    assert data["a"]["series"] == 8 and data["b"]["series"] == 11


def test_parse_errors_are_a_warning_not_a_stop(tmp_path: Path) -> None:
    broken = tmp_path / "broken.prom"
    broken.write_bytes(Path(BEFORE).read_bytes() + b"bad{ 1\n")
    result = run(BEFORE, str(broken))
    assert result.exit_code == ExitCode.OK, result.output
    assert "1 parse error; comparing what parsed" in result.stderr


# -- unreadable and usage -----------------------------------------------------------------------------------


def test_missing_file_is_unreadable(tmp_path: Path) -> None:
    result = run(BEFORE, str(tmp_path / "nope.prom"))
    assert result.exit_code == ExitCode.UNREADABLE
    assert "nope.prom: no such file" in result.stderr
    assert result.stdout == ""


def test_unreachable_url_is_unreadable(free_port: object) -> None:
    port = free_port()  # type: ignore[operator]
    result = run(BEFORE, f"http://127.0.0.1:{port}/metrics", "--timeout", "2s")
    assert result.exit_code == ExitCode.UNREADABLE
    assert "promscope: error:" in result.stderr


def test_http_error_is_unreadable(server: _Server) -> None:
    server.bodies = [(503, b"down\n")]
    result = run(BEFORE, server.url())
    assert result.exit_code == ExitCode.UNREADABLE
    assert "503" in result.stderr


@pytest.mark.parametrize(
    "args",
    [
        [BEFORE],
        [BEFORE, AFTER, BEFORE],
        ["--baseline", BASELINE],
        ["--baseline", BASELINE, GROWN, AFTER],
        ["-", "-"],
        [BEFORE, AFTER, "--count", "2"],
        [BEFORE, "--interval", "1s"],
        ["http://127.0.0.1:1/metrics", "http://127.0.0.1:1/metrics", "--interval", "1s"],
        ["http://127.0.0.1:1/metrics", "--interval", "soon"],
        [BEFORE, AFTER, "--max-series-growth", "-5"],
        [BEFORE, AFTER, "--record", "x.psession"],
    ],
)
def test_usage_errors(args: list[str]) -> None:
    result = run(*args)
    assert result.exit_code == ExitCode.USAGE, result.output


# -- baseline -----------------------------------------------------------------------------------------------


def test_baseline_pass() -> None:
    result = run("--baseline", BASELINE, BASELINE)
    assert result.exit_code == ExitCode.OK, result.output
    assert result.stdout.startswith("PASS")


def test_baseline_growth_within_the_limit() -> None:
    result = run("--baseline", BASELINE, GROWN, "--max-series-growth", "50")
    assert result.exit_code == ExitCode.OK, result.output
    assert "series 8 -> 10 (+25.0%, limit +50%)" in result.stdout


def test_baseline_growth_over_the_limit() -> None:
    result = run("--baseline", BASELINE, GROWN)
    assert result.exit_code == ExitCode.PROBLEMS
    assert result.stdout.startswith("FAIL")
    assert "series_growth  jobs_processed_total: 4 -> 6 series (+50.0%, limit +20%)" in result.stdout
    assert "total_series_growth  all series: 8 -> 10 (+25.0%, limit +20%)" in result.stdout


def test_baseline_shape_changes_fail_even_with_room_to_grow() -> None:
    result = run("--baseline", BEFORE, AFTER, "--max-series-growth", "1000", "-o", "json")
    assert result.exit_code == ExitCode.PROBLEMS
    data = json.loads(result.stdout)
    assert data["schema"] == "promscope.diff.baseline/v1"
    assert data["passed"] is False
    assert {v["kind"] for v in data["violations"]} == {
        "family_added",
        "family_removed",
        "labels_changed",
        "type_changed",
    }


def test_baseline_against_a_url(server: _Server) -> None:
    server.bodies = [(200, Path(BASELINE).read_bytes())]
    result = run("--baseline", BASELINE, server.url())
    assert result.exit_code == ExitCode.OK, result.output


def test_baseline_unreadable(tmp_path: Path) -> None:
    result = run("--baseline", str(tmp_path / "missing.prom"), BASELINE)
    assert result.exit_code == ExitCode.UNREADABLE


# -- one endpoint over time ---------------------------------------------------------------------------------

ROUNDS = [
    b'# TYPE jobs_total counter\njobs_total{q="a"} 10\n# TYPE busy gauge\nbusy 1\n',
    b'# TYPE jobs_total counter\njobs_total{q="a"} 30\njobs_total{q="b"} 1\n# TYPE busy gauge\nbusy 3\n',
    b'# TYPE jobs_total counter\njobs_total{q="a"} 5\n# TYPE busy gauge\nbusy 3\n',
]


def test_interval_rounds_against_a_changing_server(server: _Server) -> None:
    server.bodies = [(200, body) for body in ROUNDS]
    result = run(server.url(), "--interval", "0.01", "--count", "3", "-o", "json")
    assert result.exit_code == ExitCode.OK, result.output
    rounds = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["round"] for r in rounds] == [0, 1, 2]
    assert all(r["schema"] == "promscope.diff.round/v1" for r in rounds)
    assert rounds[0]["series"] == 2 and rounds[0]["elapsed"] is None
    assert rounds[1]["appeared"] == ['jobs_total{q="b"}']
    assert rounds[1]["changed"] == [{"series": "busy", "a": 1.0, "b": 3.0}]
    (rate,) = rounds[1]["rates"]
    assert rate["series"] == 'jobs_total{q="a"}' and rate["increase"] == 20.0 and rate["reset"] is False
    assert rate["rate"] == pytest.approx(20.0 / rounds[1]["elapsed"])
    assert rounds[2]["vanished"] == ['jobs_total{q="b"}']
    (reset,) = rounds[2]["rates"]
    assert reset["increase"] == 5.0 and reset["reset"] is True
    assert server.requests == 3


def test_interval_text_output(server: _Server) -> None:
    server.bodies = [(200, body) for body in ROUNDS]
    result = run(server.url(), "--interval", "0.01", "--count", "3")
    assert result.exit_code == ExitCode.OK, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith("round 0 ") and lines[0].endswith("2 series in 2 families")
    assert "+1 appeared, -0 vanished, ~1 changed, 1 counter" in result.stdout
    assert '  + jobs_total{q="b"}' in lines
    assert "  ~ busy  1 -> 3" in lines
    assert "1 reset" in result.stdout


def test_interval_round_failures_are_lines_then_exit_3_when_all_fail(server: _Server) -> None:
    server.bodies = [(500, b"oops\n")]
    result = run(server.url(), "--interval", "0.01", "--count", "2")
    assert result.exit_code == ExitCode.UNREADABLE
    assert result.stdout.count("  failed: server returned HTTP status 500") == 2
    assert "every round failed" in result.stderr


def test_interval_one_failure_is_not_fatal(server: _Server) -> None:
    server.bodies = [(200, ROUNDS[0]), (500, b"oops\n"), (200, ROUNDS[1])]
    result = run(server.url(), "--interval", "0.01", "--count", "3", "-o", "json")
    assert result.exit_code == ExitCode.OK
    rounds = [json.loads(line) for line in result.stdout.splitlines()]
    assert rounds[1]["error"] is not None
    assert rounds[2]["appeared"] == ['jobs_total{q="b"}']


def test_interval_record_writes_every_scrape_for_replay(server: _Server, tmp_path: Path) -> None:
    server.bodies = [(200, ROUNDS[0]), (500, b"oops\n"), (200, ROUNDS[1])]
    session = tmp_path / "diff.psession"
    result = run(server.url(), "--interval", "0.01", "--count", "3", "--record", str(session), "-o", "json")
    assert result.exit_code == ExitCode.OK, result.output
    assert len(result.stdout.splitlines()) == 3  # the rounds are printed as without --record
    assert f"recorded 3 observations to {session}" in result.stderr
    replayed = CliRunner().invoke(replay, [str(session), "--fast", "-o", "json"])
    assert replayed.exit_code == ExitCode.OK, replayed.output
    summary, *observations = (json.loads(line) for line in replayed.stdout.splitlines())
    assert summary["by_kind"] == {"scrape": 3} and summary["command_line"]
    address = server.url().split("/")[2]
    assert [o["source"] for o in observations] == [f"promscope/{address}"] * 3
    assert [o["outcome"] for o in observations] == ["accepted", "rejected", "accepted"]
    assert [o["status"] for o in observations] == [200, 500, 200]
    # Each accepted scrape carries its samples and the up/scrape_* series the scrape loop records.
    assert observations[0]["samples"] == 2 + 8 and observations[2]["samples"] == 3 + 8


def test_interval_record_file_that_cannot_be_created_exits_3(server: _Server, tmp_path: Path) -> None:
    server.bodies = [(200, ROUNDS[0])]
    result = run(server.url(), "--interval", "0.01", "--count", "1", "--record", str(tmp_path / "no" / "x"))
    assert result.exit_code == ExitCode.UNREADABLE, result.output
    assert "Traceback" not in result.output


def test_gzip_inputs_are_compared_as_what_they_hold(tmp_path: Path) -> None:
    import gzip

    from click.testing import CliRunner

    from cli.commands.diff import diff

    text = b"# TYPE a gauge\na 1\n"
    plain = tmp_path / "a.prom"
    plain.write_bytes(text)
    packed = tmp_path / "a.prom.gz"
    packed.write_bytes(gzip.compress(text))
    result = CliRunner().invoke(diff, [str(plain), str(packed)])
    assert result.exit_code == 0, result.output
