"""``promscope replay``: the summary, replayed lines (text and JSON Lines), filters, and unreadable files."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path

import click
import pytest
from click.testing import CliRunner, Result

from cli.commands.replay import record_option, recording, replay
from cli.exit_codes import ExitCode
from promscope.model import Diagnostic, MetricFamily, MetricType, Sample, Severity
from promscope.observation import Observation, ObservationKind, Outcome, Transport
from promscope.store.session import FORMAT_VERSION, SessionRecorder

T0 = 1_700_000_000.0  # 2023-11-14T22:13:20Z


def _family(value: float) -> MetricFamily:
    return MetricFamily(
        "jobs_total",
        MetricType.COUNTER,
        "Jobs.",
        samples=(Sample("jobs_total", (("q", "a"),), value), Sample("jobs_total", (("q", "b"),), value)),
    )


OBSERVATIONS = [
    Observation(
        ObservationKind.SCRAPE,
        "http://app:8080/metrics",
        T0,
        Outcome.ACCEPTED,
        Transport("http", sender="http://app:8080/metrics", status=200, duration=0.012, wire_bytes=812),
        families=(_family(1),),
        series=2,
    ),
    Observation(
        ObservationKind.PUSHGATEWAY,
        "job=batch",
        T0 + 0.5,
        Outcome.REJECTED,
        Transport("http", sender="127.0.0.1:5000", method="PUT", status=400),
        diagnostics=(
            Diagnostic("PS-201", Severity.ERROR, 3, 7, "expected a value", "jobs_total"),
            Diagnostic("LINT-001", Severity.WARNING, 1, 0, "no help"),
        ),
        message="PUT job=batch",
        series=4,
    ),
    Observation(
        ObservationKind.SCRAPE,
        "http://app:8080/metrics",
        T0 + 1.0,
        Outcome.FAILED,
        Transport("http", sender="http://app:8080/metrics"),
        message="connection refused",
    ),
    Observation(
        ObservationKind.SCRAPE,
        "http://app:8080/metrics",
        T0 + 2.0,
        Outcome.ACCEPTED,
        Transport("http", sender="http://app:8080/metrics", status=200),
        families=(_family(5),),
        series=2,
    ),
]


@pytest.fixture
def session(tmp_path: Path) -> Path:
    path = tmp_path / "incident.psession"
    with SessionRecorder(
        path, clock=lambda: T0, command_line=["promscope", "tail", "--record", "incident.psession"]
    ) as recorder:
        for observation in OBSERVATIONS:
            recorder(observation)
    return path


@pytest.fixture(autouse=True)
def _plain_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("NO_COLOR", "FORCE_COLOR"):
        monkeypatch.delenv(name, raising=False)


def run(*args: str) -> Result:
    return CliRunner().invoke(replay, list(args))


def test_summary_then_lines(session: Path) -> None:
    result = run(str(session), "--fast")
    assert result.exit_code == ExitCode.OK, result.output
    out = result.stdout
    assert "session  incident.psession  (format 1, promscope " in out
    assert "command  promscope tail --record incident.psession" in out
    assert "time     2023-11-14T22:13:20.000Z .. 2023-11-14T22:13:22.000Z  (2s)" in out
    assert (
        "observations  4: pushgateway 1, scrape 3; accepted 2, failed 1, rejected 1; 4 samples, 2 diagnostics"
        in out
    )
    assert "sources  2" in out
    lines = out.splitlines()
    replayed = lines[lines.index("") + 1 :]
    assert replayed == [
        "22:13:20.000Z  scrape        http://app:8080/metrics  2 series  accepted  HTTP 200",
        "22:13:20.500Z  pushgateway   job=batch  4 series  rejected  1 error  HTTP 400  PUT job=batch",
        "22:13:21.000Z  scrape        http://app:8080/metrics  0 series  failed  connection refused",
        "22:13:22.000Z  scrape        http://app:8080/metrics  2 series  accepted  HTTP 200",
    ]
    assert "\x1b[" not in out and result.stderr == ""


def test_recorded_pace_sped_up(session: Path) -> None:
    result = run(str(session), "--speed", "1000", "--max-gap", "0.5s")
    assert result.exit_code == ExitCode.OK, result.output
    assert sum(line.startswith("22:13:") for line in result.stdout.splitlines()) == 4


def test_summary_only(session: Path) -> None:
    result = run(str(session), "--summary")
    assert result.exit_code == ExitCode.OK
    assert "22:13:20.000Z  scrape" not in result.stdout
    assert "sources  2" in result.stdout


def test_json_lines(session: Path) -> None:
    result = run(str(session), "--fast", "-o", "json")
    assert result.exit_code == ExitCode.OK, result.output
    summary, *rows = (json.loads(line) for line in result.stdout.splitlines())
    assert summary["schema"] == "promscope.replay.summary/v1"
    assert summary["file"] == "incident.psession"
    assert summary["format_version"] == FORMAT_VERSION
    assert summary["observations"] == 4 and summary["start"] == T0 and summary["end"] == T0 + 2
    assert summary["by_kind"] == {"pushgateway": 1, "scrape": 3}
    assert summary["dropped"] == {}
    assert [s["source"] for s in summary["sources"]] == ["http://app:8080/metrics", "job=batch"]
    assert [r["schema"] for r in rows] == ["promscope.replay.observation/v1"] * 4
    push = rows[1]
    assert push["kind"] == "pushgateway" and push["outcome"] == "rejected"
    assert push["errors"] == 1 and push["warnings"] == 1 and push["status"] == 400
    assert push["first_error"] == {"code": "PS-201", "line": 3, "message": "expected a value"}
    assert rows[0]["samples"] == 2 and rows[0]["duration"] == 0.012 and rows[0]["wire_bytes"] == 812


def test_filters(session: Path) -> None:
    result = run(str(session), "--fast", "-o", "json", "--kind", "pushgateway")
    rows = [json.loads(line) for line in result.stdout.splitlines()][1:]
    assert [r["source"] for r in rows] == ["job=batch"]
    result = run(str(session), "--fast", "-o", "json", "--source", "http://app:8080/metrics")
    rows = [json.loads(line) for line in result.stdout.splitlines()][1:]
    assert [r["outcome"] for r in rows] == ["accepted", "failed", "accepted"]


def test_drops_and_an_unfinished_recording_are_shown(session: Path) -> None:
    with sqlite3.connect(session) as conn:
        conn.execute("UPDATE meta SET value = '{\"queue_full\": 12}' WHERE key = 'dropped'")
        conn.execute("DELETE FROM meta WHERE key = 'closed_at'")
    result = run(str(session), "--summary")
    assert "dropped while recording: 12 (12 queue full)" in result.stdout
    assert "the recorder did not finish this file" in result.stdout


def test_a_corrupt_observation_is_skipped_with_exit_1(session: Path) -> None:
    with sqlite3.connect(session) as conn:
        conn.execute("UPDATE observations SET families = x'5a00' WHERE time = ?", (T0 + 2.0,))
    result = run(str(session), "--fast")
    assert result.exit_code == ExitCode.PROBLEMS
    assert "1 observation was undecodable and skipped" in result.stderr


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "not a promscope session file"),
        (b"hello, not sqlite at all" * 50, "not a promscope session file (not SQLite)"),
    ],
)
def test_not_a_session(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "x.psession"
    path.write_bytes(content)
    result = run(str(path))
    assert result.exit_code == ExitCode.UNREADABLE
    assert message in result.stderr
    assert "Traceback" not in result.output


def test_missing_file(tmp_path: Path) -> None:
    result = run(str(tmp_path / "nope.psession"))
    assert result.exit_code == ExitCode.UNREADABLE
    assert "nope.psession: no such file" in result.stderr


def test_newer_format(session: Path) -> None:
    with sqlite3.connect(session) as conn:
        conn.execute("UPDATE meta SET value = '99' WHERE key = 'format_version'")
    result = run(str(session))
    assert result.exit_code == ExitCode.UNREADABLE
    assert "session format 99 is newer" in result.stderr
    assert "hint: " in result.stderr


def test_truncated_file(session: Path, tmp_path: Path) -> None:
    big = tmp_path / "big.psession"
    with SessionRecorder(big) as recorder:
        for i in range(300):
            recorder(
                Observation(
                    ObservationKind.SCRAPE,
                    f"http://t{i % 7}/metrics",
                    T0 + i,
                    Outcome.ACCEPTED,
                    Transport("http"),
                    families=(_family(float(i)),),
                    message="x" * 200,
                )
            )
    data = big.read_bytes()
    big.write_bytes(data[: len(data) // 3])
    result = run(str(big), "--fast")
    assert result.exit_code == ExitCode.UNREADABLE, result.output
    assert "corrupt or truncated" in result.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["--fast", "--speed", "2"],
        ["--speed", "0"],
        ["--speed", "-1"],
        ["--kind", "carrier-pigeon"],
        ["--max-gap", "soon"],
    ],
)
def test_usage_errors(session: Path, args: list[str]) -> None:
    result = run(str(session), *args)
    assert result.exit_code == ExitCode.USAGE, result.output


# -- --record FILE for live verbs ---------------------------------------------------------------------------


def test_record_option_and_recording_write_a_session_that_replays(tmp_path: Path) -> None:
    @click.command()
    @record_option
    def live(record: str | None) -> None:
        async def run() -> None:
            async with recording(record, verb="live") as recorder:
                assert recorder is not None
                for observation in OBSERVATIONS:
                    recorder(observation)

        asyncio.run(run())

    path = tmp_path / "live.psession"
    result = CliRunner().invoke(live, ["--record", str(path)])
    assert result.exit_code == 0, result.output
    assert f"promscope: recorded 4 observations to {path}" in result.stderr
    replayed = run(str(path), "--fast", "-o", "json")
    summary = json.loads(replayed.stdout.splitlines()[0])
    assert summary["observations"] == 4


def test_recording_without_a_file_is_a_no_op() -> None:
    async def run_it() -> object:
        async with recording(None, verb="live") as recorder:
            return recorder

    assert asyncio.run(run_it()) is None
