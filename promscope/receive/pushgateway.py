"""A Pushgateway you can debug with: the whole Pushgateway HTTP API, plus who pushed what and when.

Any client that pushes to a Prometheus Pushgateway pushes to promscope
unchanged (status codes as Pushgateway 1.5 answers them)::

    PUT    /metrics/job/<job>{/<label>/<value>}   replace the group         200 / 400
    POST   /metrics/job/<job>{/<label>/<value>}   replace same-name families 200 / 400
    DELETE /metrics/job/<job>{/<label>/<value>}   delete exactly that group  202
    (``/metrics/job@base64/<job>`` and ``<label>@base64/<value>`` for values with ``/``;
    a lone ``=`` is the empty value)
    GET    /api/v1/metrics     every group, upstream's JSON shape (plus an ``@promscope`` key)
    GET    /api/v1/status      flags, start time, build information
    PUT    /api/v1/admin/wipe  delete every group                           202
    GET    /-/healthy, /-/ready

Bodies are the text format 0.0.4 unless the Content-Type is exactly
upstream's delimited protobuf (``application/vnd.google.protobuf;
proto=io.prometheus.client.MetricFamily; encoding=delimited``). Grouping
labels override body labels, ``instance=""`` is added where a series has no
``instance``, every group gets ``push_time_seconds`` and
``push_failure_time_seconds``. A push with timestamps or one that is
inconsistent with what is held (see :mod:`promscope.receive.groups`) is
refused with 400 and sets the group's failure time, as upstream does.

Where it does better than upstream:

* a refused push gets *every* problem, each with its line and column, in the
  400 body (first line as upstream words it, so scripts that match it still
  work) and in the :class:`~promscope.observation.Observation`;
* every push request, accepted or not, becomes an Observation (kind
  ``pushgateway``, source = the grouping key, the sender's address, user
  agent, bytes and status), handed to the sink once the response is decided;
  an accepted PUT/POST/DELETE carries :class:`~promscope.observation.Changes`;
* group age: last push per group and per sender, ``stale_after`` marks groups
  stale (``promscope_pushgateway_group_stale`` and the API), ``expire_after``
  deletes them (off by default). Each expired group is an Observation too:
  outcome ``accepted``, no sender (``Transport.protocol`` is ``"internal"``,
  the group's last sender is in ``extra["last_sender"]``), ``Changes`` listing
  the families and series removed, message ``expired after 10m (last push
  10m3s ago)``;
* the consistency check costs O(size of the push), not O(everything held);
* ``persistence_file``: a push is committed to SQLite before it is
  acknowledged (see :mod:`promscope.receive.persistence`), not every 5 minutes;
* limits on body size, series per push, total series, groups and label
  lengths, each refusal a clear 4xx, counted by reason.

The receiver has no socket of its own: :meth:`PushgatewayReceiver.routes`
goes to an :class:`~promscope.receive.http.HttpServer`, and
:meth:`PushgatewayReceiver.exposition_families` is what the shared
``/metrics`` re-exposes.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import sys
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, unquote

from promscope.exposition import ParseLimits, parse
from promscope.exposition.negotiate import MediaTypeError, parse_media_type
from promscope.model import Diagnostic, Format, Labels, MetricFamily, MetricType, Sample, Severity
from promscope.observation import (
    Changes,
    Observation,
    ObservationKind,
    ObservationSink,
    Outcome,
    Transport,
)
from promscope.receive.groups import (
    CODES,
    PUSH_FAILURE_TIME,
    PUSH_FAILURE_TIME_HELP,
    PUSH_TIME,
    PUSH_TIME_HELP,
    Group,
    GroupKey,
    GroupStore,
    PreparedPush,
    SimpleTextMemo,
    StoredFamily,
    format_group,
    go_float,
    group_key,
    prepare_push,
    prepare_simple_text,
)
from promscope.receive.http import HttpLimits, RefusedRequest, Request, Response, Route
from promscope.receive.log import INTERNAL_PROTOCOL
from promscope.receive.persistence import DeleteGroup, PersistenceError, PushStore, Wipe, WriteGroup

__all__ = [
    "CODES",
    "GroupInfo",
    "PushLimits",
    "PushgatewayReceiver",
    "PushgatewayStats",
    "SenderInfo",
    "duration_text",
    "split_grouping_path",
]

log = logging.getLogger("promscope.receive.pushgateway")

PREFIX = "/metrics/job/"
PREFIX_BASE64 = "/metrics/job@base64/"
BASE64_SUFFIX = "@base64"
OWN_PREFIX = "promscope_"
PROTOBUF_MEDIA = "application/vnd.google.protobuf"
PROTOBUF_PROTO = "io.prometheus.client.MetricFamily"
CHECK_FAILED = "pushed metrics are invalid or inconsistent with existing metrics"
_CORS = (
    ("access-control-allow-headers", "Accept, Authorization, Content-Type, Origin"),
    ("access-control-allow-methods", "GET, POST, DELETE, OPTIONS"),
    ("access-control-allow-origin", "*"),
    ("access-control-expose-headers", "Date"),
    ("cache-control", "no-cache, no-store, must-revalidate"),
)
_GO_TYPE = {
    MetricType.COUNTER: "COUNTER",
    MetricType.GAUGE: "GAUGE",
    MetricType.SUMMARY: "SUMMARY",
    MetricType.HISTOGRAM: "HISTOGRAM",
    MetricType.GAUGEHISTOGRAM: "GAUGE_HISTOGRAM",
    MetricType.INFO: "GAUGE",
    MetricType.STATESET: "GAUGE",
    MetricType.UNKNOWN: "UNTYPED",
}
_LIMIT_CODES = {
    "PS-106": "label_name_length",
    "PS-107": "label_value_length",
    "PS-109": "series_per_push",
    "PB-211": "label_length",
    "PB-212": "series_per_push",
}
EXPIRY_PROTOCOL = INTERNAL_PROTOCOL
"""``Transport.protocol`` of the Observation of an expired group: promscope's own doing, no sender."""
_NOT_REFUSING: frozenset[str] = frozenset()
_LABEL_CACHE_TOTAL = 500_000
"""Label bodies and body-memo lines the fast path keeps across all groups; past it, every cache starts
afresh."""


