"""Differences between expositions: two at once, one against a baseline, or one endpoint over time.

Three entry points, all pure (no I/O but what the caller injects)::

    diff = diff_families(before.families, after.families, before_name="a.prom", after_name="b.prom")
    diff.added, diff.removed, diff.changed      # families; changes of type/help/unit/labels/series
    diff.to_json()                              # schema promscope.diff/v1 (below)

    report = check_baseline(baseline.families, current.families, max_series_growth=20.0)
    report.passed, report.violations            # what a CI job fails on

    tracker = SeriesTracker()
    tracker.update(families, time=t0)           # first round: a snapshot
    round_ = tracker.update(families, time=t1)  # appeared / vanished / changed series, counter rates
    async for round_ in watch(fetch, interval=10.0, count=6): ...

A series is a sample name plus its label set (order of labels ignored), as
Prometheus stores it: ``http_requests_total{code="200"}``, ``rpc_seconds_bucket{le="0.1"}``.
A family's label names are every label name any of its samples carries.
Families are matched by name, a counter's ``_total`` aside: the text format's
``foo_total`` family is OpenMetrics' ``foo`` (shown by B's name).

Counter-like samples (counter families' samples, the ``_bucket``/``_count``/``_sum``
samples of histograms and summaries, native histogram counts) get rates in
:class:`RoundDiff`: the increase over the interval, reset-aware as
Prometheus's ``increase()`` is (a value that goes down, or a ``_created``
that moves, starts again from zero), divided by the seconds between rounds.

JSON schema ``promscope.diff/v1`` (:meth:`ExpositionDiff.to_json`); fields are only ever added::

    {"schema": "promscope.diff/v1",
     "a": {"name": str, "families": int, "series": int},
     "b": {"name": str, "families": int, "series": int},
     "identical": bool,          # nothing differs, values included
     "structural": bool,         # families, types, help, units, label names or series differ
     "series": {"added": int, "removed": int},
     "families": {
       "added":   [{"name": str, "type": str, "help": str|null, "unit": str|null, "series": int,
                    "labels": [str]}],
       "removed": [... same ...],
       "changed": [{"name": str,
                    "type": null | {"a": str, "b": str},
                    "help": null | {"a": str|null, "b": str|null},
                    "unit": null | {"a": str|null, "b": str|null},
                    "labels": {"added": [str], "removed": [str]},
                    "series": {"a": int, "b": int, "added": int, "removed": int,
                               "added_examples": [str], "removed_examples": [str]},
                    "values": {"changed": int,
                               "examples": [{"series": str, "a": num, "b": num}]}}]}}

Series are written in selector notation (``name{label="value"}``); a number
that JSON cannot hold is written as the string ``"NaN"``, ``"+Inf"`` or
``"-Inf"``. ``promscope.diff.baseline/v1`` and ``promscope.diff.round/v1``
are documented on :meth:`BaselineReport.to_json` and :meth:`RoundDiff.to_json`.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from promscope.model import MetricFamily, MetricType, Sample, SeriesKey

__all__ = [
    "BASELINE_SCHEMA",
    "DIFF_SCHEMA",
    "ROUND_SCHEMA",
    "BaselineReport",
    "CounterRate",
    "ExpositionDiff",
    "FamilyDiff",
    "FamilyInfo",
    "FetchResult",
    "RoundDiff",
    "SeriesTracker",
    "ValueChange",
    "Violation",
    "check_baseline",
    "diff_families",
    "format_series",
    "json_number",
    "watch",
]

DIFF_SCHEMA = "promscope.diff/v1"
BASELINE_SCHEMA = "promscope.diff.baseline/v1"
ROUND_SCHEMA = "promscope.diff.round/v1"

_COUNTER_SUFFIXES = {
    MetricType.HISTOGRAM: ("_bucket", "_count", "_sum"),
    MetricType.SUMMARY: ("_count", "_sum"),
}


def json_number(value: float) -> float | str:
    """``value`` as JSON holds it: finite numbers stay numbers, others ``"NaN"``/``"+Inf"``/``"-Inf"``."""
    if math.isfinite(value):
        return value
    if math.isnan(value):
        return "NaN"
    return "+Inf" if value > 0 else "-Inf"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def format_series(key: SeriesKey) -> str:
    """``name{a="1",b="2"}`` (labels sorted, values escaped as the text format escapes them)."""
    name, labels = key
    if not labels:
        return name
    body = ",".join(f'{label}="{_escape(value)}"' for label, value in labels)
    return f"{name}{{{body}}}"


def _same(a: float, b: float) -> bool:
    return a == b or (math.isnan(a) and math.isnan(b))


def _value(sample: Sample) -> float:
    native = sample.native_histogram
    return native.count if native is not None else sample.value


# -- two expositions ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FamilyInfo:
    """One family's shape: what ``# TYPE``/``# HELP``/``# UNIT`` say, its series and label names."""

    name: str
    type: MetricType
    help: str | None
    unit: str | None
    series: int
    labels: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.type.value,
            "help": self.help,
            "unit": self.unit,
            "series": self.series,
            "labels": list(self.labels),
        }


