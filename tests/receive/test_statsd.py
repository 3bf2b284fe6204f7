"""StatsD/DogStatsD parsing, storing, conflicts, observations and exposition (no sockets)."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest

from promscope.codes import Code
from promscope.exposition import parse
from promscope.exposition.render import render_openmetrics, render_text
from promscope.model import MetricFamily, MetricType, Severity
from promscope.observation import Observation, ObservationKind, Outcome
from promscope.receive.statsd import CODES, REASONS, StatsdLimits, StatsdReceiver, parse_line
from promscope.receive.statsd_mapping import MappingConfig

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "statsd"


def _rows() -> list[tuple[str, bytes, str]]:
    rows = []
    for row in (FIXTURES / "lines.tsv").read_text(encoding="utf-8").splitlines():
        if not row or row.startswith("#"):
            continue
        name, line, expected = row.split("\t")
        raw = re.sub(rb"\\x([0-9a-f]{2})", lambda m: bytes([int(m.group(1), 16)]), line.encode("utf-8"))
        rows.append((name, raw, expected))
    return rows


ROWS = _rows()


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def receiver(**kwargs: object) -> tuple[StatsdReceiver, list[Observation]]:
    seen: list[Observation] = []
    kwargs.setdefault("monotonic", Clock())
    r = StatsdReceiver(udp=None, tcp=None, sink=seen.append, clock=lambda: 1_700_000_000.0, **kwargs)  # type: ignore[arg-type]
    return r, seen


def family(r: StatsdReceiver, name: str) -> MetricFamily:
    for fam in r.series_families():
        if fam.name == name:
            return fam
    raise AssertionError(f"no family {name}: {[f.name for f in r.series_families()]}")


def value(r: StatsdReceiver, sample_name: str, **labels: str) -> float:
    for fam in r.series_families():
        for sample in fam.samples:
            if sample.name == sample_name and dict(sample.labels) == labels:
                return sample.value
    raise AssertionError(f"no sample {sample_name}{labels}")


# --- the parser against the fixture ----------------------------------------------------------------


@pytest.mark.parametrize(("line", "expected"), [(r[1], r[2]) for r in ROWS], ids=[r[0] for r in ROWS])
def test_fixture_line(line: bytes, expected: str) -> None:
    parsed = parse_line(line)
    got = " ".join(f"{p.code}:{p.reason}" for p in parsed.problems) or "ok"
    assert got == expected
    for problem in parsed.problems:
        assert problem.code in CODES
        assert problem.severity is CODES[problem.code].severity


def test_every_statsd_exporter_reason_has_a_fixture_and_a_code() -> None:
    reasons = {p.split(":")[1] for _, _, e in ROWS if e != "ok" for p in e.split()}
    assert set(REASONS) <= reasons
    assert all(isinstance(code, Code) and re.fullmatch(r"SD-\d{3}", name) for name, code in CODES.items())


def test_every_fixture_line_is_counted_by_the_receiver_with_its_reason() -> None:
    r, seen = receiver(limits=StatsdLimits(observations_per_sender=1000))
    for _, line, _expected in ROWS:
        r.feed(line)
    stats = r.stats()
    want: dict[str, int] = {}
    for _, _, expected in ROWS:
        for pair in expected.split() if expected != "ok" else []:
            reason = pair.split(":")[1]
            if reason not in ("tag_error", "dogstatsd"):
                want[reason] = want.get(reason, 0) + 1
    assert stats.sample_errors == want
    assert stats.lines == len(ROWS)
    assert len(seen) == len(ROWS)  # low rate: one Observation per datagram
    codes = {d.code for o in seen for d in o.diagnostics}
    assert {"SD-101", "SD-106", "SD-150", "SD-151", "SD-152"} <= codes


def test_parse_values_and_tags() -> None:
    (sample,) = parse_line("a.b:2|c|@0.5|#env:prod,host:web-1|#x:y").samples
    assert (sample.name, sample.type, sample.value, sample.sample_rate) == ("a.b", "c", 2.0, 0.5)
    assert dict(sample.labels) == {"env": "prod", "host": "web-1", "x": "y"}
    (timer,) = parse_line("t:1|ms|T1656581400|#a:b|c:cid").samples
    assert timer.timestamp == 1656581400 and dict(timer.labels) == {"a": "b", "container_id": "cid"}
    influx = parse_line("a,k=v,z=1:1|c").samples[0]
    assert influx.name == "a" and dict(influx.labels) == {"k": "v", "z": "1"}
    fx = parse_line("a[k=v].b:1|c").samples[0]
    assert fx.name == "a.b" and dict(fx.labels) == {"k": "v"}
    assert parse_line("a-b.c:1|c|#my-key:v").samples[0].labels == (("my_key", "v"),)
    gauge = parse_line("g:-3|g|@0.1").samples[0]
    assert gauge.relative and gauge.value == -3.0 and gauge.sample_rate == 1.0  # gauges ignore the rate
    assert [s.value for s in parse_line("t:1:2:3|ms").samples] == [1.0, 2.0, 3.0]
    assert parse_line("").samples == () and parse_line("").problems == ()


def test_dogstatsd_event_and_service_check_are_recognised() -> None:
    event = parse_line("_e{5,11}:Alert|disk\\nfull!|d:1656581400|h:web1|p:low|t:error|#env:prod").dogstatsd
    assert event is not None and event.kind == "event"
    assert (event.title, event.text) == ("Alert", "disk\nfull!")
    assert dict(event.fields) == {
        "timestamp": "1656581400",
        "hostname": "web1",
        "priority": "low",
        "alert_type": "error",
    }
    assert event.tags == (("env", "prod"),)
    check = parse_line("_sc|db.up|1|d:1656581400|h:db1|#env:prod|m:replica lag: 5s").dogstatsd
    assert check is not None and check.kind == "service_check"
    assert (check.title, check.status, check.text) == ("db.up", "warning", "replica lag: 5s")
    assert parse_line("_sc|db.up|7").problems[0].code == "SD-152"


# --- storing ---------------------------------------------------------------------------------------


def test_counters_gauges_timers_histograms_distributions() -> None:
    r, _ = receiver()
    r.feed(b"req.count:1|c\nreq.count:3|c|@0.5\nreq.count:2|c")
    assert value(r, "req_count") == 9.0
    r.feed(b"temp:20|g\ntemp:+5|g\ntemp:-10|g")
    assert value(r, "temp") == 15.0
    r.feed(b"temp:7|g")
    assert value(r, "temp") == 7.0
    r.feed(b"lat:250|ms|#route:a")
    r.feed(b"lat:750|ms|@0.5|#route:a")  # counted int(1/0.5) = 2 times
    assert value(r, "lat_count", route="a") == 3.0
    assert value(r, "lat_sum", route="a") == pytest.approx(1.75)
    assert value(r, "lat", route="a", quantile="0.5") == 0.75
    r.feed(b"size:3|h\nsize:5|d")
    assert value(r, "size_count") == 2.0 and value(r, "size_sum") == 8.0
    assert family(r, "lat").type is MetricType.SUMMARY
    assert family(r, "req_count").type is MetricType.COUNTER
    assert family(r, "req_count").help == "Metric autogenerated by statsd_exporter."


def test_fast_path_matches_the_full_parser() -> None:
    """Lines whose shape was seen take the cached path; the result must be what the parser gives."""
    lines = [
        b"c:1|c|#a:b",
        b"c:2.5|c|#a:b",
        b"g:4|g",
        b"g:-1|g",
        b"g:+2.5|g",
        b"t:10|ms",
        b"t:30|ms",
        b"c:1e2|c|#a:b",
    ]
    fast, _ = receiver()
    for _ in range(3):
        for line in lines:
            fast.feed(line)
    slow, _ = receiver()
    for _ in range(3):
        for line in lines:
            slow._cache.clear()
            slow.feed(line)
    assert render_text(fast.series_families()) == render_text(slow.series_families())
    assert fast.stats().stored == slow.stats().stored == 24
    assert fast.stats().events == slow.stats().events


def test_sets_refused_by_default_and_counted_as_gauge_when_asked() -> None:
    r, seen = receiver()
    r.feed(b"users:1|s")
    assert r.series_families() == []
    assert seen[-1].outcome is Outcome.REJECTED and seen[-1].diagnostics[0].code == "SD-111"
    g, _ = receiver(sets="gauge")
    for member in (b"alice", b"bob", b"alice", b"carol"):
        g.feed(b"users:" + member + b"|s")
    assert value(g, "users") == 3.0
    assert family(g, "users").type is MetricType.GAUGE


def test_negative_counter_is_refused_and_nothing_changes() -> None:
    r, seen = receiver()
    r.feed(b"c:5|c")
    r.feed(b"c:-2|c")
    r.feed(b"c:-2|c")  # the cached shape must still refuse it
    assert value(r, "c") == 5.0
    assert r.stats().events_errors == {"illegal_negative_counter": 2}
    assert seen[-1].diagnostics[0].code == "SD-130"


def test_name_escaping_like_statsd_exporter() -> None:
    r, _ = receiver()
    r.feed(b"test.web-server.foo.bar:1|c\n0starts:1|c\nwith--double:1|c\nemoji\xf0\x9f\x98\xb1x:1|c")
    names = {f.name for f in r.series_families()}
    assert names == {"test_web_server_foo_bar", "_0starts", "with_double", "emoji_x"}


# --- conflicts -------------------------------------------------------------------------------------


def test_type_conflict_refused_before_it_bites() -> None:
    r, seen = receiver()
    r.feed(b"thing:1|c")
    before = render_text(r.series_families())
    r.feed(b"thing:5|g")
    assert render_text(r.series_families()) == before
    (diagnostic,) = seen[-1].diagnostics
    assert diagnostic.code == "SD-140" and diagnostic.severity is Severity.ERROR
    assert "already a counter" in diagnostic.message
    assert r.stats().conflicts == {"type": 1}
    assert seen[-1].outcome is Outcome.REJECTED


def test_summary_suffix_conflicts() -> None:
    r, seen = receiver()
    r.feed(b"rt:1|ms")
    r.feed(b"rt.count:1|c")  # escapes to rt_count: would break client_golang's Gather
    assert seen[-1].diagnostics[0].code == "SD-141"
    r.feed(b"other.sum:1|g")
    r.feed(b"other:1|ms")  # statsd_exporter's own check: other_sum is a gauge
    assert seen[-1].diagnostics[0].code == "SD-140"
    assert {f.name for f in r.series_families()} == {"rt", "other_sum"}
    assert r.stats().conflicts == {"collision": 1, "type": 1}


def test_reserved_labels_refused() -> None:
    r, seen = receiver()
    r.feed(b"t:1|ms|#quantile:x")
    assert seen[-1].diagnostics[0].code == "SD-143"
    r.feed(b"c:1|c|#__meta:x")
    assert seen[-1].diagnostics[0].code == "SD-143"
    assert r.series_families() == []


def test_second_label_set_is_accepted_with_a_warning() -> None:
    r, seen = receiver()
    r.feed(b"req:1|c|#code:200")
    r.feed(b"req:1|c|#code:200,method:get")
    (warning,) = seen[-1].diagnostics
    assert warning.code == "SD-142" and warning.severity is Severity.WARNING
    assert seen[-1].outcome is Outcome.ACCEPTED
    assert len(family(r, "req").samples) == 2
    assert r.stats().label_set_variants == 1


def test_series_limit() -> None:
    r, seen = receiver(limits=StatsdLimits(max_series=2))
    r.feed(b"a:1|c\nb:1|c\nc:1|c\na:1|c")
    assert {f.name for f in r.series_families()} == {"a", "b"}
    assert value(r, "a") == 2.0
    assert r.stats().series_refused == 1
    assert any(d.code == "SD-160" for d in seen[-1].diagnostics)


# --- observations ----------------------------------------------------------------------------------


def test_one_observation_per_datagram_at_low_rate() -> None:
    r, seen = receiver()
    r.feed(b"a.b:1|c", sender="10.0.0.1:5000")
    (obs,) = seen
    assert obs.kind is ObservationKind.STATSD and obs.source == "10.0.0.1:5000"
    assert obs.outcome is Outcome.ACCEPTED and obs.transport.protocol == "udp"
    assert obs.message == "a.b:1|c -> a_b (counter, unmapped)"
    assert obs.families[0].samples[0].value == 1.0  # state, not increment
    r.feed(b"a.b:1|c", sender="10.0.0.1:5000")
    assert seen[-1].families[0].samples[0].value == 2.0


def test_coalescing_above_the_per_sender_rate() -> None:
    clock = Clock()
    r, seen = receiver(monotonic=clock, limits=StatsdLimits(observations_per_sender=5))
    for i in range(50):
        r.feed(b"x:1|c" if i % 10 else b"bad", sender="s:1")
    assert len(seen) == 5  # the first five datagrams of this second, then coalesced
    r.flush()
    assert len(seen) == 6
    coalesced = seen[-1]
    assert coalesced.transport.extra["coalesced"] == "true"
    assert coalesced.transport.extra["datagrams"] == "45"
    assert coalesced.outcome is Outcome.PARTIAL
    assert "malformed_line x4" in coalesced.message
    assert coalesced.families[0].samples[0].value == 45.0
    clock.now += 1.5  # a new second: per-datagram observations again
    r.feed(b"x:1|c", sender="s:1")
    assert len(seen) == 7 and "coalesced" not in seen[-1].transport.extra


def test_global_observation_budget() -> None:
    r, seen = receiver(limits=StatsdLimits(observations_per_second=3))
    for i in range(10):
        r.feed(b"x:1|c", sender=f"s:{i}")
    assert len(seen) == 3
    r.flush()
    assert len(seen) == 10  # seven senders, one coalesced observation each


def test_a_sink_that_raises_is_counted() -> None:
    def broken(_: Observation) -> None:
        raise RuntimeError("boom")

    r = StatsdReceiver(udp=None, tcp=None, sink=broken)
    r.feed(b"x:1|c")
    assert r.stats().sink_errors == 1 and value(r, "x") == 1.0


# --- exposition ------------------------------------------------------------------------------------


def test_exposition_of_every_type_parses_clean() -> None:
    mapping = MappingConfig.from_yaml(
        'mappings:\n- match: "h.*"\n  observer_type: histogram\n  name: "hist_seconds"\n'
        '  labels: {kind: "$1"}\n'
    )
    r, _ = receiver(mapping=mapping, sets="gauge")
    r.feed(b"c:1|c|#a:b\ng:2|g\nt:30|ms|#x:y\nh.one:0.2|h\nh.two:3|d\nu:m|s\nd:5|d")
    families = r.exposition_families()
    for rendered, fmt in ((render_text(families), "text"), (render_openmetrics(families), "openmetrics")):
        result = parse(rendered, format=fmt)
        assert result.errors() == [], (fmt, result.errors(), rendered)
    text = render_text(families)
    assert 'hist_seconds_bucket{kind="one",le="0.25"} 1.0' in text
    assert 'hist_seconds_bucket{kind="two",le="+Inf"} 1.0' in text
    assert "# TYPE c counter" in text
    assert 'c_total{a="b"} 1.0' in render_openmetrics(families)
    own = {f.name for f in families} - {f.name for f in r.series_families()}
    assert "promscope_statsd_sample_errors_total" in own


def test_summary_without_observations_in_window_is_nan() -> None:
    clock = Clock()
    r, _ = receiver(monotonic=clock)
    r.feed(b"t:10|ms")
    clock.now += 601
    assert math.isnan(value(r, "t", quantile="0.5"))
    assert value(r, "t_count") == 1.0


def test_explain_shows_rule_and_refusal_without_storing() -> None:
    mapping = MappingConfig.from_yaml(
        'mappings:\n- match: "api.*"\n  name: "api_total"\n  labels: {route: "$1"}\n'
    )
    r, _ = receiver(mapping=mapping)
    r.feed(b"api_total:1|g")
    explained = r.explain("api.users:1|c|#env:prod")
    (sample,) = explained.samples
    assert sample.rule is not None and sample.rule.index == 1
    assert sample.name == "api_total" and dict(sample.labels) == {"env": "prod", "route": "users"}
    assert sample.outcome.startswith("refused") and sample.diagnostic is not None
    assert sample.diagnostic.code == "SD-140"
    assert "rule #1" in explained.describe()
    assert {f.name for f in r.series_families()} == {"api_total"}
    assert r.explain("bad").diagnostics[0].code == "SD-101"
