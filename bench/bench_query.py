#!/usr/bin/env python3
"""Query latency: ``sum by (namespace) (rate(x[5m]))`` over 100k series, promscope beside Prometheus.

One generator makes the data (``--series`` counters, ``--points`` samples each
at 15 s, across 50 namespaces, a few counter resets) and writes it once as an
OpenMetrics backfill file. The same numbers then go into, in one run:

* promscope's :class:`~promscope.store.Store`, twice, the two ways data
  reaches it:

  - **backfill**: the file read as ``promscope query FILE`` reads it
    (``promscope.exposition.parse(..., semantics=False)``), its families
    loaded with ``Store.add_families`` (points with their own timestamps:
    the store's shared-timestamp grid);
  - **scraped**: one ``Observation`` per instant through ``Store.ingest``,
    as the scrape loop feeds it (the per-source column ring).

  Each figure is ``Engine(store, compat="2").instant(expr, t).data()``, best
  of ``--runs``; the time ``Store.select_batch`` alone takes is printed
  beside it. ``--per-series`` adds the backfill loaded with
  ``StoreLimits(grid=False)`` (one loose series per series, the layout
  before the grid), and the in-memory :class:`promscope.query.SeriesSet`
  is printed for reference.
* Prometheus: ``promtool tsdb create-blocks-from openmetrics`` on the same
  file, ``prometheus`` started on the blocks (127.0.0.1, empty scrape
  config), and the figure is one ``GET /api/v1/query`` (HTTP and JSON
  included), best of ``--runs`` after one warm-up query.

Every answer is compared with Prometheus's (same namespaces, values within
1e-6), so a fast wrong answer never passes for a figure. The last line is
the ratio promscope/Prometheus for the slower of the two store figures, with
the target (<= 2).

Usage::

    python bench/bench_query.py                     # 100k series x 30 points
    python bench/bench_query.py --series 20000 --runs 3 --per-series

Figures last measured, beside the peer's, are in ``bench/README.md``; this docstring keeps none,
so they cannot drift apart.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from promscope.exposition import parse  # noqa: E402
from promscope.model import MetricFamily, MetricType, Sample  # noqa: E402
from promscope.observation import Observation, ObservationKind, Outcome, Transport  # noqa: E402
from promscope.query import Engine, Series, SeriesSet  # noqa: E402
from promscope.query.ast import VectorSelector, walk  # noqa: E402
from promscope.query.parser import parse as parse_query  # noqa: E402
from promscope.store import Store, StoreLimits  # noqa: E402

EXPR = "sum by (namespace) (rate(x_total[5m]))"
STEP = 15


def generate(
    series: int, points: int, end: int, seed: int = 0
) -> tuple[list[tuple[str, str]], np.ndarray, np.ndarray]:
    """Labels (namespace, pod) per series, the shared timestamps, and a (series, points) value matrix."""
    rng = np.random.default_rng(seed)
    times = end - STEP * np.arange(points - 1, -1, -1, dtype=np.int64)
    increments = rng.uniform(0, 30, size=(series, points))
    values = np.cumsum(increments, axis=1) + rng.uniform(0, 1e4, size=(series, 1))
    resets = rng.random(series) < 0.02  # 2% of the series restart half way
    half = points // 2
    values[resets, half:] -= values[resets, half][:, None]
    labels = [(f"ns{i % 50:02d}", f"pod-{i:06d}") for i in range(series)]
    return labels, times, values


def write_openmetrics(
    path: Path, labels: list[tuple[str, str]], times: np.ndarray, values: np.ndarray
) -> None:
    stamps = [str(int(t)) for t in times]
    with path.open("w", encoding="utf-8") as out:
        out.write("# TYPE x counter\n")
        for (namespace, pod), row in zip(labels, values.tolist(), strict=True):
            head = f'x_total{{namespace="{namespace}",pod="{pod}"}} '
            out.write("".join(f"{head}{v!r} {t}\n" for v, t in zip(row, stamps, strict=True)))
        out.write("# EOF\n")


def best_of(runs: int, work: Any) -> tuple[float, Any]:
    best, result = math.inf, None
    for _ in range(runs):
        gc.collect()
        started = time.perf_counter()
        result = work()
        best = min(best, time.perf_counter() - started)
    return best, result


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_ready(url: str, process: subprocess.Popen[bytes], timeout: float) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"prometheus exited with status {process.returncode}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url + "/-/ready", timeout=2).status_code == 200:
                return
        time.sleep(0.2)
    raise SystemExit(f"prometheus was not ready within {timeout:g}s")


def as_map(data: dict[str, Any]) -> dict[str, float]:
    return {s["metric"].get("namespace", ""): float(s["value"][1]) for s in data["result"]}


def load_backfill(path: Path, limits: StoreLimits) -> tuple[Store, float, float]:
    """The file parsed as ``promscope query FILE`` parses it, into a store: (store, parse s, load s)."""
    began = time.perf_counter()
    parsed = parse(path.read_bytes(), format="openmetrics", semantics=False)
    if parsed.errors():
        raise SystemExit(f"{path}: {parsed.errors()[0].message}")
    parsed_in = time.perf_counter() - began
    began = time.perf_counter()
    store = Store(limits)
    store.add_families(str(path), parsed.families)
    return store, parsed_in, time.perf_counter() - began


def load_scraped(labels: list[tuple[str, str]], times: np.ndarray, values: np.ndarray) -> tuple[Store, float]:
    """One scrape observation per instant through ``Store.ingest``: (store, ingest seconds)."""
    pairs = [(("namespace", ns), ("pod", pod)) for ns, pod in labels]
    transport = Transport("http", sender="http://127.0.0.1:9100/metrics")
    source = "http://127.0.0.1:9100/metrics"
    store = Store()
    store.set_interval(source, STEP)
    took = 0.0
    for j, when in enumerate(times.tolist()):
        column = values[:, j].tolist()
        samples = tuple(Sample("x_total", pair, value) for pair, value in zip(pairs, column, strict=True))
        observation = Observation(
            ObservationKind.SCRAPE,
            source,
            float(when),
            Outcome.ACCEPTED,
            transport,
            families=(MetricFamily("x", MetricType.COUNTER, samples=samples),),
        )
        began = time.perf_counter()
        store.ingest(observation)
        took += time.perf_counter() - began
    return store, took


def select_time(store: Store, runs: int, at: float) -> float:
    """Best time of the one ``select_batch`` the query makes (the 5m range before ``at``)."""
    selector = next(n for n in walk(parse_query(EXPR)) if isinstance(n, VectorSelector))
    matchers = list(selector.matchers)
    seconds, _ = best_of(runs, lambda: store.select_batch(matchers, at - 300, at))
    return seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--series", type=int, default=100_000)
    parser.add_argument("--points", type=int, default=30)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument(
        "--per-series", action="store_true", help="also query a store without the grid (the old layout)"
    )
    parser.add_argument("--promtool", default="/usr/bin/promtool")
    parser.add_argument("--prometheus", default="/usr/bin/prometheus")
    args = parser.parse_args(argv)
    for binary in (args.promtool, args.prometheus):
        if not (shutil.which(binary) or os.access(binary, os.X_OK)):
            print(f"{binary} is not installed (apt-get install prometheus)", file=sys.stderr)
            return 1

    end = (int(time.time()) - 3600) // STEP * STEP
    labels, times, values = generate(args.series, args.points, end)
    print(
        f"data: {args.series:,} series x {args.points} points at {STEP}s, query {EXPR!r} at the last sample"
    )
    at = float(end)
    ours: dict[str, tuple[float, float | None, dict[str, Any]]] = {}

    def measure(name: str, source: Any) -> None:
        engine = Engine(source, compat="2")
        took, answer = best_of(args.runs, lambda: engine.instant(EXPR, at).data())
        selecting = select_time(source, args.runs, at) if isinstance(source, Store) else None
        ours[name] = (took, selecting, answer)

    with tempfile.TemporaryDirectory(prefix="bench-query-") as tmp:
        base = Path(tmp)
        om = base / "data.om"
        write_openmetrics(om, labels, times, values)

        store, parsed_in, loaded_in = load_backfill(om, StoreLimits())
        print(
            f"promscope backfill: parsed in {parsed_in:.1f}s, Store.add_families {loaded_in:.1f}s "
            f"({store.memory_bytes() / store.sample_count():.1f} bytes/sample with the index)"
        )
        measure("backfill", store)
        del store
        if args.per_series:
            store, _, loaded_in = load_backfill(om, StoreLimits(grid=False))
            print(f"promscope backfill without the grid: Store.add_families {loaded_in:.1f}s")
            measure("per-series", store)
            del store
        store, ingested_in = load_scraped(labels, times, values)
        print(f"promscope scraped: {args.points} observations through Store.ingest in {ingested_in:.1f}s")
        measure("scraped", store)
        del store
        seconds = times.astype(np.float64)
        data = SeriesSet(
            Series((("__name__", "x_total"), ("namespace", ns), ("pod", pod)), seconds, row)
            for (ns, pod), row in zip(labels, values, strict=True)
        )
        measure("SeriesSet", data)
        del data
        gc.collect()

        tsdb = base / "tsdb"
        tsdb.mkdir()
        started = time.perf_counter()
        subprocess.run(
            [args.promtool, "tsdb", "create-blocks-from", "openmetrics", str(om), str(tsdb)],
            check=True,
            capture_output=True,
            timeout=1800,
        )
        took = time.perf_counter() - started
        print(f"promtool create-blocks-from openmetrics: {took:.1f}s ({om.stat().st_size / 1e6:.0f} MB)")
        config = base / "prometheus.yml"
        config.write_text("scrape_configs: []\n", encoding="utf-8")
        port = free_port()
        with (base / "prometheus.log").open("wb") as log:
            process = subprocess.Popen(
                [
                    args.prometheus,
                    f"--config.file={config}",
                    f"--storage.tsdb.path={tsdb}",
                    "--storage.tsdb.retention.time=30d",
                    f"--web.listen-address=127.0.0.1:{port}",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            import httpx

            url = f"http://127.0.0.1:{port}"
            wait_ready(url, process, 120)
            with httpx.Client(timeout=120) as client:

                def ask() -> dict[str, Any]:
                    body = client.get(url + "/api/v1/query", params={"query": EXPR, "time": str(end)}).json()
                    if body.get("status") != "success":
                        raise SystemExit(f"prometheus: {body}")
                    answer: dict[str, Any] = body["data"]
                    return answer

                ask()  # warm-up: the first query maps the blocks
                theirs_time, theirs = best_of(args.runs, ask)
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()

    peer = as_map(theirs)
    agree = True
    for name, (_, _, answer) in ours.items():
        mine = as_map(answer)
        same = mine.keys() == peer.keys() and all(math.isclose(mine[k], peer[k], rel_tol=1e-6) for k in mine)
        agree &= same
        print(f"answers agree ({name}): {'yes' if same else 'NO'} ({len(mine)} namespaces)")
    labels_of = {
        "backfill": "Store backfilled: parse + add_families",
        "per-series": "Store backfilled, grid=False",
        "scraped": "Store scraped: ingest",
        "SeriesSet": "SeriesSet, for reference",
    }
    for name, (took, selecting, _) in ours.items():
        extra = f", select_batch {selecting * 1000:.1f} ms" if selecting is not None else ""
        print(f"promscope   best of {args.runs}: {took * 1000:8.1f} ms  ({labels_of[name]}{extra})")
    print(
        f"prometheus  best of {args.runs}: {theirs_time * 1000:8.1f} ms  (GET /api/v1/query, HTTP included)"
    )
    for name in ours:
        if name != "backfill" and name != "scraped":
            print(f"ratio {name}/prometheus: {ours[name][0] / theirs_time:.2f} (not the target figure)")
    print(f"ratio backfill/prometheus: {ours['backfill'][0] / theirs_time:.2f}")
    print(f"ratio scraped/prometheus: {ours['scraped'][0] / theirs_time:.2f}")
    ratio = max(ours["backfill"][0], ours["scraped"][0]) / theirs_time
    print(
        f"ratio promscope/prometheus (Store, the slower of backfill and scraped): {ratio:.2f} "
        f"(target <= 2: {'ok' if ratio <= 2 else 'over target'})"
    )
    return 0 if agree else 1


if __name__ == "__main__":
    sys.exit(main())