@dataclass(frozen=True, slots=True)
class ValueChange:
    series: SeriesKey
    before: float
    after: float

    def to_json(self) -> dict[str, Any]:
        return {
            "series": format_series(self.series),
            "a": json_number(self.before),
            "b": json_number(self.after),
        }


@dataclass(frozen=True, slots=True)
class FamilyDiff:
    """How one family present on both sides differs."""

    name: str
    before: FamilyInfo
    after: FamilyInfo
    labels_added: tuple[str, ...] = ()
    labels_removed: tuple[str, ...] = ()
    series_added: int = 0
    series_removed: int = 0
    added_examples: tuple[SeriesKey, ...] = ()
    removed_examples: tuple[SeriesKey, ...] = ()
    value_changes: int = 0
    value_examples: tuple[ValueChange, ...] = ()

    @property
    def type_changed(self) -> bool:
        return self.before.type is not self.after.type

    @property
    def help_changed(self) -> bool:
        return (self.before.help or None) != (self.after.help or None)

    @property
    def unit_changed(self) -> bool:
        return (self.before.unit or None) != (self.after.unit or None)

    @property
    def labels_changed(self) -> bool:
        return bool(self.labels_added or self.labels_removed)

    @property
    def structural(self) -> bool:
        """Anything but values differs."""
        return (
            self.type_changed
            or self.help_changed
            or self.unit_changed
            or self.labels_changed
            or bool(self.series_added or self.series_removed)
        )

    @property
    def changed(self) -> bool:
        return self.structural or bool(self.value_changes)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": {"a": self.before.type.value, "b": self.after.type.value} if self.type_changed else None,
            "help": {"a": self.before.help, "b": self.after.help} if self.help_changed else None,
            "unit": {"a": self.before.unit, "b": self.after.unit} if self.unit_changed else None,
            "labels": {"added": list(self.labels_added), "removed": list(self.labels_removed)},
            "series": {
                "a": self.before.series,
                "b": self.after.series,
                "added": self.series_added,
                "removed": self.series_removed,
                "added_examples": [format_series(k) for k in self.added_examples],
                "removed_examples": [format_series(k) for k in self.removed_examples],
            },
            "values": {
                "changed": self.value_changes,
                "examples": [change.to_json() for change in self.value_examples],
            },
        }


