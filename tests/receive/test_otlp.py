"""The OTLP/HTTP metrics receiver: every metric type in protobuf and JSON, Prometheus' name translation."""

from __future__ import annotations

import base64
import gzip
import json
import math
import pathlib
import struct

import httpx
import pytest
from google.protobuf import json_format
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2 as svc
from opentelemetry.proto.common.v1 import common_pb2 as cpb
from opentelemetry.proto.metrics.v1 import metrics_pb2 as mpb
from opentelemetry.proto.resource.v1 import resource_pb2 as rpb

from promscope.model import MetricFamily, MetricType
from promscope.observation import Observation, ObservationKind, Outcome
from promscope.receive._proto import rpc_status_pb2
from promscope.receive.http import Request
from promscope.receive.otlp import (
    CODES,
    STALE_NAN,
    OtlpReceiver,
    build_compliant_metric_name,
    build_metric_name,
    format_float_f,
    normalize_label,
    parse_otlp_json,
)

NOW = 1_700_000_000.0
T_NS = 1_700_000_000_000_000_000
FIXTURES = pathlib.Path(__file__).resolve().parents[2] / "fixtures" / "push"
CUMULATIVE = mpb.AGGREGATION_TEMPORALITY_CUMULATIVE
DELTA = mpb.AGGREGATION_TEMPORALITY_DELTA


def request(body: bytes, content_type: str | None = "application/x-protobuf") -> Request:
    headers = [("user-agent", "OTel-OTLP-Exporter-Python/1.27.0")]
    if content_type is not None:
        headers.append(("content-type", content_type))
    return Request(
        method="POST",
        target="/v1/metrics",
        path="/v1/metrics",
        query="",
        headers=tuple(headers),
        body=body,
        wire_bytes=len(body),
        content_encoding=None,
        peer="127.0.0.1:50000",
        scheme="http",
        received_at=NOW,
    )


def attrs(**values: object) -> list[cpb.KeyValue]:
    out = []
    for key, value in values.items():
        key = key.replace("__", ".")
        if isinstance(value, bool):
            any_value = cpb.AnyValue(bool_value=value)
        elif isinstance(value, int):
            any_value = cpb.AnyValue(int_value=value)
        elif isinstance(value, float):
            any_value = cpb.AnyValue(double_value=value)
        else:
            any_value = cpb.AnyValue(string_value=str(value))
        out.append(cpb.KeyValue(key=key, value=any_value))
    return out


def export(
    *metrics: mpb.Metric, resource: list[cpb.KeyValue] | None = None
) -> svc.ExportMetricsServiceRequest:
    resource_attrs = (
        resource if resource is not None else attrs(service__name="checkout", service__instance__id="i-1")
    )
    return svc.ExportMetricsServiceRequest(
        resource_metrics=[
            mpb.ResourceMetrics(
                resource=rpb.Resource(attributes=resource_attrs),
                scope_metrics=[mpb.ScopeMetrics(scope=cpb.InstrumentationScope(name="lib"), metrics=metrics)],
            )
        ]
    )


