"""What to scrape, every interval: :class:`ScrapeTarget`, and where targets come from.

A :class:`ScrapeTarget` is one endpoint with everything its scrape loop needs:
the request settings (a :class:`~promscope.scrape.Target`: URL, timeout,
body size limit, auth, TLS), the target labels Prometheus would attach
(``job``, ``instance`` and the discovered ones), the interval, and the
ingestion rules (``honor_labels``, ``honor_timestamps``, ``sample_limit``).
Targets are frozen values; the scrape manager keys them the way Prometheus
does, by their labels and URL (:attr:`ScrapeTarget.key`).

Targets are built from a :class:`ScrapeConfig` (one Prometheus ``scrape_config``
or one ``[[targets]]`` table of ``promscope.toml``) and :class:`TargetGroup`
values (``static_configs``, file_sd, DNS), as Prometheus's ``PopulateLabels``
builds them: group labels, then the target's own, then the defaults
``job``, ``__scheme__``, ``__metrics_path__``, ``__scrape_interval__``,
``__scrape_timeout__`` and ``__param_<name>``; a discovered ``__scheme__``,
``__metrics_path__``, ``__param_*``, ``__scrape_interval__`` or
``__scrape_timeout__`` label overrides the config, as in Prometheus.
``instance`` defaults to the address (no port is added, as in Prometheus 3);
labels starting with ``__`` and labels with empty values are not target labels.

Three ways in:

* :func:`targets_from_urls`: URLs from the command line (``instance`` is the
  URL's ``host:port``, ``job`` defaults to ``promscope``).
* :func:`load_prometheus_config` / :func:`parse_prometheus_config`: a
  Prometheus configuration file. ``global`` defaults and ``scrape_configs``
  with ``job_name``, ``scrape_interval``, ``scrape_timeout``, ``scheme``,
  ``metrics_path``, ``params``, ``honor_labels``, ``honor_timestamps``,
  ``sample_limit``, ``body_size_limit``, ``basic_auth`` (``password`` or
  ``password_file``), ``authorization`` (``type``, ``credentials`` or
  ``credentials_file``), ``bearer_token``/``bearer_token_file``,
  ``tls_config`` (``ca_file``, ``cert_file``, ``key_file``, ``server_name``,
  ``insecure_skip_verify``), ``follow_redirects``, ``enable_compression``,
  ``scrape_protocols``, ``fallback_scrape_protocol``, ``http_headers``,
  ``static_configs``, ``file_sd_configs``, ``dns_sd_configs``, and
  ``scrape_config_files``. Relative paths are relative to the file, as in
  Prometheus. Everything promscope does not apply (``relabel_configs``,
  ``metric_relabel_configs``, ``kubernetes_sd_configs`` and the other
  discovery mechanisms, ``oauth2``, proxies, label limits…) is reported as a
  :class:`ConfigIssue` on the result, never silently ignored; ``strict=True``
  turns issues into a :class:`~promscope.errors.ConfigError`. Malformed
  values (a bad duration, a timeout above the interval, a duplicate job) are
  errors, as Prometheus refuses them.
* :func:`parse_scrape_tables`: the ``[scrape]`` and ``[[targets]]`` tables of
  ``promscope.toml`` (or ``[tool.promscope.scrape]`` / ``[[tool.promscope.targets]]``)::

    [scrape]                          # defaults for every target, and the scrape manager
    interval = "15s"                  # durations: "500ms", "15s", "1m30s", or seconds as a number
    timeout = "10s"                   # capped at each target's interval
    sample_limit = 0                  # 0: no limit
    body_size_limit = "100MiB"        # 0: no limit
    max_connections = 256             # the one shared HTTP client's connection pool
    max_targets = 10000               # beyond it targets are refused and counted
    history = 720                     # health events kept per target
    prometheus_config = ["prometheus.yml"]          # scrape what its scrape_configs name
    prometheus_server = ["http://127.0.0.1:9090"]   # scrape what that server scrapes

    [[targets]]                       # one table per job; give urls, static, file_sd and/or dns_srv
    job = "node"                      # default "promscope"
    urls = ["http://127.0.0.1:9100/metrics"]      # full URLs
    static = ["10.0.0.1:9100"]        # addresses, completed with scheme, metrics_path and params
    file_sd = ["targets/*.json"]      # Prometheus file_sd files (JSON or YAML), re-read when they change
    dns_srv = ["_node._tcp.example.org"]          # DNS SRV names
    scheme = "http"
    metrics_path = "/metrics"
    params = { module = ["http_2xx"] }
    labels = { env = "dev" }
    interval = "5s"
    timeout = "2s"
    honor_labels = false
    honor_timestamps = true
    sample_limit = 0
    body_size_limit = "10MiB"
    basic_auth = { username = "admin", password_file = "secrets/pw" }      # or password = "…"
    authorization = { type = "Bearer", credentials_file = "secrets/token" } # or credentials = "…"
    tls = { ca_file = "ca.pem", cert_file = "client.pem", key_file = "client.key",
            server_name = "node.internal", insecure_skip_verify = false }
    headers = { "X-Scope-OrgID" = "team-a" }
    accept = "prometheus3"            # a named Accept choice or a raw header value
    compression = true
    follow_redirects = true
    fallback_protocol = "PrometheusText0.0.4"

  Unknown keys and malformed values are a ConfigError naming the file and key.

Secrets given as files (``password_file``, ``credentials_file``) are read
when the configuration is loaded; ``bearer_token_file`` (and an
``authorization`` of type Bearer given as a file) is read at every scrape,
so a rotated token is picked up.
"""

from __future__ import annotations

import dataclasses
import glob
import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

from promscope.errors import ConfigError
from promscope.exposition.negotiate import (
    ACCEPT_PROMETHEUS3,
    ScrapeProtocol,
    accept_for,
    accept_header,
)
from promscope.model import Labels
from promscope.scrape.target import DEFAULT_BODY_SIZE_LIMIT, BasicAuth, Target, TLSConfig

__all__ = [
    "DEFAULT_INTERVAL",
    "DEFAULT_JOB",
    "DEFAULT_TIMEOUT",
    "ConfigIssue",
    "DnsSDConfig",
    "FileSDConfig",
    "PrometheusConfig",
    "ScrapeConfig",
    "ScrapeSettings",
    "ScrapeTarget",
    "TargetGroup",
    "format_duration",
    "load_prometheus_config",
    "load_scrape_settings",
    "parse_duration",
    "parse_prometheus_config",
    "parse_scrape_tables",
    "parse_size",
    "targets_from_urls",
]

DEFAULT_INTERVAL = 15.0
"""Seconds between scrapes when nothing says otherwise (Prometheus's own default is 1m)."""
DEFAULT_TIMEOUT = 10.0
"""Seconds; capped at the interval."""
DEFAULT_JOB = "promscope"
"""The ``job`` label of targets given as bare URLs."""
PROMETHEUS_GLOBAL_INTERVAL = 60.0
PROMETHEUS_GLOBAL_TIMEOUT = 10.0

