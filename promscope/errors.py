"""Exceptions: for work that cannot go on. Problems *in input* are Diagnostics, not exceptions.

The tree::

    PromscopeError
    ├── ConfigError              a config file or option is wrong (path, key, why)
    ├── InputError               an input cannot be read at all (missing file, not readable)
    ├── ListenError              a listener cannot bind (port in use, address not available)
    └── TransportError           a scrape could not get a response
        ├── ConnectError         DNS failure, connection refused, unreachable
        ├── TLSError             handshake or certificate failure
        ├── ScrapeTimeout        no complete response within the timeout
        └── BodyTooLarge         the body exceeded the configured limit

Each error carries what it is about (``target``, ``path``) so a front end can
print one line that says what went wrong and what to do.
"""

from __future__ import annotations

__all__ = [
    "BodyTooLarge",
    "ConfigError",
    "ConnectError",
    "InputError",
    "ListenError",
    "PromscopeError",
    "ScrapeTimeout",
    "TLSError",
    "TransportError",
]


class PromscopeError(Exception):
    """Base of every promscope exception."""

    hint: str = ""

    def __init__(self, message: str, *, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        if hint:
            self.hint = hint


class ConfigError(PromscopeError):
    """A configuration file, environment variable or option is invalid."""

    def __init__(self, message: str, *, path: str | None = None, hint: str = "") -> None:
        super().__init__(f"{path}: {message}" if path else message, hint=hint)
        self.path = path


class InputError(PromscopeError):
    """An input (file, stdin) cannot be read at all."""

    def __init__(self, message: str, *, path: str, hint: str = "") -> None:
        super().__init__(f"{path}: {message}", hint=hint)
        self.path = path


class ListenError(PromscopeError):
    """A listener cannot start: the address is in use, not available, or not permitted."""

    def __init__(self, message: str, *, address: str, hint: str = "") -> None:
        super().__init__(f"{address}: {message}", hint=hint)
        self.address = address


class TransportError(PromscopeError):
    """A request to a target did not produce a usable response."""

    kind = "transport"

    def __init__(self, message: str, *, target: str, hint: str = "") -> None:
        super().__init__(f"{target}: {message}", hint=hint)
        self.target = target


class ConnectError(TransportError):
    """DNS failure, refused or unreachable."""

    kind = "connect"


class TLSError(TransportError):
    """The TLS handshake or certificate verification failed."""

    kind = "tls"


class ScrapeTimeout(TransportError):
    """No complete response within the timeout."""

    kind = "timeout"


class BodyTooLarge(TransportError):
    """The response body was larger than the configured limit."""

    kind = "body_too_large"

    def __init__(self, message: str, *, target: str, limit: int, hint: str = "") -> None:
        super().__init__(message, target=target, hint=hint)
        self.limit = limit
