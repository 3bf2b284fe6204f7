"""One scrape of one target, the way a Prometheus 3 server makes it.

:func:`fetch` sends the request (Accept, Accept-Encoding, User-Agent,
``X-Prometheus-Scrape-Timeout-Seconds``, auth, extra headers), streams the
body under the size limit, decodes gzip itself so the limit applies to
*decompressed* bytes (and stops a body that expands like a decompression
bomb), decides the format from the Content-Type as Prometheus 3 does, parses,
and predicts what Prometheus would record. It never raises for anything the
target does: every failure is a :class:`~promscope.scrape.result.ScrapeError`
on the result. It raises :class:`~promscope.errors.ConfigError` only for the
caller's own configuration (an unreadable token, CA or certificate file).

The whole scrape (connect, headers, body) runs under one deadline, the
target's timeout, as in Prometheus; a body that trickles in forever times
out. Timings come from httpx's ``trace`` request extension, read with the
injected clock. Bodies over ``thread_threshold`` bytes are parsed in a
worker thread so an event loop driving a UI stays responsive.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import time
import zlib
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx

from promscope.exposition import ParseCache, ParseLimits, parse
from promscope.exposition.negotiate import Negotiated, format_from_content_type, sniff
from promscope.model import Format, ParseResult, Severity
from promscope.scrape.result import ErrorKind, ScrapeError, ScrapeResult, Timings
from promscope.scrape.target import Target

__all__ = ["Clock", "Exchange", "fetch", "make_client", "receive", "scrape_sync"]

Clock = Callable[[], float]
"""Monotonic seconds (``time.perf_counter`` unless a test injects one)."""

_RATIO_FLOOR = 1 << 20
"""Decompressed bytes below which the expansion ratio is not judged."""
_UNLIMITED_STEP = 1 << 20


def make_client(target: Target) -> httpx.AsyncClient:
    """An :class:`httpx.AsyncClient` set up for ``target``'s TLS and redirect settings.

    Environment proxies are ignored, as in Prometheus (``proxy_from_environment`` is off by default).
    Raises ConfigError when a TLS file cannot be loaded.
    """
    verify: ssl.SSLContext | bool = target.tls.ssl_context() if target.is_https else True
    return httpx.AsyncClient(
        verify=verify,
        timeout=httpx.Timeout(target.timeout),
        follow_redirects=target.follow_redirects,
        trust_env=False,
    )


@dataclass(slots=True)
class _Trace:
    """Timestamps of httpcore's connection events, from the injected clock."""

    clock: Clock
    events: dict[str, list[float]] = field(default_factory=dict)

    async def __call__(self, name: str, info: dict[str, Any]) -> None:
        self.events.setdefault(name, []).append(self.clock())

    def span(self, prefix: str) -> float | None:
        started = self.events.get(f"{prefix}.started")
        complete = self.events.get(f"{prefix}.complete")
        if not started or not complete:
            return None
        return max(0.0, complete[0] - started[0])

    def last(self, suffix: str) -> float | None:
        found = [stamps[-1] for name, stamps in self.events.items() if name.endswith(suffix)]
        return max(found) if found else None