# --- configuration and introspection values ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PushLimits:
    """What one push, and everything held, may cost. Each refusal is a 4xx, counted by reason."""

    max_body_bytes: int = HttpLimits().max_body_bytes
    """Decoded body bytes (413). Give the same figure to the server's :class:`HttpLimits` so that a
    larger body is refused before it is read."""
    max_series_per_push: int = 100_000
    """Samples in one push (413)."""
    max_total_series: int = 2_000_000
    """Samples held across all groups (413)."""
    max_groups: int = 100_000
    """Groups held (413)."""
    max_label_name_length: int = 1_024
    """Characters in a label name, in the body or the URL (400)."""
    max_label_value_length: int = 16_384
    """Characters in a label value, in the body or the URL (400)."""
    max_senders: int = 10_000
    """Senders remembered; the least recently seen one is forgotten first (counted)."""


@dataclass(frozen=True, slots=True)
class GroupInfo:
    """One group as introspection shows it."""

    labels: Labels
    """Grouping labels, ``job`` first."""
    source: str
    """``job=…/instance=…``: the Observation source of its pushes."""
    push_time: float
    """Last successful push (0: none yet)."""
    failure_time: float
    """Last failed push (0: none)."""
    last_push_successful: bool
    created: float
    last_sender: str | None
    last_user_agent: str | None
    families: int
    series: int
    age: float
    """Seconds since the last successful push (since creation if there was none)."""
    stale: bool


@dataclass(frozen=True, slots=True)
class SenderInfo:
    """What one sender (host address) pushed: counts and times."""

    host: str
    first_seen: float
    last_seen: float
    last_accepted: float
    """Last accepted push (0: none)."""
    requests: int
    accepted: int
    rejected: int
    last_user_agent: str | None
    last_source: str | None
    last_error: str | None


@dataclass(slots=True)
class _Sender:
    host: str
    first_seen: float
    last_seen: float = 0.0
    last_accepted: float = 0.0
    requests: int = 0
    accepted: int = 0
    rejected: int = 0
    last_user_agent: str | None = None
    last_source: str | None = None
    last_error: str | None = None


@dataclass(slots=True)
class PushgatewayStats:
    """Counters of one receiver (mutable; read them, don't write them)."""

    requests: dict[tuple[str, str], int] = field(default_factory=dict)
    """Push requests by ``(method, outcome)``."""
    refused: dict[str, int] = field(default_factory=dict)
    """Refused push requests by reason (``parse_error``, ``inconsistent``, ``timestamps``, limits…)."""
    expired_groups: int = 0
    forgotten_senders: int = 0
    sink_errors: int = 0
    persistence_errors: int = 0
    restore_problems: int = 0
    """Persisted families that could not be restored (their body no longer parses)."""

    def count(self, method: str, outcome: Outcome) -> None:
        key = (method, outcome.value)
        self.requests[key] = self.requests.get(key, 0) + 1

    def refuse(self, reason: str) -> None:
        self.refused[reason] = self.refused.get(reason, 0) + 1


class _Refused(Exception):
    """A push is refused before it reaches the store."""

    def __init__(
        self,
        status: int,
        reason: str,
        text: str,
        diagnostics: Iterable[Diagnostic] = (),
        headers: tuple[tuple[str, str], ...] = (),
    ) -> None:
        super().__init__(text)
        self.status = status
        self.reason = reason
        self.text = text
        self.diagnostics = tuple(diagnostics)
        self.headers = headers


# --- the grouping key in the URL ------------------------------------------------------------------------


def _go_quote(text: str) -> str:
    """Go's ``%q`` for the strings upstream quotes in its messages (close enough: JSON escapes)."""
    return json.dumps(text, ensure_ascii=False)


def _clean_path(path: str) -> str:
    """Go's ``net/http`` ``cleanPath``: ``path.Clean``, keeping a trailing slash."""
    if not path:
        return "/"
    if not path.startswith("/"):
        path = "/" + path
    parts: list[str] = []
    for segment in path.split("/"):
        if segment in ("", "."):
            continue
        if segment == "..":
            if parts:
                parts.pop()
            continue
        parts.append(segment)
    cleaned = "/" + "/".join(parts)
    if path.endswith("/") and cleaned != "/":
        cleaned += "/"
    return cleaned


def _decode_base64(value: str) -> str:
    """Upstream's ``decodeBase64``: URL-safe alphabet, trailing ``=`` ignored; ValueError if invalid."""
    import base64
    import binascii

    raw = value.rstrip("=")
    for position, char in enumerate(raw):
        if not (char.isascii() and (char.isalnum() or char in "-_")):
            raise ValueError(f"illegal base64 data at input byte {position}")
    if len(raw) % 4 == 1:
        raise ValueError(f"illegal base64 data at input byte {len(raw) - 1}")
    try:
        decoded = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4))
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"illegal base64 data: {exc}") from None
    try:
        return decoded.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"decoded value is not valid UTF-8 (byte {exc.start})") from None


def _valid_label_name(name: str) -> bool:
    if not name or not (name[0].isascii() and (name[0].isalpha() or name[0] == "_")):
        return False
    return all(c.isascii() and (c.isalnum() or c == "_") for c in name)


def split_grouping_path(path: str) -> dict[str, str]:
    """The grouping labels of a push URL path (percent-decoded), ``job`` last, as upstream reads them.

    Raises ``_Refused`` with upstream's status and message: 400 for an odd
    number of label components, an improper label name, bad base64 or a
    missing job; 307 to ``/metrics/job`` for an empty job segment.
    """
    if path.startswith(PREFIX_BASE64):
        rest = path[len(PREFIX_BASE64) :]
        job_base64 = True
        prefix = PREFIX_BASE64
    elif path.startswith(PREFIX):
        rest = path[len(PREFIX) :]
        job_base64 = False
        prefix = PREFIX
    else:
        raise _Refused(404, "not_found", "404 page not found")
    if not rest:
        location = prefix.rstrip("/")
        raise _Refused(307, "bad_path", "", headers=(("location", location),))
    job, slash, tail = rest.partition("/")
    labels_string = "/" + tail if slash else ""
    if job_base64:
        try:
            job = _decode_base64(job)
        except ValueError as exc:
            raise _Refused(
                400, "bad_path", f"invalid base64 encoding in job name {_go_quote(job)}: {exc}"
            ) from None
    labels: dict[str, str] = {}
    if len(labels_string) > 1:
        components = labels_string[1:].split("/")
        if len(components) % 2:
            raise _Refused(
                400, "bad_path", f"odd number of components in label string {_go_quote(labels_string)}"
            )
        for index in range(0, len(components), 2):
            name, value = components[index], components[index + 1]
            trimmed = name[: -len(BASE64_SUFFIX)] if name.endswith(BASE64_SUFFIX) else name
            if not _valid_label_name(trimmed) or trimmed.startswith("__"):
                raise _Refused(400, "bad_path", f"improper label name {_go_quote(trimmed)}")
            if name == trimmed:
                labels[name] = value
                continue
            try:
                labels[trimmed] = _decode_base64(value)
            except ValueError as exc:
                raise _Refused(
                    400,
                    "bad_path",
                    f"invalid base64 encoding for label {trimmed}={_go_quote(value)}: {exc}",
                ) from None
    if job == "":
        raise _Refused(400, "bad_path", "job name is required")
    labels["job"] = job
    return labels


