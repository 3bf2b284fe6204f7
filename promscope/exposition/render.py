"""Model -> text: the Prometheus text format (0.0.4 and 1.0.0) and OpenMetrics 1.0.

Both renderers write exactly what the matching projection returns, so a
caller (and the round-trip tests) can ask what a format will keep before
writing it:

* :func:`text_families` is the model as the Prometheus text format can carry
  it. The text format has no units, no exemplars, timestamps only in whole
  milliseconds, and no ``info``, ``stateset`` or ``gaugehistogram`` types;
  these are rendered the way ``prometheus_client``'s text exposition renders
  them: an info family ``foo`` becomes the gauge ``foo_info``, a stateset
  becomes a gauge, a gaugehistogram becomes a histogram, and the
  OpenMetrics-only samples (``_created``, ``_gsum``, ``_gcount``) move into
  gauge families of their own after the family they came from. A counter is
  written under the name of its samples (``# TYPE foo_total counter``), as
  Prometheus clients do.
* :func:`openmetrics_families` is the model as OpenMetrics 1.0 carries it:
  a counter family loses a ``_total`` suffix from its name and its value
  samples gain one, since OpenMetrics requires ``foo`` / ``foo_total``.

Native histograms (protobuf only) have no text form. Where a series also has
classic buckets, those are written and the native histogram is dropped.
Otherwise the native histogram is converted to classic buckets: one bucket
per populated exponential bucket (cumulative, upper bound as ``le``), the
zero bucket as ``le`` = its threshold, ``+Inf`` = the count, plus ``_count``
and ``_sum``. Only the standard exponential schemas (-4..8) have bounds the
model can express; other schemas get just the ``+Inf`` bucket. Exemplars of
native histograms are dropped.

Names that are not valid legacy Prometheus names (``my.metric``) can only be
written as such by text format 1.0.0, which quotes them
(``{"my.metric",a="b"}``). Text 0.0.4 and OpenMetrics 1.0 cannot carry them:
there each character outside ``[a-zA-Z0-9_:]`` becomes ``_`` (and a leading
digit gets a ``_`` prefix), Prometheus's "underscores" escaping scheme.

Values are written so they parse back to the same float (Python's shortest
round-trip ``repr``; ``+Inf``, ``-Inf`` and ``NaN``). Non-finite timestamps
cannot be written and are left out.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import replace

from promscope.model import Labels, MetricFamily, MetricType, Sample

__all__ = [
    "canonical_number",
    "escape_name",
    "format_value",
    "is_legacy_label_name",
    "is_legacy_metric_name",
    "openmetrics_families",
    "render_openmetrics",
    "render_text",
    "text_families",
]

_LEGACY_METRIC = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LEGACY_LABEL = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_NOT_METRIC_CHAR = re.compile(r"[^a-zA-Z0-9_:]")
_NOT_LABEL_CHAR = re.compile(r"[^a-zA-Z0-9_]")

_TEXT_TYPE = {
    MetricType.COUNTER: "counter",
    MetricType.GAUGE: "gauge",
    MetricType.HISTOGRAM: "histogram",
    MetricType.SUMMARY: "summary",
    MetricType.UNKNOWN: "untyped",
}

TEXT_VERSIONS = ("0.0.4", "1.0.0")


# --- numbers -----------------------------------------------------------------------------------------


def format_value(value: float) -> str:
    """A sample value as both text formats write it; parses back to the same float."""
    if value != value:
        return "NaN"
    if value == math.inf:
        return "+Inf"
    if value == -math.inf:
        return "-Inf"
    return repr(float(value))


def _go_shortest(value: float) -> str:
    """Go's ``strconv.FormatFloat(value, 'g', -1, 64)`` for a finite float."""
    if value == 0.0:
        return "-0" if math.copysign(1.0, value) < 0 else "0"
    sign = "-" if value < 0 else ""
    text = repr(abs(value))  # the shortest digits that round-trip, as Go's shortest mode
    mantissa, _, exponent = text.partition("e")
    whole, _, fraction = mantissa.partition(".")
    digits = whole + fraction
    stripped = digits.lstrip("0")
    point = len(whole) + (int(exponent) if exponent else 0) - (len(digits) - len(stripped))
    digits = stripped.rstrip("0") or "0"
    exp = point - 1
    if exp < -4 or exp >= 6:  # %e when shortest: Go uses precision 6 for this decision
        body = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        return f"{sign}{body}e{'-' if exp < 0 else '+'}{abs(exp):02d}"
    if point <= 0:
        return f"{sign}0.{'0' * -point}{digits}"
    if point >= len(digits):
        return sign + digits + "0" * (point - len(digits))
    return f"{sign}{digits[:point]}.{digits[point:]}"