# --------------------------------------------------------------------------------------------------
# durations and sizes
# --------------------------------------------------------------------------------------------------

_DURATION = re.compile(
    r"^(?:(?P<y>\d+)y)?(?:(?P<w>\d+)w)?(?:(?P<d>\d+)d)?(?:(?P<h>\d+)h)?(?:(?P<m>\d+)m)?"
    r"(?:(?P<s>\d+)s)?(?:(?P<ms>\d+)ms)?$"
)
_DURATION_UNITS = {
    "y": 365 * 86400.0,
    "w": 7 * 86400.0,
    "d": 86400.0,
    "h": 3600.0,
    "m": 60.0,
    "s": 1.0,
    "ms": 0.001,
}


def parse_duration(value: object) -> float:
    """A Prometheus duration (``"1m30s"``, ``"500ms"``, ``"0"``) or a number of seconds. Raises ValueError."""
    if isinstance(value, bool):
        raise ValueError("expected a duration like '15s', got a boolean")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError(f"a duration cannot be negative, got {value}")
        return float(value)
    if not isinstance(value, str):
        raise ValueError(f"expected a duration like '15s', got {type(value).__name__}")
    text = value.strip()
    if text == "0":
        return 0.0
    match = _DURATION.match(text)
    if not text or match is None or not any(match.groups()):
        raise ValueError(f"not a valid duration string: {value!r} (e.g. 15s, 1m30s, 500ms)")
    return sum(float(amount) * _DURATION_UNITS[unit] for unit, amount in match.groupdict().items() if amount)


def format_duration(seconds: float) -> str:
    """Seconds as Prometheus prints a duration: ``15s``, ``1m30s``, ``500ms``, ``0s``."""
    millis = round(seconds * 1000)
    if millis == 0:
        return "0s"
    out = []
    for unit, size in (("y", 31_536_000_000), ("w", 604_800_000), ("d", 86_400_000), ("h", 3_600_000)):
        if millis >= size:
            out.append(f"{millis // size}{unit}")
            millis %= size
    for unit, size in (("m", 60_000), ("s", 1000), ("ms", 1)):
        if millis >= size:
            out.append(f"{millis // size}{unit}")
            millis %= size
    return "".join(out)


_SIZE = re.compile(r"^(\d+(?:\.\d+)?)\s*([KMGTPE]?i?B)?$", re.IGNORECASE)
_SIZE_POWER = {"": 0, "K": 1, "M": 2, "G": 3, "T": 4, "P": 5, "E": 6}


def parse_size(value: object) -> int:
    """Bytes: an integer, or ``"100MiB"``/``"100MB"`` (base 2, as Prometheus reads ``body_size_limit``)."""
    if isinstance(value, bool):
        raise ValueError("expected a size like '100MiB', got a boolean")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"a size cannot be negative, got {value}")
        return value
    if not isinstance(value, str):
        raise ValueError(f"expected a size like '100MiB', got {type(value).__name__}")
    match = _SIZE.match(value.strip())
    if match is None:
        raise ValueError(f"not a valid size: {value!r} (e.g. 0, 512KB, 100MiB, 1GB)")
    unit = (match.group(2) or "B").upper()
    return int(float(match.group(1)) * (1024 ** _SIZE_POWER[unit[0] if unit[0] in "KMGTPE" else ""]))


# --------------------------------------------------------------------------------------------------
# values
# --------------------------------------------------------------------------------------------------


def _fnv1a64(data: bytes) -> int:
    value = 0xCBF29CE484222325
    for byte in data:
        value ^= byte
        value = (value * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return value


@dataclass(frozen=True, slots=True)
class ScrapeTarget:
    """One endpoint scraped every :attr:`interval`, and how its samples are labelled.

    Two targets with the same :attr:`key` (labels and URL) are the same
    target; if their other settings differ, the newer one replaces the older
    and its loop restarts. ``discovered`` and ``origin`` are for display and
    do not take part in equality.
    """

    request: Target
    """The request: URL, scrape timeout, body size limit, auth, TLS, headers."""
    labels: Labels
    """Target labels, sorted by name, with ``job`` and ``instance``."""
    interval: float = DEFAULT_INTERVAL
    honor_labels: bool = False
    honor_timestamps: bool = True
    sample_limit: int = 0
    """0: no limit. Above it the whole scrape is refused (``up`` 0), as in Prometheus."""
    scrape_pool: str = ""
    """The job (scrape config) this target came from; Prometheus's ``scrapePool``."""
    discovered: Labels = field(default=(), compare=False)
    """Labels as discovered, before processing (``__address__``, ``__meta_*``…)."""
    origin: str = field(default="", compare=False)
    """Where it was found: ``cli``, ``static``, ``file_sd:PATH``, ``dns_sd:NAME``, ``prometheus:URL``."""

    def __post_init__(self) -> None:
        if not self.interval > 0:
            raise ConfigError(f"scrape interval must be positive, not {self.interval}")
        if self.request.timeout > self.interval:
            raise ConfigError(
                f"scrape timeout {format_duration(self.request.timeout)} is greater than the scrape "
                f"interval {format_duration(self.interval)} for {self.request.url}",
                hint="Prometheus refuses this too: lower the timeout or raise the interval",
            )
        if self.sample_limit < 0:
            raise ConfigError("sample_limit must be 0 (none) or positive")
        if list(self.labels) != sorted(self.labels):
            object.__setattr__(self, "labels", tuple(sorted(self.labels)))
        if not self.scrape_pool:
            object.__setattr__(self, "scrape_pool", self.job)

    @property
    def url(self) -> str:
        return self.request.url

    @property
    def timeout(self) -> float:
        return self.request.timeout

    def label(self, name: str, default: str = "") -> str:
        for key, value in self.labels:
            if key == name:
                return value
        return default

    @property
    def job(self) -> str:
        return self.label("job")

    @property
    def instance(self) -> str:
        return self.label("instance")

    @property
    def identity(self) -> str:
        """``job/instance``: the Observation source and the name people see."""
        return f"{self.job}/{self.instance}"

    @property
    def key(self) -> tuple[str, Labels]:
        """What makes two targets the same target (Prometheus: hash of labels and URL)."""
        return (self.request.url, self.labels)

    def hash(self) -> int:
        """A stable 64-bit hash of the labels and URL (FNV-1a, like Prometheus's target hash)."""
        text = ",".join(f"{k}={v}" for k, v in self.labels) + "|" + self.request.url
        return _fnv1a64(text.encode("utf-8", "surrogatepass"))

    def offset(self, now: float, seed: int = 0) -> float:
        """Seconds from ``now`` (wall time) to this target's first scrape.

        As Prometheus's ``Target.offset``: a phase within the interval fixed
        by the hash (and a per-instance ``seed``), pinned to absolute time, so
        a target is scraped at the same point of every interval however often
        the manager is restarted, and many targets spread over the interval.
        """
        interval = round(self.interval * 1e9)
        now_ns = round(now * 1e9)
        base = interval - now_ns % interval
        offset = (self.hash() ^ seed) % interval
        delay = base + offset
        if delay > interval:
            delay -= interval
        return delay / 1e9


@dataclass(frozen=True, slots=True)
class TargetGroup:
    """Addresses sharing labels: a ``static_configs`` entry, a file_sd group, a DNS answer."""

    targets: tuple[str, ...]
    """``host:port`` addresses (``__address__``)."""
    labels: Labels = ()
    """Labels for every target of the group (may include ``__meta_*`` and ``__`` overrides)."""
    source: str = ""
    target_labels: tuple[Labels, ...] = ()
    """Per-target extra labels (DNS SD puts ``__meta_dns_*`` here), parallel to ``targets`` when set."""


@dataclass(frozen=True, slots=True)
class FileSDConfig:
    """``file_sd_configs`` entry: files (globs in the last path element) and the full re-read period."""

    files: tuple[str, ...]
    refresh_interval: float = 300.0


@dataclass(frozen=True, slots=True)
class DnsSDConfig:
    """``dns_sd_configs`` entry: names to resolve, record type (SRV, A, AAAA) and port (A/AAAA)."""

    names: tuple[str, ...]
    type: str = "SRV"
    port: int = 0
    refresh_interval: float = 30.0


@dataclass(frozen=True, slots=True)
class ConfigIssue:
    """Something in a configuration that promscope does not apply, so what it scrapes may differ."""

    where: str
    """File and position: ``prometheus.yml: scrape_configs[2] (job "node")``."""
    key: str
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.key}: {self.message}"


