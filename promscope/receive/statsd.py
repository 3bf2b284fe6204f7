"""StatsD and DogStatsD: receive lines over UDP, TCP and unixgram, store them as statsd_exporter would.

:class:`StatsdReceiver` listens on the caller's asyncio loop (UDP and unixgram are drained by a
reader thread, see :mod:`promscope.receive.udp`), parses every line exactly as statsd_exporter's
``LineToEvents`` does, maps names with an optional statsd_exporter mapping file
(:mod:`promscope.receive.statsd_mapping`), and keeps the resulting series, which
:meth:`StatsdReceiver.exposition_families` returns as statsd_exporter's ``/metrics`` shows them:

* counters keep their (mapped, escaped) name; the text format writes ``foo``, OpenMetrics
  ``foo_total``, as client_golang does. Sample rates divide the value (``1|c|@0.1`` adds 10);
* gauges are set, or moved by a signed value (``+3``, ``-2``); sample rates are ignored;
* timers (``ms``, converted to seconds), histograms (``h``) and distributions (``d``) are
  observations: a summary by default (quantiles 0.5, 0.9, 0.99 over the last
  ``StatsdLimits.summary_window`` observations younger than ``max_age``, where client_golang keeps
  a streaming estimate), or a histogram when the mapping's ``observer_type`` says so; a sample rate
  of ``@0.25`` counts the observation ``int(1/0.25)`` times;
* sets (``s``): statsd_exporter does not support them and counts each set line as
  ``illegal_event`` (or ``malformed_value`` when the member is not a number). That is the default
  here too (``sets="refuse"``); ``sets="gauge"`` instead keeps a gauge of distinct members.

Listeners and security: UDP and unixgram take datagrams from anyone who can reach the socket;
neither can carry TLS, so they stay plaintext and unauthenticated (keep them on 127.0.0.1 or a
socket path only the senders can reach). The TCP listener can speak TLS only (``tls=ServerTLS(cert,
key, client_ca)``); with a client CA, a client certificate signed by it is required, which is the
authentication a line protocol can have. A failed or timed-out handshake is counted and shown
(``SD-162``) against the peer that tried.

Every refused line is counted under statsd_exporter's reason name (``malformed_line``,
``mixed_tagging_styles``, ``not_enough_parts_after_colon``, ``invalid_extended_aggregate_type``,
``malformed_component``, ``malformed_value``, ``invalid_sample_factor``,
``malformed_container_id``, ``malformed_timestamp``, ``illegal_event``; then the exporter's
``illegal_negative_counter`` and ``empty_metric_name``) and shown as a :class:`Diagnostic` with an
``SD-…`` code (:data:`CODES`). DogStatsD events (``_e{…}``) and service checks (``_sc|…``) are
recognised, counted and shown (statsd_exporter drops them as malformed samples).

Conflicts are found when a new series first appears, before they can break a scrape:

* one name with two types (``SD-140``): statsd_exporter refuses the event and counts
  ``statsd_exporter_events_conflict_total``; so does promscope;
* names that make client_golang's Gather fail, which statsd_exporter does *not* catch (``SD-141``:
  a counter ``foo_count`` beside a summary ``foo``; ``SD-143``: a label named ``__x``, or ``le`` on a
  histogram, ``quantile`` on a summary): statsd_exporter stores these and then answers every scrape
  with HTTP 500; promscope refuses the series and says why;
* a second label-name set under one name (``SD-142``, a warning): allowed since statsd_exporter 0.9
  (client_golang 0.9 accepts inconsistent label dimensions); stored, and shown because queries that
  aggregate across it are usually a mistake.

Observations (what the live tail and the store see) follow one rule, so 200,000 lines/s never
becomes 200,000 Python objects per second:

* a datagram (or a TCP read batch) gets an Observation of its own when its sender sent at most
  ``observations_per_sender`` (20) datagrams in the current second *and* fewer than
  ``observations_per_second`` (200) such Observations were made in that second overall;
* any other datagram is coalesced: its counts go into its sender's bucket, which is emitted as one
  Observation per sender every ``coalesce_interval`` (0.1 s) with the number of datagrams, lines,
  refusals by reason, the first diagnostics and the current state of the series touched.

An Observation carries the *state* of the series it touched (what a scrape of statsd_exporter
would now show for them), never the increments, so a store can treat it like a scrape.

The hot path (a line whose shape was seen before) is a slice, one dict lookup and one float
parse: lines are keyed by their text with the value cut out, and the key leads straight to the
series to update. Everything else takes the full parser.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import math
import os
import re
import socket
import ssl
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal

from promscope.codes import Code
from promscope.errors import ListenError
from promscope.exposition.render import canonical_number
from promscope.model import Diagnostic, Labels, MetricFamily, MetricType, Sample, Severity
from promscope.observation import Observation, ObservationKind, ObservationSink, Outcome, Transport
from promscope.receive.http import ServerTLS, build_ssl_context
from promscope.receive.statsd_mapping import (
    DEFAULT_QUANTILES,
    Action,
    MappingConfig,
    MappingRule,
    MatchResult,
    ObserverType,
    Quantile,
    RuleTrial,
    StatsdMetricType,
    escape_metric_name,
)
from promscope.receive.udp import (
    BufferGrant,
    DatagramBatch,
    DatagramReader,
    format_address,
    open_tcp_listener,
    open_udp_socket,
    open_unixgram_socket,
    udp_kernel_drops,
)

__all__ = [
    "CODES",
    "DEFAULT_HELP",
    "REASONS",
    "DogStatsdMessage",
    "LineProblem",
    "MatchExplanation",
    "ParsedLine",
    "SampleExplanation",
    "StatsdLimits",
    "StatsdReceiver",
    "StatsdSample",
    "StatsdStats",
    "parse_line",
]

DEFAULT_HELP = "Metric autogenerated by statsd_exporter."

CODES: dict[str, Code] = {
    "SD-101": Code(Severity.ERROR, "malformed_line: no ':' after a non-empty name, or not UTF-8"),
    "SD-102": Code(Severity.ERROR, "mixed_tagging_styles: name tags and DogStatsD tags on one line"),
    "SD-103": Code(Severity.ERROR, "not_enough_parts_after_colon: no '|type' after the value"),
    "SD-104": Code(
        Severity.ERROR, "invalid_extended_aggregate_type: several values for a type other than ms/h/d"
    ),
    "SD-105": Code(Severity.ERROR, "malformed_component: too few or too many '|' parts, or an empty one"),
    "SD-106": Code(Severity.ERROR, "malformed_value: the value is not a number"),
    "SD-107": Code(
        Severity.WARNING, "invalid_sample_factor: a bad '@rate' (sample kept at rate 1) or unknown part"
    ),
    "SD-108": Code(Severity.ERROR, "malformed_container_id: a 'c' part that is not 'c:<id>'"),
    "SD-109": Code(Severity.ERROR, "malformed_timestamp: a 'T' part that is not 'T<unix seconds>'"),
    "SD-110": Code(Severity.ERROR, "illegal_event: unknown metric type"),
    "SD-111": Code(Severity.ERROR, "illegal_event: a set, which statsd_exporter does not support"),
    "SD-112": Code(Severity.WARNING, "an observer sample rate above 1: statsd_exporter records nothing"),
    "SD-113": Code(
        Severity.ERROR, "invalid_sample_factor: an unknown '|' part (not @rate, #tags, c:id or T<ts>)"
    ),
    "SD-120": Code(Severity.WARNING, "a malformed tag, dropped (statsd_exporter_tag_errors_total)"),
    "SD-130": Code(Severity.ERROR, "illegal_negative_counter: a counter cannot go down"),
    "SD-131": Code(Severity.ERROR, "empty_metric_name: the mapping produced an empty name"),
    "SD-140": Code(Severity.ERROR, "one name with two types: the later series is refused"),
    "SD-141": Code(Severity.ERROR, "a name that collides with a summary's or histogram's series"),
    "SD-142": Code(Severity.WARNING, "a second set of label names under one metric name"),
    "SD-143": Code(Severity.ERROR, "a label name Prometheus or the client library reserves"),
    "SD-150": Code(Severity.WARNING, "a DogStatsD event: shown, not stored (statsd_exporter drops it)"),
    "SD-151": Code(
        Severity.WARNING, "a DogStatsD service check: shown, not stored (statsd_exporter drops it)"
    ),
    "SD-152": Code(Severity.ERROR, "a malformed DogStatsD event or service check"),
    "SD-160": Code(Severity.ERROR, "the series limit is reached: a new series is refused"),
    "SD-161": Code(Severity.ERROR, "a TCP line longer than the limit: the connection is closed"),
    "SD-162": Code(
        Severity.ERROR,
        "a TCP connection that did not complete the TLS handshake (no or a bad client certificate)",
    ),
}

REASONS: dict[str, str] = {
    "malformed_line": "SD-101",
    "mixed_tagging_styles": "SD-102",
    "not_enough_parts_after_colon": "SD-103",
    "invalid_extended_aggregate_type": "SD-104",
    "malformed_component": "SD-105",
    "malformed_value": "SD-106",
    "invalid_sample_factor": "SD-107",
    "malformed_container_id": "SD-108",
    "malformed_timestamp": "SD-109",
    "illegal_event": "SD-110",
}
"""statsd_exporter's ``statsd_exporter_sample_errors_total{reason}`` names and their codes."""

_CLOSE_TIMEOUT = 2.0
"""Seconds a closing TCP connection may take (a TLS close_notify exchange) before it is aborted."""
_OBSERVER_TYPES = frozenset({"ms", "h", "d"})
_SIMPLE_FLOAT = re.compile(rb"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?").fullmatch
_DECIMAL = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_HEX_FLOAT = re.compile(r"[+-]?0[xX](?:[0-9a-fA-F_]+\.?[0-9a-fA-F_]*|\.[0-9a-fA-F_]+)[pP][+-]?\d+")
_SPECIAL = {"inf": math.inf, "+inf": math.inf, "-inf": -math.inf, "infinity": math.inf}
_INT64 = re.compile(r"[+-]?\d+")
_EVENT_HEAD = re.compile(r"_e\{(\d+),(\d+)\}:")
_CHECK_STATUS = {"0": "ok", "1": "warning", "2": "critical", "3": "unknown"}