def canonical_number(value: float) -> str:
    """The OpenMetrics canonical rendering of ``value`` (for ``le`` and ``quantile`` labels).

    Go's shortest ``%g`` with ``.0`` added when there is no point or exponent:
    ``0.0 0.001 1.0 100000.0 1e+06 1e-05 +Inf``.
    """
    if value != value:
        return "NaN"
    if value == math.inf:
        return "+Inf"
    if value == -math.inf:
        return "-Inf"
    text = _go_shortest(value)
    if "." in text or "e" in text:
        return text
    return text + ".0"


# --- names and escaping ------------------------------------------------------------------------------


def is_legacy_metric_name(name: str) -> bool:
    """True for names every format can write unquoted: ``[a-zA-Z_:][a-zA-Z0-9_:]*``."""
    return _LEGACY_METRIC.fullmatch(name) is not None


def is_legacy_label_name(name: str) -> bool:
    """True for label names every format can write unquoted: ``[a-zA-Z_][a-zA-Z0-9_]*``."""
    return _LEGACY_LABEL.fullmatch(name) is not None


def escape_name(name: str, *, label: bool = False) -> str:
    """Prometheus's "underscores" escaping: a legacy-valid name for any name."""
    if label:
        if _LEGACY_LABEL.fullmatch(name):
            return name
        out = _NOT_LABEL_CHAR.sub("_", name)
    else:
        if _LEGACY_METRIC.fullmatch(name):
            return name
        out = _NOT_METRIC_CHAR.sub("_", name)
    if not out or out[0].isdigit():
        out = "_" + out
    return out


def _escape_value(value: str) -> str:
    """Label values (both formats) and quoted names: backslash, double quote, line feed."""
    if "\\" in value or '"' in value or "\n" in value:
        return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return value


def _escape_text_help(text: str) -> str:
    """Text format HELP: backslash and line feed only (a double quote stays as it is)."""
    if "\\" in text or "\n" in text:
        return text.replace("\\", "\\\\").replace("\n", "\\n")
    return text


# --- native histograms -------------------------------------------------------------------------------


def _native_to_classic(family: MetricFamily, sample: Sample) -> list[Sample]:
    histogram = sample.native_histogram
    assert histogram is not None
    gauge = family.type is MetricType.GAUGEHISTOGRAM
    base_name = family.name
    labels = tuple(pair for pair in sample.labels if pair[0] != "le")
    bounds: list[tuple[float, float]] = []
    if -4 <= histogram.schema <= 8:
        base = 2.0 ** (2.0**-histogram.schema)
        for index, count in histogram.buckets(positive=False):
            # Negative bucket ``index`` covers [-base**index, -base**(index-1)).
            bounds.append((-(base ** (index - 1)), count))
        bounds.append((histogram.zero_threshold, histogram.zero_count))
        for index, count in histogram.buckets(positive=True):
            bounds.append((base**index, count))
        bounds.sort(key=lambda item: item[0])
    out: list[Sample] = []
    running = 0.0
    seen: set[float] = set()
    for bound, count in bounds:
        running += count
        if bound == math.inf or bound in seen:
            continue
        seen.add(bound)
        out.append(
            Sample(
                base_name + "_bucket",
                (*labels, ("le", canonical_number(bound))),
                running,
                sample.timestamp,
                None,
                sample.line,
            )
        )
    out.append(
        Sample(
            base_name + "_bucket",
            (*labels, ("le", "+Inf")),
            histogram.count,
            sample.timestamp,
            None,
            sample.line,
        )
    )
    count_name, sum_name = ("_gcount", "_gsum") if gauge else ("_count", "_sum")
    out.append(Sample(base_name + count_name, labels, histogram.count, sample.timestamp, None, sample.line))
    out.append(Sample(base_name + sum_name, labels, histogram.sum, sample.timestamp, None, sample.line))
    return out


