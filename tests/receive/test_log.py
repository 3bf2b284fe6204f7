"""PushLog: the bounded ring, per-sender and per-source statistics, silence, drops."""

from __future__ import annotations

import pytest

from promscope.model import Diagnostic, Severity
from promscope.observation import Observation, ObservationKind, Outcome, Transport
from promscope.receive.log import PushLog, describe_error, sender_host


def obs(
    time: float,
    sender: str = "10.0.0.1:5000",
    source: str = "job=batch",
    outcome: Outcome = Outcome.ACCEPTED,
    kind: ObservationKind = ObservationKind.PUSHGATEWAY,
    *,
    message: str = "",
    diagnostics: tuple[Diagnostic, ...] = (),
    series: int = 3,
    user_agent: str | None = None,
) -> Observation:
    return Observation(
        kind=kind,
        source=source,
        time=time,
        outcome=outcome,
        transport=Transport(
            protocol="http", sender=sender, user_agent=user_agent, wire_bytes=10, body_bytes=40
        ),
        message=message,
        diagnostics=diagnostics,
        series=series,
    )


def error(line: int, message: str, code: str = "PS-201") -> Diagnostic:
    return Diagnostic(code, Severity.ERROR, line, 5, message)


@pytest.mark.parametrize(
    ("sender", "host"),
    [
        ("10.0.0.7:53124", "10.0.0.7"),
        ("[::1]:9091", "::1"),
        ("::1", "::1"),
        ("/run/statsd.sock", "/run/statsd.sock"),
        ("http://host:9100/metrics", "http://host:9100/metrics"),
        ("myhost", "myhost"),
        (None, "unknown"),
    ],
)
def test_sender_host(sender: str | None, host: str) -> None:
    assert sender_host(sender) == host


def test_ring_is_bounded_and_counts_what_it_drops() -> None:
    log = PushLog(max_events=3)
    for t in range(5):
        log(obs(float(t)))
    assert len(log) == 3
    assert [o.time for o in log] == [2.0, 3.0, 4.0]
    assert log.dropped.events == 2
    assert log.total == 5
    assert [o.time for o in log.last(2)] == [3.0, 4.0]
    assert [o.time for o in log.last(10)] == [2.0, 3.0, 4.0]
    assert log.last(0) == []


def test_sender_and_source_statistics() -> None:
    log = PushLog()
    log(obs(10.0, sender="10.0.0.1:5000", source="job=a", user_agent="client/1"))
    log(obs(20.0, sender="10.0.0.1:5001", source="job=b", series=7))
    log(
        obs(
            30.0,
            sender="10.0.0.1:5002",
            source="job=a",
            outcome=Outcome.REJECTED,
            diagnostics=(error(2, "bad value"), error(4, "bad name")),
            message="400 bad push",
        )
    )
    (sender,) = log.senders()
    assert sender.key == "10.0.0.1"
    assert (sender.first_seen, sender.last_seen, sender.count) == (10.0, 30.0, 3)
    assert sender.outcomes == {Outcome.ACCEPTED: 2, Outcome.REJECTED: 1}
    assert sender.accepted == 2 and sender.rejected == 1
    assert sender.last_outcome is Outcome.REJECTED
    assert sender.last_error == "PS-201 line 2:5: bad value (+1 more)"
    assert sender.last_error_at == 30.0
    assert sender.wire_bytes == 30 and sender.body_bytes == 120
    assert sender.series == 3 and sender.series_total == 13
    assert sender.address == "10.0.0.1:5002"
    assert sender.user_agent == "client/1"
    assert sender.last_source == "job=a"
    assert sender.kinds == {ObservationKind.PUSHGATEWAY: 3}
    sources = {s.key: s for s in log.sources()}
    assert sources["job=a"].count == 2 and sources["job=a"].last_source == "10.0.0.1"
    assert sources["job=b"].series == 7
    assert log.sender("10.0.0.1:9999") is not None  # looked up by host
    assert log.source("job=b") is not None and log.source("job=zzz") is None
    assert log.outcomes == {Outcome.ACCEPTED: 2, Outcome.REJECTED: 1}
    as_dict = sender.as_dict()
    assert as_dict["outcomes"] == {"accepted": 2, "rejected": 1}
    assert as_dict["last_outcome"] == "rejected"


