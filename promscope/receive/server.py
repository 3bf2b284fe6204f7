"""ReceiverServer: run several push receivers at once, with one shared ``/metrics``.

Receivers come in two shapes, and the server takes both:

* **HTTP receivers** (Pushgateway API, remote_write, OTLP) have
  ``routes() -> list[Route]``. The server runs one :class:`HttpServer` per
  address; several receivers may share an address (the Pushgateway API,
  remote_write and OTLP on one port, if that is what the user asks for).
  An HTTP receiver that also has ``async start()``/``stop()`` (the
  Pushgateway's persistence) is started before its address is bound and
  stopped after the listener has closed.
* **Socket receivers** (StatsD) have ``async start()`` and ``async stop()``
  and bind their own sockets.

Every HTTP address also answers, ahead of the receivers' own routes:

``GET /metrics``
    The push-to-pull bridge: every ``exposition_families()`` provider (any
    receiver that has the method, plus those added with
    :meth:`ReceiverServer.add_exposition`) merged by family name, followed by
    promscope's own ``promscope_*`` metrics. Prometheus text 0.0.4 by default,
    text 1.0.0 or OpenMetrics 1.0 when the ``Accept`` header prefers them,
    gzip when ``Accept-Encoding`` allows it.
``GET /-/healthy``, ``GET /-/ready``
    ``200 OK`` (ready once every listener is up), as Prometheus components answer.

Observations from every receiver go to one :class:`FanOut` (``server.sink``),
which hands each to the sinks given (a :class:`~promscope.receive.log.PushLog`,
a printer, the store) and counts sinks that fail. Requests the HTTP layer
refuses (size, ratio, auth, timeouts, unknown paths) become observations too,
unless the receiver that owns the route takes them itself through an
``on_refused(RefusedRequest)`` method.

Own metrics (names are stable):

=========================================  =======  ==========================================
name                                       type     labels
=========================================  =======  ==========================================
``promscope_build_info``                   gauge    ``version``
``promscope_http_requests_total``          counter  ``listener``, ``code``
``promscope_http_refused_total``           counter  ``listener``, ``reason``
``promscope_http_handler_errors_total``    counter  ``listener``
``promscope_http_connections_open``        gauge    ``listener``
``promscope_observations_total``           counter  ``kind``, ``outcome``
``promscope_observation_sink_errors_total`` counter  --
``promscope_push_log_events``              gauge    --
``promscope_push_log_dropped_total``       counter  ``what`` (events, senders, sources)
``promscope_exposition_conflicts_total``   counter  --  (same name, different type: first kept)
=========================================  =======  ==========================================
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from promscope.errors import ConfigError
from promscope.model import MetricFamily, MetricType, Sample
from promscope.observation import Observation, ObservationKind, ObservationSink, Outcome, Transport
from promscope.receive.http import (
    Auth,
    HttpLimits,
    HttpServer,
    RefusedRequest,
    Request,
    Response,
    Route,
    ServerTLS,
)
from promscope.receive.log import PushLog

__all__ = [
    "ExpositionProvider",
    "FanOut",
    "HttpReceiver",
    "ReceiverServer",
    "SocketReceiver",
    "choose_exposition",
    "format_address",
    "merge_families",
    "parse_address",
]

log = logging.getLogger("promscope.receive.server")

CONTENT_TYPE_TEXT = "text/plain; version=0.0.4; charset=utf-8"
CONTENT_TYPE_TEXT_1 = "text/plain; version=1.0.0; charset=utf-8"
CONTENT_TYPE_OPENMETRICS = "application/openmetrics-text; version=1.0.0; charset=utf-8"

_RENDER_IN_THREAD = 20_000
"""Series beyond which /metrics is rendered in a worker thread, so the loop keeps serving."""
_GZIP_MIN = 1024


@runtime_checkable
class HttpReceiver(Protocol):
    def routes(self) -> list[Route]: ...


@runtime_checkable
class SocketReceiver(Protocol):
    async def start(self) -> None: ...

    async def stop(self) -> None: ...


@runtime_checkable
class ExpositionProvider(Protocol):
    def exposition_families(self) -> list[MetricFamily]: ...


# --- addresses -------------------------------------------------------------------------------------


def parse_address(
    text: str, *, default_host: str = "127.0.0.1", default_port: int | None = None
) -> tuple[str, int]:
    """``"127.0.0.1:9091"``, ``":9091"``, ``"9091"``, ``"[::1]:9091"``, ``"localhost"`` -> ``(host, port)``.

    A bare host takes ``default_port``; a bare port or ``:port`` takes
    ``default_host``. Raises :class:`ConfigError` with the reason otherwise.
    """
    value = text.strip()
    host: str
    port_text: str
    if not value:
        raise ConfigError(f"empty address; use HOST:PORT, e.g. {default_host}:{default_port or 9091}")
    if value.isdigit():
        host, port_text = default_host, value
    elif value.startswith("["):
        end = value.find("]")
        if end < 0:
            raise ConfigError(f"bad address {text!r}: missing ']' after the IPv6 host")
        host = value[1:end]
        rest = value[end + 1 :]
        if rest and not rest.startswith(":"):
            raise ConfigError(f"bad address {text!r}: expected ':PORT' after ']'")
        port_text = rest[1:]
    elif value.count(":") == 1:
        host, _, port_text = value.partition(":")
        host = host or default_host
    elif ":" in value:
        host, port_text = value, ""  # a bare IPv6 address
    else:
        host, port_text = value, ""
    if not port_text:
        if default_port is None:
            raise ConfigError(f"bad address {text!r}: no port; use HOST:PORT")
        return host, default_port
    if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ConfigError(f"bad address {text!r}: port must be a number from 0 to 65535")
    return host, int(port_text)


def format_address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


# --- the observation fan-out ------------------------------------------------------------------------


class FanOut:
    """An :data:`ObservationSink` that hands each observation to every sink it holds.

    A sink that raises is counted in :attr:`errors` and logged; the others
    still get the observation.
    """

    def __init__(self, sinks: Iterable[ObservationSink] = ()) -> None:
        self.sinks: list[ObservationSink] = list(sinks)
        self.errors = 0
        self.counts: dict[tuple[ObservationKind, Outcome], int] = {}

    def add(self, sink: ObservationSink) -> None:
        self.sinks.append(sink)

    def remove(self, sink: ObservationSink) -> None:
        with contextlib.suppress(ValueError):
            self.sinks.remove(sink)

    def __call__(self, observation: Observation) -> None:
        key = (observation.kind, observation.outcome)
        self.counts[key] = self.counts.get(key, 0) + 1
        for sink in self.sinks:
            try:
                sink(observation)
            except Exception:
                self.errors += 1
                log.exception("observation sink %r failed", sink)


# --- /metrics ---------------------------------------------------------------------------------------


def choose_exposition(accept: str | None) -> tuple[str, str]:
    """``(format, content type)`` for an ``Accept`` header: ``text`` 0.0.4 unless OpenMetrics or text 1.0.0
    is preferred (by q-value, then order), as a Prometheus client library decides."""
    best: tuple[float, int, str] = (0.0, 0, "text")
    text_version = "0.0.4"
    if accept:
        for position, part in enumerate(accept.split(",")):
            media, *params = (piece.strip() for piece in part.split(";"))
            media = media.lower()
            values: dict[str, str] = {}
            for param in params:
                name, _, value = param.partition("=")
                values[name.strip().lower()] = value.strip().strip('"')
            try:
                quality = float(values.get("q", "1"))
            except ValueError:
                quality = 0.0
            if quality <= 0:
                continue
            if media == "application/openmetrics-text":
                choice = "openmetrics"
            elif media == "text/plain":
                choice = "text"
            else:
                continue
            candidate = (quality, -position, choice)
            if candidate[:2] > best[:2] or best[0] == 0.0:
                best = candidate
                if choice == "text":
                    text_version = "1.0.0" if values.get("version") == "1.0.0" else "0.0.4"
    if best[2] == "openmetrics":
        return "openmetrics", CONTENT_TYPE_OPENMETRICS
    if text_version == "1.0.0":
        return "text-1.0.0", CONTENT_TYPE_TEXT_1
    return "text", CONTENT_TYPE_TEXT


def _accepts_gzip(accept_encoding: str | None) -> bool:
    if not accept_encoding:
        return False
    for part in accept_encoding.split(","):
        coding, *params = (piece.strip() for piece in part.split(";"))
        if coding.lower() not in ("gzip", "x-gzip", "*"):
            continue
        quality = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if quality > 0:
            return True
    return False


def merge_families(groups: Iterable[Iterable[MetricFamily]]) -> tuple[list[MetricFamily], int]:
    """Merge families from several providers by name: samples of one name join one family.

    A family whose name is already there with another type is left out
    (the first provider wins) and counted; the count is returned beside the families.
    """
    merged: dict[str, MetricFamily] = {}
    extra: dict[str, list[Sample]] = {}
    conflicts = 0
    for families in groups:
        for family in families:
            present = merged.get(family.name)
            if present is None:
                merged[family.name] = family
            elif present.type is not family.type:
                conflicts += 1
            else:
                extra.setdefault(family.name, []).extend(family.samples)
    out: list[MetricFamily] = []
    for name, family in merged.items():
        more = extra.get(name)
        if more:
            seen = {sample.key() for sample in family.samples}
            samples = list(family.samples)
            for sample in more:
                key = sample.key()
                if key not in seen:
                    seen.add(key)
                    samples.append(sample)
            family = MetricFamily(
                family.name, family.type, family.help, family.unit, tuple(samples), family.line
            )
        out.append(family)
    return out, conflicts


def _render(families: list[MetricFamily], fmt: str) -> bytes:
    from promscope.exposition.render import render_openmetrics, render_text

    if fmt == "openmetrics":
        return render_openmetrics(families).encode("utf-8")
    return render_text(families, version="1.0.0" if fmt == "text-1.0.0" else "0.0.4").encode("utf-8")


# --- the server -------------------------------------------------------------------------------------


@dataclass
class _Address:
    host: str
    port: int
    names: list[str] = field(default_factory=list)
    receivers: list[tuple[Any, ObservationKind | None]] = field(default_factory=list)
    server: HttpServer | None = None
    owners: dict[int, tuple[Any, ObservationKind | None]] = field(default_factory=dict)
    """id(route) -> the receiver that gave it (routes are kept alive by the server)."""

    @property
    def label(self) -> str:
        return format_address(self.host, self.port)


_KIND_BY_NAME = {
    "pushgateway": ObservationKind.PUSHGATEWAY,
    "statsd": ObservationKind.STATSD,
    "remote_write": ObservationKind.REMOTE_WRITE,
    "remote-write": ObservationKind.REMOTE_WRITE,
    "otlp": ObservationKind.OTLP,
}


class ReceiverServer:
    """Runs HTTP and socket receivers together; one :class:`HttpServer` per address, one ``/metrics``.

    ::

        push_log = PushLog()
        server = ReceiverServer(sinks=[push_log, printer])
        server.add_http(PushgatewayReceiver(sink=server.sink), "127.0.0.1:9091", name="pushgateway")
        server.add_http(RemoteWriteReceiver(sink=server.sink), "127.0.0.1:9091", name="remote_write")
        server.add_socket(StatsdReceiver(sink=server.sink, ...), name="statsd")
        await server.start()          # ListenError (address named) if any listener cannot bind
        ...
        await server.stop()

    ``limits``, ``auth`` and ``tls`` apply to every HTTP listener.
    """

    def __init__(
        self,
        *,
        sinks: Iterable[ObservationSink] = (),
        limits: HttpLimits | None = None,
        auth: Auth | None = None,
        tls: ServerTLS | None = None,
        clock: Callable[[], float] = time.time,
        self_metrics: bool = True,
    ) -> None:
        self.sink = FanOut(sinks)
        self.limits = limits or HttpLimits()
        self.auth = auth
        self.tls = tls
        self.clock = clock
        self.self_metrics = self_metrics
        self._addresses: dict[tuple[str, int], _Address] = {}
        self._sockets: list[tuple[str, SocketReceiver]] = []
        self._started: list[Any] = []
        self._expositions: list[ExpositionProvider] = []
        self._ready = False
        self.exposition_conflicts = 0
        self.refused_observations = 0

    # assembling

    def add_http(
        self,
        receiver: HttpReceiver,
        address: str | tuple[str, int],
        *,
        name: str | None = None,
        kind: ObservationKind | None = None,
    ) -> None:
        """Serve ``receiver.routes()`` on ``address`` (shared with other receivers given the same one)."""
        host, port = parse_address(address) if isinstance(address, str) else address
        slot = self._addresses.get((host, port))
        if slot is None:
            slot = self._addresses[(host, port)] = _Address(host, port)
        label = name or type(receiver).__name__
        slot.names.append(label)
        slot.receivers.append((receiver, kind or _guess_kind(receiver, label)))
        self._maybe_exposition(receiver)

    def add_socket(self, receiver: SocketReceiver, *, name: str | None = None) -> None:
        """Start and stop ``receiver`` with the server (StatsD and other non-HTTP listeners)."""
        self._sockets.append((name or type(receiver).__name__, receiver))
        self._maybe_exposition(receiver)

    def add_exposition(self, provider: ExpositionProvider) -> None:
        """Add ``provider.exposition_families()`` to ``/metrics``."""
        if not any(existing is provider for existing in self._expositions):
            self._expositions.append(provider)

    def serve_metrics(self, address: str | tuple[str, int]) -> None:
        """Answer ``/metrics`` (and health) on ``address`` even if no receiver listens there."""
        host, port = parse_address(address) if isinstance(address, str) else address
        if (host, port) not in self._addresses:
            self._addresses[(host, port)] = _Address(host, port, names=["metrics"])

    def _maybe_exposition(self, receiver: object) -> None:
        if callable(getattr(receiver, "exposition_families", None)):
            self.add_exposition(receiver)  # type: ignore[arg-type]

    # lifecycle

    async def start(self) -> None:
        """Bind every HTTP address, then start the socket receivers.

        If anything fails to start, what did start is stopped again and the
        error (a :class:`~promscope.errors.ListenError` naming the address) is raised.
        """
        try:
            for slot in self._addresses.values():
                for receiver, _ in slot.receivers:
                    # HTTP receivers may hold state to restore first (Pushgateway persistence).
                    if _has_lifecycle(receiver) and not any(r is receiver for r in self._started):
                        await receiver.start()
                        self._started.append(receiver)
            for slot in self._addresses.values():
                slot.server = HttpServer(
                    self._routes(slot),
                    host=slot.host,
                    port=slot.port,
                    limits=self.limits,
                    auth=self.auth,
                    tls=self.tls,
                    clock=self.clock,
                    name="+".join(slot.names) or "http",
                    on_refused=self._refused_handler(slot),
                )
                await slot.server.start()
                # An ephemeral port (0) is now known: keep the label stable.
                slot.port = slot.server.port
            for _, receiver in self._sockets:
                await receiver.start()
                self._started.append(receiver)
        except BaseException:
            await self.stop()
            raise
        self._ready = True

    async def stop(self) -> None:
        """Stop the socket receivers, every HTTP listener, then the HTTP receivers (safe to call twice)."""
        self._ready = False
        sockets = [receiver for _, receiver in self._sockets]
        for receiver in reversed([r for r in self._started if any(r is s for s in sockets)]):
            await self._stop_one(receiver)
        for slot in self._addresses.values():
            if slot.server is not None:
                await slot.server.stop()
        for receiver in reversed([r for r in self._started if not any(r is s for s in sockets)]):
            await self._stop_one(receiver)
        self._started.clear()

    async def _stop_one(self, receiver: Any) -> None:
        try:
            await receiver.stop()
        except Exception:
            log.exception("stopping %r failed", receiver)

    async def __aenter__(self) -> ReceiverServer:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    @property
    def ready(self) -> bool:
        return self._ready

    @property
    def servers(self) -> list[HttpServer]:
        return [slot.server for slot in self._addresses.values() if slot.server is not None]

    def urls(self) -> dict[str, str]:
        """Receiver name -> base URL of its listener (once started)."""
        out: dict[str, str] = {}
        for slot in self._addresses.values():
            if slot.server is None:
                continue
            for name in slot.names:
                out[name] = slot.server.url
        return out

    # routes

    def _routes(self, slot: _Address) -> list[Route]:
        builtin = [
            Route(frozenset({"GET"}), "/metrics", self._metrics_handler),
            Route(frozenset({"GET"}), "/-/healthy", self._healthy),
            Route(frozenset({"GET"}), "/-/ready", self._ready_handler),
        ]
        routes = list(builtin)
        slot.owners.clear()
        for receiver, kind in slot.receivers:
            for route in receiver.routes():
                slot.owners[id(route)] = (receiver, kind)
                routes.append(route)
        return routes

    async def _healthy(self, request: Request) -> Response:
        return Response.text(200, "OK")

    async def _ready_handler(self, request: Request) -> Response:
        if self._ready:
            return Response.text(200, "OK")
        return Response.text(503, "Service Unavailable")

    async def _metrics_handler(self, request: Request) -> Response:
        fmt, content_type = choose_exposition(request.header("accept"))
        families = self.metrics_families()
        series = sum(len(family.samples) for family in families)
        compress = _accepts_gzip(request.header("accept-encoding"))
        if series > _RENDER_IN_THREAD:
            body = await asyncio.to_thread(_render_and_compress, families, fmt, compress)
        else:
            body = _render_and_compress(families, fmt, compress)
        headers: tuple[tuple[str, str], ...] = (("content-type", content_type),)
        if compress and body[:2] == b"\x1f\x8b":
            headers += (("content-encoding", "gzip"), ("vary", "Accept-Encoding"))
        return Response(200, body, headers)

    def metrics_families(self) -> list[MetricFamily]:
        """What ``/metrics`` serves: every provider's families merged, then promscope's own."""
        groups: list[list[MetricFamily]] = []
        for provider in self._expositions:
            try:
                groups.append(list(provider.exposition_families()))
            except Exception:
                log.exception("exposition_families() of %r failed", provider)
        if self.self_metrics:
            groups.append(self.own_families())
        families, conflicts = merge_families(groups)
        self.exposition_conflicts += conflicts
        return families

    def own_families(self) -> list[MetricFamily]:
        """promscope's own metrics (see the module docstring)."""
        from promscope import __version__

        def family(name: str, kind: MetricType, help_text: str, samples: Sequence[Sample]) -> MetricFamily:
            return MetricFamily(name, kind, help_text, None, tuple(samples))

        counter, gauge = MetricType.COUNTER, MetricType.GAUGE
        requests: list[Sample] = []
        refused: list[Sample] = []
        errors: list[Sample] = []
        open_connections: list[Sample] = []
        for slot in self._addresses.values():
            server = slot.server
            if server is None:
                continue
            listener = ("listener", slot.label)
            stats = server.stats
            for code, count in sorted(stats.responses.items()):
                requests.append(
                    Sample("promscope_http_requests_total", (listener, ("code", str(code))), float(count))
                )
            for reason, count in sorted(stats.refused.items()):
                refused.append(
                    Sample("promscope_http_refused_total", (listener, ("reason", reason)), float(count))
                )
            errors.append(
                Sample("promscope_http_handler_errors_total", (listener,), float(stats.handler_errors))
            )
            open_connections.append(
                Sample("promscope_http_connections_open", (listener,), float(stats.connections_open))
            )
        observed = [
            Sample(
                "promscope_observations_total",
                (("kind", kind.value), ("outcome", outcome.value)),
                float(count),
            )
            for (kind, outcome), count in sorted(self.sink.counts.items())
        ]
        out = [
            family(
                "promscope_build_info",
                gauge,
                "promscope's version.",
                [Sample("promscope_build_info", (("version", __version__),), 1.0)],
            ),
            family(
                "promscope_http_requests_total", counter, "HTTP responses sent, by status code.", requests
            ),
            family(
                "promscope_http_refused_total",
                counter,
                "Requests refused by the HTTP layer (size, ratio, timeouts, auth, paths), by reason.",
                refused,
            ),
            family(
                "promscope_http_handler_errors_total", counter, "Handlers that raised (answered 500).", errors
            ),
            family("promscope_http_connections_open", gauge, "Open HTTP connections.", open_connections),
            family(
                "promscope_observations_total",
                counter,
                "Observations received, by kind and outcome.",
                observed,
            ),
            family(
                "promscope_observation_sink_errors_total",
                counter,
                "Observation sinks that raised.",
                [Sample("promscope_observation_sink_errors_total", (), float(self.sink.errors))],
            ),
            family(
                "promscope_exposition_conflicts_total",
                counter,
                "Families left out of /metrics because another provider has the name with another type.",
                [Sample("promscope_exposition_conflicts_total", (), float(self.exposition_conflicts))],
            ),
        ]
        push_logs = [sink for sink in self.sink.sinks if isinstance(sink, PushLog)]
        if push_logs:
            push_log = push_logs[0]
            out.append(
                family(
                    "promscope_push_log_events",
                    gauge,
                    "Observations held in the push log.",
                    [Sample("promscope_push_log_events", (), float(len(push_log)))],
                )
            )
            drops = push_log.dropped
            out.append(
                family(
                    "promscope_push_log_dropped_total",
                    counter,
                    "What the bounded push log let go of, by what.",
                    [
                        Sample("promscope_push_log_dropped_total", (("what", what),), float(count))
                        for what, count in (
                            ("events", drops.events),
                            ("senders", drops.senders),
                            ("sources", drops.sources),
                        )
                    ],
                )
            )
        return [f for f in out if f.samples]

    # refusals

    def _refused_handler(self, slot: _Address) -> Callable[[RefusedRequest], None]:
        def on_refused(refused: RefusedRequest) -> None:
            owner = slot.owners.get(id(refused.route)) if refused.route is not None else None
            if owner is None and slot.receivers:
                owner = slot.receivers[0]
            if owner is None:
                return  # a /metrics-only listener: counted by the HTTP layer, nothing to record
            receiver, kind = owner
            callback = getattr(receiver, "on_refused", None)
            if callable(callback):
                callback(refused)
                return
            if kind is None:
                return
            self.refused_observations += 1
            self.sink(refused_observation(refused, kind))

        return on_refused