def every_type() -> svc.ExportMetricsServiceRequest:
    exemplar = mpb.Exemplar(
        time_unix_nano=T_NS,
        as_double=0.3,
        trace_id=bytes.fromhex("5b8efff798038103d269b633813fc60c"),
        span_id=bytes.fromhex("eee19b7ec3c1b174"),
    )
    return export(
        mpb.Metric(
            name="system.memory.usage",
            unit="By",
            description="Memory in use.",
            gauge=mpb.Gauge(
                data_points=[
                    mpb.NumberDataPoint(time_unix_nano=T_NS, as_int=1024, attributes=attrs(state="used"))
                ]
            ),
        ),
        mpb.Metric(
            name="system.cpu.utilization",
            unit="1",
            gauge=mpb.Gauge(data_points=[mpb.NumberDataPoint(time_unix_nano=T_NS, as_double=0.25)]),
        ),
        mpb.Metric(
            name="http.server.requests",
            unit="{request}",
            sum=mpb.Sum(
                aggregation_temporality=CUMULATIVE,
                is_monotonic=True,
                data_points=[
                    mpb.NumberDataPoint(
                        time_unix_nano=T_NS,
                        start_time_unix_nano=T_NS - 10**10,
                        as_int=42,
                        attributes=attrs(http__route="/cart"),
                        exemplars=[exemplar],
                    )
                ],
            ),
        ),
        mpb.Metric(
            name="queue.depth",
            sum=mpb.Sum(
                aggregation_temporality=CUMULATIVE,
                is_monotonic=False,
                data_points=[mpb.NumberDataPoint(time_unix_nano=T_NS, as_int=-3)],
            ),
        ),
        mpb.Metric(
            name="http.server.duration",
            unit="s",
            histogram=mpb.Histogram(
                aggregation_temporality=CUMULATIVE,
                data_points=[
                    mpb.HistogramDataPoint(
                        time_unix_nano=T_NS,
                        count=6,
                        sum=2.5,
                        explicit_bounds=[0.1, 1, 5],
                        bucket_counts=[1, 2, 2, 1],
                        exemplars=[exemplar],
                    )
                ],
            ),
        ),
        mpb.Metric(
            name="rpc.latency",
            unit="ms",
            exponential_histogram=mpb.ExponentialHistogram(
                aggregation_temporality=CUMULATIVE,
                data_points=[
                    mpb.ExponentialHistogramDataPoint(
                        time_unix_nano=T_NS,
                        count=7,
                        sum=30.0,
                        scale=1,
                        zero_count=1,
                        positive=mpb.ExponentialHistogramDataPoint.Buckets(
                            offset=-1, bucket_counts=[2, 0, 3]
                        ),
                        negative=mpb.ExponentialHistogramDataPoint.Buckets(offset=0, bucket_counts=[1]),
                    )
                ],
            ),
        ),
        mpb.Metric(
            name="gc.pause",
            unit="s",
            summary=mpb.Summary(
                data_points=[
                    mpb.SummaryDataPoint(
                        time_unix_nano=T_NS,
                        count=10,
                        sum=1.5,
                        quantile_values=[
                            mpb.SummaryDataPoint.ValueAtQuantile(quantile=0.5, value=0.1),
                            mpb.SummaryDataPoint.ValueAtQuantile(quantile=0.99, value=0.4),
                        ],
                    )
                ]
            ),
        ),
        resource=attrs(
            service__name="checkout",
            service__namespace="shop",
            service__instance__id="pod-7",
            host__name="node-3",
            k8s__pod__uid="abc",
        ),
    )


def receive(body: bytes, content_type: str = "application/x-protobuf") -> tuple[int, bytes, Observation]:
    response, observation = OtlpReceiver(clock=lambda: NOW).receive(request(body, content_type))
    return response.status, response.body, observation


def as_json(message: svc.ExportMetricsServiceRequest) -> bytes:
    """OTLP JSON as the spec writes it: camelCase, int64 as strings, trace/span ids in hex."""
    data = json_format.MessageToDict(message)

    def hexify(node: object) -> object:
        if isinstance(node, dict):
            return {
                k: (base64.b64decode(v).hex() if k in ("traceId", "spanId") else hexify(v))
                for k, v in node.items()
            }
        if isinstance(node, list):
            return [hexify(item) for item in node]
        return node

    return json.dumps(hexify(data)).encode()


def families_of(observation: Observation) -> dict[str, MetricFamily]:
    return {f.name: f for f in observation.families}


# ------------------------------------------------------------------ name translation (upstream test cases)

