"""Prometheus remote_write receiver: ``POST /api/v1/write``, protocol 1.0 and 2.0.

A sender (Prometheus, Grafana Agent/Alloy, vmagent, the OpenTelemetry
Collector's ``prometheusremotewrite`` exporter…) pointed at promscope sees the
answers a Prometheus receiver gives, and every request becomes one
:class:`~promscope.observation.Observation` (kind ``remote_write``) whose
families are the time series it carried, grouped by ``__name__``, with the
metadata the sender included.

Protocol, as the specs and upstream's ``storage/remote/write_handler.go`` have it:

* **Content negotiation.** ``Content-Type: application/x-protobuf`` (or none,
  as upstream tolerates) is 1.0's ``prometheus.WriteRequest``;
  ``application/x-protobuf;proto=io.prometheus.write.v2.Request`` is 2.0.
  Any other media type or ``proto=`` answers **415**. The body is always a
  snappy *block* (not framed) — snappy is part of the protocol, so the route
  takes the raw body (``decode_body=False``); ``Content-Encoding`` must be
  ``snappy`` or absent, anything else is **415**.
* **Bad bodies** (snappy that does not decode, protobuf that does not parse)
  answer **400**: the sender must not retry them. A body whose declared
  decompressed size is beyond the limit answers **413**, before inflating it.
* **Invalid series** (no ``__name__``, an empty or repeated label name, a 2.0
  symbol reference out of range, samples out of timestamp order or in the
  future beyond Prometheus' 10-minute allowance) are refused one by one; the
  valid rest is kept (2.0's partial write, applied to 1.0 too) and the answer
  is **400** naming every problem, so the sender logs it and does not retry.
  Prometheus itself would accept 1.0 requests with invalid-label series
  silently (204); promscope says so rather than hide it.
* **Success** is **204**. 2.0 answers always carry
  ``X-Prometheus-Remote-Write-Samples-Written``, ``…-Histograms-Written`` and
  ``…-Exemplars-Written`` (also on a 400, counting what was kept).
* Nothing promscope refuses here gets better by retrying, so the receiver
  itself never answers 5xx (the HTTP layer's 503 for too many connections is
  the only retryable refusal).

Every problem is also a :class:`~promscope.model.Diagnostic` with an
``RW-…`` code (:data:`CODES`); ``line`` is the 1-based index of the
``TimeSeries`` message in the request (column 0).

What each sender sent last is kept, bounded, in a :class:`SenderTable`:
:meth:`RemoteWriteReceiver.latest_families` gives the newest sample of every
series a sender wrote (remote_write shards series across requests, so the
last request alone is only a slice), :meth:`RemoteWriteReceiver.senders` the
per-sender counters. Nothing else is kept: no history.
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from types import MappingProxyType

import cramjam
from google.protobuf.message import DecodeError

from promscope.codes import Code
from promscope.model import (
    BucketSpan,
    Diagnostic,
    Exemplar,
    Labels,
    MetricFamily,
    MetricType,
    NativeHistogram,
    Sample,
    SeriesKey,
    Severity,
)
from promscope.observation import Observation, ObservationKind, ObservationSink, Outcome, Transport
from promscope.receive._proto import remote_write_v1_pb2 as pb1
from promscope.receive._proto import remote_write_v2_pb2 as pb2
from promscope.receive.http import Request, Response, Route

__all__ = [
    "CODES",
    "CONTENT_TYPE_V1",
    "CONTENT_TYPE_V2",
    "PROTO_V1",
    "PROTO_V2",
    "FamilyMeta",
    "PushLimits",
    "RemoteWriteReceiver",
    "RemoteWriteStats",
    "SenderStats",
    "SenderTable",
    "decode_snappy",
    "encode_v1",
    "encode_v2",
    "legacy_label_name",
    "legacy_metric_name",
]

log = logging.getLogger(__name__)

E = Severity.ERROR
W = Severity.WARNING
S = Severity.STYLE

CODES: dict[str, Code] = {
    "RW-001": Code(E, "the body is not a valid snappy block"),
    "RW-002": Code(E, "the body does not decode as the protobuf message its Content-Type names"),
    "RW-003": Code(E, "the Content-Type is not a remote_write protobuf message promscope accepts (415)"),
    "RW-004": Code(E, "the Content-Encoding is not snappy (415)"),
    "RW-005": Code(E, "the decompressed body is larger than the configured limit (413)"),
    "RW-006": Code(E, "the request carries more series than the configured limit; the rest are refused"),
    "RW-007": Code(E, "the body decodes to an empty message: a 1.0 body sent as 2.0, or the other way round"),
    "RW-101": Code(E, "a series has no __name__ label (or an empty one); it is refused"),
    "RW-102": Code(E, "a series has a label with an empty name; it is refused"),
    "RW-103": Code(
        W, "a metric or label name is outside the legacy charset: Prometheus 3 accepts it, 2.x refuses it"
    ),
    "RW-104": Code(E, "a series repeats a label name; it is refused"),
    "RW-105": Code(W, "a series' labels are not sorted by name, as the spec requires"),
    "RW-106": Code(W, "a label has an empty value: Prometheus treats it as absent"),
    "RW-107": Code(E, "a sample is older than the one before it in the same series; it is refused"),
    "RW-108": Code(
        E, "a series has two samples with the same timestamp and different values; one is refused"
    ),
    "RW-109": Code(E, "a sample is more than 10 minutes in the future; Prometheus refuses it"),
    "RW-110": Code(W, "a series carries no samples and no histograms"),
    "RW-111": Code(E, "a 2.0 series carries both float samples and histograms"),
    "RW-112": Code(
        E, "a native histogram is malformed (spans and buckets disagree, bad schema, negative count)"
    ),
    "RW-113": Code(
        W, "a sample is not newer than what this sender wrote before for the series (out of order for a TSDB)"
    ),
    "RW-114": Code(E, "a series exceeds a label limit (count, name or value length); it is refused"),
    "RW-115": Code(W, "a metadata entry disagrees with another for the same metric family"),
    "RW-116": Code(W, "an exemplar has labels over 128 UTF-8 characters in total, or no timestamp"),
    "RW-201": Code(W, "a 2.0 request's symbols table does not start with the empty string"),
    "RW-202": Code(E, "a 2.0 reference points outside the symbols table; the series is refused"),
    "RW-203": Code(E, "a 2.0 series' labels_refs has an odd length; the series is refused"),
    "RW-204": Code(S, "a 2.0 series has no metadata type"),
}

PROTO_V1 = "prometheus.WriteRequest"
PROTO_V2 = "io.prometheus.write.v2.Request"
CONTENT_TYPE_V1 = "application/x-protobuf"
CONTENT_TYPE_V2 = f"application/x-protobuf;proto={PROTO_V2}"

HEADER_VERSION = "x-prometheus-remote-write-version"
HEADER_SAMPLES = "X-Prometheus-Remote-Write-Samples-Written"
HEADER_HISTOGRAMS = "X-Prometheus-Remote-Write-Histograms-Written"
HEADER_EXEMPLARS = "X-Prometheus-Remote-Write-Exemplars-Written"

MAX_AHEAD_SECONDS = 600.0
"""Prometheus' ``maxAheadTime``: samples further in the future are out of bounds."""

_EXEMPLAR_MAX_RUNES = 128
_NHCB_SCHEMA = -53
_SCHEMA_MIN, _SCHEMA_MAX = -4, 8
_THREAD_THRESHOLD = 1 << 20
"""Bodies at least this large (decompressed) are decoded in a worker thread."""

