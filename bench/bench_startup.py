#!/usr/bin/env python3
"""How long ``promscope check`` takes on a small real file, next to a bare Python start.

Runs ``promscope check fixtures/node_exporter/node_exporter.prom`` (about 1,000
lines, what a pre-commit hook or a CI step sees) and ``python3 -c pass`` with
the same interpreter, alternating, ``--runs`` times each (20 by default), and
reports the best wall time of each. The last line is the ratio
promscope/python; the target is <= 6: starting the CLI, importing the engine
and checking a real exposition costs at most six bare interpreter starts.

Usage::

    python3 bench/bench_startup.py
    python3 bench/bench_startup.py --runs 50 --file fixtures/node_exporter/node_exporter.om

``promscope`` is the installed console script (``pip install -e .``); without
one, ``python3 -c 'from cli.main import main; main()'`` run from the repo root
(both start the same interpreter).
"""

from __future__ import annotations

import argparse
import os
import pathlib
import shlex
import shutil
import subprocess
import sys
import time

REPO = pathlib.Path(__file__).resolve().parent.parent
DEFAULT_FILE = REPO / "fixtures" / "node_exporter" / "node_exporter.prom"


def promscope_command() -> list[str]:
    """The installed console script, else the CLI's entry point run from the repo."""
    script = shutil.which("promscope")
    if script:
        return [script]
    return [sys.executable, "-c", "import sys; from cli.main import main; sys.exit(main())"]


def wall(argv: list[str]) -> tuple[float, int]:
    """Seconds one run of ``argv`` takes, and its exit status."""
    start = time.perf_counter()
    completed = subprocess.run(
        argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=REPO, check=False
    )
    return time.perf_counter() - start, completed.returncode


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--runs", type=int, default=20, help="runs of each command; best is kept (default 20)"
    )
    parser.add_argument("--file", type=pathlib.Path, default=DEFAULT_FILE, help="file to check")
    parser.add_argument(
        "--promscope", help="promscope command line (default: the `promscope` script, else the repo's CLI)"
    )
    args = parser.parse_args(argv)

    promscope = [*(shlex.split(args.promscope) if args.promscope else promscope_command()), "check"]
    promscope.append(str(args.file))
    baseline = [sys.executable, "-c", "pass"]
    # An installed promscope has its bytecode compiled at install time (pip does it); an editable
    # checkout under PYTHONDONTWRITEBYTECODE (CI sets it) would recompile every module on every
    # start. Compile ours once here, so both commands start from bytecode as a user's would.
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", str(REPO / "promscope"), str(REPO / "cli")],
        check=True,
        env={k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"},
    )
    env_note = "bytecode compiled"

    # One untimed run of each fills the OS page cache and __pycache__.
    _, status = wall(promscope)
    if status not in (0, 1):
        print(f"{shlex.join(promscope)} exited {status}; fix the setup first", file=sys.stderr)
        return 1
    wall(baseline)

    ours: list[float] = []
    theirs: list[float] = []
    for _ in range(max(1, args.runs)):
        ours.append(wall(promscope)[0])
        theirs.append(wall(baseline)[0])

    best_ours, best_theirs = min(ours), min(theirs)
    print(f"input: {args.file} ({args.file.stat().st_size:,} bytes), {args.runs} runs each, {env_note}")
    for name, times in (("promscope", ours), ("python", theirs)):
        median = sorted(times)[len(times) // 2]
        print(f"{name:9}  best {min(times) * 1000:7.1f} ms  median {median * 1000:7.1f} ms")
    ratio = best_ours / best_theirs
    print(f"ratio promscope/python: {ratio:.2f}  (target <= 6: {'ok' if ratio <= 6 else 'over target'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
