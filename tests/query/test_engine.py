"""The engine: Prometheus's evaluation rules on small hand-checked data, over every kind of source.

``make_engine`` (tests/query/conftest.py) runs each test against a
SeriesSet, a bare ``select``-only source and the live Store, so the fast
paths and the generic one must agree.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from promscope.query import Engine, QueryError, SeriesSet, format_value
from promscope.query.ast import ValueType

from .conftest import T0, series  # type: ignore[import-not-found]

MakeEngine = Callable[..., Engine]


def vector(engine: Engine, expr: str, at: float) -> dict[tuple[tuple[str, str], ...], float]:
    result = engine.instant(expr, at)
    assert result.type is ValueType.VECTOR, result.type
    return {s.labels: s.value for s in result.series}


def one(engine: Engine, expr: str, at: float) -> float:
    values = list(vector(engine, expr, at).values())
    assert len(values) == 1, values
    return values[0]


# -- selectors -------------------------------------------------------------------------------------------


def test_instant_selector_takes_the_newest_sample_within_the_lookback(make_engine: MakeEngine) -> None:
    engine = make_engine(series({"__name__": "g"}, [1, 2, 3]), compat="2")
    last = T0 + 30
    assert one(engine, "g", last) == 3
    assert one(engine, "g", last - 1) == 2
    assert one(engine, "g", last + 300) == 3  # Prometheus 2: [t - 5m, t], both ends
    assert vector(engine, "g", last + 300.001) == {}
    assert vector(engine, "g", T0 - 1) == {}


def test_prometheus_3_excludes_the_oldest_edge(make_engine: MakeEngine) -> None:
    engine = make_engine(series({"__name__": "g"}, [1, 2, 3]), compat="3")
    assert vector(engine, "g", T0 + 30 + 300) == {}
    assert one(engine, "g", T0 + 30 + 299.999) == 3
    narrow = make_engine(series({"__name__": "g"}, [1, 2, 3]), lookback_delta=10.0)
    assert vector(narrow, "g", T0 + 45) == {}


def test_offset_shifts_the_evaluation_time(make_engine: MakeEngine) -> None:
    engine = make_engine(series({"__name__": "g"}, range(10)))
    assert one(engine, "g offset 1m", T0 + 135) == 5
    assert one(engine, "g offset -30s", T0 + 30) == 4


def test_matchers_select_as_prometheus_does(make_engine: MakeEngine) -> None:
    samples = (
        series({"__name__": "m", "a": "x", "b": "1"}, [1])
        + series({"__name__": "m", "a": "y"}, [2])
        + series({"__name__": "m_other", "a": "x"}, [3])
        + series({"__name__": "n", "a": "xx"}, [4])
    )
    engine = make_engine(samples)
    assert sorted(vector(engine, 'm{a=~"x|y"}', T0).values()) == [1, 2]
    assert sorted(vector(engine, 'm{b=""}', T0).values()) == [2]  # a missing label matches ""
    assert sorted(vector(engine, 'm{b!="1"}', T0).values()) == [2]
    assert sorted(vector(engine, 'm{a!~"x"}', T0).values()) == [2]
    assert sorted(vector(engine, '{__name__=~"m.*", a="x"}', T0).values()) == [1, 3]
    assert sorted(vector(engine, '{a=~"x"}', T0).values()) == [1, 3]  # anchored: not "xx"
    assert vector(engine, "absent_metric", T0) == {}


def test_a_stale_marker_ends_the_series_for_instant_selectors() -> None:
    stale = struct.unpack("<d", struct.pack("<Q", 0x7FF0000000000002))[0]
    data = SeriesSet.from_samples(series({"__name__": "g"}, [1, 2, stale, 4], step=60))
    engine = Engine(data)
    assert one(engine, "g", T0 + 60) == 2
    assert vector(engine, "g", T0 + 150) == {}
    assert one(engine, "g", T0 + 180) == 4
    assert one(engine, "count_over_time(g[5m])", T0 + 180) == 3  # range selectors skip the marker


# -- range functions -------------------------------------------------------------------------------------


COUNTER = [0, 10, 20, 30, 5, 15, 25, 35, 45, 55, 65, 75, 85, 95, 105, 115, 125, 135, 145, 155, 165]
"""A counter at 15 s, 10 per point, reset to 5 at the fifth point (21 points: five minutes)."""


def test_rate_increase_and_irate_follow_prometheus_2(make_engine: MakeEngine) -> None:
    engine = make_engine(series({"__name__": "c_total", "job": "a"}, COUNTER), compat="2")
    at = T0 + 300
    # 165 - 0 plus the 30 lost at the reset = 195 over the 300 s the points span: no extrapolation.
    assert one(engine, "increase(c_total[5m])", at) == pytest.approx(195.0)
    assert one(engine, "rate(c_total[5m])", at) == pytest.approx(195.0 / 300)
    assert one(engine, "irate(c_total[1m])", at) == pytest.approx(10 / 15)
    # One minute: points at 240..300 s, 60 s sampled; the window starts on a point, nothing to add.
    assert one(engine, "increase(c_total[1m])", at) == pytest.approx(40.0)
    # Extrapolation: [50s] holds 4 points over 45 s, 5 s short of the window's start.
    assert one(engine, "increase(c_total[50s])", at) == pytest.approx(30.0 * 50 / 45)


def test_range_functions_need_enough_points(make_engine: MakeEngine) -> None:
    engine = make_engine(series({"__name__": "c_total"}, [1, 2]))
    assert vector(engine, "rate(c_total[10s])", T0 + 15) == {}
    assert one(engine, "count_over_time(c_total[10s])", T0 + 15) == 1


def test_over_time_functions_and_deriv(make_engine: MakeEngine) -> None:
    values = [3, -1, 4, 1, 5]
    engine = make_engine(series({"__name__": "g"}, values), compat="2")
    at = T0 + 60
    assert one(engine, "sum_over_time(g[1m])", at) == 12
    assert one(engine, "avg_over_time(g[1m])", at) == pytest.approx(12 / 5)
    assert one(engine, "min_over_time(g[1m])", at) == -1
    assert one(engine, "max_over_time(g[1m])", at) == 5
    assert one(engine, "count_over_time(g[1m])", at) == 5
    assert one(engine, "last_over_time(g[1m])", at) == 5
    assert one(engine, "delta(g[1m])", at) == pytest.approx(2.0)
    assert one(engine, "changes(g[1m])", at) == 4
    assert one(engine, "resets(g[1m])", at) == 2
    x = np.arange(5) * 15.0
    assert one(engine, "deriv(g[1m])", at) == pytest.approx(float(np.polyfit(x, values, 1)[0]))


def test_functions_drop_the_metric_name_but_last_over_time_keeps_it(make_engine: MakeEngine) -> None:
    engine = make_engine(series({"__name__": "g", "a": "b"}, [1, 2]))
    assert list(vector(engine, "abs(g)", T0 + 15)) == [(("a", "b"),)]
    assert list(vector(engine, "last_over_time(g[1m])", T0 + 15)) == [(("__name__", "g"), ("a", "b"))]


def test_a_name_dropped_duplicate_is_an_error(make_engine: MakeEngine) -> None:
    engine = make_engine(
        series({"__name__": "a", "x": "1"}, [1, 2]) + series({"__name__": "b", "x": "1"}, [3, 4])
    )
    with pytest.raises(QueryError, match="vector cannot contain metrics with the same labelset"):
        engine.instant('rate({__name__=~"a|b"}[1m])', T0 + 15)
    assert len(vector(engine, '{__name__=~"a|b"}', T0 + 15)) == 2


def test_histogram_quantile_over_classic_buckets(make_engine: MakeEngine) -> None:
    buckets = {"0.1": 10, "0.5": 60, "1.0": 90, "+Inf": 100}
    samples = []
    for le, count in buckets.items():
        samples += series({"__name__": "h_bucket", "le": le, "job": "a"}, [count])
        samples += series({"__name__": "h_bucket", "le": le, "job": "b"}, [count * 2])
    engine = make_engine(samples)
    result = vector(engine, "histogram_quantile(0.5, h_bucket)", T0)
    # rank 50 of 100: inside (0.1, 0.5], 40 of its 50 observations in: 0.1 + 0.4 * 40 / 50
    assert result == {(("job", "a"),): pytest.approx(0.42), (("job", "b"),): pytest.approx(0.42)}
    assert one(engine, 'histogram_quantile(0.99, h_bucket{job="a"})', T0) == 1.0
    assert one(engine, 'histogram_quantile(2, h_bucket{job="a"})', T0) == math.inf
    summed = one(engine, "histogram_quantile(0.9, sum by (le) (h_bucket))", T0)
    assert summed == pytest.approx(1.0)


# -- aggregation -------------------------------------------------------------------------------------------


@pytest.fixture
def fleet() -> list[tuple[dict[str, str], float, float]]:
    values = {("a", "1"): 1.0, ("a", "2"): 5.0, ("b", "1"): 3.0, ("b", "2"): math.nan, ("c", "1"): -2.0}
    samples = []
    for (ns, pod), value in values.items():
        samples += series({"__name__": "up", "ns": ns, "pod": pod}, [value])
    return samples


def test_aggregations_by_and_without(make_engine: MakeEngine, fleet: list[Any]) -> None:
    engine = make_engine(fleet)
    assert vector(engine, "sum by (ns) (up)", T0) == {
        (("ns", "a"),): 6.0,
        (("ns", "b"),): pytest.approx(math.nan, nan_ok=True),
        (("ns", "c"),): -2.0,
    }
    assert vector(engine, "count without (pod) (up)", T0) == {
        (("ns", "a"),): 2,
        (("ns", "b"),): 2,
        (("ns", "c"),): 1,
    }
    assert vector(engine, "max(up) by (ns)", T0)[(("ns", "b"),)] == 3.0  # NaN only when all are NaN
    assert vector(engine, "min by (ns) (up)", T0)[(("ns", "a"),)] == 1.0
    assert vector(engine, "avg by (ns) (up)", T0)[(("ns", "a"),)] == 3.0
    assert one(engine, "count(up)", T0) == 5
    assert vector(engine, "sum by (missing) (up)", T0).keys() == {()}


def test_topk_and_bottomk_keep_labels_and_order_and_put_nan_last(
    make_engine: MakeEngine, fleet: list[Any]
) -> None:
    engine = make_engine(fleet)
    top = engine.instant("topk(2, up)", T0)
    assert [s.value for s in top.series] == [5.0, 3.0]
    assert top.series[0].metric == {"__name__": "up", "ns": "a", "pod": "2"}
    bottom = engine.instant("bottomk by (ns) (1, up)", T0)
    assert sorted(s.value for s in bottom.series) == [-2.0, 1.0, 3.0]
    assert vector(engine, "topk(0, up)", T0) == {}
    assert len(vector(engine, "topk(10, up)", T0)) == 5


# -- binary operators --------------------------------------------------------------------------------------


@pytest.fixture
def pairs() -> list[tuple[dict[str, str], float, float]]:
    samples = []
    for ns, (errors, total) in {"a": (1.0, 10.0), "b": (4.0, 8.0), "c": (0.0, 0.0)}.items():
        samples += series({"__name__": "errors", "ns": ns, "code": "500"}, [errors])
        samples += series({"__name__": "total", "ns": ns, "code": "all"}, [total])
    return samples


def test_arithmetic_and_comparisons_with_scalars(make_engine: MakeEngine, pairs: list[Any]) -> None:
    engine = make_engine(pairs)
    assert vector(engine, 'total{ns="a"} * 2 + 1', T0) == {(("code", "all"), ("ns", "a")): 21.0}
    assert vector(engine, "total > 5", T0).keys() == {
        (("__name__", "total"), ("code", "all"), ("ns", "a")),
        (("__name__", "total"), ("code", "all"), ("ns", "b")),
    }
    assert vector(engine, '9 > total{ns="b"}', T0) == {
        (("__name__", "total"), ("code", "all"), ("ns", "b")): 8.0
    }
    assert vector(engine, 'total{ns="a"} > bool 5', T0) == {(("code", "all"), ("ns", "a")): 1.0}
    assert one(engine, 'total{ns="a"} % 3', T0) == 1.0
    assert one(engine, '-total{ns="a"} % 3', T0) == -1.0  # Go's math.Mod keeps the dividend's sign
    assert one(engine, 'total{ns="a"} ^ 2', T0) == 100.0
    assert math.isnan(one(engine, 'total{ns="c"} / 0 * 0', T0))
    assert engine.instant("2 ^ 3 ^ 2", T0).scalar == 512.0
    assert engine.instant("1 >= bool 2", T0).scalar == 0.0


def test_one_to_one_matching_with_on_and_ignoring(make_engine: MakeEngine, pairs: list[Any]) -> None:
    engine = make_engine(pairs)
    ratio = vector(engine, "errors / ignoring(code) total", T0)
    assert ratio[(("ns", "a"),)] == 0.1 and ratio[(("ns", "b"),)] == 0.5
    assert math.isnan(ratio[(("ns", "c"),)])
    assert vector(engine, "errors / on(ns) total", T0).keys() == {
        (("ns", "a"),),
        (("ns", "b"),),
        (("ns", "c"),),
    }
    assert vector(engine, "errors / total", T0) == {}  # code differs: nothing matches
    kept = vector(engine, "errors > on(ns) (total / 8)", T0)
    assert kept == {(("ns", "b"),): 4.0}


def test_matching_errors_use_prometheus_words(make_engine: MakeEngine, pairs: list[Any]) -> None:
    engine = make_engine(pairs)
    with pytest.raises(QueryError, match="found duplicate series for the match group") as caught:
        engine.instant("errors / on(code) total", T0)
    assert "many-to-many matching not allowed" in caught.value.reason
    assert caught.value.column == len("errors ") + 1
    with pytest.raises(QueryError, match="many-to-one matching must be explicit"):
        engine.instant("errors + on() vector(1)", T0)


def test_set_operators(make_engine: MakeEngine, pairs: list[Any]) -> None:
    engine = make_engine(pairs)
    assert len(vector(engine, "errors and on(ns) (total > 5)", T0)) == 2
    assert len(vector(engine, "errors unless on(ns) (total > 5)", T0)) == 1
    both = vector(engine, "errors or total", T0)
    assert len(both) == 6
    assert len(vector(engine, "errors or on(ns) total", T0)) == 3
    assert vector(engine, "vector(1) or errors", T0).keys() >= {()}


def test_scalar_and_vector_functions(make_engine: MakeEngine, pairs: list[Any]) -> None:
    engine = make_engine(pairs)
    assert engine.instant("scalar(sum(total))", T0).scalar == 18.0
    assert math.isnan(engine.instant("scalar(total)", T0).scalar or 0.0)
    assert engine.instant("time()", T0 + 7.5).scalar == T0 + 7.5
    assert vector(engine, "vector(2) * 3", T0) == {(): 6.0}
    assert one(engine, 'round(errors{ns="b"} / 3, 0.5)', T0) == 1.5
    assert one(engine, 'clamp(total{ns="a"}, 0, 5)', T0) == 5.0
    assert one(engine, 'clamp_min(total{ns="a"}, 20)', T0) == 20.0
    assert one(engine, 'clamp_max(total{ns="a"}, 2)', T0) == 2.0
    assert one(engine, 'timestamp(total{ns="a"})', T0 + 60) == T0
    assert [s.value for s in engine.instant("sort_desc(total)", T0).series] == [10.0, 8.0, 0.0]
    assert [s.value for s in engine.instant("sort(total)", T0).series] == [0.0, 8.0, 10.0]


# -- range queries and results -----------------------------------------------------------------------------


def test_range_query_builds_a_matrix_per_series(make_engine: MakeEngine) -> None:
    samples = series({"__name__": "g", "a": "1"}, range(20)) + series(
        {"__name__": "g", "a": "2"}, [7], start=T0 + 60
    )
    engine = make_engine(samples)
    result = engine.range("g", T0, T0 + 120, 60)
    assert result.type is ValueType.MATRIX
    data = result.data()
    assert data["resultType"] == "matrix"
    first, second = data["result"]
    assert first == {
        "metric": {"__name__": "g", "a": "1"},
        "values": [[int(T0), "0"], [int(T0 + 60), "4"], [int(T0 + 120), "8"]],
    }
    assert second["values"] == [[int(T0 + 60), "7"], [int(T0 + 120), "7"]]
    scalar = engine.range("time()", T0, T0 + 30, 15).data()
    assert scalar["result"][0]["values"][1] == [int(T0 + 15), format_value(T0 + 15)]


def test_range_query_limits(make_engine: MakeEngine) -> None:
    engine = make_engine(series({"__name__": "g"}, [1]))
    with pytest.raises(QueryError, match="exceeded maximum resolution"):
        engine.range("g", T0, T0 + 100_000, 1)
    with pytest.raises(QueryError, match="zero or negative query resolution"):
        engine.range("g", T0, T0 + 10, 0)
    with pytest.raises(QueryError, match="range vector"):
        engine.range("g[5m]", T0, T0 + 10, 1)


def test_result_data_has_the_http_api_shape() -> None:
    engine = Engine(SeriesSet.from_samples(series({"__name__": "g", "a": "b"}, [1.5])))
    assert engine.instant("g", T0 + 0.25).data() == {
        "resultType": "vector",
        "result": [{"metric": {"__name__": "g", "a": "b"}, "value": [T0 + 0.25, "1.5"]}],
    }
    assert engine.instant("1 / 0", T0).data() == {"resultType": "scalar", "result": [int(T0), "+Inf"]}
    assert engine.instant('"hello"', T0).data() == {"resultType": "string", "result": [int(T0), "hello"]}


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (1.0, "1"),
        (0.1, "0.1"),
        (-2.5, "-2.5"),
        (1e21, "1000000000000000000000"),
        (1e-7, "0.0000001"),
        (math.nan, "NaN"),
        (math.inf, "+Inf"),
        (-math.inf, "-Inf"),
        (123456789.125, "123456789.125"),
    ],
)
def test_values_print_as_go_does(value: float, text: str) -> None:
    assert format_value(value) == text


def test_series_set_keeps_points_as_they_are() -> None:
    data = SeriesSet.from_samples(
        [
            ({"__name__": "c_total"}, T0 + 15, 5.0),
            ({"__name__": "c_total"}, T0, 10.0),
            ({"__name__": "c_total"}, T0 + 15, 6.0),
        ]
    )
    (only,) = data.select([], T0, T0 + 60)
    assert only.timestamps.tolist() == [T0, T0 + 15]
    assert only.values.tolist() == [10.0, 6.0]  # out of order sorted, the last duplicate wins, the drop kept
    assert data.time_range() == (T0, T0 + 15) and data.sample_count == 2 and data.names() == ["c_total"]


def test_evaluation_errors_point_at_the_node() -> None:
    engine = Engine(
        SeriesSet.from_samples(
            series({"__name__": "a", "x": "1"}, [1]) + series({"__name__": "b", "x": "1"}, [1])
        )
    )
    with pytest.raises(QueryError) as caught:
        engine.instant('1 + abs({__name__=~"a|b"})', T0)
    assert caught.value.column == 5
    assert caught.value.message.startswith("1:5: evaluation error: ")


def test_a_failed_scrape_in_a_session_still_reports_up_zero() -> None:
    from promscope.model import MetricFamily, MetricType, Sample
    from promscope.observation import Observation, ObservationKind, Outcome, Transport
    from promscope.query.engine import Engine, SeriesSet

    def scrape(instance: str, up: float, outcome: Outcome) -> Observation:
        labels = (("instance", instance), ("job", "node"))
        return Observation(
            kind=ObservationKind.SCRAPE,
            source=f"node/{instance}",
            time=1000.0,
            outcome=outcome,
            transport=Transport("http"),
            families=(MetricFamily("up", MetricType.GAUGE, samples=(Sample("up", labels, up),)),),
        )

    refused_push = Observation(
        kind=ObservationKind.PUSHGATEWAY,
        source="job=x",
        time=1000.0,
        outcome=Outcome.REJECTED,
        transport=Transport("http"),
        families=(MetricFamily("refused", MetricType.GAUGE, samples=(Sample("refused", (), 1.0),)),),
    )
    series = SeriesSet.from_observations(
        [scrape("a:1", 1.0, Outcome.ACCEPTED), scrape("b:1", 0.0, Outcome.FAILED), refused_push]
    )
    result = Engine(series).instant("up", 1000.0).data()
    assert sorted((r["metric"]["instance"], r["value"][1]) for r in result["result"]) == [
        ("a:1", "1"),
        ("b:1", "0"),
    ]
    assert Engine(series).instant("refused", 1000.0).data()["result"] == []
