"""A scrape as Prometheus ingests it: :class:`ScrapeResult` -> :class:`~promscope.observation.Observation`.

:class:`ScrapeObserver` holds what one target's scrapes need across scrapes
(the series of the previous scrape, to count ``scrape_series_added`` as
Prometheus's scrape cache does) and turns each result into an Observation of
kind ``SCRAPE`` whose ``source`` is the target's ``job/instance``:

* **Target labels**, as Prometheus's ``mutateSampleLabels``: with
  ``honor_labels`` a target label is added only where the sample lacks it;
  otherwise target labels win and a clashing scraped label is kept as
  ``exported_<name>`` (``exported_exported_<name>`` if that is taken too).
  Labels with empty values are dropped. Timestamps are dropped unless
  ``honor_timestamps``.
* **sample_limit**: more samples than the limit refuses the whole scrape
  (``up`` 0, failure class ``sample_limit``), as in Prometheus; the counts
  still say how many samples there were.
* **The series Prometheus records for every scrape**, as gauge families with
  the target labels: ``up``, ``scrape_duration_seconds``,
  ``scrape_samples_scraped``, ``scrape_samples_post_metric_relabeling``,
  ``scrape_series_added``, and the ``extra-scrape-metrics`` ones
  ``scrape_timeout_seconds``, ``scrape_sample_limit`` and
  ``scrape_body_size_bytes``.
* A scrape Prometheus would not ingest (``up`` 0) carries only those series;
  its diagnostics are still on the observation.

``Observation.transport.extra`` carries ``job``, ``instance``, ``samples``
(scraped), ``series_added``, ``failure`` (a
:class:`~promscope.scrape.health.FailureClass` value, when down) and ``format``.
"""

from __future__ import annotations

from collections.abc import Mapping
from itertools import chain
from operator import attrgetter
from types import MappingProxyType
from urllib.parse import urlsplit

from promscope.exposition._lex import new_family, new_sample, new_samples
from promscope.model import Format, Labels, MetricFamily, MetricType, Sample
from promscope.observation import Observation, ObservationKind, Outcome, Transport
from promscope.scrape.health import FailureClass
from promscope.scrape.result import ScrapeResult
from promscope.scrape.targets import ScrapeTarget

__all__ = ["REPORT_SERIES", "ScrapeObserver"]

REPORT_SERIES: tuple[tuple[str, str], ...] = (
    ("up", "Health of the scrape target. 1 means the target is healthy, 0 if the scrape failed."),
    ("scrape_duration_seconds", "Duration of the last scrape in seconds."),
    ("scrape_samples_scraped", "Number of samples last scraped."),
    (
        "scrape_samples_post_metric_relabeling",
        "Number of samples remaining after metric relabeling was applied.",
    ),
    ("scrape_series_added", "Number of series in the last scrape."),
    ("scrape_timeout_seconds", "The configured scrape timeout for a target."),
    (
        "scrape_sample_limit",
        "The configured sample limit for a target. Returns zero if there is no limit configured.",
    ),
    (
        "scrape_body_size_bytes",
        "The uncompressed size of the last scrape response, if successful. Scrapes failing because "
        "body_size_limit is exceeded report -1, other scrape failures report 0.",
    ),
)
"""The synthetic series, in the order Prometheus appends them, with Prometheus's help text."""

_MAX_CACHE = 1_000_000
"""Series remembered per target for ``scrape_series_added``; beyond it the count is approximate."""

_GAUGE = MetricType.GAUGE
_SAMPLES = attrgetter("samples")
_NAME = attrgetter("name")
_LABELS = attrgetter("labels")
_VALUE = attrgetter("value")
_TIMESTAMP = attrgetter("timestamp")
_EXEMPLAR = attrgetter("exemplar")
_LINE = attrgetter("line")
_HISTOGRAM = attrgetter("native_histogram")


