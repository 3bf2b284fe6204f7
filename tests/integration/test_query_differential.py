"""promscope's PromQL engine against a real Prometheus on the same samples.

One OpenMetrics backfill (counters with resets, gauges that go negative,
classic histograms, a series that stops early) is generated with
timestamps, turned into TSDB blocks by ``promtool tsdb create-blocks-from
openmetrics`` and served by ``/usr/bin/prometheus``; the same file is parsed
by promscope and loaded into a :class:`~promscope.query.SeriesSet`. Every
expression of the table is asked of both at several instants
(``/api/v1/query?time=``) and the answers must agree: the same label sets,
values within a relative 1e-6 (NaN equal to NaN, infinities by sign).
A few range queries compare ``/api/v1/query_range`` matrices the same way.

Marked ``integration`` (the directory) and ``slow``.
"""

from __future__ import annotations

import math
import random
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from promscope.exposition import parse
from promscope.query import Engine, SeriesSet

if TYPE_CHECKING:
    from tests.conftest import BinaryRunner, RunningBinary

pytestmark = pytest.mark.slow

PROMTOOL = "/usr/bin/promtool"
PROMETHEUS = "/usr/bin/prometheus"
STEP = 15
POINTS = 3 * 3600 // STEP  # three hours at 15 s
BUCKETS = ("0.05", "0.1", "0.25", "0.5", "1.0", "2.5", "+Inf")
NAMESPACES = ("ns0", "ns1", "ns2")


def generate(end: int, seed: int = 7) -> tuple[str, int]:
    """An OpenMetrics backfill ending at ``end`` (seconds); returns the text and its first timestamp."""
    rng = random.Random(seed)
    start = end - (POINTS - 1) * STEP
    times = [start + i * STEP for i in range(POINTS)]
    lines: list[str] = []

    lines.append("# TYPE demo_requests counter")
    for ns in NAMESPACES:
        for instance in range(10):
            for code in ("200", "500"):
                value = rng.uniform(0, 1000)
                speed = rng.uniform(0.1, 20) if code == "200" else rng.uniform(0, 2)
                labels = f'code="{code}",instance="i{instance}",namespace="{ns}"'
                for t in times:
                    if rng.random() < 0.004:  # a restart: the counter starts again
                        value = rng.uniform(0, 5)
                    else:
                        value += speed * STEP * rng.uniform(0.5, 1.5)
                    lines.append(f"demo_requests_total{{{labels}}} {value!r} {t}")

    lines.append("# TYPE demo_temperature gauge")
    for ns in NAMESPACES:
        for instance in range(10):
            value = rng.uniform(-10, 40)
            labels = f'instance="i{instance}",namespace="{ns}"'
            # i9 stops reporting an hour before the end: instant selectors must lose it after 5 minutes.
            last = times[-240] if instance == 9 else times[-1]
            for t in times:
                if t > last:
                    break
                value += rng.gauss(0, 1.5)
                lines.append(f"demo_temperature{{{labels}}} {value!r} {t}")

    lines.append("# TYPE demo_up gauge")
    for ns in NAMESPACES:
        labels = f'namespace="{ns}"'
        for t in times:
            lines.append(f"demo_up{{{labels}}} {1 if rng.random() < 0.9 else 0} {t}")

    lines.append("# TYPE demo_latency_seconds histogram")
    for ns in NAMESPACES:
        for instance in range(5):
            labels = f'instance="i{instance}",namespace="{ns}"'
            counts = [0.0] * len(BUCKETS)
            total = 0.0
            for t in times:
                for _ in range(rng.randint(0, 40)):
                    observed = rng.expovariate(3.0)
                    total += observed
                    for i, bound in enumerate(BUCKETS):
                        if observed <= float(bound):
                            counts[i] += 1
                for bound, count in zip(BUCKETS, counts, strict=True):
                    lines.append(f'demo_latency_seconds_bucket{{{labels},le="{bound}"}} {count!r} {t}')
                lines.append(f"demo_latency_seconds_count{{{labels}}} {counts[-1]!r} {t}")
                lines.append(f"demo_latency_seconds_sum{{{labels}}} {total!r} {t}")
    lines.append("# EOF")
    return "\n".join(lines) + "\n", start


