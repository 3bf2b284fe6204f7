"""PromQL's range functions and histogram quantiles, over the store's arrays, vectorised.

Every range function takes points in the CSR layout of
:class:`~promscope.store.series.SeriesBatch` (``timestamps``, ``values``,
``offsets``, optional per-point ``created``) and the range it was selected for,
and answers one value per series as a :class:`RangeResult`: ``values`` and a
``present`` mask (False where Prometheus would return no sample, e.g. ``rate``
over fewer than two points). One call covers 100k series with a handful of
numpy operations, no Python loop per series::

    batch = store.select_batch([Matcher("__name__", "=", "x_total")], t - 300, t)
    result = rate(batch, t - 300, t)
    result.values[result.present]

Semantics follow Prometheus's ``promql/functions.go`` and ``quantile.go``.
``compat="3"`` (the default) is current Prometheus: counter resets are also
detected from start (``_created``) timestamps, a start timestamp inside the
range stands for a zero sample there, the zero-point clamp applies after the
threshold, native quantiles interpolate exponentially, and classic bucket
counts within 1e-12 of each other are treated as equal. ``compat="2"`` is
Prometheus 2.x (the Debian 2.42 the differential tests run against): value
drops only, the clamp before the threshold, linear native interpolation.

Where promscope goes beyond upstream, it says so: a ``_created`` value that
*changes* between two points is a reset even when the value did not go down
(upstream counts it only when the new start is after the previous point).
"""

from __future__ import annotations

import itertools
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, NamedTuple, Protocol

import numpy as np

from promscope.model import BucketSpan, NativeHistogram
from promscope.store.series import BoolArray, FloatArray, IntArray

__all__ = [
    "SMALL_DELTA_TOLERANCE",
    "Compat",
    "PointsLike",
    "QuantileResult",
    "RangeResult",
    "avg_over_time",
    "bucket_quantile",
    "changes",
    "count_over_time",
    "delta",
    "deriv",
    "extrapolated_rate",
    "histogram_quantile",
    "idelta",
    "increase",
    "irate",
    "last_over_time",
    "max_over_time",
    "min_over_time",
    "native_bucket_bound",
    "native_histogram_quantile",
    "native_histogram_rate",
    "rate",
    "resets",
    "sum_over_time",
]

Compat = Literal["2", "3"]

SMALL_DELTA_TOLERANCE = 1e-12
"""Relative difference below which two classic bucket counts are the same count (Prometheus 3)."""

_MIN_NORMAL = 2.2250738585072014e-308


class PointsLike(Protocol):
    """Points in CSR layout: what :class:`~promscope.store.series.SeriesBatch` is."""

    @property
    def timestamps(self) -> FloatArray: ...
    @property
    def values(self) -> FloatArray: ...
    @property
    def offsets(self) -> IntArray: ...
    @property
    def created(self) -> FloatArray | None: ...


class RangeResult(NamedTuple):
    """One value per series; ``present`` is False where the function gives no sample."""

    values: FloatArray
    present: BoolArray


class QuantileResult(NamedTuple):
    """Classic ``histogram_quantile`` per group, and the annotations Prometheus would attach."""

    values: FloatArray
    present: BoolArray
    forced_monotonic: BoolArray
    """Bucket counts decreased with a higher bound and were raised (Prometheus warns)."""
    fixed_precision: BoolArray
    """Counts within :data:`SMALL_DELTA_TOLERANCE` were treated as equal."""


@dataclass(frozen=True, slots=True)
class _Segments:
    counts: IntArray
    first: IntArray
    last: IntArray
    seg: IntArray
    """Series index of every point."""

    @classmethod
    def of(cls, offsets: IntArray) -> _Segments:
        offsets = np.asarray(offsets, np.int64)
        counts = np.diff(offsets)
        has = counts > 0
        first = np.where(has, offsets[:-1], 0)
        last = np.where(has, offsets[1:] - 1, 0)
        seg = np.repeat(np.arange(len(counts), dtype=np.int64), counts)
        return cls(counts, first, last, seg)


def _sum(segments: _Segments, weights: FloatArray) -> FloatArray:
    return np.bincount(segments.seg, weights=weights, minlength=len(segments.counts)).astype(np.float64)


# -- counter resets ----------------------------------------------------------------------------------------


