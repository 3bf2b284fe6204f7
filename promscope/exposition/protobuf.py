"""Length-delimited ``io.prometheus.client.MetricFamily`` messages <-> model.

This is the format Prometheus asks for first when native histograms are on
(``Accept: application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;
encoding=delimited``): each message is preceded by its length as a base-128
varint. :func:`parse_protobuf` maps the messages onto the shared model the way
Prometheus' ``textparse.ProtobufParser`` presents them to the scraper:

* counter, gauge and untyped (:attr:`MetricType.UNKNOWN`) give one sample per
  metric, a counter's ``created_timestamp`` an extra ``<name>_created`` sample
  (``foo_total`` -> ``foo_created``, as OpenMetrics names it);
* summaries give ``quantile`` samples, ``_sum``, ``_count`` and ``_created``;
* histograms and gauge histograms give classic ``_bucket`` samples (``le`` as
  Prometheus formats it, a ``+Inf`` bucket added when missing), ``_sum`` and
  ``_count``, and/or a native histogram sample named after the family whose
  value is the observation count. When a histogram carries both, both are
  kept, as Prometheus does with ``always_scrape_classic_histograms``.

Diagnostics carry the 1-based index of the message as ``line`` (column 0);
framing problems also name the byte offset in their text. A bad length
prefix cannot be resynchronised, so parsing stops there; a message that does
not decode is skipped and the next one read.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from decimal import Decimal
from functools import lru_cache

from google.protobuf.message import DecodeError

from promscope.codes import Code
from promscope.exposition._diag import DiagnosticSink, ParseLimits
from promscope.exposition._proto import metrics_pb2 as pb
from promscope.model import (
    BucketSpan,
    Exemplar,
    Labels,
    MetricFamily,
    MetricType,
    NativeHistogram,
    Sample,
    Severity,
)

__all__ = ["CODES", "MAX_MESSAGE_SIZE", "encode_protobuf", "format_go_float", "parse_protobuf"]

E = Severity.ERROR
W = Severity.WARNING

CODES: dict[str, Code] = {
    "PB-101": Code(E, "the input ends inside a message's varint length prefix"),
    "PB-102": Code(E, "a message's varint length prefix is longer than 10 bytes"),
    "PB-103": Code(E, "a message's length prefix is beyond protobuf's 2 GiB message limit"),
    "PB-104": Code(E, "a message's length prefix runs past the end of the input"),
    "PB-105": Code(E, "a message does not decode as io.prometheus.client.MetricFamily"),
    "PB-201": Code(E, "a MetricFamily has no name"),
    "PB-202": Code(E, "a MetricFamily has a type value outside the MetricType enum"),
    "PB-203": Code(W, "a histogram has neither classic buckets nor native histogram data"),
    "PB-204": Code(E, "a metric repeats a label name"),
    "PB-205": Code(E, "a string field is not valid UTF-8"),
    "PB-206": Code(W, "a metric lacks the value field its family's type needs"),
    "PB-207": Code(E, "a metric has a label with an empty name"),
    "PB-208": Code(E, "a native histogram's spans and bucket counts disagree in length"),
    "PB-209": Code(E, "a native histogram has a negative bucket count"),
    "PB-210": Code(W, "a native histogram's schema is outside -4..8"),
    "PB-211": Code(E, "a metric exceeds a label limit (count, name or value length)"),
    "PB-212": Code(E, "the sample limit is reached; the rest of the input is skipped"),
}

MAX_MESSAGE_SIZE = (1 << 31) - 1
"""Protobuf cannot encode a message larger than 2 GiB; a longer prefix is garbage."""

_NATIVE_SCHEMA_MIN = -4
_NATIVE_SCHEMA_MAX = 8

_TYPES: dict[int, MetricType] = {
    pb.COUNTER: MetricType.COUNTER,
    pb.GAUGE: MetricType.GAUGE,
    pb.SUMMARY: MetricType.SUMMARY,
    pb.UNTYPED: MetricType.UNKNOWN,
    pb.HISTOGRAM: MetricType.HISTOGRAM,
    pb.GAUGE_HISTOGRAM: MetricType.GAUGEHISTOGRAM,
}

_VALUE_FIELD: dict[MetricType, str] = {
    MetricType.COUNTER: "counter",
    MetricType.GAUGE: "gauge",
    MetricType.UNKNOWN: "untyped",
    MetricType.SUMMARY: "summary",
    MetricType.HISTOGRAM: "histogram",
    MetricType.GAUGEHISTOGRAM: "histogram",
}


# --------------------------------------------------------------------------- number formatting


@lru_cache(maxsize=4096)
def format_go_float(value: float) -> str:
    """Format ``value`` as Prometheus formats ``le`` and ``quantile`` label values from protobuf.

    That is Prometheus' ``formatOpenMetricsFloat``: Go's
    ``strconv.FormatFloat(v, 'g', -1, 64)`` (the shortest digits that round-trip,
    in exponent form when the decimal exponent is below -4 or at least 6) with
    ``.0`` appended when the result has neither ``.`` nor ``e``:
    ``1 -> "1.0"``, ``0.005 -> "0.005"``, ``1e6 -> "1e+06"``, ``inf -> "+Inf"``.
    """
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value == 0:
        return "0.0"  # -0 too, as Go's f == 0 test sees it
    sign, digit_tuple, exponent = Decimal(repr(value)).as_tuple()
    assert isinstance(exponent, int)
    point = len(digit_tuple) + exponent  # position of the decimal point after the first digit
    digits = "".join(map(str, digit_tuple)).rstrip("0")
    decimal_exponent = point - 1
    prefix = "-" if sign else ""
    if decimal_exponent < -4 or decimal_exponent >= 6:
        mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        exp_sign = "-" if decimal_exponent < 0 else "+"
        return f"{prefix}{mantissa}e{exp_sign}{abs(decimal_exponent):02d}"
    if point <= 0:
        text = "0." + "0" * -point + digits
    elif point >= len(digits):
        text = digits + "0" * (point - len(digits)) + ".0"
    else:
        text = digits[:point] + "." + digits[point:]
    return prefix + text


def _parse_bound(text: str | None) -> float:
    if text is None:
        return math.inf
    try:
        return float(text)
    except ValueError:
        return math.nan


# --------------------------------------------------------------------------- framing


def _read_varint(data: bytes | memoryview, pos: int, end: int) -> tuple[int, int, str | None]:
    """``(value, next position, problem code)``: decode the varint at ``pos``."""
    result = 0
    shift = 0
    start = pos
    while True:
        if pos >= end:
            return 0, pos, "PB-101"
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos, None
        shift += 7
        if pos - start >= 10:
            return 0, pos, "PB-102"


def _varint_bytes(value: int) -> bytes:
    out = bytearray()
    while True:
        bits = value & 0x7F
        value >>= 7
        if value:
            out.append(bits | 0x80)
        else:
            out.append(bits)
            return bytes(out)


# --------------------------------------------------------------------------- parsing


class _Decoder:
    """State for one :func:`parse_protobuf` call."""

    __slots__ = ("limits", "max_samples", "samples_seen", "sink", "stopped")

    def __init__(self, sink: DiagnosticSink, limits: ParseLimits) -> None:
        self.sink = sink
        self.limits = limits
        self.max_samples = limits.max_samples
        self.samples_seen = 0
        self.stopped = False

    # ---- strings and labels

    def text(self, value: str | bytes, index: int, what: str, family: str | None) -> str:
        """A decoded string field; invalid UTF-8 (upb hands it over as bytes) is reported and replaced."""
        if isinstance(value, str):
            return value
        self.sink.error("PB-205", index, 0, f"{what} is not valid UTF-8: {bytes(value)!r}", family)
        return bytes(value).decode("utf-8", "replace")

    def labels(self, label_pairs: Sequence[pb.LabelPair], index: int, family: str) -> Labels | None:
        """The label pairs of a metric or exemplar, or None when they are unusable (reported)."""
        pairs = tuple([(lp.name, lp.value) for lp in label_pairs])
        if not pairs:
            return ()
        # Fast path, all in C: a dict drops repeated names, and join() refuses the bytes upb hands
        # over for invalid UTF-8 while measuring a bound on every name and value length.
        limits = self.limits
        by_name = dict(pairs)
        if len(by_name) == len(pairs) and "" not in by_name and len(pairs) <= limits.max_labels:
            try:
                names_length = len("".join(by_name))
                values_length = len("".join(by_name.values()))
            except TypeError:
                pass
            else:
                if (
                    names_length <= limits.max_label_name_length
                    and values_length <= limits.max_label_value_length
                ):
                    return pairs
        return self._check_labels(pairs, index, family)

    def _check_labels(
        self, pairs: tuple[tuple[str | bytes, str | bytes], ...], index: int, family: str
    ) -> Labels | None:
        limits = self.limits
        sink = self.sink
        if len(pairs) > limits.max_labels:
            sink.error(
                "PB-211", index, 0, f"{len(pairs)} labels, more than the limit of {limits.max_labels}", family
            )
            return None
        out: list[tuple[str, str]] = []
        seen: set[str] = set()
        usable = True
        for raw_name, raw_value in pairs:
            if not isinstance(raw_name, str) or not isinstance(raw_value, str):
                if isinstance(raw_name, bytes):
                    what, bad = "label name", raw_name
                else:
                    what, bad = f"value of label {raw_name!r}", bytes(raw_value)  # type: ignore[arg-type]
                sink.error("PB-205", index, 0, f"{what} is not valid UTF-8: {bad!r}", family)
                usable = False
                continue
            if not raw_name:
                sink.error("PB-207", index, 0, "a label has an empty name", family)
                usable = False
                continue
            if len(raw_name) > limits.max_label_name_length:
                sink.error(
                    "PB-211",
                    index,
                    0,
                    f"label name {raw_name[:40]!r}... is {len(raw_name)} characters, "
                    f"more than the limit of {limits.max_label_name_length}",
                    family,
                )
                usable = False
                continue
            if len(raw_value) > limits.max_label_value_length:
                sink.error(
                    "PB-211",
                    index,
                    0,
                    f"value of label {raw_name!r} is {len(raw_value)} characters, "
                    f"more than the limit of {limits.max_label_value_length}",
                    family,
                )
                usable = False
                continue
            if raw_name in seen:
                sink.error("PB-204", index, 0, f"label {raw_name!r} appears more than once", family)
                usable = False
                continue
            seen.add(raw_name)
            out.append((raw_name, raw_value))
        return tuple(out) if usable else None

    def exemplar(self, proto: pb.Exemplar, index: int, family: str) -> Exemplar | None:
        labels = self.labels(proto.label, index, family)
        if labels is None:
            return None
        timestamp = None
        if proto.HasField("timestamp"):
            timestamp = proto.timestamp.seconds + proto.timestamp.nanos / 1e9
        return Exemplar(labels, proto.value, timestamp)

    # ---- messages

    def family(self, mf: pb.MetricFamily, index: int) -> MetricFamily | None:
        sink = self.sink
        raw_name = mf.name
        if not isinstance(raw_name, str):
            sink.error("PB-205", index, 0, f"metric family name is not valid UTF-8: {bytes(raw_name)!r}")
            return None
        name = raw_name
        if not name:
            sink.error("PB-201", index, 0, "metric family has no name; its metrics are skipped")
            return None
        if mf.HasField("type"):
            family_type = _TYPES.get(mf.type)
        elif _has_unknown_field(mf, 3):
            family_type = None
        else:
            family_type = MetricType.COUNTER  # proto2 default, as Prometheus reads it
        if family_type is None:
            sink.error(
                "PB-202",
                index,
                0,
                f"metric family {name!r} has a type value outside the MetricType enum; "
                "its metrics are skipped",
                name,
            )
            return None
        help_text = self.text(mf.help, index, "help text", name) if mf.HasField("help") else None
        unit = self.text(mf.unit, index, "unit", name) if mf.HasField("unit") else None

        samples: list[Sample] = []
        if family_type is MetricType.COUNTER:
            self._counters(mf.metric, name, index, samples)
        elif family_type is MetricType.GAUGE:
            self._simple(mf.metric, "gauge", name, index, samples)
        elif family_type is MetricType.UNKNOWN:
            self._simple(mf.metric, "untyped", name, index, samples)
        elif family_type is MetricType.SUMMARY:
            self._summaries(mf.metric, name, index, samples)
        else:
            self._histograms(mf.metric, name, family_type, index, samples)

        if self.max_samples and self.samples_seen + len(samples) > self.max_samples:
            keep = max(0, self.max_samples - self.samples_seen)
            del samples[keep:]
            sink.error(
                "PB-212",
                index,
                0,
                f"more than {self.max_samples} samples; the rest of the input is skipped",
                name,
            )
            self.stopped = True
        self.samples_seen += len(samples)
        return MetricFamily(
            name=name, type=family_type, help=help_text, unit=unit, samples=tuple(samples), line=index
        )

    def _missing_value(self, metrics: Iterable[pb.Metric], field: str, name: str, index: int) -> set[int]:
        """Positions of metrics lacking ``field``, reported once for the family."""
        missing = {position for position, m in enumerate(metrics) if not m.HasField(field)}
        if missing:
            self.sink.warning(
                "PB-206",
                index,
                0,
                f"{len(missing)} metric(s) of {name!r} have no {field!r} field; "
                "their values are read as 0, as Prometheus reads them",
                name,
            )
        return missing

    def _simple(
        self, metrics: Sequence[pb.Metric], field: str, name: str, index: int, out: list[Sample]
    ) -> None:
        missing_check = True
        append = out.append
        labels_of = self.labels
        for m in metrics:
            if not m.HasField(field) and missing_check:
                self._missing_value(metrics, field, name, index)
                missing_check = False
            labels = labels_of(m.label, index, name)
            if labels is None:
                continue
            timestamp = m.timestamp_ms / 1000 if m.HasField("timestamp_ms") else None
            value = m.gauge.value if field == "gauge" else m.untyped.value
            append(Sample(name, labels, value, timestamp, None, index))

    def _counters(self, metrics: Sequence[pb.Metric], name: str, index: int, out: list[Sample]) -> None:
        created_name = (name[:-6] if name.endswith("_total") else name) + "_created"
        missing_check = True
        append = out.append
        labels_of = self.labels
        for m in metrics:
            if not m.HasField("counter") and missing_check:
                self._missing_value(metrics, "counter", name, index)
                missing_check = False
            labels = labels_of(m.label, index, name)
            if labels is None:
                continue
            timestamp = m.timestamp_ms / 1000 if m.HasField("timestamp_ms") else None
            counter = m.counter
            exemplar = self.exemplar(counter.exemplar, index, name) if counter.HasField("exemplar") else None
            append(Sample(name, labels, counter.value, timestamp, exemplar, index))
            if counter.HasField("created_timestamp"):
                created = counter.created_timestamp
                append(
                    Sample(
                        created_name, labels, created.seconds + created.nanos / 1e9, timestamp, None, index
                    )
                )

    def _summaries(self, metrics: Sequence[pb.Metric], name: str, index: int, out: list[Sample]) -> None:
        sum_name, count_name, created_name = name + "_sum", name + "_count", name + "_created"
        missing_check = True
        append = out.append
        for m in metrics:
            if not m.HasField("summary") and missing_check:
                self._missing_value(metrics, "summary", name, index)
                missing_check = False
            labels = self.labels(m.label, index, name)
            if labels is None:
                continue
            timestamp = m.timestamp_ms / 1000 if m.HasField("timestamp_ms") else None
            summary = m.summary
            for quantile in summary.quantile:
                append(
                    Sample(
                        name,
                        (*labels, ("quantile", format_go_float(quantile.quantile))),
                        quantile.value,
                        timestamp,
                        None,
                        index,
                    )
                )
            append(Sample(sum_name, labels, summary.sample_sum, timestamp, None, index))
            append(Sample(count_name, labels, float(summary.sample_count), timestamp, None, index))
            if summary.HasField("created_timestamp"):
                created = summary.created_timestamp
                append(
                    Sample(
                        created_name, labels, created.seconds + created.nanos / 1e9, timestamp, None, index
                    )
                )

    def _histograms(
        self,
        metrics: Sequence[pb.Metric],
        name: str,
        family_type: MetricType,
        index: int,
        out: list[Sample],
    ) -> None:
        bucket_name, sum_name = name + "_bucket", name + "_sum"
        count_name, created_name = name + "_count", name + "_created"
        missing: set[int] = set()
        if not all(m.HasField("histogram") for m in metrics):
            missing = self._missing_value(metrics, "histogram", name, index)
        append = out.append
        for position, m in enumerate(metrics):
            labels = self.labels(m.label, index, name)
            if labels is None:
                continue
            timestamp = m.timestamp_ms / 1000 if m.HasField("timestamp_ms") else None
            h = m.histogram
            buckets = h.bucket
            count = h.sample_count_float
            if not count > 0:
                count = float(h.sample_count)
            native = _is_native(h)
            if native:
                append(self._native(h, name, labels, timestamp, index))
            elif not buckets and position not in missing:
                self.sink.warning(
                    "PB-203",
                    index,
                    0,
                    f"a histogram of {name!r} has neither classic buckets nor native histogram data; "
                    "only its +Inf bucket, _sum and _count are kept",
                    name,
                )
            if buckets or not native:
                last_bound = None
                for bucket in buckets:
                    value = bucket.cumulative_count_float
                    if not value > 0:
                        value = float(bucket.cumulative_count)
                    exemplar = (
                        self.exemplar(bucket.exemplar, index, name) if bucket.HasField("exemplar") else None
                    )
                    last_bound = bucket.upper_bound
                    append(
                        Sample(
                            bucket_name,
                            (*labels, ("le", format_go_float(last_bound))),
                            value,
                            timestamp,
                            exemplar,
                            index,
                        )
                    )
                if last_bound is None or not (math.isinf(last_bound) and last_bound > 0):
                    append(Sample(bucket_name, (*labels, ("le", "+Inf")), count, timestamp, None, index))
                append(Sample(sum_name, labels, h.sample_sum, timestamp, None, index))
                append(Sample(count_name, labels, count, timestamp, None, index))
            if h.HasField("created_timestamp"):
                created = h.created_timestamp
                append(
                    Sample(
                        created_name, labels, created.seconds + created.nanos / 1e9, timestamp, None, index
                    )
                )

    def _native(
        self, h: pb.Histogram, name: str, labels: Labels, timestamp: float | None, index: int
    ) -> Sample:
        sink = self.sink
        is_float = h.sample_count_float > 0 or h.zero_count_float > 0
        positive_spans = tuple(BucketSpan(s.offset, s.length) for s in h.positive_span)
        negative_spans = tuple(BucketSpan(s.offset, s.length) for s in h.negative_span)
        if positive_spans == (BucketSpan(0, 0),) and not negative_spans:
            positive_spans = ()  # the "no-op span" that marks an empty native histogram
        if is_float:
            count = h.sample_count_float
            zero_count = h.zero_count_float
            positive = tuple(h.positive_count)
            negative = tuple(h.negative_count)
        else:
            count = float(h.sample_count)
            zero_count = float(h.zero_count)
            positive = _undelta(h.positive_delta)
            negative = _undelta(h.negative_delta)
        schema = h.schema
        if not _NATIVE_SCHEMA_MIN <= schema <= _NATIVE_SCHEMA_MAX:
            sink.warning(
                "PB-210",
                index,
                0,
                f"native histogram of {name!r} has schema {schema}: Prometheus rejects schemas "
                "below -4 and reduces ones above 8 to 8",
                name,
            )
        for side, spans, counts in (
            ("positive", positive_spans, positive),
            ("negative", negative_spans, negative),
        ):
            expected = sum(span.length for span in spans)
            if expected != len(counts):
                kind = "counts" if is_float else "deltas"
                sink.error(
                    "PB-208",
                    index,
                    0,
                    f"native histogram of {name!r}: {side} spans cover {expected} buckets "
                    f"but {len(counts)} {side} {kind} are given",
                    name,
                )
            if any(c < 0 for c in counts):
                sink.error(
                    "PB-209",
                    index,
                    0,
                    f"native histogram of {name!r} has a negative {side} bucket count ({min(counts)})",
                    name,
                )
        exemplar = None
        for candidate in h.exemplars:
            if candidate.HasField("timestamp"):
                exemplar = self.exemplar(candidate, index, name)
                break
        else:
            for bucket in h.bucket:
                if bucket.HasField("exemplar") and bucket.exemplar.HasField("timestamp"):
                    exemplar = self.exemplar(bucket.exemplar, index, name)
                    break
        histogram = NativeHistogram(
            schema=schema,
            zero_threshold=h.zero_threshold,
            zero_count=zero_count,
            count=count,
            sum=h.sample_sum,
            positive_spans=positive_spans,
            positive_counts=positive,
            negative_spans=negative_spans,
            negative_counts=negative,
        )
        return Sample(name, labels, count, timestamp, exemplar, index, histogram)


def _undelta(deltas: Iterable[int]) -> tuple[float, ...]:
    out: list[float] = []
    running = 0
    for delta in deltas:
        running += delta
        out.append(float(running))
    return tuple(out)


def _is_native(h: pb.Histogram) -> bool:
    """Prometheus' ``isNativeHistogram``: any span, a zero threshold or an (integer) zero count."""
    return bool(len(h.positive_span) or len(h.negative_span) or h.zero_threshold > 0 or h.zero_count > 0)


