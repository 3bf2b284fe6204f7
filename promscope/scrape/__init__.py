"""Scraping: one request to one target, and everything Prometheus would make of it.

::

    from promscope.scrape import Target, fetch, scrape_sync

    result = await fetch(Target("http://127.0.0.1:9100/metrics", timeout=5))
    result.up, result.up_reason          # what Prometheus 3 would record, and why
    result.negotiated.note               # what it does with the Content-Type
    result.parse.diagnostics             # every problem in the exposition
    result.timings.first_byte            # seconds

The API:

* :class:`Target` (``target.py``): url, accept, timeout, body_size_limit,
  compression, follow_redirects, basic_auth (:class:`BasicAuth`),
  bearer_token / bearer_token_file, headers, tls (:class:`TLSConfig`: ca_file,
  cert_file, key_file, insecure_skip_verify, server_name), fallback_protocol,
  max_decompression_ratio. Validated on construction (ConfigError).
* :class:`ScrapeResult` (``result.py``): target, accept, final_url,
  redirects, status, reason, http_version, headers, content_type,
  content_encoding, negotiated, format, compressed_bytes,
  uncompressed_bytes, timings (:class:`Timings`: connect, tls, first_byte,
  total, parse), parse (a ParseResult), error (:class:`ScrapeError` with an
  :class:`ErrorKind`), up, up_reason, scrape_series_added,
  scrape_body_size_bytes, body; ``scrape_duration_seconds`` and
  ``scrape_samples_scraped`` properties; ``prometheus_series()``.
* ``async fetch(target, *, client=None, clock=time.perf_counter,
  limits=None, thread_threshold=1 MiB) -> ScrapeResult`` and
  ``scrape_sync(target, **kw)`` (``fetch.py``); ``make_client(target)``
  builds an httpx client with the target's TLS settings.
* :class:`Selector` and :func:`parse_selector` (``select.py``): a series
  selector such as ``http_*{code=~"5..", method!="GET"}`` to filter families.

Live scraping (loaded on first use):

* :class:`ScrapeTarget`, :class:`ScrapeConfig`, :func:`targets_from_urls`,
  :func:`load_prometheus_config`, :class:`ScrapeSettings` (``targets.py``):
  targets from URLs, promscope.toml and Prometheus config files.
* :class:`FileSD`, :class:`DnsSD`, :class:`PrometheusSD`, :class:`StaticSource`
  (``sd.py``): target sources that change over time.
* :class:`ScrapeManager` (``loop.py``): one never-overlapping, jittered loop per
  target on a shared client, each scrape an Observation for a sink.
* :class:`TargetHealth`, :class:`FailureClass` (``health.py``): per-target history.

``fetch``, ``scrape_sync`` and ``make_client`` import httpx on first use, so
code that only builds targets or selectors does not load it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from promscope.scrape.result import ErrorKind, ScrapeError, ScrapeResult, Timings
from promscope.scrape.select import Matcher, Selector, SelectorError, parse_selector
from promscope.scrape.target import BasicAuth, Target, TLSConfig

if TYPE_CHECKING:
    from promscope.scrape._fetch import fetch, make_client, scrape_sync
    from promscope.scrape.health import FailureClass, TargetHealth
    from promscope.scrape.loop import ScrapeManager
    from promscope.scrape.sd import DnsSD, FileSD, PrometheusSD, StaticSource
    from promscope.scrape.targets import (
        ScrapeConfig,
        ScrapeSettings,
        ScrapeTarget,
        load_prometheus_config,
        targets_from_urls,
    )

__all__ = [
    "BasicAuth",
    "DnsSD",
    "ErrorKind",
    "FailureClass",
    "FileSD",
    "Matcher",
    "PrometheusSD",
    "ScrapeConfig",
    "ScrapeError",
    "ScrapeManager",
    "ScrapeResult",
    "ScrapeSettings",
    "ScrapeTarget",
    "Selector",
    "SelectorError",
    "StaticSource",
    "TLSConfig",
    "Target",
    "TargetHealth",
    "Timings",
    "fetch",
    "load_prometheus_config",
    "make_client",
    "parse_selector",
    "scrape_sync",
    "targets_from_urls",
]

_LAZY = {
    "fetch": "_fetch",
    "make_client": "_fetch",
    "scrape_sync": "_fetch",
    "FailureClass": "health",
    "TargetHealth": "health",
    "ScrapeManager": "loop",
    "DnsSD": "sd",
    "FileSD": "sd",
    "PrometheusSD": "sd",
    "StaticSource": "sd",
    "ScrapeConfig": "targets",
    "ScrapeSettings": "targets",
    "ScrapeTarget": "targets",
    "load_prometheus_config": "targets",
    "targets_from_urls": "targets",
}
"""Names whose modules load on first use (httpx, yaml, dnspython stay unloaded until needed)."""


def __getattr__(name: str) -> Any:
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module 'promscope.scrape' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f"promscope.scrape.{module_name}"), name)
    globals()[name] = value
    return value
