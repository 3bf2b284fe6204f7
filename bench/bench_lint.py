#!/usr/bin/env python3
"""What ``promscope check`` does after parsing: ``check_result`` (lint, ignores, severities, sorting).

Parses a generated exposition (``fixtures/generate_large.py``) once, then
times ``check_result`` on that ``ParseResult`` with CPU time
(``time.process_time``, so other work on the machine matters less), best of
``--runs``, for the option sets the CLI uses: the default ``check``,
``--output promtool`` (promtool 2.42's rules only) and a run with ignores
and severity overrides. Cardinality (``--cardinality``) is not included.

Usage::

    python bench/bench_lint.py                       # 1M series, text
    python bench/bench_lint.py --series 100000 --runs 5
    python bench/bench_lint.py --file /tmp/big.prom
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "fixtures"))

from generate_large import generate  # noqa: E402

from promscope.check import CheckOptions, Ignore, check_result  # noqa: E402
from promscope.exposition import parse  # noqa: E402
from promscope.model import Severity  # noqa: E402

OPTIONS = {
    "check": CheckOptions(),
    "promtool": CheckOptions(promtool_only=True),
    "ignores+overrides": CheckOptions(
        ignores=(Ignore.parse("LINT-001:go_*"), Ignore.parse("LINT-01?")),
        severity_overrides={"LINT-*": Severity.WARNING, "SEM-001": Severity.ERROR},
    ),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, default=1_000_000)
    parser.add_argument("--format", choices=("text", "openmetrics"), default="text")
    parser.add_argument("--file", type=Path, help="an existing exposition instead of a generated one")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    if args.file is not None:
        data = args.file.read_bytes()
        fmt = "openmetrics" if args.file.suffix == ".om" else "text"
    else:
        data = generate(args.series, fmt=args.format).encode()
        fmt = args.format
    started = time.process_time()
    result = parse(data, format=fmt)
    print(f"parse: {time.process_time() - started:.2f} s CPU, {result.sample_count} samples")
    for name, options in OPTIONS.items():
        best = float("inf")
        for _ in range(args.runs):
            started = time.process_time()
            report = check_result(result, options)
            best = min(best, time.process_time() - started)
        print(f"check_result {name}: {best:.3f} s CPU, {len(report.diagnostics)} diagnostics")


if __name__ == "__main__":
    main()