COMPLIANT_WITH_SUFFIXES = [
    # (name, unit, kind, monotonic, expected) from metric_name_builder_test.go
    ("system.filesystem.usage", "By", "gauge", False, "system_filesystem_usage_bytes"),
    ("system.io", "By", "sum", True, "system_io_bytes_total"),
    ("network_transmitted_bytes_total", "By", "sum", True, "network_transmitted_bytes_total"),
    ("\t system.filesystem.usage       ", "  By\t", "gauge", False, "system_filesystem_usage_bytes"),
    ("system.network.dropped", "{packets}", "gauge", False, "system_network_dropped"),
    ("system.network.dropped", "nonstandard:_1", "gauge", False, "system_network_dropped_nonstandard:_1"),
    ("system.network.dropped", "{packets}", "sum", True, "system_network_dropped_total"),
    ("system.network.dropped", "packets", "gauge", False, "system_network_dropped_packets"),
    ("system.network.packets.dropped", "packets", "gauge", False, "system_network_packets_dropped"),
    ("system.network.packets", "packets", "gauge", False, "system_network_packets"),
    ("system.network.dropped", "packets", "sum", True, "system_network_dropped_packets_total"),
    ("system.network.packets", "packets", "sum", True, "system_network_packets_total"),
    ("hw.gpu.memory.utilization", "1", "gauge", False, "hw_gpu_memory_utilization_ratio"),
    ("hw.fan.speed_ratio", "1", "gauge", False, "hw_fan_speed_ratio"),
    ("objects", "1", "sum", True, "objects_total"),
    ("hw.cpu.speed_limit", "Hz", "gauge", False, "hw_cpu_speed_limit_hertz"),
    ("broken.metric.speed", "km/h", "gauge", False, "broken_metric_speed_km_per_hour"),
    ("astro.light.speed_limit", "m/s", "gauge", False, "astro_light_speed_limit_meters_per_second"),
    (
        "system.network.dropped",
        "non/standard:_1",
        "gauge",
        False,
        "system_network_dropped_non_per_standard:_1",
    ),
    ("broken.metric.speed", "km/°", "gauge", False, "broken_metric_speed_km"),
    ("broken.metric.success_ratio", "%", "gauge", False, "broken_metric_success_ratio_percent"),
    ("broken.metric.success_percent", "%", "gauge", False, "broken_metric_success_percent"),
    ("test.metric.no_unit", "", "gauge", False, "test_metric_no_unit"),
    ("test.metric.spaces", "   \t  ", "gauge", False, "test_metric_spaces"),
    (
        "active_directory.ds.replication.network.io",
        "By",
        "sum",
        True,
        "active_directory_ds_replication_network_io_bytes_total",
    ),
    (
        "active_directory.ds.replication.object.rate",
        "{objects}/s",
        "gauge",
        False,
        "active_directory_ds_replication_object_rate_per_second",
    ),
    (
        "active_directory.ds.ldap.bind.last_successful.time",
        "ms",
        "gauge",
        False,
        "active_directory_ds_ldap_bind_last_successful_time_milliseconds",
    ),
    ("apache.workers", "connections", "gauge", False, "apache_workers_connections"),
    ("apache.requests", "1", "sum", True, "apache_requests_total"),
    (
        "bigip.virtual_server.request.count",
        "{requests}",
        "sum",
        True,
        "bigip_virtual_server_request_count_total",
    ),
    ("system.disk.operation_time", "s", "sum", True, "system_disk_operation_time_seconds_total"),
    ("system.cpu.load_average.15m", "1", "gauge", False, "system_cpu_load_average_15m_ratio"),
    (
        "mongodbatlas.process.journaling.data_files",
        "MiBy",
        "gauge",
        False,
        "mongodbatlas_process_journaling_data_files_mebibytes",
    ),
    (
        "mongodbatlas.process.network.io",
        "By/s",
        "gauge",
        False,
        "mongodbatlas_process_network_io_bytes_per_second",
    ),
    (
        "mongodbatlas.process.oplog.rate",
        "GiBy/h",
        "gauge",
        False,
        "mongodbatlas_process_oplog_rate_gibibytes_per_hour",
    ),
    (
        "mongodbatlas.process.db.query_targeting.scanned_per_returned",
        "{scanned}/{returned}",
        "gauge",
        False,
        "mongodbatlas_process_db_query_targeting_scanned_per_returned",
    ),
    ("nsxt.node.memory.usage", "KBy", "gauge", False, "nsxt_node_memory_usage_kilobytes"),
    ("redis.latest_fork", "us", "gauge", False, "redis_latest_fork_microseconds"),
    ("3.14 digits", "", "gauge", False, "_3_14_digits"),
    ("envoy__rule_engine_zlib_buf_error", "", "gauge", False, "envoy_rule_engine_zlib_buf_error"),
    (":foo::bar", "", "gauge", False, ":foo::bar"),
    (":foo::bar", "", "sum", True, ":foo::bar_total"),
    ("foo.bar", "1", "gauge", False, "foo_bar_ratio"),
    ("system.io", "foo/bar", "sum", True, "system_io_foo_per_bar_total"),
    ("metric_with_字符_foreign_characters", "", "sum", True, "metric_with_foreign_characters_total"),
]


@pytest.mark.parametrize(("name", "unit", "kind", "monotonic", "expected"), COMPLIANT_WITH_SUFFIXES)
def test_build_compliant_metric_name_with_suffixes(
    name: str, unit: str, kind: str, monotonic: bool, expected: str
) -> None:
    assert build_compliant_metric_name(name, unit, kind, monotonic=monotonic) == expected


