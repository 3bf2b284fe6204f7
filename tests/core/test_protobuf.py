"""The protobuf exposition format: decoding, encoding, framing errors and a real node_exporter."""

from __future__ import annotations

import math
import pathlib
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from promscope.exposition import parse
from promscope.exposition._diag import DiagnosticSink, ParseLimits
from promscope.exposition._proto import metrics_pb2 as pb
from promscope.exposition.protobuf import CODES, encode_protobuf, format_go_float, parse_protobuf
from promscope.model import (
    BucketSpan,
    Exemplar,
    MetricFamily,
    MetricType,
    NativeHistogram,
    Sample,
    Severity,
)

FIXTURES = pathlib.Path(__file__).resolve().parents[2] / "fixtures"
VALID = FIXTURES / "valid" / "protobuf"
INVALID = FIXTURES / "invalid" / "protobuf"
PROTO_ACCEPT = "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited"


def delimited(*messages: pb.MetricFamily | bytes) -> bytes:
    out = bytearray()
    for message in messages:
        body = message if isinstance(message, bytes) else message.SerializeToString()
        length = len(body)
        while length > 0x7F:
            out.append((length & 0x7F) | 0x80)
            length >>= 7
        out.append(length)
        out += body
    return bytes(out)


def decode(data: bytes, limits: ParseLimits | None = None) -> tuple[list[MetricFamily], int, DiagnosticSink]:
    sink = DiagnosticSink()
    families, messages = parse_protobuf(data, sink, limits or ParseLimits())
    return families, messages, sink


def codes(sink: DiagnosticSink) -> list[tuple[int, str]]:
    return sorted((d.line, d.code) for d in sink.diagnostics)


def by_name(family: MetricFamily) -> dict[tuple[str, tuple[tuple[str, str], ...]], Sample]:
    return {s.key(): s for s in family.samples}


# --------------------------------------------------------------------------- number formatting


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1.0, "1.0"),
        (0.0, "0.0"),
        (-0.0, "0.0"),
        (-1.0, "-1.0"),
        (0.005, "0.005"),
        (0.25, "0.25"),
        (2.5, "2.5"),
        (60.0, "60.0"),
        (100000.0, "100000.0"),
        (123456.7, "123456.7"),
        (1e6, "1e+06"),
        (1234567.0, "1.234567e+06"),
        (1e-4, "0.0001"),
        (1e-5, "1e-05"),
        (1.5e-7, "1.5e-07"),
        (1e22, "1e+22"),
        (1.7976931348623157e308, "1.7976931348623157e+308"),
        (math.inf, "+Inf"),
        (-math.inf, "-Inf"),
        (math.nan, "NaN"),
    ],
)
def test_le_and_quantile_values_are_formatted_as_prometheus_formats_them(value: float, expected: str) -> None:
    # Expected strings are Go's strconv.FormatFloat(v, 'g', -1, 64) plus ".0" when needed,
    # i.e. what Prometheus' formatOpenMetricsFloat gives.
    assert format_go_float(value) == expected


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_formatted_floats_read_back_exactly(value: float) -> None:
    assert float(format_go_float(value)) == value


# --------------------------------------------------------------------------- mapping to the model