def _go_float(text: str) -> float | None:
    """Go's ``strconv.ParseFloat(text, 64)``: the value, or None where Go returns an error."""
    if _DECIMAL.fullmatch(text):
        value = float(text)
        return None if math.isinf(value) else value
    lowered = text.lower()
    if lowered in _SPECIAL or lowered.lstrip("+-") in ("inf", "infinity"):
        return -math.inf if lowered.startswith("-") else math.inf
    if lowered.lstrip("+-") == "nan":
        return math.nan
    if _HEX_FLOAT.fullmatch(text) and "__" not in text:
        try:
            value = float.fromhex(text.replace("_", ""))
        except (ValueError, OverflowError):
            return None
        return None if math.isinf(value) else value
    return None


# --- parsing: one line, as statsd_exporter's LineToEvents -------------------------------------------


@dataclass(frozen=True, slots=True)
class StatsdSample:
    """One sample a line carries (a line with ``1:2:3|ms`` carries three)."""

    name: str
    """The StatsD name, name tags removed, not yet escaped or mapped."""
    type: str
    """``c``, ``g``, ``ms``, ``h``, ``d`` or ``s``."""
    value: float
    relative: bool = False
    """A gauge value written with a sign: add instead of set."""
    labels: Labels = ()
    """Tags (name tags and DogStatsD ``|#``), keys escaped, and ``container_id`` from ``|c:``."""
    sample_rate: float = 1.0
    timestamp: int | None = None
    """DogStatsD ``|T`` (unix seconds): validated, then ignored as statsd_exporter ignores it."""
    member: str | None = None
    """A set's member (``sets="gauge"`` only)."""

    @property
    def metric_type(self) -> StatsdMetricType:
        if self.type == "c":
            return StatsdMetricType.COUNTER
        if self.type in ("g", "s"):
            return StatsdMetricType.GAUGE
        return StatsdMetricType.OBSERVER


@dataclass(frozen=True, slots=True)
class LineProblem:
    """Why (part of) a line was refused or trimmed."""

    reason: str
    """statsd_exporter's reason name (``malformed_value``) or promscope's."""
    code: str
    message: str
    column: int = 0

    @property
    def severity(self) -> Severity:
        return CODES[self.code].severity


@dataclass(frozen=True, slots=True)
class DogStatsdMessage:
    """A DogStatsD event or service check, recognised so it can be shown."""

    kind: Literal["event", "service_check"]
    title: str
    """The event title or the service check name."""
    text: str = ""
    """The event text or the service check message."""
    status: str = ""
    """Service checks: ``ok``, ``warning``, ``critical``, ``unknown``."""
    fields: tuple[tuple[str, str], ...] = ()
    """Optional parts by name: ``timestamp``, ``hostname``, ``priority``, ``alert_type``, ..."""
    tags: Labels = ()

    def describe(self) -> str:
        if self.kind == "event":
            extra = "".join(f", {key}={value}" for key, value in self.fields)
            return f"DogStatsD event {self.title!r} ({self.text!r}{extra})"
        extra = "".join(f", {key}={value}" for key, value in self.fields)
        message = f", {self.text!r}" if self.text else ""
        return f"DogStatsD service check {self.title!r}: {self.status}{message}{extra}"


@dataclass(frozen=True, slots=True)
class ParsedLine:
    """What one line is: its samples and what was wrong with it, in statsd_exporter's terms."""

    samples: tuple[StatsdSample, ...]
    problems: tuple[LineProblem, ...] = ()
    tags: int = 0
    """Samples that carried tags (``statsd_exporter_tags_total``)."""
    tag_errors: int = 0
    sample_count: int = 0
    """Samples statsd_exporter counted (``statsd_exporter_samples_total``), good or bad."""
    dogstatsd: DogStatsdMessage | None = None


def _tag(tag: str, separator: str, labels: dict[str, str], problems: list[LineProblem], column: int) -> int:
    if not tag:
        problems.append(LineProblem("tag_error", "SD-120", "empty tag", column))
        return 1
    key, sep, value = tag.partition(separator)
    if not sep:
        problems.append(
            LineProblem("tag_error", "SD-120", f"tag {tag!r} has no {separator!r}: dropped", column)
        )
        return 1
    if not key or not value:
        problems.append(
            LineProblem("tag_error", "SD-120", f"tag {tag!r} has an empty key or value: dropped", column)
        )
        return 1
    labels[escape_metric_name(key)] = value
    return 0


def _name_tags(component: str, labels: dict[str, str], problems: list[LineProblem], column: int) -> int:
    errors = 0
    parts = component.split(",")
    if parts and parts[-1] == "":
        parts.pop()
    for part in parts:
        errors += _tag(part, "=", labels, problems, column)
    return errors


def _dogstatsd_tags(component: str, labels: dict[str, str], problems: list[LineProblem], column: int) -> int:
    errors = 0
    parts = component.split(",")
    if parts and parts[-1] == "":
        parts.pop()
    for part in parts:
        errors += _tag(part[1:] if part.startswith("#") else part, ":", labels, problems, column)
    return errors


def _name_and_tags(
    name: str,
    labels: dict[str, str],
    problems: list[LineProblem],
    influxdb: bool,
    librato: bool,
    signalfx: bool,
) -> tuple[str, int]:
    if signalfx:
        start, end = name.find("["), name.find("]")
        if start != -1 and end != -1:
            return name[:start] + name[end + 1 :], _name_tags(
                name[start + 1 : end], labels, problems, start + 2
            )
        if (start == -1) != (end == -1):
            problems.append(
                LineProblem("tag_error", "SD-120", "SignalFx tags with one bracket: not parsed", 1)
            )
            return name, 1
    for index, char in enumerate(name):
        if (char == "#" and librato) or (char == "," and influxdb):
            return name[:index], _name_tags(name[index + 1 :], labels, problems, index + 2)
    return name, 0


def _dogstatsd_message(line: str) -> DogStatsdMessage | LineProblem | None:
    if line.startswith("_e{"):
        head = _EVENT_HEAD.match(line)
        if head is None:
            return LineProblem(
                "dogstatsd", "SD-152", "event header must be _e{<title length>,<text length>}:", 1
            )
        raw = line[head.end() :].encode("utf-8")
        title_len, text_len = int(head.group(1)), int(head.group(2))
        if len(raw) < title_len + 1 + text_len or raw[title_len : title_len + 1] != b"|":
            return LineProblem(
                "dogstatsd", "SD-152", "event title/text lengths do not match the header", head.end() + 1
            )
        title = raw[:title_len].decode("utf-8", "replace")
        text = raw[title_len + 1 : title_len + 1 + text_len].decode("utf-8", "replace").replace("\\n", "\n")
        rest = raw[title_len + 1 + text_len :].decode("utf-8", "replace")
        if rest and not rest.startswith("|"):
            return LineProblem(
                "dogstatsd", "SD-152", "event text is longer than its header says", head.end() + 1
            )
        names = {
            "d": "timestamp",
            "h": "hostname",
            "p": "priority",
            "t": "alert_type",
            "k": "aggregation_key",
            "s": "source_type",
            "c": "container_id",
        }
        fields, tags = _dogstatsd_fields(rest[1:].split("|") if rest else [], names)
        return DogStatsdMessage("event", title, text, "", fields, tags)
    if line.startswith("_sc|"):
        parts = line.split("|")
        if len(parts) < 3 or not parts[1] or parts[2] not in _CHECK_STATUS:
            return LineProblem("dogstatsd", "SD-152", "service check must be _sc|<name>|<status 0-3>|...", 1)
        names = {"d": "timestamp", "h": "hostname", "c": "container_id"}
        optional = parts[3:]
        message = ""
        for index, part in enumerate(optional):
            if part.startswith("m:"):
                message = "|".join(optional[index:])[2:].replace("\\n", "\n")
                optional = optional[:index]
                break
        fields, tags = _dogstatsd_fields(optional, names)
        return DogStatsdMessage("service_check", parts[1], message, _CHECK_STATUS[parts[2]], fields, tags)
    return None


def _dogstatsd_fields(parts: list[str], names: dict[str, str]) -> tuple[tuple[tuple[str, str], ...], Labels]:
    fields: list[tuple[str, str]] = []
    tags: list[tuple[str, str]] = []
    for part in parts:
        if part.startswith("#"):
            for tag in part[1:].split(","):
                key, _, value = tag.partition(":")
                if key:
                    tags.append((key, value))
        elif len(part) > 1 and part[1] == ":" and part[0] in names:
            fields.append((names[part[0]], part[2:]))
        elif part:
            fields.append(("unknown", part))
    return tuple(fields), tuple(tags)


def parse_line(
    line: str | bytes,
    *,
    dogstatsd: bool = True,
    influxdb: bool = True,
    librato: bool = True,
    signalfx: bool = True,
    sets: bool = False,
) -> ParsedLine:
    """Parse one StatsD/DogStatsD line exactly as statsd_exporter's ``LineToEvents`` does.

    The tag-style switches are statsd_exporter's ``--statsd.parse-*-tags`` flags (all on by
    default). ``sets=True`` keeps set samples (with their member) instead of refusing them.
    A DogStatsD event or service check is also recognised (:attr:`ParsedLine.dogstatsd`); its
    problems are still those statsd_exporter would count.
    """
    if isinstance(line, bytes):
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError as error:
            return ParsedLine(
                (),
                (
                    LineProblem(
                        "malformed_line", "SD-101", f"not UTF-8 (byte {error.start + 1})", error.start + 1
                    ),
                ),
            )
    else:
        text = line
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as error:
            return ParsedLine(
                (),
                (LineProblem("malformed_line", "SD-101", "not UTF-8 (a lone surrogate)", error.start + 1),),
            )
    if not text:
        return ParsedLine(())
    message: DogStatsdMessage | None = None
    extra: list[LineProblem] = []
    if dogstatsd and (text.startswith("_e{") or text.startswith("_sc|")):
        recognised = _dogstatsd_message(text)
        if isinstance(recognised, DogStatsdMessage):
            message = recognised
        elif recognised is not None:
            extra.append(recognised)
    parsed = _parse_statsd(text, dogstatsd, influxdb, librato, signalfx, sets)
    if message is None and not extra:
        return parsed
    return ParsedLine(
        parsed.samples,
        (*extra, *parsed.problems),
        parsed.tags,
        parsed.tag_errors,
        parsed.sample_count,
        message,
    )


