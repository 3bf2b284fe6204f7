"""What to scrape and how: a :class:`Target` is a frozen description, validated when built.

A target carries everything Prometheus's ``scrape_config`` says about one
endpoint that changes what goes over the wire: the Accept header, timeout,
body size limit, compression, redirects, authentication, extra headers and
TLS. Secrets never appear in ``repr()``. Nothing here opens a socket: the
fetcher (``promscope.scrape.fetch``) reads a target and makes the request.
"""

from __future__ import annotations

import base64
import ssl
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from promscope import __version__
from promscope.errors import ConfigError
from promscope.exposition.negotiate import ACCEPT_PROMETHEUS3, ScrapeProtocol

__all__ = [
    "DEFAULT_BODY_SIZE_LIMIT",
    "DEFAULT_MAX_DECOMPRESSION_RATIO",
    "DEFAULT_TIMEOUT",
    "USER_AGENT",
    "BasicAuth",
    "TLSConfig",
    "Target",
]

DEFAULT_TIMEOUT = 10.0
"""Seconds; Prometheus's default ``scrape_timeout``."""
DEFAULT_BODY_SIZE_LIMIT = 100 << 20
"""Bytes of decompressed body kept. Prometheus's default is no limit; promscope keeps one so that a
runaway or hostile target cannot exhaust memory (0 disables it, as in Prometheus)."""
DEFAULT_MAX_DECOMPRESSION_RATIO = 200.0
"""A gzip body that expands more than this (past 1 MiB) is stopped as a decompression bomb."""
USER_AGENT = f"promscope/{__version__}"

_FORBIDDEN_HEADERS = frozenset({"host", "content-length", "transfer-encoding", "connection"})


@dataclass(frozen=True, slots=True)
class BasicAuth:
    """HTTP basic credentials; the password never shows in ``repr()``."""

    username: str
    password: str = field(default="", repr=False)

    @classmethod
    def parse(cls, value: str) -> BasicAuth:
        """``USER:PASS`` (the password may contain ``:``). Raises ConfigError without a colon."""
        username, sep, password = value.partition(":")
        if not sep:
            raise ConfigError("basic auth must be USER:PASSWORD", hint="e.g. --basic-auth admin:s3cret")
        return cls(username, password)

    def header(self) -> str:
        token = base64.b64encode(f"{self.username}:{self.password}".encode()).decode("ascii")
        return f"Basic {token}"


@dataclass(frozen=True, slots=True)
class TLSConfig:
    """TLS settings, named as Prometheus's ``tls_config`` names them."""

    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    insecure_skip_verify: bool = False
    server_name: str | None = None
    """SNI and the name the certificate must match, when the URL's host is not it."""

    def __post_init__(self) -> None:
        if self.key_file is not None and self.cert_file is None:
            raise ConfigError("a client key needs a client certificate", hint="add --cert-file")

    @property
    def is_default(self) -> bool:
        return self == TLSConfig()

    def ssl_context(self) -> ssl.SSLContext:
        """Build the SSL context. Raises ConfigError when a file is missing or unusable."""
        try:
            context = ssl.create_default_context(cafile=self.ca_file)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(
                f"cannot load CA file: {_os_reason(exc)}",
                path=self.ca_file,
                hint="point --ca-file at a PEM bundle",
            ) from None
        if self.cert_file is not None:
            try:
                context.load_cert_chain(self.cert_file, self.key_file)
            except (OSError, ssl.SSLError) as exc:
                raise ConfigError(
                    f"cannot load client certificate/key: {_os_reason(exc)}",
                    path=self.cert_file,
                    hint="--cert-file and --key-file must be a matching PEM certificate and key",
                ) from None
        if self.insecure_skip_verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context


def _os_reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return str(exc) or type(exc).__name__


