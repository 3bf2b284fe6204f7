"""Target discovery: sources that say, again and again, which targets exist.

A :class:`TargetSource` has a unique ``name``, an ``interval`` (seconds
between two calls) and ``async discover()``, which returns the source's
complete current target list, or None when nothing changed since the last
call. A source never raises for what it reads: a bad file, a failed DNS
lookup or an unreachable Prometheus leaves the last good targets in place and
is recorded on :attr:`TargetSource.status` (a :class:`SourceStatus`). The
scrape manager (``promscope.scrape.loop``) runs each source on its interval.

* :class:`StaticSource`: a fixed list (command-line URLs, ``static_configs``).
* :class:`FileSD`: Prometheus ``file_sd`` files, JSON or YAML lists of
  ``{"targets": [...], "labels": {...}}``. The files (globs allowed in the last
  path element) are stat'ed every ``interval`` (5 s by default) and re-read
  when their modification time, size or inode changes, and in full every
  ``refresh_interval`` (Prometheus's 5 m). Bounded: files, bytes per file and
  targets. Targets get ``__meta_filepath``. A file that cannot be read or
  parsed keeps its last good targets; a file that is gone loses them.
* :class:`DnsSD`: DNS SRV (or A/AAAA with a port) records, re-resolved every
  ``refresh_interval``, labelled ``__meta_dns_name``,
  ``__meta_dns_srv_record_target`` and ``__meta_dns_srv_record_port`` as in
  Prometheus. The resolver is injectable (a :class:`Resolver`); the default
  uses dnspython's asyncio resolver.
* :class:`PrometheusSD`: a running Prometheus server's ``/api/v1/targets``:
  every active target's ``scrapeUrl``, ``labels``, ``scrapeInterval`` and
  ``scrapeTimeout``, with ``honor_labels``, ``honor_timestamps``,
  ``sample_limit``, ``body_size_limit``, ``scrape_protocols`` and
  ``enable_compression`` per job read from ``/api/v1/status/config``. Secrets
  are redacted by that API, so jobs that authenticate are reported on the
  status (their targets will likely answer 401).

:func:`sources_for` builds the sources of one :class:`ScrapeConfig`;
:func:`sources_for_settings` those of a whole ``promscope.toml``.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from promscope.errors import ConfigError
from promscope.exposition.negotiate import ScrapeProtocol, accept_header
from promscope.scrape.target import Target
from promscope.scrape.targets import (
    ConfigIssue,
    DnsSDConfig,
    FileSDConfig,
    ScrapeConfig,
    ScrapeSettings,
    ScrapeTarget,
    TargetGroup,
    group_from_dict,
    load_prometheus_config,
    parse_duration,
    parse_size,
)

__all__ = [
    "DnsSD",
    "FileSD",
    "PrometheusSD",
    "Resolver",
    "SourceStatus",
    "SrvRecord",
    "StaticSource",
    "TargetSource",
    "sources_for",
    "sources_for_settings",
]

MAX_FILES = 1000
MAX_FILE_BYTES = 16 << 20
MAX_TARGETS = 100_000
MAX_ERRORS = 100


@dataclass(slots=True)
class SourceStatus:
    """What a source last did: for a status line and the targets view."""

    refreshes: int = 0
    """Calls of ``discover()`` that read something (not the cheap "unchanged" ones)."""
    failures: int = 0
    last_refresh: float | None = None
    """Wall time of the last successful read."""
    last_error: str = ""
    errors: dict[str, str] = field(default_factory=dict)
    """Current problems by item (file path, DNS name, job), bounded to 100."""
    targets: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    """Items left out to stay bounded, by reason (``files``, ``bytes``, ``targets``)."""

    def error(self, item: str, message: str) -> None:
        self.last_error = f"{item}: {message}"
        if item in self.errors or len(self.errors) < MAX_ERRORS:
            self.errors[item] = message
        else:
            self.drop("errors")

    def clear(self, item: str) -> None:
        self.errors.pop(item, None)

    def drop(self, reason: str, count: int = 1) -> None:
        self.dropped[reason] = self.dropped.get(reason, 0) + count


class TargetSource(Protocol):
    """Something that discovers targets (see the module docstring)."""

    @property
    def name(self) -> str: ...

    @property
    def interval(self) -> float: ...

    @property
    def status(self) -> SourceStatus: ...

    async def discover(self) -> list[ScrapeTarget] | None: ...

    async def aclose(self) -> None: ...


def _cap(targets: list[ScrapeTarget], limit: int, status: SourceStatus) -> list[ScrapeTarget]:
    if len(targets) > limit:
        status.drop("targets", len(targets) - limit)
        status.error("targets", f"{len(targets)} targets found, only the first {limit} are scraped")
        targets = targets[:limit]
    status.targets = len(targets)
    return targets


class StaticSource:
    """A fixed target list: discovered once."""

    def __init__(self, name: str, targets: Iterable[ScrapeTarget], errors: Iterable[str] = ()) -> None:
        self._name = name
        self._targets = list(targets)
        self._status = SourceStatus(targets=len(self._targets))
        for index, message in enumerate(errors):
            self._status.error(f"target {index}", message)
        self._done = False

    @property
    def name(self) -> str:
        return self._name

    @property
    def interval(self) -> float:
        return 3600.0

    @property
    def status(self) -> SourceStatus:
        return self._status

    async def discover(self) -> list[ScrapeTarget] | None:
        if self._done:
            return None
        self._done = True
        self._status.refreshes += 1
        return list(self._targets)

    async def aclose(self) -> None:
        return None


_FileStamp = tuple[int, int, int]


class FileSD:
    """Prometheus ``file_sd``: target groups from JSON/YAML files, re-read when they change."""

    def __init__(
        self,
        config: ScrapeConfig,
        sd: FileSDConfig,
        *,
        poll_interval: float = 5.0,
        monotonic: Callable[[], float] = time.monotonic,
        clock: Callable[[], float] = time.time,
        max_files: int = MAX_FILES,
        max_file_bytes: int = MAX_FILE_BYTES,
        max_targets: int = MAX_TARGETS,
    ) -> None:
        self.config = config
        self.sd = sd
        self._name = f"file_sd:{config.job_name}:{','.join(sd.files)}"
        self._interval = poll_interval
        self._monotonic = monotonic
        self._clock = clock
        self.max_files = max_files
        self.max_file_bytes = max_file_bytes
        self.max_targets = max_targets
        self._stamps: dict[str, _FileStamp] = {}
        self._groups: dict[str, list[TargetGroup]] = {}
        self._last_full: float | None = None
        self._status = SourceStatus()

    @property
    def name(self) -> str:
        return self._name

    @property
    def interval(self) -> float:
        return self._interval

    @property
    def status(self) -> SourceStatus:
        return self._status

    def files(self) -> list[str]:
        """The files the patterns name now, sorted, at most ``max_files``."""
        found: dict[str, None] = {}
        for pattern in self.sd.files:
            if glob.has_magic(pattern):
                for path in sorted(glob.glob(pattern)):
                    found.setdefault(path)
            elif os.path.exists(pattern):
                found.setdefault(pattern)
        paths = list(found)
        if len(paths) > self.max_files:
            self._status.drop("files", len(paths) - self.max_files)
            self._status.error("files", f"{len(paths)} files match, only the first {self.max_files} are read")
            paths = paths[: self.max_files]
        return paths

    async def discover(self) -> list[ScrapeTarget] | None:
        now = self._monotonic()
        full = self._last_full is None or now - self._last_full >= self.sd.refresh_interval
        paths = self.files()
        changed = full or set(paths) != set(self._stamps)
        stamps: dict[str, _FileStamp] = {}
        for path in paths:
            try:
                info = os.stat(path)
            except OSError as exc:
                self._status.error(path, (exc.strerror or str(exc)).lower())
                continue
            stamps[path] = (info.st_mtime_ns, info.st_size, info.st_ino)
            if self._stamps.get(path) != stamps[path]:
                changed = True
        if not changed:
            return None
        for path in list(self._groups):
            if path not in stamps:
                del self._groups[path]
                self._status.clear(path)
        for path, stamp in stamps.items():
            if full or self._stamps.get(path) != stamp:
                self._read(path, stamp)
        self._stamps = stamps
        if full:
            self._last_full = now
        self._status.refreshes += 1
        self._status.last_refresh = self._clock()
        targets: list[ScrapeTarget] = []
        for path in paths:
            for group in self._groups.get(path, ()):
                built, errors = self.config.targets(group)
                targets.extend(built)
                for message in errors:
                    self._status.error(path, message)
        return _cap(targets, self.max_targets, self._status)

    def _read(self, path: str, stamp: _FileStamp) -> None:
        if stamp[1] > self.max_file_bytes:
            self._status.drop("bytes")
            self._status.failures += 1
            self._status.error(
                path, f"{stamp[1]} bytes is over the {self.max_file_bytes} byte limit; not read"
            )
            return
        try:
            with open(path, "rb") as handle:
                data = handle.read(self.max_file_bytes + 1)
            groups = parse_file_sd(data, path)
        except (OSError, ConfigError, UnicodeDecodeError) as exc:
            message = exc.message if isinstance(exc, ConfigError) else str(exc)
            self._status.failures += 1
            self._status.error(
                path, message + ("; keeping its last good targets" if path in self._groups else "")
            )
            return
        self._groups[path] = groups
        self._status.clear(path)

    async def aclose(self) -> None:
        return None


def parse_file_sd(data: bytes, path: str) -> list[TargetGroup]:
    """Target groups from a file_sd file's bytes (JSON for ``.json``, else YAML). Raises ConfigError."""
    text = data.decode("utf-8")
    if path.endswith(".json"):
        try:
            doc: Any = json.loads(text) if text.strip() else []
        except json.JSONDecodeError as exc:
            raise ConfigError(
                f"not valid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}", path=path
            ) from None
    else:
        import yaml

        try:
            doc = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
            raise ConfigError(
                f"not valid YAML{where}: {getattr(exc, 'problem', None) or exc}", path=path
            ) from None
    if doc is None:
        doc = []
    if not isinstance(doc, list):
        raise ConfigError("expected a list of target groups ({targets: [...], labels: {...}})", path=path)
    groups: list[TargetGroup] = []
    for index, item in enumerate(doc):
        try:
            group = group_from_dict(item, f"[{index}]", source=f"{path}:{index}")
        except ConfigError as exc:
            raise ConfigError(exc.message, path=path) from None
        labels = dict(group.labels)
        labels["__meta_filepath"] = path
        groups.append(TargetGroup(group.targets, tuple(sorted(labels.items())), group.source))
    return groups