def _parse_statsd(
    text: str, dogstatsd: bool, influxdb: bool, librato: bool, signalfx: bool, sets: bool
) -> ParsedLine:
    problems: list[LineProblem] = []
    raw_name, colon, rest = text.partition(":")
    if not colon or not raw_name:
        return ParsedLine((), (LineProblem("malformed_line", "SD-101", "expected <name>:<value>|<type>", 1),))
    labels: dict[str, str] = {}
    name, tag_errors = _name_and_tags(raw_name, labels, problems, influxdb, librato, signalfx)
    using_dog_tags = "|#" in rest
    if using_dog_tags and labels:
        problems.append(
            LineProblem("mixed_tagging_styles", "SD-102", "name tags and DogStatsD '|#' tags on one line", 1)
        )
        return ParsedLine((), tuple(problems), 0, tag_errors)
    value_start = len(raw_name) + 2
    line_parts = rest.split("|", 2)
    if len(line_parts) < 2:
        problems.append(
            LineProblem(
                "not_enough_parts_after_colon", "SD-103", "expected '|<type>' after the value", value_start
            )
        )
        return ParsedLine((), tuple(problems), 0, tag_errors)
    if ":" in line_parts[0]:
        if line_parts[1] not in _OBSERVER_TYPES:
            problems.append(
                LineProblem(
                    "invalid_extended_aggregate_type",
                    "SD-104",
                    f"several values ({line_parts[0]!r}) are allowed only for ms, h and d, "
                    f"not {line_parts[1]!r}",
                    value_start,
                )
            )
            return ParsedLine((), tuple(problems), 0, tag_errors)
        suffix = rest.partition("|")[2]
        chunks = [value + "|" + suffix for value in line_parts[0].split(":")]
    elif using_dog_tags:
        chunks = [rest]
    else:
        chunks = rest.split(":")
    samples: list[StatsdSample] = []
    tagged = 0
    for chunk in chunks:
        components = chunk.split("|")
        if not 2 <= len(components) <= 8:
            problems.append(
                LineProblem(
                    "malformed_component",
                    "SD-105",
                    f"{len(components)} '|' parts in {chunk!r} (2 to 8 allowed)",
                    value_start,
                )
            )
            continue
        value_text, stat_type = components[0], components[1]
        relative = value_text[:1] in ("+", "-")
        member: str | None = None
        if stat_type == "s" and sets:
            value: float | None = math.nan
            member = value_text
        else:
            value = _go_float(value_text)
        if value is None:
            problems.append(
                LineProblem("malformed_value", "SD-106", f"value {value_text!r} is not a number", value_start)
            )
            continue
        extras = components[2:]
        if any(not part for part in extras):
            problems.append(LineProblem("malformed_component", "SD-105", "an empty '|' part", value_start))
            continue
        rate = 1.0
        timestamp: int | None = None
        bad = False
        for part in extras:
            first = part[0]
            if first == "@":
                factor = _go_float(part[1:])
                if factor is None:
                    problems.append(
                        LineProblem(
                            "invalid_sample_factor",
                            "SD-107",
                            f"sample rate {part!r} is not a number: kept at rate 1",
                            value_start,
                        )
                    )
                    factor = 0.0
                if factor == 0:
                    factor = 1.0
                if stat_type != "g":
                    rate = factor
            elif first == "#":
                if dogstatsd:
                    tag_errors += _dogstatsd_tags(part[1:], labels, problems, value_start)
            elif first == "c":
                if part.startswith("c:") and len(part) > 2:
                    labels["container_id"] = part[2:]
                else:
                    problems.append(
                        LineProblem(
                            "malformed_container_id",
                            "SD-108",
                            f"{part!r} is not c:<container id>",
                            value_start,
                        )
                    )
                    bad = True
                    break
            elif first == "T":
                if len(part) < 2 or not _INT64.fullmatch(part[1:]) or not -(2**63) <= int(part[1:]) < 2**63:
                    problems.append(
                        LineProblem(
                            "malformed_timestamp", "SD-109", f"{part!r} is not T<unix seconds>", value_start
                        )
                    )
                    bad = True
                    break
                timestamp = int(part[1:])
            else:
                problems.append(
                    LineProblem(
                        "invalid_sample_factor",
                        "SD-113",
                        f"unknown part {part!r} (expected @rate, #tags, c:id or T<ts>)",
                        value_start,
                    )
                )
                bad = True
                break
        if bad:
            continue
        if labels:
            tagged += 1
        if stat_type not in ("c", "g", "ms", "h", "d") and not (stat_type == "s" and sets):
            if stat_type == "s":
                problems.append(
                    LineProblem(
                        "illegal_event", "SD-111", "sets are not supported by statsd_exporter", value_start
                    )
                )
            else:
                problems.append(
                    LineProblem("illegal_event", "SD-110", f"unknown metric type {stat_type!r}", value_start)
                )
            continue
        samples.append(
            StatsdSample(name, stat_type, value, relative, tuple(labels.items()), rate, timestamp, member)
        )
    return ParsedLine(tuple(samples), tuple(problems), tagged, tag_errors, len(chunks))


# --- series state -----------------------------------------------------------------------------------

_COUNTER, _GAUGE, _HISTOGRAM, _SUMMARY, _SET = 0, 1, 2, 3, 4
_KIND_TYPE = (
    MetricType.COUNTER,
    MetricType.GAUGE,
    MetricType.HISTOGRAM,
    MetricType.SUMMARY,
    MetricType.GAUGE,
)
_KIND_EVENT = ("counter", "gauge", "observer", "observer", "set")
_KIND_NAME = ("counter", "gauge", "histogram", "summary", "set (a gauge of distinct members)")


class _Series:
    __slots__ = (
        "buckets",
        "count",
        "family",
        "labels",
        "members",
        "sum",
        "ttl",
        "updated",
        "value",
        "window",
    )

    def __init__(self, family: _Family, labels: Labels, ttl: float, now: float) -> None:
        self.family = family
        self.labels = labels
        self.value = 0.0
        self.count = 0
        self.sum = 0.0
        self.buckets: list[int] = [0] * (len(family.bounds) + 1) if family.kind == _HISTOGRAM else []
        self.window: deque[tuple[float, float]] | None = None
        self.members: set[str] | None = None
        self.ttl = ttl
        self.updated = now

    def observe(self, value: float, times: int, now: float, window_size: int) -> None:
        family = self.family
        self.count += times
        self.sum += value * times if times != 1 else value
        if family.kind == _HISTOGRAM:
            self.buckets[bisect.bisect_left(family.bounds, value)] += times
        else:
            window = self.window
            if window is None:
                window = self.window = deque(maxlen=window_size)
            for _ in range(min(times, window_size)):
                window.append((now, value))


class _Family:
    __slots__ = ("bounds", "help", "kind", "label_sets", "max_age", "name", "quantiles", "series")

    def __init__(self, name: str, kind: int, help: str, match: MatchResult) -> None:
        self.name = name
        self.kind = kind
        self.help = help
        self.series: dict[Labels, _Series] = {}
        self.label_sets: set[tuple[str, ...]] = set()
        self.bounds: tuple[float, ...] = (
            tuple(b for b in match.buckets if b != math.inf) if kind == _HISTOGRAM else ()
        )
        self.quantiles: tuple[Quantile, ...] = match.quantiles if kind == _SUMMARY else ()
        self.max_age = match.summary_max_age

    @property
    def type(self) -> MetricType:
        return _KIND_TYPE[self.kind]


class _Entry:
    """A line shape seen before: the series it updates and how (the hot path's whole state)."""

    __slots__ = ("divisor", "hits", "kind", "rate", "repeat", "rule", "scale", "series", "tagged")

    def __init__(
        self,
        series: _Series,
        kind: int,
        rate: float,
        divisor: float,
        repeat: int,
        scale: float | None,
        rule: MappingRule | None,
        tagged: bool,
    ) -> None:
        self.series = series
        self.kind = kind
        self.rate = rate
        self.divisor = divisor
        self.repeat = repeat
        self.scale = scale
        self.rule = rule
        self.tagged = tagged
        self.hits = 0


@dataclass(frozen=True, slots=True)
class StatsdLimits:
    """Bounds on everything the receiver holds or lets a sender do. Hitting one is counted and shown."""

    max_series: int = 100_000
    receive_buffer: int = 16 * 1024 * 1024
    """SO_RCVBUF asked for UDP and unixgram sockets; what the kernel granted is in :attr:`StatsdStats`."""
    max_line_bytes: int = 4096
    """TCP: statsd_exporter's bufio reader holds 4096 bytes; a longer line closes the connection there."""
    tcp_idle_timeout: float = 60.0
    tls_handshake_timeout: float = 10.0
    """TCP with TLS: the handshake must be done within this (a silent client is closed, counted)."""
    max_tcp_connections: int = 256
    max_senders: int = 10_000
    """Senders tracked for observation batching; the rest share one bucket (``other``)."""
    summary_window: int = 1024
    """Observations per summary series kept for quantiles."""
    max_set_members: int = 10_000
    max_cache_entries: int = 200_000
    observations_per_sender: int = 20
    observations_per_second: int = 200
    coalesce_interval: float = 0.1
    max_diagnostics_per_observation: int = 20
    max_series_per_observation: int = 1_000
    recent_problems: int = 200
    """Bad lines kept for people to look at (:attr:`StatsdReceiver.recent`)."""


@dataclass(frozen=True, slots=True)
class StatsdStats:
    """Counters since start, named after statsd_exporter's own metrics where it has one."""

    packets: dict[str, int]
    """Datagrams by transport (``udp``, ``unixgram``) and TCP read batches (``tcp``, ``tls``)."""
    bytes: int
    lines: int
    samples: int
    stored: int
    sample_errors: dict[str, int]
    events_errors: dict[str, int]
    conflicts: dict[str, int]
    """Refused for a name clash: ``type`` (SD-140), ``collision`` (SD-141), ``reserved_label`` (SD-143)."""
    events: dict[str, int]
    """Stored samples by kind: ``counter``, ``gauge``, ``observer``, ``set``."""
    unmapped: int
    actions: dict[str, int]
    tags: int
    tag_errors: int
    dogstatsd: dict[str, int]
    series: int
    series_refused: int
    label_set_variants: int
    kernel_drops: int | None
    receive_buffer: BufferGrant | None
    tcp_connections: int
    tcp_refused: int
    tcp_too_long: int
    tcp_timeouts: int
    observations: int
    observations_coalesced: int
    sink_errors: int
    reader_paused: int
    cache_resets: int
    tls_handshake_failures: int = 0
    """TCP connections closed because the TLS handshake failed or timed out (SD-162)."""

    @property
    def refused(self) -> int:
        return (
            sum(self.sample_errors.values())
            - self.sample_errors.get("invalid_sample_factor", 0)
            + sum(self.events_errors.values())
            + sum(self.conflicts.values())
            + self.series_refused
        )