@dataclass(frozen=True, slots=True)
class ScrapeConfig:
    """One job: how its targets are scraped, and where they come from.

    A Prometheus ``scrape_config`` or a ``[[targets]]`` table. :meth:`targets`
    turns a :class:`TargetGroup` into :class:`ScrapeTarget` values.
    """

    job_name: str = DEFAULT_JOB
    interval: float = DEFAULT_INTERVAL
    timeout: float = DEFAULT_TIMEOUT
    scheme: str = "http"
    metrics_path: str = "/metrics"
    params: tuple[tuple[str, tuple[str, ...]], ...] = ()
    honor_labels: bool = False
    honor_timestamps: bool = True
    sample_limit: int = 0
    body_size_limit: int = DEFAULT_BODY_SIZE_LIMIT
    basic_auth: BasicAuth | None = None
    bearer_token: str | None = field(default=None, repr=False)
    bearer_token_file: str | None = None
    headers: tuple[tuple[str, str], ...] = ()
    tls: TLSConfig = field(default_factory=TLSConfig)
    accept: str = ACCEPT_PROMETHEUS3
    compression: bool = True
    follow_redirects: bool = True
    fallback_protocol: ScrapeProtocol | None = None
    urls: tuple[str, ...] = ()
    """Full URLs (promscope.toml ``urls``); each becomes a target with ``instance`` = host:port."""
    static_configs: tuple[TargetGroup, ...] = ()
    file_sd_configs: tuple[FileSDConfig, ...] = ()
    dns_sd_configs: tuple[DnsSDConfig, ...] = ()
    labels: Labels = ()
    """Labels for every target of the job, below discovered labels (promscope.toml ``labels``)."""

    def request(self, url: str, timeout: float | None = None) -> Target:
        """The :class:`Target` (request settings) for ``url`` under this config. Raises ConfigError."""
        return Target(
            url,
            accept=self.accept,
            timeout=self.timeout if timeout is None else timeout,
            body_size_limit=self.body_size_limit,
            compression=self.compression,
            follow_redirects=self.follow_redirects,
            basic_auth=self.basic_auth,
            bearer_token=self.bearer_token,
            bearer_token_file=self.bearer_token_file,
            headers=self.headers,
            tls=self.tls,
            fallback_protocol=self.fallback_protocol,
        )

    def static_targets(self) -> tuple[list[ScrapeTarget], list[str]]:
        """Targets of ``urls`` and ``static_configs``, and one message per target that could not be built."""
        built: list[ScrapeTarget] = []
        errors: list[str] = []
        for url in self.urls:
            try:
                built.append(self.url_target(url))
            except ConfigError as exc:
                errors.append(str(exc))
        for group in self.static_configs:
            targets, failures = self.targets(group)
            built.extend(targets)
            errors.extend(failures)
        return built, errors

    def url_target(
        self, url: str, labels: Mapping[str, str] | None = None, origin: str = "static"
    ) -> ScrapeTarget:
        """A target for a full URL: ``instance`` is its ``host:port``. Raises ConfigError."""
        request = self.request(url)
        parts = urlsplit(url)
        instance = parts.netloc.rpartition("@")[2]
        merged = {**dict(self.labels), **dict(labels or {}), "job": self.job_name}
        merged.setdefault("instance", instance)
        final = tuple(sorted((k, v) for k, v in merged.items() if v and not k.startswith("__")))
        return ScrapeTarget(
            request=request,
            labels=final,
            interval=self.interval,
            honor_labels=self.honor_labels,
            honor_timestamps=self.honor_timestamps,
            sample_limit=self.sample_limit,
            scrape_pool=self.job_name,
            discovered=tuple(sorted({**merged, "__address__": instance}.items())),
            origin=origin,
        )

    def targets(self, group: TargetGroup) -> tuple[list[ScrapeTarget], list[str]]:
        """Targets for a group, as Prometheus's ``TargetsFromGroup``; and a message per bad target."""
        built: list[ScrapeTarget] = []
        errors: list[str] = []
        for index, address in enumerate(group.targets):
            discovered = {**dict(self.labels), **dict(group.labels)}
            if index < len(group.target_labels):
                discovered.update(group.target_labels[index])
            discovered["__address__"] = address
            try:
                built.append(self._populate(discovered, group.source or "static"))
            except ConfigError as exc:
                errors.append(f"{group.source or 'static'}: target {address!r}: {exc.message}")
        return built, errors

    def _populate(self, discovered: dict[str, str], origin: str) -> ScrapeTarget:
        labels = dict(discovered)
        defaults = {
            "job": self.job_name,
            "__scheme__": self.scheme,
            "__metrics_path__": self.metrics_path,
            "__scrape_interval__": format_duration(self.interval),
            "__scrape_timeout__": format_duration(self.timeout),
        }
        for name, values in self.params:
            if values:
                defaults[f"__param_{name}"] = values[0]
        for name, value in defaults.items():
            labels.setdefault(name, value)
        address = labels.get("__address__", "")
        if not address:
            raise ConfigError("no address")
        if "/" in address:
            raise ConfigError(f"{address!r} is not a valid address: it must be host:port, without a path")
        scheme = labels["__scheme__"]
        if scheme not in ("http", "https"):
            raise ConfigError(f"scheme {scheme!r} is not supported (http or https)")
        try:
            interval = parse_duration(labels["__scrape_interval__"])
            timeout = parse_duration(labels["__scrape_timeout__"])
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        if interval <= 0:
            raise ConfigError("scrape interval cannot be 0")
        if timeout <= 0:
            raise ConfigError("scrape timeout cannot be 0")
        if timeout > interval:
            raise ConfigError(
                f"scrape timeout {format_duration(timeout)} greater than scrape interval "
                f"{format_duration(interval)}"
            )
        params: dict[str, list[str]] = {name: list(values) for name, values in self.params}
        for name, value in labels.items():
            if name.startswith("__param_"):
                key = name[len("__param_") :]
                if params.get(key):
                    params[key][0] = value
                else:
                    params[key] = [value]
        path = labels["__metrics_path__"]
        if not path.startswith("/"):
            path = "/" + path
        query = urlencode([(k, v) for k in sorted(params) for v in params[k]])
        url = f"{scheme}://{address}{path}" + (f"?{query}" if query else "")
        labels.setdefault("instance", address)
        final = tuple(sorted((k, v) for k, v in labels.items() if v and not k.startswith("__")))
        return ScrapeTarget(
            request=self.request(url, timeout),
            labels=final,
            interval=interval,
            honor_labels=self.honor_labels,
            honor_timestamps=self.honor_timestamps,
            sample_limit=self.sample_limit,
            scrape_pool=self.job_name,
            discovered=tuple(sorted(discovered.items())),
            origin=origin,
        )


