"""The live scrape loop: :class:`ScrapeManager` scrapes many targets, each on its own interval.

::

    manager = ScrapeManager(store.ingest)
    async with manager:
        manager.set_targets(targets_from_urls(["http://127.0.0.1:9100/metrics"], interval=5))
        manager.add_source(FileSD(config, config.file_sd_configs[0]))
        ...
        for status in manager.targets():
            status.health.state, status.stats.missed_intervals

How it behaves, as Prometheus's scrape loop does:

* **One asyncio task per target**, all on the caller's event loop, sharing
  one connection pool bounded by ``max_connections``. The pool is split
  into up to ``pool_shards`` ``httpx.AsyncClient`` objects of at least 4
  connections each (each new ``host:port`` goes to the shard with the most
  room left, the shares adding up to ``max_connections``), because httpcore
  looks at every pooled connection on every request: one client with
  hundreds of connections spends more CPU choosing a connection than
  parsing the scrape. Shards of one TLS setting share one SSL context;
  targets with their own TLS settings get their own shards per distinct
  :class:`~promscope.scrape.TLSConfig`.
  An injected ``client`` is used for every target.
* **Jittered start**: a target's first scrape waits
  :meth:`ScrapeTarget.offset <promscope.scrape.targets.ScrapeTarget.offset>`,
  a phase fixed by the hash of its labels and URL (and ``offset_seed``), so
  targets spread over the interval and each keeps its phase across restarts.
* **Interval kept, never overlapping**: scrapes are due on a grid
  (first scrape + k x interval). The next scrape of a target starts only
  after its previous one has finished and been handed to the sink. A scrape
  that outlasts its interval delays the next one, which then starts at
  once (as Prometheus's ticker does); every grid point that passed meanwhile
  is counted in :attr:`LoopStats.missed_intervals`. The delay between a due
  time and the actual start is the loop's lag (:attr:`LoopStats.lag_max`).
* **Each scrape** is :func:`promscope.scrape.fetch` (as its two halves:
  :func:`~promscope.scrape._fetch.receive`, then the parse with the
  collector paused until the sink has the Observation) with the target's
  request and its :class:`~promscope.exposition.ParseCache` (as Prometheus's
  scrape cache: a body whose lines repeat the previous scrape's but for
  their values is read without parsing it again, with the same result),
  turned into an :class:`~promscope.observation.Observation` by
  :class:`~promscope.scrape.observe.ScrapeObserver` (target labels,
  ``sample_limit``, ``up`` and the other report series), recorded in the
  target's :class:`~promscope.scrape.health.TargetHealth`, and handed to
  the sink. Observation times are wall time from ``clock``, aligned to the
  grid when within Prometheus's 2 ms tolerance. A sink that raises is
  counted and logged; the loop goes on. So does a scrape that raises
  (counted as an ``internal`` failure).
* **Target updates** (:meth:`ScrapeManager.set_targets`, and each
  discovery source): a new target starts a loop, a vanished one stops, a
  target whose settings changed (same labels and URL) restarts with its
  health history kept; unchanged targets are not touched.
* **Bounded**: at most ``max_targets`` targets (the rest are refused and
  counted in :attr:`ManagerStats.targets_refused`), ``history`` health
  events per target.
* **Clean cancellation**: :meth:`ScrapeManager.stop` (or leaving ``async
  with``) cancels every loop and discovery task, waits for them, and closes
  the clients it made.

Time comes from ``clock`` (wall, observation times and the jitter phase),
``monotonic`` (scheduling and durations) and ``sleep``; tests inject all
three, so no test waits for real time.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import functools
import logging
import math
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx
from httpx import create_ssl_context

from promscope.errors import ConfigError
from promscope.exposition import ParseCache
from promscope.exposition._lex import collector_paused
from promscope.observation import Observation, ObservationSink
from promscope.scrape._fetch import receive
from promscope.scrape.health import FailureClass, TargetHealth
from promscope.scrape.observe import ScrapeObserver
from promscope.scrape.sd import SourceStatus, StaticSource, TargetSource
from promscope.scrape.target import Target, TLSConfig
from promscope.scrape.targets import ScrapeTarget, format_duration

__all__ = ["LoopStats", "ManagerStats", "ScrapeManager", "TargetStatus"]

log = logging.getLogger("promscope.scrape")

Sleep = Callable[[float], Awaitable[None]]

ALIGN_TOLERANCE = 0.002
"""Prometheus's ``ScrapeTimestampTolerance``: a scrape this close to its due time gets the due time."""

