"""A small asyncio HTTP/1.1 server on h11: the floor every push receiver stands on.

Receivers describe what they serve as :class:`Route` objects; :class:`HttpServer`
does everything that is the same for all of them, so that a receiver's handler
only ever sees a complete, decoded, authorised :class:`Request`:

* HTTP/1.1 with keep-alive and pipelining, ``Content-Length`` and chunked
  bodies, ``Expect: 100-continue`` (answered only once the request head has
  passed every check, so a refused upload is never sent).
* Bodies decoded per ``Content-Encoding`` (``gzip``, ``deflate``, ``snappy`` in
  both the framed and the raw block format, ``identity``) *while they arrive*,
  with a size limit on the wire bytes and on the decoded bytes and a
  decompression-ratio limit, so a gzip or snappy bomb is refused with 413
  after inflating at most a few hundred KiB of it. A ``Content-Length`` over
  the limit is refused before a byte of the body is read.
* Slow clients (slowloris): the request head must arrive within
  ``header_timeout``, the body within ``body_timeout``, and a keep-alive
  connection may idle for ``idle_timeout``; each closes that connection and is
  counted. Every connection is its own task, so a stalled client never holds
  up another.
* ``max_connections``: one more gets a 503 and is closed.
* Basic and bearer auth compared in constant time (401 with
  ``WWW-Authenticate``), TLS with an optional client CA (client certificates
  then required).
* Unknown path: 404. Known path, wrong method: 405 with ``Allow``. A handler
  that raises: 500 with one line, counted and logged; the server goes on.

Everything the HTTP layer refuses by itself is counted in :class:`HttpStats`
and reported to ``on_refused`` as a :class:`RefusedRequest`, so a receiver can
record a refused push against its sender like any other.

The reasons (stable, used as label values in ``promscope_http_refused_total``):

==========================  ======  ===============================================
reason                      status  why
==========================  ======  ===============================================
``bad_request``             400     not HTTP/1.1 that h11 accepts
``header_too_large``        431     the request head exceeds ``max_header_bytes``
``header_timeout``          408     the request head did not arrive in time
``body_timeout``            408     the body did not arrive in time
``incomplete_body``         --      the client closed the connection mid-body
``too_large``               413     body over ``max_body_bytes`` (wire or decoded)
``ratio``                   413     decoded/compressed over ``max_decompression_ratio``
``bad_encoding``            400     a corrupt gzip/deflate/snappy body
``unsupported_encoding``    415     a ``Content-Encoding`` promscope cannot decode
``auth``                    401     missing or wrong credentials
``not_found``               404     no route for the path
``method_not_allowed``      405     a route for the path, not for the method
``max_connections``         503     ``max_connections`` already open
==========================  ======  ===============================================
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hmac
import http
import json
import logging
import ssl
import time
import zlib
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from email.utils import formatdate
from urllib.parse import unquote

import cramjam
import h11

from promscope.errors import ConfigError, ListenError
from promscope.model import Labels
from promscope.observation import Transport

__all__ = [
    "Auth",
    "Handler",
    "HttpLimits",
    "HttpServer",
    "HttpStats",
    "RefusedRequest",
    "Request",
    "Response",
    "Route",
    "ServerTLS",
    "build_ssl_context",
    "human_bytes",
]

log = logging.getLogger("promscope.receive.http")

KiB = 1024
MiB = 1024 * KiB

_READ_SIZE = 256 * KiB
_INFLATE_STEP = 256 * KiB
"""Most bytes one decompression step may produce: what a bomb costs before it is refused."""
_DISCARD_MAX = 256 * KiB
"""A refused request's body (404, 401…) up to this size is read and dropped to keep the connection."""
_LINGER_SECONDS = 2.0
_LINGER_BYTES = 8 * MiB
"""After refusing a request whose body is still arriving, read and discard this much (or this long)
before closing, so the client reads the refusal instead of a connection reset."""


def human_bytes(count: int | float) -> str:
    """``1536`` -> ``"1.5 KiB"``, ``67108864`` -> ``"64 MiB"``."""
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            if unit == "B":
                return f"{int(value)} B"
            return f"{value:.1f}".rstrip("0").rstrip(".") + f" {unit}"
        value /= 1024
    return f"{value} GiB"  # pragma: no cover


# --- values ------------------------------------------------------------------------------------------


def _first_header(headers: Sequence[tuple[str, str]], name: str, default: str | None) -> str | None:
    """The first value of header ``name`` (case-insensitive) in lower-cased ``headers``, or ``default``."""
    name = name.lower()
    for key, value in headers:
        if key == name:
            return value
    return default


