"""Content negotiation: the Accept header a scraper sends, and what a Content-Type means.

Three things live here, each answering a question Prometheus itself answers:

**What does Prometheus ask for?** :func:`accept_header` builds an ``Accept``
header from a list of :class:`ScrapeProtocol` exactly as Prometheus 3 does
from ``scrape_protocols`` (``scrape/scrape.go`` ``acceptHeader``): each
protocol's media type in order, weights counting down from ``q=0.<n+1>``
where ``n`` is the number of protocols Prometheus knows, the
``escaping=`` parameter only on the 1.0.0 text formats, and ``*/*`` last.
The constants are what Prometheus 3 sends for the common configurations:

* :data:`ACCEPT_PROMETHEUS3`: the default ``scrape_protocols``
  (OpenMetrics 1.0.0 and 0.0.1, text 1.0.0 and 0.0.4), UTF-8 names allowed::

      application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.6,
      application/openmetrics-text;version=0.0.1;q=0.5,
      text/plain;version=1.0.0;escaping=allow-utf-8;q=0.4,
      text/plain;version=0.0.4;q=0.3,*/*;q=0.2

  (one line on the wire).
* :data:`ACCEPT_PROMETHEUS3_PROTO_FIRST`: the default when native histograms
  are scraped (protobuf first).
* :data:`ACCEPT_PROMETHEUS2`: what Prometheus 2.49 to 2.55 sent by default.
* :data:`ACCEPT_OPENMETRICS`, :data:`ACCEPT_TEXT`, :data:`ACCEPT_PROTOBUF`:
  ``scrape_protocols`` restricted to one family of formats.
* :func:`accept_for` maps a user's word (``prometheus3``, ``openmetrics``,
  ``text``, ``protobuf``, ``prometheus2``, ``proto-first``) or a raw header to
  a header.

**What does a Content-Type mean?** :func:`format_from_content_type` returns a
:class:`Negotiated`: the :class:`~promscope.model.Format` to parse with (or
None), the format version, whether Prometheus 3 would *fail the scrape* unless
``fallback_scrape_protocol`` is set (``fallback``), a human ``note`` saying
what Prometheus 3 (and 2) do with it, and ``warnings`` about parameters that
are wrong but tolerated. The media type is parsed with the rules of Go's
``mime.ParseMediaType`` (what Prometheus uses), so a header Prometheus cannot
parse is reported as such. Prometheus chooses the parser by media type alone:
``text/plain``, ``application/openmetrics-text`` or
``application/vnd.google.protobuf``; parameters (``version=``,
``escaping=``, ``charset=``, ``proto=``, ``encoding=``) never change the
parser, so they only ever produce warnings here.

**What is this file?** :func:`sniff` guesses the format of bytes with no
Content-Type (files, stdin): protobuf when the data starts with a plausible
varint-delimited ``MetricFamily`` message, OpenMetrics when it has ``# EOF``,
``# UNIT``, an exemplar or an OpenMetrics-only type, text otherwise.

Public names: :data:`ACCEPT_PROMETHEUS3`, :data:`ACCEPT_PROMETHEUS3_PROTO_FIRST`,
:data:`ACCEPT_PROMETHEUS2`, :data:`ACCEPT_OPENMETRICS`, :data:`ACCEPT_TEXT`,
:data:`ACCEPT_PROTOBUF`, :data:`ACCEPT_CHOICES`, :class:`ScrapeProtocol`,
:data:`DEFAULT_SCRAPE_PROTOCOLS`, :data:`PROTO_FIRST_SCRAPE_PROTOCOLS`,
:func:`accept_header`, :func:`accept_for`, :class:`Negotiated`,
:func:`format_from_content_type`, :func:`parse_media_type`,
:class:`MediaTypeError`, :func:`sniff`, and the ``CONTENT_TYPE_*`` constants
(what a compliant exporter sends for each format).
"""

from __future__ import annotations

import enum
import re
from collections.abc import Sequence
from dataclasses import dataclass

from promscope.model import Format

__all__ = [
    "ACCEPT_CHOICES",
    "ACCEPT_OPENMETRICS",
    "ACCEPT_PROMETHEUS2",
    "ACCEPT_PROMETHEUS3",
    "ACCEPT_PROMETHEUS3_PROTO_FIRST",
    "ACCEPT_PROTOBUF",
    "ACCEPT_TEXT",
    "CONTENT_TYPE_OPENMETRICS",
    "CONTENT_TYPE_PROTOBUF",
    "CONTENT_TYPE_TEXT",
    "CONTENT_TYPE_TEXT_UTF8",
    "DEFAULT_SCRAPE_PROTOCOLS",
    "ESCAPING_SCHEMES",
    "PROTO_FIRST_SCRAPE_PROTOCOLS",
    "MediaTypeError",
    "Negotiated",
    "ScrapeProtocol",
    "accept_for",
    "accept_header",
    "format_from_content_type",
    "parse_media_type",
    "sniff",
]

