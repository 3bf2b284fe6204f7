"""The shared-timestamp grid of loose sources: it answers exactly as one loose series per series does.

Every test loads the same points into a store with the grid (the default) and
into one without it (``StoreLimits(grid=False)``: the per-series layout), and
most also into a plain model (a dict per series, the last point written for a
timestamp wins). Values are compared bit for bit, so NaN, Prometheus's stale
marker and the store's own ``ABSENT`` marker cannot stand in for one another.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from promscope.model import BucketSpan, MetricFamily, MetricType, NativeHistogram, Sample
from promscope.observation import Observation, ObservationKind, Outcome, Transport
from promscope.store import DropReason, Matcher, SeriesBatch, Store, StoreLimits

STALE = float(np.array([0x7FF0_0000_0000_0002], np.uint64).view(np.float64)[0])
NAME = Matcher("__name__", "=", "x_total")
STEP = 15.0

Point = tuple[tuple[tuple[str, str], ...], float, float]


def bits(values: Iterable[float]) -> list[int]:
    return np.asarray(list(values), np.float64).view(np.uint64).tolist()


def make_points(seed: int, *, series: int = 30, instants: int = 40, order: str = "shuffled") -> list[Point]:
    """Series over shared instants that start and stop mid-way, with gaps, NaN, stale markers, rewrites."""
    rng = np.random.default_rng(seed)
    out: list[Point] = []
    for s in range(series):
        labels = (("__name__", "x_total"), ("pod", f"p{s:03d}"), ("ns", f"n{s % 3}"))
        first = int(rng.integers(0, instants // 2))
        last = int(rng.integers(instants // 2, instants + 1))
        for i in range(first, last):
            if rng.random() < 0.1:
                continue  # a gap
            roll = rng.random()
            value = STALE if roll < 0.04 else math.nan if roll < 0.07 else math.inf if roll < 0.08 else 0.0
            if value == 0.0:
                value = float(rng.uniform(-1e6, 1e6))
            out.append((labels, 1000.0 + STEP * i, value))
            if rng.random() < 0.05:  # written again: the last one wins
                out.append((labels, 1000.0 + STEP * i, float(rng.uniform(0, 10))))
    if order == "series":
        return out
    if order == "time":
        return sorted(out, key=lambda p: p[1])  # stable: rewrites stay after what they overwrite
    # Out of order: shuffled, but each rewrite still lands after the point it overwrites.
    keys = rng.random(len(out))
    seen: dict[tuple[object, float], float] = {}
    for i, (labels, ts, _) in enumerate(out):
        before = seen.get((labels, ts))
        if before is not None and keys[i] <= before:
            keys[i] = before + 1e-9
        seen[(labels, ts)] = keys[i]
    return [out[i] for i in np.argsort(keys, kind="stable")]


def model(points: Iterable[Point]) -> dict[tuple[tuple[str, str], ...], dict[float, float]]:
    held: dict[tuple[tuple[str, str], ...], dict[float, float]] = {}
    for labels, ts, value in points:
        held.setdefault(tuple(sorted(labels)), {})[ts] = value
    return held


def window_of(held, start: float, end: float, left_open: bool):
    out = {}
    for labels, by_time in held.items():
        ts = sorted(t for t in by_time if (t > start if left_open else t >= start) and t <= end)
        if ts:
            out[labels] = (ts, bits(by_time[t] for t in ts))
    return out


def as_dict(batch: SeriesBatch):
    return {view.labels: (view.timestamps.tolist(), bits(view.values)) for view in batch.views()}


def stores(points: Sequence[Point], **limits) -> tuple[Store, Store]:
    grid = Store(StoreLimits(**limits), clock=lambda: 10_000.0)
    loose = Store(StoreLimits(grid=False, **limits), clock=lambda: 10_000.0)
    for store in (grid, loose):
        store.add_samples("backfill", points)
    return grid, loose


def windows(rng: np.random.Generator, count: int = 12) -> list[tuple[float, float, bool]]:
    out = [(-math.inf, math.inf, False), (1000.0, 1000.0, False), (1000.0 + 20 * STEP, 1e9, True)]
    for _ in range(count):
        a, b = sorted(rng.uniform(900, 1000 + 45 * STEP, size=2).tolist())
        if rng.random() < 0.5:  # on the instants themselves, where open and closed ends differ
            a = 1000.0 + STEP * round((a - 1000) / STEP)
        out.append((a, b, bool(rng.random() < 0.5)))
    return out


def grid_of(store: Store, source: str):
    return store._sources[source].grid  # the layout itself is private; tests check it is in use


# -- equivalence on random data --------------------------------------------------------------------------


@pytest.mark.parametrize("order", ["series", "time", "shuffled"])
@pytest.mark.parametrize("seed", range(6))
def test_grid_answers_as_loose_series_do(seed, order):
    points = make_points(seed, order=order)
    grid, loose = stores(points)
    assert grid_of(grid, "backfill") is not None and grid_of(loose, "backfill") is None
    held = model(points)
    matchers_list = [[NAME], [NAME, Matcher("ns", "=", "n1")], [Matcher("pod", "=~", "p00.")]]
    for start, end, left_open in windows(np.random.default_rng(seed)):
        expected = window_of(held, start, end, left_open)
        for matchers in matchers_list:
            got = as_dict(grid.select_batch(matchers, start, end, left_open=left_open))
            want = {
                k: v for k, v in expected.items() if all(m.matches(dict(k).get(m.name, "")) for m in matchers)
            }
            assert got == want
            assert got == as_dict(loose.select_batch(matchers, start, end, left_open=left_open))
        views = grid.select([NAME], start, end, left_open=left_open)
        assert {v.labels: (v.timestamps.tolist(), bits(v.values)) for v in views} == expected
    assert grid.sample_count() == loose.sample_count() == sum(len(v) for v in held.values())
    assert grid.series_count() == loose.series_count() == len(held)


@pytest.mark.parametrize("order", ["series", "time"])
@pytest.mark.parametrize("seed", range(3))
def test_misaligned_series_leave_the_grid_and_still_answer_the_same(seed, order):
    rng = np.random.default_rng(seed)
    points: list[Point] = []
    for s in range(120):  # every series at instants of its own: a grid would be mostly empty
        labels = (("__name__", "x_total"), ("pod", f"p{s:03d}"))
        offset = float(rng.uniform(0, STEP))
        points.extend((labels, 1000.0 + offset + STEP * i, float(i)) for i in range(40))
    if order == "time":
        points.sort(key=lambda p: p[1])
    grid, loose = stores(points)
    table = grid_of(grid, "backfill")
    if order == "time":
        assert table is None  # a new column would have left it mostly empty: dissolved
    else:
        # The first few series made their columns before the grid was big enough to judge; later ones
        # would each have left it mostly empty and went loose. What stays is small.
        assert table is not None and table.ncols * table.used_rows <= 2 * 4096
    held = model(points)
    for start, end, left_open in windows(rng):
        got = as_dict(grid.select_batch([NAME], start, end, left_open=left_open))
        assert got == window_of(held, start, end, left_open)
        assert got == as_dict(loose.select_batch([NAME], start, end, left_open=left_open))
    assert grid.sample_count() == loose.sample_count() == len(points)


def test_a_new_series_that_would_leave_the_grid_mostly_empty_goes_loose_on_its_own():
    aligned = [
        ((("__name__", "x_total"), ("pod", f"p{s}")), 1000.0 + STEP * i, float(i))
        for s in range(60)
        for i in range(100)
    ]
    # Then many series with one point each: rows of the grid would hold one cell in a hundred.
    late = [((("__name__", "x_total"), ("pod", f"late{s}")), 1000.0 + STEP * 99, 7.0) for s in range(200)]
    grid, loose = stores(aligned + late)
    table = grid_of(grid, "backfill")
    assert table is not None and 60 <= table.used_rows < 260
    held = model(aligned + late)
    for start, end, left_open in windows(np.random.default_rng(1)):
        got = as_dict(grid.select_batch([NAME], start, end, left_open=left_open))
        assert got == window_of(held, start, end, left_open)
        assert got == as_dict(loose.select_batch([NAME], start, end, left_open=left_open))


_VALUES = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True), st.just(STALE), st.integers(-5, 5).map(float)
)
_POINTS = st.lists(
    st.tuples(
        st.integers(0, 5),
        st.one_of(st.integers(0, 12).map(lambda i: 100.0 + 10 * i), st.floats(90, 230, allow_nan=False)),
        _VALUES,
    ),
    max_size=80,
)


@settings(max_examples=150, deadline=None)
@given(_POINTS, st.floats(80, 240), st.floats(0, 160), st.booleans())
def test_any_points_in_any_order_answer_the_same(raw, start, width, left_open):
    points = [((("__name__", "x_total"), ("pod", f"p{s}")), ts, value) for s, ts, value in raw]
    grid, loose = stores(points)
    expected = window_of(model(points), start, start + width, left_open)
    got = as_dict(grid.select_batch([NAME], start, start + width, left_open=left_open))
    assert got == expected
    assert got == as_dict(loose.select_batch([NAME], start, start + width, left_open=left_open))


def test_a_point_without_a_usable_timestamp_is_counted_not_stored():
    grid, loose = stores(
        [((("__name__", "x_total"),), math.nan, 1.0), ((("__name__", "x_total"),), 5.0, 2.0)]
    )
    for store in (grid, loose):
        assert store.dropped[DropReason.INVALID] == 1
        assert as_dict(store.select_batch([NAME], 0, 10)) == {
            (("__name__", "x_total"),): ([5.0], bits([2.0]))
        }


# -- limits, expiry, eviction -----------------------------------------------------------------------------


def test_the_oldest_timestamps_go_first_at_the_point_limit():
    points = [
        ((("__name__", "x_total"), ("pod", p)), 1000.0 + STEP * i, float(i)) for p in "abc" for i in range(8)
    ]
    grid, loose = stores(points, max_points_per_series=5)
    for store in (grid, loose):
        got = as_dict(store.select_batch([NAME], 0, 1e9))
        assert all(ts == [1000.0 + STEP * i for i in range(3, 8)] for ts, _ in got.values())
        assert store.dropped[DropReason.POINT_LIMIT] == 9
    # A point older than every column kept, once the grid is full, is the oldest: it is the one dropped.
    grid.add_samples("backfill", [((("__name__", "x_total"), ("pod", "a")), 10.0, 1.0)])
    assert grid.dropped[DropReason.POINT_LIMIT] == 10
    assert as_dict(grid.select_batch([NAME], 0, 1e9)) == as_dict(loose.select_batch([NAME], 0, 1e9))


def test_series_limit_evicts_grid_rows_and_reuses_them():
    points = [
        ((("__name__", "x_total"), ("pod", f"p{s:02d}")), 1000.0 + STEP * i + s, float(i))
        for s in range(30)
        for i in range(3)
    ]
    store = Store(StoreLimits(max_series_per_source=20), clock=lambda: 1.0)
    store.add_samples("backfill", points)  # series by series: p00 holds the oldest points
    assert store.series_count() == 20
    assert store.dropped[DropReason.SOURCE_SERIES_LIMIT] == 10
    got = as_dict(store.select_batch([NAME], 0, 1e9))
    assert sorted(dict(k)["pod"] for k in got) == [f"p{s:02d}" for s in range(10, 30)]  # least recent went
    held = model(points)
    assert got == {k: v for k, v in window_of(held, 0, 1e9, False).items() if k in got}
    table = grid_of(store, "backfill")
    assert table is not None and table.used_rows == 20 and table.rows < 64 + 16


def test_remote_write_series_line_up_and_expire():
    def push(t: float, pods: Sequence[str]) -> Observation:
        samples = tuple(Sample("x_total", (("pod", p),), t, timestamp=t) for p in pods)
        fam = MetricFamily("x", MetricType.COUNTER, samples=samples)
        return Observation(
            ObservationKind.REMOTE_WRITE, "10.0.0.1", t, Outcome.ACCEPTED, Transport("http"), families=(fam,)
        )

    store = Store(StoreLimits(retention=120))
    for i in range(20):
        store.ingest(push(15.0 * i, ["a", "b"] if i < 4 else ["a"]))
    assert grid_of(store, "10.0.0.1") is not None
    got = as_dict(store.select_batch([NAME], 0, 1e9))
    assert [dict(k)["pod"] for k in got] == ["a"]  # b's last point left the retention: expired
    assert got[(("__name__", "x_total"), ("pod", "a"))][0] == [15.0 * i for i in range(20)]
    health = store.source("10.0.0.1")
    assert health is not None and health.samples == 20 and health.series == 1


# -- companions and histograms ----------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(4))
def test_created_in_force_matches_the_loose_layout(seed):
    rng = np.random.default_rng(seed)
    families = []
    for s in range(12):
        labels = (("pod", f"p{s}"),)
        samples = []
        created = 900.0
        for i in range(30):
            t = 1000.0 + STEP * i
            if rng.random() < 0.1:
                created = t - 1  # a restart
            if rng.random() < 0.85:
                samples.append(Sample("x_total", labels, float(i), timestamp=t))
            if rng.random() < 0.6:  # the companion is not always exposed beside the counter
                samples.append(Sample("x_created", labels, created, timestamp=t))
        families.append(MetricFamily("x", MetricType.COUNTER, samples=tuple(samples)))
    grid = Store(clock=lambda: 1.0)
    loose = Store(StoreLimits(grid=False), clock=lambda: 1.0)
    for store in (grid, loose):
        store.add_families("f", families)
    assert grid_of(grid, "f") is not None
    for start, end, left_open in windows(rng):
        a = grid.select_batch([NAME], start, end, left_open=left_open)
        b = loose.select_batch([NAME], start, end, left_open=left_open)
        assert as_dict(a) == as_dict(b)
        mine = {
            v.labels: (v.created, bits(v.created_at) if v.created_at is not None else None) for v in a.views()
        }
        theirs = {
            v.labels: (v.created, bits(v.created_at) if v.created_at is not None else None) for v in b.views()
        }
        assert mine == theirs


def test_a_series_with_native_histograms_leaves_the_grid_alone():
    hist = NativeHistogram(
        schema=0,
        zero_threshold=0.0,
        zero_count=0.0,
        count=3.0,
        sum=4.0,
        positive_spans=(BucketSpan(0, 1),),
        positive_counts=(3.0,),
    )
    plain = [
        Sample("h_count", (("pod", p),), float(i), timestamp=1000.0 + STEP * i)
        for p in "ab"
        for i in range(5)
    ]
    native = [
        Sample("h", (("pod", "n"),), 3.0, timestamp=1000.0 + STEP * i, native_histogram=hist)
        for i in range(5)
    ]
    store = Store(clock=lambda: 1.0)
    store.add_families("f", [MetricFamily("h", MetricType.HISTOGRAM, samples=tuple(plain + native))])
    table = grid_of(store, "f")
    assert table is not None and table.used_rows == 2
    (view,) = store.select([Matcher("__name__", "=", "h")], 0, 1e9)
    assert view.histograms is not None and len(view.histograms) == 5 and view.values.tolist() == [3.0] * 5
    counts = store.select([Matcher("__name__", "=", "h_count")], 1000 + STEP, 1e9)
    assert sorted(v.values.tolist() for v in counts) == [[1.0, 2.0, 3.0, 4.0]] * 2


# -- memory -----------------------------------------------------------------------------------------------


def test_aligned_backfill_costs_about_eight_bytes_a_point():
    points = [
        ((("__name__", "x_total"), ("pod", f"p{s:03d}")), 1000.0 + STEP * i, float(i))
        for s in range(200)
        for i in range(720)
    ]
    grid, loose = stores(points)
    assert grid.sample_count() == loose.sample_count() == 200 * 720
    per_point = grid.memory_bytes() / grid.sample_count()
    assert per_point <= 14 and per_point < loose.memory_bytes() / loose.sample_count()