@dataclass(frozen=True, slots=True)
class SampleExplanation:
    """What one sample of a line becomes, and which rule decided it."""

    sample: StatsdSample
    rule: MappingRule | None
    trials: tuple[RuleTrial, ...]
    name: str
    labels: Labels
    type: MetricType | None
    """None when the rule drops it."""
    outcome: str
    """``stored``, ``dropped by rule #n`` or ``refused: <reason>``."""
    diagnostic: Diagnostic | None = None

    def describe(self) -> str:
        series = self.name + (
            "{" + ",".join(f'{k}="{v}"' for k, v in self.labels) + "}" if self.labels else ""
        )
        rule = self.rule.describe() if self.rule else "no rule (default mapping)"
        kind = self.type.value if self.type else "-"
        return f"{self.sample.name} ({self.sample.type}) -> {series} [{kind}] by {rule}: {self.outcome}"


@dataclass(frozen=True, slots=True)
class MatchExplanation:
    """:meth:`StatsdReceiver.explain`: what a line would become, without storing anything."""

    line: str
    parsed: ParsedLine
    samples: tuple[SampleExplanation, ...]
    diagnostics: tuple[Diagnostic, ...]

    def describe(self) -> str:
        out = [self.line]
        if self.parsed.dogstatsd is not None:
            out.append("  " + self.parsed.dogstatsd.describe())
        out.extend("  " + sample.describe() for sample in self.samples)
        out.extend(f"  {d.code} {d.severity.value}: {d.message}" for d in self.diagnostics)
        return "\n".join(out)


class _Tally:
    """What a datagram (or a coalesced run of them from one sender) did."""

    __slots__ = (
        "accepted",
        "bytes",
        "datagrams",
        "describes",
        "diagnostics",
        "dropped",
        "first",
        "lines",
        "reasons",
        "refused",
        "rules",
        "suppressed",
        "touched",
    )

    def __init__(self, first: float) -> None:
        self.first = first
        self.datagrams = 0
        self.bytes = 0
        self.lines = 0
        self.accepted = 0
        self.refused = 0
        self.dropped = 0
        self.reasons: dict[str, int] = {}
        self.diagnostics: list[Diagnostic] = []
        self.suppressed = 0
        self.touched: set[_Series] = set()
        self.rules: dict[str, int] = {}
        self.describes: list[str] = []


class _Sender:
    __slots__ = ("address", "pending", "protocol", "window_count", "window_start")

    def __init__(self, address: str, protocol: str) -> None:
        self.address = address
        self.protocol = protocol
        self.window_start = -math.inf
        self.window_count = 0
        self.pending: _Tally | None = None