# --------------------------------------------------------------------------------------------------
# Media types and the Accept header
# --------------------------------------------------------------------------------------------------

MEDIA_TEXT = "text/plain"
MEDIA_OPENMETRICS = "application/openmetrics-text"
MEDIA_PROTOBUF = "application/vnd.google.protobuf"
PROTOBUF_MESSAGE = "io.prometheus.client.MetricFamily"

CONTENT_TYPE_TEXT = "text/plain; version=0.0.4; charset=utf-8"
"""What client libraries send for the classic text format."""
CONTENT_TYPE_TEXT_UTF8 = "text/plain; version=1.0.0; charset=utf-8; escaping=allow-utf-8"
"""Text format 1.0.0 (quoted UTF-8 names)."""
CONTENT_TYPE_OPENMETRICS = "application/openmetrics-text; version=1.0.0; charset=utf-8"
CONTENT_TYPE_PROTOBUF = f"{MEDIA_PROTOBUF}; proto={PROTOBUF_MESSAGE}; encoding=delimited"

ESCAPING_SCHEMES = ("allow-utf-8", "underscores", "dots", "values")
"""Values of the ``escaping=`` parameter (prometheus/common ``model.EscapingScheme``)."""


class ScrapeProtocol(enum.StrEnum):
    """Prometheus's ``scrape_protocols`` names (``config/config.go``)."""

    PROMETHEUS_PROTO = "PrometheusProto"
    PROMETHEUS_TEXT_0_0_4 = "PrometheusText0.0.4"
    PROMETHEUS_TEXT_1_0_0 = "PrometheusText1.0.0"
    OPENMETRICS_TEXT_0_0_1 = "OpenMetricsText0.0.1"
    OPENMETRICS_TEXT_1_0_0 = "OpenMetricsText1.0.0"

    @property
    def header(self) -> str:
        """The media type Prometheus puts in the Accept header for this protocol."""
        return _PROTOCOL_HEADERS[self]

    @property
    def wire_format(self) -> Format:
        """The promscope format this protocol carries."""
        return _PROTOCOL_FORMATS[self]

    @property
    def takes_escaping(self) -> bool:
        """Only the 1.0.0 text formats carry ``escaping=`` in Prometheus's Accept header."""
        return self in (ScrapeProtocol.PROMETHEUS_TEXT_1_0_0, ScrapeProtocol.OPENMETRICS_TEXT_1_0_0)


_PROTOCOL_HEADERS = {
    ScrapeProtocol.PROMETHEUS_PROTO: f"{MEDIA_PROTOBUF};proto={PROTOBUF_MESSAGE};encoding=delimited",
    ScrapeProtocol.PROMETHEUS_TEXT_0_0_4: f"{MEDIA_TEXT};version=0.0.4",
    ScrapeProtocol.PROMETHEUS_TEXT_1_0_0: f"{MEDIA_TEXT};version=1.0.0",
    ScrapeProtocol.OPENMETRICS_TEXT_0_0_1: f"{MEDIA_OPENMETRICS};version=0.0.1",
    ScrapeProtocol.OPENMETRICS_TEXT_1_0_0: f"{MEDIA_OPENMETRICS};version=1.0.0",
}
_PROTOCOL_FORMATS = {
    ScrapeProtocol.PROMETHEUS_PROTO: Format.PROTOBUF,
    ScrapeProtocol.PROMETHEUS_TEXT_0_0_4: Format.TEXT,
    ScrapeProtocol.PROMETHEUS_TEXT_1_0_0: Format.TEXT,
    ScrapeProtocol.OPENMETRICS_TEXT_0_0_1: Format.OPENMETRICS,
    ScrapeProtocol.OPENMETRICS_TEXT_1_0_0: Format.OPENMETRICS,
}

DEFAULT_SCRAPE_PROTOCOLS: tuple[ScrapeProtocol, ...] = (
    ScrapeProtocol.OPENMETRICS_TEXT_1_0_0,
    ScrapeProtocol.OPENMETRICS_TEXT_0_0_1,
    ScrapeProtocol.PROMETHEUS_TEXT_1_0_0,
    ScrapeProtocol.PROMETHEUS_TEXT_0_0_4,
)
"""Prometheus 3's default ``scrape_protocols``."""