@dataclass(frozen=True, slots=True)
class SrvRecord:
    """One DNS answer: an SRV record, or an address (``port`` 0) for A/AAAA."""

    target: str
    port: int = 0


Resolver = Callable[[str, str], Awaitable[list[SrvRecord]]]
"""``await resolver(name, "SRV" | "A" | "AAAA")``: the records ([] when the name has none).

Raises on failure; the source keeps the name's last answer."""


async def dnspython_resolver(name: str, rdtype: str) -> list[SrvRecord]:
    """The default :data:`Resolver`: dnspython's asyncio resolver (NXDOMAIN and no answer give [])."""
    import dns.asyncresolver
    import dns.exception
    import dns.resolver

    try:
        answer = await dns.asyncresolver.resolve(name, rdtype, lifetime=10.0)
    except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
        return []
    records: list[SrvRecord] = []
    for item in answer:
        if rdtype == "SRV":
            records.append(SrvRecord(str(item.target).rstrip("."), int(item.port)))
        else:
            records.append(SrvRecord(str(item.address)))
    return records


class DnsSD:
    """Prometheus ``dns_sd_configs``: targets from SRV (or A/AAAA) records."""

    def __init__(
        self,
        config: ScrapeConfig,
        sd: DnsSDConfig,
        *,
        resolver: Resolver | None = None,
        clock: Callable[[], float] = time.time,
        max_targets: int = MAX_TARGETS,
    ) -> None:
        self.config = config
        self.sd = sd
        self._name = f"dns_sd:{config.job_name}:{','.join(sd.names)}"
        self._resolver = resolver or dnspython_resolver
        self._clock = clock
        self.max_targets = max_targets
        self._answers: dict[str, list[SrvRecord]] = {}
        self._status = SourceStatus()
        self._last: list[ScrapeTarget] | None = None

    @property
    def name(self) -> str:
        return self._name

    @property
    def interval(self) -> float:
        return self.sd.refresh_interval

    @property
    def status(self) -> SourceStatus:
        return self._status

    async def discover(self) -> list[ScrapeTarget] | None:
        for name in self.sd.names:
            try:
                records = await self._resolver(name, self.sd.type)
            except Exception as exc:  # any resolver failure keeps the last answer
                self._status.failures += 1
                kept = "; keeping the last answer" if name in self._answers else ""
                self._status.error(name, f"{self.sd.type} lookup failed: {exc or type(exc).__name__}{kept}")
                continue
            self._answers[name] = records
            self._status.clear(name)
        self._status.refreshes += 1
        self._status.last_refresh = self._clock()
        targets: list[ScrapeTarget] = []
        for name in self.sd.names:
            records = self._answers.get(name, [])
            addresses: list[str] = []
            extra: list[tuple[tuple[str, str], ...]] = []
            for record in records:
                if self.sd.type == "SRV":
                    host = record.target.rstrip(".")
                    addresses.append(_join_host_port(host, record.port))
                    extra.append(
                        (
                            ("__meta_dns_srv_record_port", str(record.port)),
                            ("__meta_dns_srv_record_target", record.target),
                        )
                    )
                else:
                    addresses.append(_join_host_port(record.target, self.sd.port))
                    extra.append(())
            group = TargetGroup(
                tuple(addresses), (("__meta_dns_name", name),), f"dns:{name}", target_labels=tuple(extra)
            )
            built, errors = self.config.targets(group)
            targets.extend(built)
            for message in errors:
                self._status.error(name, message)
        targets = _cap(targets, self.max_targets, self._status)
        if self._last is not None and [t.key for t in targets] == [t.key for t in self._last]:
            return None
        self._last = targets
        return targets

    async def aclose(self) -> None:
        return None


