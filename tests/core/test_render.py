"""Model -> text, checked against prometheus_client's own expositions and parsers."""

from __future__ import annotations

import math
from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeHistogramMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    StateSetMetricFamily,
    SummaryMetricFamily,
    UnknownMetricFamily,
)
from prometheus_client.metrics_core import Metric
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_client_om
from prometheus_client.parser import text_string_to_metric_families as parse_client_text

from promscope.exposition.render import (
    canonical_number,
    escape_name,
    format_value,
    openmetrics_families,
    render_openmetrics,
    render_text,
    text_families,
)
from promscope.model import BucketSpan, Exemplar, MetricFamily, MetricType, NativeHistogram, Sample

HELP = 'help \\ me\nnow "quoted"'


def S(
    name: str, value: float, *labels: tuple[str, str], ts: float | None = None, ex: Exemplar | None = None
) -> Sample:
    return Sample(name, tuple(labels), value, ts, ex)


def model() -> list[MetricFamily]:
    """The same families as :class:`_ClientCollector` yields, in promscope's model."""
    return [
        MetricFamily(
            "foo",
            MetricType.COUNTER,
            HELP,
            None,
            (S("foo_total", 1.0, ("a", 'x"y\\z\nw')), S("foo_created", 123.0, ("a", 'x"y\\z\nw'))),
        ),
        MetricFamily("bar", MetricType.INFO, "b", None, (S("bar_info", 1.0, ("v", "1")),)),
        MetricFamily(
            "ss", MetricType.STATESET, "s", None, (S("ss", 1.0, ("ss", "a")), S("ss", 0.0, ("ss", "b")))
        ),
        MetricFamily(
            "gh",
            MetricType.GAUGEHISTOGRAM,
            "d",
            None,
            (
                S("gh_bucket", 2.0, ("le", "1.0")),
                S("gh_bucket", 3.0, ("le", "+Inf")),
                S("gh_gcount", 3.0),
                S("gh_gsum", 4.0),
            ),
        ),
        MetricFamily(
            "h_seconds",
            MetricType.HISTOGRAM,
            "d",
            "seconds",
            (
                S("h_seconds_bucket", 2.0, ("le", "1.0")),
                S("h_seconds_bucket", 3.0, ("le", "+Inf")),
                S("h_seconds_count", 3.0),
                S("h_seconds_sum", 4.0),
            ),
        ),
        MetricFamily("s", MetricType.SUMMARY, "d", None, (S("s_count", 1.0), S("s_sum", 2.0))),
        MetricFamily("u", MetricType.UNKNOWN, "d", None, (S("u", 1.0),)),
    ]


class _ClientCollector:
    def collect(self) -> Iterator[Metric]:
        counter = CounterMetricFamily("foo", HELP, labels=["a"])
        counter.add_metric(['x"y\\z\nw'], 1.0, created=123.0)
        yield counter
        yield InfoMetricFamily("bar", "b", value={"v": "1"})
        yield StateSetMetricFamily("ss", "s", value={"a": True, "b": False})
        yield GaugeHistogramMetricFamily("gh", "d", buckets=[("1.0", 2.0), ("+Inf", 3.0)], gsum_value=4.0)
        yield HistogramMetricFamily(
            "h", "d", buckets=[("1.0", 2.0), ("+Inf", 3.0)], sum_value=4.0, unit="seconds"
        )
        yield SummaryMetricFamily("s", "d", count_value=1, sum_value=2.0)
        yield UnknownMetricFamily("u", "d", value=1.0)


def _client_registry() -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(_ClientCollector())  # type: ignore[arg-type]
    return registry


def _client_view(metrics: Iterator[Metric]) -> list[tuple[object, ...]]:
    return [
        (
            m.name,
            m.type,
            m.documentation,
            m.unit,
            [(s.name, s.labels, s.value, s.timestamp) for s in m.samples],
        )
        for m in metrics
    ]


# --- numbers -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "text"),
    [
        # the examples in OpenMetrics 1.0, "Considerations: Canonical Numbers"
        (0.0, "0.0"),
        (0.001, "0.001"),
        (0.002, "0.002"),
        (0.01, "0.01"),
        (0.1, "0.1"),
        (0.9, "0.9"),
        (0.95, "0.95"),
        (0.99, "0.99"),
        (0.999, "0.999"),
        (1.0, "1.0"),
        (1.7, "1.7"),
        (10.0, "10.0"),
        (1e-10, "1e-10"),
        (1e-09, "1e-09"),
        (1e-05, "1e-05"),
        (0.0001, "0.0001"),
        (100000.0, "100000.0"),
        (1e06, "1e+06"),
        (1e10, "1e+10"),
        # the histogram example's bounds, and Go's shortest %g around them
        (1e23, "1e+23"),
        (1.1e23, "1.1e+23"),
        (123456.0, "123456.0"),
        (1234567.0, "1.234567e+06"),
        (0.00012, "0.00012"),
        (0.000012, "1.2e-05"),
        (-2.5, "-2.5"),
        (-0.0, "-0.0"),
        (5e-324, "5e-324"),
        (math.inf, "+Inf"),
        (-math.inf, "-Inf"),
        (math.nan, "NaN"),
    ],
)
def test_canonical_number(value: float, text: str) -> None:
    assert canonical_number(value) == text