class StatsdReceiver:
    """StatsD/DogStatsD over UDP, TCP and unixgram, stored as statsd_exporter would store it.

    Addresses are ``host:port`` (``None`` disables a listener); ``unixgram`` is a socket path.
    ``start()`` binds (raising :class:`~promscope.errors.ListenError`), ``stop()`` closes and
    delivers what was read. :meth:`feed` processes one datagram directly (tests, replays).

    ``tls`` (a :class:`~promscope.receive.http.ServerTLS`) makes the TCP listener speak TLS only:
    every connection must complete a handshake within ``limits.tls_handshake_timeout``, and with a
    ``client_ca_file`` present a client certificate signed by that CA (the one authentication a
    line protocol can carry; there is no equivalent of basic or bearer auth). A failed or
    timed-out handshake closes the connection, is counted and becomes a rejected Observation
    (``SD-162``) naming the peer. UDP and unixgram cannot carry TLS: they stay plaintext and
    unauthenticated whatever ``tls`` says (bind them to 127.0.0.1 or a socket path only the
    senders can reach, or turn them off with ``udp=None``/``unixgram=None``).
    """

    def __init__(
        self,
        *,
        udp: str | None = "127.0.0.1:9125",
        tcp: str | None = "127.0.0.1:9125",
        unixgram: str | None = None,
        tls: ServerTLS | None = None,
        mapping: MappingConfig | None = None,
        sink: ObservationSink | None = None,
        limits: StatsdLimits = StatsdLimits(),
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        sets: Literal["refuse", "gauge"] = "refuse",
        dogstatsd_tags: bool = True,
        influxdb_tags: bool = True,
        librato_tags: bool = True,
        signalfx_tags: bool = True,
        name: str = "statsd",
    ) -> None:
        self.udp_address = udp
        self.tcp_address = tcp
        self.unixgram_path = unixgram
        self.tls = tls
        self.mapping = mapping or MappingConfig()
        self.sink = sink
        self.limits = limits
        self.name = name
        self._clock = clock
        self._monotonic = monotonic
        self._sets = sets == "gauge"
        self._flags = (dogstatsd_tags, influxdb_tags, librato_tags, signalfx_tags)
        self._families: dict[str, _Family] = {}
        self._series_count = 0
        self._cache: dict[bytes, _Entry] = {}
        self._senders: dict[object, _Sender] = {}
        self._dirty: list[_Sender] = []
        self._overflow_sender = _Sender("other", "udp")
        self._second_start = -math.inf
        self._second_count = 0
        self._has_ttl = self.mapping.defaults.ttl > 0 or any(rule.ttl > 0 for rule in self.mapping.rules)
        self.recent: deque[tuple[float, str, str, Diagnostic]] = deque(maxlen=limits.recent_problems)
        """The latest bad lines: ``(time, sender, line, diagnostic)``."""
        # counters
        self._packets: dict[str, int] = {}
        self._bytes = 0
        self._lines = 0
        self._samples = 0
        self._stored = 0
        self._sample_errors: dict[str, int] = {}
        self._events_errors: dict[str, int] = {}
        self._conflicts: dict[str, int] = {}
        self._events: dict[str, int] = {}
        self._unmapped = 0
        self._actions: dict[str, int] = {}
        self._tags = 0
        self._tag_errors = 0
        self._dogstatsd: dict[str, int] = {}
        self._series_refused = 0
        self._label_set_variants = 0
        self._tcp_connections = 0
        self._tcp_refused = 0
        self._tcp_too_long = 0
        self._tcp_timeouts = 0
        self._tls_failures = 0
        self._tls_context: ssl.SSLContext | None = None
        self._observations = 0
        self._coalesced = 0
        self._sink_errors = 0
        self._cache_resets = 0
        # listeners
        self._loop: asyncio.AbstractEventLoop | None = None
        self._udp_socket: socket.socket | None = None
        self._udp_grant: BufferGrant | None = None
        self._unix_socket: socket.socket | None = None
        self._readers: list[DatagramReader] = []
        self._tcp_server: asyncio.Server | None = None
        self._tcp_tasks: set[asyncio.Task[None]] = set()
        self._ticker: asyncio.Task[None] | None = None
        self._last_sweep = 0.0

    # --- lifecycle ----------------------------------------------------------------------------------

    async def start(self) -> None:
        """Bind every configured listener on the running loop; ListenError (nothing left open) on failure."""
        if self._loop is not None:
            return
        loop = asyncio.get_running_loop()
        try:
            if self.udp_address:
                self._udp_socket, self._udp_grant = open_udp_socket(
                    self.udp_address, self.limits.receive_buffer
                )
                self._readers.append(self._reader(self._udp_socket, loop, "udp"))
            if self.unixgram_path:
                self._unix_socket, _ = open_unixgram_socket(self.unixgram_path, self.limits.receive_buffer)
                self._readers.append(self._reader(self._unix_socket, loop, "unixgram"))
            if self.tcp_address:
                if self.tls is not None:  # ConfigError (before binding) when a file cannot be loaded
                    self._tls_context = build_ssl_context(self.tls)
                listener = open_tcp_listener(self.tcp_address)
                self._tcp_server = await asyncio.start_server(self._tcp_client, sock=listener)
        except BaseException:
            await self._close_listeners()
            raise
        if not (self.udp_address or self.unixgram_path or self.tcp_address):
            raise ListenError("no listener configured (udp, tcp and unixgram are all off)", address=self.name)
        self._loop = loop
        for reader in self._readers:
            reader.start()
        self._ticker = loop.create_task(self._tick(), name=f"{self.name}-observations")

    async def stop(self) -> None:
        """Close every listener, deliver what was already read, and emit pending observations."""
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
            self._ticker = None
        await self._close_listeners()
        self._flush(force=True)
        self._loop = None

    async def __aenter__(self) -> StatsdReceiver:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def _close_listeners(self) -> None:
        for reader in self._readers:
            await reader.stop()
        self._readers.clear()
        if self._tcp_server is not None:
            self._tcp_server.close()
            for task in list(self._tcp_tasks):
                task.cancel()
            if self._tcp_tasks:
                await asyncio.gather(*self._tcp_tasks, return_exceptions=True)
            await self._tcp_server.wait_closed()
            self._tcp_server = None
        for sock in (self._udp_socket, self._unix_socket):
            if sock is not None:
                sock.close()
        self._udp_socket = None
        if self._unix_socket is not None and self.unixgram_path:
            with contextlib.suppress(OSError):
                os.unlink(self.unixgram_path)
        self._unix_socket = None

    def _reader(self, sock: socket.socket, loop: asyncio.AbstractEventLoop, protocol: str) -> DatagramReader:
        def on_batch(batch: DatagramBatch, received_at: float) -> None:
            self._batch(batch, protocol, received_at)

        return DatagramReader(
            sock, loop, on_batch, name=f"promscope-{self.name}-{protocol}", monotonic=self._monotonic
        )

    @property
    def udp_port(self) -> int | None:
        """The bound UDP port (useful with port 0)."""
        return self._udp_socket.getsockname()[1] if self._udp_socket is not None else None

    @property
    def tcp_port(self) -> int | None:
        if self._tcp_server is None or not self._tcp_server.sockets:
            return None
        port: int = self._tcp_server.sockets[0].getsockname()[1]
        return port

    async def _tick(self) -> None:
        interval = self.limits.coalesce_interval
        while True:
            await asyncio.sleep(interval)
            self._flush()

    # --- input --------------------------------------------------------------------------------------

    def feed(self, data: bytes, sender: str = "127.0.0.1:0", protocol: str = "udp") -> None:
        """Process one datagram as if it had arrived from ``sender`` (also used for TCP batches)."""
        self._datagram(data, (protocol, sender), protocol, self._monotonic())

    def _sender(self, address: object, protocol: str) -> _Sender:
        senders = self._senders
        if len(senders) >= self.limits.max_senders:
            return self._overflow_sender
        if (
            isinstance(address, tuple)
            and len(address) == 2
            and address[0] in ("tcp", "tls", "udp", "unixgram")
        ):
            shown = str(address[1])
        elif protocol == "unixgram" and not address:
            shown = f"unixgram:{self.unixgram_path}"
        else:
            shown = format_address(address)
        sender = senders[address] = _Sender(shown, protocol)
        return sender

    def _datagram(
        self, data: bytes, address: object, protocol: str, now: float, decided: bool | None = None
    ) -> None:
        sender = self._senders.get(address) or self._sender(address, protocol)
        self._packets[protocol] = self._packets.get(protocol, 0) + 1
        self._bytes += len(data)
        detailed = self._detailed(sender, now) if decided is None else decided
        tally: _Tally
        if detailed:
            tally = _Tally(now)
        elif sender.pending is not None:
            tally = sender.pending
        else:
            tally = sender.pending = _Tally(now)
            self._dirty.append(sender)
        tally.datagrams += 1
        tally.bytes += len(data)
        try:
            self._ingest(data, tally, detailed, sender.address, now)
        except Exception as error:  # a bug must not stop the listener; show it as a refusal
            self._internal_error(tally, sender, error)
        if detailed:
            self._emit(sender, tally, coalesced=False)

    def _batch(self, batch: DatagramBatch, protocol: str, now: float) -> None:
        """A batch from a reader thread: runs of coalesced datagrams from one sender go through one loop."""
        senders = self._senders
        run: list[bytes] = []
        run_sender: _Sender | None = None
        for data, address in batch:
            sender = senders.get(address) or self._sender(address, protocol)
            if sender is run_sender:
                run.append(data)
                continue
            if run_sender is not None:
                self._run(run_sender, run, protocol, now)
                run_sender = None
            if self._detailed(sender, now):
                self._datagram(data, address, protocol, now, True)
            else:
                run_sender = sender
                run = [data]
        if run_sender is not None:
            self._run(run_sender, run, protocol, now)

    def _detailed(self, sender: _Sender, now: float) -> bool:
        """The observation rule (module docstring): does this datagram get an Observation of its own?"""
        if now - sender.window_start >= 1.0:
            sender.window_start = now
            sender.window_count = 0
        sender.window_count += 1
        if now - self._second_start >= 1.0:
            self._second_start = now
            self._second_count = 0
        if (
            sender.window_count <= self.limits.observations_per_sender
            and self._second_count < self.limits.observations_per_second
        ):
            self._second_count += 1
            return True
        return False

    def _run(self, sender: _Sender, run: list[bytes], protocol: str, now: float) -> None:
        """Coalesced datagrams of one sender: the hot path, inlined for one-line datagrams."""
        tally = sender.pending
        if tally is None:
            tally = sender.pending = _Tally(now)
            self._dirty.append(sender)
        count = len(run)
        size = sum(map(len, run))
        sender.window_count += count - 1
        self._packets[protocol] = self._packets.get(protocol, 0) + count
        self._bytes += size
        tally.datagrams += count
        tally.bytes += size
        cache = self._cache
        touched = tally.touched
        simple_float = _SIMPLE_FLOAT
        window = self.limits.summary_window
        lines = accepted = 0
        for line in run:
            if b"\n" in line or not line:
                try:
                    self._ingest(line, tally, False, sender.address, now)
                except Exception as error:
                    self._internal_error(tally, sender, error)
                continue
            lines += 1
            colon = line.find(b":")
            if colon > 0:
                bar = line.find(b"|", colon)
                if bar > 0:
                    entry = cache.get(line[: colon + 1] + line[bar:])
                    if entry is not None:
                        raw = line[colon + 1 : bar]
                        if raw.isdigit() or simple_float(raw) is not None:
                            value = float(raw)
                            if value - value == 0.0:
                                series = entry.series
                                kind = entry.kind
                                if kind == _COUNTER:
                                    value /= entry.rate
                                    if entry.scale is not None:
                                        value *= entry.scale
                                    if value >= 0.0:
                                        series.value += value
                                        series.updated = now
                                        entry.hits += 1
                                        touched.add(series)
                                        accepted += 1
                                        continue
                                elif kind == _GAUGE:
                                    if entry.scale is not None:
                                        value *= entry.scale
                                    if raw[0] == 43 or raw[0] == 45:  # "+" or "-": move the gauge
                                        series.value += value
                                    else:
                                        series.value = value
                                    series.updated = now
                                    entry.hits += 1
                                    touched.add(series)
                                    accepted += 1
                                    continue
                                else:
                                    value /= entry.divisor
                                    if entry.scale is not None:
                                        value *= entry.scale
                                    series.observe(value, entry.repeat, now, window)
                                    series.updated = now
                                    entry.hits += 1
                                    touched.add(series)
                                    accepted += 1
                                    continue
            try:
                self._slow_line(line, 1, tally, False, sender.address, now)
            except Exception as error:
                self._internal_error(tally, sender, error)
        self._lines += lines
        self._samples += accepted
        tally.lines += lines
        tally.accepted += accepted

    def _internal_error(self, tally: _Tally, sender: _Sender, error: Exception) -> None:
        tally.refused += 1
        self._add_diagnostic(
            tally,
            Diagnostic("SD-101", Severity.ERROR, 0, 0, f"internal error: {error!r}"),
            sender.address,
            "",
        )

    def _ingest(self, data: bytes, tally: _Tally, detailed: bool, sender: str, now: float) -> None:
        cache = self._cache
        touched = tally.touched
        simple_float = _SIMPLE_FLOAT
        lines = accepted = 0
        parts = data.split(b"\n") if b"\n" in data else (data,)
        for number, line in enumerate(parts, 1):
            if not line:
                continue
            lines += 1
            colon = line.find(b":")
            if colon > 0:
                bar = line.find(b"|", colon)
                if bar > 0:
                    entry = cache.get(line[: colon + 1] + line[bar:])
                    if entry is not None:
                        raw = line[colon + 1 : bar]
                        if raw.isdigit() or simple_float(raw) is not None:
                            value = float(raw)
                            if value - value == 0.0:
                                series = entry.series
                                kind = entry.kind
                                if kind == _COUNTER:
                                    value /= entry.rate
                                    if entry.scale is not None:
                                        value *= entry.scale
                                    if value >= 0.0:
                                        series.value += value
                                    else:
                                        self._slow_line(line, number, tally, detailed, sender, now)
                                        continue
                                elif kind == _GAUGE:
                                    if entry.scale is not None:
                                        value *= entry.scale
                                    if raw[0] == 43 or raw[0] == 45:  # "+" or "-": move the gauge
                                        series.value += value
                                    else:
                                        series.value = value
                                else:
                                    value /= entry.divisor
                                    if entry.scale is not None:
                                        value *= entry.scale
                                    if entry.repeat:
                                        series.observe(value, entry.repeat, now, self.limits.summary_window)
                                series.updated = now
                                entry.hits += 1
                                touched.add(series)
                                accepted += 1
                                if detailed:
                                    self._note_detail(tally, entry, line)
                                continue
            self._slow_line(line, number, tally, detailed, sender, now)
        self._lines += lines
        self._samples += accepted
        tally.lines += lines
        tally.accepted += accepted

    def _note_detail(self, tally: _Tally, entry: _Entry, line: bytes) -> None:
        rule = f"rule #{entry.rule.index}" if entry.rule is not None else "unmapped"
        tally.rules[rule] = tally.rules.get(rule, 0) + 1
        if len(tally.describes) < 3:
            series = entry.series
            tally.describes.append(
                f"{line[:200].decode('utf-8', 'replace')} -> "
                f"{_series_text(series.family.name, series.labels)}"
                f" ({series.family.type.value}, {rule})"
            )

    def _slow_line(
        self, line: bytes, number: int, tally: _Tally, detailed: bool, sender: str, now: float
    ) -> None:
        """A line not seen before (or one with a problem): parse it whole, store it, maybe cache its shape."""
        dog, influx, librato, signalfx = self._flags
        parsed = parse_line(
            line, dogstatsd=dog, influxdb=influx, librato=librato, signalfx=signalfx, sets=self._sets
        )
        self._samples += parsed.sample_count
        self._tags += parsed.tags
        self._tag_errors += parsed.tag_errors
        text = line.decode("utf-8", "replace")
        refused = False
        message = parsed.dogstatsd
        if message is not None:
            self._dogstatsd[message.kind] = self._dogstatsd.get(message.kind, 0) + 1
            upstream = ", ".join(sorted({p.reason for p in parsed.problems} - {"tag_error"})) or "nothing"
            reason = f"dogstatsd_{message.kind}"
            tally.reasons[reason] = tally.reasons.get(reason, 0) + 1
            code = "SD-150" if message.kind == "event" else "SD-151"
            self._add_diagnostic(
                tally,
                Diagnostic(
                    code,
                    Severity.WARNING,
                    number,
                    1,
                    f"{message.describe()}: shown, not stored (statsd_exporter counts it as {upstream})",
                ),
                sender,
                text,
            )
            if len(tally.describes) < 3:
                tally.describes.append(message.describe())
            refused = True
        for problem in parsed.problems:
            if problem.severity is Severity.ERROR:
                refused = True
            if problem.reason == "dogstatsd":
                self._dogstatsd["malformed"] = self._dogstatsd.get("malformed", 0) + 1
            elif problem.reason != "tag_error":
                self._sample_errors[problem.reason] = self._sample_errors.get(problem.reason, 0) + 1
            if message is not None:
                continue  # the event's diagnostic already says what statsd_exporter counts
            if problem.severity is Severity.ERROR:
                tally.reasons[problem.reason] = tally.reasons.get(problem.reason, 0) + 1
            self._add_diagnostic(
                tally,
                Diagnostic(
                    problem.code, problem.severity, number, problem.column, problem.message, _name_of(text)
                ),
                sender,
                text,
            )
        handled = False
        for sample in parsed.samples:
            entry, diagnostic, dropped = self._store(sample, now)
            if diagnostic is not None:
                tally.reasons[_reason_of(diagnostic)] = tally.reasons.get(_reason_of(diagnostic), 0) + 1
                self._add_diagnostic(tally, _at_line(diagnostic, number), sender, text)
                if diagnostic.severity is Severity.ERROR:
                    refused = True
            if dropped:
                handled = True
                tally.dropped += 1
                if detailed and len(tally.describes) < 3:
                    tally.describes.append(f"{text[:200]} -> dropped by {dropped}")
                continue
            if entry is None:
                continue
            handled = True
            tally.touched.add(entry.series)
            if detailed:
                self._note_detail(tally, entry, line)
            cacheable = (
                len(parsed.samples) == 1
                and parsed.sample_count == 1
                and not parsed.problems
                and sample.timestamp is None
                and entry.kind != _SET
                and entry.repeat > 0
                and (diagnostic is None or diagnostic.severity is not Severity.ERROR)
            )
            if cacheable:
                colon = line.find(b":")
                bar = line.find(b"|", colon) if colon > 0 else -1
                if colon > 0 and bar > 0:
                    if len(self._cache) >= self.limits.max_cache_entries:
                        self._reset_cache()
                    self._cache[line[: colon + 1] + line[bar:]] = entry
        if handled:
            tally.accepted += 1
        if refused or not handled:
            tally.refused += 1

    # --- storing ------------------------------------------------------------------------------------

    def _resolve(self, sample: StatsdSample) -> tuple[MatchResult, int, Labels]:
        match = self.mapping.match(sample.name, sample.metric_type)
        if sample.type == "c":
            kind = _COUNTER
        elif sample.type == "g":
            kind = _GAUGE
        elif sample.type == "s":
            kind = _SET
        else:
            kind = _HISTOGRAM if match.observer_type is ObserverType.HISTOGRAM else _SUMMARY
        labels = dict(sample.labels)
        for key, value in match.labels:
            if match.honor_labels and key in labels:
                continue
            labels[key] = value
        return match, kind, tuple(sorted(labels.items()))

    def _check(self, name: str, kind: int, labels: Labels) -> Diagnostic | None:
        """Would a new series ``name{labels}`` of ``kind`` break statsd_exporter or a scrape? (Read-only.)"""
        type_name = _KIND_TYPE[kind].value
        family = self._families.get(name)
        if name in _OWN_NAMES:
            return Diagnostic(
                "SD-140", Severity.ERROR, 0, 0, f"{name} is reserved for promscope's own metrics", name
            )
        if family is not None and family.kind != kind:
            return Diagnostic(
                "SD-140",
                Severity.ERROR,
                0,
                0,
                f"{name} is already a {_KIND_NAME[family.kind]}; this {_KIND_NAME[kind]} is refused, as "
                "statsd_exporter refuses it (statsd_exporter_events_conflict_total)",
                name,
            )
        if kind in (_HISTOGRAM, _SUMMARY):
            for suffix in ("_sum", "_count", "_bucket") if kind == _HISTOGRAM else ("_sum", "_count"):
                other = self._families.get(name + suffix)
                if other is None:
                    continue
                if other.kind != kind:
                    return Diagnostic(
                        "SD-140",
                        Severity.ERROR,
                        0,
                        0,
                        f"a {type_name} {name} needs {name}{suffix}, which is already a {other.type.value}; "
                        "refused, as statsd_exporter refuses it",
                        name,
                    )
                return Diagnostic(
                    "SD-141",
                    Severity.ERROR,
                    0,
                    0,
                    f"a {type_name} {name} collides with the {other.type.value} {name}{suffix}: "
                    "statsd_exporter would "
                    "store it and then fail every scrape (HTTP 500); refused",
                    name,
                )
        for suffix in ("_count", "_sum", "_bucket"):
            if name.endswith(suffix):
                base = self._families.get(name[: -len(suffix)])
                if base is not None and (
                    base.kind == _HISTOGRAM or (base.kind == _SUMMARY and suffix != "_bucket")
                ):
                    return Diagnostic(
                        "SD-141",
                        Severity.ERROR,
                        0,
                        0,
                        f"{name} collides with the {base.type.value} {base.name} (whose {suffix} series "
                        "it would shadow): statsd_exporter would store it and then fail every scrape "
                        "(HTTP 500); refused",
                        name,
                    )
        for key, _ in labels:
            reserved = (
                key.startswith("__")
                or (kind == _HISTOGRAM and key == "le")
                or (kind == _SUMMARY and key == "quantile")
                or not key
            )
            if reserved:
                return Diagnostic(
                    "SD-143",
                    Severity.ERROR,
                    0,
                    0,
                    f"label {key!r} is reserved for a {type_name}: client_golang cannot expose {name} "
                    "with it; refused",
                    name,
                )
        if self._series_count >= self.limits.max_series:
            return Diagnostic(
                "SD-160",
                Severity.ERROR,
                0,
                0,
                f"series limit ({self.limits.max_series:,}) reached: new series {name} refused",
                name,
            )
        if family is not None:
            names = tuple(key for key, _ in labels)
            if names not in family.label_sets and family.label_sets:
                known = sorted(family.label_sets)[0]
                return Diagnostic(
                    "SD-142",
                    Severity.WARNING,
                    0,
                    0,
                    f"{name} now has labels ({', '.join(names) or 'none'}) "
                    f"besides ({', '.join(known) or 'none'}): "
                    "accepted as statsd_exporter accepts it, but sums across them mix different things",
                    name,
                )
        return None

    def _store(self, sample: StatsdSample, now: float) -> tuple[_Entry | None, Diagnostic | None, str]:
        """Apply one parsed sample. Returns (entry to cache, diagnostic, "rule #n" when dropped)."""
        match, kind, labels = self._resolve(sample)
        if match.action is Action.DROP:
            self._actions["drop"] = self._actions.get("drop", 0) + 1
            return None, None, match.rule.describe() if match.rule else "rule"
        if match.rule is None:
            self._unmapped += 1
        else:
            self._actions["map"] = self._actions.get("map", 0) + 1
        name = match.name
        if not name:
            self._events_errors["empty_metric_name"] = self._events_errors.get("empty_metric_name", 0) + 1
            rule = match.rule.describe() if match.rule else "the default mapping"
            return (
                None,
                Diagnostic("SD-131", Severity.ERROR, 0, 0, f"{rule} produced an empty metric name"),
                "",
            )
        value = sample.value
        scale = match.scale
        if kind == _COUNTER:
            value = value / sample.sample_rate
            if scale is not None:
                value *= scale
            if value < 0:
                self._events_errors["illegal_negative_counter"] = (
                    self._events_errors.get("illegal_negative_counter", 0) + 1
                )
                return (
                    None,
                    Diagnostic(
                        "SD-130",
                        Severity.ERROR,
                        0,
                        0,
                        f"counter {name} cannot decrease by {-value:g}; refused",
                        name,
                    ),
                    "",
                )
        family = self._families.get(name)
        series = family.series.get(labels) if family is not None and family.kind == kind else None
        warning: Diagnostic | None = None
        if series is None:
            problem = self._check(name, kind, labels)
            if problem is not None and problem.severity is Severity.ERROR:
                if problem.code == "SD-160":
                    self._series_refused += 1
                else:
                    key = {"SD-140": "type", "SD-141": "collision", "SD-143": "reserved_label"}[problem.code]
                    self._conflicts[key] = self._conflicts.get(key, 0) + 1
                return None, problem, ""
            warning = problem
            if family is None:
                family = self._families[name] = _Family(name, kind, match.help or DEFAULT_HELP, match)
            names = tuple(key for key, _ in labels)
            if names not in family.label_sets:
                if family.label_sets:
                    self._label_set_variants += 1
                family.label_sets.add(names)
            series = family.series[labels] = _Series(family, labels, match.ttl, now)
            self._series_count += 1
        rate = sample.sample_rate
        divisor = 1000.0 if sample.type == "ms" else 1.0
        repeat = 1
        if kind == _COUNTER:
            series.value += value
        elif kind == _GAUGE:
            gauge_value = value * scale if scale is not None else value
            if sample.relative:
                series.value += gauge_value
            else:
                series.value = gauge_value
        elif kind == _SET:
            members = series.members
            if members is None:
                members = series.members = set()
            if len(members) < self.limits.max_set_members or sample.member in members:
                members.add(sample.member or "")
            series.value = float(len(members))
        else:
            inverse = 1.0 / rate if rate == rate and rate != 0 else 0.0
            repeat = int(inverse) if math.isfinite(inverse) and inverse > 0 else 0
            observed = value / divisor
            if scale is not None:
                observed *= scale
            if repeat:
                series.observe(observed, repeat, now, self.limits.summary_window)
            elif warning is None:
                warning = Diagnostic(
                    "SD-112",
                    Severity.WARNING,
                    0,
                    0,
                    f"sample rate {rate:g} on {name}: statsd_exporter records int(1/rate) = 0 observations",
                    name,
                )
        series.updated = now
        self._events[_KIND_EVENT[kind]] = self._events.get(_KIND_EVENT[kind], 0) + 1
        self._stored += 1
        entry = _Entry(series, kind, rate, divisor, repeat, scale, match.rule, bool(sample.labels))
        entry.hits = 0
        return entry, warning, ""

    def _reset_cache(self) -> None:
        for entry in self._cache.values():
            self._fold(entry)
        self._cache.clear()
        self._cache_resets += 1

    def _fold(self, entry: _Entry) -> None:
        """Move an entry's fast-path hits into the counters before the entry goes away."""
        hits = entry.hits
        if not hits:
            return
        entry.hits = 0
        self._stored += hits
        event = _KIND_EVENT[entry.kind]
        self._events[event] = self._events.get(event, 0) + hits
        if entry.rule is None:
            self._unmapped += hits
        else:
            self._actions["map"] = self._actions.get("map", 0) + hits
        if entry.tagged:
            self._tags += hits

    def _add_diagnostic(self, tally: _Tally, diagnostic: Diagnostic, sender: str, line: str) -> None:
        if len(tally.diagnostics) < self.limits.max_diagnostics_per_observation:
            tally.diagnostics.append(diagnostic)
        else:
            tally.suppressed += 1
        if diagnostic.severity is not Severity.STYLE:
            self.recent.append((self._clock(), sender, line[:512], diagnostic))

    # --- observations -------------------------------------------------------------------------------

    def flush(self) -> None:
        """Emit the coalesced Observations waiting for their interval now (the loop's timer does this)."""
        self._flush()

    def _flush(self, force: bool = False) -> None:
        dirty, self._dirty = self._dirty, []
        for sender in dirty:
            tally = sender.pending
            sender.pending = None
            if tally is not None:
                self._emit(sender, tally, coalesced=True)
        if self._has_ttl:
            now = self._monotonic()
            if force or now - self._last_sweep >= 1.0:
                self._last_sweep = now
                self._expire(now)

    def _expire(self, now: float) -> None:
        removed = 0
        for name, family in list(self._families.items()):
            for labels, series in list(family.series.items()):
                if series.ttl > 0 and now - series.updated > series.ttl:
                    del family.series[labels]
                    removed += 1
            if not family.series:
                del self._families[name]
        if removed:
            self._series_count -= removed
            self._reset_cache()

    def _emit(self, sender: _Sender, tally: _Tally, *, coalesced: bool) -> None:
        if self.sink is None:
            return
        if tally.refused == 0:
            outcome = Outcome.ACCEPTED
        elif tally.accepted == 0:
            outcome = Outcome.REJECTED
        else:
            outcome = Outcome.PARTIAL
        families = self._families_of(tally.touched)
        extra = {"datagrams": str(tally.datagrams), "lines": str(tally.lines)}
        if coalesced:
            extra["coalesced"] = "true"
            self._coalesced += 1
        if tally.rules:
            extra["rules"] = ", ".join(f"{rule} x{count}" for rule, count in sorted(tally.rules.items()))
        if tally.suppressed:
            extra["diagnostics_suppressed"] = str(tally.suppressed)
        observation = Observation(
            kind=ObservationKind.STATSD,
            source=sender.address,
            time=self._clock(),
            outcome=outcome,
            transport=Transport(
                protocol=sender.protocol,
                sender=sender.address,
                wire_bytes=tally.bytes,
                body_bytes=tally.bytes,
                duration=max(0.0, self._monotonic() - tally.first) if coalesced else None,
                extra=MappingProxyType(extra),
            ),
            families=families,
            diagnostics=tuple(tally.diagnostics),
            message=self._message(tally, coalesced),
            series=len(tally.touched),
        )
        self._observations += 1
        try:
            self.sink(observation)
        except Exception:  # the sink's bug: count it, keep receiving
            self._sink_errors += 1

    def _message(self, tally: _Tally, coalesced: bool) -> str:
        if tally.lines == 0:
            return "empty datagram" if tally.datagrams == 1 else f"{tally.datagrams} empty datagrams"
        refused = ""
        if tally.reasons:
            refused = (
                " ("
                + ", ".join(f"{reason} x{count}" for reason, count in sorted(tally.reasons.items()))
                + ")"
            )
        counts = f"{tally.lines:,} line{'s' if tally.lines != 1 else ''}: {tally.accepted:,} stored"
        if tally.refused:
            counts += f", {tally.refused:,} refused{refused}"
        if tally.dropped:
            counts += f", {tally.dropped:,} dropped by rule"
        if coalesced:
            return f"{tally.datagrams:,} datagrams coalesced; {counts}"
        if tally.lines == 1 and tally.describes and not tally.refused:
            return tally.describes[0]
        if tally.describes:
            return f"{counts}; " + "; ".join(tally.describes)
        return counts

    def _families_of(self, touched: Iterable[_Series]) -> tuple[MetricFamily, ...]:
        grouped: dict[str, list[_Series]] = {}
        budget = self.limits.max_series_per_observation
        now = self._monotonic()
        for series in touched:
            if budget <= 0:
                break
            family = series.family
            if self._families.get(family.name) is not family:
                continue  # expired since
            grouped.setdefault(family.name, []).append(series)
            budget -= 1
        out = []
        for name in sorted(grouped):
            family = grouped[name][0].family
            members = sorted(grouped[name], key=lambda s: s.labels)
            samples = _samples(family, members, now, quantiles=False)
            out.append(MetricFamily(name, family.type, family.help, None, tuple(samples)))
        return tuple(out)

    # --- reading ------------------------------------------------------------------------------------

    def exposition_families(self) -> list[MetricFamily]:
        """Every stored series as statsd_exporter's ``/metrics`` shows it, plus ``promscope_statsd_*``."""
        now = self._monotonic()
        out = []
        for name in sorted(self._families):
            family = self._families[name]
            members = sorted(family.series.values(), key=lambda s: s.labels)
            out.append(
                MetricFamily(name, family.type, family.help, None, tuple(_samples(family, members, now)))
            )
        out.extend(self.own_families())
        return out

    def series_families(self) -> list[MetricFamily]:
        """Only the StatsD-derived families (no ``promscope_statsd_*``)."""
        own = set(_OWN_NAMES)
        return [family for family in self.exposition_families() if family.name not in own]

    def stats(self) -> StatsdStats:
        events = dict(self._events)
        actions = dict(self._actions)
        stored, unmapped, tags = self._stored, self._unmapped, self._tags
        for entry in self._cache.values():
            hits = entry.hits
            if not hits:
                continue
            stored += hits
            event = _KIND_EVENT[entry.kind]
            events[event] = events.get(event, 0) + hits
            if entry.rule is None:
                unmapped += hits
            else:
                actions["map"] = actions.get("map", 0) + hits
            if entry.tagged:
                tags += hits
        return StatsdStats(
            packets=dict(self._packets),
            bytes=self._bytes,
            lines=self._lines,
            samples=self._samples,
            stored=stored,
            sample_errors=dict(self._sample_errors),
            events_errors=dict(self._events_errors),
            conflicts=dict(self._conflicts),
            events=events,
            unmapped=unmapped,
            actions=actions,
            tags=tags,
            tag_errors=self._tag_errors,
            dogstatsd=dict(self._dogstatsd),
            series=self._series_count,
            series_refused=self._series_refused,
            label_set_variants=self._label_set_variants,
            kernel_drops=udp_kernel_drops(self._udp_socket) if self._udp_socket is not None else None,
            receive_buffer=self._udp_grant,
            tcp_connections=self._tcp_connections,
            tcp_refused=self._tcp_refused,
            tcp_too_long=self._tcp_too_long,
            tcp_timeouts=self._tcp_timeouts,
            observations=self._observations,
            observations_coalesced=self._coalesced,
            sink_errors=self._sink_errors,
            reader_paused=sum(reader.paused for reader in self._readers),
            cache_resets=self._cache_resets,
            tls_handshake_failures=self._tls_failures,
        )

    def own_families(self) -> list[MetricFamily]:
        """promscope's counters about this receiver, named after statsd_exporter's own."""
        stats = self.stats()

        def counter(name: str, help: str, values: dict[str, int] | int, label: str = "") -> MetricFamily:
            if isinstance(values, int):
                samples: tuple[Sample, ...] = (Sample(name, (), float(values)),)
            else:
                samples = tuple(
                    Sample(name, ((label, key),), float(count)) for key, count in sorted(values.items())
                )
            return MetricFamily(name, MetricType.COUNTER, help, None, samples)

        def gauge(name: str, help: str, value: float) -> MetricFamily:
            return MetricFamily(name, MetricType.GAUGE, help, None, (Sample(name, (), value),))

        out = [
            counter(
                "promscope_statsd_packets_total",
                "Datagrams (udp, unixgram) and TCP read batches received.",
                stats.packets,
                "transport",
            ),
            counter("promscope_statsd_lines_total", "Non-empty StatsD lines received.", stats.lines),
            counter("promscope_statsd_samples_total", "StatsD samples received.", stats.samples),
            counter(
                "promscope_statsd_sample_errors_total",
                "Samples refused while parsing, by statsd_exporter's reason.",
                stats.sample_errors,
                "reason",
            ),
            counter("promscope_statsd_events_total", "Samples stored, by type.", stats.events, "type"),
            counter(
                "promscope_statsd_events_error_total",
                "Samples refused by the exporter stage, by reason.",
                stats.events_errors,
                "reason",
            ),
            counter(
                "promscope_statsd_events_conflict_total",
                "Samples refused because of a name or label clash.",
                stats.conflicts,
                "kind",
            ),
            counter(
                "promscope_statsd_events_unmapped_total", "Samples no mapping rule matched.", stats.unmapped
            ),
            counter(
                "promscope_statsd_events_actions_total", "Samples by mapping action.", stats.actions, "action"
            ),
            counter("promscope_statsd_tag_errors_total", "Malformed tags dropped.", stats.tag_errors),
            counter(
                "promscope_statsd_dogstatsd_total",
                "DogStatsD events and service checks seen (not stored).",
                stats.dogstatsd,
                "kind",
            ),
            counter(
                "promscope_statsd_series_refused_total",
                "New series refused at the series limit.",
                stats.series_refused,
            ),
            gauge("promscope_statsd_series", "StatsD-derived series held.", float(stats.series)),
            counter(
                "promscope_statsd_tcp_connections_total", "TCP connections accepted.", stats.tcp_connections
            ),
            counter(
                "promscope_statsd_tcp_too_long_lines_total",
                "TCP lines over the length limit (connection closed).",
                stats.tcp_too_long,
            ),
        ]
        if self.tls is not None:
            out.append(
                counter(
                    "promscope_statsd_tls_handshake_failures_total",
                    "TCP connections closed because the TLS handshake failed or timed out.",
                    stats.tls_handshake_failures,
                )
            )
        if stats.kernel_drops is not None:
            out.append(
                counter(
                    "promscope_statsd_udp_kernel_drops_total",
                    "Datagrams the kernel dropped for the UDP socket (/proc/net/udp).",
                    stats.kernel_drops,
                )
            )
        if stats.receive_buffer is not None:
            out.append(
                gauge(
                    "promscope_statsd_udp_receive_buffer_bytes",
                    "SO_RCVBUF the kernel granted.",
                    float(stats.receive_buffer.granted),
                )
            )
        return out

    def explain(self, line: str | bytes) -> MatchExplanation:
        """What ``line`` would become now: samples, the rule behind each, and any refusal. Stores nothing."""
        text = line.decode("utf-8", "replace") if isinstance(line, bytes) else line
        dog, influx, librato, signalfx = self._flags
        parsed = parse_line(
            line, dogstatsd=dog, influxdb=influx, librato=librato, signalfx=signalfx, sets=self._sets
        )
        diagnostics = [
            Diagnostic(p.code, p.severity, 1, p.column, p.message, _name_of(text)) for p in parsed.problems
        ]
        if parsed.dogstatsd is not None:
            code = "SD-150" if parsed.dogstatsd.kind == "event" else "SD-151"
            diagnostics.insert(
                0, Diagnostic(code, Severity.WARNING, 1, 1, parsed.dogstatsd.describe() + ": not stored")
            )
        samples = []
        for sample in parsed.samples:
            match, trials = self.mapping.trace(sample.name, sample.metric_type)
            _, kind, labels = self._resolve(sample)
            if match.action is Action.DROP:
                rule = match.rule.describe() if match.rule else "rule"
                samples.append(
                    SampleExplanation(
                        sample, match.rule, trials, match.name, labels, None, f"dropped by {rule}"
                    )
                )
                continue
            diagnostic: Diagnostic | None = None
            if not match.name:
                diagnostic = Diagnostic(
                    "SD-131", Severity.ERROR, 1, 0, "the mapping produced an empty metric name"
                )
            elif (
                kind == _COUNTER
                and sample.value / sample.sample_rate * (match.scale if match.scale is not None else 1.0) < 0
            ):
                diagnostic = Diagnostic(
                    "SD-130", Severity.ERROR, 1, 0, "a counter cannot decrease", match.name
                )
            else:
                family = self._families.get(match.name)
                if family is None or family.kind != kind or labels not in family.series:
                    diagnostic = self._check(match.name, kind, labels)
            outcome = "stored"
            if diagnostic is not None and diagnostic.severity is Severity.ERROR:
                outcome = f"refused: {diagnostic.message}"
            samples.append(
                SampleExplanation(
                    sample, match.rule, trials, match.name, labels, _KIND_TYPE[kind], outcome, diagnostic
                )
            )
        return MatchExplanation(text, parsed, tuple(samples), tuple(diagnostics))

    # --- TCP ----------------------------------------------------------------------------------------

    async def _tcp_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        peer = format_address(writer.get_extra_info("peername"))
        if len(self._tcp_tasks) >= self.limits.max_tcp_connections:
            self._tcp_refused += 1
            writer.close()
            return
        if task is not None:
            self._tcp_tasks.add(task)
        self._tcp_connections += 1
        context = self._tls_context
        key = ("tls" if context is not None else "tcp", peer)
        aborted = False
        limit = self.limits.max_line_bytes
        pending = b""
        try:
            if context is not None:
                # Nothing may suspend before start_tls pauses reading (so no wait_for, which would
                # start it in a task of its own): the client's first bytes belong to the handshake,
                # and the StreamReader would otherwise take them as plaintext.
                protocol = getattr(writer, "_protocol", None)
                if hasattr(protocol, "_over_ssl"):
                    # CPython marks the stream as TLS only once the handshake is done; a client that
                    # sends and closes at once would make asyncio log a warning per connection.
                    setattr(protocol, "_over_ssl", True)  # noqa: B010
                try:
                    await writer.start_tls(context, ssl_handshake_timeout=self.limits.tls_handshake_timeout)
                except (ssl.SSLError, ConnectionError, OSError) as error:
                    self._tls_refused(key, error)
                    return
                if writer.transport is None:  # gone before the handshake completed
                    self._tls_refused(key, ConnectionResetError("closed during the TLS handshake"))
                    return
            while True:
                try:
                    chunk = await asyncio.wait_for(reader.read(65536), self.limits.tcp_idle_timeout)
                except TimeoutError:
                    self._tcp_timeouts += 1
                    break
                if not chunk:
                    if pending:
                        self._tcp_batch(pending, key)
                    break
                pending += chunk
                cut = pending.rfind(b"\n")
                if cut < 0:
                    if len(pending) > limit:
                        self._tcp_line_too_long(key, pending)
                        break
                    continue
                complete, pending = pending[:cut], pending[cut + 1 :]
                if len(complete) > limit:
                    good, long_line = _split_at_long_line(complete, limit)
                    if long_line is not None:
                        if good:
                            self._tcp_batch(good, key)
                        self._tcp_line_too_long(key, long_line)
                        break
                self._tcp_batch(complete, key)
                if len(pending) > limit:
                    self._tcp_line_too_long(key, pending)
                    break
        except (ConnectionError, OSError):
            pass
        except asyncio.CancelledError:
            # stop() ends open connections: finish quietly, since a client task that ends cancelled
            # makes asyncio (3.11) log a traceback for every connection still open.
            aborted = True
        finally:
            if task is not None:
                self._tcp_tasks.discard(task)
            await _close_stream(writer, abort=aborted)

    def _tcp_batch(self, data: bytes, key: tuple[str, str]) -> None:
        self._datagram(data, key, key[0], self._monotonic())

    def _tls_refused(self, key: tuple[str, str], error: BaseException) -> None:
        """A connection that did not complete the TLS handshake: counted, and shown against its peer."""
        self._tls_failures += 1
        if type(error) is ConnectionResetError and not error.args:
            return  # closed before any handshake (a port probe, a health check): counted, not shown
        if isinstance(error, ConnectionAbortedError) and "taking longer" in str(error):
            reason = f"no TLS handshake within {self.limits.tls_handshake_timeout:g}s"
        else:
            reason = f"TLS handshake failed: {getattr(error, 'reason', None) or error}"
        diagnostic = Diagnostic("SD-162", Severity.ERROR, 0, 0, f"{reason}; connection closed")
        self.recent.append((self._clock(), key[1], "", diagnostic))
        if self.sink is None:
            return
        observation = Observation(
            kind=ObservationKind.STATSD,
            source=key[1],
            time=self._clock(),
            outcome=Outcome.REJECTED,
            transport=Transport(protocol="tls", sender=key[1], extra=MappingProxyType({"refused": "tls"})),
            diagnostics=(diagnostic,),
            message=reason,
        )
        self._observations += 1
        try:
            self.sink(observation)
        except Exception:  # the sink's bug: count it, keep receiving
            self._sink_errors += 1

    def _tcp_line_too_long(self, key: tuple[str, str], line: bytes) -> None:
        self._tcp_too_long += 1
        sender = self._senders.get(key) or self._sender(key, "tcp")
        tally = _Tally(self._monotonic())
        tally.lines = 1
        tally.refused = 1
        tally.bytes = len(line)
        tally.reasons["line_too_long"] = 1
        diagnostic = Diagnostic(
            "SD-161",
            Severity.ERROR,
            1,
            self.limits.max_line_bytes + 1,
            f"line longer than {self.limits.max_line_bytes:,} bytes: refused and the connection closed, as "
            "statsd_exporter does (statsd_exporter_tcp_too_long_lines_total)",
        )
        self._add_diagnostic(tally, diagnostic, sender.address, line[:200].decode("utf-8", "replace"))
        self._emit(sender, tally, coalesced=False)