def _is_delimited_protobuf(content_type: str | None) -> bool:
    """True exactly when upstream would read the body as delimited protobuf."""
    if not content_type:
        return False
    return _is_delimited_protobuf_type(content_type)


@functools.lru_cache(maxsize=64)
def _is_delimited_protobuf_type(content_type: str) -> bool:
    try:
        media_type, params = parse_media_type(content_type)
    except MediaTypeError:
        return False
    return (
        media_type.lower() == PROTOBUF_MEDIA
        and params.get("encoding") == "delimited"
        and params.get("proto") == PROTOBUF_PROTO
    )


# --- formatting for upstream's JSON API -------------------------------------------------------------------


def go_time(seconds: float) -> str:
    """Go's JSON encoding of a ``time.Time`` in UTC (RFC 3339 with trimmed nanoseconds)."""
    nanos = round(seconds * 1e9)
    whole, fraction = divmod(nanos, 1_000_000_000)
    text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole))
    if fraction:
        text += "." + f"{fraction:09d}".rstrip("0")
    return text + "Z"


def _encodable_metrics(family: MetricFamily) -> list[dict[str, Any]]:
    """Upstream's ``makeEncodableMetrics``: one entry per client_golang metric."""
    kind = family.type
    if kind in (MetricType.SUMMARY, MetricType.HISTOGRAM, MetricType.GAUGEHISTOGRAM):
        special = "quantile" if kind is MetricType.SUMMARY else "le"
        entries: dict[Labels, dict[str, Any]] = {}
        for sample in family.samples:
            labels = tuple(pair for pair in sample.labels if pair[0] != special)
            entry = entries.get(labels)
            if entry is None:
                entry = {"labels": dict(labels)}
                if kind is MetricType.SUMMARY:
                    entry["quantiles"] = {}
                else:
                    entry["buckets"] = {}
                entry["count"] = "0"
                entry["sum"] = "0"
                entries[labels] = entry
            if sample.name.endswith("_sum"):
                entry["sum"] = go_float(sample.value)
            elif sample.name.endswith("_count"):
                entry["count"] = go_float(sample.value)
            else:
                bound = sample.label(special)
                if bound is None:
                    continue
                try:
                    key = go_float(float(bound))
                except ValueError:
                    key = bound
                entry["quantiles" if kind is MetricType.SUMMARY else "buckets"][key] = go_float(sample.value)
        return list(entries.values())
    return [{"labels": dict(sample.labels), "value": go_float(sample.value)} for sample in family.samples]


# --- the receiver ---------------------------------------------------------------------------------------