class ScrapeObserver:
    """Turns the scrapes of one target into Observations (see the module docstring)."""

    __slots__ = ("_cache", "_labels", "_merged", "_names", "target")

    def __init__(self, target: ScrapeTarget) -> None:
        self.target = target
        self._cache: dict[tuple[str, Labels], Labels] = {}
        """Scraped (name, labels) -> final labels, for the series of the last ingested scrape."""
        self._names: tuple[str, ...] | None = None
        self._labels: tuple[Labels, ...] = ()
        self._merged: tuple[Labels, ...] = ()
        """The last ingested scrape's sample names, scraped labels and final labels, in order (tuples of
        strings, which the collector stops tracking, where lists would be walked by every collection)."""

    def observe(self, result: ScrapeResult, time: float) -> Observation:
        """The Observation for one scrape of this target, made at wall time ``time``."""
        target = self.target
        failure: FailureClass | None = None
        message = result.up_reason
        if result.error is not None:
            failure = FailureClass.from_error_kind(result.error.kind)
            message = str(result.error)
        scraped = result.scrape_samples_scraped
        families: list[MetricFamily] = []
        series_added = 0
        up = result.up == 1
        if up and target.sample_limit and scraped > target.sample_limit:
            up = False
            failure = FailureClass.SAMPLE_LIMIT
            message = (
                f"sample limit exceeded: {scraped} samples, the limit is {target.sample_limit}; "
                "Prometheus refuses the whole scrape"
            )
        if up:
            families, series_added = self._relabel(result.families, result.format is Format.TEXT)
        body_size = result.scrape_body_size_bytes
        if not up and body_size > 0:
            body_size = 0
        values = (
            1.0 if up else 0.0,
            result.timings.total,
            float(scraped),
            float(scraped),
            float(series_added),
            target.timeout,
            float(target.sample_limit),
            float(body_size),
        )
        report = target.labels
        families.extend(
            new_family(name, _GAUGE, help_text, None, (new_sample(name, report, value, None, 0),), 0)
            for (name, help_text), value in zip(REPORT_SERIES, values, strict=True)
        )
        if up:
            outcome = Outcome.ACCEPTED
        elif result.status is None:
            outcome = Outcome.FAILED
        else:
            outcome = Outcome.REJECTED
        extra: dict[str, str] = {
            "job": target.job,
            "instance": target.instance,
            "samples": str(scraped),
            "series_added": str(series_added),
        }
        if failure is not None:
            extra["failure"] = failure.value
        if result.format is not None:
            extra["format"] = result.format.value
        if result.http_version:
            extra["http_version"] = result.http_version
        url = result.final_url or result.target
        return Observation(
            kind=ObservationKind.SCRAPE,
            source=target.identity,
            time=time,
            outcome=outcome,
            transport=_transport(url, target, result, extra),
            families=tuple(families),
            diagnostics=result.diagnostics,
            message=message,
            series=sum(len(f.samples) for f in families),
        )

    def failed(self, time: float, failure: FailureClass, message: str, duration: float = 0.0) -> Observation:
        """An Observation for a scrape that could not be made at all (``up`` 0, nothing received)."""
        target = self.target
        values = (0.0, duration, 0.0, 0.0, 0.0, target.timeout, float(target.sample_limit), 0.0)
        families = tuple(
            MetricFamily(name, MetricType.GAUGE, help_text, samples=(Sample(name, target.labels, value),))
            for (name, help_text), value in zip(REPORT_SERIES, values, strict=True)
        )
        extra = {
            "job": target.job,
            "instance": target.instance,
            "samples": "0",
            "series_added": "0",
            "failure": failure.value,
        }
        parts = urlsplit(target.url)
        return Observation(
            kind=ObservationKind.SCRAPE,
            source=target.identity,
            time=time,
            outcome=Outcome.FAILED,
            transport=Transport(
                protocol=parts.scheme,
                sender=target.url,
                user_agent=target.request.user_agent,
                method="GET",
                path=parts.path or "/",
                duration=duration,
                extra=MappingProxyType(extra),
            ),
            families=families,
            message=message,
            series=len(families),
        )

    def _relabel(self, scraped: tuple[MetricFamily, ...], text: bool) -> tuple[list[MetricFamily], int]:
        """The families with target labels applied, and how many series are new since the last scrape.

        A scrape whose samples have the same names and labels in the same order as the last
        ingested one (the usual case, and one comparison of two lists when the parser's scrape
        cache hands out the same label tuples) has the same final labels and adds no series;
        only its values, timestamps and exemplars are new. The samples are built a column at a
        time (``text``: the Prometheus text format, whose samples have neither exemplars nor
        native histograms to copy).
        """
        flat = list(chain.from_iterable(map(_SAMPLES, scraped)))
        names = tuple(map(_NAME, flat))
        labels = tuple(map(_LABELS, flat))
        if names == self._names and labels == self._labels:
            merged = self._merged
            added = 0
        else:
            merged, added = self._merge_all(names, labels)
        samples = new_samples(
            names,
            merged,
            list(map(_VALUE, flat)),
            list(map(_LINE, flat)),
            list(map(_TIMESTAMP, flat)) if self.target.honor_timestamps else None,
            None if text else list(map(_EXEMPLAR, flat)),
            None if text else list(map(_HISTOGRAM, flat)),
        )
        out: list[MetricFamily] = []
        start = 0
        for family in scraped:
            end = start + len(family.samples)
            out.append(
                new_family(
                    family.name, family.type, family.help, family.unit, tuple(samples[start:end]), family.line
                )
            )
            start = end
        return out, added

    def _merge_all(
        self, names: tuple[str, ...], labels: tuple[Labels, ...]
    ) -> tuple[tuple[Labels, ...], int]:
        """Final labels per sample, looked up among the last scrape's series; counts the new ones."""
        target = self.target
        honor = target.honor_labels
        target_labels = target.labels
        old = self._cache
        new: dict[tuple[str, Labels], Labels] = {}
        added = 0
        merged: list[Labels] = []
        for key in zip(names, labels, strict=True):
            final = old.get(key)
            if final is None:
                final = new.get(key)
                if final is None:
                    final = _merge(key[1], target_labels, honor)
                    added += 1
            new[key] = final
            merged.append(final)
        if len(new) <= _MAX_CACHE:
            self._cache = new
            self._names, self._labels, self._merged = names, labels, tuple(merged)
        else:  # pragma: no cover - a million series on one target
            self._cache = {}
            self._names, self._labels, self._merged = None, (), ()
        return tuple(merged), added


