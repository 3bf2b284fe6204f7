"""``promscope scrape`` live mode: scrape targets every interval, one line per scrape, then their health.

``promscope scrape URL… --interval 5s`` (or any target source: ``--config``,
``--prometheus-config``, ``--file-sd``, ``--dns-srv``, ``--prometheus-url``,
or the ``[[targets]]`` of the ``promscope.toml`` found from the working
directory) runs the engine's :class:`~promscope.scrape.ScrapeManager` on
``asyncio.run``: one never-overlapping, jittered loop per target, targets
re-discovered as their sources change. This module builds the sources, prints
each scrape as it completes, and prints a per-target health summary (the
targets page, with history) when the run ends: Ctrl-C, SIGTERM, ``--count``
or ``--duration``.

``--output json`` prints JSON Lines: one ``promscope.scrape.live/v1`` object per
scrape::

    {"schema": "promscope.scrape.live/v1", "time": float, "source": str (job/instance),
     "job": str, "instance": str, "url": str, "up": 0|1,
     "outcome": "accepted"|"partial"|"rejected"|"failed", "status": int|null,
     "duration": float|null (seconds), "samples": int (scraped), "series_added": int,
     "series": int (samples ingested, the up/scrape_* series included),
     "body_bytes": int (decoded), "wire_bytes": int, "content_type": str|null, "format": str|null,
     "failure": str|null (dns, refused, connect, tls, timeout, protocol, http_status, content_type,
                          decode, body_too_large, parse, sample_limit, invalid_url, config, internal),
     "error": str|null (why the scrape failed), "errors": int, "warnings": int,
     "first_error": null | {"code": str, "line": int, "column": int, "message": str}}

and, when the run ends, one summary::

    {"schema": "promscope.scrape.live.summary/v1", "elapsed": float, "scrapes": int, "up": int,
     "down": int, "lines_dropped": int, "untracked": int,
     "targets": [{"source": str, "job": str, "instance": str, "url": str, "origin": str,
                  "present": bool (still a target when the run ended), "health": "up"|"down"|"unknown",
                  "interval": float|null, "scrapes": int, "up_ratio": float|null, "failures": int,
                  "failures_by_class": {str: int}, "last_error": str, "last_error_class": str|null,
                  "last_scrape": float|null, "consecutive_failures": int,
                  "missed_intervals": int, "overruns": int, "lag_max": float}],
     "sources": [{"name": str, "targets": int, "refreshes": int, "failures": int,
                  "errors": {str: str}}]}

Fields are only ever added. Exit codes: 0 stopped cleanly with at least one
successful scrape; 2 usage or configuration error; 3 no target could be
scraped at all (or the ``--record`` file could not be created).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import math
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Any

from cli.live import LineWriter, diagnostic_lines, install_signals, remove_signals, warnings_text, write_lines
from cli.output import Styler, format_bytes, print_error

if TYPE_CHECKING:
    from promscope.observation import Observation
    from promscope.scrape.health import TargetHealth
    from promscope.scrape.loop import ScrapeManager
    from promscope.scrape.sd import SourceStatus, TargetSource
    from promscope.scrape.targets import ConfigIssue, ScrapeConfig, ScrapeSettings, ScrapeTarget
    from promscope.store.session import SessionRecorder

__all__ = [
    "LINE_SCHEMA",
    "SUMMARY_SCHEMA",
    "LiveOptions",
    "LivePrinter",
    "LiveResult",
    "build_sources",
    "run_live",
    "scrape_json",
    "scrape_line",
]

LINE_SCHEMA = "promscope.scrape.live/v1"
SUMMARY_SCHEMA = "promscope.scrape.live.summary/v1"

_MAX_TRACKED = 10_000
"""Targets whose health the summary keeps (targets that went away are forgotten first)."""
_MAX_NOTES = 10_000
"""Source problems remembered so each is printed once."""
_TICK = 0.25
"""Seconds between looks at the target set and the sources (added/removed targets, new source errors)."""
_FILE_SD_POLL = 5.0
"""Seconds between stat() calls on file_sd files (FileSD's own default), shorter for short intervals."""


# -- options -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LiveOptions:
    """What the live mode was asked to do (the command's flags, resolved)."""

    base: ScrapeConfig
    """Request settings, job, interval and timeout for URLs, --file-sd and --dns-srv targets."""
    settings: ScrapeSettings
    """``[scrape]`` of promscope.toml (or defaults): connection pool, target limit, history length."""
    urls: tuple[str, ...] = ()
    file_sd: tuple[str, ...] = ()
    dns_srv: tuple[str, ...] = ()
    prometheus_configs: tuple[str, ...] = ()
    prometheus_urls: tuple[str, ...] = ()
    config_jobs: bool = False
    """Scrape the ``[[targets]]``, ``prometheus_config`` and ``prometheus_server`` of ``settings``."""
    interval: float | None = None
    """``--interval``: overrides every target's own interval (and caps its timeout)."""
    timeout: float | None = None
    """``--timeout`` when given explicitly: overrides every target's timeout (capped at its interval)."""
    output: str = "text"
    style: Styler = field(default_factory=lambda: Styler(False))
    verbose: bool = False
    count: int | None = None
    duration: float | None = None
    record: str | None = None
    jitter: bool = True


@dataclass
class LiveResult:
    """How a run ended, for the exit code."""

    scrapes: int
    up: int
    targets: int


# -- presentation --------------------------------------------------------------------------------------


def _utc(timestamp: float) -> str:
    seconds = time.gmtime(timestamp)
    millis = int((timestamp - math.floor(timestamp)) * 1000) if math.isfinite(timestamp) else 0
    return f"{time.strftime('%H:%M:%S', seconds)}.{millis:03d}Z"


def _seconds(value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return "-"
    if value < 1:
        return f"{value * 1000:.1f}ms"
    return f"{value:.2f}s"


def _int(text: object) -> int:
    try:
        return int(str(text))
    except ValueError:
        return 0


def _first_error(observation: Observation) -> Any:
    from promscope.model import Severity

    for diagnostic in observation.diagnostics:
        if diagnostic.severity is Severity.ERROR:
            return diagnostic
    return None


def _is_up(observation: Observation) -> bool:
    from promscope.observation import Outcome

    return observation.outcome is Outcome.ACCEPTED or observation.outcome is Outcome.PARTIAL


def scrape_line(
    observation: Observation, style: Styler, *, width: int = 0, verbose: bool = False, name: str | None = None
) -> str:
    """``12:00:05.000Z  node/10.0.0.1:9100  up  12.3ms  1,204 samples  +3 series  84.1 KiB`` and, when the
    scrape failed, its failure class and message (the first error diagnostic with its position)."""
    from promscope.model import Severity

    extra = observation.transport.extra
    transport = observation.transport
    up = _is_up(observation)
    parts = [
        style(_utc(observation.time), "dim"),
        style((name or observation.source).ljust(width), "bold"),
        style("up  ", "green") if up else style("DOWN", "bold", "red"),
        f"{_seconds(transport.duration):>8}",
        f"{_int(extra.get('samples', 0)):>7,} samples",
        f"+{_int(extra.get('series_added', 0)):,} series",
        format_bytes(transport.body_bytes),
    ]
    if transport.status is not None and transport.status != 200 and extra.get("failure") != "http_status":
        parts.append(f"HTTP {transport.status}")
    first = _first_error(observation)
    if not up:
        failure = extra.get("failure") or "failed"
        parts.append(style(f"{_failure_label(failure)}: {observation.message}", "red"))
    if first is not None:
        errors = sum(1 for d in observation.diagnostics if d.severity is Severity.ERROR)
        where = f" at {first.line}:{max(first.column, 1)}" if first.line else ""
        more = f" (+{errors - 1} more)" if errors > 1 else ""
        parts.append(style(f"{first.code}{where}: {first.message}{more}", "red"))
    warnings = warnings_text(observation.diagnostics, style)
    if warnings:
        parts.append(warnings)
    line = "  ".join(parts)
    if not verbose:
        return line
    more_lines = [f"    {transport.sender or '-'}", *diagnostic_lines(observation.diagnostics, style)]
    return "\n".join([line, *more_lines])


def _failure_label(value: str) -> str:
    from promscope.scrape.health import FailureClass

    try:
        return FailureClass(value).label
    except ValueError:
        return value


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def scrape_json(observation: Observation) -> dict[str, Any]:
    """The ``promscope.scrape.live/v1`` object for one scrape (see the module docstring)."""
    from promscope.model import Severity

    transport = observation.transport
    extra = transport.extra
    up = _is_up(observation)
    first = _first_error(observation)
    return {
        "schema": LINE_SCHEMA,
        "time": observation.time,
        "source": observation.source,
        "job": extra.get("job", ""),
        "instance": extra.get("instance", ""),
        "url": transport.sender or "",
        "up": 1 if up else 0,
        "outcome": observation.outcome.value,
        "status": transport.status,
        "duration": _finite(transport.duration),
        "samples": _int(extra.get("samples", 0)),
        "series_added": _int(extra.get("series_added", 0)),
        "series": observation.series,
        "body_bytes": transport.body_bytes,
        "wire_bytes": transport.wire_bytes,
        "content_type": transport.content_type,
        "format": extra.get("format"),
        "failure": None if up else (extra.get("failure") or None),
        "error": None if up else observation.message,
        "errors": sum(1 for d in observation.diagnostics if d.severity is Severity.ERROR),
        "warnings": sum(1 for d in observation.diagnostics if d.severity is Severity.WARNING),
        "first_error": None
        if first is None
        else {"code": first.code, "line": first.line, "column": first.column, "message": first.message},
    }


# -- the sink ------------------------------------------------------------------------------------------


@dataclass
class _Tracked:
    """One target as the summary shows it: its health (from the observations shown) and its schedule."""

    source: str
    health: TargetHealth
    url: str = ""
    origin: str = ""
    job: str = ""
    instance: str = ""
    interval: float | None = None
    present: bool = True
    listed: bool = False
    """Seen in the manager's target set by :meth:`LivePrinter.sync` (a scrape may be seen first)."""
    missed_intervals: int = 0
    overruns: int = 0
    lag_max: float = 0.0


@dataclass
class LivePrinter(LineWriter):
    """The manager's sink: counts, keeps per-target health, records, and queues one line per scrape.

    Lines are written by :meth:`writer` off the event loop, so a slow terminal or pipe never delays a
    scrape; when the queue is full the line is dropped and counted. After ``limit`` scrapes the rest
    are ignored (neither shown, recorded nor counted) and ``on_limit`` is called once.
    """

    output: str
    style: Styler
    history: int = 720
    verbose: bool = False
    limit: int | None = None
    on_limit: Any = None
    recorder: SessionRecorder | None = None
    shown: int = 0
    up: int = 0
    ignored: int = 0
    lines_dropped: int = 0
    untracked: int = 0
    record_errors: int = 0
    width: int = 0
    tracked: dict[tuple[str, str], _Tracked] = field(default_factory=dict)
    """Targets by (job/instance, URL): two targets may share job and instance (same host:port)."""
    _by_source: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    _queue: asyncio.Queue[str] = field(default_factory=asyncio.Queue)

    def __call__(self, observation: Observation) -> None:
        if self.limit is not None and self.shown >= self.limit:
            self.ignored += 1
            return
        self.shown += 1
        if _is_up(observation):
            self.up += 1
        entry = self._entry_for(observation)
        if entry is not None:
            entry.health.record(observation)
            extra = observation.transport.extra
            entry.job = extra.get("job", entry.job)
            entry.instance = extra.get("instance", entry.instance)
        if self.recorder is not None:
            try:
                self.recorder(observation)
            except Exception:  # the recorder counts its own drops; a failing one must not stop the scrapes
                self.record_errors += 1
        if self.output == "json":
            line = json.dumps(scrape_json(observation), ensure_ascii=False)
        else:
            name = observation.source
            if entry is not None and self.shared(entry):
                name = f"{name} {entry.url}"
            self.width = max(self.width, len(name))
            line = scrape_line(observation, self.style, width=self.width, verbose=self.verbose, name=name)
        self.emit(line)
        if self.limit is not None and self.shown >= self.limit and self.on_limit is not None:
            self.on_limit()

    def shared(self, entry: _Tracked) -> bool:
        """Whether another target has the same job/instance (then the URL tells them apart)."""
        return len(self._by_source.get(entry.source, ())) > 1

    def name(self, entry: _Tracked) -> str:
        return f"{entry.source} {entry.url}" if self.shared(entry) else entry.source

    def _entry_for(self, observation: Observation) -> _Tracked | None:
        source = observation.source
        url = observation.transport.sender or ""
        entry = self.tracked.get((source, url))
        if entry is not None:
            return entry
        keys = self._by_source.get(source, [])
        present = [key for key in keys if self.tracked[key].present]
        if len(present) == 1:  # a redirect: the observation names the final URL, the target the first
            return self.tracked[present[0]]
        return self._track(source, url)

    def _track(self, source: str, url: str) -> _Tracked | None:
        key = (source, url)
        entry = self.tracked.get(key)
        if entry is not None:
            return entry
        if len(self.tracked) >= _MAX_TRACKED:
            gone = next((k for k, item in self.tracked.items() if not item.present), None)
            if gone is None:
                self.untracked += 1
                return None
            self._forget(gone)
        from promscope.scrape.health import TargetHealth

        entry = _Tracked(source, TargetHealth(self.history), url=url)
        self.tracked[key] = entry
        self._by_source.setdefault(source, []).append(key)
        return entry

    def _forget(self, key: tuple[str, str]) -> None:
        del self.tracked[key]
        keys = self._by_source.get(key[0], [])
        if key in keys:
            keys.remove(key)
        if not keys:
            self._by_source.pop(key[0], None)

    def sync(self, manager: ScrapeManager) -> tuple[list[str], list[str]]:
        """Take the manager's current targets and schedules; returns the names of targets added and gone."""
        current: dict[tuple[str, str], Any] = {}
        for status in manager.targets():
            current.setdefault((status.target.identity, status.target.url), status)
        added: list[tuple[str, str]] = []
        for key, status in current.items():
            entry = self.tracked.get(key)
            if entry is None or not entry.present or not entry.listed:
                added.append(key)
            entry = entry or self._track(*key)
            if entry is None:
                continue
            target = status.target
            entry.present = entry.listed = True
            entry.origin = target.origin
            entry.job = target.job
            entry.instance = target.instance
            entry.interval = target.interval
            entry.missed_intervals = status.stats.missed_intervals
            entry.overruns = status.stats.overruns
            entry.lag_max = status.stats.lag_max
        gone = [key for key, entry in self.tracked.items() if entry.present and key not in current]
        for key in gone:
            self.tracked[key].present = self.tracked[key].listed = False
        return [self.name(self.tracked[k]) for k in added if k in self.tracked], [
            self.name(self.tracked[k]) for k in gone
        ]


# -- summary -------------------------------------------------------------------------------------------


def _plural(count: int, word: str) -> str:
    return f"{count:,} {word}" if count == 1 else f"{count:,} {word}s"


def _ratio(entry: _Tracked) -> float | None:
    health = entry.health
    return (health.scrapes - health.failures) / health.scrapes if health.scrapes else None


def _order(printer: LivePrinter) -> list[_Tracked]:
    return sorted(printer.tracked.values(), key=lambda e: (not e.present, e.job, e.instance, e.source))


def summary_text(printer: LivePrinter, sources: dict[str, SourceStatus], elapsed: float) -> str:
    """The health summary: one row per target (up ratio, scrapes, failures by class, missed, last error)."""
    style = printer.style
    down = printer.shown - printer.up
    targets = len(printer.tracked)
    head = (
        f"--- {_plural(printer.shown, 'scrape')} of {_plural(targets, 'target')} in {elapsed:.1f}s: "
        f"{printer.up:,} up, {down:,} down ---"
    )
    lines = [style(head, "bold")]
    entries = _order(printer)
    if entries:
        rows = [("TARGET", "UP", "SCRAPES", "FAILURES", "MISSED", "LAST ERROR")]
        for entry in entries:
            health = entry.health
            ratio = _ratio(entry)
            by_class = ", ".join(
                f"{failure.label} {count:,}"
                for failure, count in sorted(health.by_class.items(), key=lambda item: -item[1])
            )
            name = printer.name(entry) + ("" if entry.present else " (gone)")
            last = health.last_error
            last_error = ""
            if last is not None:
                when = "" if health.last is last else f" (at {_utc(last.time)})"
                last_error = f"{last.message}{when}"
            rows.append(
                (
                    name,
                    "-" if ratio is None else f"{ratio * 100:.1f}%",
                    f"{health.scrapes:,}",
                    by_class or "-",
                    f"{entry.missed_intervals:,}",
                    last_error,
                )
            )
        widths = [max(len(row[i]) for row in rows) for i in range(5)]
        for index, row in enumerate(rows):
            cells = [row[0].ljust(widths[0]), row[1].rjust(widths[1]), row[2].rjust(widths[2])]
            cells += [row[3].ljust(widths[3]), row[4].rjust(widths[4]), row[5]]
            text = "  ".join(cells).rstrip()
            if index == 0:
                text = style(text, "bold")
            elif row[3] != "-":
                text = style(text, "red") if row[1].startswith("0.0") else style(text, "yellow")
            lines.append(text)
    else:
        lines.append("no targets")
    for name, status in sorted(sources.items()):
        for item, message in sorted(status.errors.items()):
            lines.append(style(f"source {name}: {item}: {message}", "yellow"))
    notes = []
    if printer.lines_dropped:
        notes.append(f"{_plural(printer.lines_dropped, 'line')} not written (output too slow)")
    if printer.untracked:
        over = f"{_plural(printer.untracked, 'scrape')} of targets over {_MAX_TRACKED:,}"
        notes.append(f"{over} are not in this table")
    if printer.record_errors:
        notes.append(f"{_plural(printer.record_errors, 'observation')} could not be recorded")
    lines.extend(style(note, "yellow") for note in notes)
    return "\n".join(lines)


def summary_json(printer: LivePrinter, sources: dict[str, SourceStatus], elapsed: float) -> dict[str, Any]:
    """The ``promscope.scrape.live.summary/v1`` object (see the module docstring)."""
    targets = []
    for entry in _order(printer):
        health = entry.health
        last = health.last_error
        targets.append(
            {
                "source": entry.source,
                "job": entry.job,
                "instance": entry.instance,
                "url": entry.url,
                "origin": entry.origin,
                "present": entry.present,
                "health": health.state.value,
                "interval": entry.interval,
                "scrapes": health.scrapes,
                "up_ratio": _ratio(entry),
                "failures": health.failures,
                "failures_by_class": {k.value: v for k, v in sorted(health.by_class.items())},
                "last_error": last.message if last is not None else "",
                "last_error_class": last.failure.value if last is not None and last.failure else None,
                "last_scrape": health.last_scrape,
                "consecutive_failures": health.consecutive_failures,
                "missed_intervals": entry.missed_intervals,
                "overruns": entry.overruns,
                "lag_max": entry.lag_max,
            }
        )
    return {
        "schema": SUMMARY_SCHEMA,
        "elapsed": round(elapsed, 6),
        "scrapes": printer.shown,
        "up": printer.up,
        "down": printer.shown - printer.up,
        "lines_dropped": printer.lines_dropped,
        "untracked": printer.untracked,
        "targets": targets,
        "sources": [
            {
                "name": name,
                "targets": status.targets,
                "refreshes": status.refreshes,
                "failures": status.failures,
                "errors": dict(status.errors),
            }
            for name, status in sorted(sources.items())
        ],
    }


# -- sources -------------------------------------------------------------------------------------------


class _Override:
    """A source whose targets all get ``--interval`` (and ``--timeout``, capped at the interval)."""

    def __init__(self, source: TargetSource, interval: float | None, timeout: float | None) -> None:
        self.source = source
        self._interval = interval
        self._timeout = timeout

    @property
    def name(self) -> str:
        return self.source.name

    @property
    def interval(self) -> float:
        return self.source.interval

    @property
    def status(self) -> SourceStatus:
        return self.source.status

    async def discover(self) -> list[ScrapeTarget] | None:
        found = await self.source.discover()
        if found is None:
            return None
        return [override(target, self._interval, self._timeout) for target in found]

    async def aclose(self) -> None:
        await self.source.aclose()


def override(target: ScrapeTarget, interval: float | None, timeout: float | None) -> ScrapeTarget:
    """``target`` scraped every ``interval`` with ``timeout`` (each None: keep the target's own)."""
    new_interval = target.interval if interval is None else interval
    new_timeout = min(target.timeout if timeout is None else timeout, new_interval)
    if new_interval == target.interval and new_timeout == target.timeout:
        return target
    request = dataclasses.replace(target.request, timeout=new_timeout)
    return dataclasses.replace(target, interval=new_interval, request=request)


@dataclass
class Sources:
    """Everything to scrape: fixed targets, discovery sources, and what configs said promscope ignores."""

    targets: list[ScrapeTarget] = field(default_factory=list)
    sources: list[TargetSource] = field(default_factory=list)
    issues: list[ConfigIssue] = field(default_factory=list)
    origins: list[str] = field(default_factory=list)
    """What the targets come from, for the start line."""


def _poll(interval: float | None, default: float) -> float:
    return min(_FILE_SD_POLL, interval if interval is not None else default)


def build_sources(options: LiveOptions) -> Sources:
    """The targets and sources ``options`` name. Raises ConfigError for a bad URL or config file."""
    from promscope.scrape.sd import PrometheusSD, sources_for
    from promscope.scrape.targets import DnsSDConfig, FileSDConfig, load_prometheus_config, targets_from_urls

    base = options.base
    out = Sources()
    seen: set[str] = set()

    def add(source: TargetSource) -> None:
        if source.name in seen:
            return
        seen.add(source.name)
        if options.interval is not None or options.timeout is not None:
            source = _Override(source, options.interval, options.timeout)
        out.sources.append(source)

    def from_job(job: ScrapeConfig) -> None:
        for source in sources_for(job, poll_interval=_poll(options.interval, job.interval)):
            add(source)

    if options.urls:
        out.targets = targets_from_urls(
            options.urls, job=base.job_name, interval=base.interval, timeout=base.timeout, config=base
        )
        out.origins.append(_plural(len(options.urls), "URL"))
    if options.file_sd:
        from_job(dataclasses.replace(base, file_sd_configs=(FileSDConfig(options.file_sd, 300.0),)))
        out.origins.append(f"file_sd {', '.join(options.file_sd)}")
    if options.dns_srv:
        from_job(dataclasses.replace(base, dns_sd_configs=(DnsSDConfig(options.dns_srv, "SRV", 0, 30.0),)))
        out.origins.append(f"DNS SRV {', '.join(options.dns_srv)}")
    prometheus_configs = list(options.prometheus_configs)
    prometheus_urls = list(options.prometheus_urls)
    if options.config_jobs:
        settings = options.settings
        for job in settings.jobs:
            from_job(job)
        if settings.jobs:
            out.origins.append(f"{_plural(len(settings.jobs), 'job')} of {settings.path or 'promscope.toml'}")
        prometheus_configs.extend(p for p in settings.prometheus_configs if p not in prometheus_configs)
        prometheus_urls.extend(u for u in settings.prometheus_servers if u not in prometheus_urls)
    for path in prometheus_configs:
        loaded = load_prometheus_config(path)
        out.issues.extend(loaded.issues)
        for job in loaded.scrape_configs:
            from_job(job)
        out.origins.append(f"{path} ({_plural(len(loaded.scrape_configs), 'job')})")
    for url in prometheus_urls:
        add(PrometheusSD(url))
        out.origins.append(f"what {url} scrapes")
    return out


# -- running -------------------------------------------------------------------------------------------


class _Notes:
    """Says each new source problem once on stderr, and targets coming and going."""

    def __init__(self, err: IO[str], style: Styler) -> None:
        self.err = err
        self.style = style
        self.seen: set[tuple[str, str, str]] = set()

    def sources(self, statuses: dict[str, SourceStatus], extra: Sequence[ConfigIssue] = ()) -> None:
        for name, status in statuses.items():
            for item, message in status.errors.items():
                key = (name, item, message)
                if key in self.seen:
                    continue
                if len(self.seen) >= _MAX_NOTES:
                    self.seen.clear()
                self.seen.add(key)
                print_error(f"{name}: {item}: {message}", stream=self.err, level="warning")
        for issue in extra:
            key = ("issue", issue.where, f"{issue.key}: {issue.message}")
            if key not in self.seen:
                self.seen.add(key)
                print_error(f"{issue}", stream=self.err, level="warning")

    def targets(self, added: Sequence[str], gone: Sequence[str]) -> None:
        for name in added:
            self.err.write(f"promscope scrape: target {name} added\n")
        for name in gone:
            self.err.write(f"promscope scrape: target {name} gone\n")
        if added or gone:
            self.err.flush()


def _prometheus_issues(sources: Sequence[TargetSource]) -> list[ConfigIssue]:
    from promscope.scrape.sd import PrometheusSD

    issues: list[ConfigIssue] = []
    for source in sources:
        inner = source.source if isinstance(source, _Override) else source
        if isinstance(inner, PrometheusSD):
            issues.extend(inner.issues)
    return issues


async def run_live(options: LiveOptions, out: IO[str], err: IO[str]) -> LiveResult:
    """Scrape until stopped; print every scrape, then the summary. Raises ConfigError, SessionFileError."""
    from cli.live import recording
    from promscope.scrape.loop import ScrapeManager

    found = build_sources(options)
    notes = _Notes(err, options.style)
    for issue in found.issues:
        print_error(str(issue), stream=err, level="warning")
        notes.seen.add(("issue", issue.where, f"{issue.key}: {issue.message}"))
    stop = asyncio.Event()
    settings = options.settings
    printer = LivePrinter(
        output=options.output,
        style=options.style,
        history=settings.history,
        verbose=options.verbose,
        limit=options.count,
        on_limit=stop.set,
    )
    async with recording(options.record, verb="scrape") as recorder:
        printer.recorder = recorder
        manager = ScrapeManager(
            printer,
            max_connections=settings.max_connections,
            max_targets=settings.max_targets,
            history=settings.history,
            jitter=options.jitter,
        )
        for source in found.sources:
            manager.add_source(source)
        if found.targets:
            manager.set_targets(found.targets, source="cli")
        started = time.monotonic()
        install_signals(stop)
        writer = asyncio.get_running_loop().create_task(printer.writer(out))
        deadline = None if options.duration is None else started + options.duration
        try:
            # The first discovery pass, so the start line can say what was found. A slow DNS server or
            # Prometheus must not hold a Ctrl-C or --duration back: the loops discover again anyway.
            await _until(manager.refresh(), stop, deadline)
            notes.sources(manager.sources(), _prometheus_issues(found.sources))
            printer.sync(manager)
            printer.width = max((len(printer.name(e)) for e in printer.tracked.values()), default=0)
            count = len(printer.tracked)
            intervals = sorted({e.interval for e in printer.tracked.values() if e.interval is not None})
            shown = ", ".join(_duration_text(i) for i in intervals[:3]) + ("…" if len(intervals) > 3 else "")
            every = f"every {shown}" if intervals else "when targets appear"
            err.write(
                f"promscope scrape: {_plural(count, 'target')} from {'; '.join(found.origins) or 'nowhere'}, "
                f"{every}; Ctrl-C stops and prints the health of each target\n"
            )
            if manager.stats.refused_message:
                print_error(manager.stats.refused_message, stream=err, level="warning")
            err.flush()
            await manager.start()
            while not stop.is_set():
                wait = _TICK if deadline is None else min(_TICK, deadline - time.monotonic())
                if wait <= 0:
                    break
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), wait)
                added, gone = printer.sync(manager)
                notes.targets(added, gone)
                notes.sources(manager.sources(), _prometheus_issues(found.sources))
        finally:
            remove_signals()
            await manager.stop()
            printer.sync(manager)
            sources = manager.sources()
            await printer.finish(writer)
        elapsed = time.monotonic() - started
        if options.output == "json":
            write_lines(out, [json.dumps(summary_json(printer, sources, elapsed), ensure_ascii=False)])
        else:
            write_lines(out, [summary_text(printer, sources, elapsed)])
    return LiveResult(printer.shown, printer.up, len(printer.tracked))


