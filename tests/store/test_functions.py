"""The range functions and quantiles against hand-computed values and Prometheus's promqltest cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from promscope.model import BucketSpan, NativeHistogram
from promscope.store import SeriesBatch, SeriesView
from promscope.store.functions import (
    avg_over_time,
    bucket_quantile,
    changes,
    count_over_time,
    delta,
    deriv,
    histogram_quantile,
    idelta,
    increase,
    irate,
    last_over_time,
    max_over_time,
    min_over_time,
    native_bucket_bound,
    native_histogram_quantile,
    native_histogram_rate,
    rate,
    resets,
    sum_over_time,
)

M = 60.0


def results(names: list[str], result: tuple[np.ndarray, np.ndarray]) -> dict[str, float]:
    values, present = result
    return {name: float(v) for name, v, p in zip(names, values, present, strict=True) if p}


def batch(*series: list[tuple[float, float]], created: list[list[float]] | None = None) -> SeriesBatch:
    views = []
    for i, points in enumerate(series):
        views.append(
            SeriesView(
                labels=(("__name__", f"s{i}"),),
                timestamps=np.asarray([t for t, _ in points], np.float64),
                values=np.asarray([v for _, v in points], np.float64),
                created_at=None if created is None else np.asarray(created[i], np.float64),
            )
        )
    return SeriesBatch.from_views(views)


# -- promqltest: functions.test (Prometheus 3: ranges are left-open) -------------------------------------


def test_increase_promqltest(promql):
    _, load, window = promql
    data = load(
        5 * M,
        {
            "foo": "0+10x10",
            "bar": "0+18x5 0+18x5",
            "dings": "10+10x10",
            "bumms": "1+10x10",
        },
    )
    names, b = window(data, 50 * M, 50 * M)
    got = results(names, increase(b, 0, 50 * M))
    assert got == pytest.approx({"foo": 100, "bar": 160, "dings": 100, "bumms": 100})
    names, b = window(data, 50 * M, 100 * M)
    got = results(names, increase(b, -50 * M, 50 * M))
    # dings reaches 0 at -5m, beyond half an interval; bumms at -30s: extrapolate only that far.
    assert got == pytest.approx({"foo": 100, "bar": 162, "dings": 105, "bumms": 101})


def test_increase_counts_a_drop_as_a_reset_to_zero(promql):
    _, load, window = promql
    names, b = window(load(5 * M, {"foo": "0 1 2 3 2 3 4"}), 30 * M, 30 * M)
    assert results(names, increase(b, 0, 30 * M)) == pytest.approx({"foo": 7})


def test_rate_resets_in_the_middle_and_at_the_end(promql):
    _, load, window = promql
    data = load(5 * M, {"middle": "0+27x4 0+27x5", "end": "0+10x9 0 10"})
    names, b = window(data, 50 * M, 50 * M)
    assert results(names, rate(b, 0, 50 * M))["middle"] == pytest.approx(0.08)
    names, b = window({"end": data["end"]}, 50 * M, 5 * M)
    assert results(names, rate(b, 45 * M, 50 * M)) == {}
    names, b = window({"end": data["end"]}, 50 * M, 6 * M)
    assert results(names, rate(b, 44 * M, 50 * M)) == pytest.approx({"end": 0})


def test_rate_per_second_and_offset(promql):
    _, load, window = promql
    data = load(5 * M, {"window": "0+80x10", "a": "0+10x10", "b": "0+20x10"})
    names, b = window({"window": data["window"]}, 50 * M, 50 * M)
    assert results(names, rate(b, 0, 50 * M))["window"] == pytest.approx(0.26666666666666666)
    # rate(x[10m] offset 5m) at 50m reads (35m, 45m].
    names, b = window({"a": data["a"], "b": data["b"]}, 45 * M, 10 * M)
    got = results(names, rate(b, 35 * M, 45 * M))
    assert got == pytest.approx({"a": 0.03333333333333333, "b": 0.06666666666666667})


ZERO_CUTOFF = {
    "0m": "0+240x10",
    "1m": "60+240x10",
    "2m": "120+240x10",
    "3m": "180+240x10",
    "4m": "240+240x10",
    "5m": "300+240x10",
}


def test_rate_zero_cutoff_prometheus3(promql):
    _, load, window = promql
    data = load(4 * M, ZERO_CUTOFF)
    names, b = window(data, 10 * M, 20 * M)
    got = results(names, rate(b, -10 * M, 10 * M))
    assert got == pytest.approx({"0m": 0.5, "1m": 0.55, "2m": 0.6, "3m": 0.6, "4m": 0.6, "5m": 0.6})
    names, b = window(data, 50 * M, 20 * M)
    got = results(names, rate(b, 30 * M, 50 * M))
    assert got == pytest.approx(dict.fromkeys(ZERO_CUTOFF, 0.6))


def test_rate_zero_cutoff_prometheus2(promql):
    """Prometheus 2.x clamps to the zero point before the threshold, and its ranges are closed."""
    _, load, window = promql
    names, b = window(load(4 * M, ZERO_CUTOFF), 10 * M, 20 * M, left_open=False)
    got = results(names, rate(b, -10 * M, 10 * M, compat="2"))
    assert got == pytest.approx({"0m": 0.5, "1m": 0.55, "2m": 0.6, "3m": 0.65, "4m": 0.7, "5m": 0.6})


def test_irate_and_idelta(promql):
    _, load, window = promql
    data = load(5 * M, {"foo": "0+10x10", "bar": "0+10x5 0+10x5"})
    names, b = window(data, 50 * M, 50 * M)
    assert results(names, irate(b)) == pytest.approx({"foo": 1 / 30, "bar": 1 / 30})
    names, b = window(data, 30 * M, 50 * M)
    assert results(names, irate(b)) == pytest.approx({"foo": 1 / 30, "bar": 0})
    data = load(5 * M, {"foo": "0 50 100 150", "bar": "0 50 100 50"})
    names, b = window(data, 20 * M, 20 * M)
    assert results(names, idelta(b)) == pytest.approx({"foo": 50, "bar": -50})


def test_irate_over_nan(promql):
    _, load, window = promql
    data = load(5 * M, {"nan": "1 NaN NaN 5 11"})
    names, b = window(data, 15 * M, 15 * M + 1)
    assert math.isnan(results(names, irate(b))["nan"])
    names, b = window(data, 20 * M, 15 * M + 1)
    assert results(names, irate(b))["nan"] == pytest.approx(0.02)


def test_delta(promql):
    _, load, window = promql
    data = load(5 * M, {"foo": "0 50 100 150 200", "bar": "200 150 100 50 0"})
    names, b = window(data, 20 * M, 20 * M)
    assert results(names, delta(b, 0, 20 * M)) == pytest.approx({"foo": 200, "bar": -200})


def test_deriv(promql):
    _, load, window = promql
    data = load(
        5 * M,
        {
            "total": "0+80x10",
            "reset": "0+10x4 0+10x5",
            "inf": "-Inf 0+80x10 Inf",
            "flat": "3x10",
            "flat_inf": "Inf Inf Inf",
        },
    )
    names, b = window({"total": data["total"]}, 50 * M, 50 * M)
    assert results(names, deriv(b))["total"] == pytest.approx(0.26666666666666666)
    names, b = window({"reset": data["reset"]}, 50 * M, 100 * M)
    assert results(names, deriv(b))["reset"] == pytest.approx(0.010606060606060607)
    names, b = window({"inf": data["inf"]}, 100 * M, 100 * M)
    assert math.isnan(results(names, deriv(b))["inf"])
    names, b = window({"flat": data["flat"], "flat_inf": data["flat_inf"]}, 10 * M, 100 * M)
    got = results(names, deriv(b))
    assert got["flat"] == 0 and math.isnan(got["flat_inf"])


RESET_DATA = {
    "foo": "1 2 3 0 1 0 0 1 2 0",
    "bar": "1 2 3 4 5 1 2 3 4 5",
    "biz": "0 0 0 0 0 1 1 1 1 1",
}


@pytest.mark.parametrize(
    ("range_minutes", "expected"),
    [
        (10, {"foo": 0, "bar": 0, "biz": 0}),
        (20, {"foo": 1, "bar": 0, "biz": 0}),
        (32, {"foo": 2, "bar": 1, "biz": 0}),
        (50, {"foo": 3, "bar": 1, "biz": 0}),
    ],
)
def test_resets(promql, range_minutes, expected):
    _, load, window = promql
    names, b = window(load(5 * M, RESET_DATA), 50 * M, range_minutes * M)
    assert results(names, resets(b)) == expected


@pytest.mark.parametrize(
    ("range_minutes", "expected"),
    [
        (6, {"foo": 0, "bar": 0, "biz": 0}),
        (20, {"foo": 2, "bar": 2, "biz": 0}),
        (50, {"foo": 7, "bar": 8, "biz": 1}),
    ],
)
def test_changes(promql, range_minutes, expected):
    _, load, window = promql
    names, b = window(load(5 * M, RESET_DATA), 50 * M, range_minutes * M)
    assert results(names, changes(b)) == expected


def test_changes_nan_to_nan_is_no_change(promql):
    _, load, window = promql
    names, b = window(load(5 * M, {"b": "NaN NaN NaN", "c": "0 NaN 0"}), 15 * M, 20 * M)
    assert results(names, changes(b)) == {"b": 0, "c": 2}


# -- start timestamps (_created) -------------------------------------------------------------------------


def test_changed_created_is_a_reset_even_without_a_drop():
    # The counter restarted between 20 and 30 and had climbed back above its old value by the next scrape.
    points = [(10.0, 5.0), (20.0, 6.0), (30.0, 8.0), (40.0, 9.0)]
    created = [[1.0, 1.0, 25.0, 25.0]]
    b = batch(points, created=created)
    assert increase(b, 10, 40).values[0] == pytest.approx((6 - 5) + 9)  # the first climb, then 9 since 25
    plain = batch(points)
    assert increase(plain, 10, 40).values[0] == pytest.approx(4.0)
    # Prometheus 2 knows nothing of _created.
    assert increase(b, 10, 40, compat="2").values[0] == pytest.approx(4.0)


def test_created_inside_the_range_stands_for_a_zero_sample():
    # Created at 15 inside (0, 40]: assume 0 at 15, no left extrapolation.
    b = batch([(20.0, 5.0), (30.0, 10.0), (40.0, 15.0)], created=[[15.0, 15.0, 15.0]])
    assert increase(b, 0, 40).values[0] == pytest.approx(15.0)
    single = batch([(40.0, 3.0)], created=[[35.0]])
    result = increase(single, 0, 40)
    assert result.present[0] and result.values[0] == pytest.approx(3.0)


# -- *_over_time -----------------------------------------------------------------------------------------


def test_over_time_helpers_skip_nan_for_min_and_max():
    b = batch([(1, 3.0), (2, math.nan), (3, 1.0)], [(1, math.nan)], [(1, 2.0), (2, math.inf)])
    assert min_over_time(b).values[0] == 1 and max_over_time(b).values[0] == 3
    assert math.isnan(min_over_time(b).values[1])
    assert max_over_time(b).values[2] == math.inf
    assert count_over_time(b).values.tolist() == [3, 1, 2]
    assert last_over_time(b).values[0] == 1
    assert sum_over_time(b).values[2] == math.inf
    assert avg_over_time(batch([(1, 2.0), (2, 4.0)])).values[0] == 3
    assert math.isnan(avg_over_time(batch([(1, math.inf), (2, -math.inf)])).values[0])


def test_functions_leave_out_series_with_too_few_points():
    b = batch([(1, 1.0)], [(1, 1.0), (2, 3.0)])
    assert rate(b, 0, 2).present.tolist() == [False, True]
    assert irate(b).present.tolist() == [False, True]
    assert deriv(b).present.tolist() == [False, True]


def test_empty_batch():
    empty = SeriesBatch.empty()
    for function in (irate, deriv, sum_over_time, min_over_time, count_over_time, last_over_time, resets):
        assert len(function(empty).values) == 0
    assert len(rate(empty, 0, 1).values) == 0


def test_rate_over_many_series_matches_one_at_a_time():
    rng = np.random.default_rng(7)
    series = []
    for _ in range(300):
        n = int(rng.integers(1, 12))
        times = np.sort(rng.choice(np.arange(0, 300, 5.0), n, replace=False))
        values = np.cumsum(rng.integers(0, 20, n)).astype(float)
        if n > 3 and rng.random() < 0.3:
            values[n // 2 :] -= values[n // 2] - 1  # a reset
        series.append(list(zip(times.tolist(), values.tolist(), strict=True)))
    together = rate(batch(*series), 0, 300)
    for i, points in enumerate(series):
        alone = rate(batch(points), 0, 300)
        assert together.present[i] == alone.present[0]
        if alone.present[0]:
            assert together.values[i] == pytest.approx(alone.values[0])


# -- classic histogram_quantile: histograms.test ---------------------------------------------------------

POSITIVE = ([0.1, 0.2, 1.0, math.inf], [50, 70, 110, 120])
NEGATIVE = ([-0.2, -0.1, 0.3, math.inf], [10, 20, 20, 30])
POSITIVE3 = ([0, 0.1, 0.2, 1.0, math.inf], [0, 50, 70, 110, 110])
NEGATIVE3 = ([-0.25, -0.2, -0.1, 0.3, math.inf], [0, 10, 20, 20, 20])


@pytest.mark.parametrize(
    ("q", "positive", "negative"),
    [(0, 0, -0.2), (1, 1, 0.3), (0.2, 0.048, -0.2), (0.5, 0.15, -0.15), (0.8, 0.72, 0.3)],
)
def test_bucket_quantile_testhistogram(q, positive, negative):
    assert bucket_quantile(q, *POSITIVE)[0] == pytest.approx(positive)
    assert bucket_quantile(q, *NEGATIVE)[0] == pytest.approx(negative)


@pytest.mark.parametrize(
    ("q", "positive", "negative"),
    [(0, 0, -0.25), (0.25, 0.055, -0.225), (0.5, 0.125, -0.2), (0.75, 0.45, -0.15), (1, 1, -0.1)],
)
def test_bucket_quantile_testhistogram3(q, positive, negative):
    assert bucket_quantile(q, *POSITIVE3)[0] == pytest.approx(positive)
    assert bucket_quantile(q, *NEGATIVE3)[0] == pytest.approx(negative)


def test_bucket_quantile_special_cases():
    assert bucket_quantile(-0.1, *POSITIVE)[0] == -math.inf
    assert bucket_quantile(1.01, *POSITIVE)[0] == math.inf
    assert math.isnan(bucket_quantile(math.nan, *POSITIVE)[0])
    assert math.isnan(bucket_quantile(0.5, [0.1, 1.0], [1, 2])[0])  # no +Inf bucket
    assert math.isnan(bucket_quantile(0.5, [math.inf], [3])[0])  # fewer than two buckets
    assert math.isnan(bucket_quantile(0.5, [1.0, math.inf], [0, 0])[0])  # no observations
    # Middle of a bucket: 1, 3 and 5 (testhistogram2).
    bounds, counts = [0, 2, 4, 6, math.inf], [0, 1, 2, 3, 3]
    for q, expected in ((1 / 6, 1), (0.5, 3), (5 / 6, 5)):
        assert bucket_quantile(q, bounds, counts)[0] == pytest.approx(expected)


def test_bucket_quantile_merges_equal_bounds_and_forces_monotonicity():
    # "0.2", "2e-1" and "2.0e-1" are one bucket once parsed.
    value, forced, fixed = bucket_quantile(0.5, [0.1, 0.2, 0.2, 0.2, math.inf], [10, 10, 10, 10, 40])
    assert value == pytest.approx(0.15) and not forced and not fixed
    value, forced, _ = bucket_quantile(0.5, [0.1, 0.2, math.inf], [10, 5, 20])
    assert value == pytest.approx(0.1) and forced
    value, forced, fixed = bucket_quantile(0.5, [0.1, 0.2, math.inf], [10, 10 * (1 + 1e-13), 20])
    assert fixed and not forced
    assert not bucket_quantile(0.5, [0.1, 0.2, math.inf], [10, 10 * (1 + 1e-13), 20], compat="2")[2]


def test_histogram_quantile_vectorised_matches_scalar():
    rng = np.random.default_rng(3)
    groups, bounds, counts, expected = [], [], [], []
    for g in range(400):
        n = int(rng.integers(1, 7))
        le = sorted(rng.choice([-1.0, 0.0, 0.05, 0.1, 0.5, 1.0, 2.5, 10.0], n, replace=False).tolist())
        if rng.random() < 0.9:
            le.append(math.inf)
        c = np.cumsum(rng.integers(0, 5, len(le))).astype(float).tolist()
        if rng.random() < 0.2 and len(c) > 2:
            c[1] = c[1] + 3  # not monotonic
        if rng.random() < 0.1 and len(c) > 2:
            c[-1] = c[-2] * (1 + 1e-14)  # float noise
        order = rng.permutation(len(le))
        groups.extend([g] * len(le))
        bounds.extend(le[i] for i in order)
        counts.extend(c[i] for i in order)
        expected.append(bucket_quantile(0.9, le, c))
    result = histogram_quantile(0.9, np.array(groups), np.array(bounds), np.array(counts), 401)
    assert not result.present[400]
    for g, (value, forced, fixed) in enumerate(expected):
        if math.isnan(value):
            assert math.isnan(result.values[g])
        else:
            assert result.values[g] == pytest.approx(value)
            assert result.forced_monotonic[g] == forced
            assert result.fixed_precision[g] == fixed


def test_histogram_quantile_out_of_range_q():
    result = histogram_quantile(-1, np.array([0, 0]), np.array([1.0, math.inf]), np.array([1.0, 2.0]), 2)
    assert result.values[0] == -math.inf and not result.present[1]


# -- native histograms -----------------------------------------------------------------------------------


def native(
    schema: int = 0, positive=(), negative=(), zero_count=0.0, zero_threshold=0.0, total=None, sum_=1.0
):
    def spans(counts):
        if not counts:
            return (), ()
        first = counts[0][0]
        return (BucketSpan(first, len(counts)),), tuple(c for _, c in counts)

    pos_spans, pos_counts = spans(list(positive))
    neg_spans, neg_counts = spans(list(negative))
    count = total if total is not None else zero_count + sum(pos_counts) + sum(neg_counts)
    return NativeHistogram(
        schema, zero_threshold, zero_count, count, sum_, pos_spans, pos_counts, neg_spans, neg_counts
    )


def test_native_bucket_bounds():
    assert native_bucket_bound(1, 0) == 2 and native_bucket_bound(0, 0) == 1
    assert native_bucket_bound(1, 1) == pytest.approx(math.sqrt(2))
    assert native_bucket_bound(1, -1) == 4
    assert native_bucket_bound(-1, 0) == 0.5


def test_native_quantile_interpolates_exponentially():
    h = native(positive=[(1, 1.0), (2, 1.0)])
    assert native_histogram_quantile(0.25, h) == pytest.approx(math.sqrt(2))
    assert native_histogram_quantile(0.5, h) == pytest.approx(2)
    assert native_histogram_quantile(0.25, h, compat="2") == pytest.approx(1.5)
    assert native_histogram_quantile(1, h) == pytest.approx(4)
    assert native_histogram_quantile(-1, h) == -math.inf
    assert native_histogram_quantile(2, h) == math.inf
    assert math.isnan(native_histogram_quantile(0.5, native()))


def test_native_quantile_zero_bucket_and_negative_side():
    h = native(positive=[(1, 2.0)], zero_count=2, zero_threshold=0.001)
    assert native_histogram_quantile(0.25, h) == pytest.approx(0.0005)  # 0 is the natural lower bound
    negative = native(negative=[(1, 2.0)])
    assert native_histogram_quantile(0.25, negative) == pytest.approx(-(2**0.75))


def test_native_rate_and_reset():
    h0 = native(positive=[(1, 10.0)], sum_=10)
    h1 = native(positive=[(1, 20.0)], sum_=20)
    result = native_histogram_rate([0.0, 60.0], [h0, h1], 0, 60)
    assert result is not None and result.count == pytest.approx(10 / 60)
    assert result.buckets() == [(1, pytest.approx(10 / 60))]
    reset = native(positive=[(1, 5.0)], sum_=5)
    increase_ = native_histogram_rate([0.0, 60.0], [h0, reset], 0, 60, is_rate=False)
    assert increase_ is not None and increase_.count == pytest.approx(5)
    assert native_histogram_rate([0.0], [h0], 0, 60) is None
    # A coarser schema later is brought down to; a finer one later is a reset (as upstream DetectReset says).
    finer = native(schema=1, positive=[(1, 4.0), (2, 6.0)], sum_=10)
    mixed = native_histogram_rate([0.0, 60.0], [finer, h1], 0, 60, is_rate=False)
    assert mixed is not None and mixed.schema == 0 and mixed.count == pytest.approx(10)
    assert mixed.buckets() == [(1, pytest.approx(10))]
    restarted = native_histogram_rate(
        [0.0, 60.0], [h0, native(schema=1, positive=[(1, 20.0)])], 0, 60, is_rate=False
    )
    assert restarted is not None and restarted.count == pytest.approx(20)