@dataclass(slots=True)
class _Body:
    """A body read under a byte limit, decoding gzip incrementally."""

    limit: int
    ratio: float
    gzip: bool
    chunks: list[bytes] = field(default_factory=list)
    size: int = 0
    wire: int = 0
    error: ScrapeError | None = None
    limit_hit: bool = False
    _decoder: Any = None

    def __post_init__(self) -> None:
        if self.gzip:
            self._decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)

    @property
    def done(self) -> bool:
        return self.error is not None

    def feed(self, chunk: bytes) -> None:
        self.wire += len(chunk)
        if not self.gzip:
            self._keep(chunk)
            return
        data = chunk
        while data and not self.done:
            try:
                out = self._decoder.decompress(data, self._room())
            except zlib.error as exc:
                self._fail_decode(f"the gzip body is corrupt ({exc})")
                return
            self._keep(out)
            if self.done:
                return
            consumed = self.wire - len(self._decoder.unconsumed_tail)
            if self.size > _RATIO_FLOOR and self.size > self.ratio * consumed:
                self.error = ScrapeError(
                    ErrorKind.BODY_TOO_LARGE,
                    f"the gzip body expands more than {self.ratio:g}x ({consumed} bytes became "
                    f"{self.size}); stopped as a likely decompression bomb",
                    "scrape it with --no-compression, or raise the ratio only if the target is trusted",
                )
                return
            if self._decoder.unconsumed_tail:
                data = self._decoder.unconsumed_tail
            elif self._decoder.eof and self._decoder.unused_data:
                # Concatenated gzip members, which Go's gzip reader (and so Prometheus) accepts.
                data = self._decoder.unused_data
                self._decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)
            else:
                data = b""

    def finish(self) -> None:
        if not self.gzip or self.done:
            return
        if self.wire == 0:
            return  # an empty body labelled gzip: nothing to decode
        try:
            tail = self._decoder.flush()
        except zlib.error as exc:
            self._fail_decode(f"the gzip body is corrupt ({exc})")
            return
        self._keep(tail)
        if not self.done and not self._decoder.eof:
            self._fail_decode("the gzip body ends before the end of the compressed stream")

    def _room(self) -> int:
        if self.limit <= 0:
            return _UNLIMITED_STEP
        return max(1, self.limit - self.size)

    def _keep(self, data: bytes) -> None:
        if not data:
            return
        if self.limit > 0 and self.size + len(data) >= self.limit:
            # Prometheus reads at most `limit` bytes and fails when it got that many.
            data = data[: self.limit - self.size]
            self.limit_hit = True
            self.error = ScrapeError(
                ErrorKind.BODY_TOO_LARGE,
                f"the body reached the size limit of {_human_bytes(self.limit)}"
                + (" after decompression" if self.gzip else ""),
                "raise --body-size-limit (Prometheus: body_size_limit) if this size is expected",
            )
        self.chunks.append(data)
        self.size += len(data)

    def _fail_decode(self, message: str) -> None:
        self.error = ScrapeError(
            ErrorKind.DECODE, message, "Prometheus fails a scrape whose gzip body it cannot decode"
        )

    def data(self) -> bytes:
        return b"".join(self.chunks)


async def _raw_chunks(response: httpx.Response) -> AsyncIterator[bytes]:
    """The body as it came over the wire (still compressed).

    Reads the response's stream itself rather than ``aiter_raw()``, which
    refuses a body that an in-memory transport (``MockTransport``) already
    holds; transport errors arrive as httpx exceptions either way.
    """
    stream = response.stream
    if isinstance(stream, httpx.AsyncByteStream):
        async for chunk in stream:
            if chunk:
                yield chunk
    else:  # pragma: no cover - an async client always has an async stream
        raise TypeError("fetch needs an httpx.AsyncClient")


