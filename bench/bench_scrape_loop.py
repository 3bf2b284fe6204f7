#!/usr/bin/env python3
"""The live scrape loop under load: promscope's ScrapeManager beside a real Prometheus, in the same run.

``bench/exporter.py`` serves 100 node_exporter-like targets of 1,000 series each on 127.0.0.1. Two
scrapers scrape all of them every 5 s at the same time, each in its own process:

* promscope: this script re-run as a child (``--child``): one ``ScrapeManager`` on one event loop and
  one shared httpx client, its sink counting the samples of every Observation (``--sink store`` feeds
  ``promscope.store.Store`` instead);
* Prometheus: ``/usr/bin/prometheus`` with a temporary config (``scrape_interval: 5s``, one static job
  of the 100 targets) and a temporary TSDB, on a free port.

After a warm-up (both have scraped every target at least once), the script reads each process's CPU
time (``utime + stime`` from ``/proc/<pid>/stat``) and its ingested-sample counter (promscope: the
child's count, asked for with SIGUSR1; Prometheus: ``prometheus_tsdb_head_samples_appended_total``
from its own ``/metrics``), waits ``--duration`` seconds, and reads both again. Both counts include the
per-scrape report series (``up``, ``scrape_duration_seconds``… : 5 for Prometheus, 8 for promscope).

It prints promscope's missed and overlapping intervals over the whole run (both must be 0), its loop
lag (due time to actual start: max and mean), each scraper's CPU seconds per ingested sample, and the
ratio promscope/Prometheus LAST (target: within 3x). Exit status 1 when a figure is missing, a
scraper died, or promscope missed or overlapped an interval.

    python bench/bench_scrape_loop.py                        # 100 targets x 1,000 series, 5 s, 60 s measured
    python bench/bench_scrape_loop.py --targets 20 --duration 20
    python bench/bench_scrape_loop.py --breakdown            # also promscope's CPU per sample by stage

Figures last measured, beside the peer's, are in ``bench/README.md``; this docstring keeps none,
so they cannot drift apart.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, in seconds, from /proc/<pid>/stat."""
    text = Path(f"/proc/{pid}/stat").read_text()
    fields = text[text.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# --------------------------------------------------------------------------------------------------
# the promscope child
# --------------------------------------------------------------------------------------------------


STAGES = ("parse", "semantics", "observe", "sink", "gc")


def time_stages(stages: dict[str, float]) -> None:
    """Add each stage's CPU seconds to ``stages`` (``--breakdown``): the parse (without the semantic
    rules), the semantic rules, the Observation, the sink, and the collector's own runs."""
    import gc

    import promscope.exposition as exposition
    import promscope.exposition.semantics as semantics
    import promscope.scrape._fetch as fetch_module
    from promscope.scrape.observe import ScrapeObserver

    clock = time.process_time

    def timed(function: Any, stage: str) -> Any:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            started = clock()
            try:
                return function(*args, **kwargs)
            finally:
                stages[stage] += clock() - started

        return wrapper

    fetch_module.parse = timed(exposition.parse, "parse")  # type: ignore[attr-defined]
    semantics.check_semantics = timed(semantics.check_semantics, "semantics")
    ScrapeObserver.observe = timed(ScrapeObserver.observe, "observe")  # type: ignore[method-assign]
    started = [0.0]

    def collector(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            started[0] = clock()
        else:
            stages["gc"] += clock() - started[0]

    gc.callbacks.append(collector)


async def child(args: argparse.Namespace) -> int:
    from promscope.observation import Observation
    from promscope.scrape.loop import ScrapeManager
    from promscope.scrape.targets import targets_from_urls

    ports = [int(p) for p in args.ports.split(",")]
    counts = {"observations": 0, "samples": 0, "up": 0}
    stages = dict.fromkeys(STAGES, 0.0)
    if args.breakdown:
        time_stages(stages)
    ingest = None
    if args.sink == "store":
        from promscope.store import Store

        ingest = Store().ingest

    def sink(observation: Observation) -> None:
        counts["observations"] += 1
        counts["samples"] += observation.series
        counts["up"] += observation.accepted
        if ingest is not None:
            started = time.process_time()
            ingest(observation)
            stages["sink"] += time.process_time() - started

    manager = ScrapeManager(sink, max_connections=len(ports) + 8)
    manager.set_targets(
        targets_from_urls(
            [f"http://127.0.0.1:{p}/metrics" for p in ports],
            job="bench",
            interval=args.interval,
            timeout=args.interval,
        )
    )
    stats_file = Path(args.stats_file)

    def dump() -> None:
        totals = manager.totals()
        data = {
            **counts,
            "time": time.monotonic(),
            "scrapes": totals.scrapes,
            "missed": totals.missed_intervals,
            "overruns": totals.overruns,
            "overlaps": totals.overlaps,
            "lag_max": totals.lag_max,
            "lag_mean": totals.lag_mean,
            "sink_errors": totals.sink_errors,
            "stages": stages,
        }
        tmp = stats_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(data))
        tmp.replace(stats_file)

    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGUSR1, dump)
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    profiler = None
    if args.profile:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    async with manager:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), args.lifetime)
        dump()
    if profiler is not None:
        profiler.disable()
        profiler.dump_stats(args.profile)
    return 0


