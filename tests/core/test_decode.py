"""Decoding and lexical limits (PS-1xx), including hostile input that must stay fast."""

from __future__ import annotations

import pytest

from promscope.exposition import _decode, parse
from promscope.exposition._diag import DiagnosticSink, ParseLimits
from promscope.model import Severity


def codes(data: bytes | str, fmt: str = "text", **limits: int) -> list[tuple[int, int, str]]:
    result = parse(data, format=fmt, limits=ParseLimits(**limits), semantics=False)
    return [(d.line, d.column, d.code) for d in result.diagnostics]


def test_clean_utf8_is_returned_unchanged() -> None:
    sink = DiagnosticSink()
    assert _decode.decode('a{b="ü"} 1\n'.encode(), sink) == 'a{b="ü"} 1\n'
    assert sink.diagnostics == []


def test_str_input_passes_through() -> None:
    sink = DiagnosticSink()
    assert _decode.decode("x 1\n", sink) == "x 1\n"
    assert sink.diagnostics == []


def test_invalid_utf8_one_diagnostic_per_line_with_column_and_the_rest_parsed() -> None:
    data = b'ok 1\nbad{a="\xff\xfe"} 2\nalso{a="caf\xc3\xa9 \xc3"} 3\nfine 4\n'
    result = parse(data, format="text", semantics=False)
    utf8 = [(d.line, d.column) for d in result.diagnostics if d.code == _decode.INVALID_UTF8]
    assert utf8 == [(2, 8), (3, 14)]
    names = [s.name for f in result.families for s in f.samples]
    assert names == ["ok", "bad", "also", "fine"]
    assert result.family("bad") is not None
    assert result.families[1].samples[0].labels == (("a", "\ufffd\ufffd"),)


def test_invalid_utf8_on_the_last_line_without_newline() -> None:
    assert codes(b'x 1\ny{a="\x80"} 2') == [(2, 6, _decode.INVALID_UTF8)]


@pytest.mark.timeout(120)  # a hang guard, not a speed claim (bench/ measures speed)
def test_many_invalid_lines_stay_linear() -> None:
    data = b'm{a="\xff"} 1\n' * 50_000
    result = parse(data, format="text", semantics=False, limits=ParseLimits(max_diagnostics=100))
    assert result.suppressed + len(result.diagnostics) >= 50_000


def test_crlf_reported_once_and_parsed_as_lf() -> None:
    result = parse(b'# TYPE a gauge\r\na 1\r\na{b="c"} 2\r\n', format="text", semantics=False)
    assert [(d.line, d.column, d.code, d.severity) for d in result.diagnostics] == [
        (1, 15, _decode.CRLF, Severity.ERROR)
    ]
    assert "3 line(s)" in result.diagnostics[0].message
    assert "\\r" in result.diagnostics[0].message
    assert [s.value for s in result.families[0].samples] == [1.0, 2.0]


def test_lone_carriage_return_in_a_value_is_not_crlf() -> None:
    result = parse(b'a{b="x\ry"} 1\n', format="text", semantics=False)
    assert result.diagnostics == ()
    assert result.families[0].samples[0].labels == (("b", "x\ry"),)


def test_nul_reported_per_line_and_judged_by_the_parser() -> None:
    data = b'a{b="x\x00y\x00"} 1\nc 2\x00\n'
    found = codes(data)
    assert (1, 7, _decode.NUL) in found
    assert (2, 4, _decode.NUL) in found
    assert sum(1 for c in found if c[2] == _decode.NUL) == 2
    assert any(c[2] == "PS-204" for c in found)  # "2\x00" is not a number


def test_bom_reported_and_dropped() -> None:
    result = parse("\ufeffa 1\n".encode(), format="text", semantics=False)
    assert [d.code for d in result.diagnostics] == [_decode.BOM]
    assert result.families[0].name == "a"


def test_empty_input() -> None:
    result = parse(b"", format="text", semantics=False)
    assert result.families == () and result.diagnostics == () and result.lines == 0
    result = parse(b"", format="openmetrics", semantics=False)
    assert [d.code for d in result.diagnostics] == ["OM-001"]


