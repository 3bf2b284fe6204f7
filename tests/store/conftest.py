"""Helpers for the store's tests: observations, families and promqltest-style series as fixtures."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

import numpy as np
import pytest

from promscope.model import Labels, MetricFamily, MetricType, Sample
from promscope.observation import Observation, ObservationKind, Outcome, Transport
from promscope.store import SeriesBatch, SeriesView

ObsFactory = Callable[..., Observation]


def _family(name: str, type_: MetricType, samples: Sequence[tuple[str, Labels, float]]) -> MetricFamily:
    return MetricFamily(name, type_, samples=tuple(Sample(n, labels, v) for n, labels, v in samples))


@pytest.fixture
def family() -> Callable[..., MetricFamily]:
    """``family("x", MetricType.COUNTER, [("x_total", (("a", "1"),), 3.0), ...])``."""
    return _family


@pytest.fixture
def observe() -> ObsFactory:
    """``observe(time, families, source=..., outcome=..., kind=...)`` builds an Observation."""

    def make(
        time: float,
        families: Sequence[MetricFamily] = (),
        *,
        source: str = "http://t/metrics",
        outcome: Outcome = Outcome.ACCEPTED,
        kind: ObservationKind = ObservationKind.SCRAPE,
        message: str = "",
    ) -> Observation:
        return Observation(
            kind, source, time, outcome, Transport("http"), families=tuple(families), message=message
        )

    return make


_TERM = re.compile(
    r"^(?P<a>[-+]?(?:[0-9.]+(?:e[-+]?\d+)?|Inf|NaN))(?:(?P<op>[-+])(?P<b>[0-9.]+))?x(?P<n>\d+)$"
)


def expand(spec: str) -> list[float | None]:
    """promqltest's series notation: ``0+10x3`` is 0 10 20 30, ``_`` is a missing point, ``1x2`` is 1 1 1."""
    out: list[float | None] = []
    for term in spec.split():
        if term == "_":
            out.append(None)
            continue
        match = _TERM.match(term)
        if match is None:
            out.append(float(term))
            continue
        start = float(match["a"])
        step = float(match["b"] or 0) * (-1 if match["op"] == "-" else 1)
        out.extend(start + step * i for i in range(int(match["n"]) + 1))
    return out


def load(step: float, specs: dict[str, str]) -> dict[str, list[tuple[float, float]]]:
    """``load 5m`` with series specs -> points ``(t, v)`` per series name, t in seconds from 0."""
    return {
        name: [(i * step, v) for i, v in enumerate(expand(spec)) if v is not None]
        for name, spec in specs.items()
    }


def window(
    series: dict[str, list[tuple[float, float]]],
    at: float,
    range_: float,
    *,
    left_open: bool = True,
    created: dict[str, list[float]] | None = None,
) -> tuple[list[str], SeriesBatch]:
    """The points of each series in ``(at - range, at]`` (``[..]`` if not left_open), as one batch."""
    names: list[str] = []
    views: list[SeriesView] = []
    for name, points in series.items():
        chosen = [
            (i, t, v)
            for i, (t, v) in enumerate(points)
            if (t > at - range_ if left_open else t >= at - range_) and t <= at
        ]
        if not chosen:
            continue
        names.append(name)
        created_at = None
        if created is not None and name in created:
            created_at = np.asarray([created[name][i] for i, _, _ in chosen], np.float64)
        views.append(
            SeriesView(
                labels=(("__name__", name),),
                timestamps=np.asarray([t for _, t, _ in chosen]),
                values=np.asarray([v for _, _, v in chosen]),
                created_at=created_at,
            )
        )
    return names, SeriesBatch.from_views(views)


@pytest.fixture
def promql() -> tuple[
    Callable[..., list[float | None]],
    Callable[..., dict[str, list[tuple[float, float]]]],
    Callable[..., tuple[list[str], SeriesBatch]],
]:
    """``expand, load, window = promql`` (promqltest's notation and range selection)."""
    return expand, load, window