_LEGACY_METRIC = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LEGACY_LABEL = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")

_V1_TYPES: dict[int, MetricType] = {
    pb1.MetricMetadata.UNKNOWN: MetricType.UNKNOWN,
    pb1.MetricMetadata.COUNTER: MetricType.COUNTER,
    pb1.MetricMetadata.GAUGE: MetricType.GAUGE,
    pb1.MetricMetadata.HISTOGRAM: MetricType.HISTOGRAM,
    pb1.MetricMetadata.GAUGEHISTOGRAM: MetricType.GAUGEHISTOGRAM,
    pb1.MetricMetadata.SUMMARY: MetricType.SUMMARY,
    pb1.MetricMetadata.INFO: MetricType.INFO,
    pb1.MetricMetadata.STATESET: MetricType.STATESET,
}
_V2_TYPES: dict[int, MetricType] = {
    pb2.Metadata.METRIC_TYPE_UNSPECIFIED: MetricType.UNKNOWN,
    pb2.Metadata.METRIC_TYPE_COUNTER: MetricType.COUNTER,
    pb2.Metadata.METRIC_TYPE_GAUGE: MetricType.GAUGE,
    pb2.Metadata.METRIC_TYPE_HISTOGRAM: MetricType.HISTOGRAM,
    pb2.Metadata.METRIC_TYPE_GAUGEHISTOGRAM: MetricType.GAUGEHISTOGRAM,
    pb2.Metadata.METRIC_TYPE_SUMMARY: MetricType.SUMMARY,
    pb2.Metadata.METRIC_TYPE_INFO: MetricType.INFO,
    pb2.Metadata.METRIC_TYPE_STATESET: MetricType.STATESET,
}
_TYPES_TO_V1 = {v: k for k, v in _V1_TYPES.items()}
_TYPES_TO_V2 = {v: k for k, v in _V2_TYPES.items()}

# Series-name suffix -> family types it may belong to (the family named without the suffix).
_SUFFIX_FAMILIES: tuple[tuple[str, frozenset[MetricType]], ...] = (
    ("_bucket", frozenset({MetricType.HISTOGRAM, MetricType.GAUGEHISTOGRAM})),
    ("_count", frozenset({MetricType.HISTOGRAM, MetricType.GAUGEHISTOGRAM, MetricType.SUMMARY})),
    ("_sum", frozenset({MetricType.HISTOGRAM, MetricType.GAUGEHISTOGRAM, MetricType.SUMMARY})),
    ("_gcount", frozenset({MetricType.GAUGEHISTOGRAM})),
    ("_gsum", frozenset({MetricType.GAUGEHISTOGRAM})),
    ("_created", frozenset({MetricType.COUNTER, MetricType.HISTOGRAM, MetricType.SUMMARY})),
    ("_total", frozenset({MetricType.COUNTER})),
    ("_info", frozenset({MetricType.INFO})),
)


def legacy_metric_name(name: str) -> bool:
    """True when ``name`` matches ``[a-zA-Z_:][a-zA-Z0-9_:]*`` (every Prometheus version accepts it)."""
    return _LEGACY_METRIC.fullmatch(name) is not None


def legacy_label_name(name: str) -> bool:
    """True when ``name`` matches ``[a-zA-Z_][a-zA-Z0-9_]*``."""
    return _LEGACY_LABEL.fullmatch(name) is not None


# --------------------------------------------------------------------------- limits and sender state


@dataclass(frozen=True, slots=True)
class PushLimits:
    """Bounds on what one request may carry and on what a receiver keeps between requests.

    Hitting a per-request bound refuses the excess with a diagnostic (and a 4xx
    when it is the whole body); hitting a keep bound drops the newcomer and
    counts it in :class:`RemoteWriteStats` — never silently, never a crash.
    """

    max_decompressed_bytes: int = 64 * 1024 * 1024
    """A snappy body declaring a larger decompressed size answers 413 without being inflated."""
    max_series_per_request: int = 200_000
    max_labels_per_series: int = 512
    max_label_name_length: int = 1024
    max_label_value_length: int = 64 * 1024
    max_diagnostics: int = 1_000
    """Per request; further problems are counted in the observation message, not listed."""
    max_senders: int = 1_000
    """Senders whose latest series are kept; the least recently seen is forgotten first."""
    max_series_per_sender: int = 100_000
    max_series_total: int = 500_000
    """Latest-series entries across all senders."""


@dataclass(frozen=True, slots=True)
class FamilyMeta:
    """What a sender said about a metric family: type, help and unit (``None`` when not said)."""

    type: MetricType = MetricType.UNKNOWN
    help: str | None = None
    unit: str | None = None


@dataclass(slots=True)
class SenderStats:
    """Counters for one sender (a peer host and user agent)."""

    sender: str
    first_seen: float
    last_seen: float
    user_agent: str | None = None
    requests: int = 0
    accepted: int = 0
    """Requests answered 2xx."""
    refused: int = 0
    """Requests answered 4xx."""
    samples: int = 0
    histograms: int = 0
    exemplars: int = 0
    last_status: int = 0
    last_version: str = ""
    last_error: str = ""
    series_dropped: int = 0
    """Series not kept because a keep limit was reached."""

    def copy(self) -> SenderStats:
        return replace(self)


@dataclass(slots=True)
class _SenderState:
    stats: SenderStats
    series: dict[SeriesKey, tuple[str, Sample]] = field(default_factory=dict)
    """series key -> (family name, newest sample)."""
    families: dict[str, FamilyMeta] = field(default_factory=dict)
    metadata: dict[str, FamilyMeta] = field(default_factory=dict)
    """What the sender's metadata entries said (1.0 sends them in requests of their own)."""


_MAX_METADATA_PER_SENDER = 20_000


