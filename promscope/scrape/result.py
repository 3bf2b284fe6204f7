"""What one scrape produced: a frozen :class:`ScrapeResult`, and what Prometheus would record for it.

A result always exists, even when nothing came back: transport failures,
an HTTP status other than 200, a Content-Type Prometheus 3 rejects, a body
over the limit and an exposition Prometheus would not ingest are all a
:class:`ScrapeError` on the result, classified by :class:`ErrorKind`. The
body is parsed whenever one arrived, even when Prometheus would have
rejected the scrape, so the diagnostics are there to see.

The series a Prometheus server records for every scrape are predicted too:
``up`` (with the reason), ``scrape_duration_seconds``,
``scrape_samples_scraped``, ``scrape_series_added`` (on a first scrape: the
number of distinct series) and ``scrape_body_size_bytes`` (``-1`` when the
body limit was hit, as Prometheus reports it).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from promscope.errors import BodyTooLarge, ConnectError, ScrapeTimeout, TLSError, TransportError
from promscope.exposition.negotiate import Negotiated
from promscope.model import Diagnostic, Format, MetricFamily, ParseResult, Severity

__all__ = ["ErrorKind", "ScrapeError", "ScrapeResult", "Timings"]


class ErrorKind(enum.StrEnum):
    """Why a scrape failed (or would fail in Prometheus)."""

    INVALID_URL = "invalid_url"
    """The URL cannot be requested at all."""
    DNS = "dns"
    """The host name does not resolve."""
    REFUSED = "refused"
    """Nothing listens on the port."""
    CONNECT = "connect"
    """Unreachable network or host, or another connection failure."""
    TLS = "tls"
    """The TLS handshake or certificate verification failed."""
    TIMEOUT = "timeout"
    """No complete response within the scrape timeout."""
    PROTOCOL = "protocol"
    """The connection broke or the server spoke broken HTTP."""
    HTTP_STATUS = "http_status"
    """A status other than 200 (Prometheus accepts nothing else)."""
    CONTENT_TYPE = "content_type"
    """A missing, unparseable or unsupported Content-Type, with no fallback protocol."""
    DECODE = "decode"
    """A corrupt gzip body or a Content-Encoding Prometheus does not decode."""
    BODY_TOO_LARGE = "body_too_large"
    """The decompressed body reached the size limit, or expanded like a decompression bomb."""
    PARSE = "parse"
    """The exposition has errors Prometheus rejects."""

    @property
    def unreachable(self) -> bool:
        """This kind of failure can leave the scrape with no HTTP response at all."""
        return self in _UNREACHABLE


_UNREACHABLE = frozenset(
    {
        ErrorKind.INVALID_URL,
        ErrorKind.DNS,
        ErrorKind.REFUSED,
        ErrorKind.CONNECT,
        ErrorKind.TLS,
        ErrorKind.TIMEOUT,
        ErrorKind.PROTOCOL,
    }
)


@dataclass(frozen=True, slots=True)
class ScrapeError:
    """What went wrong, in one line, and what to do about it."""

    kind: ErrorKind
    message: str
    hint: str = ""

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


@dataclass(frozen=True, slots=True)
class Timings:
    """Seconds from the start of the request, taken from the injected clock.

    ``connect`` covers name resolution and the TCP handshake (None when a
    pooled connection was reused or the transport has no sockets); ``tls``
    the TLS handshake (None for plain HTTP); ``first_byte`` the time until the
    response headers arrived; ``total`` the time until the body was read (or
    the scrape failed). ``parse`` is the time spent parsing, not part of
    ``total``.
    """

    connect: float | None = None
    tls: float | None = None
    first_byte: float | None = None
    total: float = 0.0
    parse: float = 0.0


@dataclass(frozen=True, slots=True)
class ScrapeResult:
    """Everything one scrape of one target produced."""

    target: str
    """The URL asked for."""
    accept: str
    """The Accept header sent."""
    final_url: str | None = None
    """The URL that answered, after redirects."""
    redirects: int = 0
    status: int | None = None
    reason: str = ""
    http_version: str | None = None
    headers: tuple[tuple[str, str], ...] = ()
    """Response headers, in order, names lower-cased."""
    content_type: str | None = None
    content_encoding: str | None = None
    negotiated: Negotiated | None = None
    """What the Content-Type means (None when no response came)."""
    format: Format | None = None
    """The format the body was parsed as (Content-Type, fallback protocol, else sniffed)."""
    compressed_bytes: int = 0
    """Body bytes on the wire."""
    uncompressed_bytes: int = 0
    """Body bytes after decoding (what was kept when a limit stopped the read)."""
    timings: Timings = field(default_factory=Timings)
    parse: ParseResult | None = None
    error: ScrapeError | None = None
    up: int = 0
    """What Prometheus would record as ``up``: 1 or 0."""
    up_reason: str = ""
    """Why ``up`` is what it is, in one sentence."""
    scrape_series_added: int = 0
    """Distinct series in the exposition: what a first scrape adds (0 when ``up`` is 0)."""
    scrape_body_size_bytes: int = 0
    """Decompressed body size; -1 when the body size limit was hit, as Prometheus records it."""
    body_size_limit: int = 0
    """The limit the body was read under (0: none)."""
    body: bytes = field(default=b"", repr=False, compare=False)
    """The decoded body (possibly cut at the limit)."""

    # -- conveniences ----------------------------------------------------------------------------------

    @property
    def ok(self) -> bool:
        """Prometheus would record ``up`` 1."""
        return self.up == 1

    @property
    def reachable(self) -> bool:
        """An HTTP response came back."""
        return self.status is not None

    @property
    def unreachable(self) -> bool:
        """No HTTP response came back (refused, DNS, TLS, timeout before headers…)."""
        return self.status is None and self.error is not None

    @property
    def families(self) -> tuple[MetricFamily, ...]:
        return self.parse.families if self.parse is not None else ()

    @property
    def diagnostics(self) -> tuple[Diagnostic, ...]:
        return self.parse.diagnostics if self.parse is not None else ()

    @property
    def scrape_duration_seconds(self) -> float:
        return self.timings.total

    @property
    def scrape_samples_scraped(self) -> int:
        """Samples in the exposition (0 when Prometheus would never have parsed it)."""
        if self.parse is None or (self.error is not None and self.error.kind is not ErrorKind.PARSE):
            return 0
        return self.parse.sample_count

    def worst(self) -> Severity | None:
        return self.parse.worst() if self.parse is not None else None

    def header(self, name: str) -> str | None:
        """The first response header called ``name`` (any case), or None."""
        wanted = name.lower()
        for key, value in self.headers:
            if key == wanted:
                return value
        return None

    def prometheus_series(self) -> dict[str, float]:
        """The synthetic series Prometheus records for this scrape, by name."""
        return {
            "up": float(self.up),
            "scrape_duration_seconds": self.timings.total,
            "scrape_samples_scraped": float(self.scrape_samples_scraped),
            "scrape_samples_post_metric_relabeling": float(self.scrape_samples_scraped),
            "scrape_series_added": float(self.scrape_series_added),
            "scrape_body_size_bytes": float(self.scrape_body_size_bytes),
        }

    def to_exception(self) -> TransportError | None:
        """The error as a :mod:`promscope.errors` exception, for callers that must stop on it."""
        if self.error is None:
            return None
        kind = self.error.kind
        message, hint = self.error.message, self.error.hint
        if kind is ErrorKind.TLS:
            return TLSError(message, target=self.target, hint=hint)
        if kind is ErrorKind.TIMEOUT:
            return ScrapeTimeout(message, target=self.target, hint=hint)
        if kind is ErrorKind.BODY_TOO_LARGE:
            return BodyTooLarge(message, target=self.target, limit=self.body_size_limit, hint=hint)
        if kind.unreachable:
            return ConnectError(message, target=self.target, hint=hint)
        return TransportError(message, target=self.target, hint=hint)