@pytest.mark.parametrize(
    ("name", "unit", "kind", "expected"),
    [
        ("system.io", "By", "sum", "system_io"),
        ("3.14 digits", "By", "gauge", "_3_14_digits"),
        ("envoy__rule_engine_zlib_buf_error", "", "gauge", "envoy__rule_engine_zlib_buf_error"),
        (":foo::bar", "", "sum", ":foo::bar"),
        ("foo.bar", "1", "gauge", "foo_bar"),
        ("metric_with_字符_foreign_characters", "", "sum", "metric_with___foreign_characters"),
    ],
)
def test_build_compliant_metric_name_without_suffixes(name: str, unit: str, kind: str, expected: str) -> None:
    assert build_compliant_metric_name(name, unit, kind, monotonic=True, suffixes=False) == expected


def test_build_compliant_metric_name_with_namespace() -> None:
    assert build_compliant_metric_name("network.io", "By", "sum", monotonic=True, namespace="system") == (
        "system_network_io_bytes_total"
    )
    assert build_compliant_metric_name("#test", "", "gauge", namespace="space") == "space_test"


@pytest.mark.parametrize(
    ("name", "unit", "kind", "monotonic", "expected"),
    [
        ("system.io", "By", "sum", True, "system.io_bytes_total"),
        ("3.14 digits", "", "gauge", False, "3.14 digits"),
        ("foo.bar", "1", "gauge", False, "foo.bar_ratio"),
        ("system.io", "foo/bar", "sum", True, "system.io_foo_per_bar_total"),
        ("system_io_seconds", "s", "gauge", False, "system_io_seconds_seconds"),
        ("system_io_total", "", "sum", True, "system_io_total_total"),
    ],
)
def test_build_metric_name_keeps_utf8(
    name: str, unit: str, kind: str, monotonic: bool, expected: str
) -> None:
    assert build_metric_name(name, unit, kind, monotonic=monotonic) == expected


@pytest.mark.parametrize(
    ("label", "expected"),
    [
        ("", ""),
        ("label:with:colons", "label_with_colons"),
        ("LabelWithCapitalLetters", "LabelWithCapitalLetters"),
        ("label!with&special$chars)", "label_with_special_chars_"),
        ("label_with_foreign_characters_字符", "label_with_foreign_characters___"),
        ("label.with.dots", "label_with_dots"),
        ("123label", "key_123label"),
        ("_label_starting_with_underscore", "key_label_starting_with_underscore"),
        ("__label_starting_with_2underscores", "__label_starting_with_2underscores"),
    ],
)
def test_normalize_label(label: str, expected: str) -> None:
    assert normalize_label(label) == expected


@pytest.mark.parametrize(
    ("value", "text"),
    [(1.0, "1"), (0.005, "0.005"), (1e6, "1000000"), (2.5e-7, "0.00000025"), (math.inf, "+Inf"), (0.0, "0")],
)
def test_le_values_are_formatted_like_go_f_minus_one(value: float, text: str) -> None:
    assert format_float_f(value) == text


# ------------------------------------------------------------------ every metric type, both encodings


