"""Round trips: model -> render -> parse gives the same families, with no error diagnostics.

The strategies build *valid* expositions of every type (counter, gauge,
histogram, gaugehistogram, summary, info, stateset, unknown): label values with
escapes and UTF-8, NaN and infinite values where a type allows them,
timestamps, exemplars where OpenMetrics allows them, units that are suffixes of
their names.

OpenMetrics carries all of it, so the parsed families must be equivalent to
:func:`~promscope.exposition.render.openmetrics_families` of the input (the
input itself, but for the ``_total`` naming of counters).

The text format carries less; what it keeps is exactly
:func:`~promscope.exposition.render.text_families` of the input, and that is
what the parsed families are compared with. Lost on the way, by design:

* units and exemplars (the text format has neither);
* timestamps below a millisecond (generated timestamps are whole milliseconds,
  and non-negative, since Prometheus's text parser takes digits only);
* the types info, stateset and gaugehistogram (written as gauge, gauge and
  histogram, as ``prometheus_client`` does), and the family membership of
  ``_created``, ``_gsum`` and ``_gcount`` samples (they become gauges of their own).
"""

from __future__ import annotations

import math
from collections.abc import Callable

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from promscope.exposition import parse
from promscope.exposition.render import (
    canonical_number,
    openmetrics_families,
    render_openmetrics,
    render_text,
    text_families,
)
from promscope.model import Exemplar, Format, MetricFamily, MetricType, Sample

SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SECONDARY = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
"""For the properties that mostly re-exercise what the two main ones cover."""

RESERVED_SUFFIXES = ("_total", "_created", "_bucket", "_count", "_sum", "_gcount", "_gsum", "_info")
SPECIAL_VALUES = ["", "\\", '"', "\n", '\\n"\\', "ünïcödé", "日本語", "🙂", "a b", "{}", "=,", "# x"]

# --- building blocks ---------------------------------------------------------------------------------

words = st.from_regex(r"[a-z][a-z0-9]{0,6}", fullmatch=True)
# Family names start with "m<index>_", label names never with "m": a stateset's own label cannot clash.
label_names = st.from_regex(r"[a-ln-zA-Z][a-zA-Z0-9_]{0,7}", fullmatch=True).filter(
    lambda n: n not in ("le", "quantile")
)
label_values = st.one_of(
    st.sampled_from(SPECIAL_VALUES),
    st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00\r"), max_size=12),
)
helps = st.one_of(
    st.none(),
    st.text(st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="\x00\r"), max_size=20).map(
        str.strip
    ),
    st.sampled_from(["a \\ backslash", 'a "quote"', "line\nbreak", "\\n literal"]),
)
any_floats = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, 1.0, -1.0, 0.1, 1e-300, 1e300, math.inf, -math.inf, math.nan]),
)
counts = st.integers(min_value=0, max_value=10**12).map(float)
non_negative = st.one_of(st.floats(min_value=0.0, allow_nan=False, allow_infinity=False), counts)
# Whole milliseconds, non-negative (see the module docstring).
timestamps = st.one_of(st.none(), st.integers(min_value=0, max_value=4 * 10**12).map(lambda ms: ms / 1000))


_LABEL_SET = st.dictionaries(label_names, label_values, max_size=3).map(lambda d: tuple(d.items()))
LABEL_SETS = st.lists(_LABEL_SET, max_size=3, unique_by=frozenset)
"""Distinct label sets for the metrics of one family."""
NON_EMPTY_LABEL_SETS = st.lists(_LABEL_SET, min_size=1, max_size=3, unique_by=frozenset)


@st.composite
def exemplars(draw: st.DrawFn, max_value: float = math.inf) -> Exemplar | None:
    if not draw(st.booleans()):
        return None
    labels = draw(st.dictionaries(label_names, label_values, max_size=2))
    while sum(len(k) + len(v) for k, v in labels.items()) > 128:
        labels.popitem()
    value = draw(st.floats(max_value=max_value, allow_nan=False, allow_infinity=False))
    return Exemplar(tuple(labels.items()), value, draw(timestamps))


def family_name(draw: st.DrawFn, index: int, unit: str | None = None) -> str:
    name = f"m{index}_{draw(words)}"
    if unit:
        name = f"{name}_{unit}"
    while name.endswith(RESERVED_SUFFIXES):
        name += "x"
    return name


# --- one strategy per type ---------------------------------------------------------------------------


def _gauge_like(kind: MetricType) -> Callable[[st.DrawFn, str, bool], MetricFamily]:
    def build(draw: st.DrawFn, name: str, om: bool) -> MetricFamily:
        samples = [Sample(name, labels, draw(any_floats), draw(timestamps)) for labels in draw(LABEL_SETS)]
        return MetricFamily(name, kind, draw(helps), None, tuple(samples))

    return build