class SenderTable:
    """The newest sample of every series each sender wrote, and per-sender counters; bounded.

    Shared by the remote_write and OTLP receivers. Senders are kept in
    least-recently-seen order; beyond ``limits.max_senders`` the stalest is
    forgotten (counted in :attr:`senders_evicted`). A new series beyond a
    per-sender or total bound is not kept (counted in :attr:`series_dropped`).
    """

    def __init__(self, limits: PushLimits) -> None:
        self._limits = limits
        self._senders: OrderedDict[str, _SenderState] = OrderedDict()
        self._total_series = 0
        self.senders_evicted = 0
        self.series_dropped = 0

    def __len__(self) -> int:
        return len(self._senders)

    @property
    def series_count(self) -> int:
        return self._total_series

    def touch(self, sender: str, now: float, user_agent: str | None) -> SenderStats:
        """The stats of ``sender``, created (evicting the stalest sender if full) and marked seen."""
        state = self._senders.get(sender)
        if state is None:
            while len(self._senders) >= max(1, self._limits.max_senders):
                _, evicted = self._senders.popitem(last=False)
                self._total_series -= len(evicted.series)
                self.senders_evicted += 1
            state = _SenderState(SenderStats(sender, first_seen=now, last_seen=now, user_agent=user_agent))
            self._senders[sender] = state
        else:
            self._senders.move_to_end(sender)
        state.stats.last_seen = now
        if user_agent:
            state.stats.user_agent = user_agent
        return state.stats

    def record(self, sender: str, families: Iterable[MetricFamily]) -> int:
        """Keep the newest sample per series of ``families`` for ``sender``; returns series not kept."""
        state = self._senders.get(sender)
        if state is None:
            return 0
        dropped = 0
        per_sender = self._limits.max_series_per_sender
        total = self._limits.max_series_total
        for family in families:
            state.families[family.name] = FamilyMeta(family.type, family.help, family.unit)
            for sample in family.samples:
                key = sample.key()
                held = state.series.get(key)
                if held is None:
                    if len(state.series) >= per_sender or self._total_series >= total:
                        dropped += 1
                        continue
                    self._total_series += 1
                elif _newer_or_equal(held[1], sample) is False:
                    continue
                state.series[key] = (family.name, sample)
        # Forget metadata of families none of whose series are held (bounded by the series bound).
        if len(state.families) > len(state.series) + 64:
            held_families = {name for name, _ in state.series.values()}
            for name in [n for n in state.families if n not in held_families]:
                del state.families[name]
        state.stats.series_dropped += dropped
        self.series_dropped += dropped
        return dropped

    def record_metadata(self, sender: str, metadata: Mapping[str, FamilyMeta]) -> None:
        """Remember ``sender``'s metadata entries (bounded; entries beyond the bound are not kept)."""
        state = self._senders.get(sender)
        if state is None:
            return
        for name, meta in metadata.items():
            if name in state.metadata or len(state.metadata) < _MAX_METADATA_PER_SENDER:
                state.metadata[name] = meta

    def metadata(self, sender: str) -> Mapping[str, FamilyMeta]:
        """``sender``'s remembered metadata entries, by family name (read-only)."""
        state = self._senders.get(sender)
        return MappingProxyType(state.metadata) if state is not None else MappingProxyType({})

    def newest_timestamp(self, sender: str, key: SeriesKey) -> float | None:
        state = self._senders.get(sender)
        if state is None:
            return None
        held = state.series.get(key)
        return None if held is None else held[1].timestamp

    def families(self, sender: str | None = None) -> list[MetricFamily]:
        """The latest families of ``sender`` (or of every sender, merged), sorted by name."""
        states = (
            [self._senders[sender]]
            if sender is not None and sender in self._senders
            else ([] if sender is not None else list(self._senders.values()))
        )
        grouped: dict[str, list[Sample]] = {}
        metas: dict[str, FamilyMeta] = {}
        for state in states:
            for family_name, sample in state.series.values():
                held = state.families.get(family_name)
                if (held is None or held.type is MetricType.UNKNOWN) and state.metadata:
                    # Series that came before their metadata (1.0 sends it apart) join their family now.
                    found = _family_by_metadata(sample.name, state.metadata)
                    if found is not None:
                        family_name = found[0]
                        if family_name not in metas or metas[family_name].type is MetricType.UNKNOWN:
                            metas[family_name] = found[1]
                grouped.setdefault(family_name, []).append(sample)
            for name, meta in state.families.items():
                if name in grouped and (name not in metas or metas[name].type is MetricType.UNKNOWN):
                    metas[name] = meta
        out: list[MetricFamily] = []
        for name in sorted(grouped):
            meta = metas.get(name, FamilyMeta())
            samples = sorted(grouped[name], key=lambda s: (s.name, s.key()[1]))
            out.append(MetricFamily(name, meta.type, meta.help, meta.unit, tuple(samples)))
        return out

    def stats(self) -> list[SenderStats]:
        """Copies of every sender's stats, most recently seen last."""
        return [state.stats.copy() for state in self._senders.values()]

    def get(self, sender: str) -> SenderStats | None:
        state = self._senders.get(sender)
        return None if state is None else state.stats.copy()


def _newer_or_equal(held: Sample, new: Sample) -> bool:
    if held.timestamp is None or new.timestamp is None:
        return True
    return new.timestamp >= held.timestamp


def sender_identity(peer: str, user_agent: str | None) -> str:
    """``host`` of ``peer`` (no port: each connection has a new one), plus the user agent when given."""
    host = peer
    if peer.startswith("["):
        host = peer[1 : peer.find("]")] if "]" in peer else peer
    elif peer.count(":") == 1:
        host = peer.rsplit(":", 1)[0]
    return f"{host} {user_agent}" if user_agent else host


# --------------------------------------------------------------------------- stats


@dataclass(slots=True)
class RemoteWriteStats:
    """Receiver-wide counters (for ``promscope_*`` self-metrics and the tail summary)."""

    requests: int = 0
    by_version: dict[str, int] = field(default_factory=dict)
    by_status: dict[int, int] = field(default_factory=dict)
    samples_written: int = 0
    histograms_written: int = 0
    exemplars_written: int = 0
    samples_refused: int = 0
    series_refused: int = 0
    bytes_received: int = 0
    sink_errors: int = 0
    series_dropped: int = 0
    """Series not kept in the latest-series table because a keep limit was reached."""
    senders_evicted: int = 0


# --------------------------------------------------------------------------- snappy


class SnappyError(ValueError):
    """A body is not a valid snappy block, or declares a size beyond the limit."""

    def __init__(self, message: str, *, too_large: bool = False) -> None:
        super().__init__(message)
        self.too_large = too_large


def _snappy_declared_length(data: bytes) -> int:
    result = 0
    for index in range(min(len(data), 10)):
        byte = data[index]
        result |= (byte & 0x7F) << (7 * index)
        if not byte & 0x80:
            return result
    raise SnappyError("the snappy block does not start with a valid length varint")


def decode_snappy(data: bytes, max_bytes: int) -> bytes:
    """Decompress a snappy *block* (remote_write's encoding), refusing a declared size over ``max_bytes``."""
    if not data:
        return b""
    declared = _snappy_declared_length(data)
    if declared > max_bytes:
        raise SnappyError(
            f"the snappy block declares {declared} decompressed bytes, over the {max_bytes}-byte limit",
            too_large=True,
        )
    try:
        return bytes(cramjam.snappy.decompress_raw(data))
    except Exception as error:  # cramjam raises its own DecompressionError, or ValueError
        raise SnappyError(f"snappy: {str(error).strip() or type(error).__name__}") from None


# --------------------------------------------------------------------------- decoding into the model


@dataclass(slots=True)
class _Series:
    """One TimeSeries message, decoded to names and values."""

    index: int
    name: str
    labels: Labels
    """Without ``__name__``, in wire order."""
    samples: list[tuple[float, float]]
    """(timestamp seconds, value)"""
    histograms: list[tuple[float, NativeHistogram | None, pb1.Histogram | pb2.Histogram]]
    exemplars: list[Exemplar]
    meta: FamilyMeta | None = None
    created: float | None = None


@dataclass(slots=True)
class _Decoded:
    version: str
    families: list[MetricFamily]
    diagnostics: list[Diagnostic]
    series: int
    samples_written: int
    histograms_written: int
    exemplars_written: int
    samples_refused: int
    series_refused: int
    suppressed: int
    refusals: list[str]
    """One line per refused series or sample, for the 400 body."""
    metadata: dict[str, FamilyMeta] = field(default_factory=dict)
    """1.0 metadata entries this request carried (remembered per sender)."""


class _Diagnostics:
    def __init__(self, limit: int) -> None:
        self.items: list[Diagnostic] = []
        self.limit = limit
        self.suppressed = 0
        self.refusals: list[str] = []

    def add(self, code: str, line: int, message: str, metric: str | None = None) -> None:
        info = CODES[code]
        if info.severity is E:
            self.refusals.append(message)
        if len(self.items) >= self.limit:
            self.suppressed += 1
            return
        self.items.append(Diagnostic(code, info.severity, line, 0, message, metric))


def _labels_text(name: str, labels: Labels) -> str:
    inner = ",".join(f'{k}="{v}"' for k, v in labels)
    return f"{name}{{{inner}}}"