def _join_host_port(host: str, port: int) -> str:
    if ":" in host and not host.startswith("["):
        return f"[{host}]:{port}"
    return f"{host}:{port}"


_AUTH_KEYS = ("basic_auth", "authorization", "bearer_token", "bearer_token_file", "oauth2")


class PrometheusSD:
    """Scrape what a running Prometheus scrapes: its ``/api/v1/targets`` (see the module docstring)."""

    def __init__(
        self,
        url: str,
        *,
        client: Any = None,
        refresh_interval: float = 30.0,
        timeout: float = 10.0,
        read_config: bool = True,
        clock: Callable[[], float] = time.time,
        max_targets: int = MAX_TARGETS,
    ) -> None:
        self.url = url.rstrip("/")
        self._name = f"prometheus:{self.url}"
        self._client = client
        self._owned = client is None
        self._interval = refresh_interval
        self.timeout = timeout
        self.read_config = read_config
        self._clock = clock
        self.max_targets = max_targets
        self._status = SourceStatus()
        self._last: list[ScrapeTarget] | None = None
        self.issues: list[ConfigIssue] = []

    @property
    def name(self) -> str:
        return self._name

    @property
    def interval(self) -> float:
        return self._interval

    @property
    def status(self) -> SourceStatus:
        return self._status

    async def _get_json(self, path: str) -> Any:
        import httpx

        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self.timeout, trust_env=False)
        response = await self._client.get(f"{self.url}{path}", timeout=self.timeout)
        if response.status_code != 200:
            raise ValueError(f"GET {path}: HTTP {response.status_code}")
        doc = response.json()
        if not isinstance(doc, dict) or doc.get("status") != "success":
            raise ValueError(f"GET {path}: the answer is not a successful Prometheus API response")
        return doc.get("data")

    async def discover(self) -> list[ScrapeTarget] | None:
        import httpx

        try:
            data = await self._get_json("/api/v1/targets?state=active")
            jobs: dict[str, dict[str, Any]] = {}
            if self.read_config:
                try:
                    config = await self._get_json("/api/v1/status/config")
                    jobs = _jobs_from_config(config)
                    self._status.clear("config")
                except (httpx.HTTPError, ValueError) as exc:
                    self._status.error("config", f"cannot read its configuration ({exc}); using defaults")
        except (httpx.HTTPError, ValueError) as exc:
            self._status.failures += 1
            kept = "; keeping the last targets" if self._last is not None else ""
            self._status.error("targets", f"cannot list targets of {self.url}: {exc}{kept}")
            return None
        self._status.clear("targets")
        self._status.refreshes += 1
        self._status.last_refresh = self._clock()
        active = data.get("activeTargets") if isinstance(data, dict) else None
        targets: list[ScrapeTarget] = []
        self.issues = []
        for index, entry in enumerate(active if isinstance(active, list) else []):
            try:
                targets.append(self._target(entry, jobs))
            except (ConfigError, ValueError, TypeError, KeyError) as exc:
                self._status.error(f"target {index}", f"cannot use {entry.get('scrapeUrl', '?')}: {exc}")
        for job, settings in jobs.items():
            if settings.get("auth"):
                self.issues.append(
                    ConfigIssue(
                        self._name,
                        f"job {job}",
                        "authenticates, and the API redacts secrets: its targets may refuse promscope",
                    )
                )
        targets = _cap(targets, self.max_targets, self._status)
        if self._last is not None and targets == self._last:
            return None
        self._last = targets
        return targets

    def _target(self, entry: dict[str, Any], jobs: dict[str, dict[str, Any]]) -> ScrapeTarget:
        labels = {str(k): str(v) for k, v in dict(entry.get("labels") or {}).items()}
        pool = str(entry.get("scrapePool") or labels.get("job", ""))
        settings = jobs.get(pool, {})
        interval = parse_duration(entry.get("scrapeInterval") or settings.get("interval") or "1m")
        timeout = parse_duration(entry.get("scrapeTimeout") or settings.get("timeout") or "10s")
        request_kwargs: dict[str, Any] = {
            k: settings[k]
            for k in ("body_size_limit", "accept", "compression", "follow_redirects")
            if k in settings
        }
        request = Target(str(entry["scrapeUrl"]), timeout=min(timeout, interval), **request_kwargs)
        discovered = {str(k): str(v) for k, v in dict(entry.get("discoveredLabels") or {}).items()}
        return ScrapeTarget(
            request=request,
            labels=tuple(sorted(labels.items())),
            interval=interval,
            honor_labels=bool(settings.get("honor_labels", False)),
            honor_timestamps=bool(settings.get("honor_timestamps", True)),
            sample_limit=int(settings.get("sample_limit", 0)),
            scrape_pool=pool,
            discovered=tuple(sorted(discovered.items())),
            origin=self._name,
        )

    async def aclose(self) -> None:
        if self._owned and self._client is not None:
            await self._client.aclose()
            self._client = None


