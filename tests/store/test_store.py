"""The store: rings, windows, limits and what they drop, churn, cardinality, health, backfill."""

from __future__ import annotations

import math

import numpy as np
import pytest

from promscope.model import BucketSpan, MetricFamily, MetricType, NativeHistogram, Sample
from promscope.observation import Changes, ObservationKind, Outcome
from promscope.store import DropReason, Matcher, Store, StoreLimits
from promscope.store.functions import increase, rate

NAME = Matcher("__name__", "=", "x_total")


def counter(*values: tuple[str, float], name: str = "x") -> MetricFamily:
    """A counter family with one series per ``(pod, value)``."""
    return MetricFamily(
        name,
        MetricType.COUNTER,
        help="h",
        samples=tuple(Sample(f"{name}_total", (("pod", pod),), value) for pod, value in values),
    )


def scrape(store: Store, observe, t: float, *values: tuple[str, float], **kw) -> None:
    store.ingest(observe(t, [counter(*values)], **kw))


def points(store: Store, *matchers: Matcher, start: float = -math.inf, end: float = math.inf):
    return {
        dict(v.labels).get("pod", dict(v.labels)["__name__"]): list(zip(v.timestamps, v.values, strict=True))
        for v in store.select(list(matchers) or [NAME], start, end)
    }


# -- rings and windows -----------------------------------------------------------------------------------


def test_select_returns_points_in_the_window(observe):
    store = Store()
    for i in range(5):
        scrape(store, observe, 100 + 5 * i, ("a", float(i)), ("b", 10.0 + i))
    got = points(store, start=105, end=115)
    assert got == {"a": [(105, 1), (110, 2), (115, 3)], "b": [(105, 11), (110, 12), (115, 13)]}
    assert points(store, start=105.1, end=115)["a"] == [(110, 2), (115, 3)]
    left_open = store.select([NAME], 105, 115, left_open=True)
    assert left_open[0].timestamps.tolist() == [110, 115]
    assert store.select([NAME], 200, 300) == []
    assert store.sample_count() == 10


def test_ring_keeps_retention_over_interval_points(observe):
    store = Store(StoreLimits(retention=30, default_interval=10))
    for i in range(6):
        scrape(store, observe, 10.0 * i, ("a", float(i)))
    assert points(store)["a"] == [(30, 3), (40, 4), (50, 5)]
    assert store.sample_count() == 3


def test_interval_is_inferred_from_the_first_gaps_and_can_be_set(observe):
    store = Store(StoreLimits(retention=60, default_interval=5))
    for i in range(10):
        scrape(store, observe, 20.0 * i, ("a", float(i)))
    health = store.source("http://t/metrics")
    assert health is not None and health.interval == 20
    assert len(points(store)["a"]) == 3  # 60 s at 20 s
    store.set_interval("http://t/metrics", 10)
    for i in range(10, 20):
        scrape(store, observe, 20.0 * i, ("a", float(i)))
    assert len(points(store)["a"]) == 6


def test_a_missing_series_leaves_a_gap_and_real_nan_stays(observe):
    store = Store()
    scrape(store, observe, 1, ("a", 1.0), ("b", 1.0))
    scrape(store, observe, 2, ("a", math.nan))
    scrape(store, observe, 3, ("a", 3.0), ("b", 3.0))
    got = points(store)
    assert got["b"] == [(1, 1), (3, 3)]
    assert [t for t, _ in got["a"]] == [1, 2, 3] and math.isnan(got["a"][1][1])


def test_series_expire_when_their_last_sample_leaves_the_ring(observe):
    store = Store(StoreLimits(retention=40, default_interval=10))
    scrape(store, observe, 0, ("gone", 1.0), ("kept", 1.0))
    for i in range(1, 12):
        scrape(store, observe, 10.0 * i, ("kept", float(i)))
    assert store.series_count() == 1
    assert store.stats().expired_series == 1
    assert store.dropped.total == 0
    assert store.cardinality().labels == {"pod": 1}


def test_out_of_order_and_duplicate_samples_are_counted(observe):
    store = Store()
    scrape(store, observe, 10, ("a", 1.0))
    scrape(store, observe, 10, ("a", 2.0))
    scrape(store, observe, 5, ("a", 2.0))
    assert store.dropped[DropReason.OUT_OF_ORDER] == 2
    scrape(store, observe, 20, ("a", 3.0), ("a", 4.0), ("b", 1.0), ("b", 9.0))
    assert store.dropped[DropReason.DUPLICATE] == 2
    assert points(store) == {"a": [(10, 1), (20, 3)], "b": [(20, 1)]}