def _decode_histogram(
    h: pb1.Histogram | pb2.Histogram, diag: _Diagnostics, line: int, metric: str
) -> NativeHistogram | None:
    """An exponential native histogram as the model holds it, or None for custom buckets / problems."""
    if h.schema == _NHCB_SCHEMA:
        return None
    if not _SCHEMA_MIN <= h.schema <= _SCHEMA_MAX:
        diag.add("RW-112", line, f"{metric}: native histogram schema {h.schema} is outside -4..8", metric)
        return None
    is_float = h.WhichOneof("count") == "count_float"
    count = h.count_float if is_float else float(h.count_int)
    zero = h.zero_count_float if h.WhichOneof("zero_count") == "zero_count_float" else float(h.zero_count_int)
    sides: list[tuple[tuple[BucketSpan, ...], tuple[float, ...]]] = []
    for spans_pb, deltas, counts_pb in (
        (h.positive_spans, h.positive_deltas, h.positive_counts),
        (h.negative_spans, h.negative_deltas, h.negative_counts),
    ):
        spans = tuple(BucketSpan(s.offset, s.length) for s in spans_pb)
        if counts_pb:
            counts = tuple(float(c) for c in counts_pb)
        else:
            running = 0
            absolute: list[float] = []
            for delta in deltas:
                running += delta
                absolute.append(float(running))
            counts = tuple(absolute)
        if sum(s.length for s in spans) != len(counts):
            diag.add(
                "RW-112",
                line,
                f"{metric}: native histogram spans cover {sum(s.length for s in spans)} buckets "
                f"but {len(counts)} counts are given",
                metric,
            )
            return None
        if any(c < 0 for c in counts):
            diag.add("RW-112", line, f"{metric}: native histogram has a negative bucket count", metric)
            return None
        sides.append((spans, counts))
    return NativeHistogram(
        schema=h.schema,
        zero_threshold=h.zero_threshold,
        zero_count=zero,
        count=count,
        sum=h.sum,
        positive_spans=sides[0][0],
        positive_counts=sides[0][1],
        negative_spans=sides[1][0],
        negative_counts=sides[1][1],
    )


def _custom_bucket_samples(
    h: pb1.Histogram | pb2.Histogram, name: str, labels: Labels, ts: float, line: int, diag: _Diagnostics
) -> list[Sample]:
    """A custom-bucket (schema -53) native histogram as classic ``_bucket``/``_count``/``_sum`` samples."""
    bounds = list(h.custom_values)
    if any(b >= a for a, b in zip(bounds[1:], bounds, strict=False)):
        diag.add("RW-112", line, f"{name}: custom bucket bounds are not strictly increasing", name)
        return []
    counts: dict[int, float] = {}
    index = 0
    raw = list(h.positive_counts) if h.positive_counts else None
    running = 0
    position = 0
    deltas = list(h.positive_deltas)
    for span in h.positive_spans:
        index += span.offset
        for _ in range(span.length):
            if raw is not None:
                value = raw[position] if position < len(raw) else math.nan
            else:
                running += deltas[position] if position < len(deltas) else 0
                value = float(running)
            counts[index] = value
            index += 1
            position += 1
    if any(i < 0 or i > len(bounds) for i in counts):
        diag.add("RW-112", line, f"{name}: a custom bucket index is outside the custom_values bounds", name)
        return []
    from promscope.exposition.protobuf import format_go_float

    out: list[Sample] = []
    cumulative = 0.0
    for i, bound in enumerate([*bounds, math.inf]):
        cumulative += counts.get(i, 0.0)
        out.append(
            Sample(f"{name}_bucket", (*labels, ("le", format_go_float(bound))), cumulative, ts, line=line)
        )
    is_float = h.WhichOneof("count") == "count_float"
    out.append(
        Sample(f"{name}_count", labels, h.count_float if is_float else float(h.count_int), ts, line=line)
    )
    out.append(Sample(f"{name}_sum", labels, h.sum, ts, line=line))
    return out


def _family_by_metadata(name: str, metadata: Mapping[str, FamilyMeta]) -> tuple[str, FamilyMeta] | None:
    """The family a series name belongs to by what metadata names: exact, or a type's suffix stripped."""
    meta = metadata.get(name)
    if meta is not None:
        return name, meta
    for suffix, types in _SUFFIX_FAMILIES:
        if name.endswith(suffix):
            base = name[: -len(suffix)]
            for candidate in (base, base + "_total") if suffix == "_created" else (base,):
                meta = metadata.get(candidate)
                if meta is not None and meta.type in types:
                    return candidate, meta
    return None