@pytest.mark.parametrize("encoding", ["protobuf", "json"])
def test_every_metric_type(encoding: str) -> None:
    message = every_type()
    if encoding == "json":
        status, body, observation = receive(as_json(message), "application/json")
    else:
        status, body, observation = receive(message.SerializeToString())
    assert status == 200
    assert observation.kind is ObservationKind.OTLP
    assert observation.outcome is Outcome.ACCEPTED
    assert [d.code for d in observation.diagnostics if d.severity.value != "style"] == []
    families = families_of(observation)
    expected_types = {
        "system_memory_usage_bytes": MetricType.GAUGE,
        "system_cpu_utilization_ratio": MetricType.GAUGE,
        "http_server_requests_total": MetricType.COUNTER,
        "queue_depth": MetricType.GAUGE,
        "http_server_duration_seconds": MetricType.HISTOGRAM,
        "rpc_latency_milliseconds": MetricType.HISTOGRAM,
        "gc_pause_seconds": MetricType.SUMMARY,
        "target_info": MetricType.GAUGE,
    }
    assert {name: f.type for name, f in families.items()} == expected_types
    memory = families["system_memory_usage_bytes"]
    assert (memory.help, memory.unit) == ("Memory in use.", "By")
    (sample,) = memory.samples
    assert sample.value == 1024.0
    assert sample.timestamp == NOW
    assert sample.label_dict() == {"state": "used", "job": "shop/checkout", "instance": "pod-7"}
    requests = families["http_server_requests_total"].samples[0]
    assert requests.label("http_route") == "/cart"
    assert requests.exemplar is not None
    assert dict(requests.exemplar.labels) == {
        "trace_id": "5b8efff798038103d269b633813fc60c",
        "span_id": "eee19b7ec3c1b174",
    }
    duration = families["http_server_duration_seconds"]
    buckets = [(s.label("le"), s.value) for s in duration.samples if s.name.endswith("_bucket")]
    assert buckets == [("0.1", 1.0), ("1", 3.0), ("5", 5.0), ("+Inf", 6.0)]
    assert [s.value for s in duration.samples if s.name.endswith("_count")] == [6.0]
    assert [s.value for s in duration.samples if s.name.endswith("_sum")] == [2.5]
    exemplar_bucket = next(s for s in duration.samples if s.exemplar is not None)
    assert exemplar_bucket.label("le") == "1"  # 0.3 falls in (0.1, 1]
    (latency,) = families["rpc_latency_milliseconds"].samples
    native = latency.native_histogram
    assert native is not None
    assert native.schema == 1 and native.count == 7 and native.zero_count == 1
    assert native.buckets() == [(0, 2.0), (2, 3.0)]  # OTLP index i is Prometheus index i + 1
    assert native.buckets(positive=False) == [(1, 1.0)]
    summary = families["gc_pause_seconds"]
    assert sorted((s.name, s.label("quantile"), s.value) for s in summary.samples) == [
        ("gc_pause_seconds", "0.5", 0.1),
        ("gc_pause_seconds", "0.99", 0.4),
        ("gc_pause_seconds_count", None, 10.0),
        ("gc_pause_seconds_sum", None, 1.5),
    ]
    (info,) = families["target_info"].samples
    assert info.label_dict() == {
        "job": "shop/checkout",
        "instance": "pod-7",
        "host_name": "node-3",
        "k8s_pod_uid": "abc",
    }
    names = json.loads(observation.transport.extra["otlp_names"])
    assert names["http.server.requests"] == "http_server_requests_total"
    if encoding == "json":
        assert json.loads(body) == {}
    else:
        assert svc.ExportMetricsServiceResponse.FromString(body) == svc.ExportMetricsServiceResponse()


def test_delta_sums_are_kept_as_unknown_with_a_warning() -> None:
    message = export(
        mpb.Metric(
            name="requests",
            sum=mpb.Sum(
                aggregation_temporality=DELTA,
                is_monotonic=True,
                data_points=[mpb.NumberDataPoint(time_unix_nano=T_NS, as_int=5)],
            ),
        )
    )
    status, _, observation = receive(message.SerializeToString())
    assert status == 200
    assert families_of(observation)["requests_total"].type is MetricType.UNKNOWN
    assert [d.code for d in observation.diagnostics] == ["OTLP-103"]


def test_rejected_points_are_reported_in_partial_success() -> None:
    message = export(
        mpb.Metric(
            name="bad.hist",
            histogram=mpb.Histogram(
                aggregation_temporality=CUMULATIVE,
                data_points=[
                    mpb.HistogramDataPoint(
                        time_unix_nano=T_NS, count=1, explicit_bounds=[1], bucket_counts=[1]
                    )
                ],
            ),
        ),
        mpb.Metric(
            name="tiny.scale",
            exponential_histogram=mpb.ExponentialHistogram(
                aggregation_temporality=CUMULATIVE,
                data_points=[mpb.ExponentialHistogramDataPoint(time_unix_nano=T_NS, count=1, scale=-5)],
            ),
        ),
        mpb.Metric(
            name="no.temporality", sum=mpb.Sum(data_points=[mpb.NumberDataPoint(time_unix_nano=T_NS)])
        ),
        mpb.Metric(
            name="fine", gauge=mpb.Gauge(data_points=[mpb.NumberDataPoint(time_unix_nano=T_NS, as_double=1)])
        ),
    )
    status, body, observation = receive(message.SerializeToString())
    assert status == 200
    response = svc.ExportMetricsServiceResponse.FromString(body)
    assert response.partial_success.rejected_data_points == 3
    assert "bucket counts" in response.partial_success.error_message
    assert observation.outcome is Outcome.PARTIAL
    assert sorted(d.code for d in observation.diagnostics) == ["OTLP-104", "OTLP-105", "OTLP-106"]
    json_status, json_body, _ = receive(as_json(message), "application/json")
    assert json_status == 200
    assert json.loads(json_body)["partialSuccess"]["rejectedDataPoints"] == "3"