def _start_reset(
    prev_st: FloatArray, prev_t: FloatArray, curr_st: FloatArray, curr_t: FloatArray
) -> BoolArray:
    """Upstream ``isStartTimestampReset``, plus "a changed start timestamp is a reset"."""
    with np.errstate(invalid="ignore"):
        curr_known = ~np.isnan(curr_st) & (curr_st != 0)
        prev_known = ~np.isnan(prev_st) & (prev_st != 0)
        valid = curr_known & (curr_st < curr_t)
        after = curr_st > prev_t
        pointing_back = (curr_st == prev_t) & prev_known & ~(prev_st > prev_t) & (prev_st != prev_t)
        changed = prev_known & (curr_st != prev_st)
    result: BoolArray = valid & (after | pointing_back | changed)
    return result


def _reset_mask(points: PointsLike, segments: _Segments, use_created: bool) -> BoolArray:
    """For each point but the first: whether a counter reset happened since the previous point."""
    t, v = points.timestamps, points.values
    same = segments.seg[1:] == segments.seg[:-1]
    with np.errstate(invalid="ignore"):
        reset = v[1:] < v[:-1]
    created = points.created
    if use_created and created is not None:
        reset |= _start_reset(created[:-1], t[:-1], created[1:], t[1:])
    result: BoolArray = same & reset
    return result


def _reset_correction(points: PointsLike, segments: _Segments, use_created: bool) -> FloatArray:
    n = len(segments.counts)
    if len(points.values) < 2:
        return np.zeros(n)
    mask = _reset_mask(points, segments, use_created)
    result: FloatArray = np.bincount(
        segments.seg[1:][mask], weights=points.values[:-1][mask], minlength=n
    ).astype(np.float64)
    return result


# -- rate, increase, delta -----------------------------------------------------------------------------------


def extrapolated_rate(
    points: PointsLike,
    range_start: float,
    range_end: float,
    *,
    is_counter: bool,
    is_rate: bool,
    compat: Compat = "3",
) -> RangeResult:
    """Prometheus's ``extrapolatedRate``: the shared core of ``rate``, ``increase`` and ``delta``.

    ``range_start``/``range_end`` are the selector's range (``t - range - offset``,
    ``t - offset``); the points are those selected in it.
    """
    seg = _Segments.of(points.offsets)
    n = len(seg.counts)
    t, v = points.timestamps, points.values
    if len(t) == 0:
        return RangeResult(np.full(n, np.nan), np.zeros(n, bool))
    counts = seg.counts
    has = counts > 0
    first_t, last_t = t[seg.first], t[seg.last]
    first_v, last_v = v[seg.first], v[seg.last]
    use_created = compat == "3"
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        result = last_v - first_v
        if is_counter:
            result = result + _reset_correction(points, seg, use_created)
        d_start = first_t - range_start
        d_end = range_end - last_t
        sampled = last_t - first_t
        steps = np.maximum(counts - 1, 1)
        average = np.where(counts > 1, sampled / steps, 0.0)
        threshold = average * 1.1
        if compat == "2":
            if is_counter:
                zero = sampled * (first_v / result)
                clamp = (result > 0) & (first_v >= 0) & (zero < d_start)
                d_start = np.where(clamp, zero, d_start)
            interval = (
                sampled
                + np.where(d_start < threshold, d_start, average / 2)
                + np.where(d_end < threshold, d_end, average / 2)
            )
            factor = interval / sampled
            present = has & (counts >= 2)
        else:
            st_case = np.zeros(n, bool)
            created = points.created
            st0 = np.full(n, np.nan)
            if is_counter and created is not None:
                st0 = created[seg.first]
                st_case = has & ~np.isnan(st0) & (st0 != 0) & (st0 > range_start) & (st0 < first_t)
            d_start = np.where(d_start >= threshold, average / 2, d_start)
            if is_counter:
                zero = np.where((result > 0) & (first_v >= 0), sampled * (first_v / result), d_start)
                d_start = np.where(zero < d_start, zero, d_start)
            d_start = np.where(st_case, 0.0, d_start)
            sampled = np.where(st_case, last_t - st0, sampled)
            result = np.where(st_case, result + first_v, result)
            d_end = np.where(d_end >= threshold, average / 2, d_end)
            factor = np.where(
                sampled != 0, (sampled + d_start + d_end) / np.where(sampled != 0, sampled, 1), 1.0
            )
            present = has & ((counts >= 2) | st_case)
        if is_rate:
            factor = factor / (range_end - range_start)
        out = result * factor
    out = np.where(present, out, np.nan)
    return RangeResult(out, present)


