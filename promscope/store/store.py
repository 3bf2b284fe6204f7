"""The store: bounded history of every source promscope observes.

An :class:`Observation` (a scrape, a push, a replayed event) goes in through
:meth:`Store.ingest`; backfilled points (query files, session files) through
:meth:`Store.add_samples` / :meth:`Store.add_families`. Queries, views and the
recorder read it back through :meth:`Store.select` (a list of
:class:`SeriesView`) or :meth:`Store.select_batch` (one :class:`SeriesBatch`,
the fast path for vectorised functions over many series).

What is kept, and how it is bounded:

* **Series** are keyed by their sorted labels (``__name__`` included) *and*
  their source. Scraped and pushed sources keep their history in a
  :class:`~promscope.store.series.ColumnRing`: one column per observation,
  ``retention / interval`` columns (one hour at 5 s is 720), so a sample costs
  8 bytes. Sources whose points carry their own timestamps (remote_write, OTLP,
  StatsD, backfill) keep their series in a
  :class:`~promscope.store.series.TimeGrid` while those timestamps line up
  (one column per distinct timestamp, at most ``max_points_per_series`` of
  them, 8 bytes a point, read for all series at once). When the grid would be
  more than half empty (series at instants of their own) the source's series
  move to a :class:`~promscope.store.series.LooseSeries` each, at most
  ``max_points_per_series`` points per series, and stay there; so does a
  series that carries native histograms.
* **Limits** on series (store-wide and per source), sources and events. When
  one is hit the least recently seen go first, and :attr:`Store.dropped` counts
  what went, by :class:`DropReason`. A series whose last sample left the ring
  is expired (that is retention, not a drop).
* **Health** per source: last observation, outcome, consecutive failures, a
  short outcome history, series **churn** between observations (added,
  removed, with examples), and **cardinality** per family and per label over
  time (one point per ``cardinality_step`` seconds, ``cardinality_history``
  points).

Observations that were refused or failed (:class:`Outcome` ``rejected`` or
``failed``) store only Prometheus's scrape report series (``up``,
``scrape_duration_seconds``…) if they carry any, as Prometheus does, and do
not count towards churn.

Scraped samples are stored at the observation's time (all series of one
scrape share it); explicit sample timestamps are honoured for sources whose
points carry their own (:data:`LOOSE_KINDS`) and for backfill.

The store is not thread-safe: it lives on the event loop that feeds it.
"""

from __future__ import annotations

import enum
import functools
import math
import re
import sys
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from itertools import chain
from operator import attrgetter
from typing import Literal, Protocol

import numpy as np
import numpy.typing as npt

from promscope.model import Labels, MetricFamily, MetricType, NativeHistogram, Sample
from promscope.observation import Observation, ObservationKind, Outcome
from promscope.receive.log import PushLog
from promscope.store.series import (
    FREE_ROW,
    BoolArray,
    ColumnRing,
    FloatArray,
    IntArray,
    LooseSeries,
    SeriesBatch,
    SeriesView,
    TimeGrid,
    is_absent,
)

__all__ = [
    "LOOSE_KINDS",
    "SCRAPE_REPORT_SERIES",
    "Cardinality",
    "ChurnPoint",
    "DropCounts",
    "DropReason",
    "EventLog",
    "FamilyMeta",
    "Matcher",
    "MatcherLike",
    "SourceHealth",
    "Store",
    "StoreLimits",
    "StoreStats",
]

LOOSE_KINDS: frozenset[ObservationKind] = frozenset(
    {ObservationKind.REMOTE_WRITE, ObservationKind.OTLP, ObservationKind.STATSD}
)
"""Observation kinds whose samples are stored per series at their own timestamps."""

SCRAPE_REPORT_SERIES: frozenset[str] = frozenset(
    {
        "up",
        "scrape_duration_seconds",
        "scrape_samples_scraped",
        "scrape_samples_post_metric_relabeling",
        "scrape_series_added",
        "scrape_timeout_seconds",
        "scrape_sample_limit",
        "scrape_body_size_bytes",
    }
)
"""Families stored even from a failed or refused observation (Prometheus's report series)."""

_CREATED_OWNERS = frozenset({MetricType.COUNTER, MetricType.HISTOGRAM, MetricType.SUMMARY})
_SAMPLES = attrgetter("samples")
_NAME = attrgetter("name")
_LABELS = attrgetter("labels")
_VALUE = attrgetter("value")
_HISTOGRAM = attrgetter("native_histogram")
_SUFFIXES = ("_total", "_created", "_bucket", "_count", "_sum", "_gcount", "_gsum", "_info")


# -- configuration and reports ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StoreLimits:
    """How much the store keeps. Every limit is hard; what goes over it is counted in :class:`DropCounts`."""

    retention: float = 3600.0
    """Seconds of history per series (ring size = retention / the source's interval)."""
    default_interval: float = 5.0
    """A source's interval until :meth:`Store.set_interval` or its first observations say otherwise."""
    max_points_per_series: int = 20_000
    """Ceiling on a ring's columns and on the points of a series with explicit timestamps."""
    min_points_per_series: int = 2
    grid: bool = True
    """Keep series with their own timestamps in a shared-timestamp grid while they line up (read all at once).

    False keeps one loose series each from the start (the per-series layout, for comparison)."""
    max_series: int = 1_000_000
    max_series_per_source: int = 200_000
    max_sources: int = 10_000
    max_events: int = 10_000
    cardinality_step: float = 15.0
    """Seconds between two cardinality history points."""
    cardinality_history: int = 240
    churn_history: int = 240
    health_history: int = 120
    churn_examples: int = 10
    """Series named per churn point (added and removed each)."""

    def capacity(self, interval: float) -> int:
        """Ring columns for a source observed every ``interval`` seconds."""
        if not interval > 0 or math.isinf(interval):
            interval = self.default_interval
        wanted = math.ceil(self.retention / interval - 1e-9)
        return max(self.min_points_per_series, min(self.max_points_per_series, wanted))


class DropReason(enum.StrEnum):
    """Why the store let go of something before its time. The unit is given per reason."""

    SERIES_LIMIT = "series_limit"
    """Series evicted, least recently seen first, because the store-wide series limit was reached."""
    SOURCE_SERIES_LIMIT = "source_series_limit"
    """Series evicted, least recently seen first, because their source's series limit was reached."""
    SERIES_REFUSED = "series_refused"
    """New series not stored: one observation alone carried more than its source's limit."""
    SOURCE_LIMIT = "source_limit"
    """Sources evicted (with all their series), least recently seen first, at ``max_sources``."""
    EVENT_LIMIT = "event_limit"
    """Events evicted from the event log, oldest first."""
    POINT_LIMIT = "point_limit"
    """Points of a series with explicit timestamps evicted, oldest first, at ``max_points_per_series``."""
    OUT_OF_ORDER = "out_of_order"
    """Samples of an observation not newer than the source's newest one."""
    DUPLICATE = "duplicate"
    """Samples of a series already present in the same observation (the first is kept)."""
    INVALID = "invalid"
    """Backfill points without a metric name, and points whose own timestamp is NaN."""