def test_exponential_histogram_scale_above_8_is_downscaled() -> None:
    point = mpb.ExponentialHistogramDataPoint(
        time_unix_nano=T_NS,
        count=4,
        scale=10,
        positive=mpb.ExponentialHistogramDataPoint.Buckets(offset=0, bucket_counts=[1, 1, 1, 1, 0]),
    )
    message = export(
        mpb.Metric(
            name="fine.grained",
            exponential_histogram=mpb.ExponentialHistogram(
                aggregation_temporality=CUMULATIVE, data_points=[point]
            ),
        )
    )
    _, _, observation = receive(message.SerializeToString())
    native = families_of(observation)["fine_grained"].samples[0].native_histogram
    assert native is not None and native.schema == 8
    assert native.buckets() == [(1, 4.0)]  # OTLP indices 0..3 at scale 10 are index 0 at scale 8
    assert [d.code for d in observation.diagnostics] == ["OTLP-107"]


def test_no_recorded_value_is_the_stale_marker() -> None:
    message = export(
        mpb.Metric(
            name="gone", gauge=mpb.Gauge(data_points=[mpb.NumberDataPoint(time_unix_nano=T_NS, flags=1)])
        )
    )
    _, _, observation = receive(message.SerializeToString())
    value = families_of(observation)["gone"].samples[0].value
    assert struct.pack("<d", value) == struct.pack("<d", STALE_NAN)


def test_colliding_names_and_attribute_keys_are_diagnosed() -> None:
    point = mpb.NumberDataPoint(time_unix_nano=T_NS, as_int=1, attributes=attrs(a__b="1", a_b="2"))
    message = export(
        mpb.Metric(name="foo.bar", gauge=mpb.Gauge(data_points=[point])),
        mpb.Metric(name="foo_bar", gauge=mpb.Gauge(data_points=[mpb.NumberDataPoint(time_unix_nano=T_NS)])),
    )
    _, _, observation = receive(message.SerializeToString())
    assert {"OTLP-108", "OTLP-109"} <= {d.code for d in observation.diagnostics}
    assert families_of(observation)["foo_bar"].samples[0].label("a_b") == "1;2"


def test_resource_without_extra_attributes_has_no_target_info() -> None:
    message = export(
        mpb.Metric(name="g", gauge=mpb.Gauge(data_points=[mpb.NumberDataPoint(time_unix_nano=T_NS)])),
        resource=attrs(service__name="svc"),
    )
    _, _, observation = receive(message.SerializeToString())
    assert set(families_of(observation)) == {"g"}
    assert families_of(observation)["g"].samples[0].label_dict() == {"job": "svc"}


def test_json_accepts_proto_field_names_and_ignores_unknown_fields() -> None:
    body = json.dumps(
        {
            "resource_metrics": [
                {
                    "scope_metrics": [
                        {
                            "metrics": [
                                {
                                    "name": "x",
                                    "futureField": 1,
                                    "gauge": {"dataPoints": [{"timeUnixNano": str(T_NS), "asInt": "7"}]},
                                }
                            ]
                        }
                    ]
                }
            ]
        }
    ).encode()
    status, _, observation = receive(body, "application/json; charset=utf-8")
    assert status == 200
    assert families_of(observation)["x"].samples[0].value == 7.0


# --------------------------------------------------------------------------- bad bodies, content types


def test_undecodable_protobuf_is_400_with_a_status_body() -> None:
    status, body, observation = receive(b"\x0a\xff\xff\xff\xff\x0fjunk")
    assert status == 400
    error = rpc_status_pb2.Status.FromString(body)
    assert error.code == 3 and "does not decode" in error.message
    assert [d.code for d in observation.diagnostics] == ["OTLP-001"]
    assert observation.outcome is Outcome.REJECTED