EXPRESSIONS = [
    # selectors, matchers, offset
    "demo_requests_total",
    'demo_requests_total{code="500"}',
    'demo_requests_total{code!="200", namespace=~"ns[01]"}',
    '{__name__=~"demo_temp.*", namespace!~"ns2"}',
    "demo_temperature offset 10m",
    "demo_temperature",
    # range functions
    "rate(demo_requests_total[5m])",
    "rate(demo_requests_total[5m] offset 30m)",
    "irate(demo_requests_total[2m])",
    "increase(demo_requests_total[10m])",
    "delta(demo_temperature[10m])",
    "deriv(demo_temperature[10m])",
    "avg_over_time(demo_temperature[10m])",
    "min_over_time(demo_temperature[10m])",
    "max_over_time(demo_temperature[10m])",
    "sum_over_time(demo_temperature[10m])",
    "count_over_time(demo_temperature[10m])",
    "histogram_quantile(0.9, sum by (le, namespace) (rate(demo_latency_seconds_bucket[5m])))",
    "histogram_quantile(0.5, rate(demo_latency_seconds_bucket[10m]))",
    "histogram_quantile(0.99, demo_latency_seconds_bucket)",
    # aggregations
    "sum(rate(demo_requests_total[5m]))",
    "sum by (namespace) (rate(demo_requests_total[5m]))",
    "sum without (instance) (rate(demo_requests_total[5m]))",
    "sum(demo_requests_total) by (namespace, code)",
    "avg by (namespace) (demo_temperature)",
    "min by (namespace) (demo_temperature)",
    "max without (instance) (demo_temperature)",
    "count by (code) (demo_requests_total)",
    "count(demo_temperature)",
    "topk(3, demo_temperature)",
    "bottomk by (namespace) (2, demo_temperature)",
    "topk(2, rate(demo_requests_total[5m])) by (code)",
    # arithmetic and comparisons
    "demo_temperature * 2 + 1",
    "-demo_temperature",
    "demo_temperature % 7",
    "demo_temperature ^ 2",
    "2 ^ 3 ^ 2 - 10 / 4",
    "1 + 2 * 3 ^ 2",
    "(1 + 2) * -3",
    "5 % 3 >= bool 2",
    "demo_temperature > 20",
    "demo_temperature > bool 20",
    "20 < demo_temperature",
    "demo_temperature != 0",
    'demo_requests_total{code="500"} / ignoring(code) demo_requests_total{code="200"}',
    'rate(demo_requests_total{code="500"}[5m])'
    ' / on(namespace, instance) rate(demo_requests_total{code="200"}[5m])',
    'demo_requests_total{code="500"} > on(namespace, instance) demo_requests_total{code="200"}',
    "demo_temperature - demo_temperature offset 5m",
    "demo_up == bool on(namespace) demo_up",
    # set operators
    'demo_requests_total and demo_requests_total{code="500"}',
    "demo_temperature or demo_up",
    'demo_requests_total unless on(namespace) demo_temperature{namespace="ns0"}',
    "demo_temperature and on(namespace) (demo_up == 1)",
    # functions
    "abs(demo_temperature)",
    "ceil(demo_temperature)",
    "floor(demo_temperature)",
    "round(demo_temperature)",
    "round(demo_temperature, 0.5)",
    "clamp_min(demo_temperature, 0)",
    "clamp_max(demo_temperature, 10)",
    "sqrt(abs(demo_temperature))",
    "scalar(sum(demo_up)) * demo_temperature",
    "scalar(demo_up)",
    "vector(1) + 1",
    "time() - 60",
    "sum(demo_up) + time() * 0",
]