@pytest.mark.parametrize("fmt", ["text", "openmetrics"])
@pytest.mark.timeout(120)  # a hang guard, not a speed claim
def test_fifty_megabyte_line_is_reported_and_skipped(fmt: str) -> None:
    line = b'x{a="' + b"v" * (50 * 1024 * 1024) + b'"} 1\n'
    data = b"before 1\n" + line + b"after 2\n" + (b"# EOF\n" if fmt == "openmetrics" else b"")
    result = parse(data, format=fmt, semantics=False)
    assert [(d.line, d.code) for d in result.diagnostics] == [(2, _decode.LINE_TOO_LONG)]
    assert [f.name for f in result.families] == ["before", "after"]


@pytest.mark.parametrize("fmt", ["text", "openmetrics"])
def test_a_million_labels_is_one_diagnostic(fmt: str) -> None:
    labels = ",".join(f'l{i}="v"' for i in range(1_000_000))
    data = f"x{{{labels}}} 1\ny 2\n" + ("# EOF\n" if fmt == "openmetrics" else "")
    result = parse(data.encode(), format=fmt, semantics=False, limits=ParseLimits(max_line_length=1 << 26))
    assert [(d.line, d.code) for d in result.diagnostics] == [(1, _decode.TOO_MANY_LABELS)]
    assert [f.name for f in result.families] == ["y"]


@pytest.mark.parametrize("fmt", ["text", "openmetrics"])
def test_label_name_and_value_length_limits(fmt: str) -> None:
    tail = "# EOF\n" if fmt == "openmetrics" else ""
    long_name = "n" * 40
    data = f'x{{{long_name}="v"}} 1\ny{{a="{"v" * 50}"}} 2\nz{{a="ok"}} 3\n{tail}'
    found = codes(data.encode(), fmt, max_label_name_length=32, max_label_value_length=32)
    assert [(line, code) for line, _, code in found] == [
        (1, _decode.LABEL_NAME_TOO_LONG),
        (2, _decode.LABEL_VALUE_TOO_LONG),
    ]


@pytest.mark.parametrize("fmt", ["text", "openmetrics"])
def test_max_samples_stops_with_one_diagnostic(fmt: str) -> None:
    body = "".join(f'x{{i="{i}"}} {i}\n' for i in range(10)) + ("# EOF\n" if fmt == "openmetrics" else "")
    result = parse(body.encode(), format=fmt, semantics=False, limits=ParseLimits(max_samples=3))
    assert [(d.line, d.code) for d in result.diagnostics] == [(4, _decode.TOO_MANY_SAMPLES)]
    assert result.sample_count == 3


def test_every_ps1_code_is_declared_with_a_summary() -> None:
    assert set(_decode.CODES) == {f"PS-1{i:02d}" for i in range(1, 11)}
    assert all(code.summary for code in _decode.CODES.values())


@pytest.mark.parametrize(
    ("data", "name"),
    [
        (b"\x1f\x8b\x08\x00\x00\x00\x00\x00", "gzip"),
        (b"\x28\xb5\x2f\xfd\x00", "zstd"),
        (b"\xff\x06\x00\x00sNaPpY\x00", "snappy (framed)"),
    ],
)
@pytest.mark.parametrize("fmt", ["auto", "text", "openmetrics", "protobuf"])
def test_compressed_input_is_one_diagnostic_not_a_page_of_garbage(data: bytes, name: str, fmt: str) -> None:
    result = parse(data + bytes(range(256)) * 4, format=fmt)
    assert [(d.line, d.column, d.code) for d in result.diagnostics] == [(1, 1, _decode.COMPRESSED)]
    assert name in result.diagnostics[0].message
    assert result.families == ()


def test_plain_text_that_starts_like_nothing_compressed_is_parsed() -> None:
    assert _decode.compression_of(b"# HELP x y\n") is None
    assert _decode.compression_of("\x1f\x8b as text") is None
