"""OTLP/HTTP metrics receiver: ``POST /v1/metrics``, protobuf and JSON.

An OpenTelemetry SDK or Collector exporting OTLP/HTTP to promscope sees what
the OTLP/HTTP spec promises, and each request becomes one
:class:`~promscope.observation.Observation` (kind ``otlp``) whose families are
the series **Prometheus' own OTLP receiver** would store
(``storage/remote/otlptranslator``, Prometheus 3.x defaults):

* names through ``BuildCompliantMetricName`` with suffixes (the
  ``UnderscoreEscapingWithSuffixes`` strategy): unit suffixes from the UCUM
  unit (``By`` -> ``_bytes``, ``s`` -> ``_seconds``, ``By/s`` ->
  ``_bytes_per_second``, ``{packets}`` -> none), ``_total`` on monotonic
  sums, ``_ratio`` on gauges of unit ``1``, invalid characters as ``_``;
  attribute keys through ``NormalizeLabel``. The other strategies are
  available (:data:`TranslationStrategy`). Both names are kept: every
  observation's ``transport.extra["otlp_names"]`` and
  :meth:`OtlpReceiver.name_map` map OTLP names to Prometheus names;
* monotonic cumulative sums are counters, other sums and gauges are gauges;
  delta sums and histograms are kept as ``unknown`` with an ``OTLP-103``
  warning (Prometheus drops them unless delta conversion is switched on);
* explicit-bucket histograms are classic histograms (``_bucket{le}``,
  ``_count``, ``_sum``; ``le`` formatted as Go's ``FormatFloat(v, 'f', -1)``),
  exponential histograms are native histograms (scale above 8 downscaled to 8,
  below -4 rejected, as upstream), summaries are summaries;
* resource attributes: ``service.namespace/service.name`` -> ``job``,
  ``service.instance.id`` -> ``instance`` on every series, and the other
  resource attributes on one ``target_info`` gauge per resource;
* data points flagged ``NO_RECORDED_VALUE`` are Prometheus' stale marker.

Answers: ``200`` with an ``ExportMetricsServiceResponse`` in the request's
encoding, carrying ``partial_success`` (rejected data points and why) when
some points could not be translated; ``400`` with a ``google.rpc.Status``
body for a body that does not decode; ``415`` for a Content-Type other than
``application/x-protobuf`` or ``application/json``. gzip
(``Content-Encoding``) is undone by the HTTP layer.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import logging
import math
import re
import struct
import time
import warnings
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from decimal import Decimal
from types import MappingProxyType
from typing import Any, Literal

from google.protobuf import json_format
from google.protobuf.message import DecodeError, Message

from promscope.codes import Code
from promscope.model import (
    BucketSpan,
    Diagnostic,
    Exemplar,
    MetricFamily,
    MetricType,
    NativeHistogram,
    Sample,
    Severity,
)
from promscope.observation import Observation, ObservationKind, ObservationSink, Outcome
from promscope.receive._proto import rpc_status_pb2
from promscope.receive.http import Request, Response, Route
from promscope.receive.remote_write import PushLimits, SenderStats, SenderTable, sender_identity

with warnings.catch_warnings():
    # opentelemetry-proto's gencode is older than the protobuf runtime; that is its packaging, not input.
    warnings.simplefilter("ignore", UserWarning)
    from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2 as svc
    from opentelemetry.proto.common.v1 import common_pb2
    from opentelemetry.proto.metrics.v1 import metrics_pb2 as mpb

__all__ = [
    "CODES",
    "STALE_NAN",
    "NameMapping",
    "OtlpReceiver",
    "OtlpStats",
    "TranslationStrategy",
    "build_compliant_metric_name",
    "build_metric_name",
    "normalize_label",
    "parse_otlp_json",
]

log = logging.getLogger(__name__)

E = Severity.ERROR
W = Severity.WARNING
S = Severity.STYLE

CODES: dict[str, Code] = {
    "OTLP-001": Code(E, "the body does not decode as an OTLP ExportMetricsServiceRequest (protobuf)"),
    "OTLP-002": Code(E, "the body is not OTLP JSON (ExportMetricsServiceRequest in OTLP's JSON mapping)"),
    "OTLP-003": Code(E, "the Content-Type is neither application/x-protobuf nor application/json (415)"),
    "OTLP-101": Code(E, "a metric has an empty name; its data points are rejected"),
    "OTLP-102": Code(W, "a metric carries no data (no gauge, sum, histogram or summary)"),
    "OTLP-103": Code(W, "a delta-temporality metric: Prometheus drops it unless delta conversion is enabled"),
    "OTLP-104": Code(
        E, "a sum or histogram has unspecified aggregation temporality; its points are rejected"
    ),
    "OTLP-105": Code(
        E, "a histogram point's bucket_counts length is not explicit_bounds + 1; it is rejected"
    ),
    "OTLP-106": Code(E, "an exponential histogram's scale is below -4; Prometheus rejects the point"),
    "OTLP-107": Code(S, "an exponential histogram's scale is above 8; it is downscaled to 8"),
    "OTLP-108": Code(W, "two OTLP metrics translate to the same Prometheus name"),
    "OTLP-109": Code(W, "attribute keys collide after normalization; their values are joined with ';'"),
    "OTLP-110": Code(W, "an attribute has an empty key; it is dropped"),
    "OTLP-111": Code(W, "a data point has no timestamp (time_unix_nano is 0)"),
    "OTLP-112": Code(E, "a histogram point's explicit bounds are not strictly increasing; it is rejected"),
    "OTLP-113": Code(
        E, "the request carries more data points than the configured limit; the rest are rejected"
    ),
    "OTLP-114": Code(W, "one Prometheus name is given two different types within a request"),
}

TranslationStrategy = Literal[
    "UnderscoreEscapingWithSuffixes",
    "UnderscoreEscapingWithoutSuffixes",
    "NoUTF8EscapingWithSuffixes",
    "NoTranslation",
]
"""Prometheus' ``otlp.translation_strategy`` values; the first is its default."""