@pytest.mark.parametrize("body", [b"{not json", b"[1, 2]", b'{"resourceMetrics": 5}', b"\xff\xfe"])
def test_bad_json_is_400_with_a_json_status(body: bytes) -> None:
    status, response_body, observation = receive(body, "application/json")
    assert status == 400
    assert json.loads(response_body)["code"] == 3
    assert [d.code for d in observation.diagnostics] == ["OTLP-002"]


def test_bad_hex_trace_id_in_json_is_400() -> None:
    with pytest.raises(ValueError, match="not hex"):
        parse_otlp_json(b'{"resourceMetrics": [{"traceId": "zz"}]}')


@pytest.mark.parametrize("content_type", ["text/plain", "application/grpc", None])
def test_unsupported_content_type_is_415(content_type: str | None) -> None:
    status, _, observation = receive(b"", content_type)  # type: ignore[arg-type]
    assert status == 415
    assert [d.code for d in observation.diagnostics] == ["OTLP-003"]


def test_every_code_is_declared() -> None:
    assert all(code.startswith("OTLP-") for code in CODES)


# --------------------------------------------------------------------------- state and the real server


def test_name_map_and_latest_families() -> None:
    r = OtlpReceiver(clock=lambda: NOW)
    r.receive(request(every_type().SerializeToString()))
    mapping = {m.otlp_name: m.prometheus_name for m in r.name_map()}
    assert mapping["rpc.latency"] == "rpc_latency_milliseconds"
    assert mapping["system.cpu.utilization"] == "system_cpu_utilization_ratio"
    assert {f.name for f in r.latest_families()} >= {"gc_pause_seconds", "target_info"}
    (sender,) = r.senders()
    assert sender.last_status == 200 and sender.requests == 1
    assert r.stats.data_points == 7


def test_other_translation_strategies() -> None:
    message = every_type().SerializeToString()
    utf8 = OtlpReceiver(clock=lambda: NOW, translation="NoUTF8EscapingWithSuffixes")
    _, observation = utf8.receive(request(message))
    assert "http.server.requests_total" in families_of(observation)
    plain = OtlpReceiver(clock=lambda: NOW, translation="UnderscoreEscapingWithoutSuffixes")
    _, observation = plain.receive(request(message))
    assert "http_server_requests" in families_of(observation)


def test_gzip_protobuf_and_json_over_http(serve) -> None:  # type: ignore[no-untyped-def]
    seen: list[Observation] = []
    r = OtlpReceiver(sink=seen.append)
    server = serve(r.routes())
    message = every_type()
    response = httpx.post(
        f"{server.url}/v1/metrics",
        content=gzip.compress(message.SerializeToString()),
        headers={"Content-Type": "application/x-protobuf", "Content-Encoding": "gzip"},
    )
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/x-protobuf"
    response = httpx.post(
        f"{server.url}/v1/metrics", content=as_json(message), headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 200
    assert response.json() == {}
    assert response.headers["content-type"] == "application/json"


# --------------------------------------------------------------------------- fixtures/push


@pytest.mark.parametrize(
    "expect_path",
    sorted(FIXTURES.glob("otlp_*.expect.json")),
    ids=lambda p: p.name.removesuffix(".expect.json"),
)
def test_push_fixtures(expect_path: pathlib.Path) -> None:
    expect = json.loads(expect_path.read_text())
    status, _, observation = receive((FIXTURES / expect["body"]).read_bytes(), expect["content_type"])
    assert status == expect["status"]
    assert sorted({d.code for d in observation.diagnostics}) == sorted(expect["codes"])
    assert {f.name: f.type.value for f in observation.families} == expect["families"]


# --------------------------------------------------------------------------- fuzz


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=st.binary(max_size=512), content_type=st.sampled_from(["application/x-protobuf", "application/json"])
)
def test_random_bytes_never_raise(data: bytes, content_type: str) -> None:
    response, observation = OtlpReceiver(clock=lambda: NOW).receive(request(data, content_type))
    assert response.status in (200, 400)
    assert observation.kind is ObservationKind.OTLP


@settings(max_examples=150, deadline=None)
@given(
    data=st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
        lambda children: (
            st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
        ),
        max_leaves=20,
    )
)
def test_random_json_never_raises(data: object) -> None:
    wrapped = {"resourceMetrics": [{"scopeMetrics": [{"metrics": [data]}]}]}
    response, _ = OtlpReceiver(clock=lambda: NOW).receive(
        request(json.dumps(wrapped).encode(), "application/json")
    )
    assert response.status in (200, 400)
