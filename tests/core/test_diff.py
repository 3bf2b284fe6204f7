"""The diff engine: two expositions, a baseline check, and rounds of one endpoint (counter rates, resets)."""

from __future__ import annotations

import asyncio
import json
import math
from pathlib import Path

import pytest

from promscope.diff import (
    DIFF_SCHEMA,
    FetchResult,
    SeriesTracker,
    check_baseline,
    diff_families,
    format_series,
    watch,
)
from promscope.exposition import parse
from promscope.model import MetricFamily

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "diff"


def families(text: str) -> tuple[MetricFamily, ...]:
    result = parse(text.encode(), format="text")
    assert not result.errors(), result.errors()
    return result.families


def fixture(name: str) -> tuple[MetricFamily, ...]:
    fmt = "openmetrics" if name.endswith(".om") else "text"
    return parse((FIXTURES / name).read_bytes(), format=fmt).families


# -- two expositions ----------------------------------------------------------------------------------------


def test_every_kind_of_change_in_the_fixture_pair() -> None:
    diff = diff_families(fixture("before.prom"), fixture("after.prom"), before_name="a", after_name="b")
    assert [f.name for f in diff.added] == ["cache_hits_total"]
    assert [f.name for f in diff.removed] == ["legacy_errors_total"]
    changed = {c.name: c for c in diff.changed}
    assert sorted(changed) == ["build_info", "http_requests_total", "queue_depth", "request_size_bytes"]

    requests = changed["http_requests_total"]
    assert requests.help_changed and not requests.type_changed and not requests.unit_changed
    assert requests.labels_added == ("handler",) and requests.labels_removed == ()
    assert (requests.series_added, requests.series_removed) == (3, 2)
    assert format_series(requests.added_examples[0]) == (
        'http_requests_total{code="200",handler="/",method="GET"}'
    )

    sizes = changed["request_size_bytes"]
    assert sizes.type_changed and (sizes.before.type, sizes.after.type) == ("summary", "histogram")
    assert sizes.labels_added == ("le",)

    depth = changed["queue_depth"]
    assert not depth.structural and depth.value_changes == 1
    (moved,) = depth.value_examples
    assert (format_series(moved.series), moved.before, moved.after) == ('queue_depth{queue="a"}', 4.0, 7.0)

    info = changed["build_info"]
    assert (info.series_added, info.series_removed, info.labels_changed) == (1, 1, False)

    assert diff.structural and not diff.identical
    assert (diff.before_series, diff.after_series) == (8, 11)
    assert (diff.series_added, diff.series_removed) == (7, 4)
    assert diff.unchanged == 0


def test_text_and_openmetrics_of_the_same_metrics_do_not_differ() -> None:
    diff = diff_families(fixture("before.prom"), fixture("before.om"))
    assert diff.identical, diff.to_json()
    assert diff.unchanged == 5


def test_identical_inputs() -> None:
    diff = diff_families(fixture("before.prom"), fixture("before.prom"))
    assert diff.identical and not diff.structural
    assert diff.to_json()["identical"] is True


def test_counter_values_are_not_news_but_gauges_are() -> None:
    a = families("# TYPE c_total counter\nc_total 1\n# TYPE g gauge\ng 1\n# TYPE u untyped\nu 1\n")
    b = families("# TYPE c_total counter\nc_total 5\n# TYPE g gauge\ng 2\n# TYPE u untyped\nu 2\n")
    assert [c.name for c in diff_families(a, b).changed] == ["g"]
    everything = diff_families(a, b, value_types=("counter", "gauge", "unknown"))  # type: ignore[arg-type]
    assert [c.name for c in everything.changed] == ["c_total", "g", "u"]


def test_nan_equals_nan_and_unit_changes() -> None:
    a = families("# TYPE g gauge\ng NaN\n")
    b = families("# TYPE g gauge\ng NaN\n")
    assert diff_families(a, b).identical
    om_a = parse(
        b"# TYPE t_seconds gauge\n# UNIT t_seconds seconds\nt_seconds 1\n# EOF\n", format="openmetrics"
    )
    om_b = parse(b"# TYPE t_seconds gauge\nt_seconds 1\n# EOF\n", format="openmetrics")
    (change,) = diff_families(om_a.families, om_b.families).changed
    assert change.unit_changed and change.structural


def test_examples_are_bounded_and_sorted() -> None:
    a = families("# TYPE g gauge\n")
    b = families("# TYPE g gauge\n" + "".join(f'g{{i="{i:02d}"}} 1\n' for i in range(30)))
    (change,) = diff_families(a, b, max_examples=3).changed
    assert change.series_added == 30
    assert [format_series(k) for k in change.added_examples] == ['g{i="00"}', 'g{i="01"}', 'g{i="02"}']