def _counter(draw: st.DrawFn, name: str, om: bool) -> MetricFamily:
    samples: list[Sample] = []
    for labels in draw(LABEL_SETS):
        ts = draw(timestamps)
        total = draw(st.one_of(non_negative, st.just(math.inf)))
        samples.append(Sample(name + "_total", labels, total, ts, draw(exemplars()) if om else None))
        if draw(st.booleans()):
            samples.append(Sample(name + "_created", labels, draw(counts), ts))
    return MetricFamily(name, MetricType.COUNTER, draw(helps), None, tuple(samples))


def _histogram(gauge: bool) -> Callable[[st.DrawFn, str, bool], MetricFamily]:
    def build(draw: st.DrawFn, name: str, om: bool) -> MetricFamily:
        samples: list[Sample] = []
        for labels in draw(LABEL_SETS):
            ts = draw(timestamps)
            finite = sorted(
                set(draw(st.lists(st.floats(min_value=0.0, max_value=1e12, allow_nan=False), max_size=4)))
            )
            bounds = [*finite, math.inf]
            running = 0.0
            for bound in bounds:
                running += draw(st.integers(min_value=0, max_value=1000))
                exemplar = draw(exemplars(max_value=bound)) if om else None
                le = (*labels, ("le", canonical_number(bound)))
                samples.append(Sample(name + "_bucket", le, running, ts, exemplar))
            if draw(st.booleans()):  # _count and _sum come together (OpenMetrics)
                samples.append(Sample(name + ("_gcount" if gauge else "_count"), labels, running, ts))
                samples.append(Sample(name + ("_gsum" if gauge else "_sum"), labels, draw(non_negative), ts))
            if not gauge and draw(st.booleans()):
                samples.append(Sample(name + "_created", labels, draw(counts), ts))
        kind = MetricType.GAUGEHISTOGRAM if gauge else MetricType.HISTOGRAM
        return MetricFamily(name, kind, draw(helps), None, tuple(samples))

    return build


def _summary(draw: st.DrawFn, name: str, om: bool) -> MetricFamily:
    samples: list[Sample] = []
    for labels in draw(LABEL_SETS):
        ts = draw(timestamps)
        quantiles = sorted(set(draw(st.lists(st.floats(min_value=0.0, max_value=1.0), max_size=3))))
        for q in quantiles:
            value = draw(st.one_of(non_negative, st.just(math.nan)))
            samples.append(Sample(name, (*labels, ("quantile", canonical_number(q))), value, ts))
        samples.append(Sample(name + "_sum", labels, draw(non_negative), ts))
        samples.append(Sample(name + "_count", labels, draw(counts), ts))
        if draw(st.booleans()):
            samples.append(Sample(name + "_created", labels, draw(counts), ts))
    return MetricFamily(name, MetricType.SUMMARY, draw(helps), None, tuple(samples))


def _info(draw: st.DrawFn, name: str, om: bool) -> MetricFamily:
    samples = [Sample(name + "_info", labels, 1.0, draw(timestamps)) for labels in draw(NON_EMPTY_LABEL_SETS)]
    return MetricFamily(name, MetricType.INFO, draw(helps), None, tuple(samples))


def _stateset(draw: st.DrawFn, name: str, om: bool) -> MetricFamily:
    samples: list[Sample] = []
    for labels in draw(LABEL_SETS):
        ts = draw(timestamps)
        states = draw(st.lists(label_values, min_size=1, max_size=3, unique=True))
        for state in states:
            samples.append(Sample(name, (*labels, (name, state)), float(draw(st.booleans())), ts))
    return MetricFamily(name, MetricType.STATESET, draw(helps), None, tuple(samples))


BUILDERS: dict[MetricType, Callable[[st.DrawFn, str, bool], MetricFamily]] = {
    MetricType.COUNTER: _counter,
    MetricType.GAUGE: _gauge_like(MetricType.GAUGE),
    MetricType.UNKNOWN: _gauge_like(MetricType.UNKNOWN),
    MetricType.HISTOGRAM: _histogram(gauge=False),
    MetricType.GAUGEHISTOGRAM: _histogram(gauge=True),
    MetricType.SUMMARY: _summary,
    MetricType.INFO: _info,
    MetricType.STATESET: _stateset,
}
UNITS = st.sampled_from([None, None, "seconds", "bytes", "ratio"])