def targets_from_urls(
    urls: Iterable[str],
    *,
    job: str = DEFAULT_JOB,
    interval: float = DEFAULT_INTERVAL,
    timeout: float | None = None,
    config: ScrapeConfig | None = None,
    labels: Mapping[str, str] | None = None,
) -> list[ScrapeTarget]:
    """Targets for URLs given on the command line. Raises ConfigError for a bad URL.

    ``config`` carries request settings (auth, TLS, headers, limits); its job
    and interval are replaced by ``job`` and ``interval``. ``timeout`` defaults
    to the smaller of 10s and the interval.
    """
    base = config or ScrapeConfig()
    chosen_timeout = min(DEFAULT_TIMEOUT, interval) if timeout is None else timeout
    base = dataclasses.replace(base, job_name=job, interval=interval, timeout=chosen_timeout)
    return [base.url_target(url, labels, origin="cli") for url in urls]


# --------------------------------------------------------------------------------------------------
# reading values (shared by the YAML and TOML readers)
# --------------------------------------------------------------------------------------------------


class _Reader:
    """Names the file and key in every error; resolves paths relative to the file."""

    def __init__(self, path: str | None, base: Path | None) -> None:
        self.path = path
        self.base = base

    def fail(self, key: str, problem: str, hint: str = "") -> ConfigError:
        return ConfigError(f"{key}: {problem}", path=self.path, hint=hint)

    def file(self, value: object, key: str) -> str:
        text = self.string(value, key)
        if self.base is not None and not Path(text).is_absolute():
            return str(self.base / text)
        return text

    def read_secret(self, value: object, key: str) -> str:
        name = self.file(value, key)
        try:
            return Path(name).read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror.lower() if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise self.fail(key, f"cannot read {name}: {reason}") from None

    def string(self, value: object, key: str) -> str:
        if not isinstance(value, str):
            raise self.fail(key, f"expected a string, got {_describe(value)}")
        return value

    def strings(self, value: object, key: str) -> tuple[str, ...]:
        if isinstance(value, str):
            return (value,)
        if not isinstance(value, list):
            raise self.fail(key, f"expected a list of strings, got {_describe(value)}")
        return tuple(self.string(item, f"{key}[{i}]") for i, item in enumerate(value))

    def boolean(self, value: object, key: str) -> bool:
        if not isinstance(value, bool):
            raise self.fail(key, f"expected true or false, got {_describe(value)}")
        return value

    def integer(self, value: object, key: str, minimum: int = 0) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(key, f"expected an integer, got {_describe(value)}")
        if value < minimum:
            raise self.fail(key, f"must be at least {minimum}, got {value}")
        return value

    def duration(self, value: object, key: str) -> float:
        try:
            return parse_duration(value)
        except ValueError as exc:
            raise self.fail(key, str(exc)) from None

    def size(self, value: object, key: str) -> int:
        try:
            return parse_size(value)
        except ValueError as exc:
            raise self.fail(key, str(exc)) from None

    def table(self, value: object, key: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(key, f"expected a mapping, got {_describe(value)}")
        return value

    def labels(self, value: object, key: str) -> Labels:
        table = self.table(value, key)
        out: list[tuple[str, str]] = []
        for name, item in table.items():
            if not isinstance(name, str) or not _LABEL_NAME.match(name):
                raise self.fail(f"{key}.{name}", "not a valid label name")
            if isinstance(item, bool) or not isinstance(item, str | int | float):
                raise self.fail(f"{key}.{name}", f"expected a string, got {_describe(item)}")
            out.append((name, str(item)))
        return tuple(sorted(out))

    def params(self, value: object, key: str) -> tuple[tuple[str, tuple[str, ...]], ...]:
        table = self.table(value, key)
        return tuple(sorted((str(name), self.strings(item, f"{key}.{name}")) for name, item in table.items()))


_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


def _describe(value: object) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return f"the number {value}"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


def _check_timeout(interval: float, timeout: float, key: str, reader: _Reader) -> None:
    if interval <= 0:
        raise reader.fail(key, "the scrape interval must be positive")
    if timeout <= 0:
        raise reader.fail(key, "the scrape timeout must be positive")
    if timeout > interval:
        raise reader.fail(
            key,
            f"scrape timeout {format_duration(timeout)} is greater than the scrape interval "
            f"{format_duration(interval)}",
            hint="Prometheus refuses this too: lower the timeout or raise the interval",
        )


# --------------------------------------------------------------------------------------------------
# Prometheus configuration (YAML)
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PrometheusConfig:
    """The scrape part of a Prometheus configuration file, and what promscope does not apply."""

    scrape_configs: tuple[ScrapeConfig, ...]
    issues: tuple[ConfigIssue, ...] = ()
    path: str | None = None
    scrape_interval: float = PROMETHEUS_GLOBAL_INTERVAL
    """``global.scrape_interval``."""
    scrape_timeout: float = PROMETHEUS_GLOBAL_TIMEOUT

    def job(self, name: str) -> ScrapeConfig | None:
        for config in self.scrape_configs:
            if config.job_name == name:
                return config
        return None


_GLOBAL_APPLIED = {"scrape_interval", "scrape_timeout", "sample_limit", "body_size_limit", "scrape_protocols"}
_GLOBAL_IRRELEVANT = {
    "evaluation_interval",
    "rule_query_offset",
    "external_labels",
    "query_log_file",
    "scrape_failure_log_file",
    "metric_name_validation_scheme",
    "metric_name_escaping_scheme",
}
_TOP_IRRELEVANT = {
    "rule_files",
    "alerting",
    "remote_write",
    "remote_read",
    "storage",
    "tracing",
    "otlp",
    "runtime",
}
_SCRAPE_APPLIED = {
    "job_name",
    "scrape_interval",
    "scrape_timeout",
    "scheme",
    "metrics_path",
    "params",
    "honor_labels",
    "honor_timestamps",
    "sample_limit",
    "body_size_limit",
    "basic_auth",
    "authorization",
    "bearer_token",
    "bearer_token_file",
    "tls_config",
    "follow_redirects",
    "enable_compression",
    "scrape_protocols",
    "fallback_scrape_protocol",
    "http_headers",
    "static_configs",
    "file_sd_configs",
    "dns_sd_configs",
}
_SCRAPE_QUIET = {"enable_http2", "scrape_failure_log_file", "metric_name_validation_scheme"}
"""Keys that change nothing promscope shows."""
_SCRAPE_LIMITS = {
    "label_limit",
    "label_name_length_limit",
    "label_value_length_limit",
    "target_limit",
    "keep_dropped_targets",
    "native_histogram_bucket_limit",
    "native_histogram_min_bucket_factor",
}
_UNSUPPORTED_HINTS = {
    "relabel_configs": "targets are used as discovered, without relabeling: their labels, "
    "addresses and the set of targets may differ from Prometheus's",
    "metric_relabel_configs": "samples are kept as scraped, without metric relabeling",
    "oauth2": "OAuth 2.0 tokens are not fetched: the target will answer 401",
    "proxy_url": "the target is requested directly, not through the proxy",
    "no_proxy": "the target is requested directly",
    "proxy_from_environment": "the target is requested directly",
    "proxy_connect_header": "the target is requested directly",
    "track_timestamps_staleness": "staleness is not tracked",
    "scrape_classic_histograms": "histograms are kept as exposed",
    "always_scrape_classic_histograms": "histograms are kept as exposed",
    "convert_classic_histograms_to_nhcb": "histograms are kept as exposed",
    "scrape_native_histograms": "histograms are kept as exposed",
    "metric_name_escaping_scheme": "names are kept as exposed",
}


def parse_prometheus_config(
    doc: object, path: str | None = None, *, strict: bool = False, _files: bool = True
) -> PrometheusConfig:
    """Read a parsed Prometheus configuration document (see the module docstring).

    Raises ConfigError for malformed values and, with ``strict``, for any issue.
    """
    base = Path(path).resolve().parent if path else None
    reader = _Reader(path, base)
    name = path or "prometheus config"
    if doc is None:
        doc = {}
    top = reader.table(doc, "(top level)")
    issues: list[ConfigIssue] = []
    global_doc = reader.table(top.get("global") or {}, "global")
    interval = PROMETHEUS_GLOBAL_INTERVAL
    timeout = PROMETHEUS_GLOBAL_TIMEOUT
    defaults: dict[str, Any] = {}
    for key, value in global_doc.items():
        full = f"global.{key}"
        if key == "scrape_interval":
            interval = reader.duration(value, full)
        elif key == "scrape_timeout":
            timeout = reader.duration(value, full)
        elif key == "sample_limit":
            defaults["sample_limit"] = reader.integer(value, full)
        elif key == "body_size_limit":
            defaults["body_size_limit"] = reader.size(value, full)
        elif key == "scrape_protocols":
            defaults["accept"] = _accept(value, full, reader)
        elif key in _GLOBAL_IRRELEVANT:
            continue
        elif key in _SCRAPE_LIMITS:
            issues.append(ConfigIssue(name, full, "not enforced by promscope"))
        else:
            issues.append(ConfigIssue(name, full, "unknown key, ignored (Prometheus would refuse the file)"))
    if "scrape_timeout" not in global_doc and timeout > interval:
        timeout = interval
    _check_timeout(interval, timeout, "global", reader)

    raw_configs: list[tuple[str, object]] = []
    scrape_list = top.get("scrape_configs") or []
    if not isinstance(scrape_list, list):
        raise reader.fail("scrape_configs", f"expected a list, got {_describe(scrape_list)}")
    raw_configs.extend((f"scrape_configs[{i}]", item) for i, item in enumerate(scrape_list))
    extra_files = top.get("scrape_config_files") or []
    for pattern in reader.strings(extra_files, "scrape_config_files"):
        for file in sorted(glob.glob(reader.file(pattern, "scrape_config_files"))):
            if not _files:
                break
            sub = _read_yaml(Path(file))
            sub_doc = _Reader(file, None).table(sub or {}, "(top level)")
            for key in sub_doc:
                if key != "scrape_configs":
                    issues.append(
                        ConfigIssue(file, key, "only scrape_configs is read from a scrape config file")
                    )
            items = sub_doc.get("scrape_configs") or []
            if not isinstance(items, list):
                raise ConfigError("scrape_configs: expected a list", path=file)
            raw_configs.extend((f"{file}: scrape_configs[{i}]", item) for i, item in enumerate(items))
    for key in top:
        if key in ("global", "scrape_configs", "scrape_config_files") or key in _TOP_IRRELEVANT:
            continue
        issues.append(ConfigIssue(name, key, "unknown top-level key, ignored"))

    configs: list[ScrapeConfig] = []
    seen: set[str] = set()
    for where, item in raw_configs:
        config = _scrape_config(item, where, reader, interval, timeout, defaults, issues, name)
        if config.job_name in seen:
            raise reader.fail(where, f"found multiple scrape configs with job name {config.job_name!r}")
        seen.add(config.job_name)
        configs.append(config)
    if strict and issues:
        listed = "; ".join(str(issue) for issue in issues)
        raise ConfigError(f"settings promscope does not apply: {listed}", path=path)
    return PrometheusConfig(tuple(configs), tuple(issues), path, interval, timeout)


def _accept(value: object, key: str, reader: _Reader) -> str:
    try:
        return accept_header(reader.strings(value, key))
    except ValueError as exc:
        raise reader.fail(key, str(exc)) from None


def _scrape_config(
    item: object,
    where: str,
    reader: _Reader,
    global_interval: float,
    global_timeout: float,
    defaults: Mapping[str, Any],
    issues: list[ConfigIssue],
    name: str,
) -> ScrapeConfig:
    doc = reader.table(item, where)
    job = doc.get("job_name")
    if not isinstance(job, str) or not job:
        raise reader.fail(f"{where}.job_name", "every scrape config needs a job_name")
    label = f'{where} (job "{job}")'
    kwargs: dict[str, Any] = dict(defaults)
    interval = global_interval
    timeout: float | None = None
    for key, value in doc.items():
        full = f"{label}.{key}"
        if key == "job_name":
            continue
        if key == "scrape_interval":
            interval = reader.duration(value, full)
        elif key == "scrape_timeout":
            timeout = reader.duration(value, full)
        elif key == "scheme":
            scheme = reader.string(value, full)
            if scheme not in ("http", "https"):
                raise reader.fail(full, f"unknown scheme {scheme!r} (http or https)")
            kwargs["scheme"] = scheme
        elif key == "metrics_path":
            kwargs["metrics_path"] = reader.string(value, full)
        elif key == "params":
            kwargs["params"] = reader.params(value, full)
        elif key in ("honor_labels", "honor_timestamps", "follow_redirects"):
            kwargs[key] = reader.boolean(value, full)
        elif key == "enable_compression":
            kwargs["compression"] = reader.boolean(value, full)
        elif key == "sample_limit":
            kwargs["sample_limit"] = reader.integer(value, full)
        elif key == "body_size_limit":
            kwargs["body_size_limit"] = reader.size(value, full)
        elif key == "scrape_protocols":
            kwargs["accept"] = _accept(value, full, reader)
        elif key == "fallback_scrape_protocol":
            kwargs["fallback_protocol"] = _protocol(value, full, reader)
        elif key == "basic_auth":
            kwargs["basic_auth"] = _basic_auth(value, full, reader)
        elif key == "authorization":
            kwargs.update(_authorization(value, full, reader))
        elif key == "bearer_token":
            kwargs["bearer_token"] = reader.string(value, full)
        elif key == "bearer_token_file":
            kwargs["bearer_token_file"] = reader.file(value, full)
        elif key == "tls_config":
            kwargs["tls"] = _tls(value, full, reader, issues, name)
        elif key == "http_headers":
            kwargs["headers"] = _http_headers(value, full, reader)
        elif key == "static_configs":
            kwargs["static_configs"] = _static_configs(value, full, reader)
        elif key == "file_sd_configs":
            kwargs["file_sd_configs"] = _file_sd_configs(value, full, reader, issues, name)
        elif key == "dns_sd_configs":
            kwargs["dns_sd_configs"] = _dns_sd_configs(value, full, reader, issues, name)
        elif key in _SCRAPE_QUIET:
            continue
        elif key in _SCRAPE_LIMITS:
            issues.append(ConfigIssue(name, f"{label}.{key}", "not enforced by promscope"))
        elif key in _UNSUPPORTED_HINTS:
            issues.append(ConfigIssue(name, f"{label}.{key}", f"not supported: {_UNSUPPORTED_HINTS[key]}"))
        elif key.endswith("_sd_configs"):
            issues.append(
                ConfigIssue(
                    name,
                    f"{label}.{key}",
                    f"{key[: -len('_sd_configs')]} service discovery is not supported: its targets are "
                    "not scraped (use file_sd, dns_sd, or --prometheus to scrape what a server scrapes)",
                )
            )
        else:
            issues.append(ConfigIssue(name, f"{label}.{key}", "unknown key, ignored"))
    if timeout is None:
        timeout = min(global_timeout, interval)
    _check_timeout(interval, timeout, label, reader)
    if kwargs.get("basic_auth") is not None and (
        kwargs.get("bearer_token") or kwargs.get("bearer_token_file")
    ):
        raise reader.fail(label, "at most one of basic_auth, authorization and bearer_token may be set")
    try:
        return ScrapeConfig(job_name=job, interval=interval, timeout=timeout, **kwargs)
    except ConfigError as exc:
        raise reader.fail(label, exc.message, exc.hint) from None


def _protocol(value: object, key: str, reader: _Reader) -> ScrapeProtocol:
    text = reader.string(value, key)
    try:
        return ScrapeProtocol(text)
    except ValueError:
        names = ", ".join(p.value for p in ScrapeProtocol)
        raise reader.fail(key, f"unknown scrape protocol {text!r}; one of {names}") from None


def _basic_auth(value: object, key: str, reader: _Reader) -> BasicAuth:
    doc = reader.table(value, key)
    username = doc.get("username", "")
    if "username_file" in doc:
        username = reader.read_secret(doc["username_file"], f"{key}.username_file")
    password = ""
    if "password" in doc and "password_file" in doc:
        raise reader.fail(key, "at most one of password and password_file may be set")
    if "password" in doc:
        password = reader.string(doc["password"], f"{key}.password")
    elif "password_file" in doc:
        password = reader.read_secret(doc["password_file"], f"{key}.password_file")
    for extra in doc:
        if extra not in ("username", "username_file", "password", "password_file"):
            raise reader.fail(f"{key}.{extra}", "unknown key")
    return BasicAuth(reader.string(username, f"{key}.username"), password)


def _authorization(value: object, key: str, reader: _Reader) -> dict[str, Any]:
    doc = reader.table(value, key)
    kind = reader.string(doc.get("type", "Bearer"), f"{key}.type")
    if kind.lower() == "basic":
        raise reader.fail(f"{key}.type", "authorization type cannot be set to 'basic', use basic_auth")
    for extra in doc:
        if extra not in ("type", "credentials", "credentials_file"):
            raise reader.fail(f"{key}.{extra}", "unknown key")
    if "credentials" in doc and "credentials_file" in doc:
        raise reader.fail(key, "at most one of credentials and credentials_file may be set")
    if kind == "Bearer":
        if "credentials_file" in doc:
            return {"bearer_token_file": reader.file(doc["credentials_file"], f"{key}.credentials_file")}
        if "credentials" in doc:
            return {"bearer_token": reader.string(doc["credentials"], f"{key}.credentials")}
        return {}
    if "credentials_file" in doc:
        credentials = reader.read_secret(doc["credentials_file"], f"{key}.credentials_file")
    else:
        credentials = reader.string(doc.get("credentials", ""), f"{key}.credentials")
    return {"headers": (("Authorization", f"{kind} {credentials}"),)}


def _tls(value: object, key: str, reader: _Reader, issues: list[ConfigIssue], name: str) -> TLSConfig:
    doc = reader.table(value, key)
    kwargs: dict[str, Any] = {}
    for item, raw in doc.items():
        full = f"{key}.{item}"
        if item in ("ca_file", "cert_file", "key_file"):
            kwargs[item] = reader.file(raw, full)
        elif item == "server_name":
            kwargs["server_name"] = reader.string(raw, full) or None
        elif item == "insecure_skip_verify":
            kwargs["insecure_skip_verify"] = reader.boolean(raw, full)
        else:
            issues.append(ConfigIssue(name, full, "not supported: the TLS connection is made without it"))
    try:
        return TLSConfig(**kwargs)
    except ConfigError as exc:
        raise reader.fail(key, exc.message) from None


def _http_headers(value: object, key: str, reader: _Reader) -> tuple[tuple[str, str], ...]:
    doc = reader.table(value, key)
    out: list[tuple[str, str]] = []
    for header, spec in doc.items():
        entry = reader.table(spec, f"{key}.{header}")
        values = list(reader.strings(entry.get("values", []), f"{key}.{header}.values"))
        values.extend(reader.strings(entry.get("secrets", []), f"{key}.{header}.secrets"))
        for file in reader.strings(entry.get("files", []), f"{key}.{header}.files"):
            values.append(reader.read_secret(file, f"{key}.{header}.files"))
        out.extend((str(header), item) for item in values)
    return tuple(out)


def _static_configs(value: object, key: str, reader: _Reader) -> tuple[TargetGroup, ...]:
    if not isinstance(value, list):
        raise reader.fail(key, f"expected a list, got {_describe(value)}")
    groups = []
    for index, item in enumerate(value):
        groups.append(group_from_dict(item, f"{key}[{index}]", reader, source=f"static:{index}"))
    return tuple(groups)


def group_from_dict(item: object, key: str, reader: _Reader | None = None, source: str = "") -> TargetGroup:
    """A target group from ``{"targets": [...], "labels": {...}}`` (static_configs, file_sd).

    Raises ConfigError.
    """
    reader = reader or _Reader(None, None)
    doc = reader.table(item, key)
    for extra in doc:
        if extra not in ("targets", "labels"):
            raise reader.fail(f"{key}.{extra}", "unknown key (a target group has targets and labels)")
    targets = reader.strings(doc.get("targets") or [], f"{key}.targets")
    labels = reader.labels(doc.get("labels") or {}, f"{key}.labels")
    for address in targets:
        if not address:
            raise reader.fail(f"{key}.targets", "an empty address")
    return TargetGroup(targets, labels, source)


def _file_sd_configs(
    value: object, key: str, reader: _Reader, issues: list[ConfigIssue], name: str
) -> tuple[FileSDConfig, ...]:
    if not isinstance(value, list):
        raise reader.fail(key, f"expected a list, got {_describe(value)}")
    out = []
    for index, item in enumerate(value):
        full = f"{key}[{index}]"
        doc = reader.table(item, full)
        files = tuple(
            reader.file(f, f"{full}.files") for f in reader.strings(doc.get("files") or [], f"{full}.files")
        )
        if not files:
            raise reader.fail(
                f"{full}.files", "file service discovery config must contain at least one path name"
            )
        for file in files:
            if not re.search(r"[^/]*\.(json|ya?ml)$", Path(file).name) or "*" in str(Path(file).parent):
                raise reader.fail(
                    f"{full}.files",
                    f"path name {file!r} is not valid for file discovery",
                    hint="files end in .json, .yml or .yaml; a glob is allowed in the last path element only",
                )
        refresh = reader.duration(doc.get("refresh_interval", "5m"), f"{full}.refresh_interval")
        for extra in doc:
            if extra not in ("files", "refresh_interval"):
                issues.append(ConfigIssue(name, f"{full}.{extra}", "unknown key, ignored"))
        out.append(FileSDConfig(files, refresh))
    return tuple(out)


def _dns_sd_configs(
    value: object, key: str, reader: _Reader, issues: list[ConfigIssue], name: str
) -> tuple[DnsSDConfig, ...]:
    if not isinstance(value, list):
        raise reader.fail(key, f"expected a list, got {_describe(value)}")
    out = []
    for index, item in enumerate(value):
        full = f"{key}[{index}]"
        doc = reader.table(item, full)
        names = reader.strings(doc.get("names") or [], f"{full}.names")
        if not names:
            raise reader.fail(f"{full}.names", "DNS-SD config must contain at least one SRV record name")
        kind = reader.string(doc.get("type", "SRV"), f"{full}.type").upper()
        port = 0
        if kind in ("A", "AAAA"):
            port = reader.integer(doc.get("port", 0), f"{full}.port", 1)
        elif kind != "SRV":
            issues.append(
                ConfigIssue(name, f"{full}.type", f"DNS record type {kind} is not supported (SRV, A, AAAA)")
            )
            continue
        refresh = reader.duration(doc.get("refresh_interval", "30s"), f"{full}.refresh_interval")
        for extra in doc:
            if extra not in ("names", "type", "port", "refresh_interval"):
                issues.append(ConfigIssue(name, f"{full}.{extra}", "unknown key, ignored"))
        out.append(DnsSDConfig(names, kind, port, refresh))
    return tuple(out)


def _read_yaml(path: Path) -> object:
    import yaml

    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror.lower() if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError(f"cannot read the file: {reason}", path=str(path)) from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"not valid YAML{where}: {problem}", path=str(path)) from None