def test_json_schema_is_plain_and_stable() -> None:
    a = families("# TYPE g gauge\ng 1\n")
    b = families('# TYPE g gauge\n# HELP g Now with help.\ng +Inf\ng{x="1"} 0\n')
    data = diff_families(a, b, before_name="A", after_name="B").to_json()
    text = json.dumps(data, allow_nan=False)  # no NaN/Infinity tokens: plain JSON
    assert json.loads(text) == data
    assert data["schema"] == DIFF_SCHEMA
    assert data["a"] == {"name": "A", "families": 1, "series": 1}
    (changed,) = data["families"]["changed"]
    assert changed["help"] == {"a": None, "b": "Now with help."}
    assert changed["type"] is None
    assert changed["labels"] == {"added": ["x"], "removed": []}
    assert changed["series"]["added_examples"] == ['g{x="1"}']
    assert changed["values"] == {"changed": 1, "examples": [{"series": "g", "a": 1.0, "b": "+Inf"}]}


def test_format_series_escapes() -> None:
    assert format_series(("m", (("a", 'q"\\\n'),))) == 'm{a="q\\"\\\\\\n"}'
    assert format_series(("m", ())) == "m"


# -- baseline -----------------------------------------------------------------------------------------------


def test_baseline_passes_on_the_same_shape() -> None:
    report = check_baseline(fixture("baseline.prom"), fixture("baseline.prom"))
    assert report.passed and report.violations == ()


def test_values_and_help_never_fail_a_baseline() -> None:
    a = families("# HELP g Old.\n# TYPE g gauge\ng 1\n")
    b = families("# HELP g New.\n# TYPE g gauge\ng 9\n")
    assert check_baseline(a, b).passed


@pytest.mark.parametrize(
    ("limit", "kinds"),
    [
        (None, []),
        (60.0, []),
        (50.0, []),  # exactly 50% in one family is within a 50% limit
        (30.0, ["series_growth"]),
        (20.0, ["series_growth", "total_series_growth"]),
    ],
)
def test_series_growth_per_family_and_in_total(limit: float | None, kinds: list[str]) -> None:
    report = check_baseline(fixture("baseline.prom"), fixture("grown.prom"), max_series_growth=limit)
    assert [v.kind for v in report.violations] == kinds
    assert report.series_growth == pytest.approx(25.0)
    if kinds:
        assert report.violations[0].metric == "jobs_processed_total"
        assert "4 -> 6 series (+50.0%, limit +" in report.violations[0].message


def test_shrinking_never_fails() -> None:
    report = check_baseline(fixture("grown.prom"), fixture("baseline.prom"), max_series_growth=0)
    assert report.passed


def test_names_types_units_and_labels_fail_a_baseline() -> None:
    report = check_baseline(fixture("before.prom"), fixture("after.prom"), max_series_growth=None)
    assert sorted((v.kind, v.metric) for v in report.violations) == [
        ("family_added", "cache_hits_total"),
        ("family_removed", "legacy_errors_total"),
        ("labels_changed", "http_requests_total"),
        ("labels_changed", "request_size_bytes"),
        ("type_changed", "request_size_bytes"),
    ]
    data = report.to_json()
    assert data["passed"] is False and data["max_series_growth"] is None
    assert data["diff"]["schema"] == DIFF_SCHEMA


def test_a_family_that_had_no_series_grows_infinitely() -> None:
    a = families("# TYPE g gauge\n")
    b = families("# TYPE g gauge\ng 1\n")
    report = check_baseline(a, b, max_series_growth=1000)
    assert [v.kind for v in report.violations] == ["series_growth", "total_series_growth"]
    assert "from none" in report.violations[0].message
    assert report.to_json()["series"]["growth"] == "+Inf"


# -- rounds -------------------------------------------------------------------------------------------------

ROUND_0 = """\
# TYPE http_requests_total counter
http_requests_total{code="200"} 100
http_requests_total{code="500"} 10
# TYPE temperature gauge
temperature 20
# TYPE rpc_seconds histogram
rpc_seconds_bucket{le="1"} 4
rpc_seconds_bucket{le="+Inf"} 5
rpc_seconds_sum 3
rpc_seconds_count 5
"""
ROUND_1 = """\
# TYPE http_requests_total counter
http_requests_total{code="200"} 130
http_requests_total{code="500"} 4
http_requests_total{code="503"} 1
# TYPE temperature gauge
temperature 21.5
# TYPE rpc_seconds histogram
rpc_seconds_bucket{le="1"} 6
rpc_seconds_bucket{le="+Inf"} 8
rpc_seconds_sum 5
rpc_seconds_count 8
"""