def rate(points: PointsLike, range_start: float, range_end: float, *, compat: Compat = "3") -> RangeResult:
    """``rate(v[range])``: per-second increase, reset-aware and extrapolated."""
    return extrapolated_rate(points, range_start, range_end, is_counter=True, is_rate=True, compat=compat)


def increase(
    points: PointsLike, range_start: float, range_end: float, *, compat: Compat = "3"
) -> RangeResult:
    """``increase(v[range])``: reset-aware increase over the range, extrapolated."""
    return extrapolated_rate(points, range_start, range_end, is_counter=True, is_rate=False, compat=compat)


def delta(points: PointsLike, range_start: float, range_end: float, *, compat: Compat = "3") -> RangeResult:
    """``delta(v[range])``: last minus first (gauges), extrapolated."""
    return extrapolated_rate(points, range_start, range_end, is_counter=False, is_rate=False, compat=compat)


# -- irate, idelta, deriv ------------------------------------------------------------------------------------


def _instant(points: PointsLike, is_rate: bool) -> RangeResult:
    seg = _Segments.of(points.offsets)
    n = len(seg.counts)
    present = seg.counts >= 2
    if not present.any():
        return RangeResult(np.full(n, np.nan), present)
    t, v = points.timestamps, points.values
    last = seg.last
    prev = np.where(present, last - 1, last)
    last_v, prev_v = v[last], v[prev]
    interval = t[last] - t[prev]
    with np.errstate(invalid="ignore", divide="ignore"):
        if is_rate:
            result = np.where(last_v < prev_v, last_v, last_v - prev_v) / np.where(interval != 0, interval, 1)
        else:
            result = last_v - prev_v
    present &= interval != 0
    return RangeResult(np.where(present, result, np.nan), present)


def irate(points: PointsLike) -> RangeResult:
    """``irate``: per-second rate between the last two points (a drop counts as a reset)."""
    return _instant(points, True)


def idelta(points: PointsLike) -> RangeResult:
    """``idelta``: the difference between the last two points."""
    return _instant(points, False)


def deriv(points: PointsLike) -> RangeResult:
    """``deriv``: slope of the least-squares line through the points (per second)."""
    seg = _Segments.of(points.offsets)
    n = len(seg.counts)
    present = seg.counts >= 2
    if not present.any():
        return RangeResult(np.full(n, np.nan), present)
    t, v = points.timestamps, points.values
    x = t - t[seg.first][seg.seg]
    count = seg.counts.astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        sum_x = _sum(seg, x)
        sum_y = _sum(seg, v)
        sum_xy = _sum(seg, x * v)
        sum_x2 = _sum(seg, x * x)
        cov = sum_xy - sum_x * sum_y / count
        var = sum_x2 - sum_x * sum_x / count
        slope = cov / var
        init = v[seg.first]
        differs = v != init[seg.seg]
    differs[seg.first[seg.counts > 0]] = False
    constant = np.bincount(seg.seg[differs], minlength=n) == 0
    slope = np.where(constant, np.where(np.isinf(init), np.nan, 0.0), slope)
    return RangeResult(np.where(present, slope, np.nan), present)


def resets(points: PointsLike, *, use_created: bool = True) -> RangeResult:
    """``resets``: counter resets in the range (value drops, and start timestamp resets)."""
    seg = _Segments.of(points.offsets)
    n = len(seg.counts)
    present = seg.counts > 0
    if len(points.values) < 2:
        return RangeResult(np.where(present, 0.0, np.nan), present)
    mask = _reset_mask(points, seg, use_created)
    counted = np.bincount(seg.seg[1:][mask], minlength=n).astype(np.float64)
    return RangeResult(np.where(present, counted, np.nan), present)


def changes(points: PointsLike) -> RangeResult:
    """``changes``: how often the value changed (NaN to NaN is no change)."""
    seg = _Segments.of(points.offsets)
    n = len(seg.counts)
    present = seg.counts > 0
    v = points.values
    if len(v) < 2:
        return RangeResult(np.where(present, 0.0, np.nan), present)
    same = seg.seg[1:] == seg.seg[:-1]
    changed = (v[1:] != v[:-1]) & ~(np.isnan(v[1:]) & np.isnan(v[:-1])) & same
    counted = np.bincount(seg.seg[1:][changed], minlength=n).astype(np.float64)
    return RangeResult(np.where(present, counted, np.nan), present)