def test_canonical_number_round_trips() -> None:
    for exponent in range(-30, 30):
        for mantissa in (1.0, 2.5, 1.2345678901234567, 9.999999999999998):
            value = mantissa * 10.0**exponent
            assert float(canonical_number(value)) == value
            assert float(canonical_number(-value)) == -value


@pytest.mark.parametrize(
    ("value", "text"),
    [(1.0, "1.0"), (0.1, "0.1"), (1e16, "1e+16"), (math.inf, "+Inf"), (-math.inf, "-Inf"), (math.nan, "NaN")],
)
def test_format_value(value: float, text: str) -> None:
    assert format_value(value) == text


def test_format_value_round_trips_exactly() -> None:
    for value in (0.1 + 0.2, 1 / 3, 2.0**-1074, 1.7976931348623157e308, -123456789.123456789):
        assert float(format_value(value)) == value


# --- text --------------------------------------------------------------------------------------------


def test_text_matches_prometheus_client_byte_for_byte() -> None:
    expected = generate_latest(_client_registry()).decode()
    assert render_text(model()) == expected


def test_text_parses_with_prometheus_client() -> None:
    ours = _client_view(parse_client_text(render_text(model())))
    theirs = _client_view(parse_client_text(generate_latest(_client_registry()).decode()))
    assert ours == theirs


def test_text_basics() -> None:
    families = [
        MetricFamily(
            "g",
            MetricType.GAUGE,
            None,
            None,
            (S("g", math.nan, ("a", "1"), ts=1.5), S("g", -math.inf, ts=-0.25), S("g", 2.0, ts=1234.5678)),
        ),
        MetricFamily("empty", MetricType.COUNTER, "", None, ()),
    ]
    assert render_text(families) == (
        '# TYPE g gauge\ng{a="1"} NaN 1500\ng -Inf -250\ng 2.0 1234568\n# HELP empty \n# TYPE empty counter\n'
    )
    assert render_text([]) == ""


def test_text_drops_what_it_cannot_carry() -> None:
    ex = Exemplar((("trace_id", "a"),), 1.0, 2.0)
    family = MetricFamily(
        "c_seconds", MetricType.COUNTER, None, "seconds", (S("c_seconds_total", 1.0, ex=ex),)
    )
    (projected,) = text_families([family])
    assert projected.name == "c_seconds_total" and projected.unit is None
    assert projected.samples[0].exemplar is None
    assert render_text([family]) == "# TYPE c_seconds_total counter\nc_seconds_total 1.0\n"


def test_text_counter_already_named_after_its_samples() -> None:
    family = MetricFamily("c_total", MetricType.COUNTER, None, None, (S("c_total", 1.0), S("c_created", 5.0)))
    assert render_text([family]) == (
        "# TYPE c_total counter\nc_total 1.0\n# TYPE c_created gauge\nc_created 5.0\n"
    )


def test_text_1_0_0_quotes_utf8_names() -> None:
    family = MetricFamily(
        "my.metric",
        MetricType.GAUGE,
        "h",
        None,
        (S("my.metric", 1.0, ("my.label", "v"), ("ok", "w")), S("my.metric", 2.0)),
    )
    assert render_text([family], version="1.0.0") == (
        '# HELP "my.metric" h\n# TYPE "my.metric" gauge\n'
        '{"my.metric","my.label"="v",ok="w"} 1.0\n{"my.metric"} 2.0\n'
    )
    legacy = MetricFamily("ok", MetricType.GAUGE, None, None, (S("ok", 1.0, ("a", "b")),))
    assert render_text([legacy], version="1.0.0") == render_text([legacy])


def test_text_0_0_4_escapes_utf8_names_with_underscores() -> None:
    family = MetricFamily("my.metric", MetricType.GAUGE, None, None, (S("my.metric", 1.0, ("1label", "v")),))
    assert render_text([family]) == '# TYPE my_metric gauge\nmy_metric{_1label="v"} 1.0\n'
    assert escape_name("1abc") == "_1abc" and escape_name("ä:b") == "_:b"
    assert escape_name("a:b", label=True) == "a_b"


def test_text_rejects_unknown_versions() -> None:
    with pytest.raises(ValueError, match=r"0\.0\.4"):
        render_text([], version="2.0")


# --- OpenMetrics -------------------------------------------------------------------------------------


def test_openmetrics_parses_like_prometheus_clients_own() -> None:
    ours = render_openmetrics(model())
    assert ours.endswith("# EOF\n")
    theirs = generate_openmetrics(_client_registry()).decode()
    assert _client_view(parse_client_om(ours)) == _client_view(parse_client_om(theirs))


