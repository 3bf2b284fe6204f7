"""Helpers for the query tests: small data sets and the three kinds of source the engine reads.

``SOURCES`` names them: ``set`` (:class:`promscope.query.SeriesSet`, the
columnar fast path), ``list`` (a bare :class:`SeriesSource` that only
answers ``select``, the generic path) and ``store`` (the live
:class:`promscope.store.Store`, read through ``select_batch``). Tests that
take the ``make_engine`` fixture run once per source, so every path gives
the same answers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pytest

from promscope.model import Labels
from promscope.query import Engine, LabelMatcher, SeriesSet
from promscope.query.engine import Series

T0 = 1_700_000_000.0
"""Start of every generated series (a whole second, so API times print as integers)."""

SampleTriple = tuple[Mapping[str, str], float, float]
SOURCES = ("set", "list", "store")


@dataclass
class ListSource:
    """The smallest SeriesSource: a list of series, filtered on every select."""

    series: list[Series]

    def select(self, matchers: Sequence[LabelMatcher], start: float, end: float) -> list[Series]:
        out = []
        for one in self.series:
            labels = dict(one.labels)
            if all(m.matches(labels.get(m.name, "")) for m in matchers):
                keep = (one.timestamps >= start) & (one.timestamps <= end)
                if keep.any():
                    out.append(Series(one.labels, one.timestamps[keep], one.values[keep]))
        return out


def build_source(kind: str, samples: Iterable[SampleTriple]) -> object:
    samples = list(samples)
    if kind == "set":
        return SeriesSet.from_samples(samples)
    if kind == "list":
        grouped: dict[Labels, list[tuple[float, float]]] = {}
        for labels, t, v in samples:
            grouped.setdefault(tuple(sorted(labels.items())), []).append((t, v))
        series = []
        for key, points in grouped.items():
            points.sort()
            series.append(Series(key, np.array([p[0] for p in points]), np.array([p[1] for p in points])))
        return ListSource(series)
    from promscope.store import Store

    store = Store(clock=lambda: T0)
    store.add_samples("test", samples)
    return store


def series(
    labels: Mapping[str, str], values: Sequence[float], step: float = 15.0, start: float = T0
) -> list[SampleTriple]:
    """One series as sample triples: ``values[i]`` at ``start + i * step``."""
    return [(dict(labels), start + i * step, float(v)) for i, v in enumerate(values)]


@pytest.fixture(params=SOURCES)
def make_engine(request: pytest.FixtureRequest) -> Callable[..., Engine]:
    """``make_engine(samples, **engine_options)`` over the parametrised kind of source."""

    def make(samples: Iterable[SampleTriple], **options: object) -> Engine:
        return Engine(build_source(request.param, samples), **options)  # type: ignore[arg-type]

    return make