STALE_NAN: float = struct.unpack("<d", struct.pack("<Q", 0x7FF0000000000002))[0]
"""Prometheus' staleness marker, which a ``NO_RECORDED_VALUE`` point becomes."""

CONTENT_PROTOBUF = "application/x-protobuf"
CONTENT_JSON = "application/json"
_DEFAULT_ZERO_THRESHOLD = 1e-128
"""Prometheus' ``defaultZeroThreshold``: upstream does not (yet) carry OTLP's zero_threshold over."""
_FLAG_NO_RECORDED_VALUE = 1
_DELTA = mpb.AGGREGATION_TEMPORALITY_DELTA
_CUMULATIVE = mpb.AGGREGATION_TEMPORALITY_CUMULATIVE
_THREAD_THRESHOLD = 256 * 1024
_MAX_NAME_MAP = 10_000
_MAX_NAMES_IN_OBSERVATION = 200

# --------------------------------------------------------------------------- name translation, as upstream

_UNIT_MAP = {
    "d": "days",
    "h": "hours",
    "min": "minutes",
    "s": "seconds",
    "ms": "milliseconds",
    "us": "microseconds",
    "ns": "nanoseconds",
    "By": "bytes",
    "KiBy": "kibibytes",
    "MiBy": "mebibytes",
    "GiBy": "gibibytes",
    "TiBy": "tibibytes",
    "KBy": "kilobytes",
    "MBy": "megabytes",
    "GBy": "gigabytes",
    "TBy": "terabytes",
    "m": "meters",
    "V": "volts",
    "A": "amperes",
    "J": "joules",
    "W": "watts",
    "g": "grams",
    "Cel": "celsius",
    "Hz": "hertz",
    "1": "",
    "%": "percent",
}
_PER_UNIT_MAP = {
    "s": "second",
    "m": "minute",
    "h": "hour",
    "d": "day",
    "w": "week",
    "mo": "month",
    "y": "year",
}

_NON_METRIC_CHAR = re.compile(r"[^a-zA-Z0-9:]")
_INVALID_METRIC_CHARS = re.compile(r"[^a-zA-Z0-9:_]+")
_NAME_SEPARATORS = re.compile(r"[^a-zA-Z0-9:]+")
_MULTIPLE_UNDERSCORES = re.compile(r"__+")
_INVALID_LABEL_CHAR = re.compile(r"[^a-zA-Z0-9_]")


def _go_trim_space(text: str) -> str:
    return text.strip(" \t\n\r\v\f\x85\xa0")


def _clean_up_unit(unit: str) -> str:
    cleaned = _MULTIPLE_UNDERSCORES.sub("_", _NON_METRIC_CHAR.sub("_", unit))
    return cleaned.removeprefix("_")


def _unit_suffixes(unit: str) -> tuple[str, str]:
    """``(main unit suffix, "per_…" suffix)`` for an OTLP (UCUM) unit, as upstream's ``buildUnitSuffixes``."""
    main_text, slash, per_text = unit.partition("/")
    main_suffix = ""
    per_suffix = ""
    main_otel = _go_trim_space(main_text)
    if main_otel and "{" not in main_otel and "}" not in main_otel:
        main_suffix = _clean_up_unit(_UNIT_MAP.get(main_otel, main_otel))
    if slash and per_text:
        per_otel = _go_trim_space(per_text)
        if per_otel and "{" not in per_otel and "}" not in per_otel:
            per_suffix = _clean_up_unit(_PER_UNIT_MAP.get(per_otel, per_otel))
        if per_suffix:
            per_suffix = "per_" + per_suffix
    if per_suffix:
        main_suffix = main_suffix.removesuffix("_")
    return main_suffix, per_suffix