def test_rounds_report_appeared_vanished_changed_and_rates() -> None:
    tracker = SeriesTracker()
    first = tracker.update(families(ROUND_0), time=1000.0)
    assert (first.round, first.elapsed, first.series, first.families) == (0, None, 7, 3)
    assert first.appeared == () and first.rates == ()

    second = tracker.update(families(ROUND_1), time=1010.0)
    assert second.round == 1 and second.elapsed == 10.0
    assert [format_series(k) for k in second.appeared] == ['http_requests_total{code="503"}']
    assert second.vanished == ()
    assert [(format_series(c.series), c.before, c.after) for c in second.changed] == [
        ("temperature", 20, 21.5)
    ]
    rates = {format_series(r.series): r for r in second.rates}
    assert sorted(rates) == [
        'http_requests_total{code="200"}',
        'http_requests_total{code="500"}',
        'rpc_seconds_bucket{le="+Inf"}',
        'rpc_seconds_bucket{le="1"}',
        "rpc_seconds_count",
        "rpc_seconds_sum",
    ]
    ok = rates['http_requests_total{code="200"}']
    assert (ok.increase, ok.rate, ok.reset) == (30.0, 3.0, False)
    reset = rates['http_requests_total{code="500"}']
    assert (reset.increase, reset.rate, reset.reset) == (4.0, 0.4, True)  # went down: counted from zero
    assert rates["rpc_seconds_count"].rate == pytest.approx(0.3)
    assert second.resets == 1

    third = tracker.update(families(ROUND_0), time=1015.0)
    assert [format_series(k) for k in third.vanished] == ['http_requests_total{code="503"}']
    assert third.elapsed == 5.0


def test_a_moved_created_timestamp_is_a_reset_even_when_the_value_grew() -> None:
    def om(value: int, created: float) -> tuple[MetricFamily, ...]:
        text = f"# TYPE jobs counter\njobs_total {value}\njobs_created {created}\n# EOF\n"
        return parse(text.encode(), format="openmetrics").families

    tracker = SeriesTracker()
    tracker.update(om(50, 1000.0), time=0.0)
    (same,) = tracker.update(om(60, 1000.0), time=10.0).rates
    assert (same.increase, same.reset) == (10.0, False)
    round_ = tracker.update(om(70, 1015.0), time=20.0)
    (restarted,) = round_.rates
    assert (restarted.increase, restarted.reset) == (70.0, True)
    assert round_.changed == ()  # _created moving is the reset, not a value change


def test_a_failed_round_is_skipped_by_the_next_comparison() -> None:
    tracker = SeriesTracker()
    tracker.update(families(ROUND_0), time=0.0)
    failed = tracker.failed("connection refused", time=10.0)
    assert failed.error == "connection refused" and failed.round == 1 and failed.elapsed == 10.0
    after = tracker.update(families(ROUND_1), time=20.0)
    assert after.round == 2 and after.elapsed == 20.0
    assert failed.to_json()["error"] == "connection refused"


def test_round_json_is_plain() -> None:
    tracker = SeriesTracker()
    tracker.update(families(ROUND_0), time=0.0)
    data = tracker.update(families(ROUND_1), time=0.0).to_json()  # zero elapsed: rate is NaN
    assert json.loads(json.dumps(data, allow_nan=False)) == data
    assert data["schema"] == "promscope.diff.round/v1"
    assert all(r["rate"] == "NaN" for r in data["rates"])


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_watch_keeps_its_slots_and_skips_overrun_ones() -> None:
    fake = FakeTime()
    bodies = [ROUND_0, ROUND_1, None, ROUND_0]
    durations = [1.0, 25.0, 1.0, 1.0]  # the second fetch overruns two slots
    calls: list[float] = []

    async def fetch() -> FetchResult:
        index = len(calls)
        calls.append(fake.now)
        fake.now += durations[index]
        body = bodies[index]
        return FetchResult(error="HTTP 500") if body is None else FetchResult(families(body))

    async def run() -> list[tuple[int, float, str | None]]:
        return [
            (r.round, r.time, r.error)
            async for r in watch(fetch, interval=10.0, count=4, clock=fake.clock, sleep=fake.sleep)
        ]

    rounds = asyncio.run(run())
    assert calls == [0.0, 10.0, 40.0, 50.0]
    assert rounds == [(0, 0.0, None), (1, 10.0, None), (2, 40.0, "HTTP 500"), (3, 50.0, None)]
    assert fake.sleeps == [9.0, 5.0, 9.0]


def test_watch_rejects_a_bad_interval() -> None:
    async def fetch() -> FetchResult:
        return FetchResult()

    async def run() -> None:
        async for _ in watch(fetch, interval=0):
            pass

    with pytest.raises(ValueError, match="interval"):
        asyncio.run(run())


def test_native_histograms_count_as_counters() -> None:
    from promscope.model import MetricType, NativeHistogram, Sample

    def native(count: float) -> tuple[MetricFamily, ...]:
        histogram = NativeHistogram(schema=0, zero_threshold=0.0, zero_count=0.0, count=count, sum=1.0)
        return (
            MetricFamily(
                "lat", MetricType.HISTOGRAM, samples=(Sample("lat", (), count, native_histogram=histogram),)
            ),
        )

    tracker = SeriesTracker()
    tracker.update(native(10), time=0.0)
    (rate,) = tracker.update(native(30), time=4.0).rates
    assert (rate.increase, rate.rate) == (20.0, 5.0)
    assert math.isfinite(rate.rate)
