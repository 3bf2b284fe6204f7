"""PushLog: a bounded log of observations, with per-sender and per-source statistics.

Every push receiver, ``promscope tail`` and the store's event log keep what
arrived in a :class:`PushLog`. It answers the questions people ask a push
pipeline:

* what arrived lately (:meth:`PushLog.events`, newest last, filterable);
* who sends, how often, with what outcome, and what their last error was
  (:meth:`PushLog.senders`, :meth:`PushLog.sources`);
* who went silent (:meth:`PushLog.silent`, :meth:`PushLog.silent_sources`).

A *sender* is the host an observation came from (the peer address without
its port, since every push may come from a new ephemeral port); a *source* is
the :attr:`Observation.source` (a Pushgateway grouping key, a StatsD sender, a
scrape target).

An observation promscope makes itself (``Transport.protocol == "internal"``,
such as a Pushgateway group deleted by ``expire_after``) has no sender: it is
kept in the ring and counted, but belongs to no sender and does not count as
activity of its source (an expired group stays as silent as it was).

Everything is bounded: the event ring keeps ``max_events`` observations, the
sender and source tables ``max_senders`` / ``max_sources`` entries each, the
least recently seen being forgotten first. Whatever is dropped is counted in
:attr:`PushLog.dropped`. A PushLog is an :data:`~promscope.observation.ObservationSink`
(call it with an Observation); it is not thread-safe and is meant to be
called on the event loop, as sinks are.
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace

from promscope.observation import Observation, ObservationKind, Outcome

__all__ = ["INTERNAL_PROTOCOL", "LogDrops", "PushLog", "SenderStats", "describe_error", "sender_host"]

INTERNAL_PROTOCOL = "internal"
"""``Transport.protocol`` of observations promscope makes itself (no sender, nothing arrived)."""


def sender_host(sender: str | None) -> str:
    """The host part of a transport sender: ``"10.0.0.7:53124"`` -> ``"10.0.0.7"``.

    URLs (scrape targets), socket paths and bare hosts are returned as given;
    ``None`` becomes ``"unknown"``.
    """
    if not sender:
        return "unknown"
    if "://" in sender or sender.startswith("/"):
        return sender
    if sender.startswith("["):
        end = sender.find("]")
        return sender[1:end] if end > 0 else sender
    host, colon, port = sender.rpartition(":")
    if colon and port.isdigit() and host and ":" not in host:
        return host
    return sender


def describe_error(observation: Observation) -> str | None:
    """One line on what went wrong with an observation, or None when nothing did.

    The first error diagnostic with its position (and how many more there
    were), else the observation's message.
    """
    if observation.outcome is Outcome.ACCEPTED and not observation.errors():
        return None
    errors = observation.errors()
    if errors:
        first = errors[0]
        where = f"line {first.line}:{first.column}: " if first.line else ""
        more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
        return f"{first.code} {where}{first.message}{more}"
    if observation.outcome is Outcome.ACCEPTED:
        return None
    return observation.message or observation.outcome.value


@dataclass(slots=True)
class SenderStats:
    """What one sender (or one source) did: counts by outcome, bytes, first and last seen, last error.

    ``key`` is the sender host for :meth:`PushLog.senders` and the source for
    :meth:`PushLog.sources`.
    """

    key: str
    first_seen: float
    last_seen: float
    count: int = 0
    outcomes: dict[Outcome, int] = field(default_factory=dict)
    kinds: dict[ObservationKind, int] = field(default_factory=dict)
    last_outcome: Outcome | None = None
    last_error: str | None = None
    last_error_at: float | None = None
    wire_bytes: int = 0
    body_bytes: int = 0
    series: int = 0
    """Series carried by the latest observation."""
    series_total: int = 0
    """Series carried by all observations, summed."""
    address: str | None = None
    """The latest full transport address (with port), or the latest sender seen for a source."""
    user_agent: str | None = None
    """The latest user agent seen."""
    last_source: str | None = None
    """For a sender: the latest source it delivered to. For a source: the latest sender host."""

    @property
    def accepted(self) -> int:
        return self.outcomes.get(Outcome.ACCEPTED, 0) + self.outcomes.get(Outcome.PARTIAL, 0)

    @property
    def rejected(self) -> int:
        return self.outcomes.get(Outcome.REJECTED, 0) + self.outcomes.get(Outcome.FAILED, 0)

    def silent_for(self, now: float) -> float:
        """Seconds since this sender or source was last seen."""
        return max(0.0, now - self.last_seen)

    def copy(self) -> SenderStats:
        return replace(self, outcomes=dict(self.outcomes), kinds=dict(self.kinds))

    def as_dict(self) -> dict[str, object]:
        """A JSON-ready dict (outcome and kind names as strings)."""
        return {
            "key": self.key,
            "first_seen": self.first_seen,
            "last_seen": self.last_seen,
            "count": self.count,
            "outcomes": {outcome.value: n for outcome, n in self.outcomes.items()},
            "kinds": {kind.value: n for kind, n in self.kinds.items()},
            "last_outcome": self.last_outcome.value if self.last_outcome else None,
            "last_error": self.last_error,
            "last_error_at": self.last_error_at,
            "wire_bytes": self.wire_bytes,
            "body_bytes": self.body_bytes,
            "series": self.series,
            "series_total": self.series_total,
            "address": self.address,
            "user_agent": self.user_agent,
            "last_source": self.last_source,
        }


@dataclass(slots=True)
class LogDrops:
    """What a :class:`PushLog` let go of because a bound was reached."""

    events: int = 0
    """Observations pushed out of the ring by newer ones."""
    senders: int = 0
    """Senders forgotten (least recently seen first) beyond ``max_senders``."""
    sources: int = 0
    """Sources forgotten beyond ``max_sources``."""

    @property
    def total(self) -> int:
        return self.events + self.senders + self.sources


class PushLog:
    """A bounded ring of observations plus per-sender and per-source statistics.

    ::

        log = PushLog(max_events=10_000)
        receiver = PushgatewayReceiver(sink=log)
        ...
        for stats in log.silent(300):
            print(stats.key, "silent since", stats.last_seen)
    """

    def __init__(
        self,
        max_events: int = 10_000,
        max_senders: int = 10_000,
        clock: Callable[[], float] = time.time,
        *,
        max_sources: int | None = None,
        sender_key: Callable[[Observation], str] | None = None,
    ) -> None:
        if max_events < 1 or max_senders < 1:
            raise ValueError("max_events and max_senders must be at least 1")
        self.max_events = max_events
        self.max_senders = max_senders
        self.max_sources = max_sources if max_sources is not None else max_senders
        self.clock = clock
        self._sender_key = sender_key or (lambda obs: sender_host(obs.transport.sender))
        self._events: deque[Observation] = deque(maxlen=max_events)
        self._senders: OrderedDict[str, SenderStats] = OrderedDict()
        self._sources: OrderedDict[str, SenderStats] = OrderedDict()
        self.dropped = LogDrops()
        self.total = 0
        """Observations ever logged (the ring holds the last ``max_events``)."""
        self.outcomes: dict[Outcome, int] = {}
        self.kinds: dict[ObservationKind, int] = {}

    # the sink

    def __call__(self, observation: Observation) -> None:
        self.add(observation)

    def add(self, observation: Observation) -> None:
        """Log one observation (what calling the log does)."""
        events = self._events
        if len(events) == self.max_events:
            self.dropped.events += 1
        events.append(observation)
        self.total += 1
        outcome = observation.outcome
        kind = observation.kind
        self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1
        self.kinds[kind] = self.kinds.get(kind, 0) + 1
        if observation.transport.protocol == INTERNAL_PROTOCOL:
            return
        error = describe_error(observation)
        sender = self._sender_key(observation)
        stats = self._touch(self._senders, sender, observation, error, self.max_senders)
        if stats is not None:
            stats.last_source = observation.source
            stats.address = observation.transport.sender
        stats = self._touch(self._sources, observation.source, observation, error, self.max_sources)
        if stats is not None:
            stats.last_source = sender
            stats.address = observation.transport.sender

    def _touch(
        self,
        table: OrderedDict[str, SenderStats],
        key: str,
        observation: Observation,
        error: str | None,
        limit: int,
    ) -> SenderStats | None:
        when = observation.time
        stats = table.get(key)
        if stats is None:
            if len(table) >= limit:
                table.popitem(last=False)
                if table is self._senders:
                    self.dropped.senders += 1
                else:
                    self.dropped.sources += 1
            stats = table[key] = SenderStats(key, when, when)
        else:
            table.move_to_end(key)
            if when > stats.last_seen:
                stats.last_seen = when
            if when < stats.first_seen:
                stats.first_seen = when
        stats.count += 1
        outcome = observation.outcome
        stats.outcomes[outcome] = stats.outcomes.get(outcome, 0) + 1
        kind = observation.kind
        stats.kinds[kind] = stats.kinds.get(kind, 0) + 1
        stats.last_outcome = outcome
        if error is not None:
            stats.last_error = error
            stats.last_error_at = when
        transport = observation.transport
        stats.wire_bytes += transport.wire_bytes
        stats.body_bytes += transport.body_bytes
        stats.series = observation.series
        stats.series_total += observation.series
        if transport.user_agent:
            stats.user_agent = transport.user_agent
        return stats

    # reading

    def __len__(self) -> int:
        return len(self._events)

    def __iter__(self) -> Iterator[Observation]:
        return iter(tuple(self._events))

    def events(
        self,
        *,
        kind: ObservationKind | str | None = None,
        sender: str | None = None,
        source: str | None = None,
        outcome: Outcome | str | None = None,
        since: float | None = None,
        limit: int | None = None,
    ) -> list[Observation]:
        """Logged observations, oldest first, filtered; ``limit`` keeps the newest ``limit``.

        ``sender`` matches the sender host (as :meth:`senders` names it) or the
        full address.
        """
        wanted_kind = ObservationKind(kind) if kind is not None else None
        wanted_outcome = Outcome(outcome) if outcome is not None else None
        selected: Iterable[Observation] = self._events
        out = [
            obs
            for obs in selected
            if (wanted_kind is None or obs.kind is wanted_kind)
            and (wanted_outcome is None or obs.outcome is wanted_outcome)
            and (source is None or obs.source == source)
            and (since is None or obs.time >= since)
            and (sender is None or obs.transport.sender == sender or self._sender_key(obs) == sender)
        ]
        if limit is not None:
            out = out[-limit:] if limit > 0 else []
        return out

    def last(self, n: int = 1) -> list[Observation]:
        """The newest ``n`` observations, oldest first."""
        if n <= 0:
            return []
        events = self._events
        return list(events)[-n:] if n < len(events) else list(events)

    def senders(self) -> list[SenderStats]:
        """A copy of every sender's statistics, most recently seen last."""
        return [stats.copy() for stats in self._senders.values()]

    def sources(self) -> list[SenderStats]:
        """A copy of every source's statistics, most recently seen last."""
        return [stats.copy() for stats in self._sources.values()]

    def sender(self, key: str) -> SenderStats | None:
        stats = self._senders.get(key) or self._senders.get(sender_host(key))
        return stats.copy() if stats else None

    def source(self, key: str) -> SenderStats | None:
        stats = self._sources.get(key)
        return stats.copy() if stats else None

    def silent(self, threshold: float, now: float | None = None) -> list[SenderStats]:
        """Senders not seen for at least ``threshold`` seconds, longest silent first."""
        return self._silent(self._senders, threshold, now)

    def silent_sources(self, threshold: float, now: float | None = None) -> list[SenderStats]:
        """Sources (grouping keys, targets) silent for ``threshold`` seconds or more, longest first."""
        return self._silent(self._sources, threshold, now)

    def _silent(
        self, table: OrderedDict[str, SenderStats], threshold: float, now: float | None
    ) -> list[SenderStats]:
        cutoff = (self.clock() if now is None else now) - threshold
        found = [stats.copy() for stats in table.values() if stats.last_seen <= cutoff]
        found.sort(key=lambda stats: stats.last_seen)
        return found

    def clear(self) -> None:
        """Forget everything, counters included."""
        self._events.clear()
        self._senders.clear()
        self._sources.clear()
        self.dropped = LogDrops()
        self.total = 0
        self.outcomes.clear()
        self.kinds.clear()
