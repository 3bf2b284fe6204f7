#!/usr/bin/env python3
"""Store memory: bytes per retained sample in promscope's store, beside a real Prometheus on the same data.

promscope: 100k series (kube-state-metrics-like labels) observed 720 times at 5 s
(one hour, the store's default retention) through ``Store.ingest``, the path a
scrape takes. The figure is the process's resident-memory growth from just
before the store is created to after the last observation (the input families
are built beforehand and stay alive on both sides of the measurement), divided
by the samples the store then holds. The store's own ``memory_bytes()`` estimate
is printed beside it. The store keeps every value as a float64 whatever it is,
so the observations rotate through 8 prebuilt sets of values to keep the run
short; that does not change its memory.

Prometheus: the same series and timestamps with random-walk counter values (64
shapes) written as OpenMetrics with timestamps, turned into a TSDB block by
``promtool tsdb create-blocks-from openmetrics``, then ``/usr/bin/prometheus``
started on that directory (127.0.0.1, free port, no scrape jobs). Its resident
memory (``VmRSS``) is read after one query that reads every sample
(``count(count_over_time({__name__=~"kube_.+"}[1h]))``), and again after a second
identical query, and the larger is used.

Usage::

    python bench/bench_store_memory.py                       # 100k x 720, both sides (a few minutes)
    python bench/bench_store_memory.py --series 20000        # smaller
    python bench/bench_store_memory.py --skip-prometheus     # promscope only

The last line is the ratio of bytes per retained sample, promscope/Prometheus,
with the target (promscope <= 20 bytes per sample).

The input is an 11 GB OpenMetrics file that promtool maps whole: expect about 11 GB of page cache
and several minutes. Figures last measured, beside the peer's, are in ``bench/README.md``;
this docstring keeps none, so they cannot drift apart.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from promscope.model import MetricFamily, MetricType, Sample  # noqa: E402
from promscope.observation import Observation, ObservationKind, Outcome, Transport  # noqa: E402
from promscope.store import Store, StoreLimits  # noqa: E402

NAME = "kube_pod_container_status_restarts_total"
PAGE = os.sysconf("SC_PAGE_SIZE")
TARGET = 20.0


def rss_bytes(pid: int | str = "self") -> int:
    with open(f"/proc/{pid}/statm") as statm:
        return int(statm.read().split()[1]) * PAGE


def series_labels(count: int) -> list[tuple[tuple[str, str], ...]]:
    return [
        (
            ("namespace", f"ns-{i % 50}"),
            ("pod", f"app-{i // 4}-7d9f8c6b5-{i % 997:03d}x"),
            ("container", f"c{i % 4}"),
            ("uid", f"{i:08x}-5d1c-4b6e-9a2f"),
        )
        for i in range(count)
    ]


def shapes(points: int, count: int = 64, seed: int = 1) -> list[list[int]]:
    """Random-walk counter value sequences (increments 0..20), ``count`` distinct shapes."""
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        value = rng.randrange(1000)
        seq = []
        for _ in range(points):
            value += rng.randrange(21)
            seq.append(value)
        out.append(seq)
    return out


# -- promscope -----------------------------------------------------------------------------------------------


def measure_promscope(series: int, points: int, interval: float, start: float) -> dict[str, float]:
    labels = series_labels(series)
    values = shapes(points)
    variants = []
    for k in range(8):
        samples = tuple(Sample(NAME, labels[i], float(values[i % len(values)][k])) for i in range(series))
        variants.append(
            (MetricFamily(NAME[: -len("_total")], MetricType.COUNTER, "restarts", None, samples),)
        )
    transport = Transport("http", sender="http://127.0.0.1:9100/metrics")
    gc.collect()
    before = rss_bytes()
    began = time.perf_counter()
    store = Store(StoreLimits(retention=points * interval, default_interval=interval))
    for j in range(points):
        store.ingest(
            Observation(
                ObservationKind.SCRAPE,
                "http://127.0.0.1:9100/metrics",
                start + j * interval,
                Outcome.ACCEPTED,
                transport,
                families=variants[j % len(variants)],
            )
        )
    elapsed = time.perf_counter() - began
    gc.collect()
    grown = rss_bytes() - before
    held = store.sample_count()
    return {
        "samples": held,
        "series": store.series_count(),
        "rss_delta": grown,
        "estimate": store.memory_bytes(),
        "seconds": elapsed,
        "per_sample": grown / held,
    }


# -- Prometheus ----------------------------------------------------------------------------------------------


def write_openmetrics(path: Path, series: int, points: int, interval: float, start: int) -> None:
    labels = series_labels(series)
    marker = "\x00"
    patterns = [
        "".join(f"{marker} {v} {start + j * int(interval)}\n" for j, v in enumerate(seq))
        for seq in shapes(points)
    ]
    with open(path, "w", encoding="utf-8", buffering=1 << 22) as out:
        out.write(f"# TYPE {NAME[: -len('_total')]} counter\n")
        for i, pairs in enumerate(labels):
            prefix = NAME + "{" + ",".join(f'{k}="{v}"' for k, v in pairs) + "}"
            out.write(patterns[i % len(patterns)].replace(marker, prefix))
        out.write("# EOF\n")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def query(port: int, expr: str, at: float) -> dict[str, object]:
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": expr, "time": at})
    with urllib.request.urlopen(url, timeout=600) as response:
        result: dict[str, object] = json.load(response)
        return result


def measure_prometheus(
    series: int, points: int, interval: float, start: int, prometheus: str, promtool: str, workdir: Path
) -> dict[str, float]:
    data = workdir / "data.om"
    blocks = workdir / "tsdb"
    began = time.perf_counter()
    write_openmetrics(data, series, points, interval, start)
    written = time.perf_counter() - began
    began = time.perf_counter()
    subprocess.run(
        [promtool, "tsdb", "create-blocks-from", "openmetrics", str(data), str(blocks)],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    imported = time.perf_counter() - began
    data.unlink()
    config = workdir / "prometheus.yml"
    config.write_text("global:\n  scrape_interval: 1h\n", encoding="utf-8")
    port = free_port()
    log = open(workdir / "prometheus.log", "wb")  # noqa: SIM115 - closed in finally
    process = subprocess.Popen(
        [
            prometheus,
            f"--config.file={config}",
            f"--storage.tsdb.path={blocks}",
            "--storage.tsdb.retention.time=100y",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            if process.poll() is not None:
                raise SystemExit(
                    f"prometheus exited with {process.returncode}; see {workdir / 'prometheus.log'}"
                )
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/-/ready", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit("prometheus did not become ready within 120 s")
            time.sleep(0.2)
        end = start + (points - 1) * interval
        window = int(points * interval)
        expr = f'count(count_over_time({{__name__=~"kube_.+"}}[{window}s]))'
        idle = rss_bytes(process.pid)
        answer = query(port, expr, end)
        first = rss_bytes(process.pid)
        query(port, expr, end)
        second = rss_bytes(process.pid)
        counted = answer.get("data", {}).get("result", [{}])  # type: ignore[union-attr]
        found = float(counted[0]["value"][1]) if counted else 0.0  # type: ignore[index]
        if int(found) != series:
            raise SystemExit(
                f"prometheus counted {found:g} series, expected {series}: the comparison is void"
            )
        rss = max(first, second)
        samples = series * points
        return {
            "rss": rss,
            "idle_rss": idle,
            "samples": samples,
            "per_sample": rss / samples,
            "write_seconds": written,
            "import_seconds": imported,
            "block_bytes": sum(f.stat().st_size for f in blocks.rglob("*") if f.is_file()),
        }
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def mib(value: float) -> str:
    return f"{value / 2**20:,.1f} MiB"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--series", type=int, default=100_000)
    parser.add_argument("--points", type=int, default=720)
    parser.add_argument("--interval", type=float, default=5.0)
    parser.add_argument("--skip-prometheus", action="store_true")
    parser.add_argument("--prometheus", default="/usr/bin/prometheus")
    parser.add_argument("--promtool", default="/usr/bin/promtool")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args()

    # A start aligned to Prometheus's 2 h block boundary, so the hour lands in one block.
    start = int((time.time() - 6 * 3600) // 7200 * 7200)
    print(f"data: {args.series:,} series x {args.points} points every {args.interval:g}s", flush=True)

    ours = measure_promscope(args.series, args.points, args.interval, float(start))
    print(
        f"promscope   store RSS growth {mib(ours['rss_delta'])} for {int(ours['samples']):,} samples"
        f" = {ours['per_sample']:.2f} bytes/sample"
        f" (memory_bytes() says {ours['estimate'] / ours['samples']:.2f};"
        f" ingest {ours['seconds']:.1f}s)",
        flush=True,
    )
    if args.skip_prometheus:
        target = "ok" if ours["per_sample"] <= TARGET else "over target"
        print(
            f"promscope {ours['per_sample']:.2f} bytes/sample (target <= {TARGET:g}: {target}); no peer run"
        )
        return 0
    for binary in (args.prometheus, args.promtool):
        if shutil.which(binary) is None:
            print(f"{binary} is not installed (apt-get install prometheus)", file=sys.stderr)
            return 1
    del ours["estimate"]
    gc.collect()
    workdir = Path(tempfile.mkdtemp(prefix="bench-store-memory-"))
    try:
        peer = measure_prometheus(
            args.series, args.points, args.interval, start, args.prometheus, args.promtool, workdir
        )
    finally:
        if args.keep:
            print(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    print(
        f"prometheus  RSS {mib(peer['rss'])} after reading all {int(peer['samples']):,} samples"
        f" = {peer['per_sample']:.2f} bytes/sample (idle {mib(peer['idle_rss'])}, block on disk"
        f" {mib(peer['block_bytes'])}; OpenMetrics written in {peer['write_seconds']:.0f}s,"
        f" imported in {peer['import_seconds']:.0f}s)",
        flush=True,
    )
    ratio = ours["per_sample"] / peer["per_sample"]
    target = "ok" if ours["per_sample"] <= TARGET else "over target"
    print(
        f"ratio promscope/prometheus bytes per retained sample: {ratio:.2f}"
        f"  (promscope {ours['per_sample']:.2f}, target <= {TARGET:g} bytes/sample: {target})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