def build_compliant_metric_name(
    name: str, unit: str, kind: str, *, monotonic: bool = False, suffixes: bool = True, namespace: str = ""
) -> str:
    """A Prometheus-compliant name for an OTLP metric, as upstream's ``BuildCompliantMetricName``.

    ``kind`` is the OTLP data kind: ``gauge``, ``sum``, ``histogram``,
    ``exponential_histogram`` or ``summary``; ``monotonic`` applies to sums.
    """
    if not suffixes:
        metric_name = "_".join(part for part in _INVALID_METRIC_CHARS.split(name) if part)
        if namespace:
            return f"{namespace}_{metric_name}"
        if metric_name and metric_name[0].isascii() and metric_name[0].isdigit():
            metric_name = "_" + metric_name
        return metric_name
    tokens = [part for part in _NAME_SEPARATORS.split(name) if part]
    main_suffix, per_suffix = _unit_suffixes(unit)
    if main_suffix and main_suffix not in tokens:
        tokens.append(main_suffix)
    if per_suffix and per_suffix not in tokens:
        tokens.append(per_suffix)
    if kind == "sum" and monotonic:
        tokens = [t for t in tokens if t != "total"] + ["total"]
    if unit == "1" and kind == "gauge":
        tokens = [t for t in tokens if t != "ratio"] + ["ratio"]
    if namespace:
        tokens.insert(0, namespace)
    normalized = "_".join(tokens)
    if normalized and normalized[0].isascii() and normalized[0].isdigit():
        normalized = "_" + normalized
    return normalized


def build_metric_name(
    name: str, unit: str, kind: str, *, monotonic: bool = False, suffixes: bool = True, namespace: str = ""
) -> str:
    """The name without character translation (UTF-8 names), as upstream's ``BuildMetricName``."""
    metric_name = f"{namespace}_{name}" if namespace else name
    if suffixes:
        main_suffix, per_suffix = _unit_suffixes(unit)
        if main_suffix:
            metric_name += "_" + main_suffix
        if per_suffix:
            metric_name += "_" + per_suffix
        if kind == "sum" and monotonic:
            metric_name += "_total"
        if unit == "1" and kind == "gauge":
            metric_name += "_ratio"
    return metric_name


def normalize_label(label: str, *, allow_utf8: bool = False) -> str:
    """An attribute key as a Prometheus label name, as upstream's ``NormalizeLabel``."""
    if not label or allow_utf8:
        return label
    label = _INVALID_LABEL_CHAR.sub("_", label)
    if label[0].isascii() and label[0].isdigit():
        return "key_" + label
    if label.startswith("_") and not label.startswith("__"):
        return "key" + label
    return label


def format_float_f(value: float) -> str:
    """Go's ``strconv.FormatFloat(v, 'f', -1, 64)``, how the translator writes ``le`` and ``quantile``."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value == 0:
        return "-0" if math.copysign(1.0, value) < 0 else "0"
    text = format(Decimal(repr(value)), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


# --------------------------------------------------------------------------- JSON


def _hex_ids_to_base64(node: Any, depth: int = 0) -> Any:
    """OTLP JSON writes trace and span ids as hex; protobuf's JSON mapping expects base64."""
    if depth > 64:
        raise ValueError("the JSON is nested too deeply")
    if isinstance(node, dict):
        out: dict[str, Any] = {}
        for key, value in node.items():
            if key in ("traceId", "spanId", "trace_id", "span_id") and isinstance(value, str):
                try:
                    out[key] = base64.b64encode(bytes.fromhex(value)).decode("ascii")
                except ValueError:
                    raise ValueError(f"{key} {value[:40]!r} is not hex") from None
            else:
                out[key] = _hex_ids_to_base64(value, depth + 1)
        return out
    if isinstance(node, list):
        return [_hex_ids_to_base64(item, depth + 1) for item in node]
    return node


def parse_otlp_json(body: bytes) -> svc.ExportMetricsServiceRequest:
    """An ``ExportMetricsServiceRequest`` from OTLP JSON (camelCase or proto field names, hex ids).

    Unknown fields are ignored, as the OTLP spec requires. Raises ``ValueError`` with the reason.
    """
    try:
        data = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as error:
        raise ValueError(f"not JSON: {error}") from None
    if not isinstance(data, dict):
        raise ValueError("the top-level JSON value is not an object")
    request = svc.ExportMetricsServiceRequest()
    try:
        json_format.ParseDict(_hex_ids_to_base64(data), request, ignore_unknown_fields=True)
    except (json_format.ParseError, RecursionError, TypeError, AttributeError) as error:
        raise ValueError(str(error).splitlines()[0] if str(error) else type(error).__name__) from None
    return request


# --------------------------------------------------------------------------- state and stats


@dataclass(frozen=True, slots=True)
class NameMapping:
    """How one OTLP metric was named in Prometheus terms."""

    otlp_name: str
    unit: str
    kind: str
    """OTLP data kind: gauge, sum, histogram, exponential_histogram, summary."""
    prometheus_name: str
    type: MetricType


@dataclass(slots=True)
class OtlpStats:
    """Receiver-wide counters."""

    requests: int = 0
    by_encoding: dict[str, int] = field(default_factory=dict)
    by_status: dict[int, int] = field(default_factory=dict)
    data_points: int = 0
    data_points_rejected: int = 0
    bytes_received: int = 0
    sink_errors: int = 0
    series_dropped: int = 0
    senders_evicted: int = 0