def test_every_metric_type_maps_as_prometheus_presents_it() -> None:
    families, messages, sink = decode((VALID / "all_types.pb").read_bytes())
    assert sink.diagnostics == []
    assert messages == 6
    names = {f.name: f for f in families}
    assert [f.type for f in families] == [
        MetricType.COUNTER,
        MetricType.GAUGE,
        MetricType.UNKNOWN,
        MetricType.SUMMARY,
        MetricType.HISTOGRAM,
        MetricType.GAUGEHISTOGRAM,
    ]

    counter = names["http_requests_total"]
    assert counter.help == "Requests served." and counter.unit is None and counter.line == 1
    assert [(s.name, s.label("code"), s.value) for s in counter.samples] == [
        ("http_requests_total", "200", 1027.0),
        ("http_requests_created", "200", 1_700_000_000.0),
        ("http_requests_total", "500", 3.0),
        ("http_requests_created", "500", 1_700_000_000.0),
    ]
    assert counter.samples[0].labels == (("method", "get"), ("code", "200"))  # input order kept
    assert counter.samples[2].exemplar == Exemplar((("trace_id", "4bf92f3577b34da6"),), 1.0, 1_700_000_100.25)

    gauge = names["temperature_celsius"]
    assert gauge.unit == "celsius"
    assert gauge.samples[0].timestamp == pytest.approx(1_700_000_000.123)
    assert gauge.samples[0].line == 2

    assert names["some_untyped"].samples[0].value == -7.25

    summary = names["rpc_duration_seconds"]
    assert [(s.name, s.label("quantile"), s.value) for s in summary.samples] == [
        ("rpc_duration_seconds", "0.5", 0.25),
        ("rpc_duration_seconds", "0.9", 0.75),
        ("rpc_duration_seconds", "0.99", 1.5),
        ("rpc_duration_seconds_sum", None, 17.5),
        ("rpc_duration_seconds_count", None, 42.0),
        ("rpc_duration_seconds_created", None, 1_699_999_000.0),
    ]

    histogram = names["request_size_bytes"]
    assert [(s.name, s.label("le"), s.value) for s in histogram.samples] == [
        ("request_size_bytes_bucket", "100.0", 2.0),
        ("request_size_bytes_bucket", "1000.0", 7.0),
        ("request_size_bytes_bucket", "1e+06", 9.0),
        ("request_size_bytes_bucket", "+Inf", 10.0),  # added: the classic buckets lacked it
        ("request_size_bytes_sum", None, 5234.0),
        ("request_size_bytes_count", None, 10.0),
        ("request_size_bytes_created", None, 1_699_998_000.0),
    ]
    assert histogram.samples[1].exemplar is not None
    assert histogram.samples[1].exemplar.labels == (("trace_id", "00f067aa0ba902b7"),)
    assert all(s.label("handler") == "/api" for s in histogram.samples)

    gauge_histogram = names["queue_wait_seconds"]
    buckets = [s for s in gauge_histogram.samples if s.name.endswith("_bucket")]
    assert [s.label("le") for s in buckets] == ["0.5", "1.0", "+Inf"]  # explicit +Inf not doubled


def test_native_histogram_buckets_decode_to_hand_computed_counts() -> None:
    families, _, sink = decode((VALID / "native_histograms.pb").read_bytes())
    assert sink.diagnostics == []
    native = families[0].samples[0]
    assert native.name == "rpc_latency_seconds"
    assert native.value == 8.0  # the sample value is the observation count
    h = native.native_histogram
    assert h is not None
    assert (h.schema, h.zero_threshold, h.zero_count, h.count, h.sum) == (0, 1e-128, 1.0, 8.0, 21.25)
    # spans (0,2),(2,1) and deltas 2,1,-2: buckets 0 and 1 hold 2 and 3, bucket 4 holds 1.
    assert h.positive_spans == (BucketSpan(0, 2), BucketSpan(2, 1))
    assert h.positive_counts == (2.0, 3.0, 1.0)
    assert h.buckets() == [(0, 2.0), (1, 3.0), (4, 1.0)]
    assert h.buckets(positive=False) == [(1, 1.0)]
    assert h.bucket_bounds(4) == (8.0, 16.0)  # schema 0: (2**3, 2**4]
    assert h.zero_count + sum(c for _, c in h.buckets()) + sum(c for _, c in h.buckets(False)) == h.count
    assert native.exemplar == Exemplar((("trace_id", "abc123"),), 3.5, 1_700_000_300.25)
    assert families[0].samples[1].name == "rpc_latency_seconds_created"

    floats = families[1]
    assert floats.type is MetricType.GAUGEHISTOGRAM
    fh = floats.samples[0].native_histogram
    assert fh is not None
    assert (fh.count, fh.zero_count) == (4.5, 0.5)
    assert fh.buckets() == [(-2, 1.0), (-1, 2.5), (0, 0.5)]  # float counts are absolute, not deltas
    lower, upper = fh.bucket_bounds(-1)  # schema 1: base sqrt(2)
    assert lower == pytest.approx(0.5) and upper == pytest.approx(2**-0.5)

    both = families[2]
    assert [s.name for s in both.samples] == [
        "job_duration_seconds",
        "job_duration_seconds_bucket",
        "job_duration_seconds_bucket",
        "job_duration_seconds_bucket",
        "job_duration_seconds_sum",
        "job_duration_seconds_count",
    ]
    bh = both.samples[0].native_histogram
    assert bh is not None and bh.buckets() == [(0, 2.0), (8, 1.0)]
    assert bh.bucket_bounds(8) == pytest.approx((2 ** (7 / 8), 2.0))  # schema 3

    empty = families[3].samples[0]
    assert empty.native_histogram is not None
    assert empty.native_histogram.positive_spans == ()  # the no-op span only marks it native
    assert empty.value == 0.0


