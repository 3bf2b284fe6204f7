#!/usr/bin/env python3
"""``promscope check`` against ``promtool check metrics`` on the same large file, in one run.

Generates a text exposition of ``--series`` series (1,000,000 by default) with
``fixtures/generate_large.py`` into a temporary directory, then runs, in turn:

* ``promscope check FILE``
* ``promtool check metrics < FILE``

each ``--runs`` times, measuring every child process on its own: wall time
around the process, peak resident set size from ``os.wait4``'s rusage (the
child's own ``ru_maxrss``, not the maximum over all children). The best wall
time and the lowest peak of the runs are reported, and the last line is the
ratio promscope/promtool for both; the target is <= 1.0 for each.

Usage::

    python3 bench/bench_check.py                     # 1M series, one run each
    python3 bench/bench_check.py --series 200000 --runs 3
    python3 bench/bench_check.py --file /tmp/big.prom # an existing file

``promscope`` is the installed console script (``pip install -e .``); without
one, ``python3 -c 'from cli.main import main; main()'`` run from the repo root.
Exit status is 0 when both tools ran (whatever they found), 1 when one could
not be run, so a wrong setup is never reported as a figure.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

REPO = pathlib.Path(__file__).resolve().parent.parent
GENERATOR = REPO / "fixtures" / "generate_large.py"


COMPLETED = {"promscope": {0, 1}, "promtool": {0, 3}}
"""Exit statuses that mean the tool read the whole file (clean, or problems found)."""


@dataclass(frozen=True)
class Run:
    wall: float
    """Seconds from spawn to exit."""
    peak_rss: int
    """Peak resident set size of the child, in bytes."""
    status: int
    stderr_tail: str


def promscope_command() -> list[str]:
    """The installed console script, else the CLI's entry point run from the repo."""
    script = shutil.which("promscope")
    if script:
        return [script]
    return [sys.executable, "-c", "import sys; from cli.main import main; sys.exit(main())"]


def measure(argv: list[str], stdin_path: pathlib.Path | None = None) -> Run:
    """Run ``argv`` once; stdout is discarded, the tail of stderr is kept for the report."""
    with tempfile.TemporaryFile() as stderr, open(stdin_path or os.devnull, "rb") as stdin:
        start = time.perf_counter()
        process = subprocess.Popen(argv, stdin=stdin, stdout=subprocess.DEVNULL, stderr=stderr, cwd=REPO)
        _, wait_status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - start
        process.returncode = os.waitstatus_to_exitcode(wait_status)
        stderr.seek(0, os.SEEK_END)
        stderr.seek(max(0, stderr.tell() - 2000))
        tail = stderr.read().decode("utf-8", "replace").strip()
    # Linux reports ru_maxrss in KiB (macOS in bytes).
    peak = usage.ru_maxrss if sys.platform == "darwin" else usage.ru_maxrss * 1024
    return Run(wall, peak, process.returncode, tail)


def best(runs: list[Run]) -> Run:
    return Run(
        wall=min(r.wall for r in runs),
        peak_rss=min(r.peak_rss for r in runs),
        status=runs[-1].status,
        stderr_tail=runs[-1].stderr_tail,
    )


def mib(size: int) -> str:
    return f"{size / (1 << 20):,.1f} MiB"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--series", type=int, default=1_000_000, help="series to generate (default 1000000)")
    parser.add_argument("--seed", type=int, default=0, help="generator seed (default 0)")
    parser.add_argument("--runs", type=int, default=1, help="runs of each tool; best is reported (default 1)")
    parser.add_argument("--file", type=pathlib.Path, help="check this file instead of generating one")
    parser.add_argument("--promtool", default="/usr/bin/promtool", help="promtool binary")
    parser.add_argument(
        "--promscope", help="promscope command line (default: the `promscope` script, else the repo's CLI)"
    )
    args = parser.parse_args(argv)

    promtool = args.promtool if os.sep in args.promtool else shutil.which(args.promtool)
    if not promtool or not os.access(promtool, os.X_OK):
        print(f"promtool not found at {args.promtool} (apt-get install prometheus)", file=sys.stderr)
        return 1
    promscope = shlex.split(args.promscope) if args.promscope else promscope_command()

    with tempfile.TemporaryDirectory(prefix="promscope-bench-") as tmp:
        if args.file:
            path = args.file.resolve()
        else:
            path = pathlib.Path(tmp) / f"large-{args.series}.prom"
            start = time.perf_counter()
            generate = [sys.executable, str(GENERATOR), "--series", str(args.series)]
            subprocess.run(
                [*generate, "--seed", str(args.seed), "--format", "text", "-o", str(path)], check=True
            )
            print(f"generated {path.name}: {args.series:,} series in {time.perf_counter() - start:.1f}s")
        size = path.stat().st_size
        print(f"input: {path} ({mib(size)})")

        results: dict[str, Run] = {}
        for name, command, stdin in (
            ("promscope", [*promscope, "check", str(path)], None),
            ("promtool", [promtool, "check", "metrics"], path),
        ):
            runs = [measure(command, stdin) for _ in range(max(1, args.runs))]
            results[name] = best(runs)
            shown = shlex.join(command) + (f" < {path.name}" if stdin else "")
            run = results[name]
            figures = f"wall {run.wall:8.2f}s  peak RSS {mib(run.peak_rss):>12}  exit {run.status}"
            print(f"{name:9}  {figures}  ({shown})")
            if run.status not in COMPLETED[name]:
                print(f"  {name} did not complete a check:\n  {run.stderr_tail[-800:]}", file=sys.stderr)
                return 1

    ours, theirs = results["promscope"], results["promtool"]
    time_ratio = ours.wall / theirs.wall
    rss_ratio = ours.peak_rss / theirs.peak_rss
    verdict = "ok" if time_ratio <= 1.0 and rss_ratio <= 1.0 else "over target"
    print(
        f"ratio promscope/promtool: time {time_ratio:.2f}  memory {rss_ratio:.2f}  (target <= 1.0: {verdict})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