def _merge(scraped: Labels, target: Labels, honor: bool) -> Labels:
    """Prometheus's ``mutateSampleLabels`` without relabel rules. Returns labels sorted by name."""
    merged = {name: value for name, value in scraped if value}
    if honor:
        for name, value in target:
            if name not in merged:
                merged[name] = value
    else:
        conflicts = [(name, merged[name]) for name, _ in target if name in merged]
        for name, value in target:
            merged[name] = value
        conflicts.sort(key=lambda item: len(item[0]))
        for name, value in conflicts:
            new_name = name
            while True:
                new_name = "exported_" + new_name
                if not merged.get(new_name):
                    merged[new_name] = value
                    break
    return tuple(sorted((k, v) for k, v in merged.items() if v))


def _transport(url: str, target: ScrapeTarget, result: ScrapeResult, extra: Mapping[str, str]) -> Transport:
    parts = urlsplit(url)
    return Transport(
        protocol=parts.scheme or "http",
        sender=url,
        user_agent=target.request.user_agent,
        method="GET",
        path=(parts.path or "/") + (f"?{parts.query}" if parts.query else ""),
        status=result.status,
        content_type=result.content_type,
        content_encoding=result.content_encoding,
        wire_bytes=result.compressed_bytes,
        body_bytes=result.uncompressed_bytes,
        duration=result.timings.total,
        extra=MappingProxyType(dict(extra)),
    )