class _Builder:
    """Turns decoded series into families, checking them; shared by 1.0 and 2.0."""

    def __init__(
        self,
        version: str,
        limits: PushLimits,
        now: float,
        newest: Callable[[SeriesKey], float | None],
        known: Mapping[str, FamilyMeta] = MappingProxyType({}),
    ) -> None:
        self.version = version
        self.limits = limits
        self.now = now
        self.newest = newest
        self.diag = _Diagnostics(limits.max_diagnostics)
        self.metadata: dict[str, FamilyMeta] = dict(known)
        """What the sender said about families: earlier requests (1.0 sends metadata apart) and this one."""
        self.request_metadata: dict[str, FamilyMeta] = {}
        self.series: list[_Series] = []
        self.samples_refused = 0
        self.series_refused = 0
        self.total_series = 0

    # -- labels

    def check_labels(self, index: int, pairs: Sequence[tuple[str, str]]) -> tuple[str, Labels] | None:
        """``(metric name, other labels)`` for a valid label set, else None (diagnostics added)."""
        diag = self.diag
        name = ""
        names_seen: set[str] = set()
        duplicate: str | None = None
        other: list[tuple[str, str]] = []
        previous: str | None = None
        unsorted = False
        limits = self.limits
        too_long = len(pairs) > limits.max_labels_per_series
        for label_name, value in pairs:
            if label_name in names_seen:
                duplicate = label_name
            names_seen.add(label_name)
            if previous is not None and label_name < previous:
                unsorted = True
            previous = label_name
            if len(label_name) > limits.max_label_name_length or len(value) > limits.max_label_value_length:
                too_long = True
            if label_name == "__name__":
                name = value
            else:
                other.append((label_name, value))
        shown = _labels_text(name, tuple(other)) if len(other) <= 32 else f"{name}{{…{len(other)} labels}}"
        metric = name or None
        if too_long:
            diag.add("RW-114", index, f"series {shown[:200]} exceeds a label limit; refused", metric)
            return None
        if not name:
            diag.add("RW-101", index, f"series {shown} has no __name__ label; refused", metric)
            return None
        if "" in names_seen:
            diag.add("RW-102", index, f"series {shown} has a label with an empty name; refused", metric)
            return None
        if duplicate is not None:
            diag.add("RW-104", index, f"series {shown} repeats label {duplicate!r}; refused", metric)
            return None
        if unsorted:
            diag.add("RW-105", index, f"series {shown}: labels are not sorted by name", metric)
        if not legacy_metric_name(name):
            diag.add("RW-103", index, f"metric name {name!r} needs UTF-8 name support (Prometheus 3)", metric)
        for label_name, value in other:
            if not legacy_label_name(label_name):
                diag.add(
                    "RW-103", index, f"{name}: label name {label_name!r} needs UTF-8 name support", metric
                )
            if value == "":
                diag.add("RW-106", index, f"{name}: label {label_name!r} has an empty value", metric)
        return name, tuple(other)

    # -- samples

    def check_samples(
        self, index: int, name: str, labels: Labels, points: list[tuple[float, float]]
    ) -> list[tuple[float, float]]:
        """The samples Prometheus would append, in order; the rest refused with diagnostics."""
        kept: list[tuple[float, float]] = []
        last_ts: float | None = None
        last_value = 0.0
        key: SeriesKey = (name, tuple(sorted(labels)))
        before = self.newest(key)
        limit = self.now + MAX_AHEAD_SECONDS
        for ts, value in points:
            if ts > limit:
                self._refuse(
                    "RW-109", index, name, f"{_labels_text(name, labels)} @{ts:.3f}s is over 10 minutes ahead"
                )
                continue
            if last_ts is not None:
                if ts < last_ts:
                    self._refuse(
                        "RW-107",
                        index,
                        name,
                        f"{_labels_text(name, labels)} @{ts:.3f}s comes after @{last_ts:.3f}s",
                    )
                    continue
                if ts == last_ts:
                    if not _same_value(value, last_value):
                        self._refuse(
                            "RW-108",
                            index,
                            name,
                            f"{_labels_text(name, labels)} has two values at @{ts:.3f}s",
                        )
                    continue
            kept.append((ts, value))
            last_ts, last_value = ts, value
        if kept and before is not None and kept[0][0] < before:
            self.diag.add(
                "RW-113",
                index,
                f"{_labels_text(name, labels)} @{kept[0][0]:.3f}s is older than @{before:.3f}s sent before",
                name,
            )
        return kept

    def _refuse(self, code: str, index: int, name: str, message: str) -> None:
        self.samples_refused += 1
        self.diag.add(code, index, message + "; refused", name)

    def refuse_series(self, points: int) -> None:
        self.series_refused += 1
        self.samples_refused += points

    def admit_series(self, index: int, total: int) -> bool:
        """Count series ``index`` (1-based) of ``total``; False, refusing it and the rest, past the limit."""
        limit = self.limits.max_series_per_request
        if index > limit:
            self.diag.add("RW-006", index, f"series {index} and later are over the {limit} limit")
            self.series_refused += total - index + 1
            return False
        self.total_series += 1
        return True

    # -- families

    def family_of(self, name: str, series_meta: FamilyMeta | None, native: bool) -> tuple[str, FamilyMeta]:
        if series_meta is not None and series_meta.type is not MetricType.UNKNOWN:
            if series_meta.type in (MetricType.HISTOGRAM, MetricType.GAUGEHISTOGRAM, MetricType.SUMMARY):
                for suffix in ("_bucket", "_count", "_sum", "_created"):
                    if name.endswith(suffix) and not native:
                        return name[: -len(suffix)], series_meta
            return name, series_meta
        found = _family_by_metadata(name, self.metadata)
        if found is not None:
            return found
        if series_meta is not None:
            return name, series_meta
        if native:
            return name, FamilyMeta(MetricType.HISTOGRAM)
        return name, FamilyMeta()

    def build(self, written: _Written) -> list[MetricFamily]:
        grouped: dict[str, list[Sample]] = {}
        metas: dict[str, FamilyMeta] = {}
        for series in self.series:
            family_name, meta = self.family_of(series.name, series.meta, bool(series.histograms))
            if family_name in metas and metas[family_name] != meta and series.meta is not None:
                if metas[family_name].type is MetricType.UNKNOWN:
                    metas[family_name] = meta
                elif meta.type is not MetricType.UNKNOWN:
                    self.diag.add(
                        "RW-115",
                        series.index,
                        f"{family_name}: metadata {meta.type}/{meta.help!r}/{meta.unit!r} disagrees with "
                        f"{metas[family_name].type}/{metas[family_name].help!r}/{metas[family_name].unit!r}",
                        family_name,
                    )
            metas.setdefault(family_name, meta)
            out = grouped.setdefault(family_name, [])
            samples = [
                Sample(series.name, series.labels, value, ts, line=series.index)
                for ts, value in series.samples
            ]
            for ts, native, raw in series.histograms:
                if native is not None:
                    samples.append(
                        Sample(
                            series.name,
                            series.labels,
                            native.count,
                            ts,
                            line=series.index,
                            native_histogram=native,
                        )
                    )
                else:
                    samples.extend(
                        _custom_bucket_samples(raw, series.name, series.labels, ts, series.index, self.diag)
                    )
            _attach_exemplars(samples, series.exemplars)
            written.samples += len(series.samples)
            written.histograms += len(series.histograms)
            written.exemplars += min(len(series.exemplars), len(samples))
            out.extend(samples)
            if series.created is not None and samples:
                created_name = _created_name(series.name, family_name, meta.type)
                if created_name is not None:
                    out.append(
                        Sample(
                            created_name,
                            series.labels,
                            series.created,
                            samples[-1].timestamp,
                            line=series.index,
                        )
                    )
        return [
            MetricFamily(name, metas[name].type, metas[name].help, metas[name].unit, tuple(samples))
            for name, samples in grouped.items()
        ]


@dataclass(slots=True)
class _Written:
    samples: int = 0
    histograms: int = 0
    exemplars: int = 0


def _created_name(series_name: str, family_name: str, kind: MetricType) -> str | None:
    if kind is MetricType.COUNTER:
        base = series_name[: -len("_total")] if series_name.endswith("_total") else series_name
        return base + "_created"
    if kind in (MetricType.HISTOGRAM, MetricType.SUMMARY) and series_name in (
        family_name,
        family_name + "_count",
    ):
        return family_name + "_created"
    return None


def _same_value(a: float, b: float) -> bool:
    return a == b or (math.isnan(a) and math.isnan(b) and _nan_bits(a) == _nan_bits(b))


def _nan_bits(value: float) -> bytes:
    import struct

    return struct.pack("<d", value)


def _attach_exemplars(samples: list[Sample], exemplars: list[Exemplar]) -> None:
    """Attach each exemplar to the newest sample at or before its timestamp that has none yet."""
    if not exemplars or not samples:
        return
    for exemplar in exemplars:
        target = len(samples) - 1
        if exemplar.timestamp is not None:
            for i in range(len(samples) - 1, -1, -1):
                ts = samples[i].timestamp
                if ts is not None and ts <= exemplar.timestamp:
                    target = i
                    break
        for i in range(target, -1, -1):
            if samples[i].exemplar is None and not samples[i].name.endswith("_created"):
                samples[i] = replace(samples[i], exemplar=exemplar)
                break


def _exemplar_ok(labels: Labels, ts_ms: int) -> str | None:
    runes = sum(len(k) + len(v) for k, v in labels)
    if runes > _EXEMPLAR_MAX_RUNES:
        return f"exemplar labels have {runes} UTF-8 characters (limit {_EXEMPLAR_MAX_RUNES})"
    if ts_ms == 0:
        return "exemplar has no timestamp"
    return None


class _WrongMessage(ValueError):
    """A non-empty body that decodes to an empty message: the other protocol version's message."""