@dataclass(frozen=True, slots=True)
class Request:
    """A complete request, body decoded, as a handler sees it."""

    method: str
    """Upper-case method, e.g. ``"PUT"``."""
    target: str
    """The raw request target, e.g. ``"/metrics/job/a%2Fb/instance@base64/…"``."""
    path: str
    """The percent-decoded path (use :attr:`target` where escaping matters)."""
    query: str
    headers: tuple[tuple[str, str], ...]
    """Header names lower-cased, in the order received."""
    body: bytes
    """Decoded per ``Content-Encoding`` unless the route says ``decode_body=False``."""
    wire_bytes: int
    """Body bytes received before decoding."""
    content_encoding: str | None
    peer: str
    """``"127.0.0.1:53124"``, ``"[::1]:53124"``, or a socket path."""
    scheme: str
    """``"http"`` or ``"https"``."""
    received_at: float
    """Wall time (the server's clock) when the request head was complete."""

    def header(self, name: str, default: str | None = None) -> str | None:
        """The first value of header ``name`` (case-insensitive), or ``default``."""
        return _first_header(self.headers, name, default)

    @property
    def user_agent(self) -> str | None:
        return self.header("user-agent")

    @property
    def content_type(self) -> str | None:
        return self.header("content-type")

    def transport(
        self,
        status: int,
        now: float,
        extra: Mapping[str, str],
        *,
        body_bytes: int | None = None,
        content_encoding: str | None = None,
        grouping_key: Labels = (),
    ) -> Transport:
        """How this request travelled, answered with ``status`` at ``now`` (wall time), for its Observation.

        ``body_bytes`` defaults to the decoded body's length, ``content_encoding`` to the request's.
        """
        return Transport(
            protocol=self.scheme,
            sender=self.peer,
            user_agent=self.user_agent,
            method=self.method,
            path=self.path,
            status=status,
            content_type=self.content_type,
            content_encoding=self.content_encoding if content_encoding is None else content_encoding,
            wire_bytes=self.wire_bytes,
            body_bytes=len(self.body) if body_bytes is None else body_bytes,
            duration=max(0.0, now - self.received_at),
            grouping_key=grouping_key,
            extra=extra,
        )


@dataclass(frozen=True, slots=True)
class Response:
    """What a handler answers. ``Content-Length`` and ``Date`` are added by the server."""

    status: int
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()

    @classmethod
    def text(cls, status: int, text: str, content_type: str = "text/plain; charset=utf-8") -> Response:
        return cls(status, text.encode("utf-8"), (("content-type", content_type),))

    @classmethod
    def json(cls, status: int, data: object) -> Response:
        body = json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        return cls(status, body, (("content-type", "application/json"),))


Handler = Callable[[Request], Awaitable[Response]]


@dataclass(frozen=True, slots=True)
class Route:
    """One thing a server answers: methods on an exact path, or on every path under a prefix.

    ``HEAD`` is answered by a ``GET`` route (without the body) unless a route
    names ``HEAD`` itself.
    """

    methods: frozenset[str]
    path: str
    handler: Handler
    prefix: bool = False
    decode_body: bool = True
    """False: the handler gets the body as it travelled and decodes it itself (remote_write,
    where snappy is part of the protocol rather than a Content-Encoding)."""


@dataclass(frozen=True, slots=True)
class HttpLimits:
    """What one request and one connection may cost."""

    max_body_bytes: int = 64 * MiB
    """Limit on the body as it travels and, separately, once decoded: 413 with a clear message."""
    max_decompression_ratio: float = 200.0
    """Decoded bytes per compressed byte beyond which a body is a bomb: 413 without inflating the rest."""
    ratio_min_bytes: int = 1 * MiB
    """The ratio is only checked once this much was decoded (small, very repetitive bodies are fine)."""
    max_header_bytes: int = 64 * KiB
    header_timeout: float = 10.0
    """Seconds for the whole request head (from the first byte, or from accepting the connection)."""
    body_timeout: float = 60.0
    """Seconds for the whole body, from the end of the head."""
    idle_timeout: float = 60.0
    """Seconds a keep-alive connection may wait for its next request."""
    max_connections: int = 1024
    """Connections open at once; one more is answered 503 and closed."""


@dataclass(frozen=True, slots=True)
class Auth:
    """Credentials a server accepts; either kind will do when both are set."""

    basic: tuple[tuple[str, str], ...] = ()
    """``(user, password)`` pairs."""
    bearer_tokens: tuple[str, ...] = ()
    realm: str = "promscope"

    @property
    def enabled(self) -> bool:
        return bool(self.basic or self.bearer_tokens)

    def check(self, authorization: str | None) -> bool:
        """True when the ``Authorization`` header carries accepted credentials.

        Every configured credential is compared (in constant time) whatever
        the outcome, so timing tells nothing about which part was wrong.
        """
        if not authorization:
            return False
        scheme, _, credentials = authorization.strip().partition(" ")
        scheme = scheme.lower()
        credentials = credentials.strip()
        given = credentials.encode("utf-8", "surrogateescape")
        ok = False
        if scheme == "bearer" and self.bearer_tokens:
            for token in self.bearer_tokens:
                ok |= hmac.compare_digest(given, token.encode("utf-8"))
        elif scheme == "basic" and self.basic:
            try:
                decoded = base64.b64decode(given, validate=True)
            except (binascii.Error, ValueError):
                decoded = b"\x00"
            for user, password in self.basic:
                ok |= hmac.compare_digest(decoded, f"{user}:{password}".encode())
        return ok

    def challenge(self) -> tuple[tuple[str, str], ...]:
        """The ``WWW-Authenticate`` headers of a 401."""
        out: list[tuple[str, str]] = []
        if self.basic:
            out.append(("www-authenticate", f'Basic realm="{self.realm}", charset="UTF-8"'))
        if self.bearer_tokens:
            out.append(("www-authenticate", f'Bearer realm="{self.realm}"'))
        return tuple(out)


@dataclass(frozen=True, slots=True)
class ServerTLS:
    """TLS for a listener. A ``client_ca_file`` makes client certificates required."""

    cert_file: str
    key_file: str
    client_ca_file: str | None = None