# -- *_over_time ---------------------------------------------------------------------------------------------


def _reduce(points: PointsLike, ufunc: np.ufunc) -> RangeResult:
    seg = _Segments.of(points.offsets)
    n = len(seg.counts)
    present = seg.counts > 0
    out = np.full(n, np.nan)
    if present.any():
        out[present] = ufunc.reduceat(points.values, np.asarray(points.offsets)[:-1][present])
    return RangeResult(out, present)


def sum_over_time(points: PointsLike) -> RangeResult:
    seg = _Segments.of(points.offsets)
    present = seg.counts > 0
    return RangeResult(np.where(present, _sum(seg, points.values), np.nan), present)


def avg_over_time(points: PointsLike) -> RangeResult:
    seg = _Segments.of(points.offsets)
    present = seg.counts > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = _sum(seg, points.values) / seg.counts
    return RangeResult(np.where(present, mean, np.nan), present)


def min_over_time(points: PointsLike) -> RangeResult:
    """NaN points are skipped unless every point is NaN, as Prometheus does."""
    return _reduce(points, np.fmin)


def max_over_time(points: PointsLike) -> RangeResult:
    """NaN points are skipped unless every point is NaN, as Prometheus does."""
    return _reduce(points, np.fmax)


def count_over_time(points: PointsLike) -> RangeResult:
    counts = np.diff(np.asarray(points.offsets)).astype(np.float64)
    present = counts > 0
    return RangeResult(np.where(present, counts, np.nan), present)


def last_over_time(points: PointsLike) -> RangeResult:
    seg = _Segments.of(points.offsets)
    present = seg.counts > 0
    if len(points.values) == 0:
        return RangeResult(np.full(len(present), np.nan), present)
    return RangeResult(np.where(present, points.values[seg.last], np.nan), present)


# -- classic histogram_quantile ------------------------------------------------------------------------------


def _almost_equal(a: float, b: float, epsilon: float) -> bool:
    if math.isnan(a) and math.isnan(b):
        return True
    if a == b:
        return True
    abs_sum = abs(a) + abs(b)
    diff = abs(a - b)
    if a == 0 or b == 0 or abs_sum < _MIN_NORMAL:
        return diff < epsilon * _MIN_NORMAL
    return diff / min(abs_sum, sys.float_info.max) < epsilon


def _fix_counts(counts: list[float], compat: Compat) -> tuple[bool, bool]:
    """Upstream ``ensureMonotonicAndIgnoreSmallDeltas`` (``ensureMonotonic`` for compat 2), in place."""
    forced = fixed = False
    prev = counts[0]
    for i in range(1, len(counts)):
        curr = counts[i]
        if compat == "2":
            if curr > prev:
                prev = curr
            elif curr < prev:
                counts[i] = prev
                forced = True
            continue
        if curr == prev:
            continue
        if _almost_equal(prev, curr, SMALL_DELTA_TOLERANCE):
            counts[i] = prev
            fixed = True
            continue
        if curr < prev:
            counts[i] = prev
            forced = True
            continue
        prev = curr
    return forced, fixed


def bucket_quantile(
    q: float, upper_bounds: Sequence[float], counts: Sequence[float], *, compat: Compat = "3"
) -> tuple[float, bool, bool]:
    """Prometheus's ``BucketQuantile`` for one histogram: ``(value, forced_monotonic, fixed_precision)``.

    Buckets are ``(le, cumulative count)`` pairs in any order; equal bounds
    are merged. The highest bound must be ``+Inf``. The lowest bucket
    interpolates from 0 when its bound is positive; a quantile in the ``+Inf``
    bucket answers the second highest bound.
    """
    if math.isnan(q):
        return math.nan, False, False
    if q < 0:
        return -math.inf, False, False
    if q > 1:
        return math.inf, False, False
    if len(upper_bounds) == 0:
        return math.nan, False, False
    pairs = sorted(zip(upper_bounds, counts, strict=True), key=lambda p: p[0])
    if not (math.isinf(pairs[-1][0]) and pairs[-1][0] > 0):
        return math.nan, False, False
    bounds: list[float] = []
    cum: list[float] = []
    for bound, count in pairs:
        if bounds and bounds[-1] == bound:
            cum[-1] += count
        else:
            bounds.append(bound)
            cum.append(count)
    forced, fixed = _fix_counts(cum, compat)
    if len(bounds) < 2:
        return math.nan, False, False
    observations = cum[-1]
    if observations == 0:
        return math.nan, False, False
    rank = q * observations
    b = len(bounds) - 1
    for i in range(len(bounds) - 1):
        if cum[i] >= rank:
            b = i
            break
    if b == len(bounds) - 1:
        return bounds[-2], forced, fixed
    if b == 0 and bounds[0] <= 0:
        return bounds[0], forced, fixed
    start = 0.0
    end = bounds[b]
    count = cum[b]
    if b > 0:
        start = bounds[b - 1]
        count -= cum[b - 1]
        rank -= cum[b - 1]
    return start + (end - start) * (rank / count), forced, fixed