@dataclass(frozen=True, slots=True)
class Target:
    """One endpoint to scrape and the request settings that matter to what comes back.

    Construction validates: the URL must be ``http``/``https`` with a host,
    the timeout positive, basic auth and a bearer token exclusive (as in
    Prometheus), and extra headers may not set hop-by-hop headers. Problems
    raise :class:`~promscope.errors.ConfigError`.
    """

    url: str
    accept: str = ACCEPT_PROMETHEUS3
    """The Accept header sent (see ``promscope.exposition.negotiate``)."""
    timeout: float = DEFAULT_TIMEOUT
    """Seconds for the whole scrape: connect, headers and body."""
    body_size_limit: int = DEFAULT_BODY_SIZE_LIMIT
    """Decompressed bytes; as in Prometheus a body of this size or more fails the scrape. 0: no limit."""
    compression: bool = True
    """Send ``Accept-Encoding: gzip`` (Prometheus's ``enable_compression``), else ``identity``."""
    follow_redirects: bool = True
    basic_auth: BasicAuth | None = None
    bearer_token: str | None = field(default=None, repr=False)
    bearer_token_file: str | None = None
    """Read at every scrape, as Prometheus does, so a rotated token is picked up."""
    headers: tuple[tuple[str, str], ...] = ()
    """Extra request headers; they override the ones promscope sets."""
    tls: TLSConfig = field(default_factory=TLSConfig)
    fallback_protocol: ScrapeProtocol | None = None
    """Prometheus's ``fallback_scrape_protocol``: used when the Content-Type is missing or unsupported."""
    max_decompression_ratio: float = DEFAULT_MAX_DECOMPRESSION_RATIO
    user_agent: str = USER_AGENT

    def __post_init__(self) -> None:
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https"):
            raise ConfigError(
                f"unsupported URL {self.url!r}: the scheme must be http or https",
                hint="e.g. http://127.0.0.1:9100/metrics",
            )
        if not parts.hostname:
            raise ConfigError(f"URL {self.url!r} has no host", hint="e.g. http://127.0.0.1:9100/metrics")
        try:
            _ = parts.port
        except ValueError:
            raise ConfigError(f"URL {self.url!r} has an invalid port") from None
        if not self.timeout > 0:
            raise ConfigError(f"timeout must be positive, not {self.timeout}")
        if self.body_size_limit < 0:
            raise ConfigError("body size limit must be 0 (none) or positive")
        if self.max_decompression_ratio < 1:
            raise ConfigError("the decompression ratio limit must be at least 1")
        if self.basic_auth is not None and (self.bearer_token is not None or self.bearer_token_file):
            raise ConfigError("basic auth and a bearer token are mutually exclusive", hint="pick one of them")
        if self.bearer_token is not None and self.bearer_token_file is not None:
            raise ConfigError("give a bearer token or a token file, not both")
        for name, value in self.headers:
            if not name or any(ch in name for ch in ":\r\n\0 \t"):
                raise ConfigError(f"invalid header name {name!r}", hint="headers are given as 'Name: value'")
            if any(ch in value for ch in "\r\n\0"):
                raise ConfigError(f"header {name!r} has a line break in its value")
            if name.lower() in _FORBIDDEN_HEADERS:
                raise ConfigError(f"header {name!r} is set by the HTTP client and cannot be overridden")

    @classmethod
    def build(
        cls,
        url: str,
        *,
        headers: Mapping[str, str] | Iterable[tuple[str, str]] = (),
        **settings: object,
    ) -> Target:
        """Like the constructor, with ``headers`` as a mapping or pairs."""
        pairs = tuple(headers.items()) if isinstance(headers, Mapping) else tuple(headers)
        return cls(url, headers=pairs, **settings)  # type: ignore[arg-type]

    @property
    def is_https(self) -> bool:
        return urlsplit(self.url).scheme == "https"

    def read_bearer_token(self) -> str | None:
        """The bearer token, reading the token file when one is configured. Raises ConfigError."""
        if self.bearer_token is not None:
            return self.bearer_token
        if self.bearer_token_file is None:
            return None
        try:
            token = Path(self.bearer_token_file).read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(
                f"cannot read bearer token file: {_os_reason(exc)}",
                path=self.bearer_token_file,
                hint="check the path given to --bearer-token-file",
            ) from None
        if not token:
            raise ConfigError("the bearer token file is empty", path=self.bearer_token_file)
        return token

    def request_headers(self) -> dict[str, str]:
        """The headers of the scrape request, as Prometheus sends them plus the extras.

        Reads the bearer token file; raises ConfigError when it cannot.
        """
        headers = {
            "Accept": self.accept,
            "Accept-Encoding": "gzip" if self.compression else "identity",
            "User-Agent": self.user_agent,
            "X-Prometheus-Scrape-Timeout-Seconds": _format_seconds(self.timeout),
        }
        if self.basic_auth is not None:
            headers["Authorization"] = self.basic_auth.header()
        token = self.read_bearer_token()
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        lowered = {name.lower(): name for name in headers}
        for name, value in self.headers:
            existing = lowered.get(name.lower())
            if existing is not None:
                del headers[existing]
            headers[name] = value
            lowered[name.lower()] = name
        return headers


def _format_seconds(seconds: float) -> str:
    """Like Go's ``strconv.FormatFloat(s, 'f', -1, 64)``: ``10``, ``1.5``, ``0.25``."""
    text = repr(float(seconds))
    if "e" in text or "E" in text:
        text = f"{seconds:.9f}".rstrip("0")
    return text[:-2] if text.endswith(".0") else text.rstrip(".")
