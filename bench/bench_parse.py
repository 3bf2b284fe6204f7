#!/usr/bin/env python3
"""Parse throughput: promscope's text and OpenMetrics parsers beside prometheus_client's.

Both sides read the same generated kube-state-metrics-like exposition
(``fixtures/generate_large.py``) in one run: promscope from the bytes (decoding
included), prometheus_client from the decoded string (its parsers take str).
promscope's figure is ``parse(data, format=…, semantics=False)``: model
families with line numbers and every syntax/structure diagnostic; the value
rules are a separate pass (shown on its own line when available).

Usage::

    python bench/bench_parse.py            # 100k series
    python bench/bench_parse.py --large    # 1M series as well (slow)

The last line is the ratio, e.g. ``ratio text: 7.3x, openmetrics: 6.1x``.
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "fixtures"))

from generate_large import generate  # noqa: E402
from prometheus_client.openmetrics.parser import (  # noqa: E402
    text_string_to_metric_families as client_openmetrics,
)
from prometheus_client.parser import text_string_to_metric_families as client_text  # noqa: E402

from promscope.exposition import parse  # noqa: E402


def best_of(repeats: int, work: Callable[[], object]) -> float:
    """The fastest of ``repeats`` runs, in seconds (the least disturbed by other load)."""
    best = float("inf")
    for _ in range(repeats):
        gc.collect()
        start = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - start)
    return best


def measure(series: int, repeats: int) -> dict[str, float]:
    ratios: dict[str, float] = {}
    for fmt, client in (("text", client_text), ("openmetrics", client_openmetrics)):
        text = generate(series, seed=0, fmt=fmt)
        data = text.encode("utf-8")
        lines = text.count("\n")
        result = parse(data, format=fmt, semantics=False)
        errors = len(result.errors())
        ours = best_of(repeats, lambda: parse(data, format=fmt, semantics=False))  # noqa: B023
        theirs = best_of(repeats, lambda: list(client(text)))  # noqa: B023
        print(
            f"{fmt:12} {series:>9,} series {lines:>9,} lines {len(data) / 1e6:7.1f} MB  "
            f"promscope {ours:7.3f} s ({ours / lines * 1e6:5.2f} us/line, {errors} errors)  "
            f"prometheus_client {theirs:7.3f} s ({theirs / lines * 1e6:5.2f} us/line)"
        )
        try:
            with_rules = best_of(1, lambda: parse(data, format=fmt, semantics=True))  # noqa: B023
        except ImportError:
            pass
        else:
            per_line = with_rules / lines * 1e6
            print(f"{'':12} with the semantics pass: {with_rules:7.3f} s ({per_line:5.2f} us/line)")
        ratios[fmt] = theirs / ours
    return ratios


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--series", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--large", action="store_true", help="also measure 1M series (one run each)")
    args = parser.parse_args(argv)
    ratios = measure(args.series, args.repeats)
    if args.large:
        ratios = measure(1_000_000, 1)
    print(f"ratio text: {ratios['text']:.1f}x, openmetrics: {ratios['openmetrics']:.1f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