# --------------------------------------------------------------------------------------------------
# the driver
# --------------------------------------------------------------------------------------------------


def ask_child(pid: int, stats_file: Path, timeout: float = 10.0) -> dict[str, Any]:
    before = stats_file.stat().st_mtime_ns if stats_file.exists() else 0
    os.kill(pid, signal.SIGUSR1)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if stats_file.exists() and stats_file.stat().st_mtime_ns != before:
            return json.loads(stats_file.read_text())
        time.sleep(0.01)
    raise RuntimeError("the promscope child did not answer SIGUSR1")


def prometheus_appended(port: int) -> float:
    import httpx

    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    total = 0.0
    for match in re.finditer(
        r"^prometheus_tsdb_head_samples_appended_total(?:\{[^}]*\})? (\S+)$", text, re.M
    ):
        total += float(match.group(1))
    return total


def prometheus_up_count(port: int) -> int:
    import httpx

    answer = httpx.get(
        f"http://127.0.0.1:{port}/api/v1/query", params={"query": "sum(up)"}, timeout=10
    ).json()
    result = answer.get("data", {}).get("result", [])
    return int(float(result[0]["value"][1])) if result else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--targets", type=int, default=100)
    parser.add_argument("--series", type=int, default=1000)
    parser.add_argument("--interval", type=float, default=5.0)
    parser.add_argument("--duration", type=float, default=60.0, help="measured seconds")
    parser.add_argument("--warmup", type=float, default=15.0)
    parser.add_argument("--prometheus", default="/usr/bin/prometheus")
    parser.add_argument("--sink", choices=("count", "store"), default="count")
    parser.add_argument(
        "--breakdown",
        action="store_true",
        help="also time promscope's stages (parse, semantics, observe, sink, gc) per sample",
    )
    parser.add_argument(
        "--profile",
        metavar="PATH",
        help="run promscope under cProfile and write its stats to PATH (the figures are then inflated)",
    )
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--ports", help=argparse.SUPPRESS)
    parser.add_argument("--stats-file", help=argparse.SUPPRESS)
    parser.add_argument("--lifetime", type=float, default=600.0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return asyncio.run(child(args))
    if not (1 <= args.targets <= 1000 and 5 <= args.duration <= 3600):
        parser.error("targets 1..1000, duration 5..3600 s")

    lifetime = args.warmup + args.duration + 60
    procs: list[subprocess.Popen[bytes]] = []
    with tempfile.TemporaryDirectory(prefix="bench-scrape-") as tmp:
        work = Path(tmp)
        try:
            exporter = subprocess.Popen(
                [
                    sys.executable,
                    str(ROOT / "bench" / "exporter.py"),
                    "--targets",
                    str(args.targets),
                    "--series",
                    str(args.series),
                    "--duration",
                    str(lifetime),
                ],
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
            )
            procs.append(exporter)
            assert exporter.stdout is not None
            info = json.loads(exporter.stdout.readline())
            ports = info["ports"]
            print(
                f"exporter: {len(ports)} targets x {info['series']} series, {info['bytes']:,} bytes per body "
                f"({info['gzip_bytes']:,} gzipped), every {args.interval:g}s; measuring {args.duration:g}s "
                f"after a {args.warmup:g}s warm-up"
            )
            stats_file = work / "promscope.json"
            promscope = subprocess.Popen(
                [
                    sys.executable,
                    __file__,
                    "--child",
                    "--ports",
                    ",".join(map(str, ports)),
                    "--stats-file",
                    str(stats_file),
                    "--interval",
                    str(args.interval),
                    "--lifetime",
                    str(lifetime),
                    "--sink",
                    args.sink,
                    *(["--breakdown"] if args.breakdown else []),
                    *(["--profile", str(Path(args.profile).resolve())] if args.profile else []),
                ],
            )
            procs.append(promscope)
            config = work / "prometheus.yml"
            targets = ", ".join(f'"127.0.0.1:{p}"' for p in ports)
            config.write_text(
                f"global:\n  scrape_interval: {args.interval:g}s\n  scrape_timeout: {args.interval:g}s\n"
                f"scrape_configs:\n  - job_name: bench\n    static_configs:\n      - targets: [{targets}]\n"
            )
            prom_port = free_port()
            prom_log = open(work / "prometheus.log", "wb")  # noqa: SIM115 - closed with the directory
            prometheus = subprocess.Popen(
                [
                    args.prometheus,
                    f"--config.file={config}",
                    f"--web.listen-address=127.0.0.1:{prom_port}",
                    f"--storage.tsdb.path={work / 'data'}",
                ],
                stdout=prom_log,
                stderr=subprocess.STDOUT,
                cwd=work,
            )
            procs.append(prometheus)
            time.sleep(args.warmup)
            for proc, name in ((exporter, "exporter"), (promscope, "promscope"), (prometheus, "prometheus")):
                if proc.poll() is not None:
                    print(f"{name} exited early with status {proc.returncode}", file=sys.stderr)
                    return 1
            up = prometheus_up_count(prom_port)
            p0_cpu, p0_n = cpu_seconds(prometheus.pid), prometheus_appended(prom_port)
            s0_cpu, s0 = cpu_seconds(promscope.pid), ask_child(promscope.pid, stats_file)
            t0 = time.monotonic()
            time.sleep(args.duration)
            p1_cpu, p1_n = cpu_seconds(prometheus.pid), prometheus_appended(prom_port)
            s1_cpu, s1 = cpu_seconds(promscope.pid), ask_child(promscope.pid, stats_file)
            elapsed = time.monotonic() - t0
        finally:
            for proc in reversed(procs):
                if proc.poll() is None:
                    proc.terminate()
            for proc in procs:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=15)
                if proc.poll() is None:
                    proc.kill()

    ours_samples = s1["samples"] - s0["samples"]
    theirs_samples = p1_n - p0_n
    ours_cpu = s1_cpu - s0_cpu
    theirs_cpu = p1_cpu - p0_cpu
    expected_scrapes = len(ports) * elapsed / args.interval
    print(f"prometheus: {up}/{len(ports)} targets up at the start of the measurement")
    print(
        f"promscope : {s1['scrapes'] - s0['scrapes']:,} scrapes in {elapsed:.1f}s "
        f"(expected ~{expected_scrapes:,.0f}), "
        f"{s1['up'] - s0['up']:,} up; missed intervals {s1['missed']}, overlapping {s1['overlaps']} "
        f"(whole run); loop lag max {s1['lag_max'] * 1000:.1f} ms, mean {s1['lag_mean'] * 1000:.2f} ms"
    )
    if not ours_samples or not theirs_samples:
        print("a scraper ingested nothing; no ratio", file=sys.stderr)
        return 1
    ours = ours_cpu / ours_samples
    theirs = theirs_cpu / theirs_samples
    print(
        f"promscope : {ours_cpu:6.2f} CPU s for {ours_samples:>12,.0f} samples = {ours * 1e6:6.2f} us/sample"
        f" ({ours_cpu / elapsed * 100:.1f}% of a core)"
    )
    print(
        f"prometheus: {theirs_cpu:6.2f} CPU s for {theirs_samples:>12,.0f} samples = "
        f"{theirs * 1e6:6.2f} us/sample"
        f" ({theirs_cpu / elapsed * 100:.1f}% of a core)"
    )
    if args.breakdown:
        parts = {k: (s1["stages"][k] - s0["stages"][k]) / ours_samples * 1e6 for k in STAGES}
        parts["parse"] -= parts["semantics"]  # the semantic rules run inside parse
        rest = ours * 1e6 - sum(parts.values())  # gc inside a stage is counted twice: the rest is low
        shown = ", ".join(f"{k} {v:.2f}" for k, v in parts.items())
        print(f"promscope : us/sample by stage: {shown}, rest (HTTP, asyncio, loop) {rest:.2f}")
    ratio = ours / theirs
    verdict = "within target" if ratio <= 3 else "over target"
    print(f"ratio promscope/prometheus CPU per sample: {ratio:.2f} (target <= 3: {verdict})")
    return 1 if s1["missed"] or s1["overlaps"] else 0


if __name__ == "__main__":
    sys.exit(main())