@dataclass(frozen=True, slots=True)
class ExpositionDiff:
    """Everything that differs between exposition A (before) and B (after)."""

    before_name: str
    after_name: str
    before_families: int
    after_families: int
    before_series: int
    after_series: int
    added: tuple[FamilyInfo, ...] = ()
    removed: tuple[FamilyInfo, ...] = ()
    changed: tuple[FamilyDiff, ...] = ()
    unchanged: int = 0
    """Families present on both sides with nothing different."""

    @property
    def series_added(self) -> int:
        return sum(f.series for f in self.added) + sum(c.series_added for c in self.changed)

    @property
    def series_removed(self) -> int:
        return sum(f.series for f in self.removed) + sum(c.series_removed for c in self.changed)

    @property
    def structural(self) -> bool:
        """Families, types, help, units, label names or series differ (values aside)."""
        return bool(self.added or self.removed) or any(c.structural for c in self.changed)

    @property
    def identical(self) -> bool:
        return not (self.added or self.removed or self.changed)

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": DIFF_SCHEMA,
            "a": {"name": self.before_name, "families": self.before_families, "series": self.before_series},
            "b": {"name": self.after_name, "families": self.after_families, "series": self.after_series},
            "identical": self.identical,
            "structural": self.structural,
            "series": {"added": self.series_added, "removed": self.series_removed},
            "families": {
                "added": [f.to_json() for f in self.added],
                "removed": [f.to_json() for f in self.removed],
                "changed": [c.to_json() for c in self.changed],
            },
        }


@dataclass(slots=True)
class _Merged:
    """One family by name (an exposition that repeats a family has its samples merged)."""

    family: MetricFamily
    series: dict[SeriesKey, float] = field(default_factory=dict)
    labels: set[str] = field(default_factory=set)

    def info(self) -> FamilyInfo:
        f = self.family
        return FamilyInfo(f.name, f.type, f.help, f.unit, len(self.series), tuple(sorted(self.labels)))


def _identity(family: MetricFamily) -> str:
    """The name families are matched by: a counter is ``foo`` whether the text format calls it
    ``foo_total`` or OpenMetrics calls it ``foo`` (its samples are ``foo_total`` either way)."""
    if family.type is MetricType.COUNTER and family.name.endswith("_total"):
        return family.name[: -len("_total")]
    return family.name


def _index(families: Iterable[MetricFamily]) -> dict[str, _Merged]:
    index: dict[str, _Merged] = {}
    for family in families:
        identity = _identity(family)
        merged = index.get(identity)
        if merged is None:
            merged = index[identity] = _Merged(family)
        series = merged.series
        labels = merged.labels
        for sample in family.samples:
            series[sample.key()] = _value(sample)
            for name, _ in sample.labels:
                labels.add(name)
    return index


def diff_families(
    before: Iterable[MetricFamily],
    after: Iterable[MetricFamily],
    *,
    before_name: str = "a",
    after_name: str = "b",
    max_examples: int = 5,
    value_types: Iterable[MetricType] = (MetricType.GAUGE,),
) -> ExpositionDiff:
    """Compare two expositions family by family.

    Value changes are counted for families of ``value_types`` (gauges by
    default: a counter that moves is not news); at most ``max_examples``
    series are kept per family and kind of change, sorted.
    """
    a = _index(before)
    b = _index(after)
    watched = frozenset(value_types)
    added = tuple(sorted((b[key].info() for key in b.keys() - a.keys()), key=lambda f: f.name))
    removed = tuple(sorted((a[key].info() for key in a.keys() - b.keys()), key=lambda f: f.name))
    changed: list[FamilyDiff] = []
    unchanged = 0
    for key in sorted(a.keys() & b.keys(), key=lambda k: b[k].family.name):
        left, right = a[key], b[key]
        name = right.family.name
        left_keys, right_keys = left.series.keys(), right.series.keys()
        new_keys = right_keys - left_keys
        gone_keys = left_keys - right_keys
        value_changes = 0
        examples: list[ValueChange] = []
        if left.family.type in watched and right.family.type in watched:
            moved = sorted(
                key for key in left_keys & right_keys if not _same(left.series[key], right.series[key])
            )
            value_changes = len(moved)
            examples = [ValueChange(key, left.series[key], right.series[key]) for key in moved[:max_examples]]
        diff = FamilyDiff(
            name=name,
            before=left.info(),
            after=right.info(),
            labels_added=tuple(sorted(right.labels - left.labels)),
            labels_removed=tuple(sorted(left.labels - right.labels)),
            series_added=len(new_keys),
            series_removed=len(gone_keys),
            added_examples=tuple(sorted(new_keys)[:max_examples]),
            removed_examples=tuple(sorted(gone_keys)[:max_examples]),
            value_changes=value_changes,
            value_examples=tuple(examples),
        )
        if diff.changed:
            changed.append(diff)
        else:
            unchanged += 1
    return ExpositionDiff(
        before_name=before_name,
        after_name=after_name,
        before_families=len(a),
        after_families=len(b),
        before_series=sum(len(m.series) for m in a.values()),
        after_series=sum(len(m.series) for m in b.values()),
        added=added,
        removed=removed,
        changed=tuple(changed),
        unchanged=unchanged,
    )


