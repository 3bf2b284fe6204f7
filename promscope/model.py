"""The values every part of promscope shares.

A scrape, a push and a file all end up as the same frozen values: a
:class:`MetricFamily` holding :class:`Sample` objects, and the
:class:`Diagnostic` objects that describe what was wrong with the input.

Conventions that hold everywhere:

* ``Sample.labels`` is a tuple of ``(name, value)`` pairs in the order the
  input gave them; :meth:`Sample.key` gives the order-independent identity.
* ``Sample.timestamp`` is always in **seconds** (float), whatever the wire
  format used (the Prometheus text format carries milliseconds, OpenMetrics
  seconds, protobuf milliseconds).
* ``line`` numbers are 1-based; ``0`` means "not tied to a line" (protobuf
  input uses the 1-based index of the MetricFamily message instead).
* ``column`` numbers are 1-based character columns; ``0`` means "whole line".
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field

__all__ = [
    "BucketSpan",
    "Diagnostic",
    "Exemplar",
    "Format",
    "Labels",
    "MetricFamily",
    "MetricType",
    "NativeHistogram",
    "ParseResult",
    "Sample",
    "SeriesKey",
    "Severity",
    "series_key",
]

Labels = tuple[tuple[str, str], ...]
"""Label pairs in input order."""

SeriesKey = tuple[str, Labels]
"""``(sample name, label pairs sorted by name)``: identifies one series."""


class MetricType(enum.StrEnum):
    """Metric family types, named as OpenMetrics names them.

    The Prometheus text format's ``untyped`` is :attr:`UNKNOWN`.
    """

    COUNTER = "counter"
    GAUGE = "gauge"
    HISTOGRAM = "histogram"
    GAUGEHISTOGRAM = "gaugehistogram"
    SUMMARY = "summary"
    INFO = "info"
    STATESET = "stateset"
    UNKNOWN = "unknown"

    @classmethod
    def from_text(cls, word: str) -> MetricType | None:
        """Map a ``# TYPE`` word (either format's spelling) to a type, or None."""
        if word == "untyped":
            return cls.UNKNOWN
        try:
            return cls(word)
        except ValueError:
            return None


class Severity(enum.StrEnum):
    """How bad a diagnostic is.

    ``error``: Prometheus or the spec rejects the exposition.
    ``warning``: the spec's SHOULD, or something that breaks queries later.
    ``style``: naming lint.
    """

    ERROR = "error"
    WARNING = "warning"
    STYLE = "style"

    @property
    def rank(self) -> int:
        """Higher is worse: style 1, warning 2, error 3."""
        return _SEVERITY_RANK[self]

    def at_least(self, other: Severity) -> bool:
        """True when this severity is ``other`` or worse."""
        return _SEVERITY_RANK[self] >= _SEVERITY_RANK[other]


_SEVERITY_RANK = {Severity.STYLE: 1, Severity.WARNING: 2, Severity.ERROR: 3}


class Format(enum.StrEnum):
    """Wire formats promscope reads and writes."""

    TEXT = "text"
    """Prometheus text format 0.0.4, and 1.0.0 (quoted UTF-8 names)."""
    OPENMETRICS = "openmetrics"
    """OpenMetrics 1.0 text."""
    PROTOBUF = "protobuf"
    """Length-delimited ``io.prometheus.client.MetricFamily`` messages."""


@dataclass(frozen=True, slots=True)
class Diagnostic:
    """One problem found in input or by a rule.

    ``code`` is stable across releases (``PS-…`` text and structure, ``OM-…``
    OpenMetrics-only, ``PB-…`` protobuf, ``SEM-…`` semantics shared by every
    format, ``LINT-…`` naming lint, ``CARD-…`` cardinality).
    """

    code: str
    severity: Severity
    line: int
    column: int
    message: str
    metric: str | None = None
    """The metric family (or sample) name the problem is about, when known."""

    def sort_key(self) -> tuple[int, int, str]:
        return (self.line, self.column, self.code)


@dataclass(frozen=True, slots=True)
class Exemplar:
    """An exemplar attached to a sample: labels, value and optional timestamp (seconds)."""

    labels: Labels
    value: float
    timestamp: float | None = None


@dataclass(frozen=True, slots=True)
class BucketSpan:
    """A run of consecutive native-histogram buckets: ``offset`` from the previous span's end."""

    offset: int
    length: int


