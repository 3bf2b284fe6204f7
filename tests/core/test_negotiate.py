"""Accept headers, Content-Type decisions and format sniffing (promscope.exposition.negotiate)."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from promscope.exposition import negotiate
from promscope.exposition.negotiate import (
    ACCEPT_OPENMETRICS,
    ACCEPT_PROMETHEUS2,
    ACCEPT_PROMETHEUS3,
    ACCEPT_PROMETHEUS3_PROTO_FIRST,
    ACCEPT_PROTOBUF,
    ACCEPT_TEXT,
    MediaTypeError,
    ScrapeProtocol,
    accept_for,
    accept_header,
    format_from_content_type,
    parse_media_type,
    sniff,
)
from promscope.model import Format

# -- Accept headers: byte for byte what Prometheus sends (scrape/scrape_test.go TestAcceptHeader) -----------


def test_prometheus3_default_accept_header_is_byte_exact() -> None:
    assert ACCEPT_PROMETHEUS3 == (
        "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.6,"
        "application/openmetrics-text;version=0.0.1;q=0.5,"
        "text/plain;version=1.0.0;escaping=allow-utf-8;q=0.4,"
        "text/plain;version=0.0.4;q=0.3,*/*;q=0.2"
    )


def test_proto_first_accept_header_is_byte_exact() -> None:
    assert ACCEPT_PROMETHEUS3_PROTO_FIRST == (
        "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.6,"
        "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.5,"
        "application/openmetrics-text;version=0.0.1;q=0.4,"
        "text/plain;version=1.0.0;escaping=allow-utf-8;q=0.3,"
        "text/plain;version=0.0.4;q=0.2,*/*;q=0.1"
    )


def test_escaping_scheme_is_carried_only_by_the_1_0_0_formats() -> None:
    header = accept_header(negotiate.DEFAULT_SCRAPE_PROTOCOLS, escaping="underscores")
    assert header == (
        "application/openmetrics-text;version=1.0.0;escaping=underscores;q=0.6,"
        "application/openmetrics-text;version=0.0.1;q=0.5,"
        "text/plain;version=1.0.0;escaping=underscores;q=0.4,"
        "text/plain;version=0.0.4;q=0.3,*/*;q=0.2"
    )


def test_prometheus2_header_has_no_escaping_and_four_known_protocols() -> None:
    assert ACCEPT_PROMETHEUS2 == (
        "application/openmetrics-text;version=1.0.0;q=0.5,"
        "application/openmetrics-text;version=0.0.1;q=0.4,"
        "text/plain;version=0.0.4;q=0.3,*/*;q=0.2"
    )


def test_single_format_headers_prefer_their_format() -> None:
    assert ACCEPT_PROTOBUF.startswith(
        "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily"
    )
    assert ACCEPT_PROTOBUF.endswith("*/*;q=0.5")
    assert ACCEPT_OPENMETRICS.startswith("application/openmetrics-text;version=1.0.0")
    assert "text/plain" not in ACCEPT_OPENMETRICS
    assert ACCEPT_TEXT.startswith("text/plain;version=1.0.0;escaping=allow-utf-8;q=0.6")
    assert "openmetrics" not in ACCEPT_TEXT


def test_accept_header_accepts_protocol_names_as_strings() -> None:
    assert accept_header(["PrometheusText0.0.4"]) == "text/plain;version=0.0.4;q=0.6,*/*;q=0.5"


@pytest.mark.parametrize(
    ("protocols", "message"),
    [
        ([], "cannot be empty"),
        (["Bogus"], "unknown scrape protocol"),
        ([ScrapeProtocol.PROMETHEUS_PROTO, "PrometheusProto"], "duplicated"),
    ],
    ids=["empty", "unknown", "duplicate"],
)
def test_accept_header_refuses_what_prometheus_config_refuses(protocols: list[str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        accept_header(protocols)


def test_accept_header_refuses_unknown_escaping() -> None:
    with pytest.raises(ValueError, match="escaping"):
        accept_header(negotiate.DEFAULT_SCRAPE_PROTOCOLS, escaping="spaces")


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ("prometheus3", ACCEPT_PROMETHEUS3),
        ("PROMETHEUS3", ACCEPT_PROMETHEUS3),
        ("openmetrics", ACCEPT_OPENMETRICS),
        ("text", ACCEPT_TEXT),
        ("protobuf", ACCEPT_PROTOBUF),
        ("prometheus2", ACCEPT_PROMETHEUS2),
        ("text/plain;version=0.0.4", "text/plain;version=0.0.4"),
    ],
)
def test_accept_for_maps_names_and_passes_raw_headers(choice: str, expected: str) -> None:
    assert accept_for(choice) == expected


@pytest.mark.parametrize("choice", ["json", "text/plain\r\nX-Evil: 1"])
def test_accept_for_refuses_unknown_words_and_header_injection(choice: str) -> None:
    with pytest.raises(ValueError):
        accept_for(choice)


# -- Content-Type -> format ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content_type", "fmt", "version"),
    [
        ("text/plain; version=0.0.4; charset=utf-8", Format.TEXT, "0.0.4"),
        ("text/plain; version=0.0.4", Format.TEXT, "0.0.4"),
        ("text/plain;version=1.0.0;escaping=allow-utf-8", Format.TEXT, "1.0.0"),
        ("TEXT/Plain; Version=0.0.4", Format.TEXT, "0.0.4"),
        ("application/openmetrics-text; version=1.0.0; charset=utf-8", Format.OPENMETRICS, "1.0.0"),
        ("application/openmetrics-text; version=0.0.1; charset=utf-8", Format.OPENMETRICS, "0.0.1"),
        (
            "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited",
            Format.PROTOBUF,
            None,
        ),
    ],
)
def test_supported_content_types(content_type: str, fmt: Format, version: str | None) -> None:
    decided = format_from_content_type(content_type)
    assert decided.format is fmt
    assert decided.version == version
    assert decided.fallback is False
    assert decided.warnings == ()
    assert "Prometheus 3 parses it" in decided.note


def test_missing_content_type_fails_prometheus3_and_says_what_prometheus2_did() -> None:
    for missing in (None, "", "   "):
        decided = format_from_content_type(missing)
        assert decided.format is None
        assert decided.fallback is True
        assert decided.prometheus3_fails
        assert "fallback_scrape_protocol" in decided.note
        assert "Prometheus 2 assumed text 0.0.4" in decided.note


@pytest.mark.parametrize("content_type", ["text/html; charset=utf-8", "application/json", "text"])
def test_unsupported_content_type_fails_prometheus3(content_type: str) -> None:
    decided = format_from_content_type(content_type)
    assert decided.format is None
    assert decided.fallback is True
    assert "unsupported Content-Type" in decided.note
    assert decided.media_type == content_type.split(";")[0]


@pytest.mark.parametrize(
    "content_type",
    ["text/plain; version", "text/plain; version=0.0.4; version=1.0.0", "/plain", "text/", "text/plain x"],
)
def test_unparseable_content_type_fails_prometheus3(content_type: str) -> None:
    decided = format_from_content_type(content_type)
    assert decided.format is None
    assert decided.fallback is True
    assert "cannot parse" in decided.note


@pytest.mark.parametrize(
    ("content_type", "fragment"),
    [
        ("text/plain", "without version"),
        ("text/plain; version=0.0.5", "version=0.0.5"),
        ("text/plain; version=0.0.4; charset=iso-8859-1", "charset=iso-8859-1"),
        ("text/plain; version=0.0.4; escaping=allow-utf-8", "0.0.4 cannot carry UTF-8"),
        ("text/plain; version=1.0.0; escaping=spaces", "not a known scheme"),
        ("application/openmetrics-text", "requires it"),
        ("application/openmetrics-text; version=2.0.0", "version=2.0.0"),
        ("application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=text", "fail"),
        ("application/vnd.google.protobuf; proto=foo.Bar; encoding=delimited", "proto=foo.Bar"),
        ("application/vnd.google.protobuf", "without proto="),
    ],
)
def test_tolerated_but_wrong_parameters_warn(content_type: str, fragment: str) -> None:
    decided = format_from_content_type(content_type)
    assert decided.format is not None, "Prometheus picks the parser by media type alone"
    assert decided.fallback is False
    assert any(fragment in warning for warning in decided.warnings), decided.warnings


def test_negotiated_exposes_parameters() -> None:
    decided = format_from_content_type('text/plain; version=1.0.0; escaping="allow-utf-8"; charset=UTF-8')
    assert decided.escaping == "allow-utf-8"
    assert decided.charset == "UTF-8"
    assert decided.param("version") == "1.0.0"
    assert decided.param("nope") is None
    assert decided.describe() == "text 1.0.0"
    assert format_from_content_type(None).describe() == "none"


def test_parse_media_type_follows_go_rules() -> None:
    assert parse_media_type("Text/Plain ; Version=0.0.4 ;") == ("text/plain", {"version": "0.0.4"})
    assert parse_media_type('a/b; x="quoted \\"value\\""') == ("a/b", {"x": 'quoted "value"'})
    assert parse_media_type("text") == ("text", {})
    for bad in ("", ";x=1", "a/b; x", 'a/b; x="unterminated', "a/b; x=1; X=2"):
        with pytest.raises(MediaTypeError):
            parse_media_type(bad)


@given(st.text(max_size=60))
def test_format_from_content_type_never_raises(content_type: str) -> None:
    decided = format_from_content_type(content_type)
    assert (decided.format is None) == decided.fallback


# -- sniffing ---------------------------------------------------------------------------------------------


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _family(name: str, help_text: str = "", metric_type: int = 0, samples: int = 1) -> bytes:
    body = _field(1, name.encode())
    if help_text:
        body += _field(2, help_text.encode())
    body += _varint(3 << 3) + _varint(metric_type)
    for index in range(samples):
        gauge = _varint(1 << 3 | 1) + struct.pack("<d", float(index))  # Gauge.value, a double
        metric = _field(1, _field(1, b"a") + _field(2, str(index).encode())) + _field(2, gauge)
        body += _field(4, metric)
    return _varint(len(body)) + body


def test_sniff_protobuf() -> None:
    data = _family("up", "whether the target is up", 1) + _family("http_requests_total", "", 0, 3)
    assert sniff(data) is Format.PROTOBUF


def test_sniff_truncated_protobuf_prefix() -> None:
    data = _family("process_cpu_seconds_total", "Total user and system CPU time.", 0, 40)
    assert sniff(data[:20]) is Format.PROTOBUF


@pytest.mark.parametrize(
    "length",
    [9, 10, 13, 32, 35],
    ids=lambda n: f"len{n}",
)
def test_sniff_protobuf_whose_length_byte_looks_like_text(length: int) -> None:
    # Message lengths 9, 10, 13, 32 and 35 start with \t, \n, \r, space and '#'.
    name_len = length - 2 - 2
    body = _field(1, b"m" * name_len) + _varint(3 << 3) + _varint(1)
    assert len(body) == length
    assert sniff(_varint(len(body)) + body) is Format.PROTOBUF


@pytest.mark.parametrize(
    ("data", "fmt"),
    [
        (b"", Format.TEXT),
        (b"# HELP up whether\n# TYPE up gauge\nup 1\n", Format.TEXT),
        (b"up 1\n", Format.TEXT),
        (b"\n\nfoo_total 3 1700000000000\n", Format.TEXT),
        (b'{"quoted.name"} 1\n', Format.TEXT),
        (b"# TYPE up gauge\nup 1\n# EOF\n", Format.OPENMETRICS),
        (b"# TYPE up gauge\nup 1\n# EOF", Format.OPENMETRICS),
        (b"# TYPE x_seconds gauge\n# UNIT x_seconds seconds\nx_seconds 1\n", Format.OPENMETRICS),
        (b'# TYPE a counter\na_total 1 # {trace_id="abc"} 1\n', Format.OPENMETRICS),
        (b'# TYPE s stateset\ns{s="a"} 1\n', Format.OPENMETRICS),
        (b"# HELP h has # {braces} in help\nh 1\n", Format.TEXT),
        ("up 1\n# EOF\n", Format.OPENMETRICS),
        ("métrique 1\n", Format.TEXT),
    ],
    ids=[
        "empty",
        "text",
        "bare-sample",
        "leading-blank-lines",
        "quoted-utf8-name",
        "om-eof",
        "om-eof-no-newline",
        "om-unit",
        "om-exemplar",
        "om-stateset",
        "help-with-brace",
        "str-om",
        "str-utf8-text",
    ],
)
def test_sniff_text_formats(data: bytes | str, fmt: Format) -> None:
    assert sniff(data) is fmt


@given(st.binary(max_size=200))
def test_sniff_never_raises(data: bytes) -> None:
    assert sniff(data) in set(Format)


@given(st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), min_size=1, max_size=80))
def test_printable_text_lines_never_sniff_as_protobuf(line: str) -> None:
    assert sniff(line + "\n" + line + "\n") is not Format.PROTOBUF