def _jobs_from_config(data: Any) -> dict[str, dict[str, Any]]:
    """Per-job settings that change what a scrape gives, from ``/api/v1/status/config``'s YAML."""
    import yaml

    text = data.get("yaml") if isinstance(data, dict) else None
    if not isinstance(text, str):
        raise ValueError("no yaml in the status/config answer")
    try:
        doc = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ValueError(f"its configuration is not YAML: {exc}") from None
    jobs: dict[str, dict[str, Any]] = {}
    global_doc = doc.get("global") or {}
    for item in doc.get("scrape_configs") or []:
        if not isinstance(item, dict) or not isinstance(item.get("job_name"), str):
            continue
        settings: dict[str, Any] = {}
        for key in ("honor_labels", "honor_timestamps", "follow_redirects"):
            if isinstance(item.get(key), bool):
                settings[key] = item[key]
        if isinstance(item.get("enable_compression"), bool):
            settings["compression"] = item["enable_compression"]
        limit = item.get("sample_limit", global_doc.get("sample_limit"))
        if isinstance(limit, int):
            settings["sample_limit"] = limit
        size = item.get("body_size_limit", global_doc.get("body_size_limit"))
        if size not in (None, "", 0, "0B"):
            with contextlib.suppress(ValueError):
                settings["body_size_limit"] = parse_size(size)
        protocols = item.get("scrape_protocols", global_doc.get("scrape_protocols"))
        if isinstance(protocols, list) and protocols:
            with contextlib.suppress(ValueError):
                settings["accept"] = accept_header([ScrapeProtocol(p) for p in protocols])
        for key in ("scrape_interval", "scrape_timeout"):
            if isinstance(item.get(key), str):
                settings[key.removeprefix("scrape_")] = item[key]
        settings["auth"] = any(item.get(key) for key in _AUTH_KEYS)
        jobs[item["job_name"]] = settings
    return jobs