# -- matchers --------------------------------------------------------------------------------------------


def test_matchers_follow_promql(observe, family):
    store = Store()
    fam = family(
        "up",
        MetricType.GAUGE,
        [
            ("up", (("job", "api"), ("env", "prod")), 1.0),
            ("up", (("job", "api-canary"), ("env", "prod")), 1.0),
            ("up", (("job", "db"),), 0.0),
        ],
    )
    store.ingest(observe(1, [fam]))

    def jobs(*matchers: Matcher) -> list[str]:
        return sorted(dict(v.labels)["job"] for v in store.select(list(matchers), 0, 2))

    up = Matcher("__name__", "=", "up")
    assert jobs(up, Matcher("job", "=~", "api")) == ["api"]  # anchored
    assert jobs(up, Matcher("job", "=~", "api.*")) == ["api", "api-canary"]
    assert jobs(up, Matcher("job", "!~", "api.*")) == ["db"]
    assert jobs(up, Matcher("env", "=", "")) == ["db"]  # a missing label is ""
    assert jobs(up, Matcher("env", "!=", "prod")) == ["db"]
    assert jobs(Matcher("__name__", "=~", "u.")) == ["api", "api-canary", "db"]
    assert store.label_sets([Matcher("job", "=", "db")]) == [(("__name__", "up"), ("job", "db"))]
    with pytest.raises(ValueError):
        Matcher("job", "~", "x")


def test_labels_in_a_different_order_are_one_series(observe, family):
    store = Store()
    store.ingest(observe(1, [family("m", MetricType.GAUGE, [("m", (("a", "1"), ("b", "2")), 1.0)])]))
    store.ingest(observe(2, [family("m", MetricType.GAUGE, [("m", (("b", "2"), ("a", "1")), 2.0)])]))
    views = store.select([Matcher("__name__", "=", "m")], 0, 3)
    assert len(views) == 1 and views[0].values.tolist() == [1, 2]
    assert views[0].labels == (("__name__", "m"), ("a", "1"), ("b", "2"))


# -- limits ----------------------------------------------------------------------------------------------


def test_source_series_limit_evicts_the_least_recently_seen(observe):
    store = Store(StoreLimits(max_series_per_source=3))
    scrape(store, observe, 1, ("old", 1.0))
    scrape(store, observe, 2, ("a", 1.0), ("b", 1.0))
    scrape(store, observe, 3, ("a", 2.0), ("b", 2.0), ("new", 1.0))
    assert sorted(points(store)) == ["a", "b", "new"]
    assert store.dropped[DropReason.SOURCE_SERIES_LIMIT] == 1
    assert store.series_count() == 3


def test_one_observation_over_the_limit_refuses_the_rest(observe):
    store = Store(StoreLimits(max_series_per_source=2))
    scrape(store, observe, 1, ("a", 1.0), ("b", 1.0), ("c", 1.0), ("d", 1.0))
    assert sorted(points(store)) == ["a", "b"]
    assert store.dropped[DropReason.SERIES_REFUSED] == 2


def test_store_wide_limit_evicts_across_sources(observe):
    store = Store(StoreLimits(max_series=3))
    scrape(store, observe, 1, ("a", 1.0), ("b", 1.0), source="s1")
    scrape(store, observe, 2, ("c", 1.0), source="s2")
    scrape(store, observe, 3, ("d", 1.0), source="s2")
    assert store.series_count() == 3
    assert store.dropped[DropReason.SERIES_LIMIT] == 1
    assert sorted(points(store)) == ["b", "c", "d"] or sorted(points(store)) == ["a", "c", "d"]


def test_source_limit_evicts_the_least_recently_seen_source(observe):
    store = Store(StoreLimits(max_sources=2))
    scrape(store, observe, 1, ("a", 1.0), source="s1")
    scrape(store, observe, 2, ("b", 1.0), source="s2")
    scrape(store, observe, 3, ("c", 1.0), source="s3")
    assert [h.source for h in store.sources()] == ["s2", "s3"]
    assert store.dropped[DropReason.SOURCE_LIMIT] == 1
    assert store.series_count() == 2


