"""Pushgateway API throughput: promscope's receiver against the real Pushgateway, same push stream.

    python3 bench/bench_pushgateway.py                      # 100 and 1,000 groups, 5 s each
    python3 bench/bench_pushgateway.py --groups 100 --seconds 10

For each group count G, both servers start fresh with persistence on
(upstream: ``--persistence.file`` in a temporary directory; promscope:
``persistence_file`` there, every push committed before it is answered) and
the consistency check on (both defaults). The client first PUTs every group
once (not timed), then 8 senders (``--senders``) PUT the groups round-robin,
each push ``--series`` series (10 families of 10 series, values changing
between rounds), for ``--seconds`` or ``--max-pushes``, whichever ends first.
Series/s counts only 2xx answers; any other answer is reported and fails the
run.

promscope's server runs in its own process (``python -c``, the receiver plus
promscope's HTTP server, nothing else), so client and server do not share a
GIL. The client is one asyncio process speaking HTTP/1.1 on keep-alive
connections with pre-built requests, so that it costs little beside either
server. Everything binds 127.0.0.1. The ratio promscope/upstream is printed
last, with the targets (>= 10x at 100 groups, >= 50x at 1,000).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass

PUSHGATEWAY = "/usr/bin/prometheus-pushgateway"
TARGETS = {100: 10.0, 1000: 50.0}
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

DRIVER = """
import asyncio, sys
from promscope.receive.http import HttpServer
from promscope.receive.pushgateway import PushgatewayReceiver