def _human_bytes(count: int) -> str:
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{int(value)} {unit}" if value == int(value) else f"{value:.1f} {unit}"
        value /= 1024
    return f"{count} B"  # pragma: no cover


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and every exception behind it: causes, contexts and exception-group members."""
    seen: set[int] = set()
    stack = [exc]
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        if isinstance(current, BaseExceptionGroup):
            stack.extend(current.exceptions)
        if current.__cause__ is not None:
            stack.append(current.__cause__)
        if current.__context__ is not None:
            stack.append(current.__context__)


def _host(url: str) -> str:
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError):
        return url
    port = parsed.port
    return f"{parsed.host}:{port}" if port else parsed.host


def classify(exc: BaseException, target: Target) -> ScrapeError:
    """Map an httpx/httpcore/OS exception to an :class:`ErrorKind` with a message and a hint."""
    host = _host(target.url)
    if isinstance(exc, TimeoutError | httpx.TimeoutException):
        return ScrapeError(
            ErrorKind.TIMEOUT,
            f"no complete response from {host} within {target.timeout:g}s",
            "raise --timeout, or check that the exporter is not stuck",
        )
    if isinstance(exc, httpx.UnsupportedProtocol | httpx.InvalidURL):
        return ScrapeError(ErrorKind.INVALID_URL, f"cannot request {target.url}: {exc}", "check the URL")
    if isinstance(exc, httpx.DecodingError):
        return ScrapeError(ErrorKind.DECODE, f"the body cannot be decoded: {exc}")
    if isinstance(exc, httpx.TooManyRedirects):
        return ScrapeError(ErrorKind.PROTOCOL, "too many redirects", "scrape the final URL directly")
    for cause in _chain(exc):
        if isinstance(cause, ssl.SSLCertVerificationError):
            # A hand-built SSLCertVerificationError (tests, some transports) lacks verify_message.
            reason = getattr(cause, "verify_message", None) or str(cause)
            return ScrapeError(
                ErrorKind.TLS,
                f"TLS certificate of {host} not trusted: {reason}",
                "pass --ca-file with the CA that signed it, --server-name if the name differs, "
                "or --insecure to skip verification",
            )
        if isinstance(cause, ssl.SSLError):
            return ScrapeError(
                ErrorKind.TLS,
                f"TLS handshake with {host} failed: {getattr(cause, 'reason', None) or cause}",
                "check that the target speaks https on this port, and the client certificate if it needs one",
            )
    for cause in _chain(exc):
        if isinstance(cause, socket.gaierror):
            return ScrapeError(
                ErrorKind.DNS,
                f"cannot resolve {httpx.URL(target.url).host}: {cause.strerror or cause}",
                "check the host name",
            )
        if isinstance(cause, ConnectionRefusedError):
            return ScrapeError(
                ErrorKind.REFUSED,
                f"connection to {host} refused",
                "is the exporter running and listening on that port?",
            )
    if isinstance(exc, httpx.ConnectError):
        return ScrapeError(
            ErrorKind.CONNECT, f"cannot connect to {host}: {_reason(exc)}", "check the address"
        )
    if isinstance(exc, httpx.TransportError | OSError):
        return ScrapeError(
            ErrorKind.PROTOCOL,
            f"the connection to {host} failed: {_reason(exc)}",
            "the target closed the connection or sent broken HTTP",
        )
    return ScrapeError(ErrorKind.PROTOCOL, f"request to {host} failed: {_reason(exc)}")


def _reason(exc: BaseException) -> str:
    for cause in _chain(exc):
        if isinstance(cause, OSError) and cause.strerror:
            return cause.strerror.lower()
    text = str(exc)
    return text if text else type(exc).__name__


def _status_error(response: httpx.Response) -> ScrapeError:
    status = response.status_code
    phrase = response.reason_phrase or ""
    message = f"server returned HTTP status {status} {phrase}".rstrip()
    hints = {
        401: "the target wants credentials: --basic-auth or --bearer-token",
        403: "the credentials are not allowed to read metrics",
        404: "check the metrics path (often /metrics)",
    }
    hint = hints.get(status, "")
    if 300 <= status < 400:
        location = response.headers.get("location")
        hint = f"redirect to {location}; use --follow-redirects" if location else "use --follow-redirects"
    elif not hint and status != 200 and 200 <= status < 300:
        hint = "Prometheus accepts only 200"
    elif not hint and status >= 500:
        hint = "the exporter failed while collecting; check its logs"
    return ScrapeError(ErrorKind.HTTP_STATUS, message, hint)


def _decide_format(negotiated: Negotiated, target: Target, body: bytes) -> tuple[Format, ScrapeError | None]:
    """The format to parse with, and the Content-Type error Prometheus 3 would raise (if any).

    A usable Content-Type decides; else the target's fallback protocol, as
    Prometheus uses ``fallback_scrape_protocol``; else the body is sniffed so
    its diagnostics can be shown, and the scrape is failed as Prometheus 3
    fails it.
    """
    if negotiated.format is not None:
        return negotiated.format, None
    if target.fallback_protocol is not None:
        return target.fallback_protocol.wire_format, None
    fmt = sniff(body)
    shown = negotiated.content_type if negotiated.content_type else "none"
    error = ScrapeError(
        ErrorKind.CONTENT_TYPE,
        f"Content-Type {shown!r}: {negotiated.note}",
        "make the exporter send a Prometheus Content-Type, or set fallback_scrape_protocol "
        "(--fallback-protocol)",
    )
    return fmt, error


def _distinct_series(result: ParseResult) -> int:
    return len({sample.key() for family in result.families for sample in family.samples})


_FATAL_PREFIXES = ("PS-", "OM-", "PB-")
"""Errors from the parsers themselves: Prometheus's parser stops on these and fails the scrape.