def build_ssl_context(tls: ServerTLS) -> ssl.SSLContext:
    """The server context for ``tls``; a file that cannot be loaded is a :class:`ConfigError`."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(tls.cert_file, tls.key_file)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(
            f"cannot load the TLS certificate and key: {_os_reason(exc)}",
            path=tls.cert_file,
            hint=f"check --tls-cert {tls.cert_file} and --tls-key {tls.key_file} (PEM files)",
        ) from exc
    if tls.client_ca_file:
        try:
            context.load_verify_locations(cafile=tls.client_ca_file)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(
                f"cannot load the client CA: {_os_reason(exc)}", path=tls.client_ca_file
            ) from exc
        context.verify_mode = ssl.CERT_REQUIRED
    return context


def _os_reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


@dataclass(frozen=True, slots=True)
class RefusedRequest:
    """A request the HTTP layer answered by itself (or dropped), with what is known of its sender."""

    reason: str
    """One of the reasons in the module docstring's table."""
    status: int | None
    """The status answered, or None when nothing could be answered (client gone)."""
    message: str
    peer: str
    scheme: str
    time: float
    method: str | None = None
    target: str | None = None
    path: str | None = None
    headers: tuple[tuple[str, str], ...] = ()
    wire_bytes: int = 0
    content_encoding: str | None = None
    route: Route | None = None
    """The route the request was for, when the path matched one."""

    def header(self, name: str, default: str | None = None) -> str | None:
        return _first_header(self.headers, name, default)

    @property
    def user_agent(self) -> str | None:
        return self.header("user-agent")


@dataclass(slots=True)
class HttpStats:
    """Counters of one :class:`HttpServer` (mutable; read them, don't write them)."""

    requests: int = 0
    """Requests whose head was read (refused ones included)."""
    responses: dict[int, int] = field(default_factory=dict)
    """Responses sent, by status."""
    refused: dict[str, int] = field(default_factory=dict)
    """Requests the HTTP layer refused or dropped, by reason."""
    handler_errors: int = 0
    connections_total: int = 0
    connections_open: int = 0
    idle_closed: int = 0
    """Keep-alive connections closed after ``idle_timeout``."""
    body_wire_bytes: int = 0
    body_decoded_bytes: int = 0
    on_refused_errors: int = 0

    def count_refused(self, reason: str) -> None:
        self.refused[reason] = self.refused.get(reason, 0) + 1

    def count_response(self, status: int) -> None:
        self.responses[status] = self.responses.get(status, 0) + 1


# --- body decoding -----------------------------------------------------------------------------------


class _Refusal(Exception):
    """The request cannot be served; answer ``status`` and close."""

    def __init__(self, status: int, reason: str, message: str, headers: tuple[tuple[str, str], ...] = ()):
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.message = message
        self.headers = headers


class _Body:
    """Collects a body as it arrives: wire limit, and for encodings the decoded and ratio limits."""

    __slots__ = ("_chunks", "consumed", "encoding", "limits", "size", "wire")

    def __init__(self, limits: HttpLimits, encoding: str | None) -> None:
        self.limits = limits
        self.encoding = encoding
        self.wire = 0
        self.consumed = 0
        """Wire bytes the decoder has used up (for the ratio)."""
        self.size = 0
        self._chunks: list[bytes] = []

    def feed(self, data: bytes) -> None:
        self.wire += len(data)
        if self.wire > self.limits.max_body_bytes:
            raise _Refusal(
                413,
                "too_large",
                f"request body exceeds {human_bytes(self.limits.max_body_bytes)} (the body size limit)",
            )
        self._decode(data)

    def _decode(self, data: bytes) -> None:
        self.consumed += len(data)
        self.size += len(data)
        self._chunks.append(data)

    def _emit(self, data: bytes) -> None:
        if not data:
            return
        self.size += len(data)
        limits = self.limits
        if self.size > limits.max_body_bytes:
            raise _Refusal(
                413,
                "too_large",
                f"{self.encoding} body decodes to more than {human_bytes(limits.max_body_bytes)} "
                f"(the body size limit) from {human_bytes(self.consumed)} on the wire",
            )
        if self.size > limits.ratio_min_bytes and self.size > limits.max_decompression_ratio * max(
            self.consumed, 1
        ):
            raise _Refusal(
                413,
                "ratio",
                f"{self.encoding} body decodes to over {human_bytes(self.size)} from "
                f"{human_bytes(self.consumed)} (ratio above {limits.max_decompression_ratio:g}): "
                "refused as a decompression bomb",
            )
        self._chunks.append(data)

    def finish(self) -> bytes:
        if len(self._chunks) == 1:
            # h11 may hand over a bytearray; Request.body is bytes, as the contract says.
            chunk = self._chunks[0]
            return chunk if type(chunk) is bytes else bytes(chunk)
        return b"".join(self._chunks)