# -- a baseline for CI -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Violation:
    """One reason a baseline check fails.

    ``kind``: ``family_added``, ``family_removed``, ``type_changed``,
    ``unit_changed``, ``labels_changed``, ``series_growth`` (one family) or
    ``total_series_growth``.
    """

    kind: str
    metric: str | None
    message: str

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "metric": self.metric, "message": self.message}


def _growth(before: int, after: int) -> float:
    """Percentage growth; a family that had no series and now has some grew infinitely."""
    if before == 0:
        return 0.0 if after == 0 else math.inf
    return (after - before) * 100.0 / before


def _pct(value: float) -> str:
    return "from none" if math.isinf(value) else f"{value:+.1f}%"


@dataclass(frozen=True, slots=True)
class BaselineReport:
    """A current exposition checked against a baseline."""

    diff: ExpositionDiff
    max_series_growth: float | None
    violations: tuple[Violation, ...]

    @property
    def passed(self) -> bool:
        return not self.violations

    @property
    def series_growth(self) -> float:
        return _growth(self.diff.before_series, self.diff.after_series)

    def to_json(self) -> dict[str, Any]:
        """Schema ``promscope.diff.baseline/v1``::

        {"schema": "promscope.diff.baseline/v1", "baseline": str, "current": str,
         "passed": bool, "max_series_growth": float|null,           # percent
         "series": {"baseline": int, "current": int, "growth": float|"+Inf"},  # percent
         "violations": [{"kind": str, "metric": str|null, "message": str}],
         "diff": {... promscope.diff/v1 ...}}
        """
        return {
            "schema": BASELINE_SCHEMA,
            "baseline": self.diff.before_name,
            "current": self.diff.after_name,
            "passed": self.passed,
            "max_series_growth": self.max_series_growth,
            "series": {
                "baseline": self.diff.before_series,
                "current": self.diff.after_series,
                "growth": json_number(self.series_growth),
            },
            "violations": [v.to_json() for v in self.violations],
            "diff": self.diff.to_json(),
        }