def _has_lifecycle(receiver: object) -> bool:
    return asyncio.iscoroutinefunction(getattr(receiver, "start", None)) and asyncio.iscoroutinefunction(
        getattr(receiver, "stop", None)
    )


def _guess_kind(receiver: object, name: str) -> ObservationKind | None:
    kind = getattr(receiver, "kind", None)
    if isinstance(kind, ObservationKind):
        return kind
    lowered = name.lower()
    for key, value in _KIND_BY_NAME.items():
        if key in lowered:
            return value
    return None


def refused_observation(refused: RefusedRequest, kind: ObservationKind) -> Observation:
    """The Observation for a request the HTTP layer refused, recorded against its sender."""
    status = refused.status
    return Observation(
        kind=kind,
        source=refused.path or refused.peer,
        time=refused.time,
        outcome=Outcome.REJECTED if status is not None else Outcome.FAILED,
        transport=Transport(
            protocol=refused.scheme,
            sender=refused.peer,
            user_agent=refused.user_agent,
            method=refused.method,
            path=refused.path,
            status=status,
            content_type=refused.header("content-type"),
            content_encoding=refused.content_encoding,
            wire_bytes=refused.wire_bytes,
            extra={"refused": refused.reason},
        ),
        message=f"{status} {refused.message}" if status is not None else refused.message,
    )


def _render_and_compress(families: list[MetricFamily], fmt: str, compress: bool) -> bytes:
    body = _render(families, fmt)
    if compress and len(body) >= _GZIP_MIN:
        return gzip.compress(body, compresslevel=1)
    return body