KEEPALIVE = 300.0
"""Seconds an idle connection to a target is kept, as Prometheus's scrape client keeps it
(``IdleConnTimeout`` 5 minutes); httpx's default of 5 s would close it just before the next scrape."""
"""Prometheus's ``ScrapeTimestampTolerance``: a scrape this close to its due time gets the due time."""


@dataclass(slots=True)
class LoopStats:
    """How one target's loop kept its schedule."""

    scrapes: int = 0
    missed_intervals: int = 0
    """Due times that passed while the previous scrape was still running."""
    overruns: int = 0
    """Scrapes that outlasted their interval (each delays the next)."""
    overlaps: int = 0
    """Scrapes started while another scrape of the same target ran. The design makes this 0; it is checked."""
    restarts: int = 0
    """Loop restarts because the target's settings changed."""
    sink_errors: int = 0
    internal_errors: int = 0
    lag_last: float = 0.0
    """Seconds between the last scrape's due time and its start."""
    lag_max: float = 0.0
    lag_total: float = 0.0

    @property
    def lag_mean(self) -> float:
        return self.lag_total / self.scrapes if self.scrapes else 0.0

    def to_dict(self) -> dict[str, float | int]:
        return {
            "scrapes": self.scrapes,
            "missedIntervals": self.missed_intervals,
            "overruns": self.overruns,
            "overlaps": self.overlaps,
            "restarts": self.restarts,
            "sinkErrors": self.sink_errors,
            "internalErrors": self.internal_errors,
            "lagLast": self.lag_last,
            "lagMax": self.lag_max,
            "lagMean": self.lag_mean,
        }


@dataclass(slots=True)
class ManagerStats:
    """The manager as a whole."""

    targets_refused: int = 0
    """Targets over ``max_targets`` in the current target set (not scraped)."""
    refused_message: str = ""
    started: int = 0
    stopped: int = 0
    restarted: int = 0
    syncs: int = 0
    duplicates: int = 0
    """Targets found by more than one source (or twice by one) in the current set, scraped once."""


@dataclass(frozen=True, slots=True)
class TargetStatus:
    """A target as the targets view shows it: the target, its health history and its loop's schedule."""

    target: ScrapeTarget
    health: TargetHealth
    stats: LoopStats


@dataclass(slots=True, eq=False)
class _Loop:
    target: ScrapeTarget
    health: TargetHealth
    stats: LoopStats
    observer: ScrapeObserver
    cache: ParseCache = field(default_factory=ParseCache)
    """The target's scrape cache: a body shaped like the previous one is read from it."""
    task: asyncio.Task[None] | None = None
    running: bool = False
    shown: ScrapeTarget | None = None
    """The latest equal target (for display: its discovered labels and origin)."""


@dataclass(slots=True)
class _Source:
    source: TargetSource
    task: asyncio.Task[None] | None = None
    targets: list[ScrapeTarget] = field(default_factory=list)
    manual: bool = False
    """Set by :meth:`ScrapeManager.set_targets`: nothing to discover."""