def check_baseline(
    baseline: Iterable[MetricFamily],
    current: Iterable[MetricFamily],
    *,
    max_series_growth: float | None = 20.0,
    baseline_name: str = "baseline",
    current_name: str = "current",
) -> BaselineReport:
    """Fail when metric names, types, units or label names change, or series grow too much.

    ``max_series_growth`` is a percentage checked per family and in total
    (``None``: series counts are not checked). Help text and values never fail
    the check; fewer series never do either.
    """
    diff = diff_families(
        baseline, current, before_name=baseline_name, after_name=current_name, value_types=()
    )
    violations: list[Violation] = []
    for info in diff.removed:
        violations.append(Violation("family_removed", info.name, f"{info.name} ({info.type}) is gone"))
    for info in diff.added:
        violations.append(
            Violation("family_added", info.name, f"{info.name} ({info.type}, {info.series} series) is new")
        )
    for change in diff.changed:
        name = change.name
        if change.type_changed:
            violations.append(
                Violation("type_changed", name, f"{name}: type {change.before.type} -> {change.after.type}")
            )
        if change.unit_changed:
            violations.append(
                Violation(
                    "unit_changed",
                    name,
                    f"{name}: unit {change.before.unit or '(none)'} -> {change.after.unit or '(none)'}",
                )
            )
        if change.labels_changed:
            parts = [f"+{label}" for label in change.labels_added] + [
                f"-{label}" for label in change.labels_removed
            ]
            violations.append(Violation("labels_changed", name, f"{name}: label names {' '.join(parts)}"))
        if max_series_growth is not None:
            growth = _growth(change.before.series, change.after.series)
            if growth > max_series_growth:
                violations.append(
                    Violation(
                        "series_growth",
                        name,
                        f"{name}: {change.before.series} -> {change.after.series} series "
                        f"({_pct(growth)}, limit +{max_series_growth:g}%)",
                    )
                )
    if max_series_growth is not None:
        growth = _growth(diff.before_series, diff.after_series)
        if growth > max_series_growth:
            violations.append(
                Violation(
                    "total_series_growth",
                    None,
                    f"all series: {diff.before_series} -> {diff.after_series} "
                    f"({_pct(growth)}, limit +{max_series_growth:g}%)",
                )
            )
    return BaselineReport(diff=diff, max_series_growth=max_series_growth, violations=tuple(violations))


# -- one endpoint over time --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CounterRate:
    """A counter-like series between two rounds: its increase (reset-aware) and per-second rate."""

    series: SeriesKey
    increase: float
    rate: float
    reset: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "series": format_series(self.series),
            "increase": json_number(self.increase),
            "rate": json_number(self.rate),
            "reset": self.reset,
        }


@dataclass(frozen=True, slots=True)
class RoundDiff:
    """What one round of ``diff --interval`` saw, compared with the last good round."""

    round: int
    """0 for the first round (a snapshot, nothing to compare with)."""
    time: float
    """When the round started (the injected clock)."""
    elapsed: float | None
    """Seconds since the last good round (None on the first)."""
    series: int = 0
    families: int = 0
    appeared: tuple[SeriesKey, ...] = ()
    vanished: tuple[SeriesKey, ...] = ()
    changed: tuple[ValueChange, ...] = ()
    """Series other than counters whose value moved."""
    rates: tuple[CounterRate, ...] = ()
    """Every counter-like series present in both rounds."""
    error: str | None = None
    """Why this round got nothing (the comparison then skips it)."""

    @property
    def resets(self) -> int:
        return sum(1 for r in self.rates if r.reset)

    def to_json(self) -> dict[str, Any]:
        """Schema ``promscope.diff.round/v1`` (one JSON object per line)::

        {"schema": "promscope.diff.round/v1", "round": int, "time": float, "elapsed": float|null,
         "error": str|null, "families": int, "series": int,
         "appeared": [str], "vanished": [str],
         "changed": [{"series": str, "a": num, "b": num}],
         "rates": [{"series": str, "increase": num, "rate": num, "reset": bool}]}
        """
        return {
            "schema": ROUND_SCHEMA,
            "round": self.round,
            "time": self.time,
            "elapsed": self.elapsed,
            "error": self.error,
            "families": self.families,
            "series": self.series,
            "appeared": [format_series(k) for k in self.appeared],
            "vanished": [format_series(k) for k in self.vanished],
            "changed": [c.to_json() for c in self.changed],
            "rates": [r.to_json() for r in self.rates],
        }


@dataclass(slots=True)
class _Snapshot:
    time: float
    values: dict[SeriesKey, float]
    counters: frozenset[SeriesKey]
    created_of: dict[SeriesKey, SeriesKey]
    """Counter-like series -> its ``_created`` series (same family, labels minus ``le``/``quantile``)."""


def _counter_like(family: MetricFamily, sample: Sample) -> bool:
    if sample.name.endswith("_created"):
        return False
    if family.type is MetricType.COUNTER:
        return True
    if sample.native_histogram is not None:
        return family.type is MetricType.HISTOGRAM
    suffixes = _COUNTER_SUFFIXES.get(family.type)
    return suffixes is not None and sample.name.endswith(suffixes)


