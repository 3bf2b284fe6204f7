"""Option values the verbs share: durations, ``--format auto`` by file extension, ``--record FILE``.

Parsers raise :class:`ValueError` with a message fit for the user;
:func:`value_callback` turns one into a click callback that reports it as a
usage error on the option that carried it.

Kept light on purpose: ``promscope check`` imports this module on its way to
its first line of output.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import click

__all__ = [
    "EXTENSION_FORMATS",
    "MAX_GUNZIP_BYTES",
    "gunzip_input",
    "input_format",
    "parse_duration",
    "parse_listener_duration",
    "read_input",
    "record_option",
    "value_callback",
]

_F = TypeVar("_F", bound=Callable[..., Any])
_T = TypeVar("_T")

EXTENSION_FORMATS = {".prom": "text", ".om": "openmetrics", ".pb": "protobuf"}
"""With ``--format auto``, a file's extension decides its format; other names are sniffed."""

_DURATION_SECONDS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
    "d": 86400.0,
    "w": 604800.0,
    "y": 31536000.0,
}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|us|µs|ns|s|m|h|d|w|y)")
_LISTENER_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")


def input_format(choice: str, name: str) -> str:
    """The format to parse the file ``name`` as: ``choice``, or with ``auto`` its extension's format.

    ``-`` (stdin) and unknown extensions stay ``auto``: the parser sniffs them.
    """
    if choice != "auto" or name == "-":
        return choice
    stem, extension = os.path.splitext(name)
    if extension.lower() == ".gz":  # metrics.prom.gz: the format of what is inside
        extension = os.path.splitext(stem)[1]
    return EXTENSION_FORMATS.get(extension.lower(), "auto")


MAX_GUNZIP_BYTES = 2 << 30
"""Decompressed bytes a gzip input may grow to before it is refused (a gzip bomb stops here)."""


def read_input(name: str) -> bytes:
    """The exposition in file ``name`` (``-``: stdin), decompressed when it is gzip.

    Every verb that reads expositions from files reads them here, so ``metrics.prom.gz``
    works alike in check, diff and query. Raises :class:`OSError` (message for the user).
    """
    if name == "-":
        import sys

        return gunzip_input(sys.stdin.buffer.read())
    with open(name, "rb") as handle:
        return gunzip_input(handle.read())


def gunzip_input(data: bytes, limit: int | None = None) -> bytes:
    """``data`` decompressed when it is gzip (by its magic bytes), else ``data`` itself.

    Files and pipes may be compressed (``metrics.prom.gz``, ``curl --compressed`` not used);
    the output is bounded by ``limit`` so a gzip bomb is refused, not inflated: ``OSError``
    (with a message for the user) when it is over the limit or corrupt.
    """
    if not data.startswith(b"\x1f\x8b"):
        return data
    import zlib

    limit = MAX_GUNZIP_BYTES if limit is None else limit
    decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)
    out: list[bytes] = []
    size = 0
    pending = data
    try:
        while pending:
            chunk = decoder.decompress(pending, 1 << 20)
            size += len(chunk)
            if size > limit:
                raise OSError(f"gzip input decompresses to more than {limit} bytes; refused")
            out.append(chunk)
            pending = decoder.unconsumed_tail
            if decoder.eof and decoder.unused_data.startswith(b"\x1f\x8b"):
                # another gzip member follows, as `cat a.gz b.gz` makes
                pending = decoder.unused_data + pending
                decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)
            elif decoder.eof:
                break
    except zlib.error as exc:
        raise OSError(f"gzip input is corrupt: {exc}") from None
    if not decoder.eof:
        raise OSError("gzip input is truncated")
    return b"".join(out)


def _parse_duration(text: str, pattern: re.Pattern[str], units: Mapping[str, float], examples: str) -> float:
    value = text.strip()
    try:
        seconds = float(value)
    except ValueError:
        parts = list(pattern.finditer(value))
        if not parts or "".join(p.group(0) for p in parts) != value:
            raise ValueError(f"{text!r} is not a duration (e.g. {examples})") from None
        seconds = sum(float(p.group(1)) * units[p.group(2)] for p in parts)
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"{text!r}: the duration must be positive")
    return seconds


def parse_duration(text: str) -> float:
    """``10s``, ``500ms``, ``1m30s`` (Prometheus durations) or plain seconds ``2.5`` -> seconds."""
    return _parse_duration(text, _DURATION, _DURATION_SECONDS, "10s, 500ms, 1m30s")


def parse_listener_duration(text: str) -> float:
    """``300`` (seconds), ``90s``, ``5m``, ``1h30m``, ``500ms`` -> positive seconds; else ValueError.

    The units ``promscope tail`` takes (ms to w), as the Pushgateway's own flags read them.
    """
    return _parse_duration(text, _LISTENER_DURATION, _DURATION_SECONDS, "300, 90s, 5m, 1h30m")


def value_callback(parse: Callable[[str], _T]) -> Callable[[click.Context, click.Parameter, Any], _T | None]:
    """A click callback that parses the option's text with ``parse`` (None stays None).

    A ValueError becomes a usage error naming the option. A value that is not text (a default
    given already parsed) passes as it is.
    """

    def callback(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        try:
            return parse(value)
        except ValueError as exc:
            raise click.BadParameter(str(exc), ctx=ctx, param=param) from None

    return callback


def record_option(function: _F) -> _F:
    """The ``--record FILE`` option every live verb (``tail``, ``listen``, the scrape loop) shares."""
    return click.option(
        "--record",
        "record",
        metavar="FILE",
        type=click.Path(dir_okay=False, writable=True),
        default=None,
        help="Write every observation to this session file (see promscope replay FILE).",
    )(function)