class _ZlibBody(_Body):
    """gzip (multi-member, as Go's reader accepts) and deflate (zlib-wrapped or raw)."""

    __slots__ = ("_decoder", "_head", "_wbits")

    def __init__(self, limits: HttpLimits, encoding: str) -> None:
        super().__init__(limits, encoding)
        self._wbits = 16 + zlib.MAX_WBITS if encoding == "gzip" else 0
        self._decoder: zlib._Decompress | None = None
        self._head = b""

    def _new_decoder(self, data: bytes) -> zlib._Decompress:
        if not self._wbits:
            # RFC 9110 deflate is zlib-wrapped; some clients send raw deflate. The zlib header tells.
            wrapped = len(data) >= 2 and (data[0] & 0x0F) == 8 and ((data[0] << 8) | data[1]) % 31 == 0
            self._wbits = zlib.MAX_WBITS if wrapped else -zlib.MAX_WBITS
        return zlib.decompressobj(self._wbits)

    def _decode(self, data: bytes) -> None:
        if self._decoder is None:
            data = self._head + data
            if self.encoding == "deflate" and len(data) < 2:
                self._head = data
                return
            self._head = b""
            self._decoder = self._new_decoder(data)
        decoder = self._decoder
        try:
            while data:
                if decoder.eof:
                    # Another gzip member follows (concatenated gzip); raw deflate allows none.
                    if self.encoding != "gzip":
                        raise _Refusal(400, "bad_encoding", f"{self.encoding} body has data after its end")
                    decoder = self._decoder = zlib.decompressobj(self._wbits)
                out = decoder.decompress(data, _INFLATE_STEP)
                rest = decoder.unused_data if decoder.eof else decoder.unconsumed_tail
                self.consumed += len(data) - len(rest)
                self._emit(out)
                data = rest
        except zlib.error as exc:
            raise _Refusal(400, "bad_encoding", f"{self.encoding} body is corrupt: {exc}") from exc

    def finish(self) -> bytes:
        decoder = self._decoder
        if decoder is None:
            if self.wire == 0:
                return b""
            raise _Refusal(400, "bad_encoding", f"{self.encoding} body is truncated")
        try:
            self._emit(decoder.flush())
        except zlib.error as exc:  # pragma: no cover - flush after decompress rarely fails
            raise _Refusal(400, "bad_encoding", f"{self.encoding} body is corrupt: {exc}") from exc
        if not decoder.eof:
            raise _Refusal(400, "bad_encoding", f"{self.encoding} body is truncated")
        return super().finish()


_SNAPPY_STREAM_ID = b"\xff\x06\x00\x00sNaPpY"
_SNAPPY_MAX_BLOCK = 65536
_SNAPPY_MAX_FRAME = 1 << 17


def _uvarint(data: bytes | bytearray) -> tuple[int, int] | None:
    """Decode a protobuf-style varint at the start of ``data``: ``(value, length)``, or None if incomplete."""
    value = 0
    shift = 0
    for index in range(min(len(data), 10)):
        byte = data[index]
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, index + 1
        shift += 7
    if len(data) >= 10:
        raise _Refusal(400, "bad_encoding", "snappy block has a corrupt length header")
    return None


class _SnappyBody(_Body):
    """Snappy, in the framing format (decoded frame by frame) or as one raw block.

    A raw block declares its decoded length up front, so a bomb is refused on
    that number without inflating anything.
    """

    __slots__ = ("_buffer", "_declared", "_framed", "_skip")

    def __init__(self, limits: HttpLimits) -> None:
        super().__init__(limits, "snappy")
        self._framed: bool | None = None
        self._buffer = bytearray()
        self._declared: int | None = None
        self._skip = 0

    def _decode(self, data: bytes) -> None:
        self._buffer += data
        if self._framed is None:
            head = bytes(self._buffer[: len(_SNAPPY_STREAM_ID)])
            if _SNAPPY_STREAM_ID.startswith(head):
                if len(head) < len(_SNAPPY_STREAM_ID):
                    return
                self._framed = True
            else:
                self._framed = False
        if self._framed:
            self._frames()
        else:
            self._raw_header()

    def _raw_header(self) -> None:
        self.consumed = self.wire
        if self._declared is None:
            decoded = _uvarint(self._buffer)
            if decoded is None:
                return
            self._declared = decoded[0]
            if self._declared > self.limits.max_body_bytes:
                raise _Refusal(
                    413,
                    "too_large",
                    f"snappy block declares {human_bytes(self._declared)} decoded, over "
                    f"{human_bytes(self.limits.max_body_bytes)} (the body size limit)",
                )

    def _frames(self) -> None:
        buffer = self._buffer
        position = 0
        try:
            while True:
                if self._skip:
                    step = min(self._skip, len(buffer) - position)
                    self._skip -= step
                    position += step
                    self.consumed += step
                    if self._skip:
                        break
                if len(buffer) - position < 4:
                    break
                kind = buffer[position]
                length = buffer[position + 1] | buffer[position + 2] << 8 | buffer[position + 3] << 16
                if 0x80 <= kind <= 0xFE:  # skippable and padding chunks
                    position += 4
                    self.consumed += 4
                    self._skip = length
                    continue
                if 0x02 <= kind <= 0x7F:
                    raise _Refusal(
                        400, "bad_encoding", f"snappy stream has a reserved unskippable chunk (0x{kind:02x})"
                    )
                if length > _SNAPPY_MAX_FRAME:
                    raise _Refusal(
                        400, "bad_encoding", f"snappy chunk of {length} bytes is over the format's limit"
                    )
                end = position + 4 + length
                if len(buffer) < end:
                    break
                frame = bytes(buffer[position:end])
                position = end
                self.consumed += len(frame)
                if kind == 0xFF:
                    if frame != _SNAPPY_STREAM_ID:
                        raise _Refusal(400, "bad_encoding", "snappy stream identifier is corrupt")
                    continue
                if kind == 0x00:
                    declared = _uvarint(frame[8:])
                    if declared is None or declared[0] > _SNAPPY_MAX_BLOCK:
                        raise _Refusal(400, "bad_encoding", "snappy chunk declares more than 64 KiB")
                # cramjam checks the chunk's CRC when given the stream identifier in front of it.
                self._emit(bytes(cramjam.snappy.decompress(_SNAPPY_STREAM_ID + frame)))
        except cramjam.DecompressionError as exc:
            raise _Refusal(400, "bad_encoding", f"snappy body is corrupt: {exc}") from exc
        finally:
            del buffer[:position]

    def finish(self) -> bytes:
        if self._framed is None:
            if not self._buffer:
                return b""
            self._framed = False
        if self._framed:
            if self._buffer or self._skip:
                raise _Refusal(400, "bad_encoding", "snappy stream is truncated")
            return super().finish()
        self._raw_header()
        declared = self._declared
        if declared is None:
            raise _Refusal(400, "bad_encoding", "snappy block is truncated")
        limits = self.limits
        if declared > limits.ratio_min_bytes and declared > limits.max_decompression_ratio * self.wire:
            raise _Refusal(
                413,
                "ratio",
                f"snappy block declares {human_bytes(declared)} decoded from {human_bytes(self.wire)} "
                f"(ratio above {limits.max_decompression_ratio:g}): refused as a decompression bomb",
            )
        try:
            out = bytes(cramjam.snappy.decompress_raw(bytes(self._buffer)))
        except cramjam.DecompressionError as exc:
            raise _Refusal(400, "bad_encoding", f"snappy body is corrupt: {exc}") from exc
        self._buffer.clear()
        self._emit(out)
        return super().finish()