def _snapshot(families: Iterable[MetricFamily], when: float) -> tuple[_Snapshot, int]:
    values: dict[SeriesKey, float] = {}
    counters: set[SeriesKey] = set()
    created_of: dict[SeriesKey, SeriesKey] = {}
    count = 0
    for family in families:
        count += 1
        for sample in family.samples:
            key = sample.key()
            values[key] = _value(sample)
            if _counter_like(family, sample):
                counters.add(key)
                base = tuple(pair for pair in key[1] if pair[0] not in ("le", "quantile"))
                created_of[key] = (f"{family.name}_created", base)
    return _Snapshot(when, values, frozenset(counters), created_of), count


class SeriesTracker:
    """Compares each round of one endpoint with the last good one (``promscope diff URL --interval``)."""

    def __init__(self) -> None:
        self._previous: _Snapshot | None = None
        self._round = 0

    def update(self, families: Iterable[MetricFamily], *, time: float) -> RoundDiff:
        """Take one round's families (scraped at ``time``) and say what changed since the last round."""
        current, family_count = _snapshot(families, time)
        number = self._round
        self._round += 1
        previous = self._previous
        self._previous = current
        if previous is None:
            return RoundDiff(number, time, None, series=len(current.values), families=family_count)
        elapsed = time - previous.time
        before, after = previous.values, current.values
        appeared = tuple(sorted(after.keys() - before.keys()))
        vanished = tuple(sorted(before.keys() - after.keys()))
        changed: list[ValueChange] = []
        rates: list[CounterRate] = []
        for key in sorted(before.keys() & after.keys()):
            old, new = before[key], after[key]
            if key in current.counters:
                created_key = current.created_of.get(key)
                moved = (
                    created_key is not None
                    and created_key in before
                    and created_key in after
                    and not _same(before[created_key], after[created_key])
                )
                reset = moved or new < old
                increase = new if reset else new - old
                rate = increase / elapsed if elapsed > 0 else math.nan
                rates.append(CounterRate(key, increase, rate, reset))
            elif not key[0].endswith("_created") and not _same(old, new):
                changed.append(ValueChange(key, old, new))
        return RoundDiff(
            number,
            time,
            elapsed,
            series=len(after),
            families=family_count,
            appeared=appeared,
            vanished=vanished,
            changed=tuple(changed),
            rates=tuple(rates),
        )

    def failed(self, error: str, *, time: float) -> RoundDiff:
        """Record a round that got nothing; the next good round compares with the last good one."""
        number = self._round
        self._round += 1
        elapsed = None if self._previous is None else time - self._previous.time
        return RoundDiff(number, time, elapsed, error=error)


@dataclass(frozen=True, slots=True)
class FetchResult:
    """What one round's fetch returned: families, or an error saying why there are none."""

    families: Sequence[MetricFamily] = ()
    error: str | None = None


async def watch(
    fetch: Callable[[], Awaitable[FetchResult]],
    *,
    interval: float,
    count: int | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    tracker: SeriesTracker | None = None,
) -> AsyncIterator[RoundDiff]:
    """Fetch every ``interval`` seconds (``count`` rounds, or forever) and yield each round's diff.

    Rounds are due at ``start + k * interval`` so they do not drift; a fetch
    that overruns its slot makes the next round start at the next free slot,
    never two at once. ``time`` in each round is ``clock()`` at its start.
    """
    if interval <= 0:
        raise ValueError("interval must be positive")
    tracker = tracker or SeriesTracker()
    start = clock()
    slot = 0
    done = 0
    while count is None or done < count:
        due = start + slot * interval
        delay = due - clock()
        if delay > 0:
            await sleep(delay)
        began = clock()
        result = await fetch()
        if result.error is not None:
            yield tracker.failed(result.error, time=began)
        else:
            yield tracker.update(result.families, time=began)
        done += 1
        slot = max(slot + 1, math.floor((clock() - start) / interval) + 1)
