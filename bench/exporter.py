#!/usr/bin/env python3
"""A local test exporter: N node_exporter-like targets on N ports of 127.0.0.1, cheap to serve.

Each target serves ``/metrics`` with ``--series`` samples (default 1,000) shaped like node_exporter's
output (CPU, network, filesystem and disk counters and gauges, a summary and a histogram), in the
Prometheus text format 0.0.4. Bodies are rendered once at start (``--variants`` versions per target
with different values, served in turn so counters move) and kept gzip-compressed as well, so serving
a scrape costs a dictionary lookup and a socket write: the benchmark measures the scrapers, not this.

It speaks just enough HTTP/1.1 (keep-alive, Content-Length, ``Accept-Encoding: gzip``) and stops by
itself after ``--duration`` seconds (bounded lifetime), or on SIGTERM/SIGINT. On start it prints one
JSON line to stdout: ``{"ports": [...], "series": 1000, "bytes": ..., "gzip_bytes": ...}``.

    python bench/exporter.py --targets 100 --series 1000 --duration 120
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gzip
import json
import signal
import sys

MODES = ("idle", "user", "system", "iowait", "irq", "softirq", "steal", "nice")


def render(series: int, seed: int, variant: int) -> bytes:
    """A node_exporter-like exposition with exactly ``series`` sample lines."""
    out: list[str] = []
    count = 0
    base = seed * 1000 + variant * 7

    def family(name: str, kind: str, help_text: str) -> None:
        out.append(f"# HELP {name} {help_text}")
        out.append(f"# TYPE {name} {kind}")

    def sample(line: str) -> bool:
        nonlocal count
        if count >= series:
            return False
        out.append(line)
        count += 1
        return True

    family("node_cpu_seconds_total", "counter", "Seconds the CPUs spent in each mode.")
    for cpu in range(8):
        for mode in MODES:
            sample(
                f'node_cpu_seconds_total{{cpu="{cpu}",mode="{mode}"}} '
                f"{base + cpu * 100 + len(mode) + variant * 5.25}"
            )
    family(
        "go_gc_duration_seconds", "summary", "A summary of the pause duration of garbage collection cycles."
    )
    for q in ("0", "0.25", "0.5", "0.75", "1"):
        sample(f'go_gc_duration_seconds{{quantile="{q}"}} {0.0001 * (1 + float(q))}')
    sample(f"go_gc_duration_seconds_sum {0.5 + variant}")
    sample(f"go_gc_duration_seconds_count {100 + variant * 3}")
    family("node_http_request_duration_seconds", "histogram", "Request latencies of the exporter.")
    for handler in ("metrics", "health", "debug"):
        cumulative = 0
        for le in ("0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "+Inf"):
            cumulative += 3 + variant
            sample(f'node_http_request_duration_seconds_bucket{{handler="{handler}",le="{le}"}} {cumulative}')
        sample(f'node_http_request_duration_seconds_sum{{handler="{handler}"}} {cumulative * 0.02}')
        sample(f'node_http_request_duration_seconds_count{{handler="{handler}"}} {cumulative}')
    metrics = (
        (
            "node_network_receive_bytes_total",
            "counter",
            "Network device statistic receive_bytes.",
            "device",
            "eth",
        ),
        (
            "node_network_transmit_bytes_total",
            "counter",
            "Network device statistic transmit_bytes.",
            "device",
            "eth",
        ),
        (
            "node_network_receive_packets_total",
            "counter",
            "Network device statistic receive_packets.",
            "device",
            "eth",
        ),
        (
            "node_disk_read_bytes_total",
            "counter",
            "The total number of bytes read successfully.",
            "device",
            "sd",
        ),
        (
            "node_disk_written_bytes_total",
            "counter",
            "The total number of bytes written successfully.",
            "device",
            "sd",
        ),
        ("node_disk_io_time_seconds_total", "counter", "Total seconds spent doing I/Os.", "device", "nvme"),
        (
            "node_filesystem_avail_bytes",
            "gauge",
            "Filesystem space available to non-root users in bytes.",
            "mountpoint",
            "/mnt/v",
        ),
        ("node_filesystem_size_bytes", "gauge", "Filesystem size in bytes.", "mountpoint", "/mnt/v"),
        ("node_hwmon_temp_celsius", "gauge", "Hardware monitor for temperature (input).", "sensor", "temp"),
        ("node_interrupts_total", "counter", "Interrupt details.", "type", "irq"),
    )
    index = 0
    while count < series:
        name, kind, help_text, label, prefix = metrics[index % len(metrics)]
        round_ = index // len(metrics)
        full = f"{name}" if round_ == 0 else f"{name.replace('node_', f'node_r{round_}_', 1)}"
        family(full, kind, help_text)
        for i in range(16):
            extra = ',fstype="ext4",device="/dev/sda1"' if label == "mountpoint" else ""
            if not sample(f'{full}{{{label}="{prefix}{i}"{extra}}} {base * 3 + i * 1024 + variant * 4096}'):
                break
        index += 1
    return ("\n".join(out) + "\n").encode()


class Exporter:
    def __init__(self, targets: int, series: int, variants: int) -> None:
        self.bodies: list[list[tuple[bytes, bytes]]] = []
        for target in range(targets):
            rendered = [render(series, target, v) for v in range(variants)]
            self.bodies.append([(body, gzip.compress(body, 1)) for body in rendered])
        self.turn = [0] * targets
        self.servers: list[asyncio.Server] = []
        self.requests = 0

    async def start(self, host: str, base_port: int) -> list[int]:
        ports = []
        for index in range(len(self.bodies)):
            port = base_port + index if base_port else 0
            server = await asyncio.start_server(
                lambda r, w, i=index: self.serve(i, r, w), host, port, reuse_address=True
            )
            self.servers.append(server)
            ports.append(server.sockets[0].getsockname()[1])
        return ports

    async def serve(self, index: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(
            ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, asyncio.CancelledError
        ):
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                self.requests += 1
                lower = head.lower()
                variants = self.bodies[index]
                plain, packed = variants[self.turn[index] % len(variants)]
                self.turn[index] += 1
                if b"/metrics" not in head.split(b"\r\n", 1)[0]:
                    writer.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
                    continue
                gzipped = (
                    b"accept-encoding:" in lower
                    and b"gzip" in lower.split(b"accept-encoding:", 1)[1].split(b"\r\n", 1)[0]
                )
                body = packed if gzipped else plain
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n"
                    + (b"Content-Encoding: gzip\r\n" if gzipped else b"")
                    + b"Content-Length: "
                    + str(len(body)).encode()
                    + b"\r\n\r\n"
                    + body
                )
                await writer.drain()
        writer.close()

    async def close(self) -> None:
        for server in self.servers:
            server.close()
        for server in self.servers:
            with contextlib.suppress(Exception):
                await server.wait_closed()


async def main_async(args: argparse.Namespace) -> int:
    exporter = Exporter(args.targets, args.series, args.variants)
    ports = await exporter.start(args.host, args.base_port)
    sample = exporter.bodies[0][0]
    print(
        json.dumps(
            {"ports": ports, "series": args.series, "bytes": len(sample[0]), "gzip_bytes": len(sample[1])}
        ),
        flush=True,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), args.duration)
    await exporter.close()
    print(json.dumps({"requests": exporter.requests}), file=sys.stderr, flush=True)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--targets", type=int, default=100)
    parser.add_argument("--series", type=int, default=1000)
    parser.add_argument("--variants", type=int, default=4)
    parser.add_argument("--duration", type=float, default=120.0, help="seconds before it stops by itself")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--base-port", type=int, default=0, help="first port (0: free ports from the kernel)")
    args = parser.parse_args()
    if not (1 <= args.targets <= 10_000 and 1 <= args.series <= 1_000_000 and 0 < args.duration <= 86_400):
        parser.error("targets 1..10000, series 1..1000000, duration 0..86400")
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    sys.exit(main())