_ENCODING_ALIASES = {"x-gzip": "gzip", "x-snappy-framed": "snappy", "": "identity"}
SUPPORTED_ENCODINGS = ("gzip", "deflate", "snappy", "identity")


def _body_for(limits: HttpLimits, encoding: str | None, decode: bool) -> _Body:
    if not decode or encoding is None:
        return _Body(limits, encoding)
    if encoding in ("gzip", "deflate"):
        return _ZlibBody(limits, encoding)
    if encoding == "snappy":
        return _SnappyBody(limits)
    return _Body(limits, None)


def _normalise_encoding(value: str | None) -> str | None:
    if value is None:
        return None
    encoding = value.strip().lower()
    encoding = _ENCODING_ALIASES.get(encoding, encoding)
    return None if encoding == "identity" else encoding


# --- wire helpers -----------------------------------------------------------------------------------


_REASONS = {status.value: status.phrase for status in http.HTTPStatus}
_REASONS_BYTES = {status: phrase.encode("ascii") for status, phrase in _REASONS.items()}


class _DateCache:
    """The ``Date`` header, formatted once a second."""

    __slots__ = ("_second", "_value")

    def __init__(self) -> None:
        self._second = -1
        self._value = b""

    def get(self) -> bytes:
        now = time.time()
        second = int(now)
        if second != self._second:
            self._second = second
            self._value = formatdate(now, usegmt=True).encode("ascii")
        return self._value


_DATE = _DateCache()


def _raw_response(status: int, message: str, headers: tuple[tuple[str, str], ...] = ()) -> bytes:
    """A complete ``Connection: close`` response, for answers written outside h11's state machine."""
    body = (message + "\n").encode("utf-8")
    lines = [
        f"HTTP/1.1 {status} {_REASONS.get(status, '')}".encode("latin-1"),
        b"content-type: text/plain; charset=utf-8",
        b"content-length: " + str(len(body)).encode("ascii"),
        b"date: " + _DATE.get(),
        b"connection: close",
    ]
    lines.extend(f"{name}: {value}".encode("latin-1", "replace") for name, value in headers)
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def _format_peer(address: object) -> str:
    if isinstance(address, tuple) and len(address) >= 2:
        host, port = address[0], address[1]
        return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
    if isinstance(address, str | bytes) and address:
        return address.decode("utf-8", "replace") if isinstance(address, bytes) else address
    return "unknown"


# --- the server -------------------------------------------------------------------------------------