# --- helpers ----------------------------------------------------------------------------------------


async def _close_stream(writer: asyncio.StreamWriter, *, abort: bool) -> None:
    """Close a TCP (or TLS) connection: gracefully, bounded in time, or at once when ``abort``."""
    transport = writer.transport
    if transport is None:
        return
    if not abort:
        writer.close()
        try:
            await asyncio.wait_for(writer.wait_closed(), _CLOSE_TIMEOUT)
            return
        except (Exception, asyncio.CancelledError):  # a TLS peer that never answers close_notify, stop()
            pass
    transport.abort()


def _split_at_long_line(data: bytes, limit: int) -> tuple[bytes, bytes | None]:
    start = 0
    for line in data.split(b"\n"):
        if len(line) > limit:
            return data[: max(0, start - 1)], line
        start += len(line) + 1
    return data, None


def _series_text(name: str, labels: Labels) -> str:
    if not labels:
        return name
    return name + "{" + ",".join(f'{key}="{value}"' for key, value in labels) + "}"


def _name_of(line: str) -> str | None:
    name = line.partition(":")[0]
    return name[:200] or None


def _at_line(diagnostic: Diagnostic, line: int) -> Diagnostic:
    return Diagnostic(
        diagnostic.code, diagnostic.severity, line, diagnostic.column, diagnostic.message, diagnostic.metric
    )