def test_openmetrics_metadata_order_exemplars_and_timestamps() -> None:
    ex = Exemplar((("trace_id", 'a"b'),), 0.5, 1520879607.789)
    family = MetricFamily(
        "h_seconds",
        MetricType.HISTOGRAM,
        'x "y"',
        "seconds",
        (
            S("h_seconds_bucket", 1.0, ("le", "1.0"), ts=1520879607.5, ex=ex),
            S("h_seconds_bucket", 1.0, ("le", "+Inf"), ts=1520879607.5, ex=Exemplar((), 0.25)),
            S("h_seconds_count", 1.0, ts=1520879607.5),
            S("h_seconds_sum", 0.5, ts=1520879607.5),
        ),
    )
    assert render_openmetrics([family]) == (
        "# TYPE h_seconds histogram\n"
        "# UNIT h_seconds seconds\n"
        '# HELP h_seconds x \\"y\\"\n'
        'h_seconds_bucket{le="1.0"} 1.0 1520879607.5 # {trace_id="a\\"b"} 0.5 1520879607.789\n'
        'h_seconds_bucket{le="+Inf"} 1.0 1520879607.5 # {} 0.25\n'
        "h_seconds_count 1.0 1520879607.5\n"
        "h_seconds_sum 0.5 1520879607.5\n"
        "# EOF\n"
    )
    # prometheus_client's parser trips over an escaped quote inside exemplar labels; without one it agrees
    plain = render_openmetrics([family]).replace('a\\"b', "ab")
    (parsed,) = parse_client_om(plain)
    assert parsed.samples[0].exemplar.labels == {"trace_id": "ab"}
    assert float(parsed.samples[0].exemplar.timestamp) == 1520879607.789


def test_openmetrics_counter_names() -> None:
    text_style = MetricFamily(
        "c_total", MetricType.COUNTER, None, None, (S("c_total", 1.0), S("c_created", 5.0))
    )
    bare = MetricFamily("d", MetricType.COUNTER, None, None, (S("d", 1.0),))
    assert render_openmetrics([text_style, bare]) == (
        "# TYPE c counter\nc_total 1.0\nc_created 5.0\n# TYPE d counter\nd_total 1.0\n# EOF\n"
    )
    assert [f.name for f in openmetrics_families([text_style, bare])] == ["c", "d"]


def test_openmetrics_empty() -> None:
    assert render_openmetrics([]) == "# EOF\n"


# --- native histograms -------------------------------------------------------------------------------


def _native(**kwargs: object) -> NativeHistogram:
    defaults: dict[str, object] = {
        "schema": 0,
        "zero_threshold": 0.001,
        "zero_count": 1.0,
        "count": 6.0,
        "sum": 7.5,
        "positive_spans": (BucketSpan(0, 2), BucketSpan(1, 1)),
        "positive_counts": (1.0, 2.0, 1.0),
        "negative_spans": (BucketSpan(1, 1),),
        "negative_counts": (1.0,),
    }
    defaults.update(kwargs)
    return NativeHistogram(**defaults)  # type: ignore[arg-type]


def test_native_histogram_becomes_classic_buckets() -> None:
    sample = Sample("h", (("job", "a"),), 6.0, None, None, 1, _native())
    family = MetricFamily("h", MetricType.HISTOGRAM, None, None, (sample,))
    assert render_text([family]) == (
        "# TYPE h histogram\n"
        'h_bucket{job="a",le="-1.0"} 1.0\n'  # negative bucket 1 covers [-2, -1)
        'h_bucket{job="a",le="0.001"} 2.0\n'  # the zero bucket
        'h_bucket{job="a",le="1.0"} 3.0\n'  # positive bucket 0: (0.5, 1]
        'h_bucket{job="a",le="2.0"} 5.0\n'  # positive bucket 1: (1, 2]
        'h_bucket{job="a",le="8.0"} 6.0\n'  # positive bucket 3 after a gap of one
        'h_bucket{job="a",le="+Inf"} 6.0\n'
        'h_count{job="a"} 6.0\n'
        'h_sum{job="a"} 7.5\n'
    )
    # and the result is a valid OpenMetrics histogram apart from the negative bound with a _sum
    assert "h_bucket" in render_openmetrics([family])


def test_native_histogram_with_classic_buckets_keeps_the_classic_ones() -> None:
    classic = (
        S("h_bucket", 6.0, ("le", "+Inf")),
        S("h_count", 6.0),
        S("h_sum", 7.5),
    )
    family = MetricFamily(
        "h", MetricType.HISTOGRAM, None, None, (Sample("h", (), 6.0, None, None, 1, _native()), *classic)
    )
    assert render_text([family]) == '# TYPE h histogram\nh_bucket{le="+Inf"} 6.0\nh_count 6.0\nh_sum 7.5\n'


def test_native_histogram_with_unknown_schema_keeps_count_and_sum() -> None:
    family = MetricFamily(
        "h", MetricType.HISTOGRAM, None, None, (Sample("h", (), 6.0, None, None, 1, _native(schema=-53)),)
    )
    assert render_text([family]) == '# TYPE h histogram\nh_bucket{le="+Inf"} 6.0\nh_count 6.0\nh_sum 7.5\n'
