"""Health of a scrape target over time: Prometheus's targets page, with history.

:class:`TargetHealth` keeps a bounded timeline of :class:`HealthEvent` values
(one per scrape: up or down, how long it took, and for a failure its
:class:`FailureClass` and message), plus the facts the targets page shows:
state, last scrape, last duration, last error, and the number of consecutive
failures. It reads nothing but :class:`~promscope.observation.Observation`
values, so a replayed session gives the same history as the live loop.

The failure class travels in ``Observation.transport.extra["failure"]``
(set by :mod:`promscope.scrape.observe`); an observation without one is
classified from its outcome.
"""

from __future__ import annotations

import enum
from collections import Counter, deque
from collections.abc import Iterator
from dataclasses import dataclass

from promscope.observation import Observation, Outcome
from promscope.scrape.result import ErrorKind

__all__ = ["FailureClass", "HealthEvent", "HealthRun", "HealthState", "TargetHealth"]


class FailureClass(enum.StrEnum):
    """Why a scrape failed, as a person looks for it."""

    DNS = "dns"
    REFUSED = "refused"
    CONNECT = "connect"
    TLS = "tls"
    TIMEOUT = "timeout"
    PROTOCOL = "protocol"
    HTTP_STATUS = "http_status"
    CONTENT_TYPE = "content_type"
    DECODE = "decode"
    BODY_TOO_LARGE = "body_too_large"
    PARSE = "parse"
    SAMPLE_LIMIT = "sample_limit"
    INVALID_URL = "invalid_url"
    CONFIG = "config"
    """promscope's own configuration failed at scrape time (an unreadable token file)."""
    INTERNAL = "internal"
    """A promscope bug: the scrape raised. Reported, never fatal to the loop."""

    @classmethod
    def from_error_kind(cls, kind: ErrorKind) -> FailureClass:
        return cls(kind.value)

    @property
    def label(self) -> str:
        """A short name for a table column: ``DNS``, ``refused``, ``HTTP status``."""
        return _TITLES[self]


_TITLES = {
    FailureClass.DNS: "DNS",
    FailureClass.REFUSED: "refused",
    FailureClass.CONNECT: "connect",
    FailureClass.TLS: "TLS",
    FailureClass.TIMEOUT: "timeout",
    FailureClass.PROTOCOL: "protocol",
    FailureClass.HTTP_STATUS: "HTTP status",
    FailureClass.CONTENT_TYPE: "content type",
    FailureClass.DECODE: "decode",
    FailureClass.BODY_TOO_LARGE: "body too large",
    FailureClass.PARSE: "parse error",
    FailureClass.SAMPLE_LIMIT: "sample limit",
    FailureClass.INVALID_URL: "invalid URL",
    FailureClass.CONFIG: "config",
    FailureClass.INTERNAL: "internal",
}


class HealthState(enum.StrEnum):
    """Prometheus's target health words."""

    UNKNOWN = "unknown"
    UP = "up"
    DOWN = "down"


@dataclass(frozen=True, slots=True)
class HealthEvent:
    """One scrape as the timeline shows it."""

    time: float
    """Wall time of the scrape (the observation's time)."""
    up: bool
    duration: float
    failure: FailureClass | None = None
    message: str = ""
    samples: int = 0
    status: int | None = None


@dataclass(frozen=True, slots=True)
class HealthRun:
    """Consecutive scrapes with the same up/down state: a bar of the timeline."""

    up: bool
    start: float
    end: float
    scrapes: int
    failures: tuple[FailureClass, ...] = ()
    """The failure classes seen in a down run, in first-seen order."""


