"""Cardinality: how many series each family has, which label drives it, and labels that look like IDs.

:func:`analyze` reads parsed families once and returns a plain
:class:`CardinalityReport` (dataclasses only, so a printer or ``json.dumps``
of :func:`dataclasses.asdict` needs nothing else), plus ``CARD-…``
warnings as :class:`~promscope.model.Diagnostic` values:

* ``CARD-001`` a label's values look like IDs (UUIDs, long hex, IP:port,
  unix timestamps, URLs or paths with numeric/hex IDs, long numbers);
* ``CARD-002`` a label has (nearly) one value per series over many series;
* ``CARD-003`` a family has more series than :attr:`CardinalityOptions.max_family_series`;
* ``CARD-004`` a label has more distinct values than :attr:`CardinalityOptions.max_label_values`.

Series are samples: a histogram with 10 buckets and one label set is 12
series, as Prometheus stores it. Label statistics are over *label sets*
(``le`` of histograms and ``quantile`` of summaries set aside, those labels
being the type's structure, not its cardinality).

It is one pass over the samples and classifies at most
:attr:`CardinalityOptions.classify_limit` distinct values per label, so
100k series take a fraction of a second.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass

from promscope.check.options import CardinalityOptions
from promscope.codes import Code
from promscope.model import Diagnostic, MetricFamily, MetricType, Severity

__all__ = [
    "CODES",
    "CardinalityOptions",
    "CardinalityReport",
    "FamilyCardinality",
    "LabelStats",
    "analyze",
    "id_kind",
]

CODES: dict[str, Code] = {
    "CARD-001": Code(
        Severity.WARNING, "label values look like IDs (UUID, hex, IP:port, timestamp, path with IDs)"
    ),
    "CARD-002": Code(Severity.WARNING, "label has a distinct value for (nearly) every series"),
    "CARD-003": Code(Severity.WARNING, "metric family has more series than the configured limit"),
    "CARD-004": Code(Severity.WARNING, "label has more distinct values than the configured limit"),
}


@dataclass(frozen=True, slots=True)
class LabelStats:
    """One label of one family."""

    name: str
    distinct: int
    """Distinct values among the family's label sets."""
    present: int
    """Label sets that carry this label."""
    unique_ratio: float
    """``distinct / present``: 1.0 means a new value for every label set."""
    id_kind: str | None
    """The kind of ID most values look like (``uuid``, ``hex``, ``ip:port``…), or None."""
    id_ratio: float
    """Share of the classified values that look like that kind of ID."""
    examples: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class FamilyCardinality:
    """One family: its series and its labels, the biggest contributor first."""

    name: str
    type: MetricType
    line: int
    series: int
    label_sets: int
    """Distinct label sets (structural labels set aside)."""
    labels: tuple[LabelStats, ...]

    @property
    def top_label(self) -> LabelStats | None:
        """The label contributing the most distinct values."""
        return self.labels[0] if self.labels else None


@dataclass(frozen=True, slots=True)
class CardinalityReport:
    """Cardinality of one exposition; families by series, most first."""

    total_series: int
    families: tuple[FamilyCardinality, ...]
    diagnostics: tuple[Diagnostic, ...]

    def top(self, n: int = 10) -> tuple[FamilyCardinality, ...]:
        return self.families[:n]

    def family(self, name: str) -> FamilyCardinality | None:
        for family in self.families:
            if family.name == name:
                return family
        return None

    def share(self, family: FamilyCardinality) -> float:
        """The family's share of all series (0..1)."""
        return family.series / self.total_series if self.total_series else 0.0


_HEX = "0-9a-fA-F"


class _Patterns:
    """The ID-recognising patterns, compiled on first use: ``promscope check`` without
    ``--cardinality`` never pays for them at start-up."""

    def __init__(self) -> None:
        hx = _HEX
        self.uuid = re.compile(rf"^[{hx}]{{8}}-[{hx}]{{4}}-[{hx}]{{4}}-[{hx}]{{4}}-[{hx}]{{12}}$")
        self.long_hex = re.compile(rf"^(?:0x)?[{hx}]{{12,}}$")
        self.ipv4_port = re.compile(r"^(?:\d{1,3}\.){3}\d{1,3}:\d{1,5}$")
        self.ipv6_port = re.compile(rf"^\[[{hx}:.]+\]:\d{{1,5}}$")
        self.ipv4 = re.compile(r"^(?:\d{1,3}\.){3}\d{1,3}$")
        self.timestamp = re.compile(r"^1\d{9}(?:\.\d+)?$|^1\d{12}$|^1\d{15}$|^1\d{18}$")
        self.iso_time = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}")
        self.number = re.compile(r"^\d{5,}$")
        self.path_id_segment = re.compile(rf"^(?:\d+|[{hx}]{{8}}-[{hx}-]{{27}}|[{hx}]*\d[{hx}]*)$")


@functools.cache
def _patterns() -> _Patterns:
    return _Patterns()


def _hex_is_id(value: str) -> bool:
    body = value[2:] if value.startswith("0x") else value
    # A run of hex letters and digits long enough to be an ID; a word such as
    # "deadbeefcafe" has no digit and a plain number is caught elsewhere.
    return any(c.isdigit() for c in body) and (len(body) >= 16 or any(c.isalpha() for c in body))