@st.composite
def expositions(draw: st.DrawFn, om: bool) -> list[MetricFamily]:
    kinds = draw(st.lists(st.sampled_from(list(MetricType)), min_size=1, max_size=5))
    families: list[MetricFamily] = []
    for index, kind in enumerate(kinds):
        unit = draw(UNITS) if om and kind not in (MetricType.INFO, MetricType.STATESET) else None
        family = BUILDERS[kind](draw, family_name(draw, index, unit), om)
        if unit:
            family = MetricFamily(family.name, family.type, family.help, unit, family.samples)
        families.append(family)
    return families


# --- the properties ----------------------------------------------------------------------------------


def _assert_equivalent(expected: list[MetricFamily], got: tuple[MetricFamily, ...], rendered: str) -> None:
    assert [f.name for f in got] == [f.name for f in expected], rendered
    for want, have in zip(expected, got, strict=True):
        assert want.equivalent(have), f"{want}\n!=\n{have}\n--- rendered:\n{rendered}"


@SETTINGS
@given(expositions(om=True))
def test_openmetrics_round_trip(families: list[MetricFamily]) -> None:
    rendered = render_openmetrics(families)
    result = parse(rendered, format="openmetrics")
    assert result.diagnostics == (), f"{result.diagnostics}\n--- rendered:\n{rendered}"
    _assert_equivalent(openmetrics_families(families), result.families, rendered)
    assert render_openmetrics(result.families) == rendered


@SETTINGS
@given(expositions(om=False))
def test_text_round_trip(families: list[MetricFamily]) -> None:
    rendered = render_text(families)
    result = parse(rendered, format="text")
    assert not result.errors(), f"{result.diagnostics}\n--- rendered:\n{rendered}"
    _assert_equivalent(text_families(families), result.families, rendered)
    assert render_text(result.families) == rendered


@SECONDARY
@given(expositions(om=True))
def test_text_keeps_what_it_can_of_openmetrics(families: list[MetricFamily]) -> None:
    """OpenMetrics input (units, exemplars) written as text loses only what the text format lacks."""
    rendered = render_text(families)
    result = parse(rendered, format="text")
    assert not result.errors(), f"{result.diagnostics}\n--- rendered:\n{rendered}"
    _assert_equivalent(text_families(families), result.families, rendered)


utf8_names = st.text(
    st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="\x00\r"), min_size=1, max_size=10
)


@SECONDARY
@given(st.lists(utf8_names, min_size=1, max_size=3, unique=True), st.data())
def test_text_1_0_0_round_trip_with_utf8_names(names: list[str], data: st.DataObject) -> None:
    families = []
    for index, raw in enumerate(names):
        name = f"{raw}.{index}"  # never a legacy name, so always quoted
        labels = data.draw(
            st.lists(
                st.dictionaries(
                    utf8_names.filter(lambda n: not n.startswith("__")), label_values, max_size=2
                ).map(lambda d: tuple(d.items())),
                max_size=2,
                unique_by=frozenset,
            )
        )
        samples = tuple(Sample(name, ls, data.draw(any_floats), data.draw(timestamps)) for ls in labels)
        families.append(MetricFamily(name, MetricType.GAUGE, data.draw(helps), None, samples))
    rendered = render_text(families, version="1.0.0")
    result = parse(rendered, format="text")
    assert not result.errors(), f"{result.diagnostics}\n--- rendered:\n{rendered}"
    assert result.extra.get("version") == "1.0.0"
    _assert_equivalent(text_families(families), result.families, rendered)


def test_openmetrics_round_trip_of_a_parsed_exposition() -> None:
    """A real-world shaped exposition: parse, render, parse again, same families."""
    body = (
        "# TYPE acme_http_router_request_seconds summary\n"
        "# UNIT acme_http_router_request_seconds seconds\n"
        "# HELP acme_http_router_request_seconds Latency though all of ACME's HTTP request router.\n"
        'acme_http_router_request_seconds_sum{path="/api/v1",method="GET"} 9036.32\n'
        'acme_http_router_request_seconds_count{path="/api/v1",method="GET"} 807283.0\n'
        'acme_http_router_request_seconds_created{path="/api/v1",method="GET"} 1605281325.0\n'
        "# TYPE go_goroutines gauge\n"
        "# HELP go_goroutines Number of goroutines that currently exist.\n"
        "go_goroutines 69\n"
        "# TYPE process_cpu_seconds counter\n"
        "# UNIT process_cpu_seconds seconds\n"
        "process_cpu_seconds_total 4.20072246e+06\n"
        "# EOF\n"
    )
    first = parse(body, format=Format.OPENMETRICS)
    assert first.diagnostics == ()
    second = parse(render_openmetrics(first.families), format=Format.OPENMETRICS)
    assert second.diagnostics == ()
    _assert_equivalent(list(first.families), second.families, body)