def test_stats_are_copies() -> None:
    log = PushLog()
    log(obs(1.0))
    copy = log.senders()[0]
    copy.count = 99
    copy.outcomes[Outcome.FAILED] = 5
    assert log.senders()[0].count == 1
    assert Outcome.FAILED not in log.senders()[0].outcomes


def test_silent_senders_and_sources() -> None:
    now = [100.0]
    log = PushLog(clock=lambda: now[0])
    log(obs(10.0, sender="a:1", source="job=a"))
    log(obs(50.0, sender="b:1", source="job=b"))
    log(obs(95.0, sender="c:1", source="job=c"))
    assert [s.key for s in log.silent(30)] == ["a", "b"]
    assert [s.key for s in log.silent(60)] == ["a"]
    assert [s.key for s in log.silent_sources(10)] == ["job=a", "job=b"]
    assert log.silent(1, now=200.0)[0].silent_for(200.0) == 190.0
    assert log.silent(1000) == []


def test_sender_table_is_bounded_lru() -> None:
    log = PushLog(max_senders=2, max_sources=2)
    log(obs(1.0, sender="a:1", source="s1"))
    log(obs(2.0, sender="b:1", source="s2"))
    log(obs(3.0, sender="a:1", source="s1"))  # a is fresh again
    log(obs(4.0, sender="c:1", source="s3"))  # b is the stalest: forgotten
    assert [s.key for s in log.senders()] == ["a", "c"]
    assert [s.key for s in log.sources()] == ["s1", "s3"]
    assert log.dropped.senders == 1 and log.dropped.sources == 1
    assert log.dropped.total == 2


def test_events_filters() -> None:
    log = PushLog()
    log(obs(1.0, sender="a:1", source="job=a"))
    log(obs(2.0, sender="b:1", source="job=b", outcome=Outcome.REJECTED, message="nope"))
    log(obs(3.0, sender="a:2", source="job=c", kind=ObservationKind.STATSD))
    assert [o.time for o in log.events(sender="a")] == [1.0, 3.0]
    assert [o.time for o in log.events(sender="a:2")] == [3.0]
    assert [o.time for o in log.events(kind="statsd")] == [3.0]
    assert [o.time for o in log.events(outcome=Outcome.REJECTED)] == [2.0]
    assert [o.time for o in log.events(source="job=b")] == [2.0]
    assert [o.time for o in log.events(since=2.0)] == [2.0, 3.0]
    assert [o.time for o in log.events(limit=1)] == [3.0]
    assert log.events(limit=0) == []


def test_describe_error() -> None:
    assert describe_error(obs(1.0)) is None
    assert (
        describe_error(obs(1.0, outcome=Outcome.FAILED, message="connection refused")) == "connection refused"
    )
    assert describe_error(obs(1.0, outcome=Outcome.REJECTED)) == "rejected"
    partial = obs(
        1.0, outcome=Outcome.PARTIAL, diagnostics=(Diagnostic("SD-1", Severity.ERROR, 0, 0, "bad"),)
    )
    assert describe_error(partial) == "SD-1 bad"


def test_clear_and_sink_use() -> None:
    log = PushLog(max_events=1)
    sink = log  # an ObservationSink is a plain callable
    sink(obs(1.0))
    sink(obs(2.0))
    log.clear()
    assert len(log) == 0 and log.total == 0 and log.senders() == [] and log.dropped.total == 0


def test_limits_must_be_positive() -> None:
    with pytest.raises(ValueError):
        PushLog(max_events=0)