def test_native_histogram_exemplar_falls_back_to_timestamped_bucket_exemplars() -> None:
    family = pb.MetricFamily(name="lat", type=pb.HISTOGRAM)
    h = family.metric.add().histogram
    h.schema = 0
    h.zero_threshold = 1e-128
    h.sample_count = 1
    h.positive_span.add(offset=0, length=1)
    h.positive_delta.append(1)
    h.exemplars.add(value=9.0)  # no timestamp: Prometheus drops it for native histograms
    untimed = h.bucket.add(upper_bound=1.0, cumulative_count=1)
    untimed.exemplar.value = 0.5
    timed = h.bucket.add(upper_bound=2.0, cumulative_count=1)
    timed.exemplar.value = 1.5
    timed.exemplar.timestamp.seconds = 10
    families, _, sink = decode(delimited(family))
    assert sink.diagnostics == []
    native = families[0].samples[0]
    assert native.exemplar == Exemplar((), 1.5, 10.0)
    buckets = [s for s in families[0].samples if s.name == "lat_bucket"]
    assert buckets[0].exemplar == Exemplar((), 0.5, None)  # classic buckets keep theirs


def test_metric_and_label_names_are_taken_as_given() -> None:
    families, _, sink = decode((VALID / "utf8_names.pb").read_bytes())
    assert sink.diagnostics == []
    sample = families[0].samples[0]
    assert families[0].name == "http.server.duration"
    assert sample.labels == (("service.name", "café"), ("région", "ñandú ✓"))


def test_a_family_without_a_type_field_is_a_counter_as_in_proto2() -> None:
    family = pb.MetricFamily(name="no_type_total")
    family.metric.add().counter.value = 4
    families, _, sink = decode(delimited(family))
    assert sink.diagnostics == []
    assert families[0].type is MetricType.COUNTER
    assert families[0].samples[0].value == 4.0


def test_timestamp_ms_is_converted_to_seconds_and_applies_to_every_derived_sample() -> None:
    family = pb.MetricFamily(name="s", type=pb.SUMMARY)
    metric = family.metric.add(timestamp_ms=1_500)
    metric.summary.sample_count = 1
    metric.summary.quantile.add(quantile=0.5, value=2)
    families, _, _ = decode(delimited(family))
    assert {s.timestamp for s in families[0].samples} == {1.5}


def test_an_empty_body_is_zero_messages_and_no_diagnostic() -> None:
    families, messages, sink = decode(b"")
    assert (families, messages, sink.diagnostics) == ([], 0, [])


def test_empty_families_are_kept_with_their_metadata() -> None:
    families, messages, sink = decode(delimited(pb.MetricFamily(name="idle", help="h", type=pb.GAUGE)))
    assert (messages, sink.diagnostics) == (1, [])
    assert families[0] == MetricFamily("idle", MetricType.GAUGE, "h", None, (), 1)


# --------------------------------------------------------------------------- framing and message problems