def load_prometheus_config(path: str | Path, *, strict: bool = False) -> PrometheusConfig:
    """Read a Prometheus configuration file (YAML). Raises ConfigError."""
    return parse_prometheus_config(_read_yaml(Path(path)), str(path), strict=strict)


# --------------------------------------------------------------------------------------------------
# promscope.toml: [scrape] and [[targets]]
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ScrapeSettings:
    """The ``[scrape]`` and ``[[targets]]`` tables of ``promscope.toml``."""

    interval: float = DEFAULT_INTERVAL
    timeout: float = DEFAULT_TIMEOUT
    sample_limit: int = 0
    body_size_limit: int = DEFAULT_BODY_SIZE_LIMIT
    max_connections: int = 256
    max_targets: int = 10_000
    history: int = 720
    jobs: tuple[ScrapeConfig, ...] = ()
    prometheus_configs: tuple[str, ...] = ()
    prometheus_servers: tuple[str, ...] = ()
    path: str | None = None

    def defaults(self) -> ScrapeConfig:
        """A :class:`ScrapeConfig` carrying the ``[scrape]`` defaults (for URLs from the command line)."""
        return ScrapeConfig(
            interval=self.interval,
            timeout=min(self.timeout, self.interval),
            sample_limit=self.sample_limit,
            body_size_limit=self.body_size_limit,
        )


