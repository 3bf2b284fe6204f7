"""Bounded history: series ring buffers, source health, churn, cardinality and the event log.

The public face is :class:`Store` and the values it hands out; the PromQL
range functions that read its arrays live in :mod:`promscope.store.functions`.
"""

from __future__ import annotations

from promscope.store.series import ABSENT, SeriesBatch, SeriesView, is_absent
from promscope.store.store import (
    LOOSE_KINDS,
    SCRAPE_REPORT_SERIES,
    Cardinality,
    ChurnPoint,
    DropCounts,
    DropReason,
    EventLog,
    FamilyMeta,
    Matcher,
    MatcherLike,
    SourceHealth,
    Store,
    StoreLimits,
    StoreStats,
)

__all__ = [
    "ABSENT",
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
    "SeriesBatch",
    "SeriesView",
    "SourceHealth",
    "Store",
    "StoreLimits",
    "StoreStats",
    "is_absent",
]
