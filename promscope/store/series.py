"""Typed-array storage for the store: no Python object per sample.

Two layouts, both bounded:

:class:`ColumnRing`
    One per scraped (or pushed) source. Every series of one observation shares
    the observation's timestamp, so the ring keeps **one** timestamp column per
    source and the values as a ``(capacity, rows)`` float64 matrix per block of
    series rows: column ``c`` of the ring is one observation, row ``r`` one
    series. That is 8 bytes per retained sample plus ``8 / rows`` for the shared
    timestamp. A series missing from an observation holds :data:`ABSENT` (a
    NaN with a payload of its own, so a real ``NaN`` sample stays a sample).

:class:`LooseSeries`
    One per series whose points carry their own timestamps (backfill files,
    remote_write, OTLP, StatsD packets) when those timestamps do not line up
    with the other series of its source: parallel float64 rings of timestamps
    and values, grown geometrically up to a point limit, oldest dropped first.

:class:`TimeGrid`
    The series of one such source whose timestamps *do* line up (a backfill
    file, a remote_write stream: every series at the same instants): one
    column per distinct timestamp, one row per series, ``ABSENT`` where a
    series has no point. 8 bytes per point and no per-series work to read a
    window. Columns are kept in the order they were first seen, with their time
    order worked out on read, so points may arrive in any order. A grid that
    would be mostly empty says so (:meth:`TimeGrid.sparse`) and its owner moves
    its series to :class:`LooseSeries`.

All hand out points in time order as numpy arrays; none knows labels.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

import numpy as np
import numpy.typing as npt

from promscope.model import Labels, NativeHistogram

__all__ = [
    "ABSENT",
    "ABSENT_BITS",
    "FREE_ROW",
    "ColumnRing",
    "FloatArray",
    "IntArray",
    "LooseSeries",
    "SeriesBatch",
    "SeriesView",
    "TimeGrid",
    "is_absent",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

ABSENT_BITS: Final = 0x7FF8_0000_0000_0A5E
"""Bit pattern of the "no sample here" marker: a quiet NaN with a payload no parser produces."""

ABSENT: Final = float(np.array([ABSENT_BITS], dtype=np.uint64).view(np.float64)[0])
"""The marker as a float (compare with :func:`is_absent`, never with ``==``)."""

_ABSENT_U64: Final = np.uint64(ABSENT_BITS)

FREE_ROW: Final = -(2**62)
"""``ColumnRing.last_seq`` of a row that holds no series."""

_MAX_BLOCKS: Final = 8
"""More row blocks than this are merged into one, so writes touch few arrays."""


def is_absent(values: FloatArray) -> BoolArray:
    """True where ``values`` holds the :data:`ABSENT` marker (a real NaN is not absent)."""
    result: BoolArray = values.view(np.uint64) == _ABSENT_U64
    return result


class ColumnRing:
    """A source's history: a ring of observation columns over blocks of series rows.

    ``capacity`` columns are kept; the oldest is overwritten by the next
    observation. Rows are handed out by :meth:`allocate` and given back by
    :meth:`release`; the caller maps rows to series.
    """

    __slots__ = (
        "_block_ends",
        "_block_starts",
        "_blocks",
        "_col_counts",
        "_free",
        "capacity",
        "last_seq",
        "rows",
        "samples",
        "seq",
        "times",
        "used_rows",
    )

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity = capacity
        self.times: FloatArray = np.full(capacity, np.nan)
        self.seq = 0
        """Columns written so far; the next column is ``seq % capacity``."""
        self._blocks: list[FloatArray] = []
        self._block_starts: list[int] = []
        self._block_ends: list[int] = []
        self.rows = 0
        """Row capacity over all blocks."""
        self.used_rows = 0
        self._free: list[int] = []
        self.last_seq: IntArray = np.zeros(0, np.int64)
        """Per row: the column sequence number of its last sample (:data:`FREE_ROW` for a free row)."""
        self._col_counts: IntArray = np.zeros(capacity, np.int64)
        self.samples = 0
        """Samples held (cells that are not absent)."""

    # -- columns ------------------------------------------------------------------------------------------

    @property
    def last_time(self) -> float:
        """Timestamp of the newest column, or ``-inf`` before the first."""
        if self.seq == 0:
            return -math.inf
        return float(self.times[(self.seq - 1) % self.capacity])

    def columns(self) -> int:
        """Columns holding an observation (at most ``capacity``)."""
        return min(self.seq, self.capacity)

    def begin_column(self, timestamp: float) -> int:
        """Start the next observation's column (overwriting the oldest once full); return its index."""
        col = self.seq % self.capacity
        if self.seq >= self.capacity:
            self.samples -= int(self._col_counts[col])
        self._col_counts[col] = 0
        self.times[col] = timestamp
        for block in self._blocks:
            block[col, :] = ABSENT
        self.seq += 1
        return col

    def write(self, col: int, rows: IntArray, values: FloatArray) -> None:
        """Store ``values[i]`` for row ``rows[i]`` in column ``col`` (rows distinct)."""
        if len(rows) == 0:
            return
        if len(self._blocks) == 1:
            self._blocks[0][col, rows] = values
        else:
            for block, start, end in zip(self._blocks, self._block_starts, self._block_ends, strict=True):
                mask = (rows >= start) & (rows < end)
                if mask.any():
                    block[col, rows[mask] - start] = values[mask]
        self.last_seq[rows] = self.seq - 1
        self._col_counts[col] += len(rows)
        self.samples += len(rows)

    def window(self, start: float, end: float, left_open: bool = False) -> IntArray:
        """Column indices with a time in ``[start, end]`` (``(start, end]`` if left_open), oldest first."""
        n = self.columns()
        if n == 0:
            return np.zeros(0, np.int64)
        cols = np.arange(self.seq - n, self.seq, dtype=np.int64) % self.capacity
        times = self.times[cols]
        lo = int(np.searchsorted(times, start, side="right" if left_open else "left"))
        hi = int(np.searchsorted(times, end, side="right"))
        result: IntArray = cols[lo:hi]
        return result

    # -- rows ---------------------------------------------------------------------------------------------

    def allocate(self, count: int) -> IntArray:
        """Hand out ``count`` rows (free ones first, then new ones in a new block)."""
        taken: list[int] = []
        while self._free and len(taken) < count:
            taken.append(self._free.pop())
        if taken:
            self._clear_rows(np.asarray(taken, np.int64))
        missing = count - len(taken)
        if missing > 0:
            first = self.rows
            self._grow(max(missing, self.rows // 4, 64 if self.rows else missing))
            new = list(range(first, first + missing))
            self._free.extend(range(self.rows - 1, first + missing - 1, -1))
            taken.extend(new)
        rows = np.asarray(taken, np.int64)
        self.last_seq[rows] = self.seq - 1
        self.used_rows += count
        return rows

    def release(self, rows: IntArray) -> None:
        """Give rows back: their samples are dropped and the rows reused later."""
        if len(rows) == 0:
            return
        self._clear_rows(rows)
        self.last_seq[rows] = FREE_ROW
        self._free.extend(int(r) for r in rows)
        self.used_rows -= len(rows)

    def stale_rows(self) -> IntArray:
        """Rows in use that hold no sample any more (their last one left the ring)."""
        if self.used_rows == 0:
            return np.zeros(0, np.int64)
        limit = self.seq - 1 - self.capacity
        result: IntArray = np.flatnonzero((self.last_seq <= limit) & (self.last_seq != FREE_ROW))
        return result

    def _clear_rows(self, rows: IntArray) -> None:
        n = self.columns()
        if n == 0:
            return
        for block, start, end in zip(self._blocks, self._block_starts, self._block_ends, strict=True):
            local = rows[(rows >= start) & (rows < end)] - start
            if len(local) == 0:
                continue
            cells = block[:, local]
            present = ~is_absent(cells)
            per_col = present.sum(axis=1)
            self._col_counts -= per_col
            self.samples -= int(per_col.sum())
            block[:, local] = ABSENT

    def _grow(self, extra: int) -> None:
        block = np.empty((self.capacity, extra), np.float64)
        n = self.columns()
        if n:
            block[:] = ABSENT
        self._blocks.append(block)
        self._block_starts.append(self.rows)
        self._block_ends.append(self.rows + extra)
        self.rows += extra
        self.last_seq = np.concatenate([self.last_seq, np.full(extra, FREE_ROW, np.int64)])
        if len(self._blocks) > _MAX_BLOCKS:
            merged = np.concatenate(self._blocks, axis=1)
            self._blocks = [merged]
            self._block_starts = [0]
            self._block_ends = [self.rows]

    # -- reads --------------------------------------------------------------------------------------------

    def gather(self, cols: IntArray, rows: IntArray) -> FloatArray:
        """The ``(len(rows), len(cols))`` matrix of values (ABSENT where missing), row-major."""
        out = np.empty((len(rows), len(cols)), np.float64)
        if len(rows) == 0 or len(cols) == 0:
            return out
        if len(self._blocks) == 1:
            out[:] = self._blocks[0][np.ix_(cols, rows)].T
            return out
        for block, start, end in zip(self._blocks, self._block_starts, self._block_ends, strict=True):
            mask = (rows >= start) & (rows < end)
            if mask.any():
                out[mask] = block[np.ix_(cols, rows[mask] - start)].T
        return out

    def resize(self, capacity: int) -> None:
        """Change the number of columns kept, keeping the newest ``capacity`` observations."""
        if capacity == self.capacity or capacity < 1:
            return
        n = self.columns()
        keep = min(n, capacity)
        cols = np.arange(self.seq - keep, self.seq, dtype=np.int64) % self.capacity
        times = np.full(capacity, np.nan)
        times[:keep] = self.times[cols]
        blocks: list[FloatArray] = []
        counts = np.zeros(capacity, np.int64)
        for block in self._blocks:
            new = np.empty((capacity, block.shape[1]), np.float64)
            new[:keep] = block[cols]
            new[keep:] = ABSENT
            counts[:keep] += (~is_absent(new[:keep])).sum(axis=1)
            blocks.append(new)
        # Renumber: the kept columns become 0..keep-1, so seq restarts at keep.
        shift = self.seq - keep
        live = self.last_seq != FREE_ROW
        moved = self.last_seq - shift
        # Rows whose newest sample did not survive hold nothing now: make them stale at once.
        moved[moved < 0] = -1 - capacity
        self.last_seq = np.where(live, moved, FREE_ROW)
        self.times = times
        self._blocks = blocks
        self._col_counts = counts
        self.capacity = capacity
        self.seq = keep
        self.samples = int(counts.sum())

    def nbytes(self) -> int:
        return int(
            sum(b.nbytes for b in self._blocks)
            + self.times.nbytes
            + self.last_seq.nbytes
            + self._col_counts.nbytes
            + 8 * len(self._free)
        )


class LooseSeries:
    """A series whose points carry their own timestamps: a growable ring, oldest out at ``max_points``."""

    __slots__ = ("_n", "_sorted", "_start", "_ts", "_vs", "histograms", "max_points")

    def __init__(self, max_points: int) -> None:
        self.max_points = max(1, max_points)
        cap = min(8, self.max_points)
        self._ts: FloatArray = np.empty(cap, np.float64)
        self._vs: FloatArray = np.empty(cap, np.float64)
        self._start = 0
        self._n = 0
        self._sorted = True
        self.histograms: deque[tuple[float, NativeHistogram]] | None = None

    def __len__(self) -> int:
        return self._n

    @property
    def last_time(self) -> float:
        if self._n == 0:
            return -math.inf
        self._ensure_sorted()
        return float(self._ts[(self._start + self._n - 1) % len(self._ts)])

    def append(self, timestamp: float, value: float) -> int:
        """Add one point; return how many old points were dropped to make room (0 or 1)."""
        dropped = 0
        cap = len(self._ts)
        if self._n == cap:
            if cap < self.max_points:
                self._grow(min(self.max_points, cap * 2))
                cap = len(self._ts)
            else:
                self._ensure_sorted()
                self._start = (self._start + 1) % cap
                self._n -= 1
                dropped = 1
        if self._n and self._sorted:
            last = self._ts[(self._start + self._n - 1) % cap]
            if timestamp <= last:
                self._sorted = False
        pos = (self._start + self._n) % cap
        self._ts[pos] = timestamp
        self._vs[pos] = value
        self._n += 1
        return dropped

    @classmethod
    def from_points(cls, max_points: int, timestamps: FloatArray, values: FloatArray) -> LooseSeries:
        """A series holding these points (increasing timestamps, at most ``max_points`` of them)."""
        series = cls(max_points)
        n = len(timestamps)
        if n:
            cap = min(series.max_points, max(8, n))
            series._ts = np.empty(cap, np.float64)
            series._vs = np.empty(cap, np.float64)
            series._ts[:n] = timestamps
            series._vs[:n] = values
            series._n = n
        return series

    def add_histogram(self, timestamp: float, histogram: NativeHistogram) -> None:
        if self.histograms is None:
            self.histograms = deque(maxlen=self.max_points)
        self.histograms.append((timestamp, histogram))

    def points(self) -> tuple[FloatArray, FloatArray]:
        """All points, oldest first, one per timestamp (the last written wins)."""
        self._ensure_sorted()
        return self._linear()

    def window(self, start: float, end: float, left_open: bool = False) -> tuple[FloatArray, FloatArray]:
        ts, vs = self.points()
        lo = int(np.searchsorted(ts, start, side="right" if left_open else "left"))
        hi = int(np.searchsorted(ts, end, side="right"))
        return ts[lo:hi], vs[lo:hi]

    def nbytes(self) -> int:
        return int(self._ts.nbytes + self._vs.nbytes)

    def _linear(self) -> tuple[FloatArray, FloatArray]:
        cap = len(self._ts)
        end = self._start + self._n
        if end <= cap:
            return self._ts[self._start : end], self._vs[self._start : end]
        idx = np.arange(self._start, end) % cap
        return self._ts[idx], self._vs[idx]

    def _grow(self, cap: int) -> None:
        ts, vs = self._linear()
        new_ts = np.empty(cap, np.float64)
        new_vs = np.empty(cap, np.float64)
        new_ts[: self._n] = ts
        new_vs[: self._n] = vs
        self._ts, self._vs, self._start = new_ts, new_vs, 0

    def _ensure_sorted(self) -> None:
        if self._sorted:
            return
        ts, vs = self._linear()
        # Stable sort, then keep the last point written for each timestamp.
        order = np.argsort(ts, kind="stable")
        ts, vs = ts[order], vs[order]
        keep = np.ones(len(ts), bool)
        keep[:-1] = ts[1:] != ts[:-1]
        ts, vs = ts[keep], vs[keep]
        n = len(ts)
        self._ts[:n] = ts
        self._vs[:n] = vs
        self._start = 0
        self._n = n
        self._sorted = True


_GRID_MIN_FILL: Final = 0.5
"""Least share of a :class:`TimeGrid`'s cells holding points (below it, loose series are smaller)."""

_GRID_MIN_CELLS: Final = 4096
"""Below this many cells a grid is never called sparse: small grids are cheap whatever their shape."""


class TimeGrid:
    """Rows of series over columns of shared timestamps, in one ``(columns, rows)`` float64 matrix.

    At most ``max_columns`` distinct timestamps are kept; a newer one pushes
    out the oldest column (and its points), an older one than all kept is
    dropped. Both grow geometrically by a quarter, so the matrix holds at most
    about 1.6 cells per cell in use, and while the grid is at most half empty
    (:meth:`sparse`) about 3.2 cells per point: 25 bytes at worst, 8 to 12
    when the series line up.
    """

    __slots__ = (
        "_bits",
        "_col_of",
        "_free",
        "_order",
        "_sorted_times",
        "max_columns",
        "ncols",
        "row_counts",
        "row_last",
        "samples",
        "times",
        "used",
        "used_rows",
        "values",
    )

    def __init__(self, max_columns: int) -> None:
        self.max_columns = max(1, max_columns)
        self.ncols = 0
        self.times: FloatArray = np.full(min(8, self.max_columns), np.nan)
        self.values: FloatArray = np.empty((len(self.times), 0), np.float64)
        self._bits: npt.NDArray[np.uint64] = self.values.view(np.uint64)
        self._col_of: dict[float, int] = {}
        self._order: IntArray | None = None
        self._sorted_times: FloatArray | None = None
        self.row_counts: npt.NDArray[np.int32] = np.zeros(0, np.int32)
        """Points held per row."""
        self.row_last: FloatArray = np.zeros(0, np.float64)
        """Per row: the newest timestamp written to it (``-inf`` before the first)."""
        self.used: BoolArray = np.zeros(0, bool)
        self._free: list[int] = []
        self.used_rows = 0
        self.samples = 0
        """Points held (cells that are not absent)."""

    # -- shape ----------------------------------------------------------------------------------------------

    @property
    def rows(self) -> int:
        """Row capacity."""
        return int(self.values.shape[1])

    def sparse(self, extra_columns: int = 0, extra_rows: int = 0) -> bool:
        """True if, with that many more columns and rows, fewer than half the cells would hold a point."""
        cells = (self.ncols + extra_columns) * (self.used_rows + extra_rows)
        return cells >= _GRID_MIN_CELLS and self.samples < _GRID_MIN_FILL * cells

    def allocate(self) -> int:
        """A free row (new rows hold no point)."""
        if not self._free:
            old = self.rows
            self._resize(len(self.times), max(64, old + old // 4))
            self._free.extend(range(self.rows - 1, old - 1, -1))
        row = self._free.pop()
        self.used[row] = True
        self.row_last[row] = -math.inf
        self.used_rows += 1
        return row

    def release(self, row: int) -> None:
        """Give a row back, dropping its points."""
        if not self.used[row]:
            return
        if self.row_counts[row]:
            self.samples -= int(self.row_counts[row])
            self.values[: self.ncols, row] = ABSENT
            self.row_counts[row] = 0
        self.used[row] = False
        self.used_rows -= 1
        self._free.append(row)

    def _resize(self, columns: int, rows: int) -> None:
        values = np.empty((columns, rows), np.float64)
        values[:] = ABSENT
        old_cols, old_rows = self.values.shape
        values[: min(old_cols, columns), :old_rows] = self.values[:columns]
        self.values = values
        self._bits = values.view(np.uint64)
        if columns != len(self.times):
            times = np.full(columns, np.nan)
            times[: self.ncols] = self.times[: self.ncols]
            self.times = times
        if rows != old_rows:
            extra = rows - old_rows
            self.row_counts = np.concatenate([self.row_counts, np.zeros(extra, np.int32)])
            self.row_last = np.concatenate([self.row_last, np.full(extra, -math.inf)])
            self.used = np.concatenate([self.used, np.zeros(extra, bool)])

    # -- writing --------------------------------------------------------------------------------------------

    def column(self, timestamp: float) -> int:
        """The column of ``timestamp``, or -1."""
        return self._col_of.get(timestamp, -1)

    def add_column(self, timestamp: float) -> tuple[int, int]:
        """Make a column for a new ``timestamp``: ``(column, points dropped)``; column -1 if it is too old.

        Once ``max_columns`` are held the oldest column goes (its points are
        the ones dropped), unless ``timestamp`` is older still: then it is
        the one left out.
        """
        if self.ncols < self.max_columns:
            if self.ncols == len(self.times):
                grown = min(self.max_columns, max(8, self.ncols + self.ncols // 4))
                self._resize(grown, self.rows)
            col = self.ncols
            self.ncols += 1
            dropped = 0
        else:
            order = self.order()
            col = int(order[0])
            if timestamp < self.times[col]:
                return -1, 0
            del self._col_of[float(self.times[col])]
            present = self._bits[col] != _ABSENT_U64
            dropped = int(np.count_nonzero(present))
            if dropped:
                self.row_counts[present] -= 1
                self.samples -= dropped
                self.values[col] = ABSENT
        self.times[col] = timestamp
        self._col_of[timestamp] = col
        self._order = None
        self._sorted_times = None
        return col, dropped

    def put(self, row: int, col: int, timestamp: float, value: float) -> None:
        """Write one point (the last one written for a timestamp wins)."""
        if self._bits[col, row] == _ABSENT_U64:
            self.samples += 1
            self.row_counts[row] += 1
        self.values[col, row] = value
        if timestamp > self.row_last[row]:
            self.row_last[row] = timestamp

    # -- reading --------------------------------------------------------------------------------------------

    def order(self) -> IntArray:
        """Column indices, oldest first."""
        if self._order is None:
            times = self.times[: self.ncols]
            self._order = np.argsort(times, kind="stable")
            self._sorted_times = times[self._order]
        return self._order

    def window(self, start: float, end: float, left_open: bool = False) -> IntArray:
        """Column indices with a time in ``[start, end]`` (``(start, end]`` if left_open), oldest first."""
        order = self.order()
        assert self._sorted_times is not None
        lo = int(np.searchsorted(self._sorted_times, start, side="right" if left_open else "left"))
        hi = int(np.searchsorted(self._sorted_times, end, side="right"))
        result: IntArray = order[lo:hi]
        return result

    def gather(self, cols: IntArray, rows: IntArray) -> FloatArray:
        """The ``(len(rows), len(cols))`` matrix of values (ABSENT where missing), row-major."""
        out: FloatArray = np.ascontiguousarray(self.values[np.ix_(cols, rows)].T)
        return out

    def row_points(self, row: int) -> tuple[FloatArray, FloatArray]:
        """One row's points, oldest first."""
        order = self.order()
        values = self.values[order, row]
        present = ~is_absent(values)
        ts: FloatArray = self.times[order][present]
        vs: FloatArray = values[present]
        return ts, vs

    def rows_in_use(self) -> IntArray:
        result: IntArray = np.flatnonzero(self.used)
        return result

    def nbytes(self) -> int:
        return int(
            self.values.nbytes
            + self.times.nbytes
            + self.row_counts.nbytes
            + self.row_last.nbytes
            + self.used.nbytes
            + 8 * len(self._free)
            + 100 * len(self._col_of)
        )


@dataclass(frozen=True, slots=True, eq=False)
class SeriesView:
    """One series' points in a window, as :meth:`Store.select` returns them.

    ``timestamps`` (float64 seconds, increasing) and ``values`` (float64) are
    read-only views; ``created`` is the newest ``_created`` timestamp seen in the
    window, and ``created_at`` the one in force at each point (NaN where none
    was exposed), for reset detection. ``histograms`` is set for native
    histogram series: one :class:`~promscope.model.NativeHistogram` per point
    (``values`` then holds each histogram's count).
    """

    labels: Labels
    timestamps: FloatArray
    values: FloatArray
    created: float | None = None
    created_at: FloatArray | None = None
    histograms: tuple[NativeHistogram, ...] | None = None
    source: str = ""

    @property
    def name(self) -> str:
        for label, value in self.labels:
            if label == "__name__":
                return value
        return ""

    def __len__(self) -> int:
        return len(self.timestamps)


@dataclass(frozen=True, slots=True, eq=False)
class SeriesBatch:
    """Many series' points in one set of flat arrays (CSR layout), for vectorised functions.

    Series ``i`` owns ``timestamps[offsets[i]:offsets[i+1]]`` and the same slice
    of ``values`` (and of ``created``, when any selected series has a
    ``_created`` companion; NaN where unknown). Every series has at least one
    point. Each label set is sorted by name, ``__name__`` included, as a
    :class:`SeriesView`'s is. :func:`promscope.store.functions.rate` and friends take a batch and
    answer one value per series.
    """

    labels: tuple[Labels, ...]
    timestamps: FloatArray
    values: FloatArray
    offsets: IntArray
    created: FloatArray | None = None
    histograms: Mapping[int, tuple[NativeHistogram, ...]] = field(default_factory=dict)
    sources: tuple[str, ...] = ()

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def counts(self) -> IntArray:
        """Points per series."""
        result: IntArray = np.diff(self.offsets)
        return result

    def view(self, index: int) -> SeriesView:
        """Series ``index`` as a :class:`SeriesView` (array slices, no copies)."""
        lo, hi = int(self.offsets[index]), int(self.offsets[index + 1])
        created_at = None if self.created is None else self.created[lo:hi]
        created = None
        if created_at is not None and len(created_at):
            known = created_at[~np.isnan(created_at)]
            created = float(known[-1]) if len(known) else None
        return SeriesView(
            labels=self.labels[index],
            timestamps=self.timestamps[lo:hi],
            values=self.values[lo:hi],
            created=created,
            created_at=created_at if created is not None else None,
            histograms=self.histograms.get(index),
            source=self.sources[index] if self.sources else "",
        )

    def views(self) -> list[SeriesView]:
        return [self.view(i) for i in range(len(self.labels))]

    @classmethod
    def from_views(cls, views: Sequence[SeriesView]) -> SeriesBatch:
        """Pack views into one batch (copies the points)."""
        if not views:
            return cls.empty()
        counts = np.fromiter((len(v.timestamps) for v in views), np.int64, len(views))
        offsets = np.zeros(len(views) + 1, np.int64)
        np.cumsum(counts, out=offsets[1:])
        created = None
        if any(v.created_at is not None for v in views):
            created = np.concatenate(
                [v.created_at if v.created_at is not None else np.full(len(v), np.nan) for v in views]
            )
        histograms = {i: v.histograms for i, v in enumerate(views) if v.histograms is not None}
        return cls(
            labels=tuple(v.labels for v in views),
            timestamps=np.concatenate([v.timestamps for v in views]).astype(np.float64, copy=False),
            values=np.concatenate([v.values for v in views]).astype(np.float64, copy=False),
            offsets=offsets,
            created=created,
            histograms=histograms,
            sources=tuple(v.source for v in views),
        )

    @classmethod
    def empty(cls) -> SeriesBatch:
        return cls((), np.zeros(0), np.zeros(0), np.zeros(1, np.int64))