@dataclass(frozen=True, slots=True)
class DropCounts:
    """What the store dropped so far, by reason (missing reasons are 0)."""

    by_reason: Mapping[DropReason, int] = field(default_factory=dict)

    def __getitem__(self, reason: DropReason | str) -> int:
        return self.by_reason.get(DropReason(reason), 0)

    @property
    def total(self) -> int:
        return sum(self.by_reason.values())

    def as_dict(self) -> dict[str, int]:
        return {str(reason): count for reason, count in self.by_reason.items() if count}


@dataclass(frozen=True, slots=True)
class ChurnPoint:
    """Series churn of one source between two accepted observations."""

    time: float
    added: int
    removed: int
    series: int
    """Series present in the newer observation."""
    added_examples: tuple[Labels, ...] = ()
    removed_examples: tuple[Labels, ...] = ()


@dataclass(frozen=True, slots=True)
class SourceHealth:
    """One source as the store saw it."""

    source: str
    kind: ObservationKind | None
    """None for backfilled data (:meth:`Store.add_samples`)."""
    first_seen: float
    last_seen: float
    last_outcome: Outcome | None
    last_message: str
    last_success: float | None
    consecutive_failures: int
    observations: int
    outcomes: Mapping[str, int]
    series: int
    samples: int
    interval: float | None
    """Seconds between observations: set, inferred from the first gaps, or None."""
    last_churn: ChurnPoint | None
    history: tuple[tuple[float, Outcome], ...]
    """Recent ``(time, outcome)`` pairs, oldest first."""


@dataclass(frozen=True, slots=True)
class FamilyMeta:
    """What ``# TYPE``/``# HELP``/``# UNIT`` last said about a family."""

    type: MetricType
    help: str | None
    unit: str | None


@dataclass(frozen=True, slots=True)
class Cardinality:
    """Current cardinality: series per family, distinct values per label name (all families)."""

    families: Mapping[str, int]
    labels: Mapping[str, int]


@dataclass(frozen=True, slots=True)
class StoreStats:
    series: int
    samples: int
    sources: int
    families: int
    memory_bytes: int
    expired_series: int
    dropped: DropCounts


# -- matchers ---------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1024)
def _compile(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, re.DOTALL)


@dataclass(frozen=True, slots=True)
class Matcher:
    """A label matcher as PromQL writes it; regexes are fully anchored. A missing label matches as ``""``."""

    name: str
    op: Literal["=", "!=", "=~", "!~"]
    value: str

    def __post_init__(self) -> None:
        if self.op not in ("=", "!=", "=~", "!~"):
            raise ValueError(f"unknown matcher operator {self.op!r}")
        if self.op in ("=~", "!~"):
            _compile(self.value)  # raises re.error with the position for a bad regex

    def matches(self, value: str) -> bool:
        if self.op == "=":
            return value == self.value
        if self.op == "!=":
            return value != self.value
        found = _compile(self.value).fullmatch(value) is not None
        return found if self.op == "=~" else not found


class MatcherLike(Protocol):
    """What :meth:`Store.select` needs of a matcher (:class:`Matcher`, or the query engine's own)."""

    @property
    def name(self) -> str: ...
    @property
    def op(self) -> str: ...
    @property
    def value(self) -> str: ...
    def matches(self, value: str) -> bool: ...


# -- event log --------------------------------------------------------------------------------------------


class EventLog(Protocol):
    """Where the store keeps its events: a bounded ObservationSink that lists what it holds.

    The default is :class:`~promscope.receive.log.PushLog` (per-sender and
    per-source stats, "who went silent"); its ``dropped.events`` is reported as
    :attr:`DropReason.EVENT_LIMIT`.
    """

    def __call__(self, observation: Observation) -> None: ...

    def events(self) -> Sequence[Observation]: ...


# -- internals --------------------------------------------------------------------------------------------


class _Series:
    __slots__ = ("family", "histograms", "input_key", "labels", "loose", "name", "row", "source")

    def __init__(
        self,
        labels: Labels,
        name: str,
        family: str,
        source: _Source,
        input_key: tuple[str, Labels],
        row: int,
        loose: LooseSeries | None,
    ) -> None:
        self.labels = labels
        self.name = name
        self.family = family
        self.source = source
        self.input_key = input_key
        self.row = row
        self.loose = loose
        self.histograms: deque[tuple[float, NativeHistogram]] | None = None


class _Shape:
    """Where the samples of a source's last column observation went, to write the next one alike.

    ``names`` and ``labels`` are the observation's sample names and labels in order; ``rows``
    the rows their values went to after dropping duplicates (``pick``: the samples kept, None
    when there was none to drop; ``duplicates``: how many were dropped). Valid while the
    source's ``generation`` is ``generation``: no series of it was registered or unregistered since.
    """

    __slots__ = ("duplicates", "generation", "labels", "names", "pick", "rows")

    def __init__(
        self,
        generation: int,
        names: tuple[str, ...],
        labels: tuple[Labels, ...],
        rows: IntArray,
        pick: IntArray | None,
        duplicates: int,
    ) -> None:
        self.generation = generation
        self.names = names
        self.labels = labels
        self.rows = rows
        self.pick = pick
        self.duplicates = duplicates


class _Source:
    __slots__ = (
        "by_input",
        "by_key",
        "churn",
        "consecutive_failures",
        "first_seen",
        "gaps",
        "generation",
        "grid",
        "gridded",
        "history",
        "interval",
        "interval_set",
        "kind",
        "last_churn",
        "last_message",
        "last_outcome",
        "last_seen",
        "last_success",
        "last_sweep",
        "loose",
        "name",
        "observations",
        "outcomes",
        "present",
        "present_count",
        "ring",
        "rows",
        "series",
        "shape",
    )

    def __init__(self, name: str, kind: ObservationKind | None, loose: bool, now: float, limits: StoreLimits):
        self.name = name
        self.kind = kind
        self.loose = loose
        self.ring: ColumnRing | None = None
        self.grid: TimeGrid | None = None
        """The loose series whose timestamps line up (``_Series.row`` is their row)."""
        self.gridded = loose and limits.grid
        """False once the grid was dissolved: every new series of the source is loose."""
        self.rows: list[_Series | None] = []
        self.by_input: dict[tuple[str, Labels], _Series] = {}
        self.by_key: dict[Labels, _Series] = {}
        self.series = 0
        self.generation = 0
        """Bumped whenever a series of the source is registered or unregistered (``shape`` is then stale)."""
        self.shape: _Shape | None = None
        self.present: BoolArray = np.zeros(0, bool)
        self.present_count = 0
        self.interval: float | None = None
        self.interval_set = False
        self.gaps: list[float] = []
        self.first_seen = now
        self.last_seen = now
        self.last_outcome: Outcome | None = None
        self.last_message = ""
        self.last_success: float | None = None
        self.consecutive_failures = 0
        self.observations = 0
        self.outcomes: Counter[str] = Counter()
        self.history: deque[tuple[float, Outcome]] = deque(maxlen=limits.health_history)
        self.churn: deque[ChurnPoint] = deque(maxlen=limits.churn_history)
        self.last_churn: ChurnPoint | None = None
        self.last_sweep = now