def test_a_message_that_does_not_decode_is_skipped_and_the_next_one_read() -> None:
    data = delimited(b"\x0f\x00\x00", pb.MetricFamily(name="after", type=pb.GAUGE, metric=[pb.Metric()]))
    families, messages, sink = decode(data)
    assert messages == 2
    assert codes(sink) == [(1, "PB-105"), (2, "PB-206")]
    assert "at byte 0" in sink.diagnostics[0].message
    assert [f.name for f in families] == ["after"]


@pytest.mark.parametrize(
    ("tail", "code", "left"),
    [
        (b"\x80", "PB-101", "1 byte(s) left"),
        (b"\xff" * 10 + b"\x01", "PB-102", "remaining 11 bytes"),
        (b"\x80\x80\x80\x80\x80\x80\x01", "PB-103", "remaining 7 bytes"),
        (b"\x64abc", "PB-104", "only 3 remain"),
    ],
)
def test_a_bad_length_prefix_stops_parsing_and_says_how_much_was_left(
    tail: bytes, code: str, left: str
) -> None:
    good = delimited(pb.MetricFamily(name="up", type=pb.GAUGE))
    families, messages, sink = decode(good + tail)
    assert [f.name for f in families] == ["up"]
    assert messages == 1  # the unframed rest is not a message
    [diagnostic] = sink.diagnostics
    assert (diagnostic.code, diagnostic.line, diagnostic.column, diagnostic.severity) == (
        code,
        2,
        0,
        Severity.ERROR,
    )
    assert f"at byte {len(good)}" in diagnostic.message
    assert left in diagnostic.message


def test_invalid_utf8_help_is_reported_and_replaced() -> None:
    body = b"\x0a\x02up\x12\x03a\xffb\x18\x01"
    families, _, sink = decode(delimited(body))
    assert codes(sink) == [(1, "PB-205")]
    assert families[0].help == "a\ufffdb"


def test_a_metric_with_bad_labels_is_skipped_and_its_siblings_kept() -> None:
    family = pb.MetricFamily(name="g", type=pb.GAUGE)
    bad = family.metric.add(gauge=pb.Gauge(value=1))
    bad.label.add(name="a", value="1")
    bad.label.add(name="a", value="2")
    good = family.metric.add(gauge=pb.Gauge(value=3))
    good.label.add(name="a", value="3")
    families, _, sink = decode(delimited(family))
    assert codes(sink) == [(1, "PB-204")]
    assert [s.labels for s in families[0].samples] == [(("a", "3"),)]


@pytest.mark.parametrize(
    ("limits", "label"),
    [
        (ParseLimits(max_labels=2), [("a", "1"), ("b", "2"), ("c", "3")]),
        (ParseLimits(max_label_name_length=4), [("abcde", "1")]),
        (ParseLimits(max_label_value_length=4), [("a", "12345")]),
    ],
)
def test_label_limits_are_diagnostics(limits: ParseLimits, label: list[tuple[str, str]]) -> None:
    family = pb.MetricFamily(name="g", type=pb.GAUGE)
    metric = family.metric.add(gauge=pb.Gauge(value=1))
    for name, value in label:
        metric.label.add(name=name, value=value)
    families, _, sink = decode(delimited(family), limits)
    assert codes(sink) == [(1, "PB-211")]
    assert families[0].samples == ()


def test_limits_sum_over_all_labels_only_as_a_fast_path() -> None:
    # Two names of 3 characters are within a limit of 4 even though together they are 6.
    family = pb.MetricFamily(name="g", type=pb.GAUGE)
    metric = family.metric.add(gauge=pb.Gauge(value=1))
    metric.label.add(name="abc", value="1234")
    metric.label.add(name="def", value="5678")
    limits = ParseLimits(max_label_name_length=4, max_label_value_length=4)
    families, _, sink = decode(delimited(family), limits)
    assert sink.diagnostics == []
    assert len(families[0].samples) == 1


def test_the_sample_limit_stops_decoding() -> None:
    families_in = []
    for i in range(3):
        family = pb.MetricFamily(name=f"g{i}", type=pb.GAUGE)
        for j in range(2):
            family.metric.add(gauge=pb.Gauge(value=j)).label.add(name="j", value=str(j))
        families_in.append(family)
    families, messages, sink = decode(delimited(*families_in), ParseLimits(max_samples=3))
    assert codes(sink) == [(2, "PB-212")]
    assert sum(len(f.samples) for f in families) == 3
    assert messages == 2