def _sample_key(metric: dict[str, str]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(metric.items()))


def _close(a: str, b: str) -> bool:
    x, y = float(a), float(b)
    if math.isnan(x) or math.isnan(y):
        return math.isnan(x) and math.isnan(y)
    if math.isinf(x) or math.isinf(y):
        return x == y
    return math.isclose(x, y, rel_tol=1e-6, abs_tol=1e-9)


def _compare(expr: str, at: float, ours: dict[str, Any], theirs: dict[str, Any]) -> list[str]:
    where = f"{expr!r} at {at}"
    if ours["resultType"] != theirs["resultType"]:
        return [f"{where}: result type {ours['resultType']} != Prometheus's {theirs['resultType']}"]
    kind = ours["resultType"]
    if kind in ("scalar", "string"):
        same = _close(ours["result"][1], theirs["result"][1]) if kind == "scalar" else ours == theirs
        return [] if same else [f"{where}: {ours['result']} != Prometheus's {theirs['result']}"]
    field = "value" if kind == "vector" else "values"
    mine = {_sample_key(s["metric"]): s[field] for s in ours["result"]}
    peer = {_sample_key(s["metric"]): s[field] for s in theirs["result"]}
    problems: list[str] = []
    for key in sorted(set(mine) ^ set(peer)):
        side = "only promscope" if key in mine else "only Prometheus"
        problems.append(f"{where}: {side} has {dict(key)}")
    for key in sorted(set(mine) & set(peer)):
        a, b = mine[key], peer[key]
        pairs = [(a, b)] if kind == "vector" else list(zip(a, b, strict=False))
        if kind == "matrix" and len(a) != len(b):
            problems.append(f"{where}: {dict(key)} has {len(a)} points, Prometheus {len(b)}")
        for (ta, va), (tb, vb) in pairs:
            if float(ta) != float(tb) or not _close(va, vb):
                problems.append(f"{where}: {dict(key)} = {va}@{ta}, Prometheus {vb}@{tb}")
                break
    return problems