class _CountHistory:
    """Counts per key over time: one shared time ring, an int32 ring per key."""

    def __init__(self, size: int) -> None:
        self.size = max(1, size)
        self.times: FloatArray = np.full(self.size, np.nan)
        self.seq = 0
        self.counts: dict[str, npt.NDArray[np.int32]] = {}

    def record(self, when: float, counts: Mapping[str, int]) -> None:
        col = self.seq % self.size
        self.times[col] = when
        self.seq += 1
        for key in list(self.counts):
            if key not in counts:
                ring = self.counts[key]
                ring[col] = 0
                if not ring.any():
                    del self.counts[key]
        for key, count in counts.items():
            found = self.counts.get(key)
            if found is None:
                found = self.counts[key] = np.zeros(self.size, np.int32)
            found[col] = count

    def series(self, key: str) -> list[tuple[float, int]]:
        ring = self.counts.get(key)
        n = min(self.seq, self.size)
        cols = np.arange(self.seq - n, self.seq) % self.size
        if ring is None:
            return [(float(t), 0) for t in self.times[cols]]
        return [(float(t), int(c)) for t, c in zip(self.times[cols], ring[cols], strict=True)]

    def nbytes(self) -> int:
        return int(self.times.nbytes + sum(a.nbytes for a in self.counts.values()))


def _family_of_name(name: str) -> str:
    for suffix in _SUFFIXES:
        if name.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return name


def _full_labels(name: str, labels: Labels) -> Labels:
    return tuple(sorted((("__name__", name), *labels)))


def _label(labels: Labels, name: str) -> str:
    for key, value in labels:
        if key == name:
            return value
    return ""


# -- the store --------------------------------------------------------------------------------------------