PROTO_FIRST_SCRAPE_PROTOCOLS: tuple[ScrapeProtocol, ...] = (
    ScrapeProtocol.PROMETHEUS_PROTO,
    *DEFAULT_SCRAPE_PROTOCOLS,
)
"""Prometheus 3's default when native histograms are scraped."""


def accept_header(
    protocols: Sequence[ScrapeProtocol | str],
    *,
    escaping: str | None = "allow-utf-8",
    known_protocols: int = len(ScrapeProtocol),
) -> str:
    """The Accept header Prometheus sends for ``scrape_protocols``, byte for byte.

    ``escaping`` is the metric name escaping scheme (Prometheus 3 sends
    ``allow-utf-8`` unless ``metric_name_escaping_scheme`` says otherwise;
    None leaves the parameter out, as Prometheus 2 did).
    ``known_protocols`` sets the first weight (``q=0.<known+1>``); Prometheus
    2 knew four protocols. Raises ValueError for an unknown protocol name or
    an empty list (Prometheus refuses both in its config).
    """
    if not protocols:
        raise ValueError("scrape_protocols cannot be empty")
    if escaping is not None and escaping not in ESCAPING_SCHEMES:
        raise ValueError(f"unknown escaping scheme {escaping!r}; one of {', '.join(ESCAPING_SCHEMES)}")
    parts: list[str] = []
    weight = known_protocols + 1
    seen: set[ScrapeProtocol] = set()
    for item in protocols:
        try:
            protocol = ScrapeProtocol(item)
        except ValueError:
            names = ", ".join(p.value for p in ScrapeProtocol)
            raise ValueError(f"unknown scrape protocol {item!r}; one of {names}") from None
        if protocol in seen:
            raise ValueError(f"duplicated protocol in scrape_protocols: {protocol.value}")
        seen.add(protocol)
        value = protocol.header
        if escaping is not None and protocol.takes_escaping:
            value += f";escaping={escaping}"
        parts.append(f"{value};q=0.{weight}")
        weight -= 1
    parts.append(f"*/*;q=0.{weight}")
    return ",".join(parts)


ACCEPT_PROMETHEUS3 = accept_header(DEFAULT_SCRAPE_PROTOCOLS)
"""Exactly what Prometheus 3 sends by default."""
ACCEPT_PROMETHEUS3_PROTO_FIRST = accept_header(PROTO_FIRST_SCRAPE_PROTOCOLS)
"""What Prometheus 3 sends with ``scrape_native_histograms`` (protobuf first)."""
ACCEPT_PROMETHEUS2 = accept_header(
    DEFAULT_SCRAPE_PROTOCOLS[:2] + DEFAULT_SCRAPE_PROTOCOLS[3:], escaping=None, known_protocols=4
)
"""What Prometheus 2.49-2.55 sent by default (no text 1.0.0, no escaping)."""
ACCEPT_OPENMETRICS = accept_header(
    (ScrapeProtocol.OPENMETRICS_TEXT_1_0_0, ScrapeProtocol.OPENMETRICS_TEXT_0_0_1)
)
"""Prometheus 3 with ``scrape_protocols: [OpenMetricsText1.0.0, OpenMetricsText0.0.1]``."""
ACCEPT_TEXT = accept_header((ScrapeProtocol.PROMETHEUS_TEXT_1_0_0, ScrapeProtocol.PROMETHEUS_TEXT_0_0_4))
"""Prometheus 3 with ``scrape_protocols: [PrometheusText1.0.0, PrometheusText0.0.4]``."""
ACCEPT_PROTOBUF = accept_header((ScrapeProtocol.PROMETHEUS_PROTO,))
"""Prometheus 3 with ``scrape_protocols: [PrometheusProto]``."""

ACCEPT_CHOICES: dict[str, str] = {
    "prometheus3": ACCEPT_PROMETHEUS3,
    "proto-first": ACCEPT_PROMETHEUS3_PROTO_FIRST,
    "prometheus2": ACCEPT_PROMETHEUS2,
    "openmetrics": ACCEPT_OPENMETRICS,
    "text": ACCEPT_TEXT,
    "protobuf": ACCEPT_PROTOBUF,
}
"""Named Accept headers, by the word a user types."""