def _decode_v1(
    body: bytes,
    limits: PushLimits,
    now: float,
    newest: Callable[[SeriesKey], float | None],
    known: Mapping[str, FamilyMeta],
) -> _Decoded:
    request = pb1.WriteRequest()
    request.ParseFromString(body)
    if body and not request.timeseries and not request.metadata:
        raise _WrongMessage(
            f"the body decodes to an empty {PROTO_V1}; is it a 2.0 request? "
            f"Send it with Content-Type: {CONTENT_TYPE_V2}"
        )
    builder = _Builder("1.0", limits, now, newest, known)
    diag = builder.diag
    for position, md in enumerate(request.metadata, 1):
        meta = FamilyMeta(_V1_TYPES.get(md.type, MetricType.UNKNOWN), md.help or None, md.unit or None)
        held = builder.request_metadata.get(md.metric_family_name)
        if held is not None and held != meta:
            diag.add(
                "RW-115",
                0,
                f"metadata entry {position} for {md.metric_family_name} disagrees with an earlier one",
                md.metric_family_name,
            )
        builder.metadata[md.metric_family_name] = meta
        builder.request_metadata[md.metric_family_name] = meta
    for index, ts in enumerate(request.timeseries, 1):
        if not builder.admit_series(index, len(request.timeseries)):
            break
        _add_series(
            builder,
            index,
            [(label.name, label.value) for label in ts.labels],
            [(s.timestamp / 1000.0, s.value) for s in ts.samples],
            list(ts.histograms),
            [
                ([(label.name, label.value) for label in ex.labels], ex.value, ex.timestamp)
                for ex in ts.exemplars
            ],
            None,
            None,
        )
    return _finish(builder)


def _decode_v2(
    body: bytes,
    limits: PushLimits,
    now: float,
    newest: Callable[[SeriesKey], float | None],
    known: Mapping[str, FamilyMeta],
) -> _Decoded:
    request = pb2.Request()
    request.ParseFromString(body)
    if body and not request.timeseries and not request.symbols:
        raise _WrongMessage(
            f"the body decodes to an empty {PROTO_V2}; is it a 1.0 WriteRequest? "
            f"Send it with Content-Type: {CONTENT_TYPE_V1} (no proto parameter)"
        )
    builder = _Builder("2.0", limits, now, newest)
    diag = builder.diag
    symbols = list(request.symbols)
    count = len(symbols)
    if symbols and symbols[0] != "":
        diag.add("RW-201", 0, f"symbols[0] is {symbols[0][:80]!r}, not the empty string")
    for index, ts in enumerate(request.timeseries, 1):
        if not builder.admit_series(index, len(request.timeseries)):
            break
        points = len(ts.samples) + len(ts.histograms)
        refs = list(ts.labels_refs)
        if len(refs) % 2:
            diag.add("RW-203", index, f"series {index}: labels_refs has odd length {len(refs)}; refused")
            builder.refuse_series(points)
            continue
        bad = [r for r in refs if r >= count]
        meta_refs = [ts.metadata.help_ref, ts.metadata.unit_ref]
        bad_meta = [r for r in meta_refs if r >= count]
        exemplar_refs = [r for ex in ts.exemplars for r in ex.labels_refs if r >= count]
        if bad or bad_meta or exemplar_refs or any(len(ex.labels_refs) % 2 for ex in ts.exemplars):
            worst = max([*bad, *bad_meta, *exemplar_refs], default=count)
            diag.add(
                "RW-202",
                index,
                f"series {index}: reference {worst} is outside the symbols table (size {count}); refused",
            )
            builder.refuse_series(points)
            continue
        pairs = [(symbols[refs[i]], symbols[refs[i + 1]]) for i in range(0, len(refs), 2)]
        if ts.samples and ts.histograms:
            name = next((v for k, v in pairs if k == "__name__"), "")
            diag.add(
                "RW-111",
                index,
                f"series {index} ({name}) carries samples and histograms; refused",
                name or None,
            )
            builder.refuse_series(points)
            continue
        kind = _V2_TYPES.get(ts.metadata.type, MetricType.UNKNOWN)
        help_text = symbols[ts.metadata.help_ref] or None
        unit = symbols[ts.metadata.unit_ref] or None
        meta = FamilyMeta(kind, help_text, unit)
        if ts.metadata.type == pb2.Metadata.METRIC_TYPE_UNSPECIFIED:
            name = next((v for k, v in pairs if k == "__name__"), "")
            diag.add("RW-204", index, f"series {index} ({name}) has no metadata type", name or None)
        created_ms = ts.created_timestamp or next(
            (s.start_timestamp for s in ts.samples if s.start_timestamp),
            next((h.start_timestamp for h in ts.histograms if h.start_timestamp), 0),
        )
        _add_series(
            builder,
            index,
            pairs,
            [(s.timestamp / 1000.0, s.value) for s in ts.samples],
            list(ts.histograms),
            [
                (
                    [
                        (symbols[ex.labels_refs[i]], symbols[ex.labels_refs[i + 1]])
                        for i in range(0, len(ex.labels_refs), 2)
                    ],
                    ex.value,
                    ex.timestamp,
                )
                for ex in ts.exemplars
            ],
            meta,
            created_ms / 1000.0 if created_ms else None,
        )
    return _finish(builder)


def _add_series(
    builder: _Builder,
    index: int,
    pairs: list[tuple[str, str]],
    points: list[tuple[float, float]],
    histograms: Sequence[pb1.Histogram | pb2.Histogram],
    exemplars: list[tuple[list[tuple[str, str]], float, int]],
    meta: FamilyMeta | None,
    created: float | None,
) -> None:
    checked = builder.check_labels(index, pairs)
    if checked is None:
        builder.refuse_series(len(points) + len(histograms))
        return
    name, labels = checked
    if not points and not histograms:
        builder.diag.add("RW-110", index, f"{_labels_text(name, labels)} has no samples", name)
    kept = builder.check_samples(index, name, labels, points) if points else []
    hist_points: list[tuple[float, NativeHistogram | None, pb1.Histogram | pb2.Histogram]] = []
    if histograms:
        order = builder.check_samples(
            index, name, labels, [(h.timestamp / 1000.0, float(i)) for i, h in enumerate(histograms)]
        )
        for ts, position in order:
            raw = histograms[int(position)]
            native = _decode_histogram(raw, builder.diag, index, name)
            if native is None and raw.schema != _NHCB_SCHEMA:
                builder.samples_refused += 1
                continue
            hist_points.append((ts, native, raw))
    decoded_exemplars: list[Exemplar] = []
    for ex_labels, value, ts_ms in exemplars:
        ex_tuple = tuple(ex_labels)
        problem = _exemplar_ok(ex_tuple, ts_ms)
        if problem is not None:
            builder.diag.add("RW-116", index, f"{name}: {problem}", name)
        decoded_exemplars.append(Exemplar(ex_tuple, value, ts_ms / 1000.0 if ts_ms else None))
    builder.series.append(_Series(index, name, labels, kept, hist_points, decoded_exemplars, meta, created))


def _finish(builder: _Builder) -> _Decoded:
    written = _Written()
    families = builder.build(written)
    diag = builder.diag
    return _Decoded(
        version=builder.version,
        families=families,
        diagnostics=diag.items,
        series=builder.total_series,
        samples_written=written.samples,
        histograms_written=written.histograms,
        exemplars_written=written.exemplars,
        samples_refused=builder.samples_refused,
        series_refused=builder.series_refused,
        suppressed=diag.suppressed,
        refusals=diag.refusals,
        metadata=builder.request_metadata,
    )


# --------------------------------------------------------------------------- encoding (tests, push clients)