async def _until(work: Any, stop: asyncio.Event, deadline: float | None) -> None:
    """Run the coroutine ``work`` until it is done, ``stop`` is set, or ``deadline`` (monotonic) passes."""
    task = asyncio.ensure_future(work)
    stopped = asyncio.ensure_future(stop.wait())
    timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
    try:
        await asyncio.wait({task, stopped}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for pending in (task, stopped):
            if not pending.done():
                pending.cancel()
        await asyncio.gather(task, stopped, return_exceptions=True)
    if task.done() and not task.cancelled():
        error = task.exception()
        if error is not None:
            raise error


def _duration_text(seconds: float) -> str:
    from promscope.scrape.targets import format_duration

    return format_duration(seconds)


# -- the command ---------------------------------------------------------------------------------------

_ONE_SHOT_ONLY = {
    "matches": "--match",
    "show_series": "--series",
    "diag": "--diag",
    "fail_on": "--fail-on",
}


def _given(ctx: Any, name: str) -> bool:
    import click

    source = ctx.get_parameter_source(name)
    return source is not None and source not in (
        click.core.ParameterSource.DEFAULT,
        click.core.ParameterSource.DEFAULT_MAP,
    )


def _check_file_sd(path: str) -> None:
    import click

    name = path.replace("\\", "/").rsplit("/", 1)[-1]
    directory = path[: len(path) - len(name)]
    if not name.endswith((".json", ".yml", ".yaml")) or "*" in directory:
        raise click.BadParameter(
            f"{path!r}: file_sd files end in .json, .yml or .yaml, with a glob in the file name only",
            param_hint="--file-sd",
        )


def run_live_command(ctx: Any, params: dict[str, Any]) -> None:
    """Run the live mode for the ``scrape`` command's parsed ``params``; exits the context."""
    from pathlib import Path

    import click

    from cli.commands.scrape import normalize_url, request_settings
    from cli.exit_codes import ExitCode
    from cli.output import wants_color
    from promscope.errors import ConfigError, PromscopeError
    from promscope.scrape.targets import DEFAULT_JOB, ScrapeConfig, ScrapeSettings

    for name, flag in _ONE_SHOT_ONLY.items():
        if _given(ctx, name):
            raise click.UsageError(f"{flag} applies to a single scrape, not to live mode", ctx)
    output = params["output"]
    if output in ("text", "openmetrics"):
        raise click.UsageError(
            f"-o {output} re-renders one scrape; live mode prints lines (the default) or -o json", ctx
        )
    output = "json" if output == "json" else "text"
    for path in params["file_sd"]:
        _check_file_sd(path)
    for url in params["prometheus_urls"]:
        if not url.startswith(("http://", "https://")):
            raise click.BadParameter(
                f"{url!r} is not an http(s) URL (e.g. http://127.0.0.1:9090)", param_hint="--prometheus-url"
            )
    urls = tuple(normalize_url(url) for url in params["urls"])
    interval: float | None = params["interval"]
    timeout: float | None = params["timeout"] if _given(ctx, "timeout") else None
    if interval is not None and timeout is not None and timeout > interval:
        raise click.UsageError(
            f"--timeout ({timeout:g}s) is longer than --interval ({interval:g}s); Prometheus refuses this "
            "too: lower the timeout or raise the interval",
            ctx,
        )
    config_file: str | None = params["config_file"]
    try:
        from promscope.config import load_config

        config = load_config(explicit=Path(config_file) if config_file else None)
        settings = config.scrape or ScrapeSettings()
        given_elsewhere = bool(
            urls or params["file_sd"] or params["dns_srv"] or params["prometheus_configs"]
        ) or bool(params["prometheus_urls"])
        config_jobs = config.scrape is not None and (config_file is not None or not given_elsewhere)
        if not given_elsewhere and not (
            config_jobs and (settings.jobs or settings.prometheus_configs or settings.prometheus_servers)
        ):
            where = f" ({config.path} has no [[targets]])" if config.path else ""
            raise click.UsageError(
                "nothing to scrape: give URLs, --prometheus-config, --file-sd, --dns-srv or "
                f"--prometheus-url, or [[targets]] in promscope.toml{where}",
                ctx,
            )
        base_interval = interval if interval is not None else settings.interval
        base_timeout = min(timeout if timeout is not None else settings.timeout, base_interval)
        request = request_settings(**params)
        base = ScrapeConfig(
            job_name=params["job"] or DEFAULT_JOB,
            interval=base_interval,
            timeout=base_timeout,
            scheme=params["scheme"] or "http",
            metrics_path=params["metrics_path"] or "/metrics",
            sample_limit=settings.sample_limit if params["sample_limit"] is None else params["sample_limit"],
            body_size_limit=params["body_size_limit"]
            if _given(ctx, "body_size_limit")
            else settings.body_size_limit,
            **request,
        )
        tls = request["tls"]
        if not tls.is_default:
            tls.ssl_context()  # a missing CA or key file is a usage error, before any scrape
        if request["bearer_token_file"]:
            base.request("http://127.0.0.1/").read_bearer_token()
    except ConfigError as exc:
        print_error(exc.message, hint=exc.hint)
        ctx.exit(ExitCode.USAGE)
    style = Styler(output == "text" and wants_color(params["color"], sys.stdout))
    options = LiveOptions(
        base=base,
        settings=settings,
        urls=urls,
        file_sd=tuple(params["file_sd"]),
        dns_srv=tuple(params["dns_srv"]),
        prometheus_configs=tuple(params["prometheus_configs"]),
        prometheus_urls=tuple(params["prometheus_urls"]),
        config_jobs=config_jobs,
        interval=interval,
        timeout=timeout,
        output=output,
        style=style,
        verbose=params["verbose"],
        count=params["count"],
        duration=params["duration"],
        record=params["record"],
        jitter=params["jitter"],
    )
    try:
        result = asyncio.run(run_live(options, sys.stdout, sys.stderr))
    except ConfigError as exc:
        print_error(exc.message, hint=exc.hint)
        ctx.exit(ExitCode.USAGE)
    except PromscopeError as exc:
        print_error(exc.message, hint=exc.hint)
        ctx.exit(ExitCode.UNREADABLE)
    if result.up == 0:
        if result.scrapes:
            print_error(
                f"no target could be scraped: all {_plural(result.scrapes, 'scrape')} failed",
                hint="the summary above says why, target by target",
            )
        else:
            print_error(
                "nothing was scraped: no target was found, or the run ended before the first scrape",
                hint="check the target sources; with --duration, allow at least one interval",
            )
        ctx.exit(ExitCode.UNREADABLE)
    ctx.exit(ExitCode.OK)