def histogram_quantile(
    q: float,
    groups: IntArray,
    upper_bounds: FloatArray,
    counts: FloatArray,
    n_groups: int,
    *,
    compat: Compat = "3",
) -> QuantileResult:
    """``histogram_quantile`` over many classic histograms at once.

    Bucket ``i`` belongs to histogram ``groups[i]`` (``0 <= groups[i] < n_groups``,
    e.g. the label set without ``le``), with bound ``upper_bounds[i]`` (the parsed
    ``le``) and cumulative count ``counts[i]``. A group with no bucket has
    ``present`` False. Results equal :func:`bucket_quantile` per group.
    """
    groups = np.asarray(groups, np.int64)
    upper_bounds = np.asarray(upper_bounds, np.float64)
    counts = np.asarray(counts, np.float64)
    present = np.bincount(groups, minlength=n_groups)[:n_groups] > 0
    out = np.full(n_groups, np.nan)
    forced = np.zeros(n_groups, bool)
    fixed = np.zeros(n_groups, bool)
    if math.isnan(q) or not present.any():
        return QuantileResult(out, present, forced, fixed)
    if q < 0 or q > 1:
        out[present] = -math.inf if q < 0 else math.inf
        return QuantileResult(out, present, forced, fixed)
    order = np.lexsort((upper_bounds, groups))
    g, b, c = groups[order], upper_bounds[order], counts[order]
    new = np.ones(len(g), bool)
    new[1:] = (g[1:] != g[:-1]) | (b[1:] != b[:-1])
    starts_all = np.flatnonzero(new)
    c = np.add.reduceat(c, starts_all)
    g, b = g[starts_all], b[starts_all]
    group_start = np.flatnonzero(np.r_[True, g[1:] != g[:-1]])
    group_end = np.r_[group_start[1:], len(g)]
    gid = g[group_start]
    size = group_end - group_start
    last = group_end - 1
    valid = np.isposinf(b[last]) & (size >= 2)
    # Groups whose counts are not plainly monotonic go through the exact scalar fix.
    with np.errstate(invalid="ignore"):
        same = g[1:] == g[:-1]
        prev, curr = c[:-1], c[1:]
        odd = curr < prev
        if compat == "3":
            tiny = (curr != prev) & (
                np.abs(curr - prev) <= SMALL_DELTA_TOLERANCE * (np.abs(curr) + np.abs(prev))
            )
            odd |= tiny
        odd &= same
    if odd.any():
        bad_groups = np.unique(np.searchsorted(group_start, np.flatnonzero(odd) + 1, side="right") - 1)
        for k in bad_groups:
            lo, hi = int(group_start[k]), int(group_end[k])
            fixed_counts = c[lo:hi].tolist()
            f_forced, f_fixed = _fix_counts(fixed_counts, compat)
            c[lo:hi] = fixed_counts
            forced[gid[k]] = f_forced
            fixed[gid[k]] = f_fixed
    observations = c[last]
    rank = q * observations
    slot = np.repeat(np.arange(len(group_start)), size)
    position = np.arange(len(g)) - group_start[slot]
    not_last = position < (size[slot] - 1)
    with np.errstate(invalid="ignore"):
        hit = (c >= rank[slot]) & not_last
    candidate = np.where(hit, position, size[slot] - 1)
    chosen = np.minimum.reduceat(candidate, group_start)
    idx = group_start + chosen
    prev_idx = np.maximum(idx - 1, group_start)
    has_prev = chosen > 0
    bucket_start = np.where(has_prev, b[prev_idx], 0.0)
    bucket_end = b[idx]
    with np.errstate(invalid="ignore", divide="ignore"):
        below = np.where(has_prev, c[prev_idx], 0.0)
        interpolated = bucket_start + (bucket_end - bucket_start) * ((rank - below) / (c[idx] - below))
    second_highest = b[np.maximum(last - 1, group_start)]
    value = np.where(chosen == size - 1, second_highest, interpolated)
    value = np.where((chosen == 0) & (b[group_start] <= 0) & (chosen != size - 1), b[group_start], value)
    value = np.where(valid & (observations != 0), value, np.nan)
    out[gid] = value
    forced[gid] &= valid
    fixed[gid] &= valid
    return QuantileResult(out, present, forced, fixed)