async def main(db):
    receiver = PushgatewayReceiver(persistence_file=db or None)
    await receiver.start()
    server = HttpServer(receiver.routes(), host="127.0.0.1", port=0)
    await server.start()
    print("READY", server.port, flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await server.stop()
        await receiver.stop()

asyncio.run(main(sys.argv[1]))
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_ready(port: int, process: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"server on port {port} exited with {process.returncode}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/-/ready", timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"server on port {port} not ready within {timeout:g}s")


def start_upstream(workdir: str, binary: str) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    process = subprocess.Popen(
        [
            binary,
            f"--web.listen-address=127.0.0.1:{port}",
            f"--persistence.file={os.path.join(workdir, 'pushgateway.data')}",
            "--log.level=error",
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    wait_ready(port, process)
    return process, port


def start_promscope(workdir: str) -> tuple[subprocess.Popen[bytes], int]:
    process = subprocess.Popen(
        [sys.executable, "-c", DRIVER, os.path.join(workdir, "promscope-push.db")],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=None,
        cwd=REPO,
        start_new_session=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline().decode().split()
    if len(line) != 2 or line[0] != "READY":
        process.kill()
        raise SystemExit(f"promscope driver did not start: {line!r}")
    port = int(line[1])
    wait_ready(port, process)
    return process, port


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


# --- the push stream ------------------------------------------------------------------------------------


def body(group: int, round_: int, series: int) -> bytes:
    families = 10
    per_family = max(1, series // families)
    lines: list[str] = []
    for f in range(families):
        kind = "counter" if f % 2 == 0 else "gauge"
        name = f"bench_family_{f}_total" if kind == "counter" else f"bench_family_{f}"
        lines.append(f"# HELP {name} Benchmark family {f}.")
        lines.append(f"# TYPE {name} {kind}")
        for s in range(per_family):
            value = group * 1000 + s + round_ * 0.5
            lines.append(f'{name}{{shard="{s}",path="/api/v{s}/items"}} {value}')
    return ("\n".join(lines) + "\n").encode()


def request(port: int, group: int, round_: int, series: int) -> bytes:
    payload = body(group, round_, series)
    head = (
        f"PUT /metrics/job/bench/instance/group-{group} HTTP/1.1\r\n"
        f"Host: 127.0.0.1:{port}\r\n"
        "User-Agent: bench_pushgateway\r\n"
        "Content-Type: text/plain; version=0.0.4\r\n"
        f"Content-Length: {len(payload)}\r\n\r\n"
    )
    return head.encode() + payload


async def read_status(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    if length:
        await reader.readexactly(length)
    return status


@dataclass
class Tally:
    ok: int = 0
    failed: int = 0
    first_failure: int = 0


async def sender(
    port: int,
    requests: list[bytes],
    start: int,
    step: int,
    deadline: float,
    budget: list[int],
    tally: Tally,
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    index = start
    try:
        while time.monotonic() < deadline and budget[0] > 0:
            budget[0] -= 1
            writer.write(requests[index % len(requests)])
            status = await read_status(reader)
            if 200 <= status < 300:
                tally.ok += 1
            else:
                tally.failed += 1
                tally.first_failure = tally.first_failure or status
            index += step
    finally:
        writer.close()


async def run_stream(
    port: int, requests: list[bytes], senders: int, seconds: float, max_pushes: int
) -> Tally:
    tally = Tally()
    budget = [max_pushes]
    deadline = time.monotonic() + seconds
    await asyncio.gather(
        *(sender(port, requests, i, senders, deadline, budget, tally) for i in range(senders))
    )
    return tally


def measure(name: str, port: int, groups: int, args: argparse.Namespace) -> float:
    populate = [request(port, g, 0, args.series) for g in range(groups)]
    started = time.monotonic()
    tally = asyncio.run(run_stream(port, populate, args.senders, 3600.0, len(populate)))
    if tally.failed or tally.ok != groups:
        raise SystemExit(f"{name}: populating {groups} groups failed (first status {tally.first_failure})")
    populate_s = time.monotonic() - started
    stream = [request(port, g, r, args.series) for r in (1, 2) for g in range(groups)]
    started = time.monotonic()
    tally = asyncio.run(run_stream(port, stream, args.senders, args.seconds, args.max_pushes))
    elapsed = time.monotonic() - started
    if tally.failed:
        raise SystemExit(f"{name}: {tally.failed} pushes failed (first status {tally.first_failure})")
    pushes_s = tally.ok / elapsed
    series_s = pushes_s * args.series
    print(
        f"{name:<10} groups {groups:>5}  pushes {tally.ok:>6} in {elapsed:5.2f}s  "
        f"{pushes_s:9.1f} pushes/s  {series_s:11.0f} series/s  (populate {populate_s:.1f}s)",
        flush=True,
    )
    return series_s


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--groups", default="100,1000", help="comma-separated group counts (default 100,1000)"
    )
    parser.add_argument("--series", type=int, default=100, help="series per push (default 100)")
    parser.add_argument("--senders", type=int, default=8, help="concurrent senders (default 8)")
    parser.add_argument("--seconds", type=float, default=5.0, help="timed phase per server (default 5)")
    parser.add_argument(
        "--max-pushes", type=int, default=200_000, help="bound on timed pushes (default 200000)"
    )
    parser.add_argument("--pushgateway", default=PUSHGATEWAY, help="the upstream binary")
    args = parser.parse_args()
    if not shutil.which(args.pushgateway) and not os.access(args.pushgateway, os.X_OK):
        print(f"{args.pushgateway} not found (apt-get install prometheus-pushgateway)", file=sys.stderr)
        return 1
    counts = [int(g) for g in args.groups.split(",") if g]
    ratios: list[tuple[int, float]] = []
    for groups in counts:
        with tempfile.TemporaryDirectory(prefix="bench-pushgateway-") as workdir:
            process, port = start_upstream(workdir, args.pushgateway)
            try:
                upstream = measure("upstream", port, groups, args)
            finally:
                stop(process)
            process, port = start_promscope(workdir)
            try:
                ours = measure("promscope", port, groups, args)
            finally:
                stop(process)
        ratios.append((groups, ours / upstream if upstream else float("inf")))
    parts = []
    ok = True
    for groups, ratio in ratios:
        target = TARGETS.get(groups)
        verdict = ""
        if target is not None:
            verdict = f" (target >= {target:g}x: {'met' if ratio >= target else 'NOT met'})"
            ok = ok and ratio >= target
        parts.append(f"{groups} groups {ratio:.1f}x{verdict}")
    print("ratio promscope/upstream series/s: " + "; ".join(parts))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