def _expand_native(family: MetricFamily) -> MetricFamily:
    """Replace native histogram samples by classic ones, unless the series already has classic buckets."""
    if not any(s.native_histogram is not None for s in family.samples):
        return family
    bucket_name = family.name + "_bucket"
    classic: set[tuple[Labels, float | None]] = set()
    for s in family.samples:
        if s.name == bucket_name and s.native_histogram is None:
            classic.add((tuple(sorted(p for p in s.labels if p[0] != "le")), s.timestamp))
    samples: list[Sample] = []
    for s in family.samples:
        if s.native_histogram is None:
            samples.append(s)
        elif (tuple(sorted(s.labels)), s.timestamp) not in classic:
            samples.extend(_native_to_classic(family, s))
    return replace(family, samples=tuple(samples))


# --- projections -------------------------------------------------------------------------------------


def _text_timestamp(timestamp: float | None) -> float | None:
    if timestamp is None or not math.isfinite(timestamp):
        return None
    return round(timestamp * 1000) / 1000


def _strip_for_text(sample: Sample, name: str | None = None) -> Sample:
    timestamp = _text_timestamp(sample.timestamp)
    if sample.exemplar is None and timestamp == sample.timestamp and name is None:
        return sample
    return replace(sample, name=name or sample.name, exemplar=None, timestamp=timestamp)


def text_families(families: Iterable[MetricFamily]) -> list[MetricFamily]:
    """The families as the Prometheus text format carries them (see the module docstring)."""
    out: list[MetricFamily] = []
    for family in families:
        family = _expand_native(family)
        kind = family.type
        moved: dict[str, list[Sample]] = {}
        if kind is MetricType.GAUGEHISTOGRAM:
            split: tuple[str, ...] = ("_created", "_gcount", "_gsum")
        elif kind in (MetricType.COUNTER, MetricType.HISTOGRAM, MetricType.SUMMARY):
            split = ("_created",)
        else:
            split = ()
        main: list[Sample] = []
        for sample in family.samples:
            if split and sample.name != family.name and sample.name.endswith(split):
                # Keyed by the sample's own name, which is the name of the gauge family it moves
                # to (``foo_total``'s created time is ``foo_created``, not ``foo_total_created``).
                moved.setdefault(sample.name, []).append(_strip_for_text(sample))
            else:
                main.append(_strip_for_text(sample))
        name = family.name
        if kind is MetricType.COUNTER:
            total = name + "_total"
            if main and all(s.name == total for s in main):
                name = total
            text_type = MetricType.COUNTER
        elif kind is MetricType.INFO:
            info = name + "_info"
            if all(s.name == info for s in main):
                # prometheus_client writes info ``foo`` as the gauge ``foo_info``.
                name = info
            text_type = MetricType.GAUGE
        elif kind is MetricType.STATESET:
            text_type = MetricType.GAUGE
        elif kind is MetricType.GAUGEHISTOGRAM:
            text_type = MetricType.HISTOGRAM
        else:
            text_type = kind
        out.append(MetricFamily(name, text_type, family.help, None, tuple(main), family.line))
        for moved_name in sorted(moved):
            out.append(
                MetricFamily(
                    moved_name, MetricType.GAUGE, family.help, None, tuple(moved[moved_name]), family.line
                )
            )
    return out


def openmetrics_families(families: Iterable[MetricFamily]) -> list[MetricFamily]:
    """The families as OpenMetrics 1.0 carries them (see the module docstring)."""
    out: list[MetricFamily] = []
    for family in families:
        family = _expand_native(family)
        if family.type is MetricType.COUNTER:
            family = _om_counter(family)
        out.append(family)
    return out


def _om_counter(family: MetricFamily) -> MetricFamily:
    name = family.name
    if name.endswith("_total") and not any(s.name == name + "_total" for s in family.samples):
        # A text or protobuf counter named after its samples: ``foo_total`` -> family ``foo``.
        stripped = name[: -len("_total")]
        unit = family.unit
        return replace(family, name=stripped, unit=unit)
    if any(s.name == name for s in family.samples):
        # A counter whose value sample has no suffix (allowed in text): OpenMetrics needs ``_total``.
        samples = tuple(replace(s, name=name + "_total") if s.name == name else s for s in family.samples)
        return replace(family, samples=samples)
    return family


# --- writers -----------------------------------------------------------------------------------------