def _reason_of(diagnostic: Diagnostic) -> str:
    return {
        "SD-130": "illegal_negative_counter",
        "SD-131": "empty_metric_name",
        "SD-140": "conflict",
        "SD-141": "collision",
        "SD-142": "label_set_variant",
        "SD-143": "reserved_label",
        "SD-160": "series_limit",
        "SD-112": "zero_observations",
    }.get(diagnostic.code, diagnostic.code)


def _samples(family: _Family, members: list[_Series], now: float, *, quantiles: bool = True) -> list[Sample]:
    """The exposition samples of ``members``. Without ``quantiles`` a summary gives only _sum and _count."""
    name = family.name
    kind = family.kind
    out: list[Sample] = []
    if kind in (_COUNTER, _GAUGE, _SET):
        return [Sample(name, series.labels, series.value) for series in members]
    if kind == _HISTOGRAM:
        bounds = family.bounds
        for series in members:
            running = 0
            for bound, count in zip(bounds, series.buckets, strict=False):
                running += count
                out.append(
                    Sample(
                        name + "_bucket", (*series.labels, ("le", canonical_number(bound))), float(running)
                    )
                )
            out.append(Sample(name + "_bucket", (*series.labels, ("le", "+Inf")), float(series.count)))
            out.append(Sample(name + "_sum", series.labels, series.sum))
            out.append(Sample(name + "_count", series.labels, float(series.count)))
        return out
    objectives = sorted(family.quantiles or DEFAULT_QUANTILES, key=lambda q: q.quantile) if quantiles else []
    for series in members:
        window = series.window or ()
        horizon = now - family.max_age
        values = sorted(value for stamp, value in window if stamp >= horizon) if objectives else []
        for objective in objectives:
            if values:
                rank = max(0, min(len(values) - 1, math.ceil(objective.quantile * len(values)) - 1))
                estimate = values[rank]
            else:
                estimate = math.nan
            out.append(
                Sample(name, (*series.labels, ("quantile", canonical_number(objective.quantile))), estimate)
            )
        out.append(Sample(name + "_sum", series.labels, series.sum))
        out.append(Sample(name + "_count", series.labels, float(series.count)))
    return out


_OWN_NAMES = frozenset(
    {
        "promscope_statsd_packets_total",
        "promscope_statsd_lines_total",
        "promscope_statsd_samples_total",
        "promscope_statsd_sample_errors_total",
        "promscope_statsd_events_total",
        "promscope_statsd_events_error_total",
        "promscope_statsd_events_conflict_total",
        "promscope_statsd_events_unmapped_total",
        "promscope_statsd_events_actions_total",
        "promscope_statsd_tag_errors_total",
        "promscope_statsd_dogstatsd_total",
        "promscope_statsd_series_refused_total",
        "promscope_statsd_series",
        "promscope_statsd_tcp_connections_total",
        "promscope_statsd_tcp_too_long_lines_total",
        "promscope_statsd_tls_handshake_failures_total",
        "promscope_statsd_udp_kernel_drops_total",
        "promscope_statsd_udp_receive_buffer_bytes",
    }
)