class PushgatewayReceiver:
    """The Pushgateway API on the caller's event loop, with group age, persistence and limits.

    ::

        receiver = PushgatewayReceiver(sink=push_log, persistence_file="push.db", stale_after=300)
        await receiver.start()                     # restores what the file holds
        server = HttpServer(receiver.routes(), port=9091)
        await server.start()
        ...
        await server.stop()
        await receiver.stop()                      # commits what is queued, closes the file
    """

    def __init__(
        self,
        *,
        sink: ObservationSink | None = None,
        persistence_file: str | None = None,
        limits: PushLimits = PushLimits(),
        stale_after: float | None = None,
        expire_after: float | None = None,
        clock: Callable[[], float] = time.time,
        check_consistency: bool = True,
        admin_api: bool = True,
        fsync: bool = False,
        semantics: bool = False,
        reserved: Mapping[str, MetricType] | None = None,
        flags: Mapping[str, str] | None = None,
    ) -> None:
        """
        ``check_consistency=False`` is upstream's ``--push.disable-consistency-check``
        (pushes answered 202 without the cross-group check). ``admin_api``
        serves ``PUT /api/v1/admin/wipe``. ``fsync`` makes each commit survive
        power loss, not only the death of the process. ``semantics`` adds
        promscope's format-independent value checks (histogram buckets,
        counters…) to each push's diagnostics, as warnings that never refuse a
        push upstream would take. ``reserved`` names more families that must
        not be pushed (every ``promscope_*`` name already is). ``flags`` is
        shown by ``/api/v1/status`` beside promscope's own settings.
        """
        if stale_after is not None and stale_after <= 0:
            raise ValueError("stale_after must be positive")
        if expire_after is not None and expire_after <= 0:
            raise ValueError("expire_after must be positive")
        self.sink = sink
        self.persistence_file = persistence_file
        self.limits = limits
        self.stale_after = stale_after
        self.expire_after = expire_after
        self.clock = clock
        self.check_consistency = check_consistency
        self.admin_api = admin_api
        self.fsync = fsync
        self.semantics = semantics
        self.extra_flags = dict(flags or {})
        self.store = GroupStore(reserved)
        self.stats = PushgatewayStats()
        self.started_at = clock()
        self._persist: PushStore | None = None
        self._body_id = 0
        self._senders: OrderedDict[str, _Sender] = OrderedDict()
        self._expiry: asyncio.Task[None] | None = None
        self._label_caches: dict[GroupKey, tuple[dict[str, Labels], SimpleTextMemo]] = {}
        self._label_cached = 0
        self._parse_limits = ParseLimits(
            max_label_name_length=limits.max_label_name_length,
            max_label_value_length=limits.max_label_value_length,
            max_samples=limits.max_series_per_push,
        )

    # --- lifecycle ---------------------------------------------------------------------------------

    async def start(self) -> None:
        """Restore from the persistence file (if any) and start expiring groups (if asked)."""
        if self.persistence_file and self._persist is None:
            persist = PushStore(self.persistence_file, fsync=self.fsync)
            snapshot = await persist.open()
            self._persist = persist
            self._body_id = snapshot.max_body_id
            self._restore(snapshot)
        if self.expire_after is not None and self._expiry is None:
            self._expiry = asyncio.get_running_loop().create_task(self._expire_loop())
        self.started_at = self.clock()

    async def stop(self) -> None:
        """Stop expiring, commit what is queued and close the persistence file."""
        if self._expiry is not None:
            self._expiry.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._expiry
            self._expiry = None
        if self._persist is not None:
            await self._persist.close()
            self._persist = None

    async def __aenter__(self) -> PushgatewayReceiver:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    def _restore(self, snapshot: Any) -> None:
        parsed: dict[int, dict[str, MetricFamily]] = {}
        for restored in snapshot.groups:
            grouping = dict(restored.labels)
            key = group_key(grouping)
            stored: list[StoredFamily] = []
            for name, body_id, stamp in restored.families:
                families = parsed.get(body_id)
                if families is None:
                    body = snapshot.bodies.get(body_id)
                    families = {}
                    if body is not None:
                        fmt = Format.PROTOBUF if _is_delimited_protobuf(body.content_type) else Format.TEXT
                        result = parse(body.body, fmt, semantics=False, limits=self._parse_limits)
                        families = {f.name: f for f in result.families}
                    parsed[body_id] = families
                family = families.get(name)
                if family is None:
                    self.stats.restore_problems += 1
                    log.warning("restore: family %s of group %s is missing from its body", name, restored.key)
                    continue
                prepared = prepare_push([family], grouping, keep_empty=True)
                item = prepared.families.get(name)
                if item is not None:
                    stored.append(StoredFamily(item.family, item.identities, stamp, body_id))
            self.store.restore_group(
                key,
                push_time=restored.push_time,
                failure_time=restored.failure_time,
                created=restored.created,
                last_sender=restored.last_sender,
                last_user_agent=restored.last_user_agent,
                families=stored,
            )

    # --- routes ------------------------------------------------------------------------------------

    def routes(self) -> list[Route]:
        """The routes to serve (give them to an :class:`~promscope.receive.http.HttpServer`)."""
        methods = frozenset({"PUT", "POST", "DELETE"})
        routes = [
            Route(methods, PREFIX, self.handle_push, prefix=True),
            Route(methods, PREFIX_BASE64, self.handle_push, prefix=True),
            Route(frozenset({"GET"}), "/api/v1/metrics", self.handle_api_metrics),
            Route(frozenset({"GET"}), "/api/v1/status", self.handle_api_status),
            Route(frozenset({"GET"}), "/-/healthy", self.handle_healthy),
            Route(frozenset({"GET"}), "/-/ready", self.handle_ready),
        ]
        if self.admin_api:
            routes.append(Route(frozenset({"PUT"}), "/api/v1/admin/wipe", self.handle_wipe))
        return routes

    # --- pushes ------------------------------------------------------------------------------------

    async def handle_push(self, request: Request) -> Response:
        """PUT, POST or DELETE of one group."""
        method = request.method
        grouping: dict[str, str] | None = None
        try:
            grouping = self._grouping(request)
            if method == "DELETE":
                return await self._delete(request, grouping)
            return await self._push(request, grouping, replace=method == "PUT")
        except _Refused as refused:
            source = format_group(grouping.items()) if grouping else request.path
            text = refused.text
            if refused.diagnostics:
                text = _problem_text(text, refused.diagnostics)
            if refused.status >= 400:
                self.stats.refuse(refused.reason)
            body = (text + "\n") if text else ""
            response = Response(
                refused.status,
                body.encode("utf-8"),
                (
                    ("content-type", "text/plain; charset=utf-8"),
                    ("x-content-type-options", "nosniff"),
                    *refused.headers,
                ),
            )
            self._observe(
                request,
                response.status,
                Outcome.REJECTED,
                source=source,
                grouping=grouping,
                diagnostics=refused.diagnostics,
                message=refused.text.splitlines()[0] if refused.text else f"redirected ({refused.status})",
            )
            return response

    def _grouping(self, request: Request) -> dict[str, str]:
        raw = request.target.partition("?")[0]
        try:
            path = unquote(raw, errors="strict") if "%" in raw else raw
        except UnicodeDecodeError:
            raise _Refused(
                400, "bad_path", "the URL path is not valid UTF-8 after percent-decoding"
            ) from None
        cleaned = _clean_path(path)
        if cleaned != path:
            location = quote(cleaned, safe="/@=:+,;$!*'()~")
            if request.query:
                location += "?" + request.query
            raise _Refused(301, "bad_path", "", headers=(("location", location),))
        grouping = split_grouping_path(path)
        limits = self.limits
        problems = [
            Diagnostic(
                "PG-023",
                Severity.ERROR,
                0,
                0,
                f"grouping label {name}: "
                + (
                    f"name of {len(name)} characters exceeds {limits.max_label_name_length}"
                    if len(name) > limits.max_label_name_length
                    else f"value of {len(value)} characters exceeds {limits.max_label_value_length}"
                ),
            )
            for name, value in grouping.items()
            if len(name) > limits.max_label_name_length or len(value) > limits.max_label_value_length
        ]
        if problems:
            raise _Refused(400, "label_length", "grouping key exceeds the label length limits", problems)
        return grouping

    async def _delete(self, request: Request, grouping: dict[str, str]) -> Response:
        key = group_key(grouping)
        changes = self.store.delete(key)
        if changes is not None and self._persist is not None:
            await self._commit(DeleteGroup(_key_text(key)))
        self._observe(
            request,
            202,
            Outcome.ACCEPTED,
            source=format_group(key),
            grouping=grouping,
            changes=changes or Changes(),
            message=f"DELETE {format_group(key)}" + ("" if changes else " (no such group)"),
        )
        return Response(202)

    async def _push(self, request: Request, grouping: dict[str, str], *, replace: bool) -> Response:
        limits = self.limits
        body = request.body
        if type(body) is not bytes:  # the contract says bytes; a bytearray would break parse()
            body = bytes(body)
        if len(body) > limits.max_body_bytes:
            raise _Refused(
                413,
                "too_large",
                f"request body of {len(body)} bytes exceeds the limit of {limits.max_body_bytes} bytes",
            )
        protobuf = _is_delimited_protobuf(request.content_type)
        fmt = Format.PROTOBUF if protobuf else Format.TEXT
        simple = None
        if not protobuf and not self.semantics:
            cache, memo = self._labels_cache(grouping)
            cached = len(cache) + memo.size
            simple = prepare_simple_text(body, grouping, cache, memo)
            self._count_cached(len(cache) + memo.size - cached)
        if (
            simple is not None
            and simple.series <= limits.max_series_per_push
            and self._short_labels(body, simple)
        ):
            return await self._store(request, grouping, simple, (), fmt, replace=replace)
        result = parse(body, fmt, semantics=self.semantics, limits=self._parse_limits)
        refusing: list[Diagnostic] = []
        limit_reason: str | None = None
        for diagnostic in result.diagnostics:
            if diagnostic.severity is not Severity.ERROR or diagnostic.code in _NOT_REFUSING:
                continue
            if diagnostic.code.startswith("SEM-"):
                continue  # promscope's own value rules: shown, never a reason to refuse
            reason = _LIMIT_CODES.get(diagnostic.code)
            if reason is not None and limit_reason is None:
                limit_reason = reason
            refusing.append(diagnostic)
        if refusing:
            if limit_reason is not None:
                status = 413 if limit_reason == "series_per_push" else 400
                raise _Refused(
                    status, limit_reason, _limit_headline(limit_reason, limits), result.diagnostics
                )
            first = refusing[0]
            where = f"line {first.line}" if fmt is Format.TEXT else f"message {first.line}"
            headline = (
                f"text format parsing error in {where}: {first.message}"
                if fmt is Format.TEXT
                else f"protobuf parsing error in {where}: {first.message}"
            )
            raise _Refused(400, "parse_error", headline, result.diagnostics)

        prepared = prepare_push(result.families, grouping, keep_empty=protobuf)
        return await self._store(request, grouping, prepared, result.diagnostics, fmt, replace=replace)

    def _labels_cache(self, grouping: dict[str, str]) -> tuple[dict[str, Labels], SimpleTextMemo]:
        """The fast path's label cache and body memo for one grouping key (see :meth:`_count_cached`)."""
        key = group_key(grouping)
        cache = self._label_caches.get(key)
        if cache is None:
            cache = self._label_caches[key] = ({}, SimpleTextMemo())
        return cache

    def _count_cached(self, grown: int) -> None:
        """Keep every label cache together under ``_LABEL_CACHE_TOTAL`` entries."""
        self._label_cached += grown
        if self._label_cached > _LABEL_CACHE_TOTAL:
            self._label_caches.clear()
            self._label_cached = 0

    def _short_labels(self, body: bytes, prepared: PreparedPush) -> bool:
        """True when no label of the push is over the length limits (the full parser reports which)."""
        limits = self.limits
        name_limit, value_limit = limits.max_label_name_length, limits.max_label_value_length
        if len(body) <= min(name_limit, value_limit) or max(map(len, body.split(b"\n"))) <= min(
            name_limit, value_limit
        ):
            return True  # no label can be longer than the longest line
        for item in prepared.families.values():
            for sample in item.family.samples:
                for name, value in sample.labels:
                    if len(name) > name_limit or len(value) > value_limit:
                        return False
        return True

    async def _store(
        self,
        request: Request,
        grouping: dict[str, str],
        prepared: PreparedPush,
        parsed: tuple[Diagnostic, ...],
        fmt: Format,
        *,
        replace: bool,
    ) -> Response:
        """Limits, the consistency check, then store and persist: the part every parsed push shares."""
        limits = self.limits
        body = request.body if type(request.body) is bytes else bytes(request.body)
        key = group_key(grouping)
        source = format_group(key)
        store = self.store
        group = store.get(key)
        if prepared.series > limits.max_series_per_push:  # the parser stops at the limit; belt and braces
            raise _Refused(413, "series_per_push", _limit_headline("series_per_push", limits))
        if group is None and len(store) >= limits.max_groups:
            raise _Refused(
                413,
                "groups",
                f"the Pushgateway holds {len(store)} groups, the limit; delete groups or raise the limit",
                [Diagnostic("PG-022", Severity.ERROR, 0, 0, f"group limit {limits.max_groups} reached")],
            )
        replaced = 0
        if group is not None:
            if replace:
                replaced = group.series
            else:
                replaced = sum(
                    len(group.families[name].family.samples)
                    for name in prepared.families
                    if name in group.families
                )
        after = store.total_series - replaced + prepared.series
        if after > limits.max_total_series:
            raise _Refused(
                413,
                "total_series",
                f"the push would take the Pushgateway to {after} series, over the limit of "
                f"{limits.max_total_series}; delete groups or raise the limit",
                [
                    Diagnostic(
                        "PG-021",
                        Severity.ERROR,
                        0,
                        0,
                        f"total series limit {limits.max_total_series} would be exceeded ({after})",
                    )
                ],
            )
        if self._persist is not None and self._persist.full:
            raise _Refused(503, "persistence_busy", "the persistence file is behind; retry shortly")

        now = self.clock()
        problems = list(prepared.errors)
        warnings = list(prepared.warnings)
        if self.check_consistency:
            for diagnostic in store.check(key, prepared, replace=replace):
                (problems if diagnostic.severity is Severity.ERROR else warnings).append(diagnostic)
        elif not self.check_consistency:
            problems = [d for d in problems if d.code == "PG-001"]
        diagnostics = tuple(sorted((*parsed, *problems, *warnings), key=Diagnostic.sort_key))
        if problems:
            return await self._refuse_check(request, grouping, key, prepared, problems, diagnostics, now)

        persist = self._persist
        body_id = self._next_body_id() if persist is not None and prepared.families else 0
        before = _bodies_of(group) if persist is not None and group is not None else set()
        changes = store.apply(
            key,
            prepared,
            replace=replace,
            now=now,
            sender=request.peer,
            user_agent=request.user_agent,
            body_id=body_id,
        )
        if persist is not None:
            applied = store.get(key)
            assert applied is not None
            await self._commit(
                _group_write(
                    applied,
                    held=True,
                    body=body if body_id else None,
                    body_id=body_id,
                    content_type=request.content_type,
                    drop=tuple(before - _bodies_of(applied)),
                )
            )
        status = 200 if self.check_consistency else 202
        self._observe(
            request,
            status,
            Outcome.ACCEPTED,
            source=source,
            grouping=grouping,
            families=tuple(item.family for item in prepared.families.values()),
            diagnostics=diagnostics,
            changes=changes,
            series=prepared.series,
            message=f"{request.method} {source}: " + _describe(changes),
            fmt=fmt,
        )
        return Response(status)

    async def _refuse_check(
        self,
        request: Request,
        grouping: dict[str, str],
        key: GroupKey,
        prepared: PreparedPush,
        problems: list[Diagnostic],
        diagnostics: tuple[Diagnostic, ...],
        now: float,
    ) -> Response:
        """Upstream's answer to a push that fails the check: 400, and the group's failure time is set."""
        store = self.store
        # A failure-only group for a key whose twin is held would break /metrics (upstream does just
        # that: its every scrape fails afterwards); the refusal is shown, the group is not created.
        if store.get(key) is not None or (len(store) < self.limits.max_groups and store.twin(key) is None):
            group = store.record_failure(key, now=now, sender=request.peer, user_agent=request.user_agent)
            if self._persist is not None:
                await self._commit(_group_write(group, held=False))
        reason = "timestamps" if all(d.code == "PG-001" for d in problems) else "inconsistent"
        source = format_group(key)
        ordered = sorted(problems, key=Diagnostic.sort_key)
        first = ordered[0]
        headline = (
            f"{CHECK_FAILED}: pushed metrics must not have timestamps"
            if prepared.timestamps  # upstream looks at timestamps first
            else f"{CHECK_FAILED}: {first.message}"
        )
        # Without the consistency check upstream still records the failure, but answers 202.
        status = 400 if self.check_consistency else 202
        self.stats.refuse(reason)
        self._observe(
            request,
            status,
            Outcome.REJECTED,
            source=source,
            grouping=grouping,
            families=tuple(item.family for item in prepared.families.values()),
            diagnostics=diagnostics,
            series=prepared.series,
            message=headline,
        )
        if status == 202:
            return Response(202)
        return Response.text(400, _problem_text(headline, ordered) + "\n")

    def _next_body_id(self) -> int:
        self._body_id += 1
        return self._body_id

    async def _commit(self, write: WriteGroup | DeleteGroup | Wipe) -> None:
        persist = self._persist
        if persist is None:
            return
        try:
            await persist.commit(write)
        except PersistenceError as exc:
            self.stats.persistence_errors += 1
            raise _Refused(
                500,
                "persistence_error",
                f"the change is held in memory but could not be written to the persistence file: {exc}",
            ) from None

    # --- observations ------------------------------------------------------------------------------

    def _observe(
        self,
        request: Request,
        status: int,
        outcome: Outcome,
        *,
        source: str,
        grouping: Mapping[str, str] | None,
        families: tuple[MetricFamily, ...] = (),
        diagnostics: Iterable[Diagnostic] = (),
        changes: Changes | None = None,
        series: int = 0,
        message: str = "",
        fmt: Format | None = None,
    ) -> None:
        now = self.clock()
        method = request.method
        self.stats.count(method, outcome)
        host = _host(request.peer)
        sender = self._senders.get(host)
        if sender is None:
            sender = _Sender(host, now)
            self._senders[host] = sender
            while len(self._senders) > self.limits.max_senders:
                self._senders.popitem(last=False)
                self.stats.forgotten_senders += 1
        else:
            self._senders.move_to_end(host)
        sender.last_seen = now
        sender.requests += 1
        sender.last_user_agent = request.user_agent
        sender.last_source = source
        if outcome is Outcome.ACCEPTED:
            sender.accepted += 1
            sender.last_accepted = now
        else:
            sender.rejected += 1
            sender.last_error = message
        sink = self.sink
        if sink is None:
            return
        grouping_key: Labels = ()
        if grouping:
            grouping_key = (
                ("job", grouping["job"]),
                *sorted((k, v) for k, v in grouping.items() if k != "job"),
            )
        extra: dict[str, str] = {}
        if fmt is not None:
            extra["format"] = fmt.value
        observation = Observation(
            kind=ObservationKind.PUSHGATEWAY,
            source=source,
            time=request.received_at,
            outcome=outcome,
            transport=request.transport(status, now, extra, grouping_key=grouping_key),
            families=families,
            diagnostics=tuple(diagnostics),
            message=message,
            changes=changes,
            series=series,
        )
        try:
            asyncio.get_running_loop().call_soon(self._deliver, sink, observation)
        except RuntimeError:  # no running loop (a synchronous caller): deliver now
            self._deliver(sink, observation)

    def _deliver(self, sink: ObservationSink, observation: Observation) -> None:
        try:
            sink(observation)
        except Exception:
            self.stats.sink_errors += 1
            log.exception("pushgateway: the observation sink failed")

    def on_refused(self, refused: RefusedRequest) -> None:
        """Record a push the HTTP layer refused by itself (too large, timeout, auth…) against its sender.

        Give this to the server as ``on_refused``; requests for other routes are ignored.
        """
        path = refused.path or ""
        if not (path.startswith(PREFIX) or path.startswith(PREFIX_BASE64)):
            return
        self.stats.refuse(refused.reason)
        grouping: dict[str, str] | None
        try:
            grouping = split_grouping_path(path)
        except _Refused:
            grouping = None
        request = Request(
            method=refused.method or "",
            target=refused.target or path,
            path=path,
            query="",
            headers=refused.headers,
            body=b"",
            wire_bytes=refused.wire_bytes,
            content_encoding=refused.content_encoding,
            peer=refused.peer,
            scheme=refused.scheme,
            received_at=refused.time,
        )
        self._observe(
            request,
            refused.status or 0,
            Outcome.REJECTED if refused.status else Outcome.FAILED,
            source=format_group(grouping.items()) if grouping else path,
            grouping=grouping,
            message=refused.message,
        )

    # --- group age ---------------------------------------------------------------------------------

    def _age(self, group: Group, now: float) -> float:
        last = group.push_time if group.push_time > 0 else group.created
        return max(0.0, now - last)

    def _stale(self, group: Group, now: float) -> bool:
        return self.stale_after is not None and self._age(group, now) > self.stale_after

    async def expire(self) -> list[str]:
        """Delete the groups not pushed to for ``expire_after`` seconds now; returns their sources.

        Each expired group becomes an Observation (outcome ``accepted``, its
        :class:`~promscope.observation.Changes` listing what went, the message
        ``expired after …``; see the module docstring), so a tail shows it.
        """
        expire_after = self.expire_after
        if expire_after is None:
            return []
        now = self.clock()
        doomed = [(g.key, g.push_time, self._age(g, now), g.last_sender) for g in self.store]
        removed: list[str] = []
        for key, push_time, age, last_sender in doomed:
            if age <= expire_after:
                continue
            changes = self.store.delete(key)
            if changes is None:
                continue
            source = format_group(key)
            removed.append(source)
            self.stats.expired_groups += 1
            if self._persist is not None:
                try:
                    await self._persist.commit(DeleteGroup(_key_text(key)))
                except PersistenceError:
                    self.stats.persistence_errors += 1
            self._observe_expiry(key, changes, now, age, pushed=push_time > 0, last_sender=last_sender)
        if removed:
            log.info("pushgateway: expired %d group(s): %s", len(removed), ", ".join(removed[:10]))
        return removed

    def _observe_expiry(
        self,
        key: GroupKey,
        changes: Changes,
        now: float,
        age: float,
        *,
        pushed: bool,
        last_sender: str | None,
    ) -> None:
        """The Observation of a group deleted by ``expire_after``: no sender, only what was removed."""
        sink = self.sink
        if sink is None:
            return
        assert self.expire_after is not None
        grouping = dict(key)
        grouping_key: Labels = (
            ("job", grouping.get("job", "")),
            *sorted((k, v) for k, v in grouping.items() if k != "job"),
        )
        since = (
            f"last push {duration_text(age)} ago"
            if pushed
            else f"no successful push since it appeared {duration_text(age)} ago"
        )
        extra = {"expired": "true", "expire_after": duration_text(self.expire_after)}
        if last_sender:
            extra["last_sender"] = last_sender
        observation = Observation(
            kind=ObservationKind.PUSHGATEWAY,
            source=format_group(key),
            time=now,
            outcome=Outcome.ACCEPTED,
            transport=Transport(protocol=EXPIRY_PROTOCOL, grouping_key=grouping_key, extra=extra),
            message=f"expired after {duration_text(self.expire_after)} ({since})",
            changes=changes,
        )
        try:
            asyncio.get_running_loop().call_soon(self._deliver, sink, observation)
        except RuntimeError:  # no running loop (a synchronous caller): deliver now
            self._deliver(sink, observation)

    async def _expire_loop(self) -> None:
        assert self.expire_after is not None
        interval = min(max(self.expire_after / 10, 0.05), 30.0)
        while True:
            await asyncio.sleep(interval)
            try:
                await self.expire()
            except Exception:  # never let expiry kill the receiver
                log.exception("pushgateway: expiry failed")

    # --- introspection -----------------------------------------------------------------------------

    def groups(self) -> list[GroupInfo]:
        """Every group with its age and stale flag, by grouping key."""
        now = self.clock()
        return [
            GroupInfo(
                labels=g.labels,
                source=g.source,
                push_time=g.push_time,
                failure_time=g.failure_time,
                last_push_successful=g.last_push_successful,
                created=g.created,
                last_sender=g.last_sender,
                last_user_agent=g.last_user_agent,
                families=len(g.families),
                series=g.series,
                age=self._age(g, now),
                stale=self._stale(g, now),
            )
            for g in sorted(self.store, key=lambda g: g.key)
        ]

    def senders(self) -> list[SenderInfo]:
        """Every remembered sender, most recently seen first."""
        return [
            SenderInfo(
                host=s.host,
                first_seen=s.first_seen,
                last_seen=s.last_seen,
                last_accepted=s.last_accepted,
                requests=s.requests,
                accepted=s.accepted,
                rejected=s.rejected,
                last_user_agent=s.last_user_agent,
                last_source=s.last_source,
                last_error=s.last_error,
            )
            for s in reversed(self._senders.values())
        ]

    @property
    def series(self) -> int:
        return self.store.total_series

    # --- exposition --------------------------------------------------------------------------------

    def exposition_families(self) -> list[MetricFamily]:
        """What ``GET /metrics`` re-exposes: every group merged per family, as upstream does.

        Pushed families (merged across groups, by name), ``push_time_seconds``
        and ``push_failure_time_seconds`` per group, then the receiver's own
        ``promscope_pushgateway_*`` metrics.
        """
        families = list(self.store.merged_families())
        families.extend(self.store.push_time_families())
        families.extend(self._own_families())
        return families

    def _own_families(self) -> list[MetricFamily]:
        now = self.clock()
        out = [
            MetricFamily(
                "promscope_pushgateway_groups",
                MetricType.GAUGE,
                "Groups the Pushgateway holds.",
                samples=(Sample("promscope_pushgateway_groups", (), float(len(self.store))),),
            ),
            MetricFamily(
                "promscope_pushgateway_series",
                MetricType.GAUGE,
                "Samples the Pushgateway holds across all groups.",
                samples=(Sample("promscope_pushgateway_series", (), float(self.store.total_series)),),
            ),
        ]
        if self.stale_after is not None:
            out.append(
                MetricFamily(
                    "promscope_pushgateway_group_stale",
                    MetricType.GAUGE,
                    f"1 when the group was not pushed to for more than {self.stale_after:g}s.",
                    samples=tuple(
                        Sample(
                            "promscope_pushgateway_group_stale", g.key, 1.0 if self._stale(g, now) else 0.0
                        )
                        for g in sorted(self.store, key=lambda g: g.key)
                    ),
                )
            )
        requests = tuple(
            Sample("promscope_pushgateway_requests_total", (("method", m), ("outcome", o)), float(n))
            for (m, o), n in sorted(self.stats.requests.items())
        )
        out.append(
            MetricFamily(
                "promscope_pushgateway_requests_total",
                MetricType.COUNTER,
                "Push requests (PUT, POST, DELETE) by outcome.",
                samples=requests,
            )
        )
        refused = tuple(
            Sample("promscope_pushgateway_refused_total", (("reason", r),), float(n))
            for r, n in sorted(self.stats.refused.items())
        )
        out.append(
            MetricFamily(
                "promscope_pushgateway_refused_total",
                MetricType.COUNTER,
                "Push requests refused, by reason.",
                samples=refused,
            )
        )
        out.append(
            MetricFamily(
                "promscope_pushgateway_expired_groups_total",
                MetricType.COUNTER,
                "Groups deleted because they were not pushed to for expire_after.",
                samples=(
                    Sample(
                        "promscope_pushgateway_expired_groups_total", (), float(self.stats.expired_groups)
                    ),
                ),
            )
        )
        persist = self._persist
        if persist is not None:
            out.append(
                MetricFamily(
                    "promscope_pushgateway_persistence_writes_total",
                    MetricType.COUNTER,
                    "Changes committed to the persistence file.",
                    samples=(
                        Sample(
                            "promscope_pushgateway_persistence_writes_total", (), float(persist.stats.writes)
                        ),
                    ),
                )
            )
            out.append(
                MetricFamily(
                    "promscope_pushgateway_persistence_errors_total",
                    MetricType.COUNTER,
                    "Changes that could not be committed to the persistence file.",
                    samples=(
                        Sample(
                            "promscope_pushgateway_persistence_errors_total", (), float(persist.stats.errors)
                        ),
                    ),
                )
            )
        return out

    # --- the rest of the API -----------------------------------------------------------------------

    async def handle_api_metrics(self, request: Request) -> Response:
        """``GET /api/v1/metrics``: upstream's JSON, one object per group."""
        now = self.clock()
        data: list[dict[str, Any]] = []
        for group in sorted(self.store, key=lambda g: g.key):
            entry: dict[str, Any] = {
                "labels": dict(group.labels),
                "last_push_successful": group.last_push_successful,
            }
            for name, stored in group.families.items():
                family = stored.family
                item: dict[str, Any] = {"time_stamp": go_time(stored.time), "type": _GO_TYPE[family.type]}
                if family.help:
                    item["help"] = family.help
                item["metrics"] = _encodable_metrics(family)
                entry[name] = item
            exposed = dict(group.exposed_labels())
            stamp = go_time(max(group.push_time, group.failure_time, group.created))
            entry[PUSH_FAILURE_TIME] = {
                "time_stamp": stamp,
                "type": "GAUGE",
                "help": PUSH_FAILURE_TIME_HELP,
                "metrics": [{"labels": exposed, "value": go_float(group.failure_time)}],
            }
            entry[PUSH_TIME] = {
                "time_stamp": stamp,
                "type": "GAUGE",
                "help": PUSH_TIME_HELP,
                "metrics": [{"labels": exposed, "value": go_float(group.push_time)}],
            }
            entry["@promscope"] = {
                "source": group.source,
                "created": group.created,
                "push_time": group.push_time,
                "failure_time": group.failure_time,
                "age_seconds": self._age(group, now),
                "stale": self._stale(group, now),
                "last_sender": group.last_sender,
                "last_user_agent": group.last_user_agent,
                "series": group.series,
            }
            data.append(entry)
        return _json(200, {"status": "success", "data": data})

    async def handle_api_status(self, request: Request) -> Response:
        """``GET /api/v1/status``: flags, start time and build information, in upstream's shape."""
        from promscope import __version__

        flags = {
            "persistence.file": self.persistence_file or "",
            "push.disable-consistency-check": "false" if self.check_consistency else "true",
            "web.enable-admin-api": "true" if self.admin_api else "false",
            "promscope.stale-after": "" if self.stale_after is None else f"{self.stale_after:g}s",
            "promscope.expire-after": "" if self.expire_after is None else f"{self.expire_after:g}s",
            "promscope.fsync": "true" if self.fsync else "false",
            "promscope.max-body-size": str(self.limits.max_body_bytes),
            "promscope.max-series-per-push": str(self.limits.max_series_per_push),
            "promscope.max-total-series": str(self.limits.max_total_series),
            "promscope.max-groups": str(self.limits.max_groups),
            **self.extra_flags,
        }
        build = {
            "branch": "",
            "buildDate": "",
            "buildUser": "",
            "goVersion": "",
            "pythonVersion": sys.version.split()[0],
            "revision": "",
            "version": __version__,
            "program": "promscope",
        }
        data = {"flags": flags, "start_time": go_time(self.started_at), "build_information": build}
        return _json(200, {"status": "success", "data": data})

    def _health(self) -> str | None:
        persist = self._persist
        if persist is not None:
            if persist.full:
                return "persistence queue is full"
            if not persist.running:
                return "persistence file is closed"
        return None

    async def handle_healthy(self, request: Request) -> Response:
        problem = self._health()
        return Response.text(200, "OK") if problem is None else Response.text(500, problem + "\n")

    async def handle_ready(self, request: Request) -> Response:
        return await self.handle_healthy(request)

    async def handle_wipe(self, request: Request) -> Response:
        """``PUT /api/v1/admin/wipe``: delete every group (202, as upstream)."""
        count = self.store.wipe()
        status = 202
        message = f"wiped {count} group(s)"
        try:
            await self._commit(Wipe())
        except _Refused as refused:
            status, message = refused.status, refused.text
        self._observe(
            request,
            status,
            Outcome.ACCEPTED if status == 202 else Outcome.FAILED,
            source="*",
            grouping=None,
            changes=Changes(series_removed=0),
            message=message,
        )
        return Response(status) if status == 202 else Response.text(status, message + "\n")