class ScrapeManager:
    """Scrapes a changing set of targets on one event loop (see the module docstring)."""

    def __init__(
        self,
        sink: ObservationSink,
        *,
        client: httpx.AsyncClient | None = None,
        max_connections: int = 256,
        max_targets: int = 10_000,
        history: int = 720,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Sleep = asyncio.sleep,
        offset_seed: int = 0,
        jitter: bool = True,
        thread_threshold: int = 1 << 20,
        pool_shards: int = 32,
    ) -> None:
        if max_connections < 1 or max_targets < 1 or history < 1 or pool_shards < 1:
            raise ValueError("max_connections, max_targets, history and pool_shards must be at least 1")
        self.pool_shards = max(1, min(pool_shards, max_connections // 4))
        self.sink = sink
        self.max_connections = max_connections
        self.max_targets = max_targets
        self.history = history
        self.clock = clock
        self.monotonic = monotonic
        self.sleep = sleep
        self.offset_seed = offset_seed
        self.jitter = jitter
        self.thread_threshold = thread_threshold
        self.stats = ManagerStats()
        self._client = client
        self._clients: dict[tuple[TLSConfig, int], httpx.AsyncClient] = {}
        self._shard_of: dict[str, int] = {}
        """``host:port`` -> its shard, so targets spread evenly (a hash leaves some shards short of
        connections, which then close and reopen connections on every scrape)."""
        self._shard_room = self._shares()
        """Connections per shard not yet promised to a host."""
        self._ssl: dict[TLSConfig, Any] = {}
        self._loops: dict[tuple[str, tuple[tuple[str, str], ...]], _Loop] = {}
        self._sources: dict[str, _Source] = {}
        self._running = False
        self._stopping: set[asyncio.Task[None]] = set()

    # -- lifecycle ------------------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._running

    async def start(self) -> None:
        """Start the discovery tasks and the loops of the targets known so far."""
        if self._running:
            return
        self._running = True
        for entry in self._sources.values():
            if not entry.manual:
                entry.task = self._spawn_source(entry)
        self._sync()

    async def stop(self) -> None:
        """Cancel every loop and discovery task, wait for them, close what the manager opened."""
        self._running = False
        tasks: list[asyncio.Task[None]] = []
        for entry in self._sources.values():
            if entry.task is not None:
                entry.task.cancel()
                tasks.append(entry.task)
                entry.task = None
        for loop in self._loops.values():
            if loop.task is not None:
                loop.task.cancel()
                tasks.append(loop.task)
                loop.task = None
        tasks.extend(self._stopping)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        self._stopping.clear()
        for entry in self._sources.values():
            with contextlib.suppress(Exception):
                await entry.source.aclose()
        clients = list(self._clients.values())
        self._clients.clear()
        for client in clients:
            await client.aclose()

    async def __aenter__(self) -> ScrapeManager:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- the target set -------------------------------------------------------------------------------

    def set_targets(self, targets: Iterable[ScrapeTarget], source: str = "static") -> None:
        """Replace the targets of the source called ``source`` (default: the static list) and apply."""
        entry = self._sources.get(source)
        if entry is None:
            entry = _Source(StaticSource(source, ()), manual=True)
            self._sources[source] = entry
        elif not entry.manual:
            raise ValueError(f"{source!r} is a discovery source; its targets come from discovery")
        entry.targets = list(targets)
        entry.source.status.targets = len(entry.targets)
        self._sync()

    def add_source(self, source: TargetSource) -> None:
        """Run a discovery source: its targets join the set on every change.

        Raises ValueError when a source of the same name is already there.
        """
        if source.name in self._sources:
            raise ValueError(f"a target source named {source.name!r} is already running")
        entry = _Source(source)
        self._sources[source.name] = entry
        if self._running:
            entry.task = self._spawn_source(entry)

    def remove_source(self, name: str) -> None:
        """Stop a source and drop its targets."""
        entry = self._sources.pop(name, None)
        if entry is None:
            return
        if entry.task is not None:
            entry.task.cancel()
            self._stopping.add(entry.task)
            entry.task.add_done_callback(self._stopping.discard)
        self._sync()

    async def refresh(self) -> None:
        """Run every source's ``discover()`` once now and apply the result (the CLI's first pass, tests)."""
        for entry in list(self._sources.values()):
            if not entry.manual:
                await self._discover_once(entry)

    def _spawn_source(self, entry: _Source) -> asyncio.Task[None]:
        return asyncio.create_task(self._discover(entry), name=f"promscope-sd:{entry.source.name}")

    async def _discover(self, entry: _Source) -> None:
        while True:
            await self._discover_once(entry)
            await self.sleep(entry.source.interval)

    async def _discover_once(self, entry: _Source) -> None:
        try:
            found = await entry.source.discover()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a source's bug must not stop discovery
            log.exception("target source %s failed", entry.source.name)
            entry.source.status.failures += 1
            entry.source.status.error("discover", f"{type(exc).__name__}: {exc}")
            return
        if found is not None and self._sources.get(entry.source.name) is entry:
            entry.targets = found
            self._sync()

    def _sync(self) -> None:
        desired: dict[tuple[str, tuple[tuple[str, str], ...]], ScrapeTarget] = {}
        duplicates = 0
        refused = 0
        for entry in self._sources.values():
            for target in entry.targets:
                key = target.key
                if key in desired:
                    duplicates += 1
                    continue
                if len(desired) >= self.max_targets:
                    refused += 1
                    continue
                desired[key] = target
        self.stats.syncs += 1
        self.stats.duplicates = duplicates
        self.stats.targets_refused = refused
        self.stats.refused_message = (
            f"{refused} targets over the limit of {self.max_targets} are not scraped" if refused else ""
        )
        if refused:
            log.warning("%s", self.stats.refused_message)
        for key in [k for k in self._loops if k not in desired]:
            self._cancel(self._loops.pop(key))
            self.stats.stopped += 1
        for key, target in desired.items():
            loop = self._loops.get(key)
            if loop is None:
                loop = _Loop(target, TargetHealth(self.history), LoopStats(), ScrapeObserver(target))
                self._loops[key] = loop
                self.stats.started += 1
                if self._running:
                    loop.task = self._spawn(loop, None)
            elif loop.target != target:
                previous = loop.task
                if previous is not None:
                    previous.cancel()
                replacement = _Loop(target, loop.health, loop.stats, ScrapeObserver(target))
                replacement.stats.restarts += 1
                self._loops[key] = replacement
                self.stats.restarted += 1
                if self._running:
                    replacement.task = self._spawn(replacement, previous)
            else:
                loop.shown = target
                if self._running and loop.task is None:
                    loop.task = self._spawn(loop, None)

    def _cancel(self, loop: _Loop) -> None:
        if loop.task is not None:
            loop.task.cancel()
            self._stopping.add(loop.task)
            loop.task.add_done_callback(self._stopping.discard)
            loop.task = None

    def _spawn(self, loop: _Loop, previous: asyncio.Task[None] | None) -> asyncio.Task[None]:
        return asyncio.create_task(self._run(loop, previous), name=f"promscope-scrape:{loop.target.identity}")

    # -- one target's loop ----------------------------------------------------------------------------

    def _client_for(self, request: Target) -> httpx.AsyncClient:
        if self._client is not None:
            return self._client
        tls = request.tls if request.is_https else TLSConfig()
        netloc = urlsplit(request.url).netloc
        shard = self._shard_of.get(netloc)
        if shard is None:
            if len(self._shard_of) >= 2 * self.max_targets:  # bounded: start the assignment afresh
                self._shard_of.clear()
                self._shard_room = self._shares()
            shard = self._shard_room.index(max(self._shard_room))
            self._shard_room[shard] -= 1
            self._shard_of[netloc] = shard
        client = self._clients.get((tls, shard))
        if client is None:
            verify = self._ssl.get(tls)
            if verify is None:
                default = tls.is_default
                verify = tls.ssl_context() if not default else create_ssl_context(trust_env=False)
                self._ssl[tls] = verify
            share = self._shares()[shard]
            client = httpx.AsyncClient(
                verify=verify,
                limits=httpx.Limits(
                    max_connections=share, max_keepalive_connections=share, keepalive_expiry=KEEPALIVE
                ),
                trust_env=False,
            )
            self._clients[(tls, shard)] = client
        return client

    def _shares(self) -> list[int]:
        """Each shard's connections: ``max_connections`` split as evenly as it goes."""
        whole, extra = divmod(self.max_connections, self.pool_shards)
        return [whole + (index < extra) for index in range(self.pool_shards)]

    async def _run(self, loop: _Loop, previous: asyncio.Task[None] | None) -> None:
        if previous is not None:
            # The replaced loop finishes (cancelled) before this one may scrape: never two at once.
            await asyncio.gather(previous, return_exceptions=True)
        target = loop.target
        interval = target.interval
        if self.jitter:
            await self.sleep(target.offset(self.clock(), self.offset_seed))
        anchor = self.monotonic()
        wall_anchor = self.clock()
        tolerance = min(interval / 100, ALIGN_TOLERANCE)
        slot = 0
        stats = loop.stats
        while True:
            due = anchor + slot * interval
            started = self.monotonic()
            lag = max(0.0, started - due)
            stats.lag_last = lag
            stats.lag_max = max(stats.lag_max, lag)
            stats.lag_total += lag
            stats.scrapes += 1
            wall = self.clock()
            expected = wall_anchor + slot * interval
            if abs(wall - expected) <= tolerance:
                wall = expected
            if loop.running:  # pragma: no cover - cannot happen by construction; counted if it ever does
                stats.overlaps += 1
            loop.running = True
            try:
                finish = await self._scrape(loop, wall, started)
                # From here to the sink nothing waits and nothing built forms a cycle. With the
                # collector paused (as the parsers pause it), the scrape's samples are freed by
                # reference counting before any collection has to walk them.
                with collector_paused:
                    try:
                        observation = finish()
                    except Exception as exc:  # a promscope bug must not end the loop
                        observation = self._internal_error(loop, wall, started, exc)()
                    loop.health.record(observation)
                    try:
                        self.sink(observation)
                    except Exception:  # the sink's bug: count it, say it, go on
                        stats.sink_errors += 1
                        log.exception("the observation sink failed for %s", target.identity)
                    # Not held while waiting for the next scrape: what the sink keeps stays, the
                    # rest goes now instead of ageing into the collector's oldest generation.
                    del observation
            finally:
                loop.running = False
            ended = self.monotonic()
            next_slot = max(slot + 1, math.ceil((ended - anchor) / interval - 1e-9))
            if next_slot > slot + 1:
                stats.overruns += 1
                stats.missed_intervals += next_slot - slot - 1
                slot = next_slot - 1
                await self.sleep(0)
                continue
            slot = next_slot
            await self.sleep(max(0.0, anchor + slot * interval - self.monotonic()))

    async def _scrape(self, loop: _Loop, wall: float, begun: float) -> Callable[[], Observation]:
        """The network half of a scrape; returns the rest (parse, Observation), which does no I/O."""
        request = loop.target.request
        observer = loop.observer
        try:
            exchange = await receive(request, client=self._client_for(request), clock=self.monotonic)
            monotonic = self.monotonic
            cache = loop.cache
            if exchange.body_size > self.thread_threshold:  # parsed in a worker: the UI stays responsive
                result = await asyncio.to_thread(exchange.result, monotonic, count_series=False, cache=cache)
                return functools.partial(observer.observe, result, wall)

            def finish() -> Observation:
                # The observer counts scrape_series_added across scrapes, so the result need not.
                return observer.observe(exchange.result(monotonic, count_series=False, cache=cache), wall)

            return finish
        except ConfigError as exc:
            message = exc.message + (f" ({exc.hint})" if exc.hint else "")
            return functools.partial(
                observer.failed, wall, FailureClass.CONFIG, message, self.monotonic() - begun
            )
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a promscope bug must not end the loop
            return self._internal_error(loop, wall, begun, exc)

    def _internal_error(
        self, loop: _Loop, wall: float, begun: float, exc: Exception
    ) -> Callable[[], Observation]:
        loop.stats.internal_errors += 1
        log.exception("scraping %s raised", loop.target.identity, exc_info=exc)
        return functools.partial(
            loop.observer.failed,
            wall,
            FailureClass.INTERNAL,
            f"promscope failed: {type(exc).__name__}: {exc}",
            self.monotonic() - begun,
        )

    # -- reading --------------------------------------------------------------------------------------

    def targets(self) -> list[TargetStatus]:
        """Every target being scraped, ordered by job then instance."""
        out = [
            TargetStatus(loop.shown or loop.target, loop.health, loop.stats) for loop in self._loops.values()
        ]
        out.sort(key=lambda s: (s.target.scrape_pool, s.target.instance, s.target.url))
        return out

    def get(self, identity: str) -> TargetStatus | None:
        """The target whose ``job/instance`` is ``identity`` (the first, if several)."""
        for status in self.targets():
            if status.target.identity == identity:
                return status
        return None

    def sources(self) -> dict[str, SourceStatus]:
        return {name: entry.source.status for name, entry in self._sources.items()}

    def totals(self) -> LoopStats:
        """The loop statistics of all targets added up (``lag_max`` and ``lag_last``: the maxima)."""
        total = LoopStats()
        for loop in self._loops.values():
            s = loop.stats
            total.scrapes += s.scrapes
            total.missed_intervals += s.missed_intervals
            total.overruns += s.overruns
            total.overlaps += s.overlaps
            total.restarts += s.restarts
            total.sink_errors += s.sink_errors
            total.internal_errors += s.internal_errors
            total.lag_total += s.lag_total
            total.lag_max = max(total.lag_max, s.lag_max)
            total.lag_last = max(total.lag_last, s.lag_last)
        return total

    def targets_api(self, *, history: bool = False) -> dict[str, Any]:
        """The ``data`` of Prometheus's ``/api/v1/targets`` for what this manager scrapes.

        With ``history``, each target also carries promscope's ``history``
        (the health timeline) and ``loop`` (schedule statistics).
        """
        active: list[dict[str, Any]] = []
        for status in self.targets():
            target, health = status.target, status.health
            entry: dict[str, Any] = {
                "discoveredLabels": dict(target.discovered),
                "labels": dict(target.labels),
                "scrapePool": target.scrape_pool,
                "scrapeUrl": target.url,
                "globalUrl": target.url,
                "lastError": health.last_error_message,
                "lastScrape": _rfc3339(health.last_scrape),
                "lastScrapeDuration": health.last_duration or 0.0,
                "health": health.state.value,
                "scrapeInterval": format_duration(target.interval),
                "scrapeTimeout": format_duration(target.timeout),
            }
            if history:
                entry["history"] = health.to_dict()
                entry["loop"] = status.stats.to_dict()
            active.append(entry)
        return {"activeTargets": active, "droppedTargets": []}


def _rfc3339(stamp: float | None) -> str:
    if stamp is None:
        return "0001-01-01T00:00:00Z"
    moment = datetime.datetime.fromtimestamp(stamp, tz=datetime.UTC)
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")
