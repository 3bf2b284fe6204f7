"""Observation: what one scrape or one push delivered, and how it travelled.

Every door promscope has (the scraper, the Pushgateway API, StatsD/DogStatsD,
remote_write, OTLP, a replayed session file) turns what arrived into one
:class:`Observation`. Views, the store, the recorder and ``promscope tail``
read nothing else, so pull and push differ only in :attr:`Observation.kind`
and :class:`Transport`.

An Observation is a frozen value: safe to hand to another task or thread,
to keep in a bounded log, and to write to a session file.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from promscope.model import Diagnostic, Labels, MetricFamily, Severity

__all__ = [
    "Changes",
    "Observation",
    "ObservationKind",
    "ObservationSink",
    "Outcome",
    "Transport",
]

_EMPTY: Mapping[str, str] = MappingProxyType({})


class ObservationKind(enum.StrEnum):
    """Which door an observation came through."""

    SCRAPE = "scrape"
    PUSHGATEWAY = "pushgateway"
    STATSD = "statsd"
    REMOTE_WRITE = "remote_write"
    OTLP = "otlp"
    REPLAY = "replay"


class Outcome(enum.StrEnum):
    """What became of what arrived."""

    ACCEPTED = "accepted"
    """Taken whole (a push stored, a scrape that Prometheus would ingest: ``up == 1``)."""
    PARTIAL = "partial"
    """Some of it taken, some refused (a StatsD packet with a bad line, a limit hit part-way)."""
    REJECTED = "rejected"
    """Refused whole: nothing it carried was stored (a 4xx to a pusher, ``up == 0`` on a scrape)."""
    FAILED = "failed"
    """Nothing usable arrived (unreachable target, connection cut, timeout)."""


@dataclass(frozen=True, slots=True)
class Transport:
    """How an observation travelled: the facts a person needs to find its sender.

    Only the fields that apply are set; ``extra`` holds protocol-specific facts
    worth showing (``{"remote_write_version": "2.0"}``, ``{"kernel_drops": "12"}``).
    """

    protocol: str
    """``http``, ``https``, ``udp``, ``tcp`` or ``unixgram``."""
    sender: str | None = None
    """The peer address (``127.0.0.1:53124``, a socket path), or the target URL for a scrape."""
    user_agent: str | None = None
    method: str | None = None
    path: str | None = None
    status: int | None = None
    """The HTTP status promscope answered (push) or received (scrape)."""
    content_type: str | None = None
    content_encoding: str | None = None
    wire_bytes: int = 0
    """Bytes as they travelled (compressed, if they were)."""
    body_bytes: int = 0
    """Bytes after decompression."""
    duration: float | None = None
    """Seconds from the first byte received (push) or request sent (scrape) to the end."""
    grouping_key: Labels = ()
    """Pushgateway grouping labels (``job`` first), empty elsewhere."""
    extra: Mapping[str, str] = field(default_factory=lambda: _EMPTY)


@dataclass(frozen=True, slots=True)
class Changes:
    """What an accepted push changed in what promscope holds (Pushgateway PUT/POST/DELETE)."""

    families_added: tuple[str, ...] = ()
    families_removed: tuple[str, ...] = ()
    families_changed: tuple[str, ...] = ()
    series_added: int = 0
    series_removed: int = 0
    series_changed: int = 0
    """Series present before and after whose value (or timestamp, help, type) differs."""

    @property
    def empty(self) -> bool:
        return not (
            self.families_added
            or self.families_removed
            or self.families_changed
            or self.series_added
            or self.series_removed
            or self.series_changed
        )


@dataclass(frozen=True, slots=True)
class Observation:
    """What one scrape, push, packet or request delivered, and how.

    ``source`` is a stable identity for the thing observed: the target URL for
    a scrape, ``job=…/instance=…`` style grouping key for a Pushgateway group,
    the sender address for StatsD, the remote_write sender. ``time`` is wall
    time in seconds from the injected clock of whoever made the observation.
    """

    kind: ObservationKind
    source: str
    time: float
    outcome: Outcome
    transport: Transport
    families: tuple[MetricFamily, ...] = ()
    diagnostics: tuple[Diagnostic, ...] = ()
    message: str = ""
    """One line for people: why it was rejected or failed, or what it was (``PUT job=batch``)."""
    changes: Changes | None = None
    series: int = 0
    """Series it carried (for a rejected push: series it would have carried)."""

    @property
    def accepted(self) -> bool:
        return self.outcome in (Outcome.ACCEPTED, Outcome.PARTIAL)

    def errors(self) -> tuple[Diagnostic, ...]:
        return tuple(d for d in self.diagnostics if d.severity is Severity.ERROR)


ObservationSink = Callable[[Observation], None]
"""Where observations go.

Receivers and the scrape loop call the sink synchronously on the event loop,
right after they have answered the sender, so a sink must be cheap and must
not block (append to a bounded store, ``queue.put_nowait``). A sink that
raises is the sink's bug: producers log it, count it and go on.
"""