def sources_for(
    config: ScrapeConfig,
    *,
    resolver: Resolver | None = None,
    poll_interval: float = 5.0,
    monotonic: Callable[[], float] = time.monotonic,
    clock: Callable[[], float] = time.time,
) -> list[TargetSource]:
    """The sources of one job: its static targets, each file_sd config and each dns_sd config."""
    sources: list[TargetSource] = []
    static, errors = config.static_targets()
    if static or errors or config.urls or config.static_configs:
        sources.append(StaticSource(f"static:{config.job_name}", static, errors))
    for index, file_sd in enumerate(config.file_sd_configs):
        source = FileSD(config, file_sd, poll_interval=poll_interval, monotonic=monotonic, clock=clock)
        source._name += f"#{index}" if len(config.file_sd_configs) > 1 else ""
        sources.append(source)
    for index, dns_sd in enumerate(config.dns_sd_configs):
        dns = DnsSD(config, dns_sd, resolver=resolver, clock=clock)
        dns._name += f"#{index}" if len(config.dns_sd_configs) > 1 else ""
        sources.append(dns)
    return sources


def sources_for_settings(
    settings: ScrapeSettings,
    *,
    resolver: Resolver | None = None,
    client: Any = None,
    strict: bool = False,
) -> tuple[list[TargetSource], list[ConfigIssue]]:
    """Every source ``promscope.toml`` names, and the issues of the Prometheus files it points at.

    Raises ConfigError for a Prometheus file that cannot be read or is malformed.
    """
    sources: list[TargetSource] = []
    issues: list[ConfigIssue] = []
    for job in settings.jobs:
        sources.extend(sources_for(job, resolver=resolver))
    for path in settings.prometheus_configs:
        loaded = load_prometheus_config(path, strict=strict)
        issues.extend(loaded.issues)
        for job in loaded.scrape_configs:
            sources.extend(sources_for(job, resolver=resolver))
    for url in settings.prometheus_servers:
        sources.append(PrometheusSD(url, client=client))
    return sources, issues


def unique_names(sources: Sequence[TargetSource]) -> list[str]:
    """Names that occur more than once (a manager refuses a second source of the same name)."""
    seen: set[str] = set()
    dupes: list[str] = []
    for source in sources:
        if source.name in seen:
            dupes.append(source.name)
        seen.add(source.name)
    return dupes