class HttpServer:
    """An HTTP/1.1 server for a fixed set of routes, on the running event loop.

    ::

        server = HttpServer([Route(frozenset({"PUT"}), "/metrics/job/", handler, prefix=True)])
        await server.start()          # ListenError when the address cannot be bound
        print(server.url)             # http://127.0.0.1:43117
        ...
        await server.stop()
    """

    def __init__(
        self,
        routes: Sequence[Route],
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        limits: HttpLimits = HttpLimits(),
        auth: Auth | None = None,
        tls: ServerTLS | None = None,
        clock: Callable[[], float] = time.time,
        name: str = "http",
        on_refused: Callable[[RefusedRequest], None] | None = None,
    ) -> None:
        self.routes = tuple(routes)
        self.host = host
        self.limits = limits
        self.auth = auth if auth is not None and auth.enabled else None
        self.tls = tls
        self.clock = clock
        self.name = name
        self.on_refused = on_refused
        self.stats = HttpStats()
        self._requested_port = port
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()
        self._exact: dict[str, list[Route]] = {}
        prefixes: list[Route] = []
        for route in self.routes:
            if route.prefix:
                prefixes.append(route)
            else:
                self._exact.setdefault(route.path, []).append(route)
        self._prefixes = sorted(prefixes, key=lambda r: len(r.path), reverse=True)

    # lifecycle

    async def start(self) -> None:
        """Bind and start serving. Raises :class:`ListenError` naming ``host:port`` when binding fails."""
        if self._server is not None:
            return
        context = build_ssl_context(self.tls) if self.tls else None
        address = _join_host_port(self.host, self._requested_port)
        try:
            self._server = await asyncio.start_server(
                self._on_connection,
                self.host,
                self._requested_port,
                ssl=context,
                ssl_handshake_timeout=self.limits.header_timeout if context else None,
                backlog=1024,
                reuse_address=True,
            )
        except OSError as exc:
            raise ListenError(
                f"cannot listen for {self.name}: {_os_reason(exc)}",
                address=address,
                hint="another process may be using the port; choose another address",
            ) from exc

    async def stop(self) -> None:
        """Stop accepting, close every connection and wait for their tasks to end."""
        server = self._server
        if server is None:
            return
        self._server = None
        server.close()
        tasks = list(self._connections)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(server.wait_closed(), 1.0)

    async def __aenter__(self) -> HttpServer:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    @property
    def running(self) -> bool:
        return self._server is not None

    @property
    def port(self) -> int:
        if self._server is not None and self._server.sockets:
            port: int = self._server.sockets[0].getsockname()[1]
            return port
        return self._requested_port

    @property
    def address(self) -> str:
        """``host:port`` as bound (``[::1]:9091`` for IPv6)."""
        return _join_host_port(self.host, self.port)

    @property
    def scheme(self) -> str:
        return "https" if self.tls else "http"

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.host in ("", "0.0.0.0") else self.host
        if host == "::":
            host = "::1"
        return f"{self.scheme}://{_join_host_port(host, self.port)}"

    # routing

    def match(self, path: str) -> list[Route]:
        """The routes for ``path``: the exact ones, else those of the longest matching prefix."""
        exact = self._exact.get(path)
        if exact:
            return exact
        matched: list[Route] = []
        for route in self._prefixes:  # longest first
            if matched and len(route.path) < len(matched[0].path):
                break
            if path.startswith(route.path):
                matched.append(route)
        return matched

    # connections

    async def _on_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        stats = self.stats
        stats.connections_total += 1
        peer = _format_peer(writer.get_extra_info("peername"))
        if stats.connections_open >= self.limits.max_connections:
            message = f"too many connections (max_connections={self.limits.max_connections}); retry later"
            self._refused("max_connections", 503, message, peer)
            with contextlib.suppress(Exception):
                writer.write(_raw_response(503, message, (("retry-after", "1"),)))
            writer.close()
            return
        task = asyncio.current_task()
        if task is not None:
            self._connections.add(task)
        stats.connections_open += 1
        try:
            await _Connection(self, reader, writer, peer).run()
        except asyncio.CancelledError:
            pass  # stop(): this task is the connection's top level, nothing above it waits for it
        except (ConnectionError, OSError, ssl.SSLError):
            pass
        except Exception:  # a bug here must cost one connection, never the server
            log.exception("%s: connection from %s failed", self.name, peer)
        finally:
            stats.connections_open -= 1
            if task is not None:
                self._connections.discard(task)
            writer.close()

    def _refused(
        self,
        reason: str,
        status: int | None,
        message: str,
        peer: str,
        event: h11.Request | None = None,
        *,
        body: _Body | None = None,
        route: Route | None = None,
    ) -> None:
        self.stats.count_refused(reason)
        if status is not None:
            self.stats.count_response(status)
        callback = self.on_refused
        if callback is None:
            return
        method = target = path = None
        headers: tuple[tuple[str, str], ...] = ()
        encoding = None
        if event is not None:
            method = event.method.decode("latin-1")
            target = event.target.decode("latin-1")
            path = unquote(target.partition("?")[0], errors="replace")
            headers = tuple((k.decode("latin-1"), v.decode("latin-1")) for k, v in event.headers)
            for key, value in headers:
                if key == "content-encoding":
                    encoding = value
                    break
        refused = RefusedRequest(
            reason=reason,
            status=status,
            message=message,
            peer=peer,
            scheme=self.scheme,
            time=self.clock(),
            method=method,
            target=target,
            path=path,
            headers=headers,
            wire_bytes=body.wire if body is not None else 0,
            content_encoding=encoding,
            route=route,
        )
        try:
            callback(refused)
        except Exception:
            self.stats.on_refused_errors += 1
            log.exception("%s: on_refused callback failed", self.name)


def _join_host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class _Close(Exception):
    """End this connection now (after an answer, or with none)."""