@pytest.fixture(scope="module")
def backfill(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, int, int]:
    """The OpenMetrics file, the TSDB directory promtool made of it, and its first and last timestamps."""
    import time

    from tests.conftest import skip_or_fail_missing

    skip_or_fail_missing(PROMTOOL)
    skip_or_fail_missing(PROMETHEUS)
    base = tmp_path_factory.mktemp("query-differential")
    # End on a 15 s boundary an hour ago: recent enough for the default retention, whole blocks behind us.
    end = (int(time.time()) - 3600) // STEP * STEP
    text, start = generate(end)
    om = base / "backfill.om"
    om.write_text(text, encoding="utf-8")
    tsdb = base / "tsdb"
    tsdb.mkdir()
    done = subprocess.run(
        [PROMTOOL, "tsdb", "create-blocks-from", "openmetrics", str(om), str(tsdb)],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, f"promtool failed:\n{done.stdout}\n{done.stderr}"
    return om, tsdb, start, end


@pytest.fixture(scope="module")
def prometheus(backfill: tuple[Path, Path, int, int], run_binary_session: BinaryRunner) -> RunningBinary:
    _, tsdb, _, _ = backfill
    config = tsdb.parent / "prometheus.yml"
    config.write_text("global:\n  scrape_interval: 1h\nscrape_configs: []\n", encoding="utf-8")
    return run_binary_session(
        PROMETHEUS,
        f"--config.file={config}",
        f"--storage.tsdb.path={tsdb}",
        "--storage.tsdb.retention.time=30d",
        "--web.listen-address={address}",
        ready_path="/-/ready",
        timeout=60,
    )


@pytest.fixture(scope="module")
def engine(backfill: tuple[Path, Path, int, int]) -> Engine:
    om, _, _, end = backfill
    result = parse(om.read_bytes(), format="openmetrics", semantics=False)
    assert not result.errors(), result.errors()[:3]
    return Engine(SeriesSet.from_families(result.families, default_time=end), compat="2")


@pytest.fixture(scope="module")
def api(prometheus: RunningBinary) -> Iterator[httpx.Client]:
    """One keep-alive client for the few hundred queries."""
    with httpx.Client(base_url=prometheus.url("/"), timeout=30) as client:
        yield client


def _ask(api: httpx.Client, path: str, params: dict[str, str]) -> dict[str, Any]:
    response = api.get(path, params=params)
    body = response.json()
    assert body["status"] == "success", f"{params}: {body}"
    data: dict[str, Any] = body["data"]
    return data


def _instants(start: int, end: int) -> list[float]:
    return [
        float(end),
        end - 37 * 60 + 7.5,  # between samples
        float(end - 30 * 60),  # i9 gone for half an hour: instant selectors miss it, [10m] windows too
        end - 60 * 60 + 120.0,  # two minutes after i9's last sample: still within the lookback
        float(start + 90 * 60),
        float(start + 4 * 60),  # windows reaching before the first sample
    ]


def test_instant_queries_agree_with_prometheus(
    backfill: tuple[Path, Path, int, int], api: httpx.Client, engine: Engine
) -> None:
    _, _, start, end = backfill
    problems: list[str] = []
    answered = 0
    for expr in EXPRESSIONS:
        for at in _instants(start, end):
            theirs = _ask(api, "/api/v1/query", {"query": expr, "time": repr(at)})
            ours = engine.instant(expr, at).data()
            problems += _compare(expr, at, ours, theirs)
            answered += theirs["resultType"] in ("scalar", "string") or bool(theirs["result"])
    # The table is only a test when the answers hold something: nearly every pair must be non-empty.
    assert answered >= len(EXPRESSIONS) * 6 * 0.9, answered
    assert not problems, f"{len(problems)} differences:\n" + "\n".join(problems[:40])


RANGE_EXPRESSIONS = [
    "sum by (namespace) (rate(demo_requests_total[5m]))",
    "demo_temperature > 25",
    "max_over_time(demo_temperature[5m]) - min_over_time(demo_temperature[5m])",
    "topk(2, demo_temperature)",
    "histogram_quantile(0.9, sum by (le) (rate(demo_latency_seconds_bucket[5m])))",
    "time() - 1",
    "demo_temperature or demo_up",
]


def test_range_queries_agree_with_prometheus(
    backfill: tuple[Path, Path, int, int], api: httpx.Client, engine: Engine
) -> None:
    _, _, _, end = backfill
    begin, finish, step = float(end - 75 * 60), float(end - 45 * 60), 60.0
    problems: list[str] = []
    for expr in RANGE_EXPRESSIONS:
        theirs = _ask(
            api,
            "/api/v1/query_range",
            {"query": expr, "start": repr(begin), "end": repr(finish), "step": repr(step)},
        )
        ours = engine.range(expr, begin, finish, step).data()
        problems += _compare(expr, begin, ours, theirs)
    assert not problems, f"{len(problems)} differences:\n" + "\n".join(problems[:40])


@pytest.mark.parametrize(
    ("expr", "fragment"),
    [
        ('demo_requests_total / ignoring(code) demo_requests_total{code="500"}', "many-to-one matching"),
        ('demo_requests_total{code="500"} / on(namespace) demo_requests_total', "duplicate series"),
    ],
)
def test_matching_errors_agree_with_prometheus(
    backfill: tuple[Path, Path, int, int], prometheus: RunningBinary, engine: Engine, expr: str, fragment: str
) -> None:
    from promscope.query import QueryError

    _, _, _, end = backfill
    response = httpx.get(
        prometheus.url("/api/v1/query"), params={"query": expr, "time": str(end)}, timeout=30
    )
    body = response.json()
    assert body["status"] == "error" and fragment in body["error"], body
    with pytest.raises(QueryError) as caught:
        engine.instant(expr, end)
    assert fragment in caught.value.reason