# -- native histograms -------------------------------------------------------------------------------------


def native_bucket_bound(index: int, schema: int) -> float:
    """Upper bound of positive bucket ``index`` for exponential ``schema`` (upstream ``getBound``)."""
    if schema < 0:
        exp = index << -schema
        if exp == 1024:
            return sys.float_info.max
        if exp > 1024:
            return math.inf
        return math.ldexp(1.0, exp)
    frac_index = index & ((1 << schema) - 1)
    frac = 2.0 ** (frac_index / (1 << schema)) / 2.0
    exp = (index >> schema) + 1
    if frac == 0.5 and exp == 1025:
        return sys.float_info.max
    try:
        return math.ldexp(frac, exp)
    except OverflowError:
        return math.inf


def _native_buckets(h: NativeHistogram) -> list[tuple[float, float, float]]:
    """``(lower, upper, count)`` of every bucket, lowest first (upstream ``AllBucketIterator``)."""
    zt = h.zero_threshold
    out: list[tuple[float, float, float]] = []
    for index, count in reversed(h.buckets(positive=False)):
        lower = -native_bucket_bound(index, h.schema)
        upper = -native_bucket_bound(index - 1, h.schema)
        if -zt < upper < 0:
            upper = -zt
        out.append((lower, upper, count))
    if h.zero_count > 0:
        out.append((-zt, zt, h.zero_count))
    for index, count in h.buckets(positive=True):
        lower = native_bucket_bound(index - 1, h.schema)
        upper = native_bucket_bound(index, h.schema)
        if 0 < lower < zt:
            lower = zt
        out.append((lower, upper, count))
    return out


def native_histogram_quantile(q: float, h: NativeHistogram, *, compat: Compat = "3") -> float:
    """Prometheus's ``HistogramQuantile`` for one native histogram.

    Exponential interpolation within a bucket (linear in the zero bucket, and
    everywhere under ``compat="2"``); 0 is the natural bound when all
    buckets lie on one side; NaN observations (sum NaN) are ranked forward.
    """
    if q < 0:
        return -math.inf
    if q > 1:
        return math.inf
    if h.count == 0 or math.isnan(q):
        return math.nan
    buckets = _native_buckets(h)
    forward = compat == "2" or math.isnan(h.sum) or q < 0.5
    if forward:
        rank = q * h.count
        ordered = buckets
    else:
        rank = (1 - q) * h.count
        ordered = buckets[::-1]
    bucket = (0.0, 0.0, 0.0)
    count = 0.0
    for candidate in ordered:
        if compat == "3" and candidate[2] == 0:
            continue
        bucket = candidate
        count += candidate[2]
        if count >= rank:
            break
    lower, upper, bucket_count = bucket
    if lower < 0 < upper:
        if not h.negative_counts and h.positive_counts:
            lower = 0.0
        elif not h.positive_counts and h.negative_counts:
            upper = 0.0
    count = min(count, h.count)
    if count < rank:
        return upper
    if forward:
        rank -= count - bucket_count
    else:
        rank = count - rank
    fraction = rank / bucket_count if bucket_count else math.nan
    if compat == "2" or (lower <= 0 <= upper):
        return lower + (upper - lower) * fraction
    log_lower = math.log2(abs(lower))
    log_upper = math.log2(abs(upper))
    if lower > 0:
        return float(2.0 ** (log_lower + (log_upper - log_lower) * fraction))
    return float(-(2.0 ** (log_upper + (log_lower - log_upper) * (1 - fraction))))