def _has_unknown_field(message: pb.MetricFamily, number: int) -> bool:
    """Whether ``message`` holds ``number`` as an unknown field (a proto2 enum value out of range)."""
    from google.protobuf import unknown_fields

    fields = unknown_fields.UnknownFieldSet(message)
    return any(fields[i].field_number == number for i in range(len(fields)))


def parse_protobuf(data: bytes, sink: DiagnosticSink, limits: ParseLimits) -> tuple[list[MetricFamily], int]:
    """Parse delimited ``MetricFamily`` messages; return the families and the number of messages read.

    Every problem becomes a diagnostic in ``sink`` with the message's 1-based
    index as its line; nothing here raises on bad input.
    """
    decoder = _Decoder(sink, limits)
    families: list[MetricFamily] = []
    end = len(data)
    pos = 0
    index = 0
    message = pb.MetricFamily()
    while pos < end and not decoder.stopped:
        index += 1
        start = pos
        length, pos, problem = _read_varint(data, pos, end)
        if problem == "PB-101":
            sink.error(
                problem,
                index,
                0,
                f"input ends inside the length prefix of message {index} at byte {start} "
                f"({end - start} byte(s) left)",
            )
            index -= 1
            break
        if problem == "PB-102":
            sink.error(
                problem,
                index,
                0,
                f"length prefix of message {index} at byte {start} is longer than 10 bytes; "
                f"the remaining {end - start} bytes cannot be framed",
            )
            index -= 1
            break
        if length > MAX_MESSAGE_SIZE:
            sink.error(
                "PB-103",
                index,
                0,
                f"length prefix of message {index} at byte {start} says {length} bytes, beyond "
                f"protobuf's 2 GiB limit; the remaining {end - start} bytes cannot be framed",
            )
            index -= 1
            break
        if length > end - pos:
            sink.error(
                "PB-104",
                index,
                0,
                f"message {index} at byte {start} claims {length} bytes but only {end - pos} remain; "
                "the rest of the input is skipped",
            )
            index -= 1
            break
        body = data[pos : pos + length]
        pos += length
        try:
            message.ParseFromString(body)
        except DecodeError as exc:
            sink.error(
                "PB-105",
                index,
                0,
                f"message {index} ({length} bytes at byte {start}) does not decode as MetricFamily: {exc}",
            )
            continue
        family = decoder.family(message, index)
        if family is not None:
            families.append(family)
    return families, index