def _path_has_id(value: str) -> bool:
    if "/" not in value:
        return False
    path = value.split("?", 1)[0].split("#", 1)[0]
    if "://" in path:
        path = path.split("://", 1)[1].partition("/")[2]
    segment_pattern = _patterns().path_id_segment
    for segment in path.split("/"):
        if len(segment) < 1 or not segment_pattern.match(segment):
            continue
        if segment.isdigit() or len(segment) >= 8:
            return True
    return False


def id_kind(value: str) -> str | None:
    """The kind of identifier ``value`` looks like, or None for an ordinary label value."""
    if not value or len(value) < 5:
        return None
    p = _patterns()
    if p.uuid.match(value):
        return "uuid"
    if p.ipv4_port.match(value) or p.ipv6_port.match(value):
        return "ip:port"
    if p.ipv4.match(value):
        return "ip"
    if p.timestamp.match(value) or p.iso_time.match(value):
        return "timestamp"
    if p.long_hex.match(value) and _hex_is_id(value):
        return "hex"
    if p.number.match(value):
        return "number"
    if _path_has_id(value):
        return "path with ID"
    return None


def _structural_label(family_type: MetricType) -> str | None:
    if family_type in (MetricType.HISTOGRAM, MetricType.GAUGEHISTOGRAM):
        return "le"
    if family_type is MetricType.SUMMARY:
        return "quantile"
    return None


def _label_stats(name: str, values: set[str], present: int, options: CardinalityOptions) -> LabelStats:
    distinct = len(values)
    kinds: dict[str, int] = {}
    classified = 0
    examples: list[str] = []
    for value in values:
        if classified >= options.classify_limit:
            break
        classified += 1
        if len(examples) < options.examples:
            examples.append(value)
        kind = id_kind(value)
        if kind is not None:
            kinds[kind] = kinds.get(kind, 0) + 1
    best: str | None = None
    best_count = 0
    for kind, count in kinds.items():
        if count > best_count:
            best, best_count = kind, count
    return LabelStats(
        name=name,
        distinct=distinct,
        present=present,
        unique_ratio=distinct / present if present else 0.0,
        id_kind=best,
        id_ratio=best_count / classified if classified else 0.0,
        examples=tuple(sorted(examples)),
    )


def _family(family: MetricFamily, options: CardinalityOptions) -> FamilyCardinality:
    structural = _structural_label(family.type)
    label_sets: set[frozenset[tuple[str, str]]] = set()
    for sample in family.samples:
        labels = sample.labels
        if structural is not None:
            labels = tuple(pair for pair in labels if pair[0] != structural)
        label_sets.add(frozenset(labels))
    values: dict[str, set[str]] = {}
    present: dict[str, int] = {}
    for label_set in label_sets:
        for label_name, value in label_set:
            bucket = values.get(label_name)
            if bucket is None:
                bucket = values[label_name] = set()
                present[label_name] = 0
            bucket.add(value)
            present[label_name] += 1
    stats = [_label_stats(name, vals, present[name], options) for name, vals in values.items()]
    stats.sort(key=lambda s: (-s.distinct, s.name))
    return FamilyCardinality(
        name=family.name,
        type=family.type,
        line=family.line,
        series=len(family.samples),
        label_sets=len(label_sets),
        labels=tuple(stats),
    )


def _diagnostics(family: FamilyCardinality, options: CardinalityOptions) -> list[Diagnostic]:
    out: list[Diagnostic] = []

    def warn(code: str, message: str) -> None:
        out.append(Diagnostic(code, Severity.WARNING, family.line, 0, message, family.name))

    if family.series > options.max_family_series:
        warn(
            "CARD-003",
            f"{family.series} series in one family (more than {options.max_family_series}); "
            f"top label: {family.top_label.name if family.top_label else 'none'}",
        )
    for label in family.labels:
        percent = round(label.unique_ratio * 100)
        if (
            label.id_kind is not None
            and label.distinct >= options.min_id_values
            and label.id_ratio >= options.id_ratio
        ):
            example = f", e.g. {label.examples[0]!r}" if label.examples else ""
            warn(
                "CARD-001",
                f"label {label.name} has {label.distinct} distinct values ({percent}% unique), "
                f"looks like an ID ({label.id_kind}){example}",
            )
        elif label.present >= options.min_series and label.unique_ratio >= options.unique_ratio:
            warn(
                "CARD-002",
                f"label {label.name} has {percent}% unique values over {label.present} series",
            )
        if label.distinct > options.max_label_values:
            warn(
                "CARD-004",
                f"label {label.name} has {label.distinct} distinct values "
                f"(more than {options.max_label_values})",
            )
    return out


def analyze(families: Iterable[MetricFamily], options: CardinalityOptions | None = None) -> CardinalityReport:
    """Series and label statistics for every family, with ``CARD-…`` warnings."""
    options = options or CardinalityOptions()
    merged: dict[str, MetricFamily] = {}
    for family in families:
        previous = merged.get(family.name)
        if previous is None:
            merged[family.name] = family
        else:
            # A family split across the input counts once.
            merged[family.name] = MetricFamily(
                previous.name,
                previous.type,
                previous.help,
                previous.unit,
                previous.samples + family.samples,
                previous.line,
            )
    stats = [_family(family, options) for family in merged.values()]
    stats.sort(key=lambda f: (-f.series, f.name))
    diagnostics: list[Diagnostic] = []
    for entry in stats:
        diagnostics.extend(_diagnostics(entry, options))
    diagnostics.sort(key=Diagnostic.sort_key)
    return CardinalityReport(
        total_series=sum(f.series for f in stats),
        families=tuple(stats),
        diagnostics=tuple(diagnostics),
    )
