"""Lexical pieces shared by the Prometheus text and OpenMetrics parsers.

Everything here is a precompiled pattern or a small pure function; the
parsers call them on lines that already failed their fast path, so clarity
wins over speed, except for :class:`Interner`, which runs on every sample.
"""

from __future__ import annotations

import math
import re
import sys

__all__ = [
    "GO_FLOAT",
    "LABEL_NAME",
    "LEGACY_METRIC_NAME",
    "QUOTED",
    "Interner",
    "SegmentCache",
    "parse_go_float",
    "unescape",
]

LEGACY_METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
"""A metric name that needs no quotes (text 0.0.4, OpenMetrics 1.0)."""

LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
"""A label name that needs no quotes."""

QUOTED = re.compile(r'"([^"\\\n]*(?:\\.[^"\\\n]*)*)"')
"""A double-quoted string with backslash escapes, not crossing a line; group 1 is the raw inside."""

GO_FLOAT = re.compile(
    r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?"
    r"|[+-]?(?i:inf(?:inity)?)"
    r"|(?i:nan)"
)
"""What Prometheus's ``parseFloat`` accepts: Go's ``strconv.ParseFloat`` minus hex floats and
underscores (promparse.go rejects any of ``pP_``). A sign is allowed on ``Inf`` but not on ``NaN``."""

_INF = math.inf


def parse_go_float(token: str) -> tuple[float | None, str]:
    """Parse ``token`` as Prometheus does; return ``(value, "")`` or ``(None, reason)``.

    Python's ``float`` accepts more than Go does (``1_000``, ``+nan``, surrounding
    spaces, non-ASCII digits), so the token is matched against :data:`GO_FLOAT` first.
    Go reports a finite literal that overflows float64 as an error (``ErrRange``).
    """
    if GO_FLOAT.fullmatch(token) is None:
        return None, f"{token!r} is not a number"
    value = float(token)
    if (value == _INF or value == -_INF) and token.lstrip("+-")[:1] not in ("i", "I"):
        return None, f"{token!r} is out of the range of a 64-bit float"
    return value, ""


_ESCAPE = re.compile(r"\\(.?)", re.DOTALL)


def unescape(raw: str, allowed: str) -> tuple[str, list[tuple[int, str]]]:
    """Replace backslash escapes in ``raw``.

    ``allowed`` lists the escape letters understood (from ``\\``, ``n`` and ``"``);
    any other escape is kept literally, backslash included, as Prometheus's
    promparse and the OpenMetrics ABNF (``BS normal-char``) both do. Returns the
    text and ``(offset in raw, escape)`` for each escape that was not understood.
    """
    unknown: list[tuple[int, str]] = []

    def replace(match: re.Match[str]) -> str:
        char = match.group(1)
        if char and char in allowed:
            return "\n" if char == "n" else char
        unknown.append((match.start(), match.group(0)))
        return match.group(0)

    return _ESCAPE.sub(replace, raw), unknown


class Interner:
    """Shares equal strings and label pairs between samples to keep memory per sample small.

    A 1M-series exposition repeats the same label names and most label values
    many times; without sharing, each sample would hold its own copies.
    """

    __slots__ = ("pair", "value")

    def __init__(self) -> None:
        self.pair: dict[tuple[str, str], tuple[str, str]] = {}
        self.value: dict[str, str] = {}

    def labels(self, pairs: list[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
        """The label tuple for ``pairs``, with each pair shared with earlier samples."""
        setdefault = self.pair.setdefault
        return tuple(map(setdefault, pairs, pairs))

    def name(self, name: str) -> str:
        return sys.intern(name)

    def string(self, value: str) -> str:
        return self.value.setdefault(value, value)


_SEGMENT_CACHE_LIMIT = 1 << 20
"""Label pieces remembered by a fast path; beyond this, new pieces are still parsed, not cached."""


class SegmentCache:
    """Label pairs for the ``name="value`` pieces a fast path gets by splitting a label body.

    A fast path that knows the body has no backslash splits ``a="1",b="2"`` (its
    closing quote removed) at ``",`` and looks each piece up in :attr:`cache`; only
    pieces not seen before reach :meth:`labels`, which validates them.
    """

    __slots__ = ("cache", "interner")

    def __init__(self, interner: Interner) -> None:
        self.cache: dict[str, tuple[str, str]] = {}
        self.interner = interner

    def labels(self, parts: list[str]) -> tuple[tuple[str, str], ...] | None:
        """Label pairs for ``parts``, or None when a piece is not a plain ``name="value``."""
        cache = self.cache
        pair_setdefault = self.interner.pair.setdefault
        string = self.interner.string
        fullmatch = LABEL_NAME.fullmatch
        labels: list[tuple[str, str]] = []
        for part in parts:
            pair = cache.get(part)
            if pair is None:
                label_name, separator, label_value = part.partition('="')
                if not separator or fullmatch(label_name) is None:
                    return None
                if '"' in label_value or "\\" in label_value:
                    return None
                candidate = (sys.intern(label_name), string(label_value))
                pair = pair_setdefault(candidate, candidate)
                if len(cache) < _SEGMENT_CACHE_LIMIT:
                    cache[part] = pair
            labels.append(pair)
        return tuple(labels)