# --------------------------------------------------------------------------- encoding


def _timestamp(seconds: float, target: pb.Exemplar | pb.Counter | pb.Summary | pb.Histogram) -> None:
    """Set ``target``'s timestamp field (``timestamp`` or ``created_timestamp``) from float seconds."""
    whole = math.floor(seconds)
    nanos = round((seconds - whole) * 1e9)
    if nanos >= 1_000_000_000:
        whole += 1
        nanos -= 1_000_000_000
    field = target.timestamp if isinstance(target, pb.Exemplar) else target.created_timestamp
    field.seconds = int(whole)
    field.nanos = int(nanos)


def _set_exemplar(target: pb.Exemplar, exemplar: Exemplar) -> None:
    for label_name, label_value in exemplar.labels:
        target.label.add(name=label_name, value=label_value)
    target.value = exemplar.value
    if exemplar.timestamp is not None:
        _timestamp(exemplar.timestamp, target)


def _is_count(value: float) -> bool:
    return value >= 0 and value < 2**64 and value == int(value)


def _group(
    samples: Iterable[Sample], drop: str
) -> dict[tuple[tuple[str, str], ...], tuple[Labels, list[Sample]]]:
    """Samples grouped by their labels without ``drop`` (``le``/``quantile``), in first-seen order."""
    groups: dict[tuple[tuple[str, str], ...], tuple[Labels, list[Sample]]] = {}
    for sample in samples:
        labels = tuple(pair for pair in sample.labels if pair[0] != drop) if drop else sample.labels
        key = tuple(sorted(labels))
        group = groups.get(key)
        if group is None:
            groups[key] = (labels, [sample])
        else:
            group[1].append(sample)
    return groups


