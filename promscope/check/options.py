"""Option values of the check rules, kept apart so that loading them costs next to nothing.

``promscope check`` builds these on every start; the rules themselves (and their
compiled patterns) load only when they run.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["CardinalityOptions"]


@dataclass(frozen=True, slots=True)
class CardinalityOptions:
    """Thresholds for the ``CARD-…`` warnings."""

    max_family_series: int = 10_000
    """CARD-003 above this many series in one family."""
    max_label_values: int = 1_000
    """CARD-004 above this many distinct values of one label in one family."""
    unique_ratio: float = 0.9
    """CARD-002 when distinct values / label sets reaches this…"""
    min_series: int = 50
    """…over at least this many label sets."""
    id_ratio: float = 0.5
    """CARD-001 when at least this share of the classified values look like IDs…"""
    min_id_values: int = 5
    """…and the label has at least this many distinct values."""
    classify_limit: int = 200
    """Distinct values per label looked at by the ID classifier."""
    examples: int = 3
    """Example values kept per label."""