def test_event_log_is_bounded_and_holds_no_families(observe):
    store = Store(StoreLimits(max_events=3))
    for i in range(5):
        scrape(store, observe, float(i), ("a", 1.0))
    events = store.events()
    assert [e.time for e in events] == [2, 3, 4]
    assert all(e.families == () for e in events)
    assert store.dropped[DropReason.EVENT_LIMIT] == 2
    assert store.dropped.as_dict() == {"event_limit": 2}


def test_rows_are_reused_after_eviction(observe):
    store = Store(StoreLimits(max_series_per_source=2))
    for i in range(50):
        scrape(store, observe, float(i), (f"p{i}", 1.0))
    assert store.series_count() == 2
    assert store.dropped[DropReason.SOURCE_SERIES_LIMIT] == 48
    assert points(store, start=48) == {"p48": [(48, 1)], "p49": [(49, 1)]}


# -- health, churn, cardinality --------------------------------------------------------------------------


def test_health_counts_failures_and_stores_only_report_series(observe, family):
    store = Store()
    scrape(store, observe, 1, ("a", 1.0))
    up = family("up", MetricType.GAUGE, [("up", (), 0.0)])
    store.ingest(observe(2, [up, counter(("a", 5.0))], outcome=Outcome.FAILED, message="connection refused"))
    store.ingest(observe(3, [up], outcome=Outcome.REJECTED))
    health = store.source("http://t/metrics")
    assert health is not None
    assert health.consecutive_failures == 2 and health.last_success == 1
    assert health.last_outcome is Outcome.REJECTED and health.observations == 3
    assert health.outcomes == {"accepted": 1, "failed": 1, "rejected": 1}
    assert [o for _, o in health.history] == [Outcome.ACCEPTED, Outcome.FAILED, Outcome.REJECTED]
    assert points(store)["a"] == [(1, 1)]  # the failed scrape's samples were not stored
    assert points(store, Matcher("__name__", "=", "up"))["up"] == [(2, 0), (3, 0)]
    scrape(store, observe, 4, ("a", 2.0))
    health = store.source("http://t/metrics")
    assert health is not None and health.consecutive_failures == 0


def test_churn_between_observations(observe):
    store = Store()
    scrape(store, observe, 1, ("a", 1.0), ("b", 1.0))
    assert store.churn("http://t/metrics") == []  # the first observation is the baseline
    scrape(store, observe, 2, ("b", 1.0), ("c", 1.0), ("d", 1.0))
    (point,) = store.churn("http://t/metrics")
    assert (point.added, point.removed, point.series) == (2, 1, 3)
    assert {dict(labels)["pod"] for labels in point.added_examples} == {"c", "d"}
    assert [dict(labels)["pod"] for labels in point.removed_examples] == ["a"]
    store.ingest(observe(3, [], outcome=Outcome.FAILED))
    assert len(store.churn("http://t/metrics")) == 1  # failures are not churn
    scrape(store, observe, 4, ("b", 1.0), ("c", 1.0), ("d", 1.0))
    assert store.churn("http://t/metrics")[-1].added == 0


def test_churn_of_a_push_comes_from_its_changes(observe):
    store = Store()
    kind = ObservationKind.PUSHGATEWAY
    scrape(store, observe, 1, ("a", 1.0), kind=kind, source="job=batch")
    obs = observe(2, [counter(("a", 2.0))], kind=kind, source="job=batch")
    from dataclasses import replace

    store.ingest(replace(obs, changes=Changes(series_added=4, series_removed=1)))
    (point,) = store.churn("job=batch")
    assert (point.added, point.removed) == (4, 1)


def test_cardinality_per_family_and_label_over_time(observe, family):
    store = Store(StoreLimits(cardinality_step=10))
    for i in range(4):
        pods = [(f"p{j}", 1.0) for j in range(i + 1)]
        scrape(store, observe, 10.0 * i, *pods)
    card = store.cardinality()
    assert card.families == {"x": 4} and card.labels == {"pod": 4}
    assert store.family_label_cardinality("x") == {"pod": 4}
    assert store.cardinality_history(family="x") == [(0, 1), (10, 2), (20, 3), (30, 4)]
    assert store.cardinality_history(label="pod")[-1] == (30, 4)
    assert store.cardinality_history(family="nope") == [(0, 0), (10, 0), (20, 0), (30, 0)]
    with pytest.raises(ValueError):
        store.cardinality_history()