# --------------------------------------------------------------------------- translation


def _attr_string(value: common_pb2.AnyValue) -> str:
    kind = value.WhichOneof("value")
    if kind == "string_value":
        return value.string_value
    if kind == "bool_value":
        return "true" if value.bool_value else "false"
    if kind == "int_value":
        return str(value.int_value)
    if kind == "double_value":
        return _go_float_g(value.double_value)
    if kind == "bytes_value":
        return base64.b64encode(value.bytes_value).decode("ascii")
    if kind in ("array_value", "kvlist_value"):
        return json.dumps(_attr_json(value), separators=(",", ":"), ensure_ascii=False)
    return ""


def _attr_json(value: common_pb2.AnyValue, depth: int = 0) -> Any:
    if depth > 32:
        return None
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [_attr_json(v, depth + 1) for v in value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: _attr_json(kv.value, depth + 1) for kv in value.kvlist_value.values}
    if kind == "int_value":
        return value.int_value
    if kind == "double_value":
        return value.double_value if math.isfinite(value.double_value) else str(value.double_value)
    if kind == "bool_value":
        return value.bool_value
    if kind == "bytes_value":
        return base64.b64encode(value.bytes_value).decode("ascii")
    return value.string_value if kind == "string_value" else None


def _go_float_g(value: float) -> str:
    """pdata's ``Value.AsString`` for doubles: ``strconv.FormatFloat(v, 'g', -1, 64)``-like."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    text = repr(value)
    if text.endswith(".0"):
        text = text[:-2]
    if "e" in text:
        mantissa, _, exponent = text.partition("e")
        sign = "-" if exponent.startswith("-") else "+"
        text = f"{mantissa}e{sign}{abs(int(exponent)):02d}"
    return text


def _ts(nanos: int) -> float:
    """Nanoseconds to seconds at Prometheus' millisecond precision."""
    return (nanos // 1_000_000) / 1000.0


class _Request:
    """Translation of one ExportMetricsServiceRequest."""

    def __init__(self, strategy: TranslationStrategy, limits: PushLimits) -> None:
        self.suffixes = strategy in ("UnderscoreEscapingWithSuffixes", "NoUTF8EscapingWithSuffixes")
        self.escape = strategy.startswith("UnderscoreEscaping")
        self.limits = limits
        self.diagnostics: list[Diagnostic] = []
        self.suppressed = 0
        self.families: dict[str, MetricFamily] = {}
        self.samples: dict[str, list[Sample]] = {}
        self.origins: dict[str, str] = {}
        """Prometheus name -> first OTLP name that produced it."""
        self.names: list[NameMapping] = []
        self.points = 0
        self.rejected = 0
        self.reasons: list[str] = []
        self.metric_index = 0

    def diag(self, code: str, message: str, metric: str | None = None) -> None:
        info = CODES[code]
        if info.severity is E:
            self.reasons.append(message)
        if len(self.diagnostics) >= self.limits.max_diagnostics:
            self.suppressed += 1
            return
        self.diagnostics.append(Diagnostic(code, info.severity, self.metric_index, 0, message, metric))

    def reject(self, points: int, code: str, message: str, metric: str | None) -> None:
        self.rejected += points
        self.diag(code, message, metric)

    # -- labels

    def label_name(self, key: str) -> str:
        return normalize_label(key, allow_utf8=not self.escape)

    def attributes(self, attrs: Iterable[common_pb2.KeyValue], metric: str) -> list[tuple[str, str]]:
        merged: dict[str, list[str]] = {}
        for kv in attrs:
            if not kv.key:
                self.diag("OTLP-110", f"{metric}: an attribute with an empty key is dropped", metric)
                continue
            merged.setdefault(self.label_name(kv.key), []).append(_attr_string(kv.value))
        out: list[tuple[str, str]] = []
        for name, values in merged.items():
            if len(values) > 1:
                self.diag(
                    "OTLP-109", f"{metric}: {len(values)} attributes normalize to label {name!r}", metric
                )
            out.append((name, ";".join(values)))
        return out

    # -- the walk

    def translate(self, request: svc.ExportMetricsServiceRequest) -> None:
        for resource_metrics in request.resource_metrics:
            self.resource(resource_metrics)

    def resource(self, resource_metrics: mpb.ResourceMetrics) -> None:
        attrs = {kv.key: kv.value for kv in resource_metrics.resource.attributes}
        job_instance: list[tuple[str, str]] = []
        if "service.name" in attrs:
            job = _attr_string(attrs["service.name"])
            if "service.namespace" in attrs:
                job = f"{_attr_string(attrs['service.namespace'])}/{job}"
            job_instance.append(("job", job))
        if "service.instance.id" in attrs:
            job_instance.append(("instance", _attr_string(attrs["service.instance.id"])))
        newest: float | None = None
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                self.metric_index += 1
                latest = self.metric(metric, job_instance)
                if latest is not None and (newest is None or latest > newest):
                    newest = latest
        identifying = {"service.name", "service.namespace", "service.instance.id"}
        info_attrs = [kv for kv in resource_metrics.resource.attributes if kv.key not in identifying]
        if info_attrs and newest is not None:
            labels = [*job_instance, *self.attributes(info_attrs, "target_info")]
            labels = _dedupe_first(labels)
            self.add(
                "target_info",
                MetricType.GAUGE,
                "Target metadata",
                None,
                "target_info",
                [Sample("target_info", tuple(labels), 1.0, newest, line=self.metric_index)],
                "",
                "gauge",
            )

    def metric(self, metric: mpb.Metric, job_instance: list[tuple[str, str]]) -> float | None:
        kind = metric.WhichOneof("data")
        if kind is None:
            self.diag("OTLP-102", f"metric {metric.name!r} carries no data", metric.name or None)
            return None
        points: Any = getattr(metric, kind).data_points
        if not metric.name:
            self.reject(len(points), "OTLP-101", f"a {kind} metric has an empty name", None)
            return None
        if self.points + len(points) > self.limits.max_series_per_request:
            self.reject(
                len(points),
                "OTLP-113",
                f"{metric.name}: over the {self.limits.max_series_per_request}-point limit",
                metric.name,
            )
            return None
        self.points += len(points)
        monotonic = kind == "sum" and metric.sum.is_monotonic
        builder = build_compliant_metric_name if self.escape else build_metric_name
        prom = builder(metric.name, metric.unit, kind, monotonic=monotonic, suffixes=self.suffixes)
        temporality = getattr(getattr(metric, kind), "aggregation_temporality", _CUMULATIVE)
        if kind in ("sum", "histogram", "exponential_histogram") and temporality not in (_DELTA, _CUMULATIVE):
            self.reject(
                len(points),
                "OTLP-104",
                f"{metric.name}: {kind} with unspecified aggregation temporality",
                metric.name,
            )
            return None
        delta = temporality == _DELTA and kind != "gauge"
        if kind == "gauge" or (kind == "sum" and not monotonic):
            mtype = MetricType.GAUGE
        elif kind == "sum":
            mtype = MetricType.COUNTER
        elif kind == "summary":
            mtype = MetricType.SUMMARY
        else:
            mtype = MetricType.HISTOGRAM
        if delta:
            self.diag(
                "OTLP-103",
                f"{metric.name} ({prom}) has delta temporality; Prometheus drops it unless "
                "delta-to-cumulative conversion or native delta ingestion is enabled",
                prom,
            )
            mtype = MetricType.UNKNOWN
        unit = metric.unit or None
        help_text = metric.description or None
        samples: list[Sample] = []
        newest: float | None = None
        for point in points:
            made = self.point(kind, point, prom, job_instance, metric.name)
            for sample in made:
                if sample.timestamp is not None and (newest is None or sample.timestamp > newest):
                    newest = sample.timestamp
            samples.extend(made)
        self.add(prom, mtype, help_text, unit, metric.name, samples, metric.unit, kind)
        return newest

    def add(
        self,
        prom: str,
        mtype: MetricType,
        help_text: str | None,
        unit: str | None,
        otlp_name: str,
        samples: list[Sample],
        otlp_unit: str,
        kind: str,
    ) -> None:
        origin = self.origins.get(prom)
        if origin is None:
            self.origins[prom] = otlp_name
            self.names.append(NameMapping(otlp_name, otlp_unit, kind, prom, mtype))
            self.families[prom] = MetricFamily(prom, mtype, help_text, unit, line=self.metric_index)
        else:
            if origin != otlp_name:
                self.diag("OTLP-108", f"{otlp_name!r} and {origin!r} both translate to {prom}", prom)
                self.names.append(NameMapping(otlp_name, otlp_unit, kind, prom, mtype))
            held = self.families[prom]
            if held.type is not mtype:
                self.diag("OTLP-114", f"{prom} is both {held.type} and {mtype} in this request", prom)
        self.samples.setdefault(prom, []).extend(samples)

    def point(
        self, kind: str, point: Any, prom: str, job_instance: list[tuple[str, str]], otlp_name: str
    ) -> list[Sample]:
        labels = _dedupe_first([*self.attributes(point.attributes, prom), *job_instance])
        stale = bool(point.flags & _FLAG_NO_RECORDED_VALUE)
        if point.time_unix_nano == 0:
            self.diag("OTLP-111", f"{otlp_name}: a data point has no timestamp", prom)
        ts = _ts(point.time_unix_nano)
        line = self.metric_index
        if kind in ("gauge", "sum"):
            which = point.WhichOneof("value")
            value = float(point.as_int) if which == "as_int" else point.as_double
            if stale:
                value = STALE_NAN
            exemplar = self.exemplar(point.exemplars[-1]) if point.exemplars else None
            return [Sample(prom, tuple(labels), value, ts, exemplar, line)]
        if kind == "summary":
            return self.summary(point, prom, labels, ts, stale, line)
        if kind == "histogram":
            return self.histogram(point, prom, labels, ts, stale, line, otlp_name)
        return self.exponential(point, prom, labels, ts, stale, line, otlp_name)

    def exemplar(self, ex: mpb.Exemplar) -> Exemplar:
        labels: list[tuple[str, str]] = []
        if ex.trace_id:
            labels.append(("trace_id", ex.trace_id.hex()))
        if ex.span_id:
            labels.append(("span_id", ex.span_id.hex()))
        labels.extend(self.attributes(ex.filtered_attributes, "exemplar"))
        which = ex.WhichOneof("value")
        value = float(ex.as_int) if which == "as_int" else ex.as_double
        return Exemplar(tuple(labels), value, _ts(ex.time_unix_nano) if ex.time_unix_nano else None)

    def summary(
        self,
        point: mpb.SummaryDataPoint,
        prom: str,
        labels: list[tuple[str, str]],
        ts: float,
        stale: bool,
        line: int,
    ) -> list[Sample]:
        base = tuple(labels)
        out = [
            Sample(f"{prom}_sum", base, STALE_NAN if stale else point.sum, ts, line=line),
            Sample(f"{prom}_count", base, STALE_NAN if stale else float(point.count), ts, line=line),
        ]
        for q in point.quantile_values:
            value = STALE_NAN if stale else q.value
            out.append(Sample(prom, (*base, ("quantile", format_float_f(q.quantile))), value, ts, line=line))
        return out

    def histogram(
        self,
        point: mpb.HistogramDataPoint,
        prom: str,
        labels: list[tuple[str, str]],
        ts: float,
        stale: bool,
        line: int,
        otlp_name: str,
    ) -> list[Sample]:
        bounds = list(point.explicit_bounds)
        counts = list(point.bucket_counts)
        if counts and len(counts) != len(bounds) + 1:
            self.reject(
                1,
                "OTLP-105",
                f"{otlp_name}: {len(counts)} bucket counts for {len(bounds)} explicit bounds",
                prom,
            )
            return []
        if any(not b > a for a, b in itertools.pairwise(bounds)) or any(math.isnan(b) for b in bounds):
            self.reject(1, "OTLP-112", f"{otlp_name}: explicit bounds are not strictly increasing", prom)
            return []
        base = tuple(labels)
        out: list[Sample] = []
        if point.HasField("sum") or stale:
            out.append(Sample(f"{prom}_sum", base, STALE_NAN if stale else point.sum, ts, line=line))
        out.append(Sample(f"{prom}_count", base, STALE_NAN if stale else float(point.count), ts, line=line))
        exemplars = sorted((self.exemplar(ex) for ex in point.exemplars), key=lambda e: e.value)
        cumulative = 0
        for index, bound in enumerate([*bounds, math.inf]):
            if index < len(bounds):
                cumulative += counts[index] if counts else 0
                value = float(cumulative)
            else:
                value = float(point.count)
            exemplar = None
            for candidate in exemplars:
                if candidate.value <= bound:
                    exemplar = candidate
            if exemplar is not None:
                exemplars.remove(exemplar)
            out.append(
                Sample(
                    f"{prom}_bucket",
                    (*base, ("le", format_float_f(bound))),
                    STALE_NAN if stale else value,
                    ts,
                    exemplar,
                    line,
                )
            )
        return out

    def exponential(
        self,
        point: mpb.ExponentialHistogramDataPoint,
        prom: str,
        labels: list[tuple[str, str]],
        ts: float,
        stale: bool,
        line: int,
        otlp_name: str,
    ) -> list[Sample]:
        scale = point.scale
        if scale < -4:
            self.reject(1, "OTLP-106", f"{otlp_name}: exponential histogram scale {scale} is below -4", prom)
            return []
        scale_down = 0
        if scale > 8:
            self.diag("OTLP-107", f"{otlp_name}: scale {scale} downscaled to 8", prom)
            scale_down = scale - 8
            scale = 8
        pos_spans, pos_counts = _buckets_to_spans(
            point.positive.offset, point.positive.bucket_counts, scale_down
        )
        neg_spans, neg_counts = _buckets_to_spans(
            point.negative.offset, point.negative.bucket_counts, scale_down
        )
        native = NativeHistogram(
            schema=scale,
            zero_threshold=_DEFAULT_ZERO_THRESHOLD,
            zero_count=float(point.zero_count),
            count=STALE_NAN if stale else float(point.count),
            sum=STALE_NAN if stale else (point.sum if point.HasField("sum") else 0.0),
            positive_spans=pos_spans,
            positive_counts=pos_counts,
            negative_spans=neg_spans,
            negative_counts=neg_counts,
        )
        exemplar = self.exemplar(point.exemplars[-1]) if point.exemplars else None
        return [Sample(prom, tuple(labels), native.count, ts, exemplar, line, native)]

    def result(self) -> list[MetricFamily]:
        return [
            replace(family, samples=tuple(self.samples.get(name, ())))
            for name, family in self.families.items()
        ]


def _dedupe_first(labels: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Point attributes win over job/instance of the same name, as upstream's createAttributes."""
    seen: set[str] = set()
    out: list[tuple[str, str]] = []
    for name, value in labels:
        if name in seen:
            continue
        seen.add(name)
        out.append((name, value))
    return out


def _buckets_to_spans(
    offset: int, counts: Iterable[int], scale_down: int
) -> tuple[tuple[BucketSpan, ...], tuple[float, ...]]:
    """OTLP buckets (index ``offset + i`` covers ``(base**i, base**(i+1)]``) as Prometheus spans.

    Prometheus' bucket ``j`` covers ``(base**(j-1), base**j]``, so OTLP index ``i``
    is Prometheus index ``i + 1``; downscaling by ``d`` merges OTLP buckets
    ``i`` that share ``i >> d``. Empty buckets are left out.
    """
    merged: dict[int, float] = {}
    for position, count in enumerate(counts):
        if count == 0:
            continue
        index = ((offset + position) >> scale_down) + 1
        merged[index] = merged.get(index, 0.0) + float(count)
    spans: list[BucketSpan] = []
    values: list[float] = []
    previous_end: int | None = None
    for index in sorted(merged):
        if previous_end is not None and index == previous_end:
            spans[-1] = BucketSpan(spans[-1].offset, spans[-1].length + 1)
        else:
            gap = index if previous_end is None else index - previous_end
            spans.append(BucketSpan(gap, 1))
        values.append(merged[index])
        previous_end = index + 1
    return tuple(spans), tuple(values)


# --------------------------------------------------------------------------- the receiver


def _media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


class OtlpReceiver:
    """Receives OTLP/HTTP metrics on ``POST /v1/metrics`` (see the module docstring)."""

    def __init__(
        self,
        *,
        sink: ObservationSink | None = None,
        limits: PushLimits = PushLimits(),  # noqa: B008 - frozen value
        clock: Callable[[], float] = time.time,
        translation: TranslationStrategy = "UnderscoreEscapingWithSuffixes",
        path: str = "/v1/metrics",
    ) -> None:
        self._sink = sink
        self.limits = limits
        self._clock = clock
        self.translation: TranslationStrategy = translation
        self.path = path
        self._table = SenderTable(limits)
        self._stats = OtlpStats()
        self._names: OrderedDict[tuple[str, str, str], NameMapping] = OrderedDict()

    # -- public face

    def routes(self) -> list[Route]:
        """``POST /v1/metrics`` (gzip and other Content-Encodings are undone by the HTTP layer)."""
        return [Route(frozenset({"POST"}), self.path, self.handle)]

    async def handle(self, request: Request) -> Response:
        if len(request.body) >= _THREAD_THRESHOLD:
            response, observation, names = await asyncio.to_thread(self._decode_only, request)
        else:
            response, observation, names = self._decode_only(request)
        self._commit(request, response, observation, names)
        if self._sink is not None:
            asyncio.get_running_loop().call_soon(self._deliver, observation)
        return response

    def receive(self, request: Request) -> tuple[Response, Observation]:
        """Answer ``request`` synchronously and record it; returns the answer and its Observation."""
        response, observation, names = self._decode_only(request)
        self._commit(request, response, observation, names)
        return response, observation

    def translate(
        self, request: svc.ExportMetricsServiceRequest
    ) -> tuple[list[MetricFamily], list[Diagnostic]]:
        """The families and diagnostics a decoded request translates to (no state changes)."""
        work = _Request(self.translation, self.limits)
        work.translate(request)
        return work.result(), work.diagnostics

    def name_map(self) -> list[NameMapping]:
        """Every OTLP name seen (bounded, least recently seen first forgotten) and its Prometheus name."""
        return list(self._names.values())

    def latest_families(self, sender: str | None = None) -> list[MetricFamily]:
        return self._table.families(sender)

    def senders(self) -> list[SenderStats]:
        return self._table.stats()

    @property
    def stats(self) -> OtlpStats:
        stats = replace(
            self._stats, by_encoding=dict(self._stats.by_encoding), by_status=dict(self._stats.by_status)
        )
        stats.series_dropped = self._table.series_dropped
        stats.senders_evicted = self._table.senders_evicted
        return stats

    def exposition_families(self) -> list[MetricFamily]:
        """Nothing: OTLP metrics are shown, not re-exposed on ``/metrics``."""
        return []

    # -- internals

    def _deliver(self, observation: Observation) -> None:
        assert self._sink is not None
        try:
            self._sink(observation)
        except Exception:
            self._stats.sink_errors += 1
            log.exception("OTLP observation sink failed")

    def _decode_only(self, request: Request) -> tuple[Response, Observation, list[NameMapping]]:
        now = self._clock()
        sender = sender_identity(request.peer, request.user_agent)
        media = _media_type(request.content_type)
        if media not in (CONTENT_PROTOBUF, CONTENT_JSON):
            message = (
                f"Content-Type {request.content_type!r} is not supported; "
                f"send {CONTENT_PROTOBUF} or {CONTENT_JSON}"
            )
            return (*self._refusal(request, now, sender, CONTENT_PROTOBUF, 415, "OTLP-003", message), [])
        try:
            if media == CONTENT_JSON:
                decoded = parse_otlp_json(request.body)
            else:
                decoded = svc.ExportMetricsServiceRequest()
                decoded.ParseFromString(request.body)
        except (ValueError, DecodeError, RecursionError) as error:
            code = "OTLP-002" if media == CONTENT_JSON else "OTLP-001"
            what = "OTLP JSON" if media == CONTENT_JSON else "an OTLP ExportMetricsServiceRequest"
            message = f"the body does not decode as {what}: {error}"
            return (*self._refusal(request, now, sender, media, 400, code, message), [])
        work = _Request(self.translation, self.limits)
        work.translate(decoded)
        families = work.result()
        response_message = svc.ExportMetricsServiceResponse()
        if work.rejected:
            response_message.partial_success.rejected_data_points = work.rejected
            response_message.partial_success.error_message = "; ".join(work.reasons[:20])[:4000]
        elif work.reasons:
            response_message.partial_success.error_message = "; ".join(work.reasons[:20])[:4000]
        response = self._encode(200, response_message, media)
        series = sum(len(f.samples) for f in families)
        accepted = work.points - work.rejected
        outcome = (
            Outcome.ACCEPTED if not work.rejected else (Outcome.PARTIAL if accepted > 0 else Outcome.REJECTED)
        )
        encoding = "JSON" if media == CONTENT_JSON else "protobuf"
        message = f"OTLP {encoding}: {work.points} data points, {series} series"
        if work.rejected:
            message += f", {work.rejected} points rejected: {work.reasons[0]}"
        if work.suppressed:
            message += f" ({work.suppressed} more diagnostics not listed)"
        names_shown = work.names[:_MAX_NAMES_IN_OBSERVATION]
        extra = {
            "encoding": "json" if media == CONTENT_JSON else "protobuf",
            "data_points": str(work.points),
            "data_points_rejected": str(work.rejected),
            "otlp_names": json.dumps(
                {m.otlp_name: m.prometheus_name for m in names_shown},
                ensure_ascii=False,
                separators=(",", ":"),
            ),
        }
        observation = Observation(
            kind=ObservationKind.OTLP,
            source=sender,
            time=now,
            outcome=outcome,
            transport=request.transport(200, now, MappingProxyType(extra)),
            families=tuple(families) if outcome is not Outcome.REJECTED else (),
            diagnostics=tuple(work.diagnostics),
            message=message,
            series=series,
        )
        return response, observation, work.names

    def _encode(self, status: int, message: Message, media: str) -> Response:
        if media == CONTENT_JSON:
            body = json_format.MessageToJson(message, indent=None).encode("utf-8")
            return Response(status, body, (("content-type", CONTENT_JSON),))
        return Response(status, message.SerializeToString(), (("content-type", CONTENT_PROTOBUF),))

    def _refusal(
        self, request: Request, now: float, sender: str, media: str, status: int, code: str, message: str
    ) -> tuple[Response, Observation]:
        grpc_code = 3  # INVALID_ARGUMENT
        response = self._encode(status, rpc_status_pb2.Status(code=grpc_code, message=message), media)
        observation = Observation(
            kind=ObservationKind.OTLP,
            source=sender,
            time=now,
            outcome=Outcome.REJECTED,
            transport=request.transport(status, now, MappingProxyType({})),
            diagnostics=(Diagnostic(code, CODES[code].severity, 0, 0, message),),
            message=f"{status} {message}",
        )
        return response, observation

    def _commit(
        self, request: Request, response: Response, observation: Observation, names: list[NameMapping]
    ) -> None:
        stats = self._stats
        stats.requests += 1
        stats.by_status[response.status] = stats.by_status.get(response.status, 0) + 1
        encoding = observation.transport.extra.get("encoding")
        if encoding:
            stats.by_encoding[encoding] = stats.by_encoding.get(encoding, 0) + 1
        stats.bytes_received += request.wire_bytes
        points = int(observation.transport.extra.get("data_points", "0"))
        rejected = int(observation.transport.extra.get("data_points_rejected", "0"))
        stats.data_points += points
        stats.data_points_rejected += rejected
        sender = self._table.touch(observation.source, observation.time, request.user_agent)
        sender.requests += 1
        if observation.outcome is Outcome.REJECTED:
            sender.refused += 1
            sender.last_error = observation.message
        else:
            sender.accepted += 1
        sender.last_status = response.status
        sender.last_version = encoding or ""
        sender.samples += points - rejected
        if observation.families:
            self._table.record(observation.source, observation.families)
        for mapping in names:
            key = (mapping.otlp_name, mapping.unit, mapping.kind)
            self._names[key] = mapping
            self._names.move_to_end(key)
            while len(self._names) > _MAX_NAME_MAP:
                self._names.popitem(last=False)
