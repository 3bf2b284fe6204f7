"""Naming lint with promlint parity (``LINT-…`` codes).

The rules, their semantics and their message texts are those of
``github.com/prometheus/client_golang/prometheus/testutil/promlint``, the
linter behind ``promtool check metrics``, so ``f"{metric} {message}"``
reproduces one line of promtool's output.

Two versions of promlint matter, and each :class:`Rule` records which one it
belongs to:

* **promtool 2.42** (Debian bookworm's ``prometheus`` package, and the
  client_golang it vendors) has the original eight validations:
  ``lintHelp``, ``lintMetricUnits``, ``lintCounter``,
  ``lintHistogramSummaryReserved``, ``lintMetricTypeInName``,
  ``lintReservedChars``, ``lintCamelCase``, ``lintUnitAbbreviations``.
  These rules have ``promtool_compatible=True``.
* **the newest promlint** adds ``LintDuplicateMetric`` ("metric not unique")
  and ``LintGauge`` (``_timestamp_seconds`` on a non-gauge). These have
  ``promtool_compatible=False``: ``check_result(..., promtool_only=True)``
  leaves them out, so ``--output promtool`` prints exactly what promtool 2.42
  prints.

Upstream details reproduced on purpose:

* A family with no samples is not linted (the text decoder drops it), and a
  family split in two parts of the input is linted once, as one.
* ``# HELP foo`` with empty text counts as "no help text" (the decoder leaves
  the help unset).
* Rules about labels report once per *metric* in promlint's sense: every
  sample of a counter, gauge or untyped family, and every label set of a
  histogram (``le`` set aside) or summary (``quantile`` set aside). promtool
  prints each one; :attr:`LintFinding.count` keeps how many, and
  :func:`promtool_lines` expands them again.
* Untyped families are exempt from the ``_total`` and reserved-name rules.
* Problems are sorted by metric name, then message text (promlint's order).

Cost: a 1M-series input is linted without a Python loop per sample. The
label rules first take the family's distinct label names (C-level helpers
over all labels); only a family that has an offending name is then walked
metric by metric, and "metric not unique" hashes the label lists as written
when every sample names its labels in one order, sorting them only otherwise.

Where promscope differs, and why:

* Base units: promtool 2.42 looks the unit words up in a Go map, so for a
  name with two unit words (``foo_milliseconds_bytes``) whether it reports
  anything changes from run to run. promscope does what the newest promlint
  does: the first unit word in the name decides. :func:`ambiguous_in_promtool`
  says when a finding falls in that case.
* OpenMetrics counters are named without ``_total`` (the samples carry it), so
  for OpenMetrics input the ``_total`` rule looks at the sample names.
  ``info`` and ``stateset`` count as gauges and ``gaugehistogram`` as a
  histogram (promlint only knows the text format's types).
* "metric not unique" compares label sets regardless of order (upstream
  compares the label lists as written); both are the same series to
  Prometheus.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from itertools import chain
from operator import attrgetter, itemgetter

from promscope.codes import Code
from promscope.model import Diagnostic, Format, Labels, MetricFamily, MetricType, Sample, Severity

__all__ = [
    "CODES",
    "RULES",
    "LintFinding",
    "Rule",
    "ambiguous_in_promtool",
    "lint",
    "lint_family",
    "promtool_lines",
    "to_diagnostics",
]


@dataclass(frozen=True, slots=True)
class Rule:
    """One lint rule: its code, the upstream validation it mirrors, and where promtool has it."""

    code: str
    upstream: str
    """The promlint validation function this rule reproduces."""
    summary: str
    promtool_compatible: bool
    """True when promtool 2.42 (the client_golang it vendors) reports it."""


RULES: tuple[Rule, ...] = (
    Rule("LINT-001", "lintHelp", "metric family has no help text", True),
    Rule("LINT-002", "lintMetricUnits", "metric name uses a non-base unit (milliseconds, kilobytes…)", True),
    Rule("LINT-003", "lintCounter", 'counter name lacks the "_total" suffix', True),
    Rule("LINT-004", "lintCounter", 'non-counter name ends in "_total"', True),
    Rule(
        "LINT-005",
        "lintHistogramSummaryReserved",
        'name ends in "_bucket", "_count" or "_sum" reserved for histograms and summaries',
        True,
    ),
    Rule(
        "LINT-006",
        "lintHistogramSummaryReserved",
        'label "le" or "quantile" used outside a histogram or summary',
        True,
    ),
    Rule("LINT-007", "lintMetricTypeInName", "metric name includes a metric type (counter, gauge…)", True),
    Rule("LINT-008", "lintReservedChars", "metric name contains ':' (reserved for recording rules)", True),
    Rule("LINT-009", "lintCamelCase", "metric name written in camelCase", True),
    Rule("LINT-010", "lintCamelCase", "label name written in camelCase", True),
    Rule("LINT-011", "lintUnitAbbreviations", "metric name contains an abbreviated unit (_ms, _kb…)", True),
    Rule(
        "LINT-012",
        "LintDuplicateMetric",
        "the same series appears more than once (newest promlint; not in promtool 2.42)",
        False,
    ),
    Rule(
        "LINT-013",
        "LintGauge",
        'non-gauge name ends in "_timestamp_seconds" (newest promlint; not in promtool 2.42)',
        False,
    ),
)

_RULES_BY_CODE = {rule.code: rule for rule in RULES}

CODES: dict[str, Code] = {rule.code: Code(Severity.STYLE, rule.summary) for rule in RULES}

# Message texts, exactly as promlint words them.
MSG_NO_HELP = "no help text"
MSG_COUNTER_TOTAL = 'counter metrics should have "_total" suffix'
MSG_NON_COUNTER_TOTAL = 'non-counter metrics should not have "_total" suffix'
MSG_BUCKET = 'non-histogram metrics should not have "_bucket" suffix'
MSG_COUNT = 'non-histogram and non-summary metrics should not have "_count" suffix'
MSG_SUM = 'non-histogram and non-summary metrics should not have "_sum" suffix'
MSG_LE = 'non-histogram metrics should not have "le" label'
MSG_QUANTILE = 'non-summary metrics should not have "quantile" label'
MSG_COLON = "metric names should not contain ':'"
MSG_CAMEL_METRIC = "metric names should be written in 'snake_case' not 'camelCase'"
MSG_CAMEL_LABEL = "label names should be written in 'snake_case' not 'camelCase'"
MSG_ABBREVIATION = "metric names should not contain abbreviated units"
MSG_NOT_UNIQUE = "metric not unique"
MSG_TIMESTAMP_SECONDS = 'non-gauge metrics should not have "_timestamp_seconds" suffix'

# Units and prefixes promlint recognises; each unit maps to its base unit.
_UNITS: dict[str, str] = {
    "amperes": "amperes",
    "bytes": "bytes",
    "celsius": "celsius",
    "grams": "grams",
    "joules": "joules",
    "kelvin": "kelvin",
    "meters": "meters",
    "metres": "metres",
    "seconds": "seconds",
    "volts": "volts",
    "minutes": "seconds",
    "hours": "seconds",
    "days": "seconds",
    "weeks": "seconds",
    "kelvins": "kelvin",
    "fahrenheit": "celsius",
    "rankine": "celsius",
    "inches": "meters",
    "yards": "meters",
    "miles": "meters",
    "bits": "bytes",
    "calories": "joules",
    "pounds": "grams",
    "ounces": "grams",
}
_UNIT_PREFIXES = (
    "pico",
    "nano",
    "micro",
    "milli",
    "centi",
    "deci",
    "deca",
    "hecto",
    "kilo",
    "kibi",
    "mega",
    "mibi",
    "giga",
    "gibi",
    "tera",
    "tebi",
    "peta",
    "pebi",
)
_UNIT_ABBREVIATIONS = ("s", "ms", "us", "ns", "sec", "b", "kb", "mb", "gb", "tb", "pb", "m", "h", "d")
# client_model's MetricType names, lower-cased, UNTYPED left out (the order does not
# matter: problems are sorted by text).
_TYPE_NAMES = ("counter", "gauge", "summary", "histogram", "gauge_histogram")
_CAMEL_CASE = re.compile(r"[a-z][A-Z]")


@dataclass(frozen=True, slots=True)
class LintFinding:
    """One promlint problem about one family.

    ``count`` is how many times promlint reports it: label rules report once
    per offending metric, and several abbreviations give several problems.
    """

    code: str
    metric: str
    message: str
    line: int
    count: int = 1

    @property
    def rule(self) -> Rule:
        return _RULES_BY_CODE[self.code]

    def promtool_line(self) -> str:
        """The line promtool prints for this problem."""
        return f"{self.metric} {self.message}"

    def sort_key(self) -> tuple[str, str]:
        return (self.metric, self.message)


def _unit_words() -> dict[str, str]:
    """Every word promlint takes for a unit (a unit, or a prefix then a unit) -> its base unit.

    Built in promlint's order of trial (the bare unit, then each prefix in turn), keeping the
    first reading of a word, so one lookup gives what the word-by-prefix loop would.
    """
    words = dict(_UNITS)
    for prefix in _UNIT_PREFIXES:
        for unit, base in _UNITS.items():
            words.setdefault(prefix + unit, base)
    return words


_UNIT_WORDS = _unit_words()


def _unit_of(name: str) -> tuple[str, str] | None:
    """The first unit word in ``name`` and its base unit (the newest promlint's choice)."""
    words = _UNIT_WORDS
    for word in name.split("_"):
        base = words.get(word)
        if base is not None:
            return word, base
    return None


def _promtool_242_unit_outcomes(name: str) -> set[str | None]:
    """Every verdict promtool 2.42 may give on ``name``, one per unit it could try first.

    It walks its unit map in Go's random order; for each unit, prefixes in
    order, then no prefix, against every word of the name.
    """
    words = name.split("_")
    outcomes: set[str | None] = set()
    for unit, base in _UNITS.items():
        for prefix in (*_UNIT_PREFIXES, ""):
            if prefix + unit in words:
                word = prefix + unit
                outcomes.add(None if word == base else f'use base unit "{base}" instead of "{word}"')
                break
    return outcomes


def ambiguous_in_promtool(family_name: str) -> bool:
    """True when promtool 2.42's base-unit verdict on this name changes from run to run.

    That happens when the name has several unit words that lead to different
    verdicts (``foo_milliseconds_bytes``: "milliseconds" or nothing).
    """
    return len(_promtool_242_unit_outcomes(family_name)) > 1


class _Kind:
    COUNTER = "counter"
    GAUGE = "gauge"
    HISTOGRAM = "histogram"
    SUMMARY = "summary"
    UNTYPED = "untyped"


_KIND_OF_TYPE = {
    MetricType.COUNTER: _Kind.COUNTER,
    MetricType.GAUGE: _Kind.GAUGE,
    MetricType.INFO: _Kind.GAUGE,
    MetricType.STATESET: _Kind.GAUGE,
    MetricType.HISTOGRAM: _Kind.HISTOGRAM,
    MetricType.GAUGEHISTOGRAM: _Kind.HISTOGRAM,
    MetricType.SUMMARY: _Kind.SUMMARY,
    MetricType.UNKNOWN: _Kind.UNTYPED,
}


def _metrics(family: MetricFamily, kind: str) -> list[Labels]:
    """The label lists of the family's metrics as promlint's decoder would build them.

    Counters, gauges and untyped: one metric per sample. Histograms and
    summaries: one per label set, ``le`` / ``quantile`` set aside.
    """
    if kind == _Kind.HISTOGRAM:
        special = "le"
    elif kind == _Kind.SUMMARY:
        special = "quantile"
    else:
        return [sample.labels for sample in family.samples]
    groups: dict[Labels, Labels] = {}
    for sample in family.samples:
        labels = tuple(pair for pair in sample.labels if pair[0] != special)
        key = tuple(sorted(labels))
        if key not in groups:
            groups[key] = labels
    return list(groups.values())


_LABELS = attrgetter("labels")
_SAMPLE_NAME = attrgetter("name")
_LABEL_NAME = itemgetter(0)


def _label_names(labels: list[Labels]) -> tuple[Collection[str], bool]:
    """The distinct label names in ``labels``, and whether every list names them alike.

    The flag is True when all lists have the same names in the same order,
    each name once: then two lists hold the same labels exactly when they
    are equal as written, so duplicates need no sorting. Only C-level helpers
    run per label (the names of all lists in one flat list, compared with
    the first list's names repeated), never a Python loop per sample.
    """
    names: list[str] = list(map(_LABEL_NAME, chain.from_iterable(labels)))
    template = names[: len(labels[0])]
    uniform = (
        names == template * len(labels)
        and len(set(template)) == len(template)
        and len(set(map(len, labels))) == 1
    )
    return set(template if uniform else names), uniform


class _Collector:
    __slots__ = ("counts", "family", "order")

    def __init__(self, family: MetricFamily) -> None:
        self.family = family
        self.counts: dict[tuple[str, str], int] = {}
        self.order: list[tuple[str, str]] = []

    def add(self, code: str, message: str, times: int = 1) -> None:
        if times <= 0:
            return
        key = (code, message)
        if key not in self.counts:
            self.counts[key] = 0
            self.order.append(key)
        self.counts[key] += times

    def findings(self) -> list[LintFinding]:
        name, line = self.family.name, self.family.line
        return [
            LintFinding(code, name, message, line, self.counts[(code, message)])
            for code, message in self.order
        ]


def lint_family(family: MetricFamily, fmt: Format = Format.TEXT) -> list[LintFinding]:
    """Every rule (both promlint versions) on one family, in promlint's rule order."""
    return _lint_family(family, fmt, newest=True)


def _lint_family(family: MetricFamily, fmt: Format, *, newest: bool) -> list[LintFinding]:
    """The rules on one family; ``newest=False`` skips the newest promlint's rules.

    Samples are looked at only through C-level helpers: the distinct label
    names decide whether a label rule can fire at all, and only then are the
    family's metrics built and counted one by one.
    """
    samples = family.samples
    if not samples:
        return []
    out = _Collector(family)
    name = family.name
    lower = name.lower()
    kind = _KIND_OF_TYPE.get(family.type, _Kind.UNTYPED)
    # LintDuplicateMetric (newest promlint only): histograms and summaries are
    # merged per label set by the decoder, so only one-sample-per-metric kinds.
    check_unique = newest and kind not in (_Kind.HISTOGRAM, _Kind.SUMMARY)
    labels: list[Labels] = []
    uniform = False
    if check_unique:
        labels = list(map(_LABELS, samples))
        label_names, uniform = _label_names(labels)
    else:
        label_names = set(map(_LABEL_NAME, chain.from_iterable(map(_LABELS, samples))))
    metrics: list[Labels] | None = None

    # lintHelp
    if not family.help:
        out.add("LINT-001", MSG_NO_HELP)

    # lintMetricUnits
    unit = _unit_of(name)
    if unit is not None and unit[0] != unit[1]:
        out.add("LINT-002", f'use base unit "{unit[1]}" instead of "{unit[0]}"')

    # lintCounter
    has_total = name.endswith("_total")
    if kind == _Kind.COUNTER and fmt is Format.OPENMETRICS and not has_total:
        has_total = f"{name}_total" in set(map(_SAMPLE_NAME, samples))
    if kind == _Kind.COUNTER and not has_total:
        out.add("LINT-003", MSG_COUNTER_TOTAL)
    elif kind not in (_Kind.COUNTER, _Kind.UNTYPED) and has_total:
        out.add("LINT-004", MSG_NON_COUNTER_TOTAL)

    # LintGauge (newest promlint only)
    if newest and kind not in (_Kind.GAUGE, _Kind.UNTYPED) and name.endswith("_timestamp_seconds"):
        out.add("LINT-013", MSG_TIMESTAMP_SECONDS)

    # lintHistogramSummaryReserved
    if kind != _Kind.UNTYPED:
        is_histogram = kind == _Kind.HISTOGRAM
        is_summary = kind == _Kind.SUMMARY
        if not is_histogram and name.endswith("_bucket"):
            out.add("LINT-005", MSG_BUCKET)
        if not is_histogram and not is_summary and name.endswith("_count"):
            out.add("LINT-005", MSG_COUNT)
        if not is_histogram and not is_summary and name.endswith("_sum"):
            out.add("LINT-005", MSG_SUM)
        check_le = not is_histogram and "le" in label_names
        check_quantile = not is_summary and "quantile" in label_names
        if check_le or check_quantile:
            metrics = _metrics(family, kind)
            le = quantile = 0
            for metric in metrics:
                for label_name, _ in metric:
                    if check_le and label_name == "le":
                        le += 1
                    if check_quantile and label_name == "quantile":
                        quantile += 1
            out.add("LINT-006", MSG_LE, le)
            out.add("LINT-006", MSG_QUANTILE, quantile)

    # lintMetricTypeInName
    for type_name in _TYPE_NAMES:
        if f"_{type_name}_" in lower or lower.endswith(f"_{type_name}"):
            out.add("LINT-007", f"metric name should not include type '{type_name}'")

    # lintReservedChars
    if ":" in name:
        out.add("LINT-008", MSG_COLON)

    # lintCamelCase
    if _CAMEL_CASE.search(name):
        out.add("LINT-009", MSG_CAMEL_METRIC)
    camel = {label_name for label_name in label_names if _CAMEL_CASE.search(label_name)}
    if camel:
        if metrics is None:
            metrics = _metrics(family, kind)
        out.add(
            "LINT-010", MSG_CAMEL_LABEL, sum(1 for m in metrics for label_name, _ in m if label_name in camel)
        )

    # lintUnitAbbreviations
    abbreviations = sum(
        1 for abbr in _UNIT_ABBREVIATIONS if f"_{abbr}_" in lower or lower.endswith(f"_{abbr}")
    )
    out.add("LINT-011", MSG_ABBREVIATION, abbreviations)

    # LintDuplicateMetric
    if check_unique:
        out.add("LINT-012", MSG_NOT_UNIQUE, _duplicate_count(samples, labels, uniform))

    return out.findings()


def _duplicate_count(samples: Sequence[Sample], labels: list[Labels], uniform: bool) -> int:
    """:func:`_duplicates`, by hashing the label lists as written when ``uniform`` allows it.

    ``labels`` are the samples' labels; ``uniform`` is :func:`_label_names`' flag.
    """
    if not uniform:
        return _duplicates(samples)
    sample_names = set(map(_SAMPLE_NAME, samples))
    if len(sample_names) == 1:
        return len(samples) - len(set(labels))
    return len(samples) - len(set(zip(map(_SAMPLE_NAME, samples), labels, strict=True)))


def _duplicates(samples: Sequence[Sample]) -> int:
    """How many samples have an identical label set later on (promlint counts each such one)."""
    seen: dict[tuple[str, tuple[tuple[str, str], ...]], int] = {}
    for sample in samples:
        # By sample name too: an OpenMetrics counter's foo_total and foo_created share labels.
        key = (sample.name, tuple(sorted(sample.labels)))
        seen[key] = seen.get(key, 0) + 1
    return sum(count - 1 for count in seen.values() if count > 1)


def _merged(families: Iterable[MetricFamily]) -> list[MetricFamily]:
    """Families with one name as one family, as promtool's decoder merges a family split in two."""
    by_name: dict[str, MetricFamily] = {}
    for family in families:
        first = by_name.get(family.name)
        if first is None:
            by_name[family.name] = family
        else:
            by_name[family.name] = MetricFamily(
                first.name,
                first.type,
                first.help or family.help,
                first.unit or family.unit,
                first.samples + family.samples,
                first.line,
            )
    return list(by_name.values())


def lint(
    families: Iterable[MetricFamily],
    fmt: Format = Format.TEXT,
    *,
    promtool_only: bool = False,
) -> list[LintFinding]:
    """Lint families; findings in promlint's order (metric name, then message).

    ``promtool_only`` keeps only the rules promtool 2.42 has.
    """
    findings: list[LintFinding] = []
    for family in _merged(families):
        for finding in _lint_family(family, fmt, newest=not promtool_only):
            if promtool_only and not _RULES_BY_CODE[finding.code].promtool_compatible:
                continue
            findings.append(finding)
    findings.sort(key=LintFinding.sort_key)
    return findings


def to_diagnostics(findings: Iterable[LintFinding]) -> list[Diagnostic]:
    """One style :class:`Diagnostic` per finding, at the family's line, message as promlint words it."""
    return [
        Diagnostic(finding.code, Severity.STYLE, finding.line, 0, finding.message, finding.metric)
        for finding in findings
    ]


def promtool_lines(findings: Iterable[LintFinding]) -> list[str]:
    """The lines promtool prints on stderr for these findings, repeats included, in its order."""
    ordered = sorted(findings, key=LintFinding.sort_key)
    return [finding.promtool_line() for finding in ordered for _ in range(finding.count)]