@dataclass(frozen=True, slots=True)
class NativeHistogram:
    """A native (sparse, exponential) histogram, as the protobuf format carries it.

    Bucket counts are absolute (deltas already decoded); float histograms keep
    their float counts. Bucket ``i`` of schema ``s`` covers
    ``(base**(i-1), base**i]`` with ``base = 2**(2**-s)``.
    """

    schema: int
    zero_threshold: float
    zero_count: float
    count: float
    sum: float
    positive_spans: tuple[BucketSpan, ...] = ()
    positive_counts: tuple[float, ...] = ()
    negative_spans: tuple[BucketSpan, ...] = ()
    negative_counts: tuple[float, ...] = ()

    def buckets(self, positive: bool = True) -> list[tuple[int, float]]:
        """``(bucket index, count)`` pairs for one side, in index order."""
        spans = self.positive_spans if positive else self.negative_spans
        counts = self.positive_counts if positive else self.negative_counts
        out: list[tuple[int, float]] = []
        index = 0
        position = 0
        for span in spans:
            index += span.offset
            for _ in range(span.length):
                if position >= len(counts):
                    return out
                out.append((index, counts[position]))
                index += 1
                position += 1
        return out

    def bucket_bounds(self, index: int) -> tuple[float, float]:
        """The ``(lower, upper]`` bounds of positive bucket ``index``."""
        base = 2.0 ** (2.0**-self.schema)
        return (base ** (index - 1), base**index)


@dataclass(frozen=True, slots=True)
class Sample:
    """One sample line: a series name, its labels and a value.

    ``name`` is the sample's own name (``foo_bucket``, ``foo_total``), not the
    family's. ``line`` is where it came from (see the module docstring).
    """

    name: str
    labels: Labels
    value: float
    timestamp: float | None = None
    exemplar: Exemplar | None = None
    line: int = 0
    native_histogram: NativeHistogram | None = None

    def key(self) -> SeriesKey:
        """The series identity: name plus labels sorted by name."""
        return (self.name, tuple(sorted(self.labels)))

    def label(self, name: str, default: str | None = None) -> str | None:
        """The value of label ``name``, or ``default``."""
        for label_name, value in self.labels:
            if label_name == name:
                return value
        return default

    def label_dict(self) -> dict[str, str]:
        return dict(self.labels)


def series_key(name: str, labels: Labels) -> SeriesKey:
    """The :class:`SeriesKey` for a name and label pairs."""
    return (name, tuple(sorted(labels)))


@dataclass(frozen=True, slots=True)
class MetricFamily:
    """A metric family: what ``# HELP``/``# TYPE``/``# UNIT`` describe, and its samples.

    ``help`` and ``unit`` are ``None`` when the input did not give them (an
    empty ``# HELP foo`` gives ``""``). ``line`` is the first line that
    mentioned the family.
    """

    name: str
    type: MetricType
    help: str | None = None
    unit: str | None = None
    samples: tuple[Sample, ...] = ()
    line: int = 0

    def series_count(self) -> int:
        return len(self.samples)

    def equivalent(self, other: MetricFamily) -> bool:
        """Same name, type, help, unit and samples, ignoring line numbers.

        NaN values compare equal to NaN, so round-trip tests can use this.
        """
        if (self.name, self.type, self.help or None, self.unit or None) != (
            other.name,
            other.type,
            other.help or None,
            other.unit or None,
        ):
            return False
        if len(self.samples) != len(other.samples):
            return False
        return all(_same_sample(a, b) for a, b in zip(self.samples, other.samples, strict=True))


def _same_float(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is b
    if math.isnan(a) and math.isnan(b):
        return True
    return a == b


def _same_sample(a: Sample, b: Sample) -> bool:
    if a.name != b.name or a.key() != b.key():
        return False
    if not _same_float(a.value, b.value) or not _same_float(a.timestamp, b.timestamp):
        return False
    if (a.exemplar is None) != (b.exemplar is None):
        return False
    if a.exemplar is not None and b.exemplar is not None:
        if tuple(sorted(a.exemplar.labels)) != tuple(sorted(b.exemplar.labels)):
            return False
        if not _same_float(a.exemplar.value, b.exemplar.value):
            return False
        if not _same_float(a.exemplar.timestamp, b.exemplar.timestamp):
            return False
    return a.native_histogram == b.native_histogram


@dataclass(frozen=True, slots=True)
class ParseResult:
    """What a parser made of its input: families, diagnostics and facts about the input."""

    families: tuple[MetricFamily, ...]
    diagnostics: tuple[Diagnostic, ...]
    format: Format
    lines: int = 0
    """Lines read (text formats) or messages read (protobuf)."""
    size: int = 0
    """Bytes of input."""
    suppressed: int = 0
    """Diagnostics found but not kept because the diagnostic limit was reached."""
    extra: dict[str, str] = field(default_factory=dict, compare=False)
    """Format facts worth showing (e.g. ``{"version": "1.0.0"}``)."""

    @property
    def sample_count(self) -> int:
        return sum(len(f.samples) for f in self.families)

    def worst(self) -> Severity | None:
        """The worst severity among the diagnostics, or None when clean."""
        worst: Severity | None = None
        for diagnostic in self.diagnostics:
            if worst is None or diagnostic.severity.rank > worst.rank:
                worst = diagnostic.severity
        return worst

    def errors(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.severity is Severity.ERROR]

    def family(self, name: str) -> MetricFamily | None:
        for family in self.families:
            if family.name == name:
                return family
        return None