def _new_metric(family: pb.MetricFamily, labels: Labels, samples: Sequence[Sample]) -> pb.Metric:
    metric = family.metric.add()
    for label_name, label_value in labels:
        metric.label.add(name=label_name, value=label_value)
    for sample in samples:
        if sample.timestamp is not None:
            metric.timestamp_ms = round(sample.timestamp * 1000)
            break
    return metric


def _encode_native(h: pb.Histogram, native: NativeHistogram) -> None:
    h.schema = native.schema
    h.zero_threshold = native.zero_threshold
    h.sample_sum = native.sum
    counts = (native.count, native.zero_count, *native.positive_counts, *native.negative_counts)
    integral = all(_is_count(c) for c in counts)
    if integral:
        h.sample_count = int(native.count)
        h.zero_count = int(native.zero_count)
    else:
        h.sample_count_float = native.count
        h.zero_count_float = native.zero_count
    for spans, values, span_field, delta_field, count_field in (
        (native.positive_spans, native.positive_counts, h.positive_span, h.positive_delta, h.positive_count),
        (native.negative_spans, native.negative_counts, h.negative_span, h.negative_delta, h.negative_count),
    ):
        for span in spans:
            span_field.add(offset=span.offset, length=span.length)
        if integral:
            previous = 0
            for value in values:
                delta_field.append(int(value) - previous)
                previous = int(value)
        else:
            count_field.extend(values)
    if not native.positive_spans and not native.negative_spans and not _is_native(h):
        h.positive_span.add(offset=0, length=0)  # the no-op span that keeps it a native histogram