# --- helpers --------------------------------------------------------------------------------------------


def _json(status: int, data: object) -> Response:
    body = json.dumps(data, ensure_ascii=False, separators=(",", ":"), default=str).encode("utf-8")
    return Response(status, body, (("content-type", "application/json"), *_CORS))


def duration_text(seconds: float) -> str:
    """Seconds the way Prometheus writes a duration: ``90`` -> ``"1m30s"``, ``0.25`` -> ``"250ms"``."""
    millis = round(max(0.0, seconds) * 1000)
    if millis == 0:
        return "0s"
    out = []
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000), ("ms", 1)):
        if millis >= size:
            out.append(f"{millis // size}{unit}")
            millis %= size
    return "".join(out)


def _key_text(key: GroupKey) -> str:
    return json.dumps(key, ensure_ascii=False, separators=(",", ":"))


def _bodies_of(group: Group) -> set[int]:
    return {stored.body_id for stored in group.families.values()}


def _group_write(
    group: Group,
    *,
    held: bool,
    body: bytes | None = None,
    body_id: int = 0,
    content_type: str | None = None,
    drop: tuple[int, ...] = (),
) -> WriteGroup:
    """The write that makes the file hold ``group`` as memory does (its families only if ``held``)."""
    families = (
        tuple((name, stored.body_id, stored.time) for name, stored in group.families.items())
        if held
        else None
    )
    return WriteGroup(
        key=_key_text(group.key),
        labels=group.labels,
        push_time=group.push_time,
        failure_time=group.failure_time,
        created=group.created,
        last_sender=group.last_sender,
        last_user_agent=group.last_user_agent,
        families=families,
        body_id=body_id,
        body=body,
        content_type=content_type,
        drop_bodies=drop,
    )