_SCRAPE_TABLE_KEYS = (
    "interval",
    "timeout",
    "sample_limit",
    "body_size_limit",
    "max_connections",
    "max_targets",
    "history",
    "prometheus_config",
    "prometheus_server",
)
_TARGET_KEYS = (
    "job",
    "urls",
    "static",
    "file_sd",
    "dns_srv",
    "scheme",
    "metrics_path",
    "params",
    "labels",
    "interval",
    "timeout",
    "honor_labels",
    "honor_timestamps",
    "sample_limit",
    "body_size_limit",
    "basic_auth",
    "authorization",
    "bearer_token_file",
    "tls",
    "headers",
    "accept",
    "compression",
    "follow_redirects",
    "fallback_protocol",
    "file_sd_refresh",
    "dns_refresh",
)


def parse_scrape_tables(
    doc: Mapping[str, object], path: str | None = None, *, prefix: str = ""
) -> ScrapeSettings:
    """Build :class:`ScrapeSettings` from the ``scrape`` and ``targets`` keys of a TOML document.

    Other keys of ``doc`` are left alone (``promscope.config`` reads them).
    ``prefix`` names the tables in errors (``"tool.promscope."`` in pyproject.toml).
    Raises ConfigError naming the file and the key.
    """
    base = Path(path).resolve().parent if path else None
    reader = _Reader(path, base)
    settings: dict[str, Any] = {"path": path}
    table = reader.table(doc.get("scrape") or {}, f"{prefix}scrape")
    for key, value in table.items():
        full = f"{prefix}scrape.{key}"
        if key in ("interval", "timeout"):
            settings[key] = reader.duration(value, full)
        elif key == "sample_limit":
            settings[key] = reader.integer(value, full)
        elif key == "body_size_limit":
            settings[key] = reader.size(value, full)
        elif key in ("max_connections", "max_targets", "history"):
            settings[key] = reader.integer(value, full, 1)
        elif key == "prometheus_config":
            settings["prometheus_configs"] = tuple(reader.file(f, full) for f in reader.strings(value, full))
        elif key == "prometheus_server":
            servers = reader.strings(value, full)
            for server in servers:
                if urlsplit(server).scheme not in ("http", "https"):
                    raise reader.fail(
                        full, f"{server!r} is not an http(s) URL", hint="e.g. http://127.0.0.1:9090"
                    )
            settings["prometheus_servers"] = servers
        else:
            raise reader.fail(full, "unknown key", hint=f"known keys: {', '.join(_SCRAPE_TABLE_KEYS)}")
    interval = settings.get("interval", DEFAULT_INTERVAL)
    if "timeout" not in settings:
        settings["timeout"] = min(DEFAULT_TIMEOUT, interval)
    _check_timeout(interval, settings["timeout"], f"{prefix}scrape", reader)
    defaults = ScrapeSettings(**settings)
    raw = doc.get("targets") or []
    if not isinstance(raw, list):
        raise reader.fail(f"{prefix}targets", "expected an array of tables: [[targets]]")
    jobs = tuple(_toml_job(item, f"{prefix}targets[{i}]", reader, defaults) for i, item in enumerate(raw))
    return dataclasses.replace(defaults, jobs=jobs)