def encode_v1(families: Iterable[MetricFamily], *, metadata: bool = True) -> bytes:
    """A snappy-compressed 1.0 ``WriteRequest`` for ``families`` (native histograms included).

    Samples without a timestamp are not representable and are skipped.
    """
    request = pb1.WriteRequest()
    for family in families:
        if metadata:
            request.metadata.add(
                type=_TYPES_TO_V1.get(family.type, 0),
                metric_family_name=family.name,
                help=family.help or "",
                unit=family.unit or "",
            )
        for sample in family.samples:
            if sample.timestamp is None:
                continue
            ts = request.timeseries.add()
            for name, value in sorted([("__name__", sample.name), *sample.labels]):
                ts.labels.add(name=name, value=value)
            ts_ms = round(sample.timestamp * 1000)
            if sample.native_histogram is not None:
                _fill_histogram(ts.histograms.add(), sample.native_histogram, ts_ms)
            else:
                ts.samples.add(value=sample.value, timestamp=ts_ms)
            if sample.exemplar is not None:
                ex = ts.exemplars.add(value=sample.exemplar.value)
                ex.timestamp = round((sample.exemplar.timestamp or sample.timestamp) * 1000)
                for name, value in sample.exemplar.labels:
                    ex.labels.add(name=name, value=value)
    return bytes(cramjam.snappy.compress_raw(request.SerializeToString()))


def encode_v2(families: Iterable[MetricFamily]) -> bytes:
    """A snappy-compressed 2.0 ``Request`` for ``families``, with a symbols table and per-series metadata."""
    symbols: dict[str, int] = {"": 0}

    def ref(text: str) -> int:
        return symbols.setdefault(text, len(symbols))

    request = pb2.Request()
    for family in families:
        for sample in family.samples:
            if sample.timestamp is None:
                continue
            ts = request.timeseries.add()
            for name, value in sorted([("__name__", sample.name), *sample.labels]):
                ts.labels_refs.extend((ref(name), ref(value)))
            ts_ms = round(sample.timestamp * 1000)
            if sample.native_histogram is not None:
                _fill_histogram(ts.histograms.add(), sample.native_histogram, ts_ms)
            else:
                ts.samples.add(value=sample.value, timestamp=ts_ms)
            ts.metadata.CopyFrom(
                pb2.Metadata(
                    type=pb2.Metadata.MetricType.Name(_TYPES_TO_V2.get(family.type, 0)),
                    help_ref=ref(family.help or ""),
                    unit_ref=ref(family.unit or ""),
                )
            )
            if sample.exemplar is not None:
                ex = ts.exemplars.add(value=sample.exemplar.value)
                ex.timestamp = round((sample.exemplar.timestamp or sample.timestamp) * 1000)
                for name, value in sample.exemplar.labels:
                    ex.labels_refs.extend((ref(name), ref(value)))
    request.symbols.extend(symbols)
    return bytes(cramjam.snappy.compress_raw(request.SerializeToString()))


def _fill_histogram(h: pb1.Histogram | pb2.Histogram, native: NativeHistogram, ts_ms: int) -> None:
    integral = all(
        float(c).is_integer()
        for c in (native.count, native.zero_count, *native.positive_counts, *native.negative_counts)
    )
    h.timestamp = ts_ms
    h.sum = native.sum
    h.schema = native.schema
    h.zero_threshold = native.zero_threshold
    for spans, counts, span_field, delta_field, count_field in (
        (
            native.positive_spans,
            native.positive_counts,
            h.positive_spans,
            h.positive_deltas,
            h.positive_counts,
        ),
        (
            native.negative_spans,
            native.negative_counts,
            h.negative_spans,
            h.negative_deltas,
            h.negative_counts,
        ),
    ):
        for span in spans:
            span_field.add(offset=span.offset, length=span.length)
        if integral:
            previous = 0
            for count in counts:
                delta_field.append(int(count) - previous)
                previous = int(count)
        else:
            count_field.extend(counts)
    if integral:
        h.count_int = int(native.count)
        h.zero_count_int = int(native.zero_count)
    else:
        h.count_float = native.count
        h.zero_count_float = native.zero_count


# --------------------------------------------------------------------------- content negotiation


def _media(content_type: str) -> tuple[str, dict[str, str]]:
    parts = [p.strip() for p in content_type.split(";")]
    params: dict[str, str] = {}
    for part in parts[1:]:
        if not part:
            continue
        key, _, value = part.partition("=")
        params[key.strip().lower()] = value.strip().strip('"')
    return parts[0].lower(), params


def negotiate(content_type: str | None) -> tuple[str | None, str]:
    """``(proto message, "")`` for an accepted Content-Type, else ``(None, why)``."""
    if not content_type or not content_type.strip():
        return PROTO_V1, ""
    media, params = _media(content_type)
    if media != CONTENT_TYPE_V1:
        return None, f"expected {CONTENT_TYPE_V1} as the media type, got {content_type!r}"
    proto = params.get("proto", PROTO_V1)
    if proto in (PROTO_V1, PROTO_V2):
        return proto, ""
    return None, f"proto={proto} is not accepted; accepted: {PROTO_V1}, {PROTO_V2}"


# --------------------------------------------------------------------------- the receiver