def accept_for(choice: str) -> str:
    """The Accept header for a named choice (see :data:`ACCEPT_CHOICES`) or a raw header.

    A raw header must contain a ``/``; anything else that is not a known name
    raises ValueError listing the names.
    """
    named = ACCEPT_CHOICES.get(choice.strip().lower())
    if named is not None:
        return named
    if "/" in choice:
        value = choice.strip()
        if any(ch in value for ch in "\r\n\0"):
            raise ValueError("an Accept header cannot contain line breaks or NUL")
        return value
    raise ValueError(
        f"unknown Accept choice {choice!r}: use one of {', '.join(ACCEPT_CHOICES)} or a raw header value"
    )


# --------------------------------------------------------------------------------------------------
# Content-Type -> format
# --------------------------------------------------------------------------------------------------


class MediaTypeError(ValueError):
    """A Content-Type that Go's ``mime.ParseMediaType`` (and so Prometheus) cannot parse."""


_TSPECIALS = frozenset('()<>@,;:\\"/[]?=')


def _is_token_char(ch: str) -> bool:
    return "\x20" < ch < "\x7f" and ch not in _TSPECIALS


def _consume_token(value: str) -> tuple[str, str]:
    end = 0
    while end < len(value) and _is_token_char(value[end]):
        end += 1
    return value[:end], value[end:]


def _consume_value(value: str) -> tuple[str, str]:
    """A token or a quoted-string, as Go's ``consumeValue`` reads it."""
    if not value:
        return "", value
    if value[0] != '"':
        return _consume_token(value)
    out: list[str] = []
    index = 1
    while index < len(value):
        ch = value[index]
        if ch == '"':
            return "".join(out), value[index + 1 :]
        if ch == "\\" and index + 1 < len(value) and value[index + 1] in _TSPECIALS:
            index += 1
            ch = value[index]
        elif ch in "\r\n":
            return "", value
        out.append(ch)
        index += 1
    return "", value  # no closing quote


def parse_media_type(content_type: str) -> tuple[str, dict[str, str]]:
    """Split a Content-Type into a lower-cased media type and parameters, as Go does.

    Follows ``mime.ParseMediaType``: the media type is lower-cased, a bare
    ``type`` with no subtype is accepted, parameter names are lower-cased,
    values are tokens or quoted strings, a trailing ``;`` is ignored, and a
    duplicate or malformed parameter is an error. Raises :class:`MediaTypeError`.
    """
    base, _, _ = content_type.partition(";")
    media_type = base.strip().lower()
    kind, rest = _consume_token(media_type)
    if not kind:
        raise MediaTypeError("no media type")
    if rest:
        if not rest.startswith("/"):
            raise MediaTypeError("expected slash after first token")
        subtype, rest = _consume_token(rest[1:])
        if not subtype:
            raise MediaTypeError("expected token after slash")
        if rest:
            raise MediaTypeError("unexpected content after media subtype")
    params: dict[str, str] = {}
    remaining = content_type[len(base) :]
    while remaining:
        remaining = remaining.lstrip()
        if not remaining:
            break
        key, value, rest = _consume_param(remaining)
        if not key:
            if remaining.strip() == ";":
                break  # a trailing semicolon is not an error
            raise MediaTypeError(f"invalid media parameter near {remaining.strip()[:40]!r}")
        if key in params:
            raise MediaTypeError(f"duplicate parameter name {key!r}")
        params[key] = value
        remaining = rest
    return media_type, params


def _consume_param(value: str) -> tuple[str, str, str]:
    rest = value.lstrip()
    if not rest.startswith(";"):
        return "", "", value
    rest = rest[1:].lstrip()
    name, rest = _consume_token(rest)
    name = name.lower()
    if not name:
        return "", "", value
    rest = rest.lstrip()
    if not rest.startswith("="):
        return "", "", value
    rest = rest[1:].lstrip()
    param_value, after = _consume_value(rest)
    if not param_value and after == rest:
        return "", "", value
    return name, param_value, after


