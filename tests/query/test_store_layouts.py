"""The engine gives the same answers over every layout of the store as over a SeriesSet.

Random series (starting and stopping mid-way, with gaps, NaN, Prometheus's
stale marker, points written twice, loaded out of order) go into a
:class:`~promscope.query.SeriesSet`, a :class:`~promscope.store.Store`
backfilled with ``add_samples`` (its shared-timestamp grid), one with
``StoreLimits(grid=False)`` (one loose series each), and, where every point is
at a scrape's instant, one fed scrape observations through ``Store.ingest``
(its column ring). Every expression must agree at every instant: the same
label sets, values bit for bit (a sum over series in another order within
a relative 1e-12).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np
import pytest

from promscope.model import MetricFamily, MetricType, Sample
from promscope.observation import Observation, ObservationKind, Outcome, Transport
from promscope.query import Engine, SeriesSet
from promscope.store import Store, StoreLimits

STALE = float(np.array([0x7FF0_0000_0000_0002], np.uint64).view(np.float64)[0])
T0 = 1_700_000_000.0
STEP = 15.0
INSTANTS = 60

EXPRESSIONS = [
    "x_total",
    "x_total offset 1m",
    "rate(x_total[2m])",
    "irate(x_total[1m])",
    "increase(x_total[5m])",
    "delta(x_total[3m])",
    "deriv(x_total[3m])",
    "avg_over_time(x_total[4m])",
    "max_over_time(x_total[4m])",
    "count_over_time(x_total[4m])",
    "sum by (ns) (rate(x_total[5m]))",
    "count without (pod) (x_total)",
    "topk(3, x_total)",
]

Triple = tuple[dict[str, str], float, float]


def make(seed: int, *, messy: bool) -> list[Triple]:
    rng = np.random.default_rng(seed)
    out: list[Triple] = []
    for s in range(40):
        labels = {"__name__": "x_total", "pod": f"p{s:02d}", "ns": f"n{s % 4}"}
        first = int(rng.integers(0, INSTANTS // 2))
        last = int(rng.integers(INSTANTS // 2, INSTANTS + 1))
        value = float(rng.uniform(0, 100))
        for i in range(first, last):
            if messy and rng.random() < 0.1:
                continue
            value += float(rng.uniform(0, 10))
            if rng.random() < 0.03:
                value = float(rng.uniform(0, 3))  # a reset
            point = value
            if messy:
                roll = rng.random()
                point = STALE if roll < 0.04 else math.nan if roll < 0.06 else value
            out.append((labels, T0 + STEP * i, point))
            if messy and rng.random() < 0.05:
                out.append((labels, T0 + STEP * i, value + 1))  # written again: the last one wins
    if messy:  # out of order, each rewrite still after what it overwrites
        order = np.argsort(rng.random(len(out)), kind="stable")
        positions: dict[tuple[str, float], list[int]] = {}
        for index in order.tolist():
            labels, ts, _ = out[index]
            positions.setdefault((labels["pod"], ts), []).append(index)
        slots = {key: sorted(found) for key, found in positions.items()}
        shuffled: list[Triple] = []
        taken: dict[tuple[str, float], int] = {}
        for index in order.tolist():
            labels, ts, _ = out[index]
            key = (labels["pod"], ts)
            k = taken.get(key, 0)
            taken[key] = k + 1
            shuffled.append(out[slots[key][k]])
        out = shuffled
    return out


def scraped(points: Iterable[Triple]) -> Store:
    by_time: dict[float, list[Sample]] = {}
    for labels, ts, value in points:
        pairs = tuple((k, v) for k, v in sorted(labels.items()) if k != "__name__")
        by_time.setdefault(ts, []).append(Sample("x_total", pairs, value))
    store = Store()
    store.set_interval("http://t/metrics", STEP)
    for ts in sorted(by_time):
        fam = MetricFamily("x", MetricType.COUNTER, samples=tuple(by_time[ts]))
        store.ingest(
            Observation(
                ObservationKind.SCRAPE,
                "http://t/metrics",
                ts,
                Outcome.ACCEPTED,
                Transport("http"),
                families=(fam,),
            )
        )
    return store


def answers(engine: Engine, expr: str, at: float) -> dict[object, float]:
    return {s.labels: s.value for s in engine.instant(expr, at).series}


def same(a: dict[object, float], b: dict[object, float], exact: bool) -> bool:
    if a.keys() != b.keys():
        return False
    for key, x in a.items():
        y = b[key]
        if np.float64(x).view(np.uint64) == np.float64(y).view(np.uint64):
            continue
        if exact or not (math.isfinite(x) and math.isclose(x, y, rel_tol=1e-12)):
            return False
    return True


def backfilled(points: list[Triple], **limits: object) -> Store:
    store = Store(StoreLimits(**limits), clock=lambda: T0)  # type: ignore[arg-type]
    store.add_samples("file", points)
    return store


@pytest.mark.parametrize("compat", ["2", "3"])
@pytest.mark.parametrize(("seed", "messy"), [(0, True), (1, True), (2, False), (3, False)])
def test_every_store_layout_answers_as_the_series_set(seed, messy, compat):
    points = make(seed, messy=messy)
    sources: dict[str, object] = {
        "grid": backfilled(points),
        "per-series": backfilled(points, grid=False),
    }
    if not messy:
        sources["scraped"] = scraped(points)
    reference = Engine(SeriesSet.from_samples(points), compat=compat)
    engines = {name: Engine(source, compat=compat) for name, source in sources.items()}  # type: ignore[arg-type]
    for at in (T0 + STEP * i + shift for i in (3, 20, 31, 45, 59, 70) for shift in (0.0, 7.5)):
        for expr in EXPRESSIONS:
            want = answers(reference, expr, at)
            for name, engine in engines.items():
                exact = not expr.startswith(("sum", "count"))
                assert same(answers(engine, expr, at), want, exact), (name, expr, at)