def test_metadata_by_family_and_sample_name(observe, family):
    store = Store()
    hist = MetricFamily(
        "rpc_seconds",
        MetricType.HISTOGRAM,
        help="RPC latency",
        unit="seconds",
        samples=(
            Sample("rpc_seconds_bucket", (("le", "+Inf"),), 3.0),
            Sample("rpc_seconds_count", (), 3.0),
        ),
    )
    store.ingest(observe(1, [hist]))
    meta = store.metadata("rpc_seconds_bucket")
    assert meta is not None and (meta.type, meta.help, meta.unit) == (
        MetricType.HISTOGRAM,
        "RPC latency",
        "seconds",
    )
    assert store.metadata("rpc_seconds") == meta
    assert list(store.families()) == ["rpc_seconds"]
    assert store.names() == ["rpc_seconds_bucket", "rpc_seconds_count"]


# -- _created and native histograms ----------------------------------------------------------------------


def test_created_travels_with_the_counter_and_marks_resets(observe):
    store = Store()

    def counter_with_created(t: float, value: float, created: float) -> None:
        fam = MetricFamily(
            "x",
            MetricType.COUNTER,
            samples=(
                Sample("x_total", (("pod", "a"),), value),
                Sample("x_created", (("pod", "a"),), created),
            ),
        )
        store.ingest(observe(t, [fam]))

    counter_with_created(10, 5, 1)
    counter_with_created(20, 6, 1)
    counter_with_created(30, 8, 25)  # restarted at 25, already above the old value
    counter_with_created(40, 9, 25)
    (view,) = store.select([NAME], 10, 40)
    assert view.created == 25 and view.created_at is not None
    assert view.created_at.tolist() == [1, 1, 25, 25]
    batch = store.select_batch([NAME], 10, 40)
    assert increase(batch, 10, 40).values[0] == pytest.approx(10)


def test_native_histograms_are_kept_per_point(observe):
    store = Store()
    for i in range(3):
        h = NativeHistogram(0, 0.0, 0.0, 10.0 * (i + 1), 1.0, (BucketSpan(1, 1),), (10.0 * (i + 1),))
        fam = MetricFamily(
            "lat", MetricType.HISTOGRAM, samples=(Sample("lat", (), h.count, native_histogram=h),)
        )
        store.ingest(observe(10.0 * i, [fam]))
    (view,) = store.select([Matcher("__name__", "=", "lat")], 5, 30)
    assert view.values.tolist() == [20, 30]
    assert view.histograms is not None and [h.count for h in view.histograms] == [20, 30]


# -- sources with their own timestamps, and backfill -----------------------------------------------------


def test_remote_write_points_keep_their_timestamps(observe):
    store = Store()
    fam = MetricFamily(
        "x",
        MetricType.COUNTER,
        samples=(
            Sample("x_total", (("pod", "a"),), 1.0, timestamp=5.0),
            Sample("x_total", (("pod", "a"),), 2.0, timestamp=6.0),
            Sample("x_total", (("pod", "b"),), 7.0),
        ),
    )
    store.ingest(observe(100, [fam], kind=ObservationKind.REMOTE_WRITE, source="10.0.0.1"))
    assert points(store) == {"a": [(5, 1), (6, 2)], "b": [(100, 7)]}


def test_add_samples_loads_points_as_they_are():
    store = Store(StoreLimits(max_points_per_series=4), clock=lambda: 1000.0)
    stored = store.add_samples(
        "file.om",
        [
            ({"__name__": "c_total", "job": "a"}, 30.0, 3.0),
            ({"__name__": "c_total", "job": "a"}, 10.0, 10.0),
            ((("__name__", "c_total"), ("job", "a")), 20.0, 2.0),  # the counter goes down: kept
            ({"__name__": "c_total", "job": "a"}, 20.0, 5.0),  # same timestamp: the last wins
            ({"job": "no-name"}, 1.0, 1.0),
        ],
    )
    assert stored == 4
    (view,) = store.select([Matcher("__name__", "=", "c_total")], 0, 100)
    assert view.timestamps.tolist() == [10, 20, 30] and view.values.tolist() == [10, 5, 3]
    assert store.dropped[DropReason.INVALID] == 1
    store.add_samples(
        "file.om", [({"__name__": "c_total", "job": "a"}, float(t), 1.0) for t in range(40, 100, 10)]
    )
    (view,) = store.select([Matcher("__name__", "=", "c_total")], 0, 100)
    assert view.timestamps.tolist() == [60, 70, 80, 90]
    assert store.dropped[DropReason.POINT_LIMIT] > 0
    health = store.source("file.om")
    assert health is not None and health.kind is None