class _Connection:
    """One client connection: a loop of requests on one h11 state machine."""

    __slots__ = ("conn", "limits", "loop", "peer", "reader", "server", "writer")

    def __init__(
        self, server: HttpServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, peer: str
    ) -> None:
        self.server = server
        self.reader = reader
        self.writer = writer
        self.peer = peer
        self.limits = server.limits
        self.loop = asyncio.get_running_loop()
        self.conn = h11.Connection(h11.SERVER, max_incomplete_event_size=server.limits.max_header_bytes)

    async def run(self) -> None:
        first = True
        while True:
            try:
                event = await self._read_head(first)
            except _Close:
                return
            if event is None:
                return
            first = False
            try:
                keep = await self._serve(event)
            except _Close:
                return
            if not keep:
                return
            try:
                self.conn.start_next_cycle()
            except h11.LocalProtocolError:
                return

    # reading

    async def _receive(self, deadline: float) -> bytes:
        async with asyncio.timeout_at(deadline):
            data = await self.reader.read(_READ_SIZE)
        self.conn.receive_data(data)
        return data

    async def _read_head(self, first: bool) -> h11.Request | None:
        conn = self.conn
        limits = self.limits
        server = self.server
        deadline: float | None = self.loop.time() + limits.header_timeout if first else None
        while True:
            try:
                event = conn.next_event()
            except h11.RemoteProtocolError as exc:
                self._refuse_raw(exc, None)
                raise _Close from None
            if event is h11.NEED_DATA:
                if deadline is None:
                    # Keep-alive: wait for the next request's first byte, then give its head header_timeout.
                    try:
                        await self._receive(self.loop.time() + limits.idle_timeout)
                    except TimeoutError:
                        server.stats.idle_closed += 1
                        return None
                    deadline = self.loop.time() + limits.header_timeout
                else:
                    try:
                        await self._receive(deadline)
                    except TimeoutError:
                        # Also a connection that never sent a byte: a slowloris or a port probe.
                        message = f"request head not received within {limits.header_timeout:g}s"
                        server._refused("header_timeout", 408, message, self.peer)
                        self._write_close(_raw_response(408, message))
                        return None
                continue  # on EOF h11 yields ConnectionClosed, or a protocol error mid-head
            if isinstance(event, h11.Request):
                return event
            if isinstance(event, h11.ConnectionClosed):
                return None
            return None  # pragma: no cover - h11 yields nothing else before a request

    def _refuse_raw(self, exc: h11.RemoteProtocolError, event: h11.Request | None) -> None:
        status = exc.error_status_hint
        if status == 431 or "too long" in str(exc).lower():
            status = 431
            reason = "header_too_large"
            message = f"request head exceeds {human_bytes(self.limits.max_header_bytes)}"
        else:
            reason = "bad_request"
            message = f"malformed HTTP request: {exc}"
        self.server._refused(reason, status, message, self.peer, event)
        self._write_close(_raw_response(status, message))

    def _write_close(self, data: bytes) -> None:
        with contextlib.suppress(Exception):
            self.writer.write(data)

    # serving

    async def _serve(self, event: h11.Request) -> bool:
        """Answer one request; True when the connection may serve another."""
        server = self.server
        stats = server.stats
        stats.requests += 1
        received_at = server.clock()
        target = event.target.decode("latin-1")
        raw_path, _, query = target.partition("?")
        path = unquote(raw_path, errors="replace") if "%" in raw_path else raw_path
        method = event.method.decode("ascii", "replace")
        headers = tuple((k.decode("latin-1"), v.decode("latin-1")) for k, v in event.headers)

        route: Route | None = None
        try:
            route = self._route(method, path)
            if server.auth is not None:
                authorization = None
                for key, value in headers:
                    if key == "authorization":
                        authorization = value
                        break
                if not server.auth.check(authorization):
                    raise _Refusal(
                        401,
                        "auth",
                        "missing or wrong credentials" if authorization else "authentication required",
                        server.auth.challenge(),
                    )
            encoding: str | None = None
            content_length: int | None = None
            for key, value in headers:
                if key == "content-encoding":
                    encoding = value
                elif key == "content-length":
                    content_length = int(value)  # h11 has validated it
            body = self._body_for(route, encoding, content_length)
        except _Refusal as refusal:
            return await self._refuse(event, refusal, None, route)

        if self.conn.they_are_waiting_for_100_continue:
            self.writer.write(self.conn.send(h11.InformationalResponse(status_code=100, headers=[])))

        try:
            data = await self._read_body(body)
        except _Refusal as refusal:
            return await self._refuse(event, refusal, body, route)
        stats.body_wire_bytes += body.wire
        stats.body_decoded_bytes += len(data)

        request = Request(
            method=method,
            target=target,
            path=path,
            query=query,
            headers=headers,
            body=data,
            wire_bytes=body.wire,
            content_encoding=encoding,
            peer=self.peer,
            scheme=server.scheme,
            received_at=received_at,
        )
        try:
            response = await route.handler(request)
            if not isinstance(response, Response) or not 200 <= response.status <= 599:
                raise TypeError(f"handler returned {response!r}, not a Response with a final status")
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            stats.handler_errors += 1
            log.exception("%s: handler for %s %s failed", server.name, method, path)
            response = Response.text(500, f"internal error: {type(exc).__name__}: {_one_line(exc)}\n")
        return await self._respond(response, head=method == "HEAD")

    def _route(self, method: str, path: str) -> Route:
        routes = self.server.match(path)
        if not routes:
            raise _Refusal(404, "not_found", f"no such path: {path}")
        for route in routes:
            if method in route.methods:
                return route
        if method == "HEAD":
            for route in routes:
                if "GET" in route.methods:
                    return route
        allowed = sorted(
            {m for route in routes for m in route.methods}
            | ({"HEAD"} if any("GET" in route.methods for route in routes) else set())
        )
        raise _Refusal(
            405,
            "method_not_allowed",
            f"method {method} not allowed for {path}; allowed: {', '.join(allowed)}",
            (("allow", ", ".join(allowed)),),
        )

    def _body_for(self, route: Route, encoding: str | None, content_length: int | None) -> _Body:
        limits = self.limits
        if content_length is not None and content_length > limits.max_body_bytes:
            raise _Refusal(
                413,
                "too_large",
                f"request body of {human_bytes(content_length)} exceeds "
                f"{human_bytes(limits.max_body_bytes)} (the body size limit)",
            )
        normalised = _normalise_encoding(encoding)
        if route.decode_body and normalised is not None and normalised not in SUPPORTED_ENCODINGS:
            raise _Refusal(
                415,
                "unsupported_encoding",
                f"unsupported Content-Encoding {encoding!r}; use gzip, deflate, snappy or identity",
                (("accept-encoding", "gzip, deflate, snappy, identity"),),
            )
        return _body_for(limits, normalised, route.decode_body)

    async def _read_body(self, body: _Body) -> bytes:
        conn = self.conn
        deadline = self.loop.time() + self.limits.body_timeout
        while True:
            try:
                event = conn.next_event()
            except h11.RemoteProtocolError as exc:
                if conn.their_state is h11.ERROR and "peer closed" in str(exc):
                    self.server._refused(
                        "incomplete_body",
                        None,
                        f"client closed the connection after {human_bytes(body.wire)} of the body",
                        self.peer,
                    )
                    raise _Close from None
                raise _Refusal(400, "bad_request", f"malformed HTTP request body: {exc}") from None
            if event is h11.NEED_DATA:
                try:
                    await self._receive(deadline)
                except TimeoutError:
                    raise _Refusal(
                        408,
                        "body_timeout",
                        f"request body not received within {self.limits.body_timeout:g}s "
                        f"({human_bytes(body.wire)} arrived)",
                    ) from None
                continue
            if type(event) is h11.Data:
                body.feed(event.data)
                continue
            if type(event) is h11.EndOfMessage:
                return body.finish()
            if isinstance(event, h11.ConnectionClosed):  # pragma: no cover - h11 raises first
                raise _Close

    async def _refuse(
        self, event: h11.Request, refusal: _Refusal, body: _Body | None, route: Route | None
    ) -> bool:
        """Answer a refusal; keep the connection only when the whole request was read."""
        server = self.server
        server._refused(
            refusal.reason, refusal.status, refusal.message, self.peer, event, body=body, route=route
        )
        conn = self.conn
        complete = conn.their_state is h11.DONE
        if (
            not complete
            and conn.their_state is h11.SEND_BODY
            and not conn.they_are_waiting_for_100_continue
            and refusal.status not in (408, 413)
            and (body is None or body.wire == 0)
            and 0 <= _content_length(event) <= _DISCARD_MAX
        ):
            complete = await self._discard_small_body()
        if complete:
            response = Response.text(refusal.status, refusal.message + "\n")
            if refusal.headers:
                response = Response(response.status, response.body, response.headers + refusal.headers)
            # Counted by _refused already; send without counting again.
            return await self._respond(response, head=event.method == b"HEAD", count=False)
        self._write_close(_raw_response(refusal.status, refusal.message, refusal.headers))
        await self._linger()
        raise _Close

    async def _discard_small_body(self) -> bool:
        """Read and drop the body of a refused request when it is small, so the connection can stay open."""
        conn = self.conn
        discarded = 0
        deadline = self.loop.time() + self.limits.body_timeout
        try:
            while True:
                event = conn.next_event()
                if event is h11.NEED_DATA:
                    await self._receive(deadline)
                elif type(event) is h11.Data:
                    discarded += len(event.data)
                    if discarded > _DISCARD_MAX:
                        return False
                else:
                    return type(event) is h11.EndOfMessage
        except (h11.RemoteProtocolError, TimeoutError):
            return False

    async def _linger(self) -> None:
        """Let the client read our answer: stop writing, discard what it still sends, for a bounded time."""
        writer = self.writer
        try:
            await asyncio.wait_for(writer.drain(), _LINGER_SECONDS)
            if writer.can_write_eof():
                writer.write_eof()
            discarded = 0
            async with asyncio.timeout(_LINGER_SECONDS):
                while discarded < _LINGER_BYTES:
                    data = await self.reader.read(_READ_SIZE)
                    if not data:
                        break
                    discarded += len(data)
        except (TimeoutError, ConnectionError, OSError, ssl.SSLError, RuntimeError):
            pass

    async def _respond(self, response: Response, *, head: bool = False, count: bool = True) -> bool:
        conn = self.conn
        status = response.status
        body = response.body
        headers: list[tuple[bytes, bytes]] = [
            (b"content-length", str(len(body)).encode("ascii")),
            (b"date", _DATE.get()),
        ]
        for name, value in response.headers:
            lowered = name.lower()
            if lowered in ("content-length", "transfer-encoding", "date"):
                continue
            headers.append((lowered.encode("latin-1"), value.encode("latin-1", "replace")))
        if count:
            self.server.stats.count_response(status)
        try:
            data = conn.send(
                h11.Response(status_code=status, headers=headers, reason=_REASONS_BYTES.get(status, b""))
            )
            if body and not head:
                data += conn.send(h11.Data(data=body))
            data += conn.send(h11.EndOfMessage())
        except h11.LocalProtocolError as exc:
            log.error("%s: cannot send response %s: %s", self.server.name, status, exc)
            raise _Close from exc
        writer = self.writer
        writer.write(data)
        transport = writer.transport
        if transport.get_write_buffer_size() > 64 * KiB:
            try:
                await asyncio.wait_for(writer.drain(), self.limits.body_timeout)
            except TimeoutError:
                raise _Close from None
        if conn.our_state is h11.MUST_CLOSE or conn.their_state is not h11.DONE:
            if conn.their_state is not h11.DONE and conn.their_state is not h11.MUST_CLOSE:
                await self._linger()
            raise _Close
        return True


def _content_length(event: h11.Request) -> int:
    """The request's Content-Length, or -1 (chunked, or none)."""
    for name, value in event.headers:
        if name == b"content-length":
            return int(value)
    return -1


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else ""