@dataclass(slots=True)
class _Dense:
    schema: int
    zero_threshold: float
    zero_count: float
    count: float
    sum: float
    positive: dict[int, float]
    negative: dict[int, float]

    @classmethod
    def of(cls, h: NativeHistogram, schema: int) -> _Dense:
        def side(positive: bool) -> dict[int, float]:
            out: dict[int, float] = {}
            shift = h.schema - schema
            for index, count in h.buckets(positive):
                target = ((index - 1) >> shift) + 1 if shift > 0 else index
                out[target] = out.get(target, 0.0) + count
            return out

        return cls(schema, h.zero_threshold, h.zero_count, h.count, h.sum, side(True), side(False))

    def add(self, other: _Dense, sign: float) -> None:
        self.zero_count += sign * other.zero_count
        self.count += sign * other.count
        self.sum += sign * other.sum
        for mine, theirs in ((self.positive, other.positive), (self.negative, other.negative)):
            for index, count in theirs.items():
                mine[index] = mine.get(index, 0.0) + sign * count

    def scale(self, factor: float) -> None:
        self.zero_count *= factor
        self.count *= factor
        self.sum *= factor
        for side in (self.positive, self.negative):
            for index in side:
                side[index] *= factor

    def histogram(self) -> NativeHistogram:
        def spans(side: dict[int, float]) -> tuple[tuple[BucketSpan, ...], tuple[float, ...]]:
            result: list[BucketSpan] = []
            counts: list[float] = []
            previous_end: int | None = None
            start = 0
            length = 0
            for index in sorted(side):
                if previous_end is not None and index == previous_end:
                    length += 1
                else:
                    if length:
                        result.append(BucketSpan(start, length))
                    start = index - (previous_end if previous_end is not None else 0)
                    length = 1
                previous_end = index + 1
                counts.append(side[index])
            if length:
                result.append(BucketSpan(start, length))
            return tuple(result), tuple(counts)

        pos_spans, pos_counts = spans(self.positive)
        neg_spans, neg_counts = spans(self.negative)
        return NativeHistogram(
            schema=self.schema,
            zero_threshold=self.zero_threshold,
            zero_count=self.zero_count,
            count=self.count,
            sum=self.sum,
            positive_spans=pos_spans,
            positive_counts=pos_counts,
            negative_spans=neg_spans,
            negative_counts=neg_counts,
        )


def _detect_reset(curr: NativeHistogram, prev: NativeHistogram) -> bool:
    """A counter reset between two native histograms (simplified upstream ``DetectReset``)."""
    if curr.count < prev.count or curr.schema > prev.schema:
        return True
    if curr.zero_threshold < prev.zero_threshold or curr.zero_count < prev.zero_count:
        return True
    schema = min(curr.schema, prev.schema)
    a, b = _Dense.of(curr, schema), _Dense.of(prev, schema)
    for mine, theirs in ((a.positive, b.positive), (a.negative, b.negative)):
        for index, count in theirs.items():
            if mine.get(index, 0.0) < count:
                return True
    return False


def native_histogram_rate(
    timestamps: Sequence[float],
    histograms: Sequence[NativeHistogram],
    range_start: float,
    range_end: float,
    *,
    is_counter: bool = True,
    is_rate: bool = True,
) -> NativeHistogram | None:
    """``rate``/``increase``/``delta`` of native histograms: the result histogram, or None (< 2 points).

    Bucket layouts are brought to the lowest schema in the range; resets are
    detected per bucket and on count, zero bucket and schema; the result is
    extrapolated as :func:`extrapolated_rate` does for floats (using counts).
    """
    if len(histograms) < 2 or len(timestamps) != len(histograms):
        return None
    schema = min(h.schema for h in histograms)
    result = _Dense.of(histograms[-1], schema)
    first = _Dense.of(histograms[0], schema)
    result.add(first, -1.0)
    if is_counter:
        for prev, curr in itertools.pairwise(histograms):
            if _detect_reset(curr, prev):
                result.add(_Dense.of(prev, schema), 1.0)
    result.zero_threshold = max(h.zero_threshold for h in histograms)
    first_t, last_t = float(timestamps[0]), float(timestamps[-1])
    sampled = last_t - first_t
    average = sampled / (len(histograms) - 1)
    threshold = average * 1.1
    d_start = first_t - range_start
    d_end = range_end - last_t
    if d_start >= threshold:
        d_start = average / 2
    if is_counter and result.count > 0 and first.count >= 0:
        zero = sampled * (first.count / result.count)
        d_start = min(d_start, zero)
    if d_end >= threshold:
        d_end = average / 2
    factor = (sampled + d_start + d_end) / sampled if sampled else 1.0
    if is_rate:
        factor /= range_end - range_start
    result.scale(factor)
    return result.histogram()
