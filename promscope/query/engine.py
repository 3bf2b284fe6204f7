"""Evaluate parsed PromQL over series in memory or in the store, as Prometheus's engine does.

::

    from promscope.query import Engine, SeriesSet

    data = SeriesSet.from_samples([({"__name__": "x_total", "job": "a"}, 1700000000.0, 1.0), ...])
    engine = Engine(data)
    result = engine.instant('sum by (job) (rate(x_total[5m]))', time=1700000300.0)
    result.data()        # {"resultType": "vector", "result": [{"metric": {...}, "value": [t, "0.5"]}]}
    engine.range("x_total", start, end, step).data()   # "matrix"

Semantics follow Prometheus's ``promql/engine.go``, in one of two versions
(``compat``): ``"3"`` (the default) is current Prometheus, ``"2"`` is 2.x
(the Debian ``prometheus`` 2.42 the differential test runs against). Instant
selectors take the newest sample within ``lookback_delta`` (5 minutes):
``(t - 5m, t]`` in 3, ``[t - 5m, t]`` in 2; range selectors likewise take
``(t - range, t]`` or ``[t - range, t]``. A stale marker ends a series;
functions and arithmetic drop ``__name__``; vector/vector operators match
one-to-one on all labels but the name, or ``on(...)``/``ignoring(...)``.
The range functions and ``histogram_quantile`` are the store's
(:mod:`promscope.store.functions`), in the same ``compat``.

How it stays fast: a selector is read once per query for the whole time span
into flat arrays (CSR: one timestamp and one value array, series by series),
and every step is a handful of numpy operations over all series at once (a
``searchsorted`` finds every series' window in one call). Labels live in
tables that are shared between steps, with derived tables (name dropped,
groups, match signatures) computed once per table; a :class:`SeriesSet`
also hands over label columns so ``sum by (namespace)`` groups 100k series
with ``numpy.unique`` rather than a Python loop. A source with
``select_batch`` (the live :class:`~promscope.store.Store`) hands over its
flat arrays directly; any other :class:`SeriesSource` answers ``select``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from promscope.model import Labels, MetricFamily
from promscope.observation import Observation, ObservationKind
from promscope.query.ast import (
    ARITHMETIC,
    COMPARISONS,
    Aggregate,
    Binary,
    Call,
    Expr,
    LabelMatcher,
    MatrixSelector,
    NumberLiteral,
    Paren,
    StringLiteral,
    Unary,
    ValueType,
    VectorSelector,
)
from promscope.query.lexer import QueryError
from promscope.query.parser import parse
from promscope.store import SeriesBatch, functions
from promscope.store.functions import Compat

__all__ = [
    "DEFAULT_LOOKBACK",
    "MAX_POINTS",
    "Engine",
    "QueryResult",
    "ResultSeries",
    "Series",
    "SeriesLike",
    "SeriesSet",
    "SeriesSource",
    "format_value",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

DEFAULT_LOOKBACK = 300.0
"""Seconds an instant selector looks back for a sample (Prometheus's ``--query.lookback-delta``)."""
MAX_POINTS = 11_000
"""Most steps a range query may have, as Prometheus's API allows."""

STALE_NAN_BITS = 0x7FF0_0000_0000_0002
"""Prometheus's stale marker: a NaN with this exact bit pattern ends a series."""

_NAME = "__name__"
_EMPTY_INT: IntArray = np.zeros(0, np.int64)
_EMPTY_FLOAT: FloatArray = np.zeros(0, np.float64)


# -- where series come from ------------------------------------------------------------------------------


class SeriesLike(Protocol):
    """One series' points, as the store's ``SeriesView`` gives them."""

    @property
    def labels(self) -> Labels: ...
    @property
    def timestamps(self) -> FloatArray: ...
    @property
    def values(self) -> FloatArray: ...


class SeriesSource(Protocol):
    """Anything that answers ``select``: :class:`SeriesSet`, the live store, a session."""

    def select(self, matchers: Sequence[LabelMatcher], start: float, end: float) -> Sequence[SeriesLike]: ...


@dataclass(frozen=True, slots=True, eq=False)
class Series:
    """A series held by :class:`SeriesSet`: sorted labels (with ``__name__``), seconds, values."""

    labels: Labels
    timestamps: FloatArray
    values: FloatArray


@dataclass(frozen=True, slots=True, eq=False)
class _Columns:
    """Label columns for a batch: per label name, one code per series (-1: absent) and the value strings."""

    names: tuple[str, ...]
    column: Callable[[str], tuple[npt.NDArray[np.int32], list[str]]]


@dataclass(frozen=True, slots=True, eq=False)
class _Batch:
    """Selected series in CSR layout, times in integer milliseconds."""

    labels: list[Labels]
    ts: IntArray
    values: FloatArray
    starts: IntArray
    ends: IntArray
    columns: _Columns | None = None
    created: FloatArray | None = None
    """Per point, the ``_created`` time in force (seconds; NaN where unknown), when the source knows it."""

    @staticmethod
    def build(
        labels: list[Labels],
        timestamps: Sequence[FloatArray],
        values: Sequence[FloatArray],
        columns: _Columns | None = None,
    ) -> _Batch:
        counts = np.fromiter((len(t) for t in timestamps), np.int64, len(timestamps))
        starts = np.zeros(len(timestamps), np.int64)
        if len(counts):
            np.cumsum(counts[:-1], out=starts[1:])
        ts = np.rint(np.concatenate(timestamps) * 1000.0).astype(np.int64) if len(timestamps) else _EMPTY_INT
        vals = np.concatenate(values).astype(np.float64, copy=False) if len(values) else _EMPTY_FLOAT
        return _Batch(labels, ts, vals, starts, starts + counts, columns)


class SeriesSet:
    """A fixed set of series in memory: what a file, a backfill, a session or a scrape pair becomes.

    Points are kept as they are (a counter that goes down stays down, as
    ``promtool tsdb create-blocks-from openmetrics`` keeps it); points of one
    series with the same timestamp keep the last value. Selecting uses an
    inverted index (label -> value -> series), as Prometheus's postings do.
    """

    def __init__(self, series: Iterable[SeriesLike] = ()) -> None:
        merged: dict[Labels, list[tuple[FloatArray, FloatArray]]] = {}
        for one in series:
            key = tuple(sorted(one.labels))
            merged.setdefault(key, []).append(
                (np.asarray(one.timestamps, np.float64), np.asarray(one.values, np.float64))
            )
        labels = sorted(merged)
        self._labels: list[Labels] = labels
        timestamps: list[FloatArray] = []
        values: list[FloatArray] = []
        for key in labels:
            parts = merged[key]
            ts = np.concatenate([p[0] for p in parts]) if len(parts) > 1 else parts[0][0]
            vs = np.concatenate([p[1] for p in parts]) if len(parts) > 1 else parts[0][1]
            if len(ts) > 1 and not bool(np.all(ts[1:] > ts[:-1])):
                order = np.argsort(ts, kind="stable")
                ts, vs = ts[order], vs[order]
                keep = np.ones(len(ts), bool)
                keep[:-1] = ts[1:] != ts[:-1]  # duplicates: the last one written wins
                ts, vs = ts[keep], vs[keep]
            timestamps.append(ts)
            values.append(vs)
        self._all = _Batch.build(labels, timestamps, values)
        self._index: dict[str, dict[str, IntArray]] = {}
        postings: dict[str, dict[str, list[int]]] = {}
        for i, key in enumerate(labels):
            for name, value in key:
                postings.setdefault(name, {}).setdefault(value, []).append(i)
        for name, by_value in postings.items():
            self._index[name] = {value: np.asarray(ids, np.int64) for value, ids in by_value.items()}
        self._codes: dict[str, tuple[npt.NDArray[np.int32], list[str]]] = {}

    @classmethod
    def from_samples(cls, samples: Iterable[tuple[Mapping[str, str] | Labels, float, float]]) -> SeriesSet:
        """``(labels with __name__, timestamp seconds, value)`` triples, in any order."""
        grouped: dict[Labels, tuple[list[float], list[float]]] = {}
        for labels, timestamp, value in samples:
            pairs = labels.items() if isinstance(labels, Mapping) else labels
            key = tuple(sorted(pairs))
            entry = grouped.get(key)
            if entry is None:
                entry = grouped[key] = ([], [])
            entry[0].append(timestamp)
            entry[1].append(value)
        return cls(
            Series(key, np.asarray(ts, np.float64), np.asarray(vs, np.float64))
            for key, (ts, vs) in grouped.items()
        )

    @classmethod
    def from_families(cls, families: Iterable[MetricFamily], *, default_time: float) -> SeriesSet:
        """Every sample of parsed families; a sample without a timestamp is taken at ``default_time``.

        Native histograms are left out (the subset has no native-histogram functions).
        """
        return cls.from_samples(_family_samples(families, default_time))

    @classmethod
    def from_observations(cls, observations: Iterable[Observation]) -> SeriesSet:
        """Every sample that accepted observations carried, each at its own timestamp or the observation's.

        A scrape that failed still carries Prometheus's report series (``up`` 0,
        ``scrape_duration_seconds``…), which Prometheus records too; a refused push carries what
        was refused, which nobody stored.
        """

        def samples() -> Iterator[tuple[Labels, float, float]]:
            for observation in observations:
                if observation.accepted or observation.kind is ObservationKind.SCRAPE:
                    yield from _family_samples(observation.families, observation.time)

        return cls.from_samples(samples())

    def __len__(self) -> int:
        return len(self._labels)

    @property
    def sample_count(self) -> int:
        return len(self._all.ts)

    def time_range(self) -> tuple[float, float] | None:
        """Oldest and newest sample times (seconds), or None when empty."""
        if not len(self._all.ts):
            return None
        return float(self._all.ts.min()) / 1000.0, float(self._all.ts.max()) / 1000.0

    def names(self) -> list[str]:
        return sorted(self._index.get(_NAME, {}))

    def _ids(self, matchers: Sequence[LabelMatcher]) -> IntArray:
        selected: IntArray | None = None
        total = len(self._labels)
        # Matchers that do not match "" narrow through the index; the rest filter what is left.
        for matcher in sorted(matchers, key=lambda m: (m.matches_empty, m.op != "=")):
            by_value = self._index.get(matcher.name, {})
            if matcher.op == "=" and matcher.value:
                ids = by_value.get(matcher.value, _EMPTY_INT)
            else:
                hits = [ids for value, ids in by_value.items() if matcher.matches(value)]
                ids = np.unique(np.concatenate(hits)) if hits else _EMPTY_INT
                if matcher.matches_empty:  # series without the label match as well
                    having = [ids for value, ids in by_value.items() if not matcher.matches(value)]
                    excluded = np.unique(np.concatenate(having)) if having else _EMPTY_INT
                    base = selected if selected is not None else np.arange(total, dtype=np.int64)
                    selected = base[~np.isin(base, excluded, assume_unique=True)]
                    continue
            selected = ids if selected is None else np.intersect1d(selected, ids, assume_unique=True)
            if not len(selected):
                break
        if selected is None:
            selected = np.arange(total, dtype=np.int64)
        return np.sort(selected)

    def select(self, matchers: Sequence[LabelMatcher], start: float, end: float) -> list[Series]:
        """Series matching every matcher, with their points in ``[start, end]`` (seconds)."""
        out: list[Series] = []
        lo, hi = round(start * 1000), round(end * 1000)
        for i in self._ids(matchers):
            a, b = int(self._all.starts[i]), int(self._all.ends[i])
            ts = self._all.ts[a:b]
            first, last = np.searchsorted(ts, lo, "left"), np.searchsorted(ts, hi, "right")
            if last > first:
                out.append(
                    Series(
                        self._labels[i],
                        ts[first:last].astype(np.float64) / 1000.0,
                        self._all.values[a:b][first:last],
                    )
                )
        return out

    def _select_batch(self, matchers: Sequence[LabelMatcher]) -> _Batch:
        ids = self._ids(matchers)
        all_ = self._all
        counts = all_.ends[ids] - all_.starts[ids]
        starts = np.zeros(len(ids), np.int64)
        if len(ids):
            np.cumsum(counts[:-1], out=starts[1:])
        if len(ids) == len(self._labels):
            take: IntArray | slice = slice(None)
        else:
            take = np.repeat(all_.starts[ids] - starts, counts) + np.arange(int(counts.sum()), dtype=np.int64)
        labels = [self._labels[i] for i in ids]
        names = tuple(sorted({name for name, by_value in self._index.items()}))

        def column(name: str) -> tuple[npt.NDArray[np.int32], list[str]]:
            codes, strings = self._column(name)
            return codes[ids], strings

        return _Batch(
            labels, all_.ts[take], all_.values[take], starts, starts + counts, _Columns(names, column)
        )

    def _column(self, name: str) -> tuple[npt.NDArray[np.int32], list[str]]:
        cached = self._codes.get(name)
        if cached is None:
            codes = np.full(len(self._labels), -1, np.int32)
            strings: list[str] = []
            for code, (value, ids) in enumerate(self._index.get(name, {}).items()):
                codes[ids] = code
                strings.append(value)
            cached = self._codes[name] = (codes, strings)
        return cached


# -- results ---------------------------------------------------------------------------------------------


def format_value(value: float) -> str:
    """A sample value as Prometheus's API writes it (Go's ``FormatFloat(v, 'f', -1, 64)``)."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    text: str = np.format_float_positional(value, trim="-")
    return text


def _api_time(ms: int) -> float | int:
    return ms // 1000 if ms % 1000 == 0 else ms / 1000.0


@dataclass(frozen=True, slots=True)
class ResultSeries:
    """One series of a result: labels and its points ``(time seconds, value)``, one for a vector."""

    labels: Labels
    points: tuple[tuple[float, float], ...]

    @property
    def metric(self) -> dict[str, str]:
        return dict(self.labels)

    @property
    def value(self) -> float:
        """The (last) value: a vector sample's value."""
        return self.points[-1][1]


@dataclass(frozen=True, slots=True)
class QueryResult:
    """What a query evaluated to, with the expression it came from.

    ``series`` holds the vector's samples or the matrix's series; a scalar or
    string result has ``scalar``/``string`` and the evaluation ``time``.
    """

    type: ValueType
    expression: str
    series: tuple[ResultSeries, ...] = ()
    scalar: float | None = None
    string: str | None = None
    time: float = 0.0
    points: tuple[tuple[float, float], ...] = field(default=())
    """For a scalar range query: the scalar at each step."""

    @property
    def empty(self) -> bool:
        if self.type in (ValueType.VECTOR, ValueType.MATRIX):
            return not self.series
        return False

    def data(self) -> dict[str, Any]:
        """The ``data`` member of Prometheus's ``/api/v1/query`` (or ``query_range``) answer."""
        if self.type is ValueType.SCALAR and not self.points:
            return {
                "resultType": "scalar",
                "result": [_api_time_s(self.time), format_value(self.scalar or 0.0)],
            }
        if self.type is ValueType.STRING:
            return {"resultType": "string", "result": [_api_time_s(self.time), self.string or ""]}
        if self.type is ValueType.VECTOR:
            return {
                "resultType": "vector",
                "result": [
                    {
                        "metric": s.metric,
                        "value": [_api_time_s(s.points[-1][0]), format_value(s.points[-1][1])],
                    }
                    for s in self.series
                ],
            }
        return {
            "resultType": "matrix",
            "result": [
                {"metric": s.metric, "values": [[_api_time_s(t), format_value(v)] for t, v in s.points]}
                for s in self.series
            ],
        }


def _api_time_s(seconds: float) -> float | int:
    return _api_time(round(seconds * 1000))


# -- evaluation values -------------------------------------------------------------------------------------


class _Table:
    """Label sets shared by the steps of one query, with what is derived from them computed once."""

    __slots__ = ("_cache", "_labels", "_make", "columns", "size")

    def __init__(
        self,
        labels: list[Labels] | None,
        *,
        size: int | None = None,
        make: Callable[[], list[Labels]] | None = None,
        columns: _Columns | None = None,
    ) -> None:
        self._labels = labels
        self._make = make
        self.size = len(labels) if labels is not None else int(size or 0)
        self.columns = columns
        self._cache: dict[Any, Any] = {}

    @property
    def labels(self) -> list[Labels]:
        if self._labels is None:
            assert self._make is not None
            self._labels = self._make()
        return self._labels

    def cached(self, key: Any, compute: Callable[[], Any]) -> Any:
        try:
            return self._cache[key]
        except KeyError:
            value = self._cache[key] = compute()
            return value

    def without_name(self) -> _Table:
        def compute() -> _Table:
            parent = self
            columns = None
            if self.columns is not None:
                cols = self.columns
                columns = _Columns(tuple(n for n in cols.names if n != _NAME), cols.column)
            table = _Table(
                None, size=self.size, make=lambda: [_drop_name(ls) for ls in parent.labels], columns=columns
            )
            table._cache["without_name"] = table
            return table

        result: _Table = self.cached("without_name", compute)
        return result

    def identity(self) -> IntArray:
        """For each row, the first row with equal labels (duplicates share it)."""

        def compute() -> IntArray:
            first: dict[Labels, int] = {}
            return np.fromiter(
                (first.setdefault(ls, i) for i, ls in enumerate(self.labels)), np.int64, self.size
            )

        result: IntArray = self.cached("identity", compute)
        return result

    def groups(self, names: tuple[str, ...], without: bool) -> tuple[IntArray, _Table]:
        """Group id per row and the table of group labels, for ``by``/``without (names)``."""
        key = ("groups", without, names)
        result: tuple[IntArray, _Table] = self.cached(key, lambda: self._groups(names, without))
        return result

    def _groups(self, names: tuple[str, ...], without: bool) -> tuple[IntArray, _Table]:
        if self.columns is not None:
            dropped = set(names) | {_NAME}
            keep = [n for n in self.columns.names if n not in dropped] if without else sorted(set(names))
            if not keep:
                return np.zeros(self.size, np.int64), _Table([()])
            cols = [self.columns.column(n) for n in keep]
            codes = np.stack([c[0] for c in cols], axis=1).astype(np.int64)
            unique, inverse = np.unique(codes, axis=0, return_inverse=True)
            group_labels = [
                tuple((keep[j], cols[j][1][code]) for j, code in enumerate(row) if code >= 0)
                for row in unique.tolist()
            ]
            return inverse.reshape(-1).astype(np.int64), _Table(group_labels)
        group_of: dict[Labels, int] = {}
        if without:
            dropped = set(names) | {_NAME}
            keys = [tuple(p for p in ls if p[0] not in dropped) for ls in self.labels]
        else:
            wanted = set(names)
            keys = [tuple(p for p in ls if p[0] in wanted) for ls in self.labels]
        gids = np.fromiter((group_of.setdefault(k, len(group_of)) for k in keys), np.int64, len(keys))
        return gids, _Table(list(group_of))


def _family_samples(
    families: Iterable[MetricFamily], default_time: float
) -> Iterator[tuple[Labels, float, float]]:
    for family in families:
        for sample in family.samples:
            if sample.native_histogram is not None:
                continue
            timestamp = sample.timestamp if sample.timestamp is not None else default_time
            yield ((_NAME, sample.name), *sample.labels), timestamp, sample.value


def _drop_name(labels: Labels) -> Labels:
    if labels and labels[0][0] == _NAME:
        return labels[1:]
    return tuple(p for p in labels if p[0] != _NAME)


@dataclass(slots=True)
class _Vector:
    table: _Table
    rows: IntArray
    values: FloatArray
    ordered: bool = False
    """True when the order is meaningful (topk, sort): output keeps it instead of sorting by labels."""

    def labels(self) -> list[Labels]:
        table_labels = self.table.labels
        return [table_labels[r] for r in self.rows.tolist()]


_Value = float | str | _Vector


def _empty_vector() -> _Vector:
    return _Vector(_Table([]), _EMPTY_INT, _EMPTY_FLOAT)


# -- the engine --------------------------------------------------------------------------------------------


class Engine:
    """Evaluates PromQL over a :class:`SeriesSource`.

    ``lookback_delta`` is how far back an instant selector looks (seconds);
    ``compat`` picks Prometheus 3 (``"3"``) or 2.x (``"2"``) semantics (see the module docstring).
    """

    def __init__(
        self,
        source: SeriesSource,
        *,
        lookback_delta: float = DEFAULT_LOOKBACK,
        compat: Compat = "3",
        max_points: int = MAX_POINTS,
    ) -> None:
        self.source = source
        self.lookback_delta = lookback_delta
        if compat not in ("2", "3"):
            raise ValueError(f"compat must be '2' or '3', not {compat!r}")
        self.compat: Compat = compat
        self.max_points = max_points

    def instant(self, expression: str | Expr, time: float) -> QueryResult:
        """Evaluate at one instant (seconds), as ``/api/v1/query?time=`` does."""
        text, node = _parsed(expression)
        t = round(time * 1000)
        run = _Run(self, text, [t])
        value = run.eval(node, t)
        return _instant_result(node, text, value, t)

    def range(self, expression: str | Expr, start: float, end: float, step: float) -> QueryResult:
        """Evaluate at ``start, start + step, … <= end``, as ``/api/v1/query_range`` does (a matrix)."""
        text, node = _parsed(expression)
        if step <= 0:
            raise QueryError(
                "zero or negative query resolution step widths are not accepted", text, None, kind="bad range"
            )
        if end < start:
            raise QueryError("end timestamp must not be before start time", text, None, kind="bad range")
        start_ms, end_ms, step_ms = round(start * 1000), round(end * 1000), max(1, round(step * 1000))
        count = (end_ms - start_ms) // step_ms + 1
        if count > self.max_points:
            raise QueryError(
                f"exceeded maximum resolution of {self.max_points:,} points per timeseries; "
                "try a larger step",
                text,
                None,
                kind="bad range",
            )
        times = [start_ms + i * step_ms for i in range(count)]
        if node.type not in (ValueType.SCALAR, ValueType.VECTOR):
            raise QueryError(
                f'invalid expression type "{node.type.description}" for range query, must be scalar or '
                "instant vector",
                text,
                None,
                kind="bad range",
            )
        run = _Run(self, text, times)
        if node.type is ValueType.SCALAR:
            points = tuple((t / 1000.0, _as_float(run.eval(node, t))) for t in times)
            return QueryResult(
                ValueType.MATRIX,
                text,
                series=(ResultSeries((), points),),
                time=end_ms / 1000.0,
            )
        collected: dict[Labels, list[tuple[float, float]]] = {}
        for t in times:
            value = run.eval(node, t)
            assert isinstance(value, _Vector)
            seconds = t / 1000.0
            for labels, v in zip(value.labels(), value.values.tolist(), strict=True):
                found = collected.get(labels)
                if found is None:
                    found = collected[labels] = []
                found.append((seconds, v))
        series = tuple(ResultSeries(labels, tuple(collected[labels])) for labels in sorted(collected))
        return QueryResult(ValueType.MATRIX, text, series=series, time=end_ms / 1000.0)


def _parsed(expression: str | Expr) -> tuple[str, Expr]:
    if isinstance(expression, Expr):
        return str(expression), expression
    return expression, parse(expression)


def _as_float(value: _Value) -> float:
    assert isinstance(value, float)
    return value


def _instant_result(node: Expr, text: str, value: _Value, t: int) -> QueryResult:
    seconds = t / 1000.0
    if isinstance(value, str):
        return QueryResult(ValueType.STRING, text, string=value, time=seconds)
    if isinstance(value, float):
        return QueryResult(ValueType.SCALAR, text, scalar=value, time=seconds)
    labels = value.labels()
    values = value.values.tolist()
    pairs = list(zip(labels, values, strict=True))
    if not value.ordered:
        pairs.sort(key=lambda p: p[0])
    series = tuple(ResultSeries(ls, ((seconds, v),)) for ls, v in pairs)
    return QueryResult(ValueType.VECTOR, text, series=series, time=seconds)


class _Run:
    """One query's evaluation: selected data and derived tables, shared by its steps."""

    def __init__(self, engine: Engine, text: str, times: Sequence[int]) -> None:
        self.engine = engine
        self.text = text
        self.lookback = round(engine.lookback_delta * 1000)
        self.compat: Compat = engine.compat
        self.left_open = engine.compat == "3"
        self.first = times[0]
        self.last = times[-1]
        self.batches: dict[int, _Prepared] = {}
        self.interner: dict[Any, int] = {}
        self.pair_tables: dict[tuple[int, int], _Table] = {}

    def error(self, node: Expr, reason: str, pos: int | None = None) -> QueryError:
        return QueryError(reason, self.text, node.pos if pos is None else pos, kind="evaluation error")

    # -- selection ---------------------------------------------------------------------------------------

    def prepared(self, selector: VectorSelector, range_ms: int) -> _Prepared:
        key = id(selector)
        found = self.batches.get(key)
        if found is None:
            offset = round(selector.offset * 1000)
            span = range_ms if range_ms else self.lookback
            start = self.first - offset - span
            end = self.last - offset
            found = self.batches[key] = _Prepared(
                self._select(selector, start, end), drop_stale=bool(range_ms)
            )
        return found

    def _select(self, selector: VectorSelector, start: int, end: int) -> _Batch:
        source = self.engine.source
        if isinstance(source, SeriesSet):
            batch = source._select_batch(selector.matchers)
            return _window(batch, start, end)
        select_batch = getattr(source, "select_batch", None)
        if select_batch is not None:
            flat = select_batch(selector.matchers, start / 1000.0, end / 1000.0)
            offsets = np.asarray(flat.offsets, np.int64)
            created = flat.created
            # A SeriesBatch's label sets are sorted already; anything else is sorted here.
            sorted_labels = isinstance(flat, SeriesBatch)
            return _Batch(
                list(flat.labels) if sorted_labels else [tuple(sorted(ls)) for ls in flat.labels],
                np.rint(np.asarray(flat.timestamps, np.float64) * 1000.0).astype(np.int64),
                np.asarray(flat.values, np.float64),
                offsets[:-1],
                offsets[1:],
                created=None if created is None else np.asarray(created, np.float64),
            )
        views = source.select(selector.matchers, start / 1000.0, end / 1000.0)
        labels = [tuple(sorted(v.labels)) for v in views]
        batch = _Batch.build(
            labels,
            [np.asarray(v.timestamps, np.float64) for v in views],
            [np.asarray(v.values, np.float64) for v in views],
        )
        return _window(batch, start, end)

    # -- evaluation --------------------------------------------------------------------------------------

    def eval(self, node: Expr, t: int) -> _Value:
        if isinstance(node, NumberLiteral):
            return float(node.value)
        if isinstance(node, StringLiteral):
            return node.value
        if isinstance(node, Paren):
            return self.eval(node.expr, t)
        if isinstance(node, VectorSelector):
            return self.instant_selector(node, t)
        if isinstance(node, Call):
            return self.call(node, t)
        if isinstance(node, Aggregate):
            return self.aggregate(node, t)
        if isinstance(node, Binary):
            return self.binary(node, t)
        if isinstance(node, Unary):
            value = self.eval(node.expr, t)
            if isinstance(value, float):
                return -value
            assert isinstance(value, _Vector)
            return _Vector(value.table.without_name(), value.rows, -value.values)
        if isinstance(node, MatrixSelector):
            raise self.error(
                node, "a range vector cannot be the result of a query here; wrap it in a function"
            )
        raise self.error(node, f"cannot evaluate {type(node).__name__}")

    def instant_selector(self, node: VectorSelector, t: int) -> _Vector:
        prepared = self.prepared(node, 0)
        batch = prepared.batch
        if not len(batch.starts):
            return _Vector(prepared.table, _EMPTY_INT, _EMPTY_FLOAT)
        q = t - round(node.offset * 1000)
        last = prepared.search(q, "right") - 1
        valid = last >= batch.starts
        safe = np.where(valid, last, 0)
        if len(batch.ts):
            oldest = q - self.lookback
            times = batch.ts[safe]
            valid &= (times > oldest) if self.left_open else (times >= oldest)
            if prepared.stale is not None:
                valid &= ~prepared.stale[safe]
        rows = np.flatnonzero(valid)
        return _Vector(prepared.table, rows, batch.values[last[rows]])

    def windows(self, node: MatrixSelector, t: int) -> tuple[_Prepared, IntArray, IntArray, int, int]:
        """For every series: first and last index inside the window, and the window's edges (ms)."""
        range_ms = round(node.range * 1000)
        prepared = self.prepared(node.vector, range_ms)
        hi = t - round(node.vector.offset * 1000)
        lo = hi - range_ms
        first = prepared.search(lo + 1 if self.left_open else lo, "left")
        last = prepared.search(hi, "right") - 1
        return prepared, first, last, lo, hi

    def call(self, node: Call, t: int) -> _Value:
        name = node.func
        if name == "time":
            return t / 1000.0
        args = node.args
        if args and isinstance(args[0], MatrixSelector):
            return self.range_function(node, args[0], t)
        if name == "vector":
            value = _as_float(self.eval(args[0], t))
            return _Vector(_Table([()]), np.zeros(1, np.int64), np.array([value]))
        if name == "scalar":
            vec = self.eval(args[0], t)
            assert isinstance(vec, _Vector)
            return float(vec.values[0]) if len(vec.values) == 1 else math.nan
        if name == "histogram_quantile":
            q = _as_float(self.eval(args[0], t))
            vec = self.eval(args[1], t)
            assert isinstance(vec, _Vector)
            return self.histogram_quantile(node, q, vec)
        first = self.eval(args[0], t)
        assert isinstance(first, _Vector)
        vec = first
        extra = [_as_float(self.eval(a, t)) for a in args[1:]]
        if name in ("sort", "sort_desc"):
            values = vec.values
            key = np.where(np.isnan(values), np.inf, values if name == "sort" else -values)
            order = np.argsort(key, kind="stable")
            return _Vector(vec.table, vec.rows[order], values[order], ordered=True)
        if name == "timestamp":
            return self.timestamps(node, t)
        values = _elementwise(name, vec.values, extra)
        return self.checked(node, _Vector(vec.table.without_name(), vec.rows, values))

    def timestamps(self, node: Call, t: int) -> _Vector:
        arg = node.args[0]
        inner = arg.expr if isinstance(arg, Paren) else arg
        if isinstance(inner, VectorSelector):
            vec = self.instant_selector(inner, t)
            prepared = self.prepared(inner, 0)
            q = t - round(inner.offset * 1000)
            last = prepared.search(q, "right") - 1
            stamps = prepared.batch.ts[last[vec.rows]] / 1000.0
            return _Vector(vec.table.without_name(), vec.rows, stamps.astype(np.float64))
        other = self.eval(arg, t)
        assert isinstance(other, _Vector)
        return _Vector(other.table.without_name(), other.rows, np.full(len(other.rows), t / 1000.0))

    def checked(self, node: Expr, vec: _Vector) -> _Vector:
        """Refuse a vector whose label sets repeat, as Prometheus does after dropping names."""
        if len(vec.rows) > 1:
            ident = vec.table.identity()[vec.rows]
            if len(np.unique(ident)) != len(ident):
                raise self.error(node, "vector cannot contain metrics with the same labelset")
        return vec

    def range_function(self, node: Call, arg: MatrixSelector, t: int) -> _Vector:
        prepared, first, last, lo, hi = self.windows(arg, t)
        count = np.maximum(last - first + 1, 0)
        rows = np.flatnonzero(count > 0)
        points = _window_points(prepared.batch, first[rows], count[rows])
        name = node.func
        if name in ("rate", "increase", "delta"):
            kernel = getattr(functions, name)
            result = kernel(points, lo / 1000.0, hi / 1000.0, compat=self.compat)
        elif name == "resets":
            result = functions.resets(points, use_created=self.compat == "3")
        else:
            result = getattr(functions, name)(points)
        present = np.asarray(result.present, bool)
        table = prepared.table if name == "last_over_time" else prepared.table.without_name()
        values = np.asarray(result.values, np.float64)[present]
        return self.checked(node, _Vector(table, rows[present], values))

    def histogram_quantile(self, node: Call, q: float, vec: _Vector) -> _Vector:
        if not len(vec.rows):
            return _empty_vector()
        bounds_all = vec.table.cached("le", lambda: _le_bounds(vec.table))
        bounds = bounds_all[vec.rows]
        usable = ~np.isnan(bounds)
        gids_all, group_table = vec.table.groups(("le",), True)
        gids = gids_all[vec.rows][usable]
        if not len(gids):
            return _empty_vector()
        present_groups, dense = np.unique(gids, return_inverse=True)
        result = functions.histogram_quantile(
            q, dense, bounds[usable], vec.values[usable], len(present_groups), compat=self.compat
        )
        present = np.asarray(result.present, bool)
        values = np.asarray(result.values, np.float64)[present]
        return _Vector(group_table, present_groups[present].astype(np.int64), values)

    # -- aggregation -------------------------------------------------------------------------------------

    def aggregate(self, node: Aggregate, t: int) -> _Vector:
        vec = self.eval(node.expr, t)
        assert isinstance(vec, _Vector)
        op = node.op
        k = 0
        if node.param is not None:
            param = _as_float(self.eval(node.param, t))
            if math.isnan(param) or param < 1:
                return _empty_vector()
            k = int(min(param, 2**62))
        if not len(vec.rows):
            return _empty_vector()
        gids_all, group_table = vec.table.groups(node.grouping, node.without)
        gids = gids_all[vec.rows]
        values = vec.values
        if op in ("topk", "bottomk"):
            return _top(vec, gids, k, largest=op == "topk")
        present, dense = np.unique(gids, return_inverse=True)
        groups = len(present)
        with np.errstate(all="ignore"):
            if op == "count":
                result = np.bincount(dense, minlength=groups).astype(np.float64)
            elif op == "sum":
                result = _group_sum(dense, values, groups)
            elif op == "avg":
                result = _group_sum(dense, values, groups) / np.bincount(dense, minlength=groups)
            else:  # min, max: NaN only when every value is NaN
                order = np.argsort(dense, kind="stable")
                sorted_values = values[order]
                starts = np.searchsorted(dense[order], np.arange(groups))
                reduce = np.fmin if op == "min" else np.fmax
                result = reduce.reduceat(sorted_values, starts)
        return _Vector(group_table, present.astype(np.int64), result.astype(np.float64, copy=False))

    # -- binary operators -----------------------------------------------------------------------------------

    def binary(self, node: Binary, t: int) -> _Value:
        lhs = self.eval(node.lhs, t)
        rhs = self.eval(node.rhs, t)
        op = node.op
        if isinstance(lhs, float) and isinstance(rhs, float):
            return float(_scalar_op(op, lhs, rhs))
        if isinstance(lhs, _Vector) and isinstance(rhs, float):
            return self.vector_scalar(node, lhs, rhs, swapped=False)
        if isinstance(lhs, float) and isinstance(rhs, _Vector):
            return self.vector_scalar(node, rhs, lhs, swapped=True)
        assert isinstance(lhs, _Vector) and isinstance(rhs, _Vector)
        if op in ("and", "or", "unless"):
            return self.set_operation(node, lhs, rhs)
        return self.vector_vector(node, lhs, rhs)

    def vector_scalar(self, node: Binary, vec: _Vector, scalar: float, *, swapped: bool) -> _Vector:
        op = node.op
        left = np.full(len(vec.values), scalar) if swapped else vec.values
        right = vec.values if swapped else np.full(len(vec.values), scalar)
        with np.errstate(all="ignore"):
            if op in COMPARISONS:
                keep = _compare(op, left, right)
                if node.bool_modifier:
                    return _Vector(vec.table.without_name(), vec.rows, keep.astype(np.float64))
                return _Vector(vec.table, vec.rows[keep], vec.values[keep])
            values = _arith(op, left, right)
        return _Vector(vec.table.without_name(), vec.rows, values)

    def signatures(self, vec: _Vector, on: bool, names: tuple[str, ...]) -> IntArray:
        """Interned match signature per row of the vector (shared numbering across both sides)."""
        key = ("signature", on, names)
        interner = self.interner

        def compute() -> IntArray:
            wanted = set(names)
            table_labels = vec.table.labels
            if on:
                keys: Iterable[Labels] = (tuple(p for p in ls if p[0] in wanted) for ls in table_labels)
            else:
                dropped = wanted | {_NAME}
                keys = (tuple(p for p in ls if p[0] not in dropped) for ls in table_labels)
            return np.fromiter(
                (interner.setdefault(k, len(interner)) for k in keys), np.int64, vec.table.size
            )

        all_rows: IntArray = vec.table.cached(key, compute)
        result: IntArray = all_rows[vec.rows]
        return result

    def set_operation(self, node: Binary, lhs: _Vector, rhs: _Vector) -> _Vector:
        on, names = node.matching.on, node.matching.labels
        if node.op == "or":
            if not len(lhs.rows):
                return rhs
            if not len(rhs.rows):
                return lhs
        if not len(lhs.rows):
            return lhs
        lsig = self.signatures(lhs, on, names)
        rsig = self.signatures(rhs, on, names) if len(rhs.rows) else _EMPTY_INT
        if node.op == "and":
            keep = np.isin(lsig, rsig)
            return _Vector(lhs.table, lhs.rows[keep], lhs.values[keep])
        if node.op == "unless":
            keep = ~np.isin(lsig, rsig)
            return _Vector(lhs.table, lhs.rows[keep], lhs.values[keep])
        extra = ~np.isin(rsig, lsig)
        table = self.joined(lhs.table, rhs.table)
        rows = np.concatenate([lhs.rows, rhs.rows[extra] + lhs.table.size])
        return _Vector(table, rows, np.concatenate([lhs.values, rhs.values[extra]]))

    def joined(self, left: _Table, right: _Table) -> _Table:
        key = (id(left), id(right))
        table = self.pair_tables.get(key)
        if table is None:
            table = self.pair_tables[key] = _Table(
                None, size=left.size + right.size, make=lambda: left.labels + right.labels
            )
        return table

    def vector_vector(self, node: Binary, lhs: _Vector, rhs: _Vector) -> _Vector:
        if not len(lhs.rows) or not len(rhs.rows):
            return _empty_vector()
        on, names = node.matching.on, node.matching.labels
        lsig = self.signatures(lhs, on, names)
        rsig = self.signatures(rhs, on, names)
        unique_r, first_r, count_r = np.unique(rsig, return_index=True, return_counts=True)
        if bool(np.any(count_r > 1)):
            dup_sig = unique_r[np.argmax(count_r > 1)]
            where = np.flatnonzero(rsig == dup_sig)[:2]
            rlabels = rhs.labels()
            group = _format_labels(_match_labels(rlabels[where[0]], on, names))
            raise self.error(
                node,
                f"found duplicate series for the match group {group} "
                "on the right hand-side of the operation: "
                f"[{_format_labels(rlabels[where[1]])}, {_format_labels(rlabels[where[0]])}];"
                "many-to-many matching not allowed: matching labels must be unique on one side",
                node.op_pos,
            )
        position = np.searchsorted(unique_r, lsig)
        position = np.minimum(position, len(unique_r) - 1)
        matched = unique_r[position] == lsig
        lidx = np.flatnonzero(matched)
        ridx = first_r[position[lidx]]
        left, right = lhs.values[lidx], rhs.values[ridx]
        op = node.op
        with np.errstate(all="ignore"):
            if op in COMPARISONS:
                keep = _compare(op, left, right)
                if node.bool_modifier:
                    values = keep.astype(np.float64)
                else:
                    lidx, values = lidx[keep], left[keep]
            else:
                values = _arith(op, left, right)
        sigs = lsig[lidx]
        if len(np.unique(sigs)) != len(sigs):
            raise self.error(
                node,
                "multiple matches for labels: many-to-one matching must be explicit (group_left/group_right)",
                node.op_pos,
            )
        drop_name = op in ARITHMETIC or node.bool_modifier
        table = self.result_table(lhs.table, drop_name, node.matching.written, on, names)
        return _Vector(table, lhs.rows[lidx], values)

    def result_table(
        self, table: _Table, drop_name: bool, written: bool, on: bool, names: tuple[str, ...]
    ) -> _Table:
        if not written or (not on and not names):
            return table.without_name() if drop_name else table
        key = ("result", drop_name, on, names)

        def compute() -> _Table:
            wanted = set(names)
            source = table

            def make() -> list[Labels]:
                if on:
                    return [tuple(p for p in ls if p[0] in wanted) for ls in source.labels]
                dropped = wanted | ({_NAME} if drop_name else set())
                return [tuple(p for p in ls if p[0] not in dropped) for ls in source.labels]

            return _Table(None, size=table.size, make=make)

        result: _Table = table.cached(key, compute)
        return result


class _Prepared:
    """A selected batch with its label table and a search key for finding windows per series."""

    __slots__ = ("_base", "_cap", "_keys", "_segments", "batch", "stale", "table")

    def __init__(self, batch: _Batch, *, drop_stale: bool) -> None:
        stale = _stale_mask(batch.values)
        if stale is not None and drop_stale:
            batch = _filtered(batch, ~stale)
            stale = None
        self.batch = batch
        self.stale = stale
        self.table = _Table(batch.labels, columns=batch.columns)
        n = len(batch.starts)
        if len(batch.ts):
            self._base = int(batch.ts.min()) - 1
            self._cap = int(batch.ts.max()) - self._base + 1
        else:
            self._base, self._cap = 0, 1
        shift = max(self._cap.bit_length(), 1)
        if shift + max(n, 1).bit_length() > 62:
            raise QueryError(
                "too many series over too long a time span for one query", "", None, kind="evaluation error"
            )
        segment = np.repeat(np.arange(n, dtype=np.int64), batch.ends - batch.starts)
        self._keys = (segment << shift) + (batch.ts - self._base)
        self._segments = np.arange(n, dtype=np.int64) << shift

    def search(self, at: int, side: str) -> IntArray:
        """Per series: where ``at`` (ms) would go among its points (``searchsorted`` with ``side``)."""
        rel = min(max(at - self._base, 0), self._cap)
        result: IntArray = np.searchsorted(self._keys, self._segments + rel, side=side)  # type: ignore[call-overload]
        return result


def _stale_mask(values: FloatArray) -> BoolArray | None:
    if not len(values) or not bool(np.isnan(values).any()):
        return None
    mask: BoolArray = values.view(np.uint64) == np.uint64(STALE_NAN_BITS)
    return mask if bool(mask.any()) else None


def _filtered(batch: _Batch, keep: BoolArray) -> _Batch:
    kept_before = np.concatenate([[0], np.cumsum(keep)])
    starts = kept_before[batch.starts]
    ends = kept_before[batch.ends]
    created = None if batch.created is None else batch.created[keep]
    return _Batch(batch.labels, batch.ts[keep], batch.values[keep], starts, ends, batch.columns, created)


def _window(batch: _Batch, start: int, end: int) -> _Batch:
    """The batch cut to points in ``[start, end]`` ms (series keep their rows, possibly empty)."""
    if not len(batch.ts):
        return batch
    inside = (batch.ts >= start) & (batch.ts <= end)
    if bool(inside.all()):
        return batch
    return _filtered(batch, inside)


# -- numeric kernels ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, eq=False)
class _Points:
    """Windows of many series in the CSR layout the store's functions take (seconds)."""

    timestamps: FloatArray
    values: FloatArray
    offsets: IntArray
    created: FloatArray | None = None


def _window_points(batch: _Batch, first: IntArray, count: IntArray) -> _Points:
    """The points ``first[i] .. first[i] + count[i] - 1`` of each window, packed back to back."""
    offsets = np.zeros(len(count) + 1, np.int64)
    np.cumsum(count, out=offsets[1:])
    total = int(offsets[-1])
    index = np.repeat(first - offsets[:-1], count) + np.arange(total, dtype=np.int64)
    created = None if batch.created is None else batch.created[index]
    return _Points(batch.ts[index] / 1000.0, batch.values[index], offsets, created)


def _le_bounds(table: _Table) -> FloatArray:
    """The ``le`` label of every row as a float (NaN where missing or not a number)."""

    def parse(text: str | None) -> float:
        if text is None:
            return math.nan
        try:
            return float(text)
        except ValueError:
            return math.nan

    if table.columns is not None and "le" in table.columns.names:
        codes, strings = table.columns.column("le")
        parsed = np.array([parse(s) for s in strings] + [math.nan], np.float64)
        result: FloatArray = parsed[np.where(codes >= 0, codes, len(strings))]
        return result
    return np.fromiter((parse(dict(ls).get("le")) for ls in table.labels), np.float64, table.size)


def _group_sum(dense: IntArray, values: FloatArray, groups: int) -> FloatArray:
    result: FloatArray = np.bincount(dense, weights=values, minlength=groups).astype(np.float64, copy=False)
    return result


def _top(vec: _Vector, gids: IntArray, k: int, *, largest: bool) -> _Vector:
    values = vec.values
    nan = np.isnan(values)
    key = np.where(nan, 0.0, -values if largest else values)
    order = np.lexsort((key, nan, gids))
    sorted_gids = gids[order]
    starts = np.searchsorted(sorted_gids, sorted_gids, "left")
    rank = np.arange(len(order)) - starts
    chosen = order[rank < k]
    return _Vector(vec.table, vec.rows[chosen], values[chosen], ordered=True)


def _scalar_op(op: str, lhs: float, rhs: float) -> float:
    with np.errstate(all="ignore"):
        if op in COMPARISONS:
            return float(_compare(op, np.array([lhs]), np.array([rhs]))[0])
        return float(_arith(op, np.array([lhs]), np.array([rhs]))[0])


def _arith(op: str, left: FloatArray, right: FloatArray) -> FloatArray:
    if op == "+":
        return left + right
    if op == "-":
        return left - right
    if op == "*":
        return left * right
    if op == "/":
        return left / right
    if op == "%":
        result: FloatArray = np.fmod(left, right)
        return result
    if op == "^":
        return np.power(left, right)
    raise ValueError(op)  # pragma: no cover


def _compare(op: str, left: FloatArray, right: FloatArray) -> BoolArray:
    compare = _COMPARE.get(op)
    if compare is None:  # pragma: no cover - the parser admits no other operator
        raise ValueError(op)
    result: BoolArray = compare(left, right)
    return result


_COMPARE: dict[str, Callable[[FloatArray, FloatArray], Any]] = {
    "==": np.equal,
    "!=": np.not_equal,
    ">": np.greater,
    "<": np.less,
    ">=": np.greater_equal,
    "<=": np.less_equal,
}


def _elementwise(name: str, values: FloatArray, extra: Sequence[float]) -> FloatArray:
    with np.errstate(all="ignore"):
        if name == "abs":
            return np.abs(values)
        if name == "ceil":
            return np.ceil(values)
        if name == "floor":
            return np.floor(values)
        if name == "exp":
            return np.exp(values)
        if name == "sqrt":
            return np.sqrt(values)
        if name == "ln":
            return np.log(values)
        if name == "log2":
            return np.log2(values)
        if name == "log10":
            return np.log10(values)
        if name == "sgn":
            return np.sign(values)
        if name == "round":
            to_nearest = extra[0] if extra else 1.0
            inverse = 1.0 / to_nearest
            # Go's math.Floor(v*inverse+0.5)/inverse: halves round up, as Prometheus does.
            return np.floor(values * inverse + 0.5) / inverse
        if name == "clamp_min":
            return np.where(np.isnan(values), values, np.maximum(values, extra[0]))
        if name == "clamp_max":
            return np.where(np.isnan(values), values, np.minimum(values, extra[0]))
        if name == "clamp":
            low, high = extra
            if low > high:
                return _EMPTY_FLOAT[:0] if not len(values) else np.full(0, 0.0)
            return np.where(np.isnan(values), values, np.maximum(np.minimum(values, high), low))
    raise ValueError(name)  # pragma: no cover


def _match_labels(labels: Labels, on: bool, names: tuple[str, ...]) -> Labels:
    wanted = set(names)
    if on:
        return tuple(p for p in labels if p[0] in wanted)
    return tuple(p for p in labels if p[0] not in wanted and p[0] != _NAME)


def _format_labels(labels: Labels) -> str:
    inner = ", ".join(f'{name}="{value}"' for name, value in labels)
    return "{" + inner + "}"