def _toml_job(item: object, key: str, reader: _Reader, defaults: ScrapeSettings) -> ScrapeConfig:
    doc = reader.table(item, key)
    kwargs: dict[str, Any] = {
        "sample_limit": defaults.sample_limit,
        "body_size_limit": defaults.body_size_limit,
    }
    interval = defaults.interval
    timeout: float | None = None
    labels: Labels = ()
    static: tuple[str, ...] = ()
    file_sd: tuple[str, ...] = ()
    dns: tuple[str, ...] = ()
    file_refresh = 300.0
    dns_refresh = 30.0
    for name, value in doc.items():
        full = f"{key}.{name}"
        if name == "job":
            kwargs["job_name"] = reader.string(value, full)
            if not kwargs["job_name"]:
                raise reader.fail(full, "the job name cannot be empty")
        elif name == "urls":
            urls = reader.strings(value, full)
            for url in urls:
                if urlsplit(url).scheme not in ("http", "https"):
                    raise reader.fail(
                        full, f"{url!r} is not an http(s) URL", hint="e.g. http://127.0.0.1:9100/metrics"
                    )
            kwargs["urls"] = urls
        elif name == "static":
            static = reader.strings(value, full)
        elif name == "file_sd":
            file_sd = tuple(reader.file(f, full) for f in reader.strings(value, full))
        elif name == "dns_srv":
            dns = reader.strings(value, full)
        elif name == "scheme":
            scheme = reader.string(value, full)
            if scheme not in ("http", "https"):
                raise reader.fail(full, f"unknown scheme {scheme!r} (http or https)")
            kwargs["scheme"] = scheme
        elif name == "metrics_path":
            kwargs["metrics_path"] = reader.string(value, full)
        elif name == "params":
            kwargs["params"] = reader.params(value, full)
        elif name == "labels":
            labels = reader.labels(value, full)
        elif name == "interval":
            interval = reader.duration(value, full)
        elif name == "timeout":
            timeout = reader.duration(value, full)
        elif name in ("honor_labels", "honor_timestamps", "compression", "follow_redirects"):
            kwargs[name] = reader.boolean(value, full)
        elif name == "sample_limit":
            kwargs[name] = reader.integer(value, full)
        elif name == "body_size_limit":
            kwargs[name] = reader.size(value, full)
        elif name == "basic_auth":
            kwargs["basic_auth"] = _basic_auth(value, full, reader)
        elif name == "authorization":
            kwargs.update(_authorization(value, full, reader))
        elif name == "bearer_token_file":
            kwargs["bearer_token_file"] = reader.file(value, full)
        elif name == "tls":
            issues: list[ConfigIssue] = []
            kwargs["tls"] = _tls(value, full, reader, issues, reader.path or "promscope.toml")
            if issues:
                raise reader.fail(
                    issues[0].key,
                    "unknown key",
                    hint="ca_file, cert_file, key_file, server_name, insecure_skip_verify",
                )
        elif name == "headers":
            table = reader.table(value, full)
            kwargs["headers"] = tuple((str(h), reader.string(v, f"{full}.{h}")) for h, v in table.items())
        elif name == "accept":
            try:
                kwargs["accept"] = accept_for(reader.string(value, full))
            except ValueError as exc:
                raise reader.fail(full, str(exc)) from None
        elif name == "fallback_protocol":
            kwargs["fallback_protocol"] = _protocol(value, full, reader)
        elif name == "file_sd_refresh":
            file_refresh = reader.duration(value, full)
        elif name == "dns_refresh":
            dns_refresh = reader.duration(value, full)
        else:
            raise reader.fail(full, "unknown key", hint=f"known keys: {', '.join(_TARGET_KEYS)}")
    if not (kwargs.get("urls") or static or file_sd or dns):
        raise reader.fail(key, "give at least one of urls, static, file_sd or dns_srv")
    if timeout is None:
        timeout = min(defaults.timeout, interval)
    _check_timeout(interval, timeout, key, reader)
    groups = (TargetGroup(static, (), "static"),) if static else ()
    if kwargs.get("basic_auth") is not None and (
        kwargs.get("bearer_token") or kwargs.get("bearer_token_file")
    ):
        raise reader.fail(key, "basic_auth and authorization are mutually exclusive")
    try:
        config = ScrapeConfig(
            interval=interval,
            timeout=timeout,
            static_configs=groups,
            file_sd_configs=(FileSDConfig(file_sd, file_refresh),) if file_sd else (),
            dns_sd_configs=(DnsSDConfig(dns, "SRV", 0, dns_refresh),) if dns else (),
            labels=labels,
            **kwargs,
        )
    except ConfigError as exc:
        raise reader.fail(key, exc.message, exc.hint) from None
    return config


def load_scrape_settings(path: str | Path) -> ScrapeSettings:
    """Read ``[scrape]``/``[[targets]]`` from a TOML file (``[tool.promscope]`` in pyproject.toml).

    Raises ConfigError.
    """
    file = Path(path)
    try:
        with file.open("rb") as handle:
            doc = tomllib.load(handle)
    except OSError as exc:
        raise ConfigError(
            f"cannot read the file: {(exc.strerror or str(exc)).lower()}", path=str(file)
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"not valid TOML: {exc}", path=str(file)) from None
    if file.name == "pyproject.toml":
        tool = doc.get("tool", {})
        section = tool.get("promscope", {}) if isinstance(tool, dict) else {}
        return parse_scrape_tables(
            section if isinstance(section, dict) else {}, str(file), prefix="tool.promscope."
        )
    return parse_scrape_tables(doc, str(file))