def test_add_families_keeps_metadata_and_default_time():
    store = Store(clock=lambda: 50.0)
    fam = MetricFamily(
        "g",
        MetricType.GAUGE,
        help="a gauge",
        samples=(Sample("g", (), 1.0, timestamp=10.0), Sample("g", (("k", "v"),), 2.0)),
    )
    assert store.add_families("f", [fam], default_time=20.0) == 2
    got = {v.labels: v.timestamps.tolist() for v in store.select([Matcher("__name__", "=", "g")], 0, 100)}
    assert got == {(("__name__", "g"),): [10.0], (("__name__", "g"), ("k", "v")): [20.0]}
    meta = store.metadata("g")
    assert meta is not None and meta.help == "a gauge"


def test_remove_source_forgets_its_series(observe):
    store = Store()
    scrape(store, observe, 1, ("a", 1.0))
    assert store.remove_source("http://t/metrics") and not store.remove_source("nope")
    assert store.series_count() == 0 and store.select([NAME], 0, 10) == []
    assert store.cardinality().families == {}


# -- batches and memory ----------------------------------------------------------------------------------


def test_select_batch_feeds_the_vectorised_functions(observe):
    store = Store()
    for i in range(13):
        scrape(store, observe, 5.0 * i, *[(f"p{j}", float(i * (j + 1))) for j in range(50)])
    batch = store.select_batch([NAME], 0, 60, left_open=True)
    assert len(batch) == 50 and batch.counts.tolist() == [12] * 50
    result = rate(batch, 0, 60)
    for i, labels in enumerate(batch.labels):
        j = int(dict(labels)["pod"][1:])
        assert result.values[i] == pytest.approx((j + 1) / 5)
    assert batch.view(0).source == "http://t/metrics"


def test_memory_is_typed_arrays_not_objects(observe):
    store = Store(StoreLimits(retention=600, default_interval=5))
    pods = [(f"p{j}", 1.0) for j in range(500)]
    for i in range(120):
        scrape(store, observe, 5.0 * i, *pods)
    assert store.sample_count() == 120 * 500
    per_sample = store.memory_bytes() / store.sample_count()
    assert 8 <= per_sample <= 20
    stats = store.stats()
    assert stats.series == 500 and stats.sources == 1 and stats.families == 1


def test_the_store_is_an_observation_sink(observe):
    store = Store()
    store(observe(1, [counter(("a", 1.0))]))
    assert store.series_count() == 1
    assert isinstance(store.select_batch([NAME], 0, 2).values, np.ndarray)


def test_the_event_log_is_a_push_log(observe):
    from promscope.receive.log import PushLog

    store = Store()
    scrape(store, observe, 1, ("a", 1.0))
    log = store.event_log
    assert isinstance(log, PushLog)
    stats = log.source("http://t/metrics")
    assert stats is not None and stats.last_seen == 1


def test_a_repeated_shape_is_stored_exactly_as_a_full_lookup_stores_it(observe):
    """The shape cache (same series as last time: the same rows) changes nothing that is stored."""
    pods = [("a", "b", "c"), ("a", "b", "c"), ("a", "a", "b", "c"), ("a", "a", "b", "c"), ("a", "b", "d")]
    pods += [("a", "b", "d"), ("e", "f", "g"), ("e", "f", "g"), ("a", "b", "c"), ("a", "b", "c")]
    limits = StoreLimits(max_series_per_source=4)
    fast, slow = Store(limits), Store(limits)
    for step, names in enumerate(pods):
        families = [counter(*((pod, float(step * 10 + i)) for i, pod in enumerate(names)))]
        for store in (fast, slow):
            for src in store._sources.values():
                if store is slow:
                    src.shape = None
            store.ingest(observe(100 + 5 * step, families))
    assert next(iter(fast._sources.values())).shape is not None
    assert points(fast) == points(slow)
    assert fast.dropped.as_dict() == slow.dropped.as_dict()
    assert fast.churn("http://t/metrics") == slow.churn("http://t/metrics")
    assert fast.series_count() == slow.series_count()