@dataclass(frozen=True, slots=True)
class Negotiated:
    """What a Content-Type means to promscope and to a Prometheus server.

    ``format`` is the parser to use, or None when the Content-Type names none
    (missing, unparseable or unsupported; promscope then sniffs the body).
    ``fallback`` is True when Prometheus 3 fails the scrape unless
    ``fallback_scrape_protocol`` is set. ``note`` says in one sentence what
    Prometheus does; ``warnings`` lists tolerated problems with the parameters.
    """

    format: Format | None
    version: str | None
    fallback: bool
    note: str
    content_type: str | None = None
    """The header as received (None when absent)."""
    media_type: str | None = None
    """Lower-cased ``type/subtype``, when it parsed."""
    params: tuple[tuple[str, str], ...] = ()
    escaping: str | None = None
    charset: str | None = None
    warnings: tuple[str, ...] = ()

    @property
    def prometheus3_fails(self) -> bool:
        """Prometheus 3 fails the scrape (``up`` 0) unless a fallback protocol is configured."""
        return self.fallback

    def param(self, name: str) -> str | None:
        for key, value in self.params:
            if key == name:
                return value
        return None

    def describe(self) -> str:
        """``openmetrics 1.0.0`` or ``text`` or ``none``: the format named, for a one-line summary."""
        if self.format is None:
            return "none"
        return f"{self.format.value} {self.version}" if self.version else self.format.value


_PROMETHEUS2_TEXT = "Prometheus 2 parsed it as text 0.0.4"
_KNOWN_VERSIONS = {
    Format.TEXT: ("0.0.4", "1.0.0"),
    Format.OPENMETRICS: ("1.0.0", "0.0.1"),
}


def format_from_content_type(content_type: str | None) -> Negotiated:
    """Decide the format from a Content-Type header, the way Prometheus 3 does.

    Never raises: an absent, unparseable or unsupported header gives
    ``format=None`` and ``fallback=True`` with a note.
    """
    if content_type is None or not content_type.strip():
        return Negotiated(
            format=None,
            version=None,
            fallback=True,
            note=(
                "Prometheus 3 rejects a missing Content-Type unless fallback_scrape_protocol is set; "
                "Prometheus 2 assumed text 0.0.4"
            ),
            content_type=content_type,
        )
    try:
        media_type, params = parse_media_type(content_type)
    except MediaTypeError as exc:
        return Negotiated(
            format=None,
            version=None,
            fallback=True,
            note=(
                f"Prometheus 3 cannot parse this Content-Type ({exc}) and fails the scrape unless "
                f"fallback_scrape_protocol is set; {_PROMETHEUS2_TEXT}"
            ),
            content_type=content_type,
        )
    pairs = tuple(params.items())
    escaping = params.get("escaping")
    charset = params.get("charset")
    warnings: list[str] = []
    if charset is not None and charset.lower() not in ("utf-8", "utf8"):
        warnings.append(f"charset={charset}: Prometheus reads every exposition as UTF-8 regardless")
    if escaping is not None and escaping not in ESCAPING_SCHEMES:
        warnings.append(f"escaping={escaping} is not a known scheme ({', '.join(ESCAPING_SCHEMES)})")

    if media_type == MEDIA_TEXT:
        fmt = Format.TEXT
        version = params.get("version")
        if version is None:
            warnings.append(
                "text/plain without version=0.0.4: Prometheus parses it as the text format anyway"
            )
        elif version not in _KNOWN_VERSIONS[fmt]:
            warnings.append(
                f"text/plain version={version} is not 0.0.4 or 1.0.0; Prometheus ignores the version "
                "and parses the text format"
            )
        elif version == "0.0.4" and escaping is not None and escaping != "underscores":
            warnings.append(f"escaping={escaping} with version 0.0.4: 0.0.4 cannot carry UTF-8 names")
        note = "Prometheus 3 parses it with the text parser"
    elif media_type == MEDIA_OPENMETRICS:
        fmt = Format.OPENMETRICS
        version = params.get("version")
        if version is None:
            warnings.append(
                "application/openmetrics-text without version=: the OpenMetrics spec requires it "
                "(Prometheus parses OpenMetrics 1.0 anyway)"
            )
        elif version not in _KNOWN_VERSIONS[fmt]:
            warnings.append(
                f"OpenMetrics version={version} is not 1.0.0 or 0.0.1; "
                "Prometheus parses it as OpenMetrics 1.0"
            )
        note = "Prometheus 3 parses it with the OpenMetrics parser"
    elif media_type == MEDIA_PROTOBUF:
        fmt = Format.PROTOBUF
        version = None
        proto = params.get("proto")
        encoding = params.get("encoding")
        if proto is not None and proto != PROTOBUF_MESSAGE:
            warnings.append(f"proto={proto}: Prometheus only reads {PROTOBUF_MESSAGE} messages")
        elif proto is None:
            warnings.append(f"protobuf Content-Type without proto={PROTOBUF_MESSAGE}")
        if encoding is not None and encoding != "delimited":
            warnings.append(
                f"encoding={encoding}: Prometheus reads the body as length-delimited binary protobuf, "
                "so this body will fail to parse"
            )
        elif encoding is None:
            warnings.append("protobuf Content-Type without encoding=delimited")
        note = "Prometheus 3 parses it with the protobuf parser (delimited MetricFamily messages)"
    else:
        return Negotiated(
            format=None,
            version=None,
            fallback=True,
            note=(
                f"Prometheus 3 rejects the unsupported Content-Type {media_type!r} unless "
                f"fallback_scrape_protocol is set; {_PROMETHEUS2_TEXT}"
            ),
            content_type=content_type,
            media_type=media_type,
            params=pairs,
            escaping=escaping,
            charset=charset,
            warnings=tuple(warnings),
        )
    return Negotiated(
        format=fmt,
        version=version,
        fallback=False,
        note=note,
        content_type=content_type,
        media_type=media_type,
        params=pairs,
        escaping=escaping,
        charset=charset,
        warnings=tuple(warnings),
    )