def _labels_text(labels: Labels, quote_names: bool) -> str:
    parts = []
    for label_name, value in labels:
        if quote_names and not _LEGACY_LABEL.fullmatch(label_name):
            parts.append(f'"{_escape_value(label_name)}"="{_escape_value(value)}"')
        else:
            parts.append(f'{label_name}="{_escape_value(value)}"')
    return ",".join(parts)


def _escape_family_names(family: MetricFamily) -> MetricFamily:
    """Underscore-escape names a legacy format cannot carry; a no-op for legacy names."""
    if _LEGACY_METRIC.fullmatch(family.name) and all(
        _LEGACY_METRIC.fullmatch(s.name) and all(_LEGACY_LABEL.fullmatch(n) for n, _ in s.labels)
        for s in family.samples
    ):
        return family
    samples = tuple(
        replace(
            s,
            name=escape_name(s.name),
            labels=tuple((escape_name(n, label=True), v) for n, v in s.labels),
        )
        for s in family.samples
    )
    return replace(family, name=escape_name(family.name), samples=samples)


def render_text(families: Iterable[MetricFamily], *, version: str = "0.0.4") -> str:
    """Write ``families`` in the Prometheus text format.

    ``version`` ``"0.0.4"`` writes legacy names only (others are escaped with
    underscores); ``"1.0.0"`` quotes names that are not legacy-valid, e.g.
    ``{"my.metric",a="b"} 1``. What the text format drops is described in the
    module docstring; :func:`text_families` returns exactly what is written.
    """
    if version not in TEXT_VERSIONS:
        raise ValueError(f"unknown text format version {version!r}; use one of {', '.join(TEXT_VERSIONS)}")
    quote = version == "1.0.0"
    projected = text_families(families)
    if not quote:
        projected = [_escape_family_names(f) for f in projected]
    lines: list[str] = []
    append = lines.append
    for family in projected:
        shown = family.name
        if quote and not _LEGACY_METRIC.fullmatch(shown):
            shown = f'"{_escape_value(shown)}"'
        if family.help is not None:
            append(f"# HELP {shown} {_escape_text_help(family.help)}")
        append(f"# TYPE {shown} {_TEXT_TYPE[family.type]}")
        for sample in family.samples:
            name = sample.name
            labels = _labels_text(sample.labels, quote)
            if quote and not _LEGACY_METRIC.fullmatch(name):
                head = f'{{"{_escape_value(name)}"' + ("," + labels if labels else "") + "}"
            elif labels:
                head = f"{name}{{{labels}}}"
            else:
                head = name
            line = f"{head} {format_value(sample.value)}"
            if sample.timestamp is not None:
                line += f" {round(sample.timestamp * 1000)}"
            append(line)
    if not lines:
        return ""
    lines.append("")
    return "\n".join(lines)


def _om_timestamp(timestamp: float) -> str:
    return repr(float(timestamp))


def render_openmetrics(families: Iterable[MetricFamily]) -> str:
    """Write ``families`` as OpenMetrics 1.0 text, ending in ``# EOF``.

    Metadata is written in the order the spec recommends (TYPE, UNIT, HELP);
    timestamps in seconds; exemplars after `` # ``. What changes on the way is
    described in the module docstring; :func:`openmetrics_families` returns
    exactly what is written.
    """
    lines: list[str] = []
    append = lines.append
    for family in openmetrics_families(families):
        family = _escape_family_names(family)
        name = family.name
        append(f"# TYPE {name} {family.type.value}")
        if family.unit:
            append(f"# UNIT {name} {family.unit}")
        if family.help is not None:
            append(f"# HELP {name} {_escape_value(family.help)}")
        for sample in family.samples:
            labels = sample.labels
            if labels:
                line = f"{sample.name}{{{_labels_text(labels, False)}}} {format_value(sample.value)}"
            else:
                line = f"{sample.name} {format_value(sample.value)}"
            timestamp = sample.timestamp
            if timestamp is not None and math.isfinite(timestamp):
                line += " " + _om_timestamp(timestamp)
            exemplar = sample.exemplar
            if exemplar is not None:
                line += f" # {{{_labels_text(exemplar.labels, False)}}} {format_value(exemplar.value)}"
                if exemplar.timestamp is not None and math.isfinite(exemplar.timestamp):
                    line += " " + _om_timestamp(exemplar.timestamp)
            append(line)
    append("# EOF")
    append("")
    return "\n".join(lines)