def test_every_pb_code_has_a_fixture_or_a_test() -> None:
    fixture_codes = set()
    for expected in INVALID.glob("*.expected"):
        for line in expected.read_text().splitlines():
            if line and not line.startswith("#"):
                fixture_codes.add(line.split()[2])
    tested_here = {"PB-212"}
    assert set(CODES) == fixture_codes | tested_here
    assert all(code.startswith("PB-") for code in CODES)


def test_invalid_fixtures_are_up_to_date_with_their_generator() -> None:
    # generate.py writes the fixtures deterministically; it must agree with what is committed.
    import importlib.util

    spec = importlib.util.spec_from_file_location("pb_invalid_generate", INVALID / "generate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for name, (data, expected, _) in module.CASES.items():
        assert (INVALID / f"{name}.pb").read_bytes() == data, name
        assert (INVALID / f"{name}.expected").read_text().splitlines()[1:] == expected, name


# --------------------------------------------------------------------------- encoding and round trips


@pytest.mark.parametrize("path", sorted(VALID.glob("*.pb")), ids=lambda p: p.name)
def test_valid_fixtures_round_trip(path: pathlib.Path) -> None:
    families, messages, sink = decode(path.read_bytes())
    assert sink.diagnostics == []
    again, messages_again, sink_again = decode(encode_protobuf(families))
    assert sink_again.diagnostics == []
    assert messages_again == messages
    assert len(again) == len(families)
    for a, b in zip(families, again, strict=True):
        assert a.equivalent(b), a.name


def test_node_exporter_capture_reencodes_to_the_same_bytes() -> None:
    data = (VALID / "node_exporter.pb").read_bytes()
    families, _, _ = decode(data)
    assert encode_protobuf(families) == data


def test_encode_maps_types_prometheus_lacks() -> None:
    families = [
        MetricFamily("build", MetricType.INFO, samples=(Sample("build_info", (("v", "1"),), 1.0),)),
        MetricFamily("state", MetricType.STATESET, samples=(Sample("state", (("state", "on"),), 1.0),)),
        MetricFamily("odd", MetricType.UNKNOWN, samples=(Sample("odd", (), 2.0),)),
    ]
    decoded, _, _ = decode(encode_protobuf(families))
    assert [f.type for f in decoded] == [MetricType.GAUGE, MetricType.GAUGE, MetricType.UNKNOWN]


def test_openmetrics_shaped_counters_encode_under_their_sample_name() -> None:
    family = MetricFamily(
        "jobs",
        MetricType.COUNTER,
        samples=(Sample("jobs_total", (), 5.0), Sample("jobs_created", (), 1_700_000_000.5)),
    )
    [decoded], _, _ = decode(encode_protobuf([family]))
    assert decoded.name == "jobs_total"
    assert [(s.name, s.value) for s in decoded.samples] == [
        ("jobs_total", 5.0),
        ("jobs_created", 1_700_000_000.5),
    ]


def test_native_histograms_encode_with_deltas_or_float_counts() -> None:
    integral = NativeHistogram(
        schema=1,
        zero_threshold=0.0,
        zero_count=0.0,
        count=6.0,
        sum=3.0,
        positive_spans=(BucketSpan(-1, 2), BucketSpan(3, 1)),
        positive_counts=(1.0, 4.0, 1.0),
    )
    fractional = NativeHistogram(
        schema=1, zero_threshold=0.0, zero_count=0.5, count=1.5, sum=3.0,
        positive_spans=(BucketSpan(0, 1),), positive_counts=(1.0,),
    )  # fmt: skip
    families = [
        MetricFamily("i", MetricType.HISTOGRAM, samples=(Sample("i", (), 6.0, native_histogram=integral),)),
        MetricFamily("f", MetricType.HISTOGRAM, samples=(Sample("f", (), 1.5, native_histogram=fractional),)),
    ]
    data = encode_protobuf(families)
    messages = _split(data)
    assert list(messages[0].metric[0].histogram.positive_delta) == [1, 3, -3]
    assert list(messages[0].metric[0].histogram.positive_count) == []
    assert list(messages[1].metric[0].histogram.positive_count) == [1.0]
    assert messages[1].metric[0].histogram.zero_count_float == 0.5
    decoded, _, sink = decode(data)
    assert sink.diagnostics == []
    assert all(a.equivalent(b) for a, b in zip(families, decoded, strict=True))


def _split(data: bytes) -> list[pb.MetricFamily]:
    out = []
    pos = 0
    while pos < len(data):
        length = shift = 0
        while True:
            byte = data[pos]
            pos += 1
            length |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                break
        message = pb.MetricFamily()
        message.ParseFromString(data[pos : pos + length])
        out.append(message)
        pos += length
    return out


# Hypothesis: model families in the shape parse_protobuf produces survive encode -> parse.

_names = st.from_regex(r"[a-z][a-z0-9_]{0,12}", fullmatch=True).filter(lambda n: not n.startswith("__"))
_label_values = st.text(max_size=8)
_labels = st.dictionaries(
    _names.filter(lambda n: n not in ("le", "quantile")), _label_values, max_size=3
).map(lambda d: tuple(d.items()))
_floats = st.floats(allow_nan=False, width=64)
_counts = st.integers(min_value=0, max_value=2**53).map(float)
_timestamps = st.one_of(st.none(), st.integers(min_value=0, max_value=2**41).map(lambda ms: ms / 1000))
_exemplars = st.one_of(
    st.none(),
    st.builds(
        Exemplar,
        _labels,
        _floats,
        st.one_of(st.none(), st.integers(0, 2**32).map(lambda q: q / 4)),
    ),
)


@st.composite
def _native(draw: st.DrawFn) -> NativeHistogram:
    def side() -> tuple[tuple[BucketSpan, ...], tuple[float, ...]]:
        spans = tuple(
            BucketSpan(draw(st.integers(-20, 20)), draw(st.integers(1, 4)))
            for _ in range(draw(st.integers(0, 3)))
        )
        counts = tuple(draw(_counts) for _ in range(sum(s.length for s in spans)))
        return spans, counts

    positive_spans, positive_counts = side()
    negative_spans, negative_counts = side()
    integral = draw(st.booleans())
    if not integral:
        positive_counts = tuple(c + 0.5 for c in positive_counts)
    zero_count = draw(_counts) + (0.0 if integral else 0.25)
    return NativeHistogram(
        schema=draw(st.integers(-4, 8)),
        zero_threshold=draw(st.sampled_from([0.0, 1e-128, 0.001])),
        zero_count=zero_count,
        count=zero_count + sum(positive_counts) + sum(negative_counts),
        sum=draw(_floats),
        positive_spans=positive_spans,
        positive_counts=positive_counts,
        negative_spans=negative_spans,
        negative_counts=negative_counts,
    )


@st.composite
def _family(draw: st.DrawFn) -> MetricFamily:
    kind = draw(st.sampled_from(list(MetricType)))
    name = draw(_names)
    help_text = draw(st.one_of(st.none(), st.text(max_size=20)))
    samples: list[Sample] = []
    seen: set[tuple[tuple[str, str], ...]] = set()
    for labels in draw(st.lists(_labels, max_size=3)):
        key = tuple(sorted(labels))
        if key in seen:
            continue
        seen.add(key)
        ts = draw(_timestamps)
        created = draw(st.one_of(st.none(), st.integers(0, 2**33).map(lambda q: q / 4)))

        def add(
            sample_name: str,
            value: float,
            extra: tuple[tuple[str, str], ...] = (),
            base: tuple[tuple[str, str], ...] = labels,
            when: float | None = ts,
            **kw: object,
        ) -> None:
            samples.append(Sample(sample_name, base + extra, value, when, line=0, **kw))  # type: ignore[arg-type]

        if kind is MetricType.COUNTER:
            name = name if name.endswith("_total") else name + "_total"
            add(name, draw(_floats), exemplar=draw(_exemplars))
            if created is not None:
                add(name[:-6] + "_created", created)
        elif kind is MetricType.SUMMARY:
            for q in sorted(draw(st.sets(st.floats(0, 1), max_size=3))):
                add(name, draw(_floats), (("quantile", format_go_float(q)),))
            add(name + "_sum", draw(_floats))
            add(name + "_count", draw(_counts))
            if created is not None:
                add(name + "_created", created)
        elif kind in (MetricType.HISTOGRAM, MetricType.GAUGEHISTOGRAM):
            native = draw(st.one_of(st.none(), _native()))
            classic = native is None or draw(st.booleans())
            count = native.count if native is not None else draw(_counts)
            position = len(samples)
            if classic:
                bounds = sorted(draw(st.sets(st.floats(allow_nan=False, allow_infinity=False), max_size=4)))
                for bound in [*bounds, math.inf]:
                    le = (("le", format_go_float(bound)),)
                    add(name + "_bucket", draw(_counts), le, exemplar=draw(_exemplars))
                add(name + "_sum", native.sum if native is not None else draw(_floats))
                add(name + "_count", count)
            if native is not None:
                # Native exemplars need a timestamp; without one Prometheus (and the parser) falls
                # back to the first timestamped bucket exemplar.
                exemplar = draw(_exemplars.filter(lambda e: e is None or e.timestamp is not None))
                if exemplar is None:
                    timed = [
                        x.exemplar
                        for x in samples[position:]
                        if x.exemplar and x.exemplar.timestamp is not None
                    ]
                    exemplar = timed[0] if timed else None
                native_sample = Sample(name, labels, count, ts, exemplar, 0, native)
                samples.insert(position, native_sample)
            if created is not None:
                add(name + "_created", created)
        else:
            add(name, draw(_floats))
    ftype = {MetricType.INFO: MetricType.GAUGE, MetricType.STATESET: MetricType.GAUGE}.get(kind, kind)
    return MetricFamily(name, ftype, help_text, None, tuple(samples))


@settings(max_examples=300, deadline=None)
@given(st.lists(_family(), max_size=4))
def test_encode_then_parse_gives_the_same_families(families: list[MetricFamily]) -> None:
    decoded, messages, sink = decode(encode_protobuf(families))
    assert [d for d in sink.diagnostics if d.severity is Severity.ERROR] == []
    assert messages == len(families)
    for original, again in zip(families, decoded, strict=True):
        assert original.equivalent(again), (original, again)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_arbitrary_bytes_give_diagnostics_never_exceptions(data: bytes) -> None:
    _, messages, sink = decode(data)
    assert messages >= 0
    for diagnostic in sink.diagnostics:
        assert diagnostic.code in CODES


@settings(max_examples=200, deadline=None)
@given(st.lists(_family(), min_size=1, max_size=3), st.data())
def test_corrupted_encodings_give_diagnostics_never_exceptions(
    families: list[MetricFamily], data: st.DataObject
) -> None:
    encoded = bytearray(encode_protobuf(families))
    if encoded:
        position = data.draw(st.integers(0, len(encoded) - 1))
        encoded[position] = data.draw(st.integers(0, 255))
        encoded = encoded[: data.draw(st.integers(0, len(encoded)))]
    _, _, sink = decode(bytes(encoded))
    assert all(d.code in CODES for d in sink.diagnostics)


# --------------------------------------------------------------------------- the generated code


def test_gencode_is_accepted_by_every_runtime_pyproject_allows() -> None:
    source = (pathlib.Path(pb.__file__)).read_text()
    assert "# Protobuf Python Version: 5.29.0" in source, "regenerate with _proto/generate.sh"


def test_the_decoder_is_the_upb_runtime() -> None:
    from google.protobuf.internal import api_implementation

    assert api_implementation.Type() == "upb"


# --------------------------------------------------------------------------- node_exporter


def _series(name: str, labels: Iterable[tuple[str, str]]) -> tuple[str, tuple[tuple[str, str], ...]]:
    # Prometheus writes protobuf's le/quantile values Go-style ("0.0", "1e+06") where the text
    # format says "0" or "1000000": compare those as numbers.
    pairs = ((k, repr(float(v)) if k in ("le", "quantile") else v) for k, v in labels)
    return name, tuple(sorted(pairs))


def _text_shape(text: str) -> tuple[dict[str, str], set[tuple[str, tuple[tuple[str, str], ...]]]]:
    from prometheus_client.parser import text_string_to_metric_families

    types: dict[str, str] = {}
    series: set[tuple[str, tuple[tuple[str, str], ...]]] = set()
    for family in text_string_to_metric_families(text):
        types[family.name] = family.type
        for sample in family.samples:
            series.add(_series(sample.name, sample.labels.items()))
    return types, series


def _protobuf_shape(
    families: list[MetricFamily],
) -> tuple[dict[str, str], set[tuple[str, tuple[tuple[str, str], ...]]]]:
    types: dict[str, str] = {}
    series: set[tuple[str, tuple[tuple[str, str], ...]]] = set()
    for family in families:
        # prometheus_client names a counter family without its _total suffix.
        name = (
            family.name[:-6]
            if family.type is MetricType.COUNTER and family.name.endswith("_total")
            else family.name
        )
        types[name] = family.type.value  # prometheus_client says "unknown" for untyped too
        for sample in family.samples:
            series.add(_series(sample.name, sample.labels))
    return types, series


def _assert_same_shape(protobuf: bytes, text: str) -> None:
    result = parse(protobuf, "protobuf")
    assert result.errors() == []
    assert result.lines > 100
    pb_types, pb_series = _protobuf_shape(list(result.families))
    text_types, text_series = _text_shape(text)
    assert pb_types == text_types
    assert pb_series == text_series


def test_node_exporter_capture_agrees_with_its_text_exposition() -> None:
    # Both captured from one node_exporter 1.5.0 on 127.0.0.1, protobuf first and text right after:
    # values drift between the two requests, names, types and label sets do not.
    _assert_same_shape(
        (VALID / "node_exporter.pb").read_bytes(), (VALID / "node_exporter.txt").read_text("utf-8")
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.mark.integration
def test_live_node_exporter_protobuf_agrees_with_its_text() -> None:
    import httpx

    binary = shutil.which("prometheus-node-exporter") or "/usr/bin/prometheus-node-exporter"
    if not pathlib.Path(binary).exists():
        pytest.skip("prometheus-node-exporter is not installed (apt-get install prometheus-node-exporter)")
    port = _free_port()
    process = subprocess.Popen(
        [binary, f"--web.listen-address=127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        url = f"http://127.0.0.1:{port}/metrics"
        fetch: Callable[[str], httpx.Response] = lambda accept: httpx.get(  # noqa: E731
            url, headers={"Accept": accept}, timeout=10
        )
        deadline = time.monotonic() + 15
        while True:
            try:
                protobuf = fetch(PROTO_ACCEPT)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        text = fetch("text/plain")
        assert protobuf.headers["content-type"].startswith("application/vnd.google.protobuf")
        _assert_same_shape(protobuf.content, text.text)
    finally:
        process.terminate()
        process.wait(timeout=10)


# --------------------------------------------------------------------------- performance


@pytest.mark.slow
@pytest.mark.timeout(120)  # a hang guard; bench/ measures speed
def test_decoding_100k_series() -> None:
    family = pb.MetricFamily(name="kube_pod_info", help="Pods.", type=pb.GAUGE)
    for i in range(1_000):
        metric = family.metric.add()
        metric.label.add(name="namespace", value=f"ns{i % 50}")
        metric.label.add(name="pod", value=f"pod-{i}")
        metric.gauge.value = i
    one = family.SerializeToString()
    data = b"".join(
        delimited(one.replace(b"kube_pod_info", f"kube_pod_i{n:03d}".encode())) for n in range(100)
    )
    families, messages, sink = decode(data)
    assert (messages, sum(len(f.samples) for f in families), sink.diagnostics) == (100, 100_000, [])