# --------------------------------------------------------------------------------------------------
# Sniffing
# --------------------------------------------------------------------------------------------------

# MetricFamily fields: (field number -> protobuf wire type). 1 name, 2 help, 3 type (enum), 4 metric, 5 unit.
_FAMILY_FIELDS = {1: 2, 2: 2, 3: 0, 4: 2, 5: 2}
_MAX_MESSAGE = 64 << 20

_OM_MARKERS = re.compile(
    rb"^# EOF[ \t]*\r?$"  # the mandatory terminator
    rb"|^# UNIT "  # UNIT only exists in OpenMetrics
    rb"|^# TYPE [^ \n]+ (?:stateset|info|gaugehistogram)[ \t]*\r?$"  # OpenMetrics-only types
    rb"|^[^#\n][^\n]*?[ \t]# \{",  # an exemplar on a sample line
    re.MULTILINE,
)


def _read_varint(data: bytes, pos: int) -> tuple[int, int] | None:
    """``(value, next position)``, or None when the varint is truncated or longer than 10 bytes."""
    result = 0
    shift = 0
    while pos < len(data) and shift < 70:
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
    return None


def _plausible_name(name: bytes) -> bool:
    if not name:
        return False
    try:
        text = name.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return all(ch >= " " and ch != "\x7f" for ch in text)


def _plausible_family(message: bytes, *, truncated: bool = False) -> bool:
    """True when ``message`` reads as a MetricFamily.

    Serializers write fields in field-number order, so the message must start
    with a printable, non-empty name (field 1) and every field must be a known
    one, with its wire type, in non-decreasing order. With ``truncated`` the
    message may stop part-way through a field.
    """
    pos = 0
    last = 0
    while pos < len(message):
        tag = _read_varint(message, pos)
        if tag is None:
            return truncated
        key, pos = tag
        number, wire_type = key >> 3, key & 7
        if _FAMILY_FIELDS.get(number) != wire_type or number < last or (last == 0 and number != 1):
            return False
        last = number
        value = _read_varint(message, pos)
        if value is None:
            return truncated
        length, pos = value
        if wire_type == 2:
            if pos + length > len(message):
                return truncated and (number != 1 or _plausible_name(message[pos:]))
            chunk = message[pos : pos + length]
            if number == 1 and not _plausible_name(chunk):
                return False
            if number in (2, 5):
                try:
                    chunk.decode("utf-8")
                except UnicodeDecodeError:
                    return False
            pos += length
    return last > 0


def _looks_like_protobuf(data: bytes) -> bool:
    header = _read_varint(data, 0)
    if header is None:
        return False
    length, start = header
    if length < 2 or length > _MAX_MESSAGE:
        return False
    end = start + length
    if end > len(data):
        return _plausible_family(data[start:], truncated=True)
    return _plausible_family(data[start:end])


def sniff(data: bytes | str) -> Format:
    """Guess the format of an exposition that came without a Content-Type.

    Protobuf when the bytes start with a varint length followed by a message
    that reads as a ``MetricFamily``; OpenMetrics when a line is ``# EOF``,
    a ``# UNIT`` comment, a ``# TYPE`` with an OpenMetrics-only type, or a
    sample carries an exemplar; the text format otherwise (including empty
    input).
    """
    raw = data.encode("utf-8", "surrogateescape") if isinstance(data, str) else data
    if not raw:
        return Format.TEXT
    if _looks_like_protobuf(raw):
        return Format.PROTOBUF
    if _OM_MARKERS.search(raw):
        return Format.OPENMETRICS
    return Format.TEXT