def _host(peer: str) -> str:
    if peer.startswith("["):
        return peer.partition("]")[0] + "]"
    host, colon, port = peer.rpartition(":")
    return host if colon and port.isdigit() else peer


def _limit_headline(reason: str, limits: PushLimits) -> str:
    if reason == "series_per_push":
        return f"the push carries more than {limits.max_series_per_push} series (the per-push limit)"
    if reason == "label_name_length":
        return f"a label name is longer than {limits.max_label_name_length} characters (the limit)"
    if reason == "label_value_length":
        return f"a label value is longer than {limits.max_label_value_length} characters (the limit)"
    return "a label exceeds the label length limits"


def _problem_text(headline: str, diagnostics: Iterable[Diagnostic]) -> str:
    """The 400 body: upstream's first line, then every problem with its line and column."""
    lines = [headline]
    errors = [d for d in diagnostics if d.severity is Severity.ERROR]
    if errors:
        lines.append(f"{len(errors)} error{'s' if len(errors) != 1 else ''}:")
        for d in errors:
            where = f"line {d.line}, column {d.column}" if d.line else "request"
            lines.append(f"  {where}: {d.message} [{d.code}]")
    return "\n".join(lines)


def _describe(changes: Changes) -> str:
    parts: list[str] = []
    if changes.families_added:
        parts.append(f"+{len(changes.families_added)} families")
    if changes.families_removed:
        parts.append(f"-{len(changes.families_removed)} families")
    if changes.families_changed:
        parts.append(f"~{len(changes.families_changed)} families")
    parts.append(f"series +{changes.series_added} -{changes.series_removed} ~{changes.series_changed}")
    return ", ".join(parts)
