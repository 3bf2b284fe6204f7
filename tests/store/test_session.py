"""Session files: every Observation field survives, drops are counted, bad files are reported, replay paces.

The recorder's writer thread is real; the disk is slowed or failed by patching the writer, and replay runs on
a fake clock whose time moves only when replay sleeps, so nothing here depends on wall-clock speed.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import os
import sqlite3
import struct
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from promscope.exposition import parse
from promscope.model import (
    BucketSpan,
    Diagnostic,
    Exemplar,
    MetricFamily,
    MetricType,
    NativeHistogram,
    Sample,
    Severity,
)
from promscope.observation import Changes, Observation, ObservationKind, Outcome, Transport
from promscope.store.session import (
    FORMAT_VERSION,
    REPLAY_MARKER,
    SessionFileError,
    SessionReader,
    SessionRecorder,
    open_recorder,
    replay,
    tee,
)

REPO = Path(__file__).resolve().parents[2]
NODE_EXPORTER = REPO / "fixtures" / "node_exporter" / "node_exporter.prom"

# -- strategies ---------------------------------------------------------------------------------------------

texts = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)
names = st.from_regex(r"[a-zA-Z_:][a-zA-Z0-9_:]{0,10}", fullmatch=True)
floats = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, -0.0, 1.0, 1e-300, math.inf, -math.inf, math.nan]),
    # Prometheus' stale marker: a NaN with a payload, which must keep its bits.
    st.just(struct.unpack("<d", struct.pack("<Q", 0x7FF0000000000002))[0]),
)
finite = st.floats(allow_nan=False, allow_infinity=False)
label_sets = st.lists(st.tuples(names, texts), max_size=3).map(tuple)
timestamps = st.one_of(st.none(), st.floats(min_value=0, max_value=4e9, allow_nan=False))


@st.composite
def natives(draw: st.DrawFn) -> NativeHistogram | None:
    if not draw(st.booleans()):
        return None
    spans = st.lists(st.builds(BucketSpan, st.integers(-5, 5), st.integers(0, 3)), max_size=2).map(tuple)
    counts = st.lists(st.floats(min_value=0, max_value=1e9), max_size=4).map(tuple)
    return NativeHistogram(
        schema=draw(st.integers(-4, 8)),
        zero_threshold=draw(finite),
        zero_count=draw(st.floats(min_value=0, max_value=1e6)),
        count=draw(st.floats(min_value=0, max_value=1e9)),
        sum=draw(floats),
        positive_spans=draw(spans),
        positive_counts=draw(counts),
        negative_spans=draw(spans),
        negative_counts=draw(counts),
    )


samples = st.builds(
    Sample,
    name=names,
    labels=label_sets,
    value=floats,
    timestamp=timestamps,
    exemplar=st.one_of(st.none(), st.builds(Exemplar, label_sets, floats, timestamps)),
    line=st.integers(0, 10_000),
    native_histogram=natives(),
)
families = st.builds(
    MetricFamily,
    name=names,
    type=st.sampled_from(list(MetricType)),
    help=st.one_of(st.none(), texts),
    unit=st.one_of(st.none(), texts),
    samples=st.lists(samples, max_size=5).map(tuple),
    line=st.integers(0, 10_000),
)
diagnostics = st.builds(
    Diagnostic,
    code=st.from_regex(r"[A-Z]{2,4}-[0-9]{3}", fullmatch=True),
    severity=st.sampled_from(list(Severity)),
    line=st.integers(0, 10_000),
    column=st.integers(0, 500),
    message=texts,
    metric=st.one_of(st.none(), names),
)
transports = st.builds(
    Transport,
    protocol=st.sampled_from(["http", "https", "udp", "tcp", "unixgram"]),
    sender=st.one_of(st.none(), texts),
    user_agent=st.one_of(st.none(), texts),
    method=st.one_of(st.none(), st.sampled_from(["GET", "PUT", "POST", "DELETE"])),
    path=st.one_of(st.none(), texts),
    status=st.one_of(st.none(), st.integers(100, 599)),
    content_type=st.one_of(st.none(), texts),
    content_encoding=st.one_of(st.none(), st.sampled_from(["gzip", "snappy"])),
    wire_bytes=st.integers(0, 2**40),
    body_bytes=st.integers(0, 2**40),
    duration=st.one_of(st.none(), st.floats(min_value=0, max_value=1e4)),
    grouping_key=label_sets,
    extra=st.dictionaries(names, texts, max_size=3).map(MappingProxyType),
)
changes = st.one_of(
    st.none(),
    st.builds(
        Changes,
        st.lists(names, max_size=2).map(tuple),
        st.lists(names, max_size=2).map(tuple),
        st.lists(names, max_size=2).map(tuple),
        st.integers(0, 10**6),
        st.integers(0, 10**6),
        st.integers(0, 10**6),
    ),
)
observations = st.builds(
    Observation,
    kind=st.sampled_from(list(ObservationKind)),
    source=texts.filter(bool),
    time=st.floats(min_value=0, max_value=4e9, allow_nan=False),
    outcome=st.sampled_from(list(Outcome)),
    transport=transports,
    families=st.lists(families, max_size=3).map(tuple),
    diagnostics=st.lists(diagnostics, max_size=3).map(tuple),
    message=texts,
    changes=changes,
    series=st.integers(0, 10**6),
)


# -- helpers ------------------------------------------------------------------------------------------------


def _bits(value: float | None) -> bytes | None:
    return None if value is None else struct.pack("<d", value)


def _sample_fields(sample: Sample) -> tuple[Any, ...]:
    exemplar = sample.exemplar
    native = sample.native_histogram
    return (
        sample.name,
        sample.labels,
        _bits(sample.value),
        _bits(sample.timestamp),
        None if exemplar is None else (exemplar.labels, _bits(exemplar.value), _bits(exemplar.timestamp)),
        sample.line,
        None
        if native is None
        else (
            native.schema,
            _bits(native.zero_threshold),
            native.zero_count,
            native.count,
            math.isnan(native.sum) or native.sum,
            native.positive_spans,
            native.positive_counts,
            native.negative_spans,
            native.negative_counts,
        ),
    )


def _exemplar_nan_safe(fields: tuple[Any, ...]) -> tuple[Any, ...]:
    """Exemplar values go through JSON: NaN keeps NaN-ness, not its payload bits."""
    exemplar = fields[4]
    if exemplar is None:
        return fields
    labels, value, ts = exemplar
    if math.isnan(struct.unpack("<d", value)[0]):
        value = b"nan"
    return (*fields[:4], (labels, value, ts), *fields[5:])


def assert_same_observation(got: Observation, want: Observation) -> None:
    for name in ("kind", "source", "time", "outcome", "diagnostics", "message", "changes", "series"):
        assert getattr(got, name) == getattr(want, name), name
    assert dataclasses.replace(got.transport, extra=MappingProxyType({})) == dataclasses.replace(
        want.transport, extra=MappingProxyType({})
    )
    assert dict(got.transport.extra) == dict(want.transport.extra)
    assert len(got.families) == len(want.families)
    for a, b in zip(got.families, want.families, strict=True):
        assert (a.name, a.type, a.help, a.unit, a.line) == (b.name, b.type, b.help, b.unit, b.line)
        assert [_exemplar_nan_safe(_sample_fields(s)) for s in a.samples] == [
            _exemplar_nan_safe(_sample_fields(s)) for s in b.samples
        ]


def _obs(
    time: float, source: str = "http://a/metrics", kind: ObservationKind = ObservationKind.SCRAPE
) -> Observation:
    family = MetricFamily(
        "up_gauge", MetricType.GAUGE, "Up.", None, (Sample("up_gauge", (("job", "a"),), 1.0, line=3),), line=1
    )
    return Observation(
        kind=kind,
        source=source,
        time=time,
        outcome=Outcome.ACCEPTED,
        transport=Transport("http", sender=source, status=200, duration=0.01),
        families=(family,),
        series=1,
    )


def _record(path: Path, items: list[Observation], **options: Any) -> SessionRecorder:
    with SessionRecorder(path, clock=lambda: 1_700_000_000.0, **options) as recorder:
        for item in items:
            recorder(item)
    return recorder


# -- round trips --------------------------------------------------------------------------------------------


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(observations, min_size=1, max_size=4))
def test_every_observation_field_survives_the_file(items: list[Observation]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "s.psession"
        recorder = _record(path, items)
        assert recorder.stats.recorded == len(items)
        with SessionReader(path) as reader:
            got = list(reader)
            assert reader.skipped == 0
    want = sorted(enumerate(items), key=lambda pair: (pair[1].time, pair[0]))
    assert len(got) == len(want)
    for read, (_, written) in zip(got, want, strict=True):
        assert_same_observation(read, written)


def test_a_real_exposition_round_trips_with_lines_and_diagnostics(tmp_path: Path) -> None:
    parsed = parse(NODE_EXPORTER.read_bytes(), format="text")
    observation = dataclasses.replace(_obs(10.0), families=parsed.families, diagnostics=parsed.diagnostics)
    _record(tmp_path / "s", [observation])
    with SessionReader(tmp_path / "s") as reader:
        (got,) = list(reader)
    assert_same_observation(got, observation)


def test_the_file_is_compact(tmp_path: Path) -> None:
    body = NODE_EXPORTER.read_bytes()
    parsed = parse(body, format="text")

    def size(rounds: int) -> int:
        path = tmp_path / f"s{rounds}"
        _record(path, [dataclasses.replace(_obs(float(i)), families=parsed.families) for i in range(rounds)])
        return path.stat().st_size

    first = size(1)
    per_scrape = (size(81) - first) / 80
    # The label sets and help texts are written once; each further scrape of a ~57 KB body costs a few KB.
    assert first < len(body) * 4
    assert per_scrape < len(body) / 10, per_scrape


def test_observations_come_back_in_time_order_and_filtered(tmp_path: Path) -> None:
    items = [
        _obs(30.0, "b"),
        _obs(10.0, "a"),
        _obs(20.0, "b", ObservationKind.PUSHGATEWAY),
        _obs(10.0, "c", ObservationKind.STATSD),
    ]
    _record(tmp_path / "s", items)
    with SessionReader(tmp_path / "s") as reader:
        assert [(o.time, o.source) for o in reader] == [(10.0, "a"), (10.0, "c"), (20.0, "b"), (30.0, "b")]
        assert [o.time for o in reader.observations(start=15, end=30)] == [20.0, 30.0]
        assert [o.time for o in reader.observations(sources=["b"])] == [20.0, 30.0]
        assert [o.source for o in reader.observations(kinds=["statsd", ObservationKind.PUSHGATEWAY])] == [
            "c",
            "b",
        ]
        assert reader.count() == 4
        assert reader.count(sources=["b"], start=25) == 1
        assert reader.time_range() == (10.0, 30.0)
        assert [o.time for o in reader.observations(batch=1)] == [10.0, 10.0, 20.0, 30.0]
        summary = reader.summary()
    assert summary.observations == 4
    assert dict(summary.by_kind) == {"pushgateway": 1, "scrape": 2, "statsd": 1}
    assert dict(summary.by_outcome) == {"accepted": 4}
    assert [(s.source, s.observations, s.kinds) for s in summary.sources] == [
        ("a", 1, ("scrape",)),
        ("b", 2, ("pushgateway", "scrape")),
        ("c", 1, ("statsd",)),
    ]
    assert summary.samples == 4
    assert summary.duration == 20.0


def test_meta_is_portable(tmp_path: Path) -> None:
    _record(
        tmp_path / "s",
        [_obs(1.0)],
        meta={"verb": "tail"},
        command_line=["promscope", "tail", "--record", "s"],
    )
    assert not (tmp_path / "s-wal").exists()  # one self-contained file after close
    with SessionReader(tmp_path / "s") as reader:
        meta = reader.meta
    assert meta.format_version == FORMAT_VERSION
    assert meta.created_at == "2023-11-14T22:13:20.000+00:00"
    assert meta.closed_at is not None and meta.closed_at.endswith("+00:00")
    assert meta.command_line == ("promscope", "tail", "--record", "s")
    assert dict(meta.extra) == {"verb": "tail"}
    assert dict(meta.dropped) == {}
    with sqlite3.connect(tmp_path / "s") as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"


def test_the_default_command_line_names_the_program_without_its_path(tmp_path: Path) -> None:
    recorder = _record(tmp_path / "s", [])
    with SessionReader(tmp_path / "s") as reader:
        program = reader.meta.command_line[0]
    assert os.sep not in program
    assert recorder.stats.recorded == 0


def test_append_and_fail_and_replace(tmp_path: Path) -> None:
    path = tmp_path / "s"
    _record(path, [_obs(1.0)])
    _record(path, [_obs(2.0, "b")], if_exists="append")
    with SessionReader(path) as reader:
        assert [o.source for o in reader] == ["http://a/metrics", "b"]
    with pytest.raises(SessionFileError, match="already exists"):
        SessionRecorder(path, if_exists="fail").start()
    _record(path, [_obs(3.0)])
    with SessionReader(path) as reader:
        assert [o.time for o in reader] == [3.0]


# -- drops and errors while recording -----------------------------------------------------------------------


def test_a_full_queue_drops_and_counts_instead_of_blocking(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    entered = threading.Event()
    release = threading.Event()
    original = SessionRecorder._write_batch

    def slow_disk(self: SessionRecorder, conn: sqlite3.Connection, batch: Any) -> None:
        entered.set()
        assert release.wait(10)
        original(self, conn, batch)

    monkeypatch.setattr(SessionRecorder, "_write_batch", slow_disk)
    recorder = SessionRecorder(tmp_path / "s", max_queue=2, batch_size=1)
    recorder.start()
    recorder(_obs(0.0))
    assert entered.wait(10)  # the writer holds observation 0 and the "disk" is stuck
    for i in range(1, 11):
        recorder(_obs(float(i)))  # returns at once: 2 wait in the queue, 8 are dropped
    assert recorder.stats.dropped == {"queue_full": 8}
    assert recorder.stats.queued == 3  # two waiting, one being written
    release.set()
    stats = recorder.close()
    assert stats.recorded == 3
    assert "8 dropped: 8 queue full" in stats.describe()
    recorder(_obs(99.0))
    assert recorder.stats.dropped == {"queue_full": 8, "closed": 1}
    with SessionReader(tmp_path / "s") as reader:
        assert [o.time for o in reader] == [0.0, 1.0, 2.0]
        assert dict(reader.meta.dropped) == {"queue_full": 8}


def test_a_failed_write_is_counted_and_recording_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = SessionRecorder._encode
    calls = {"n": 0}

    def flaky(self: SessionRecorder, conn: sqlite3.Connection, observation: Observation) -> Any:
        calls["n"] += 1
        if calls["n"] == 1:
            raise sqlite3.OperationalError("disk I/O error")
        return original(self, conn, observation)

    monkeypatch.setattr(SessionRecorder, "_encode", flaky)
    recorder = SessionRecorder(tmp_path / "s", batch_size=1)
    recorder.start()
    recorder(_obs(1.0))
    assert recorder.flush(10)
    recorder(_obs(2.0))
    stats = recorder.close()
    assert stats.recorded == 1
    assert stats.dropped == {"write_error": 1}
    assert stats.last_error is not None and "disk I/O error" in stats.last_error
    with SessionReader(tmp_path / "s") as reader:
        assert [o.time for o in reader] == [2.0]


def test_an_observation_that_cannot_be_encoded_is_skipped_alone(tmp_path: Path) -> None:
    new_source = dataclasses.replace(_obs(2.0, "only-in-the-bad-one"), series=2**70)  # too big for SQLite
    recorder = _record(tmp_path / "s", [_obs(1.0), new_source, _obs(3.0, "only-in-the-bad-one")])
    assert recorder.stats.recorded == 2
    assert recorder.stats.dropped == {"encode_error": 1}
    with SessionReader(tmp_path / "s") as reader:
        assert [(o.time, o.source) for o in reader] == [
            (1.0, "http://a/metrics"),
            (3.0, "only-in-the-bad-one"),
        ]


def test_an_unwritable_path_fails_at_start(tmp_path: Path) -> None:
    with pytest.raises(SessionFileError):
        SessionRecorder(tmp_path / "missing-dir" / "s").start()


def test_open_recorder_and_tee(tmp_path: Path) -> None:
    seen: list[Observation] = []
    errors: list[BaseException] = []

    def broken(observation: Observation) -> None:
        raise RuntimeError("sink bug")

    async def live() -> SessionRecorder:
        async with open_recorder(tmp_path / "s", meta={"verb": "test"}) as recorder:
            sink = tee(seen.append, broken, recorder, on_error=errors.append)
            for i in range(5):
                sink(_obs(float(i)))
        return recorder

    recorder = asyncio.run(live())
    assert len(seen) == 5 and len(errors) == 5
    assert recorder.stats.recorded == 5
    with SessionReader(tmp_path / "s") as reader:
        assert reader.count() == 5


# -- unreadable files ---------------------------------------------------------------------------------------


def test_not_a_sqlite_file(tmp_path: Path) -> None:
    path = tmp_path / "junk"
    path.write_bytes(b"this is not a database, " * 100)
    with pytest.raises(SessionFileError, match="not a promscope session file"):
        SessionReader(path)


def test_another_sqlite_database(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE t (x)")
    with pytest.raises(SessionFileError, match="not a promscope session file"):
        SessionReader(path)


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(SessionFileError, match="no such file"):
        SessionReader(tmp_path / "nope")
    with pytest.raises(SessionFileError, match="directory"):
        SessionReader(tmp_path)


def test_a_newer_format_is_refused_with_a_clear_message(tmp_path: Path) -> None:
    path = tmp_path / "s"
    _record(path, [_obs(1.0)])
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE meta SET value = ? WHERE key = 'format_version'", (str(FORMAT_VERSION + 1),))
    with pytest.raises(SessionFileError, match=f"session format {FORMAT_VERSION + 1} is newer") as info:
        SessionReader(path)
    assert "upgrade promscope" in info.value.hint
    with pytest.raises(SessionFileError):
        SessionRecorder(path, if_exists="append").start()


def test_a_truncated_file_is_reported_not_a_traceback(tmp_path: Path) -> None:
    path = tmp_path / "s"
    parsed = parse(NODE_EXPORTER.read_bytes(), format="text")
    _record(path, [dataclasses.replace(_obs(float(i)), families=parsed.families) for i in range(20)])
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(SessionFileError, match="corrupt or truncated"), SessionReader(path) as reader:
        reader.summary()
        list(reader)


def test_a_corrupt_observation_is_skipped_and_counted(tmp_path: Path) -> None:
    path = tmp_path / "s"
    _record(path, [_obs(1.0), _obs(2.0), _obs(3.0)])
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE observations SET families = ? WHERE time = 2.0", (b"Zgarbage",))
    with SessionReader(path) as reader:
        assert [o.time for o in reader] == [1.0, 3.0]
        assert reader.skipped == 1


# -- replay -------------------------------------------------------------------------------------------------


class FakeTime:
    """A clock that only moves when replay sleeps."""

    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def session(tmp_path: Path) -> Iterator[SessionReader]:
    items = [_obs(1000.0), _obs(1001.0, "b", ObservationKind.PUSHGATEWAY), _obs(1003.0), _obs(1063.0)]
    _record(tmp_path / "incident.psession", items)
    with SessionReader(tmp_path / "incident.psession") as reader:
        yield reader


@pytest.mark.parametrize(
    ("speed", "max_gap", "sleeps"),
    [
        (1.0, None, [1.0, 2.0, 60.0]),
        (2.0, None, [0.5, 1.0, 30.0]),
        (1.0, 5.0, [1.0, 2.0, 5.0]),
        (10.0, 5.0, [0.1, 0.2, 0.5]),
    ],
)
def test_replay_keeps_the_recorded_pace(
    session: SessionReader, speed: float, max_gap: float | None, sleeps: list[float]
) -> None:
    fake = FakeTime()
    got: list[Observation] = []
    stats = asyncio.run(
        replay(session, got.append, speed=speed, max_gap=max_gap, clock=fake.clock, sleep=fake.sleep)
    )
    assert fake.sleeps == pytest.approx(sleeps)
    assert stats.emitted == 4 and stats.first == 1000.0 and stats.last == 1063.0
    assert stats.slept == pytest.approx(sum(sleeps))


def test_replay_catches_up_when_the_sink_is_slow(session: SessionReader) -> None:
    fake = FakeTime()

    def slow_sink(observation: Observation) -> None:
        fake.now += 1.5  # each observation takes 1.5 s to take in

    asyncio.run(replay(session, slow_sink, clock=fake.clock, sleep=fake.sleep))
    # Due at +0, +1, +3 and +63: the sink's 1.5 s each eat the short waits, and the long one shrinks.
    assert fake.sleeps == pytest.approx([63.0 - 4.5])


def test_fast_replay_never_waits_and_marks_observations(session: SessionReader) -> None:
    fake = FakeTime()
    got: list[Observation] = []
    asyncio.run(replay(session, got.append, speed=None, clock=fake.clock, sleep=fake.sleep))
    assert all(s == 0 for s in fake.sleeps)
    assert [o.kind for o in got] == [
        ObservationKind.SCRAPE,
        ObservationKind.PUSHGATEWAY,
        ObservationKind.SCRAPE,
        ObservationKind.SCRAPE,
    ]
    assert all(o.transport.extra[REPLAY_MARKER] == "incident.psession" for o in got)
    assert [o.time for o in got] == [1000.0, 1001.0, 1003.0, 1063.0]
    assert got[0].families[0].samples[0].value == 1.0


def test_replay_retimes_filters_and_survives_a_failing_sink(session: SessionReader) -> None:
    fake = FakeTime()
    got: list[Observation] = []

    def sink(observation: Observation) -> None:
        got.append(observation)
        raise ValueError("sink bug")

    stats = asyncio.run(
        replay(
            session,
            sink,
            speed=None,
            sources=["http://a/metrics"],
            start=1001.0,
            retime=lambda: 5000.0,
            clock=fake.clock,
            sleep=fake.sleep,
        )
    )
    assert [o.time for o in got] == [5000.0, 5060.0]
    assert stats.sink_errors == 2 and stats.last_sink_error == "ValueError: sink bug"


def test_replay_rejects_a_bad_speed(session: SessionReader) -> None:
    with pytest.raises(ValueError, match="speed"):
        asyncio.run(replay(session, lambda o: None, speed=0))