class RemoteWriteReceiver:
    """Receives remote_write 1.0 and 2.0 on ``POST /api/v1/write`` (see the module docstring).

    ``sink`` gets one Observation per request, right after the answer is
    handed to the HTTP layer. ``clock`` is wall time, for observation times
    and the 10-minute future bound.
    """

    path = "/api/v1/write"

    def __init__(
        self,
        *,
        sink: ObservationSink | None = None,
        limits: PushLimits = PushLimits(),
        clock: Callable[[], float] = time.time,
        path: str = "/api/v1/write",
    ) -> None:
        self._sink = sink
        self.limits = limits
        self._clock = clock
        self.path = path
        self._table = SenderTable(limits)
        self._stats = RemoteWriteStats()

    # -- public face

    def routes(self) -> list[Route]:
        """``POST /api/v1/write``, taking the raw (snappy) body."""
        return [Route(frozenset({"POST"}), self.path, self.handle, decode_body=False)]

    async def handle(self, request: Request) -> Response:
        """The route handler: answer, then hand the Observation to the sink."""
        if len(request.body) >= _THREAD_THRESHOLD // 4:
            # Decode big bodies in a worker thread, on a snapshot of what the loop owns.
            sender = sender_identity(request.peer, request.user_agent)
            known = dict(self._table.metadata(sender))
            response, observation, metadata = await asyncio.to_thread(self._decode_only, request, known)
        else:
            response, observation, metadata = self._decode_only(request)
        self._commit(request, response, observation, metadata)
        if self._sink is not None:
            asyncio.get_running_loop().call_soon(self._deliver, observation)
        return response

    def receive(self, request: Request) -> tuple[Response, Observation]:
        """Answer ``request`` synchronously and record it; returns the answer and its Observation."""
        response, observation, metadata = self._decode_only(request)
        self._commit(request, response, observation, metadata)
        return response, observation

    @property
    def stats(self) -> RemoteWriteStats:
        stats = replace(
            self._stats, by_version=dict(self._stats.by_version), by_status=dict(self._stats.by_status)
        )
        stats.series_dropped = self._table.series_dropped
        stats.senders_evicted = self._table.senders_evicted
        return stats

    def latest_families(self, sender: str | None = None) -> list[MetricFamily]:
        """The newest sample of every series ``sender`` (default: every sender) wrote, as families."""
        return self._table.families(sender)

    def senders(self) -> list[SenderStats]:
        """Per-sender counters, most recently seen last."""
        return self._table.stats()

    def exposition_families(self) -> list[MetricFamily]:
        """Nothing: remote_write series are shown, not re-exposed on ``/metrics`` (Prometheus owns them)."""
        return []

    # -- internals

    def _deliver(self, observation: Observation) -> None:
        assert self._sink is not None
        try:
            self._sink(observation)
        except Exception:  # the sink's bug: count it, keep serving
            self._stats.sink_errors += 1
            log.exception("remote_write observation sink failed")

    def _decode_only(
        self, request: Request, known: Mapping[str, FamilyMeta] | None = None
    ) -> tuple[Response, Observation, dict[str, FamilyMeta]]:
        """Decode and check; no receiver state is changed (in a worker thread, pass ``known``)."""
        now = self._clock()
        sender = sender_identity(request.peer, request.user_agent)
        proto, why = negotiate(request.content_type)
        version = "2.0" if proto == PROTO_V2 else "1.0"
        if proto is None:
            return (*self._refusal(request, now, sender, "", 415, "RW-003", why, 0), {})
        encoding = (request.content_encoding or request.header("content-encoding") or "").strip().lower()
        if encoding not in ("", "snappy"):
            message = (
                f"{encoding} encoding (compression) is not accepted by this server; only snappy is acceptable"
            )
            return (*self._refusal(request, now, sender, version, 415, "RW-004", message, 0), {})
        try:
            body = decode_snappy(request.body, self.limits.max_decompressed_bytes)
        except SnappyError as error:
            if error.too_large:
                return (*self._refusal(request, now, sender, version, 413, "RW-005", str(error), 0), {})
            return (*self._refusal(request, now, sender, version, 400, "RW-001", str(error), 0), {})
        decode = _decode_v2 if proto == PROTO_V2 else _decode_v1
        newest = self._newest_lookup(sender)
        try:
            if known is None:
                known = self._table.metadata(sender)
            decoded = decode(body, self.limits, now, newest, known)
        except DecodeError as error:
            message = f"the body does not decode as {proto}: {error}"
            return (*self._refusal(request, now, sender, version, 400, "RW-002", message, len(body)), {})
        except _WrongMessage as error:
            return (*self._refusal(request, now, sender, version, 400, "RW-007", str(error), len(body)), {})
        except RecursionError:
            message = f"the body does not decode as {proto}: nested too deeply"
            return (*self._refusal(request, now, sender, version, 400, "RW-002", message, len(body)), {})
        return (*self._answer(request, now, sender, decoded, len(body)), decoded.metadata)

    def _newest_lookup(self, sender: str) -> Callable[[SeriesKey], float | None]:
        table = self._table

        def newest(key: SeriesKey) -> float | None:
            return table.newest_timestamp(sender, key)

        return newest

    def _transport(
        self, request: Request, status: int, body_bytes: int, now: float, extra: dict[str, str]
    ) -> Transport:
        remote_version = request.header(HEADER_VERSION)
        if remote_version:
            extra["sender_version_header"] = remote_version
        return request.transport(
            status,
            now,
            MappingProxyType(extra),
            body_bytes=body_bytes,
            content_encoding=request.content_encoding or request.header("content-encoding"),
        )

    def _refusal(
        self,
        request: Request,
        now: float,
        sender: str,
        version: str,
        status: int,
        code: str,
        message: str,
        body_bytes: int,
    ) -> tuple[Response, Observation]:
        headers: tuple[tuple[str, str], ...] = ()
        if version == "2.0" and status == 400:
            headers = ((HEADER_SAMPLES, "0"), (HEADER_HISTOGRAMS, "0"), (HEADER_EXEMPLARS, "0"))
        response = Response.text(status, message + "\n")
        if headers:
            response = Response(response.status, response.body, (*response.headers, *headers))
        extra = {"remote_write_version": version} if version else {}
        observation = Observation(
            kind=ObservationKind.REMOTE_WRITE,
            source=sender,
            time=now,
            outcome=Outcome.REJECTED,
            transport=self._transport(request, status, body_bytes, now, extra),
            diagnostics=(Diagnostic(code, CODES[code].severity, 0, 0, message),),
            message=f"{status} {message}",
        )
        return response, observation

    def _answer(
        self, request: Request, now: float, sender: str, decoded: _Decoded, body_bytes: int
    ) -> tuple[Response, Observation]:
        refused = decoded.samples_refused + decoded.series_refused
        status = 400 if decoded.refusals else 204
        headers: tuple[tuple[str, str], ...] = ()
        if decoded.version == "2.0":
            headers = (
                (HEADER_SAMPLES, str(decoded.samples_written)),
                (HEADER_HISTOGRAMS, str(decoded.histograms_written)),
                (HEADER_EXEMPLARS, str(decoded.exemplars_written)),
            )
        written = decoded.samples_written + decoded.histograms_written
        if status == 204:
            response = Response(204, b"", headers)
            outcome = Outcome.ACCEPTED
            message = f"remote_write {decoded.version}: {decoded.series} series, {written} samples"
        else:
            shown = decoded.refusals[:20]
            more = len(decoded.refusals) - len(shown)
            text = "\n".join(shown) + (f"\n… and {more} more" if more else "") + "\n"
            text_response = Response.text(400, text)
            response = Response(400, text_response.body, (*text_response.headers, *headers))
            outcome = Outcome.PARTIAL if written else Outcome.REJECTED
            message = (
                f"remote_write {decoded.version}: {written} samples kept, {refused} refused: "
                f"{decoded.refusals[0]}"
            )
        if decoded.suppressed:
            message += f" ({decoded.suppressed} more diagnostics not listed)"
        extra = {
            "remote_write_version": decoded.version,
            "samples_written": str(decoded.samples_written),
            "histograms_written": str(decoded.histograms_written),
            "exemplars_written": str(decoded.exemplars_written),
        }
        observation = Observation(
            kind=ObservationKind.REMOTE_WRITE,
            source=sender,
            time=now,
            outcome=outcome,
            transport=self._transport(request, status, body_bytes, now, extra),
            families=tuple(decoded.families),
            diagnostics=tuple(decoded.diagnostics),
            message=message,
            series=decoded.series,
        )
        return response, observation

    def _commit(
        self, request: Request, response: Response, observation: Observation, metadata: dict[str, FamilyMeta]
    ) -> None:
        """Apply an answered request to the receiver's state (event loop only)."""
        stats = self._stats
        stats.requests += 1
        stats.by_status[response.status] = stats.by_status.get(response.status, 0) + 1
        version = observation.transport.extra.get("remote_write_version", "")
        if version:
            stats.by_version[version] = stats.by_version.get(version, 0) + 1
        stats.bytes_received += request.wire_bytes
        extra = observation.transport.extra
        samples = int(extra.get("samples_written", "0"))
        histograms = int(extra.get("histograms_written", "0"))
        exemplars = int(extra.get("exemplars_written", "0"))
        stats.samples_written += samples
        stats.histograms_written += histograms
        stats.exemplars_written += exemplars
        refused_series = sum(1 for d in observation.diagnostics if d.code in _SERIES_REFUSALS)
        stats.series_refused += refused_series
        stats.samples_refused += sum(1 for d in observation.diagnostics if d.code in _SAMPLE_REFUSALS)
        sender = self._table.touch(observation.source, observation.time, request.user_agent)
        sender.requests += 1
        if 200 <= response.status < 300:
            sender.accepted += 1
        else:
            sender.refused += 1
            sender.last_error = observation.message
        sender.last_status = response.status
        sender.last_version = version
        sender.samples += samples
        sender.histograms += histograms
        sender.exemplars += exemplars
        if metadata:
            self._table.record_metadata(observation.source, metadata)
        if observation.families:
            self._table.record(observation.source, observation.families)


_SERIES_REFUSALS = frozenset({"RW-101", "RW-102", "RW-104", "RW-111", "RW-114", "RW-202", "RW-203"})
_SAMPLE_REFUSALS = frozenset({"RW-107", "RW-108", "RW-109", "RW-112"})