Format-independent ``SEM-`` errors break the spec (a duplicate series, buckets
out of order) but Prometheus does not check them while ingesting: it drops a
duplicate sample and carries on, so they do not change ``up``.
"""


def _predict_up(error: ScrapeError | None, parsed: ParseResult | None) -> tuple[int, str, ScrapeError | None]:
    if error is not None:
        return 0, error.message, error
    if parsed is None:  # pragma: no cover - a response with no error always has a parse
        return 0, "nothing was parsed", None
    errors = parsed.errors()
    fatal = [d for d in errors if d.code.startswith(_FATAL_PREFIXES)]
    if fatal:
        first = fatal[0]
        where = f"line {first.line}" + (f", column {first.column}" if first.column else "")
        more = f" (and {len(fatal) - 1} more)" if len(fatal) > 1 else ""
        message = f"Prometheus rejects the exposition: {first.code} at {where}: {first.message}{more}"
        return 0, message, ScrapeError(ErrorKind.PARSE, message, "fix the exporter's output")
    samples = parsed.sample_count
    reason = f"Prometheus 3 would ingest {samples} sample{'s' if samples != 1 else ''}"
    notes: list[str] = []
    if errors:
        codes = ", ".join(sorted({d.code for d in errors}))
        notes.append(f"{len(errors)} spec error{'s' if len(errors) != 1 else ''} it does not check ({codes})")
    warnings = sum(1 for d in parsed.diagnostics if d.severity is Severity.WARNING)
    if warnings:
        notes.append(f"{warnings} warning{'s' if warnings != 1 else ''}")
    return 1, reason + (", with " + " and ".join(notes) if notes else ""), None


async def fetch(
    target: Target | str,
    *,
    client: httpx.AsyncClient | None = None,
    clock: Clock = time.perf_counter,
    limits: ParseLimits | None = None,
    thread_threshold: int = 1 << 20,
    semantics: bool = True,
    count_series: bool = True,
    cache: ParseCache | None = None,
) -> ScrapeResult:
    """Scrape ``target`` once and return everything about it.

    ``semantics=False`` skips the format-independent value rules (a live loop that
    checks them once per change, not every scrape); ``count_series=False`` leaves
    ``scrape_series_added`` at 0 for a caller that counts series itself across scrapes.
    ``cache`` is the target's :class:`~promscope.exposition.ParseCache` when the caller
    scrapes it again and again (the live loop): a body shaped like the previous one is
    then read from it, with the same result.

    ``client`` lets a caller share a connection pool or inject an
    ``httpx.MockTransport``; its own TLS settings then apply instead of the
    target's (see :func:`make_client`). Raises
    :class:`~promscope.errors.ConfigError` only for unreadable local files
    named by the target; everything the target does ends up on the result.

    It is :func:`receive` (the HTTP exchange) then :meth:`Exchange.result` (the parse),
    in a worker thread for bodies over ``thread_threshold`` bytes.
    """
    exchange = await receive(target, client=client, clock=clock)
    options: dict[str, Any] = {
        "limits": limits,
        "semantics": semantics,
        "count_series": count_series,
        "cache": cache,
    }
    if exchange.body_size > thread_threshold:
        return await asyncio.to_thread(exchange.result, clock, **options)
    return exchange.result(clock, **options)


@dataclass(slots=True)
class Exchange:
    """The HTTP half of a scrape: the response and its (decoded) body, not parsed yet.

    :meth:`result` parses it and makes the :class:`ScrapeResult`; it does no I/O, so a
    caller can run it and what follows (the live loop: the Observation and the sink) as
    one synchronous step.
    """

    target: Target
    response: httpx.Response | None
    body: _Body
    error: ScrapeError | None
    connect: float | None
    tls: float | None
    first_byte: float | None
    total: float

    @property
    def body_size(self) -> int:
        return self.body.size

    def result(
        self,
        clock: Clock = time.perf_counter,
        *,
        limits: ParseLimits | None = None,
        semantics: bool = True,
        count_series: bool = True,
        cache: ParseCache | None = None,
    ) -> ScrapeResult:
        """Parse the body (when the exchange got one) and say what Prometheus would record."""
        target = self.target
        response = self.response
        body = self.body
        error = self.error
        if response is None:
            assert error is not None
            return ScrapeResult(
                target=target.url,
                accept=target.accept,
                timings=Timings(self.connect, self.tls, self.first_byte, self.total),
                error=error,
                up=0,
                up_reason=error.message,
                body_size_limit=target.body_size_limit,
            )
        content_type = response.headers.get("content-type")
        negotiated = format_from_content_type(content_type)
        data = body.data()
        parsed: ParseResult | None = None
        fmt: Format | None = None
        parse_seconds = 0.0
        if response.status_code == 200 and error is None:
            chosen, error = _decide_format(negotiated, target, data)
            fmt = chosen
            parse_started = clock()
            parsed = parse(data, chosen, limits=limits, semantics=semantics, cache=cache)
            parse_seconds = max(0.0, clock() - parse_started)

        up, up_reason, error = _predict_up(error, parsed)
        return ScrapeResult(
            target=target.url,
            accept=target.accept,
            final_url=str(response.url),
            redirects=len(response.history),
            status=response.status_code,
            reason=response.reason_phrase,
            http_version=response.http_version,
            headers=tuple((name.lower(), value) for name, value in response.headers.multi_items()),
            content_type=content_type,
            content_encoding=response.headers.get("content-encoding"),
            negotiated=negotiated,
            format=fmt,
            compressed_bytes=body.wire,
            uncompressed_bytes=body.size,
            timings=Timings(self.connect, self.tls, self.first_byte, self.total, parse_seconds),
            parse=parsed,
            error=error,
            up=up,
            up_reason=up_reason,
            scrape_series_added=_distinct_series(parsed) if parsed is not None and up and count_series else 0,
            scrape_body_size_bytes=-1 if body.limit_hit else (body.size if parsed is not None else 0),
            body_size_limit=target.body_size_limit,
            body=data,
        )


async def receive(
    target: Target | str, *, client: httpx.AsyncClient | None = None, clock: Clock = time.perf_counter
) -> Exchange:
    """The HTTP half of :func:`fetch`: send the request, read the body under the limits, time it."""
    if isinstance(target, str):
        target = Target(target)
    headers = target.request_headers()
    owned = client is None
    http = make_client(target) if client is None else client
    trace = _Trace(clock)
    extensions: dict[str, Any] = {"trace": trace}
    if target.tls.server_name:
        extensions["sni_hostname"] = target.tls.server_name

    start = clock()
    response: httpx.Response | None = None
    headers_at: float | None = None
    error: ScrapeError | None = None
    body = _Body(target.body_size_limit, target.max_decompression_ratio, gzip=False)
    try:
        async with asyncio.timeout(target.timeout):
            request = http.build_request(
                "GET",
                target.url,
                headers=headers,
                timeout=httpx.Timeout(target.timeout),
                extensions=extensions,
            )
            response = await http.send(request, stream=True, follow_redirects=target.follow_redirects)
            try:
                headers_at = clock()
                if response.status_code != 200:
                    error = _status_error(response)
                else:
                    encoding = response.headers.get("content-encoding", "").strip().lower()
                    if encoding not in ("", "identity", "gzip", "x-gzip"):
                        error = ScrapeError(
                            ErrorKind.DECODE,
                            f"Content-Encoding {encoding!r}: Prometheus only decodes gzip, so it would "
                            "parse the encoded bytes and fail",
                            "make the exporter honour Accept-Encoding (gzip or identity)",
                        )
                    else:
                        body = _Body(
                            target.body_size_limit,
                            target.max_decompression_ratio,
                            gzip=encoding in ("gzip", "x-gzip"),
                        )
                        async for chunk in _raw_chunks(response):
                            body.feed(chunk)
                            if body.done:
                                break
                        body.finish()
                        error = body.error
            finally:
                await response.aclose()
    except (TimeoutError, httpx.HTTPError, OSError) as exc:
        error = classify(exc, target)
        if response is not None and isinstance(exc, TimeoutError | httpx.TimeoutException):
            got = f"; {body.wire} body bytes had arrived" if body.wire else ""
            error = ScrapeError(
                ErrorKind.TIMEOUT,
                f"the body did not finish within {target.timeout:g}s{got}",
                "raise --timeout, or check why the exporter is slow",
            )
    finally:
        if owned:
            await http.aclose()
    end = clock()

    headers_done = trace.last("receive_response_headers.complete") or headers_at
    connect = trace.span("connection.connect_tcp")
    tls = trace.span("connection.start_tls")
    first_byte = (headers_done - start) if headers_done is not None else None
    total = max(0.0, end - start)

    return Exchange(target, response, body, error, connect, tls, first_byte, total)


def scrape_sync(target: Target | str, **kwargs: Any) -> ScrapeResult:
    """:func:`fetch` for code with no event loop (the CLI): runs it with ``asyncio.run``."""
    return asyncio.run(fetch(target, **kwargs))