class TargetHealth:
    """Up/down history of one target, bounded to ``limit`` events (the oldest go first, counted)."""

    def __init__(self, limit: int = 720) -> None:
        if limit < 1:
            raise ValueError("a health history keeps at least one event")
        self.limit = limit
        self._events: deque[HealthEvent] = deque(maxlen=limit)
        self.dropped = 0
        """Events evicted from the timeline to stay within ``limit``."""
        self.scrapes = 0
        self.failures = 0
        self.by_class: Counter[FailureClass] = Counter()
        self.consecutive_failures = 0
        self.last: HealthEvent | None = None
        self.last_error: HealthEvent | None = None
        self.since: float | None = None
        """When the current state began (the first scrape of the current run)."""

    # -- recording ------------------------------------------------------------------------------------

    def record(self, observation: Observation) -> HealthEvent:
        """Add the scrape an observation describes; returns the event."""
        extra = observation.transport.extra
        failure: FailureClass | None = None
        up = observation.outcome is Outcome.ACCEPTED or observation.outcome is Outcome.PARTIAL
        if not up:
            named = extra.get("failure")
            try:
                failure = FailureClass(named) if named else _outcome_class(observation.outcome)
            except ValueError:
                failure = FailureClass.INTERNAL
        samples = int(extra.get("samples", observation.series) or 0)
        event = HealthEvent(
            time=observation.time,
            up=up,
            duration=observation.transport.duration or 0.0,
            failure=failure,
            message="" if up else observation.message,
            samples=samples,
            status=observation.transport.status,
        )
        self.add(event)
        return event

    def add(self, event: HealthEvent) -> None:
        if len(self._events) == self.limit:
            self.dropped += 1
        previous = self.last
        self._events.append(event)
        self.scrapes += 1
        self.last = event
        if previous is None or previous.up != event.up:
            self.since = event.time
        if event.up:
            self.consecutive_failures = 0
        else:
            self.failures += 1
            self.consecutive_failures += 1
            self.last_error = event
            if event.failure is not None:
                self.by_class[event.failure] += 1

    # -- reading --------------------------------------------------------------------------------------

    @property
    def state(self) -> HealthState:
        if self.last is None:
            return HealthState.UNKNOWN
        return HealthState.UP if self.last.up else HealthState.DOWN

    @property
    def last_scrape(self) -> float | None:
        return self.last.time if self.last is not None else None

    @property
    def last_duration(self) -> float | None:
        return self.last.duration if self.last is not None else None

    @property
    def last_error_message(self) -> str:
        """The current error, as Prometheus's ``lastError``: empty while the target is up."""
        if self.last is None or self.last.up:
            return ""
        return self.last.message

    def events(self) -> list[HealthEvent]:
        """The kept timeline, oldest first."""
        return list(self._events)

    def __iter__(self) -> Iterator[HealthEvent]:
        return iter(self._events)

    def __len__(self) -> int:
        return len(self._events)

    def runs(self) -> list[HealthRun]:
        """The kept timeline as runs of equal state, oldest first."""
        out: list[HealthRun] = []
        current: list[HealthEvent] = []
        for event in self._events:
            if current and current[0].up != event.up:
                out.append(_run(current))
                current = []
            current.append(event)
        if current:
            out.append(_run(current))
        return out

    def availability(self, since: float | None = None) -> float | None:
        """The share of kept scrapes (at or after ``since``) that were up; None with no scrapes."""
        events = [e for e in self._events if since is None or e.time >= since]
        if not events:
            return None
        return sum(1 for e in events if e.up) / len(events)

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready summary with the timeline (times in seconds since the epoch)."""
        return {
            "health": self.state.value,
            "lastScrape": self.last_scrape,
            "lastScrapeDuration": self.last_duration,
            "lastError": self.last_error_message,
            "consecutiveFailures": self.consecutive_failures,
            "scrapes": self.scrapes,
            "failures": self.failures,
            "failuresByClass": {k.value: v for k, v in sorted(self.by_class.items())},
            "since": self.since,
            "dropped": self.dropped,
            "history": [
                {
                    "time": e.time,
                    "up": e.up,
                    "duration": e.duration,
                    "failure": e.failure.value if e.failure else None,
                    "message": e.message,
                    "samples": e.samples,
                    "status": e.status,
                }
                for e in self._events
            ],
        }


def _outcome_class(outcome: Outcome) -> FailureClass:
    return FailureClass.CONNECT if outcome is Outcome.FAILED else FailureClass.PARSE


def _run(events: list[HealthEvent]) -> HealthRun:
    failures: dict[FailureClass, None] = {}
    for event in events:
        if event.failure is not None:
            failures.setdefault(event.failure)
    return HealthRun(events[0].up, events[0].time, events[-1].time, len(events), tuple(failures))