class Store:
    """Bounded history of series, sources and events; an :data:`~promscope.observation.ObservationSink`.

    ::

        store = Store(StoreLimits(retention=3600))
        loop = ScrapeLoop(..., sink=store.ingest)
        views = store.select([Matcher("__name__", "=", "up")], now - 300, now)
    """

    def __init__(
        self,
        limits: StoreLimits | None = None,
        clock: Callable[[], float] = time.time,
        event_log: EventLog | None = None,
    ) -> None:
        self.limits = limits or StoreLimits()
        self._clock = clock
        self._events: EventLog = (
            event_log
            if event_log is not None
            else PushLog(
                max_events=max(1, self.limits.max_events), max_senders=self.limits.max_sources, clock=clock
            )
        )
        self._sources: dict[str, _Source] = {}
        self._by_name: dict[str, set[_Series]] = {}
        self._series_count = 0
        self._meta: dict[str, FamilyMeta] = {}
        self._family_of: dict[str, str] = {}
        self._family_series: Counter[str] = Counter()
        self._created_families: Counter[str] = Counter()
        self._label_values: dict[str, Counter[str]] = {}
        self._family_labels: dict[str, dict[str, Counter[str]]] = {}
        self._drops: Counter[DropReason] = Counter()
        self._expired = 0
        self._family_history = _CountHistory(self.limits.cardinality_history)
        self._label_history = _CountHistory(self.limits.cardinality_history)
        self._last_snapshot = -math.inf

    # -- writing --------------------------------------------------------------------------------------------

    def __call__(self, observation: Observation) -> None:
        self.ingest(observation)

    def ingest(self, observation: Observation) -> None:
        """Take one observation: its samples, its health facts and an event. O(samples), no I/O."""
        now = observation.time
        source = self._source(observation.source, observation.kind, now)
        accepted = observation.outcome in (Outcome.ACCEPTED, Outcome.PARTIAL)
        self._note_health(source, observation, accepted)
        families = observation.families
        if not accepted:
            families = tuple(f for f in families if f.name in SCRAPE_REPORT_SERIES)
        if families:
            if source.loose:
                self._ingest_loose(source, families, now)
            else:
                self._ingest_columns(source, families, now, accepted, observation)
        if observation.families:
            observation = replace(observation, families=())
        self._log(observation)
        self._maybe_snapshot(now)

    def add_samples(
        self,
        source: str,
        samples: Iterable[tuple[Labels | Mapping[str, str], float, float]],
    ) -> int:
        """Backfill ``(labels with __name__, timestamp seconds, value)`` points as they are; return the count.

        Points keep their own timestamps and are loaded even where a counter
        goes down or times arrive out of order (they are sorted on read; for
        one timestamp the last point wins). A point without ``__name__`` is
        counted as :attr:`DropReason.INVALID`.
        """
        now = self._clock()
        src = self._source(source, None, now)
        stored = 0
        for labels, timestamp, value in samples:
            pairs = tuple(labels.items()) if isinstance(labels, Mapping) else tuple(labels)
            name = _label(pairs, "__name__")
            if not name:
                self._drops[DropReason.INVALID] += 1
                continue
            rest = tuple(p for p in pairs if p[0] != "__name__")
            series = self._loose_series(src, name, rest, None)
            if series is None:
                continue
            self._put(src, series, float(timestamp), float(value), None)
            stored += 1
        src.last_seen = max(src.last_seen, now)
        self._maybe_snapshot(now)
        return stored

    def add_families(
        self, source: str, families: Iterable[MetricFamily], default_time: float | None = None
    ) -> int:
        """Backfill parsed families (an exposition file): sample timestamps, else ``default_time`` (else now).

        Family metadata (type, help, unit) is kept as :meth:`metadata` reports it.
        """
        now = self._clock()
        when = now if default_time is None else default_time
        src = self._source(source, None, now)
        stored = 0
        for family in families:
            self._note_family(family)
            for sample in family.samples:
                series = self._loose_series(src, sample.name, sample.labels, family.name)
                if series is None:
                    continue
                ts = when if sample.timestamp is None else sample.timestamp
                self._put(src, series, ts, sample.value, sample.native_histogram)
                stored += 1
        self._maybe_snapshot(now)
        return stored

    def set_interval(self, source: str, interval: float) -> None:
        """Tell the store how often ``source`` is observed (sizes its ring: retention / interval)."""
        if not interval > 0:
            raise ValueError("interval must be positive")
        src = self._sources.get(source)
        if src is None:
            src = self._source(source, ObservationKind.SCRAPE, self._clock())
        src.interval = interval
        src.interval_set = True
        if src.ring is not None:
            self._resize(src, self.limits.capacity(interval))

    def set_metadata(
        self, family: str, type: MetricType, help: str | None = None, unit: str | None = None
    ) -> None:
        """Record a family's metadata (for backfill that carries it separately)."""
        self._meta[family] = FamilyMeta(type, help, unit)

    def remove_source(self, source: str) -> bool:
        """Forget a source and all its series (e.g. a target removed from the config)."""
        src = self._sources.pop(source, None)
        if src is None:
            return False
        self._drop_all_series(src)
        return True

    # -- reading --------------------------------------------------------------------------------------------

    def select(
        self, matchers: Sequence[MatcherLike], start: float, end: float, *, left_open: bool = False
    ) -> list[SeriesView]:
        """Series matching every matcher, with points in ``[start, end]`` (``(start, end]`` if left_open).

        Series without a point in the window are left out. The order is
        stable but unspecified (grouped by source); sort if it matters.
        """
        return self.select_batch(matchers, start, end, left_open=left_open).views()

    def select_batch(
        self, matchers: Sequence[MatcherLike], start: float, end: float, *, left_open: bool = False
    ) -> SeriesBatch:
        """Like :meth:`select`, as one :class:`SeriesBatch` (flat arrays): the fast path for many series."""
        matched = self._match(matchers)
        if not matched:
            return SeriesBatch.empty()
        by_source: dict[int, list[_Series]] = {}
        sources: dict[int, _Source] = {}
        for series in matched:
            key = id(series.source)
            sources[key] = series.source
            by_source.setdefault(key, []).append(series)
        pieces: list[_Piece] = []
        for key, group in by_source.items():
            src = sources[key]
            if src.loose and src.grid is None:
                pieces.append(self._read_loose(src, group, start, end, left_open))
                continue
            columnar = [s for s in group if s.loose is None]
            if len(columnar) < len(group):
                loose = [s for s in group if s.loose is not None]
                pieces.append(self._read_loose(src, loose, start, end, left_open))
            if columnar:
                pieces.append(self._read_columns(src, columnar, start, end, left_open))
        return _assemble(pieces)

    def label_sets(self, matchers: Sequence[MatcherLike]) -> list[Labels]:
        """Label sets of the series matching ``matchers`` (no points read), sorted."""
        return sorted(s.labels for s in self._match(matchers))

    def names(self) -> list[str]:
        """Metric (sample) names held, sorted."""
        return sorted(self._by_name)

    def series_count(self) -> int:
        return self._series_count

    def sample_count(self) -> int:
        """Samples held (points of every series, within their rings)."""
        total = 0
        for src in self._sources.values():
            if src.ring is not None:
                total += src.ring.samples
            if src.grid is not None:
                total += src.grid.samples
            for series in src.by_key.values():
                if series.loose is not None:
                    total += len(series.loose)
        return total

    def memory_bytes(self) -> int:
        """Bytes held: sample arrays exactly, the index (labels, maps) as an estimate from a sample of it."""
        arrays = self._family_history.nbytes() + self._label_history.nbytes()
        for src in self._sources.values():
            if src.ring is not None:
                arrays += src.ring.nbytes() + src.present.nbytes + sys.getsizeof(src.rows)
            if src.grid is not None:
                arrays += src.grid.nbytes() + sys.getsizeof(src.rows)
            for series in src.by_key.values():
                if series.loose is not None:
                    arrays += series.loose.nbytes()
        return arrays + self._series_count * self._index_bytes_per_series()

    @property
    def dropped(self) -> DropCounts:
        counts = Counter(self._drops)
        log_drops = getattr(self._events, "dropped", 0)
        events = log_drops if isinstance(log_drops, int) else getattr(log_drops, "events", 0)
        if isinstance(events, int) and events:
            counts[DropReason.EVENT_LIMIT] += events
        return DropCounts(dict(counts))

    @property
    def event_log(self) -> EventLog:
        """The event log itself (a :class:`~promscope.receive.log.PushLog` unless one was given)."""
        return self._events

    def stats(self) -> StoreStats:
        return StoreStats(
            series=self._series_count,
            samples=self.sample_count(),
            sources=len(self._sources),
            families=len(self._family_series),
            memory_bytes=self.memory_bytes(),
            expired_series=self._expired,
            dropped=self.dropped,
        )

    def sources(self) -> list[SourceHealth]:
        """Every source's health, by name."""
        return [self._health(src) for _, src in sorted(self._sources.items())]

    def source(self, name: str) -> SourceHealth | None:
        src = self._sources.get(name)
        return None if src is None else self._health(src)

    def churn(self, source: str) -> list[ChurnPoint]:
        """Churn points of ``source``, oldest first (bounded by ``churn_history``)."""
        src = self._sources.get(source)
        return [] if src is None else list(src.churn)

    def events(self, source: str | None = None) -> list[Observation]:
        """Events in the log (observations without their families), oldest first."""
        events = self._events.events()
        return [e for e in events if source is None or e.source == source]

    def families(self) -> dict[str, FamilyMeta]:
        """Metadata of every family with series held (or set explicitly), by family name."""
        return dict(sorted(self._meta.items()))

    def metadata(self, name: str) -> FamilyMeta | None:
        """Metadata for a family name or one of its sample names (``foo_bucket`` -> ``foo``)."""
        meta = self._meta.get(name)
        if meta is not None:
            return meta
        family = self._family_of.get(name)
        if family is not None:
            return self._meta.get(family)
        return self._meta.get(_family_of_name(name))

    def cardinality(self) -> Cardinality:
        return Cardinality(
            families=dict(self._family_series),
            labels={name: len(values) for name, values in self._label_values.items()},
        )

    def family_label_cardinality(self, family: str) -> dict[str, int]:
        """Distinct values per label name within one family."""
        labels = self._family_labels.get(family, {})
        return {name: len(values) for name, values in sorted(labels.items())}

    def cardinality_history(
        self, *, family: str | None = None, label: str | None = None
    ) -> list[tuple[float, int]]:
        """``(time, count)`` points, oldest first: series of ``family``, or distinct values of ``label``."""
        if (family is None) == (label is None):
            raise ValueError("give exactly one of family= or label=")
        if family is not None:
            return self._family_history.series(family)
        assert label is not None
        return self._label_history.series(label)

    # -- ingest internals -----------------------------------------------------------------------------------

    def _source(self, name: str, kind: ObservationKind | None, now: float) -> _Source:
        src = self._sources.get(name)
        if src is not None:
            return src
        if len(self._sources) >= self.limits.max_sources:
            oldest = min(self._sources.values(), key=lambda s: s.last_seen)
            del self._sources[oldest.name]
            self._drop_all_series(oldest)
            self._drops[DropReason.SOURCE_LIMIT] += 1
        loose = kind is None or kind in LOOSE_KINDS
        src = self._sources[name] = _Source(name, kind, loose, now, self.limits)
        return src

    def _note_health(self, src: _Source, obs: Observation, accepted: bool) -> None:
        if src.observations and obs.time > src.last_seen and not src.interval_set and len(src.gaps) < 5:
            src.gaps.append(obs.time - src.last_seen)
        src.observations += 1
        src.last_seen = max(src.last_seen, obs.time)
        src.last_outcome = obs.outcome
        src.last_message = obs.message
        src.outcomes[str(obs.outcome)] += 1
        src.history.append((obs.time, obs.outcome))
        if accepted:
            src.last_success = obs.time
            src.consecutive_failures = 0
        else:
            src.consecutive_failures += 1

    def _note_family(self, family: MetricFamily) -> None:
        meta = self._meta.get(family.name)
        if meta is None or (meta.type, meta.help, meta.unit) != (family.type, family.help, family.unit):
            self._meta[family.name] = FamilyMeta(family.type, family.help, family.unit)

    def _ingest_columns(
        self,
        src: _Source,
        families: Sequence[MetricFamily],
        now: float,
        accepted: bool,
        obs: Observation,
    ) -> None:
        ring = src.ring
        if ring is None:
            ring = src.ring = ColumnRing(self.limits.capacity(src.interval or self.limits.default_interval))
        self._infer_interval(src)
        ring = src.ring
        assert ring is not None
        if now <= ring.last_time:
            self._drops[DropReason.OUT_OF_ORDER] += sum(len(f.samples) for f in families)
            return
        flat = list(chain.from_iterable(map(_SAMPLES, families)))
        names = tuple(map(_NAME, flat))
        labels = tuple(map(_LABELS, flat))
        plain = list(map(_HISTOGRAM, flat)).count(None) == len(flat)
        shape = src.shape
        if (
            plain
            and shape is not None
            and shape.generation == src.generation
            and shape.names == names
            and shape.labels == labels
        ):
            # The same series as the last observation, and none came or went since: the same rows.
            for family in families:
                self._note_family(family)
            vals = np.fromiter(map(_VALUE, flat), np.float64, len(flat))
            if shape.pick is not None:
                vals = vals[shape.pick]
                self._drops[DropReason.DUPLICATE] += shape.duplicates
            self._write_column(src, ring, now, shape.rows, vals, [], accepted, obs)
            return
        rows: list[int] = []
        values: list[float] = []
        new: list[tuple[MetricFamily, Sample]] = []
        histograms: list[tuple[_Series, NativeHistogram]] = []
        get = src.by_input.get
        for family in families:
            self._note_family(family)
            for sample in family.samples:
                series = get((sample.name, sample.labels))
                if series is None:
                    series = src.by_key.get(_full_labels(sample.name, sample.labels))
                    if series is None:
                        new.append((family, sample))
                        continue
                rows.append(series.row)
                values.append(sample.value)
                if sample.native_histogram is not None:
                    histograms.append((series, sample.native_histogram))
        existing = np.fromiter(rows, np.int64, len(rows))
        vals = np.fromiter(values, np.float64, len(values))
        pick = self._dedupe_index(existing)
        if pick is not None:
            self._drops[DropReason.DUPLICATE] += len(existing) - len(pick)
            existing, vals = existing[pick], vals[pick]
        if plain and not new:
            src.shape = _Shape(
                src.generation, names, labels, existing, pick, 0 if pick is None else len(rows) - len(pick)
            )
        # Protect this observation's rows from eviction while making room for new series.
        ring.last_seq[existing] = ring.seq
        if new:
            new_rows, new_vals, new_hists = self._admit_columns(src, ring, new)
            existing = np.concatenate([existing, new_rows])
            vals = np.concatenate([vals, new_vals])
            histograms.extend(new_hists)
            existing, vals = self._dedupe(existing, vals)
        self._write_column(src, ring, now, existing, vals, histograms, accepted, obs)

    def _write_column(
        self,
        src: _Source,
        ring: ColumnRing,
        now: float,
        existing: IntArray,
        vals: FloatArray,
        histograms: list[tuple[_Series, NativeHistogram]],
        accepted: bool,
        obs: Observation,
    ) -> None:
        col = ring.begin_column(now)
        ring.write(col, existing, vals)
        for series, histogram in histograms:
            if series.histograms is None:
                series.histograms = deque(maxlen=ring.capacity)
            series.histograms.append((now, histogram))
        if accepted:
            self._churn(src, existing, now, obs)
        if ring.seq % max(1, ring.capacity // 8) == 0:
            self._sweep(src)

    def _dedupe(self, rows: IntArray, vals: FloatArray) -> tuple[IntArray, FloatArray]:
        first = self._dedupe_index(rows)
        if first is None:
            return rows, vals
        self._drops[DropReason.DUPLICATE] += len(rows) - len(first)
        return rows[first], vals[first]

    @staticmethod
    def _dedupe_index(rows: IntArray) -> IntArray | None:
        """The positions of each row's first occurrence, in order; None when no row repeats."""
        if len(rows) < 2:
            return None
        counts = np.bincount(rows)
        if counts.max() <= 1:
            return None
        _, first = np.unique(rows, return_index=True)
        first.sort()
        return first

    def _admit_columns(
        self, src: _Source, ring: ColumnRing, new: list[tuple[MetricFamily, Sample]]
    ) -> tuple[IntArray, FloatArray, list[tuple[_Series, NativeHistogram]]]:
        # One new series per distinct key (duplicates within the observation are counted by _dedupe later).
        unique: dict[Labels, tuple[MetricFamily, Sample]] = {}
        extra: list[tuple[Labels, float]] = []
        for family, sample in new:
            key = _full_labels(sample.name, sample.labels)
            if key in unique:
                extra.append((key, sample.value))
            else:
                unique[key] = (family, sample)
        wanted = len(unique)
        allowed = self._make_room(src, wanted, protect_from=ring.seq)
        if allowed < wanted:
            self._drops[DropReason.SERIES_REFUSED] += wanted - allowed
        items = list(unique.items())[:allowed]
        rows = ring.allocate(len(items))
        if ring.rows > len(src.rows):
            src.rows.extend([None] * (ring.rows - len(src.rows)))
            present = np.zeros(ring.rows, bool)
            present[: len(src.present)] = src.present
            src.present = present
        ring.last_seq[rows] = ring.seq
        out_vals = np.empty(len(items), np.float64)
        hists: list[tuple[_Series, NativeHistogram]] = []
        made: dict[Labels, _Series] = {}
        for i, (key, (family, sample)) in enumerate(items):
            series = self._register(src, key, sample.name, family.name, (sample.name, sample.labels))
            series.row = int(rows[i])
            src.rows[series.row] = series
            out_vals[i] = sample.value
            made[key] = series
            if sample.native_histogram is not None:
                hists.append((series, sample.native_histogram))
        if extra:
            extra_rows = [made[k].row for k, _ in extra if k in made]
            extra_vals = [v for k, v in extra if k in made]
            rows = np.concatenate([rows, np.asarray(extra_rows, np.int64)])
            out_vals = np.concatenate([out_vals, np.asarray(extra_vals, np.float64)])
        return rows, out_vals, hists

    def _ingest_loose(self, src: _Source, families: Sequence[MetricFamily], now: float) -> None:
        for family in families:
            self._note_family(family)
            for sample in family.samples:
                series = src.by_input.get((sample.name, sample.labels))
                if series is None:
                    series = self._loose_series(src, sample.name, sample.labels, family.name)
                if series is None:
                    continue
                ts = now if sample.timestamp is None else sample.timestamp
                self._put(src, series, ts, sample.value, sample.native_histogram)
        if now - src.last_sweep >= min(60.0, self.limits.retention):
            src.last_sweep = now
            horizon = now - self.limits.retention
            stale = [s for s in src.by_key.values() if s.loose is not None and s.loose.last_time < horizon]
            grid = src.grid
            if grid is not None:
                rows = grid.rows_in_use()
                stale.extend(
                    series
                    for row in rows[grid.row_last[rows] < horizon].tolist()
                    if (series := src.rows[row]) is not None
                )
            for series in stale:
                self._unregister(series)
                self._expired += 1

    def _put(
        self, src: _Source, series: _Series, ts: float, value: float, histogram: NativeHistogram | None
    ) -> None:
        """Store one point of a series with its own timestamps, in the grid while it lines up."""
        if ts != ts:
            self._drops[DropReason.INVALID] += 1
            return
        grid = src.grid
        if series.loose is None and grid is not None:
            if histogram is None:
                col = grid.column(ts)
                if col < 0 and not grid.sparse(extra_columns=1):
                    col, dropped = grid.add_column(ts)
                    if col < 0:
                        dropped += 1  # older than every column kept: this point is the oldest
                    if dropped:
                        self._drops[DropReason.POINT_LIMIT] += dropped
                    if col < 0:
                        return
                if col >= 0:
                    grid.put(series.row, col, ts, value)
                    return
                # A new timestamp would leave the grid mostly empty: these series do not line up.
                self._dissolve(src)
            else:
                self._demote(src, series)
        loose = series.loose
        assert loose is not None
        self._drops[DropReason.POINT_LIMIT] += loose.append(ts, value)
        if histogram is not None:
            loose.add_histogram(ts, histogram)

    def _demote(self, src: _Source, series: _Series) -> None:
        """Move a series out of its source's grid into a loose series of its own."""
        grid = src.grid
        assert grid is not None and series.row >= 0
        ts, vs = grid.row_points(series.row)
        series.loose = LooseSeries.from_points(self.limits.max_points_per_series, ts, vs)
        src.rows[series.row] = None
        grid.release(series.row)
        series.row = -1
        src.generation += 1

    def _dissolve(self, src: _Source) -> None:
        """Move every series of the source's grid to loose series; the source stays loose from now on."""
        grid = src.grid
        if grid is not None:
            for row in grid.rows_in_use().tolist():
                series = src.rows[row]
                if series is not None:
                    self._demote(src, series)
        src.grid = None
        src.gridded = False
        src.rows = []

    def _loose_series(self, src: _Source, name: str, labels: Labels, family: str | None) -> _Series | None:
        key = _full_labels(name, labels)
        series = src.by_key.get(key)
        if series is not None:
            return series
        if self._make_room(src, 1, protect_from=None) < 1:
            self._drops[DropReason.SERIES_REFUSED] += 1
            return None
        family_name = family or self._family_of.get(name) or name
        series = self._register(src, key, name, family_name, (name, labels))
        if src.gridded:
            grid = src.grid
            if grid is None:
                grid = src.grid = TimeGrid(self.limits.max_points_per_series)
            # A new row that would leave the grid mostly empty goes loose on its own.
            if not grid.sparse(extra_rows=1):
                series.row = grid.allocate()
                if grid.rows > len(src.rows):
                    src.rows.extend([None] * (grid.rows - len(src.rows)))
                src.rows[series.row] = series
                return series
        series.loose = LooseSeries(self.limits.max_points_per_series)
        return series

    def _register(
        self, src: _Source, key: Labels, name: str, family: str, input_key: tuple[str, Labels]
    ) -> _Series:
        series = _Series(key, name, family, src, input_key, -1, None)
        src.by_key[key] = series
        src.generation += 1
        src.by_input.setdefault(input_key, series)
        src.series += 1
        self._series_count += 1
        names = self._by_name.get(name)
        if names is None:
            names = self._by_name[name] = set()
        names.add(series)
        self._family_of.setdefault(name, family)
        self._family_series[family] += 1
        family_labels = self._family_labels.get(family)
        if family_labels is None:
            family_labels = self._family_labels[family] = {}
        for label, value in key:
            if label == "__name__":
                continue
            values = self._label_values.get(label)
            if values is None:
                values = self._label_values[label] = Counter()
            values[value] += 1
            fvalues = family_labels.get(label)
            if fvalues is None:
                fvalues = family_labels[label] = Counter()
            fvalues[value] += 1
        if name == family + "_created":
            self._created_families[family] += 1
        return series

    def _unregister(self, series: _Series) -> None:
        src = series.source
        if src.by_key.pop(series.labels, None) is None:
            return
        src.generation += 1
        if src.by_input.get(series.input_key) is series:
            del src.by_input[series.input_key]
        src.series -= 1
        self._series_count -= 1
        names = self._by_name.get(series.name)
        if names is not None:
            names.discard(series)
            if not names:
                del self._by_name[series.name]
                self._family_of.pop(series.name, None)
        family = series.family
        self._family_series[family] -= 1
        if self._family_series[family] <= 0:
            del self._family_series[family]
            self._meta.pop(family, None)
        family_labels = self._family_labels.get(family, {})
        for label, value in series.labels:
            if label == "__name__":
                continue
            for counter_map, owner in ((self._label_values, None), (family_labels, family)):
                values = counter_map.get(label)
                if values is None:
                    continue
                values[value] -= 1
                if values[value] <= 0:
                    del values[value]
                    if not values:
                        del counter_map[label]
                        if owner is not None and not family_labels:
                            self._family_labels.pop(owner, None)
        if series.name == family + "_created":
            self._created_families[family] -= 1
            if self._created_families[family] <= 0:
                del self._created_families[family]
        if series.row >= 0 and src.ring is not None:
            src.rows[series.row] = None
            if src.present[series.row]:
                src.present[series.row] = False
                src.present_count -= 1
            src.ring.release(np.asarray([series.row], np.int64))
            series.row = -1
        elif series.row >= 0 and src.grid is not None:
            src.rows[series.row] = None
            src.grid.release(series.row)
            series.row = -1

    def _drop_all_series(self, src: _Source) -> None:
        for series in list(src.by_key.values()):
            self._unregister(series)

    def _make_room(self, src: _Source, wanted: int, protect_from: int | None) -> int:
        """Evict least recently seen series so ``wanted`` new ones fit; return how many fit."""
        limits = self.limits
        over = src.series + wanted - limits.max_series_per_source
        if over > 0:
            evicted = self._evict(over, DropReason.SOURCE_SERIES_LIMIT, [src], protect_from, src)
            wanted -= max(0, over - evicted)
        over = self._series_count + wanted - limits.max_series
        if over > 0:
            everyone = list(self._sources.values())
            evicted = self._evict(over, DropReason.SERIES_LIMIT, everyone, protect_from, src)
            wanted -= max(0, over - evicted)
        return max(0, wanted)

    def _evict(
        self,
        count: int,
        reason: DropReason,
        sources: list[_Source],
        protect_from: int | None,
        current: _Source,
    ) -> int:
        """Evict up to ``count`` series of ``sources``, least recently seen first; return how many went."""
        times: list[FloatArray] = []
        owners: list[tuple[_Source, IntArray | list[_Series]]] = []
        for src in sources:
            ring = src.ring
            if ring is not None and ring.used_rows:
                live = ring.last_seq != FREE_ROW
                if src is current and protect_from is not None:
                    live &= ring.last_seq < protect_from
                rows = np.flatnonzero(live)
                if len(rows):
                    last = ring.last_seq[rows]
                    in_ring = last > ring.seq - 1 - ring.capacity
                    seen = np.where(in_ring, ring.times[np.maximum(last, 0) % ring.capacity], -np.inf)
                    times.append(seen)
                    owners.append((src, rows))
            grid = src.grid
            if grid is not None and grid.used_rows:
                rows = grid.rows_in_use()
                if len(rows):
                    times.append(grid.row_last[rows])
                    owners.append((src, rows))
            loose = [s for s in src.by_key.values() if s.loose is not None]
            if loose:
                times.append(
                    np.fromiter(
                        (s.loose.last_time if s.loose is not None else -math.inf for s in loose),
                        np.float64,
                        len(loose),
                    )
                )
                owners.append((src, loose))
        if not times:
            return 0
        all_times = np.concatenate(times)
        take = min(count, len(all_times))
        chosen = np.argpartition(all_times, take - 1)[:take] if take < len(all_times) else np.arange(take)
        chosen.sort()
        bounds = np.cumsum([0] + [len(t) for t in times])
        victims: list[_Series] = []
        for (src, owned), lo, hi in zip(owners, bounds[:-1], bounds[1:], strict=True):
            picked = chosen[(chosen >= lo) & (chosen < hi)] - lo
            for index in picked:
                if isinstance(owned, list):
                    victims.append(owned[int(index)])
                else:
                    series = src.rows[int(owned[int(index)])]
                    if series is not None:
                        victims.append(series)
        for series in victims:
            self._unregister(series)
        self._drops[reason] += len(victims)
        return len(victims)

    def _sweep(self, src: _Source) -> None:
        ring = src.ring
        if ring is None:
            return
        for row in ring.stale_rows():
            series = src.rows[int(row)]
            if series is not None:
                self._unregister(series)
                self._expired += 1

    def _infer_interval(self, src: _Source) -> None:
        if src.interval_set or not src.gaps or len(src.gaps) > 4:
            return
        interval = float(np.median(src.gaps))
        previous = src.interval
        src.interval = interval
        if src.ring is not None and (previous is None or abs(interval - previous) > 0.1 * previous):
            self._resize(src, self.limits.capacity(interval))

    def _resize(self, src: _Source, capacity: int) -> None:
        ring = src.ring
        if ring is None or ring.capacity == capacity:
            return
        ring.resize(capacity)
        for series in src.by_key.values():
            if series.histograms is not None:
                series.histograms = deque(series.histograms, maxlen=capacity)
        self._sweep(src)

    def _churn(self, src: _Source, rows: IntArray, now: float, obs: Observation) -> None:
        present = src.present
        was = present[rows]
        continued = int(np.count_nonzero(was))
        added = len(rows) - continued
        removed = src.present_count - continued
        examples = self.limits.churn_examples
        added_examples: tuple[Labels, ...] = ()
        removed_examples: tuple[Labels, ...] = ()
        baseline = src.last_churn is None and src.present_count == 0 and obs.changes is None
        if added and examples:
            added_rows = rows[~was][:examples]
            added_examples = tuple(s.labels for r in added_rows if (s := src.rows[int(r)]) is not None)
        if removed and examples:
            now_mask = np.zeros(len(present), bool)
            now_mask[rows] = True
            gone = np.flatnonzero(present & ~now_mask)[:examples]
            removed_examples = tuple(s.labels for r in gone if (s := src.rows[int(r)]) is not None)
        present[:] = False
        present[rows] = True
        src.present_count = len(rows)
        if baseline:
            # The first accepted observation of a source is its baseline, not churn.
            return
        if obs.changes is not None:
            added, removed = obs.changes.series_added, obs.changes.series_removed
        point = ChurnPoint(now, added, removed, len(rows), added_examples, removed_examples)
        src.churn.append(point)
        src.last_churn = point

    def _log(self, observation: Observation) -> None:
        self._events(observation)

    def _maybe_snapshot(self, now: float) -> None:
        if now - self._last_snapshot < self.limits.cardinality_step:
            return
        self._last_snapshot = now
        self._family_history.record(now, self._family_series)
        self._label_history.record(now, {name: len(values) for name, values in self._label_values.items()})

    # -- read internals -------------------------------------------------------------------------------------

    def _match(self, matchers: Sequence[MatcherLike]) -> list[_Series]:
        name_eq = [m for m in matchers if m.name == "__name__" and m.op == "="]
        rest = [m for m in matchers if not (m.name == "__name__" and m.op == "=")]
        candidates: Iterable[_Series]
        if name_eq:
            sets = [self._by_name.get(m.value, set()) for m in name_eq]
            candidates = set.intersection(*sets) if len(sets) > 1 else sets[0]
        else:
            name_matchers = [m for m in rest if m.name == "__name__"]
            rest = [m for m in rest if m.name != "__name__"]
            names = [n for n in self._by_name if all(m.matches(n) for m in name_matchers)]
            candidates = _chain(self._by_name[n] for n in names)
        if not rest:
            return list(candidates)
        memo: list[dict[str, bool]] = [{} for _ in rest]
        out: list[_Series] = []
        for series in candidates:
            labels = series.labels
            for matcher, cache in zip(rest, memo, strict=True):
                value = _label(labels, matcher.name)
                hit = cache.get(value)
                if hit is None:
                    hit = cache[value] = matcher.matches(value)
                if not hit:
                    break
            else:
                out.append(series)
        return out

    def _created_of(self, series: _Series) -> _Series | None:
        family = series.family
        if family not in self._created_families or series.name == family + "_created":
            return None
        meta = self._meta.get(family)
        if meta is not None and meta.type not in _CREATED_OWNERS:
            return None
        labels = tuple(p for p in series.labels if p[0] not in ("__name__", "le", "quantile"))
        return series.source.by_key.get(_full_labels(family + "_created", labels))

    def _read_columns(
        self, src: _Source, group: list[_Series], start: float, end: float, left_open: bool
    ) -> _Piece:
        """Series in the source's ring or grid: one window of columns, gathered for every row at once."""
        table: ColumnRing | TimeGrid | None = src.ring if src.ring is not None else src.grid
        assert table is not None
        cols = table.window(start, end, left_open)
        rows = np.fromiter((s.row for s in group), np.int64, len(group))
        matrix = table.gather(cols, rows)
        present = ~is_absent(matrix)
        counts = present.sum(axis=1)
        times = table.times[cols]
        dense = bool(present.all())
        if dense:
            values = matrix.ravel()
            timestamps = np.tile(times, len(group))
        else:
            values = matrix[present]
            timestamps = np.broadcast_to(times, matrix.shape)[present]
        created: FloatArray | None = None
        companions = [self._created_of(s) for s in group] if self._created_families else []
        if any(c is not None for c in companions):
            if isinstance(table, TimeGrid):
                cmatrix = self._created_as_of(src, table, companions, cols, times)
            else:
                crow = np.fromiter(
                    (c.row if c is not None and c.loose is None else -1 for c in companions),
                    np.int64,
                    len(group),
                )
                cmatrix = table.gather(cols, np.maximum(crow, 0))
                cmatrix[crow < 0] = np.nan
                cmatrix[is_absent(cmatrix)] = np.nan
            created = cmatrix.ravel() if dense else cmatrix[present]
        histograms: dict[int, tuple[NativeHistogram, ...]] = {}
        for i, series in enumerate(group):
            if series.histograms is not None and counts[i]:
                wanted = set(times[present[i]].tolist())
                histograms[i] = tuple(h for t, h in series.histograms if t in wanted)
        keep = counts > 0
        labels = [s.labels for s in group]
        if not keep.all():
            labels = [lab for lab, k in zip(labels, keep, strict=True) if k]
            histograms = _renumber(histograms, keep)
            counts = counts[keep]
        return _Piece(labels, timestamps, values, counts, created, histograms, src.name)

    def _created_as_of(
        self,
        src: _Source,
        grid: TimeGrid,
        companions: list[_Series | None],
        cols: IntArray,
        times: FloatArray,
    ) -> FloatArray:
        """Per row and window column: the newest ``_created`` value at or before the column (NaN if none)."""
        out = np.full((len(companions), len(cols)), np.nan)
        in_grid = np.fromiter(
            (c is not None and c.loose is None and c.row >= 0 for c in companions), bool, len(companions)
        )
        picked = np.flatnonzero(in_grid)
        if len(picked) and len(cols):
            crow = np.fromiter(
                (c.row if c is not None else -1 for c in (companions[i] for i in picked.tolist())),
                np.int64,
                len(picked),
            )
            cmatrix = grid.gather(cols, crow)
            found = ~is_absent(cmatrix)
            # Before the window: the newest point of each companion row, searched column by column backwards.
            prior = np.full(len(crow), np.nan)
            missing = np.ones(len(crow), bool)
            order = grid.order()
            first = int(np.searchsorted(grid.times[order], times[0], side="left"))
            for col in order[:first][::-1].tolist():
                if not missing.any():
                    break
                cells = grid.values[col, crow[missing]]
                hit = ~is_absent(cells)
                idx = np.flatnonzero(missing)[hit]
                prior[idx] = cells[hit]
                missing[idx] = False
            position = np.where(found, np.arange(len(cols)), -1)
            np.maximum.accumulate(position, axis=1, out=position)
            filled = np.take_along_axis(cmatrix, np.maximum(position, 0), axis=1)
            out[picked] = np.where(position >= 0, filled, prior[:, None])
        for i, companion in enumerate(companions):
            if companion is not None and not in_grid[i]:
                cts, cvs = self._points(src, companion)
                if len(cts):
                    idx = np.searchsorted(cts, times, side="right") - 1
                    out[i] = np.where(idx >= 0, cvs[np.maximum(idx, 0)], np.nan)
        return out

    def _points(self, src: _Source, series: _Series) -> tuple[FloatArray, FloatArray]:
        """All points of a series with its own timestamps, oldest first."""
        if series.loose is not None:
            return series.loose.points()
        if src.grid is not None and series.row >= 0:
            return src.grid.row_points(series.row)
        empty = np.zeros(0, np.float64)
        return empty, empty

    def _read_loose(
        self, src: _Source, group: list[_Series], start: float, end: float, left_open: bool
    ) -> _Piece:
        """Series kept one by one: each window found by two binary searches, the points copied once."""
        labels: list[Labels] = []
        ts_parts: list[FloatArray] = []
        vs_parts: list[FloatArray] = []
        created_parts: list[FloatArray | None] = []
        histograms: dict[int, tuple[NativeHistogram, ...]] = {}
        side: Literal["left", "right"] = "right" if left_open else "left"
        with_created = bool(self._created_families)
        for series in group:
            loose = series.loose
            if loose is None:
                continue
            ts, vs = loose.points()
            lo = int(np.searchsorted(ts, start, side=side))
            hi = int(np.searchsorted(ts, end, side="right"))
            if hi <= lo:
                continue
            ts, vs = ts[lo:hi], vs[lo:hi]
            if with_created:
                created: FloatArray | None = None
                companion = self._created_of(series)
                if companion is not None:
                    cts, cvs = self._points(src, companion)
                    idx = np.searchsorted(cts, ts, side="right") - 1
                    if len(cts):
                        created = np.where(idx >= 0, cvs[np.maximum(idx, 0)], np.nan)
                    else:
                        created = np.full(len(ts), np.nan)
                created_parts.append(created)
            if loose.histograms is not None:
                wanted = set(ts.tolist())
                histograms[len(labels)] = tuple(h for t, h in loose.histograms if t in wanted)
            labels.append(series.labels)
            ts_parts.append(ts)
            vs_parts.append(vs)
        if not labels:
            empty = np.zeros(0, np.float64)
            return _Piece([], empty, empty, np.zeros(0, np.int64), None, {}, src.name)
        counts = np.fromiter((len(t) for t in ts_parts), np.int64, len(ts_parts))
        created_all: FloatArray | None = None
        if any(c is not None for c in created_parts):
            created_all = np.concatenate(
                [
                    c if c is not None else np.full(len(t), np.nan)
                    for c, t in zip(created_parts, ts_parts, strict=True)
                ]
            )
        return _Piece(
            labels,
            np.concatenate(ts_parts),
            np.concatenate(vs_parts),
            counts,
            created_all,
            histograms,
            src.name,
        )

    def _index_bytes_per_series(self) -> int:
        sample: list[_Series] = []
        for src in self._sources.values():
            for series in src.by_key.values():
                sample.append(series)
                if len(sample) >= 32:
                    break
            if len(sample) >= 32:
                break
        if not sample:
            return 0
        total = 0
        for series in sample:
            total += sys.getsizeof(series) + sys.getsizeof(series.labels)
            total += sum(sys.getsizeof(p) + sys.getsizeof(p[1]) for p in series.labels)
            total += sys.getsizeof(series.input_key) + sys.getsizeof(series.input_key[1])
            total += 3 * 104  # entries in by_key, by_input and the name set (hash table slots, amortised)
        return total // len(sample)

    def _health(self, src: _Source) -> SourceHealth:
        samples = src.ring.samples if src.ring is not None else 0
        samples += src.grid.samples if src.grid is not None else 0
        samples += sum(len(s.loose) for s in src.by_key.values() if s.loose is not None)
        return SourceHealth(
            source=src.name,
            kind=src.kind,
            first_seen=src.first_seen,
            last_seen=src.last_seen,
            last_outcome=src.last_outcome,
            last_message=src.last_message,
            last_success=src.last_success,
            consecutive_failures=src.consecutive_failures,
            observations=src.observations,
            outcomes=dict(src.outcomes),
            series=src.series,
            samples=samples,
            interval=src.interval,
            last_churn=src.last_churn,
            history=tuple(src.history),
        )


@dataclass(slots=True)
class _Piece:
    labels: list[Labels]
    timestamps: FloatArray
    values: FloatArray
    counts: IntArray
    created: FloatArray | None
    histograms: dict[int, tuple[NativeHistogram, ...]]
    source: str


def _chain(sets: Iterable[set[_Series]]) -> Iterator[_Series]:
    for group in sets:
        yield from group


def _renumber(
    histograms: dict[int, tuple[NativeHistogram, ...]], keep: BoolArray
) -> dict[int, tuple[NativeHistogram, ...]]:
    if not histograms:
        return histograms
    new_index = np.cumsum(keep) - 1
    return {int(new_index[i]): h for i, h in histograms.items() if keep[i]}


def _assemble(pieces: list[_Piece]) -> SeriesBatch:
    pieces = [p for p in pieces if p.labels]
    if not pieces:
        return SeriesBatch.empty()
    counts = np.concatenate([p.counts for p in pieces])
    offsets = np.zeros(len(counts) + 1, np.int64)
    np.cumsum(counts, out=offsets[1:])
    created: FloatArray | None = None
    if any(p.created is not None for p in pieces):
        created = np.concatenate(
            [p.created if p.created is not None else np.full(len(p.values), np.nan) for p in pieces]
        )
    histograms: dict[int, tuple[NativeHistogram, ...]] = {}
    labels: list[Labels] = []
    sources: list[str] = []
    for piece in pieces:
        base = len(labels)
        for index, hists in piece.histograms.items():
            histograms[base + index] = hists
        labels.extend(piece.labels)
        sources.extend([piece.source] * len(piece.labels))
    if len(pieces) == 1:
        timestamps, values = pieces[0].timestamps, pieces[0].values
    else:
        timestamps = np.concatenate([p.timestamps for p in pieces])
        values = np.concatenate([p.values for p in pieces])
    return SeriesBatch(
        labels=tuple(labels),
        timestamps=timestamps,
        values=values,
        offsets=offsets,
        created=created,
        histograms=histograms,
        sources=tuple(sources),
    )