def _encode_family(family: MetricFamily) -> pb.MetricFamily:
    out = pb.MetricFamily()
    out.name = family.name
    if family.help is not None:
        out.help = family.help
    if family.unit is not None:
        out.unit = family.unit
    ftype = family.type
    name = family.name
    if ftype is MetricType.COUNTER:
        out.type = pb.COUNTER
        created_name = (name[:-6] if name.endswith("_total") else name) + "_created"
        values = [s for s in family.samples if s.name != created_name or s.name == name]
        value_names = {s.name for s in values}
        if len(value_names) == 1:
            out.name = next(iter(value_names))
        for labels, group in _group(family.samples, "").values():
            metric = _new_metric(out, labels, group)
            counter = metric.counter
            for sample in group:
                if sample.name == created_name and sample.name != name:
                    _timestamp(sample.value, counter)
                else:
                    counter.value = sample.value
                    if sample.exemplar is not None:
                        _set_exemplar(counter.exemplar, sample.exemplar)
    elif ftype in (MetricType.SUMMARY,):
        out.type = pb.SUMMARY
        for labels, group in _group(family.samples, "quantile").values():
            metric = _new_metric(out, labels, group)
            summary = metric.summary
            summary.SetInParent()
            for sample in group:
                if sample.name == name + "_sum":
                    summary.sample_sum = sample.value
                elif sample.name == name + "_count":
                    summary.sample_count = int(sample.value) if _is_count(sample.value) else 0
                elif sample.name == name + "_created":
                    _timestamp(sample.value, summary)
                else:
                    summary.quantile.add(quantile=_parse_bound(sample.label("quantile")), value=sample.value)
    elif ftype in (MetricType.HISTOGRAM, MetricType.GAUGEHISTOGRAM):
        out.type = pb.HISTOGRAM if ftype is MetricType.HISTOGRAM else pb.GAUGE_HISTOGRAM
        for labels, group in _group(family.samples, "le").values():
            metric = _new_metric(out, labels, group)
            h = metric.histogram
            h.SetInParent()
            count: float | None = None
            for sample in group:
                if sample.native_histogram is not None:
                    _encode_native(h, sample.native_histogram)
                    if sample.exemplar is not None:
                        _set_exemplar(h.exemplars.add(), sample.exemplar)
                elif sample.name == name + "_bucket":
                    bucket = h.bucket.add(upper_bound=_parse_bound(sample.label("le")))
                    if _is_count(sample.value):
                        bucket.cumulative_count = int(sample.value)
                    else:
                        bucket.cumulative_count_float = sample.value
                    if sample.exemplar is not None:
                        _set_exemplar(bucket.exemplar, sample.exemplar)
                elif sample.name == name + "_sum":
                    h.sample_sum = sample.value
                elif sample.name == name + "_count":
                    count = sample.value
                elif sample.name == name + "_created":
                    _timestamp(sample.value, h)
            if count is not None and not any(s.native_histogram for s in group):
                if _is_count(count):
                    h.sample_count = int(count)
                else:
                    h.sample_count_float = count
    else:
        if ftype is MetricType.UNKNOWN:
            out.type = pb.UNTYPED
            for sample in family.samples:
                metric = _new_metric(out, sample.labels, (sample,))
                metric.untyped.value = sample.value
        else:  # gauge; info and stateset samples are gauges to Prometheus
            out.type = pb.GAUGE
            for sample in family.samples:
                metric = _new_metric(out, sample.labels, (sample,))
                metric.gauge.value = sample.value
    return out


def encode_protobuf(families: Iterable[MetricFamily]) -> bytes:
    """Encode families as delimited ``MetricFamily`` messages, the inverse of :func:`parse_protobuf`.

    Native histograms are written with integer deltas when every count is a
    whole number and with float counts otherwise; ``_created`` samples become
    ``created_timestamp`` fields and exemplars go where Prometheus reads them.
    """
    chunks: list[bytes] = []
    for family in families:
        body = _encode_family(family).SerializeToString()
        chunks.append(_varint_bytes(len(body)))
        chunks.append(body)
    return b"".join(chunks)
