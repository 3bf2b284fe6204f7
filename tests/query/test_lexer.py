"""The lexer: Go's number forms, Prometheus durations, strings with escapes, errors with columns."""

from __future__ import annotations

import math

import pytest

from promscope.query.lexer import QueryError, TokenKind, number_value, parse_duration, tokenize


def kinds(text: str) -> list[tuple[TokenKind, str]]:
    return [(t.kind, t.text) for t in tokenize(text)[:-1]]


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("1", 1.0),
        ("1.5", 1.5),
        (".5", 0.5),
        ("5.", 5.0),
        ("1e3", 1000.0),
        ("2E-2", 0.02),
        ("0x1F", 31.0),
        ("Inf", math.inf),
        ("inf", math.inf),
        ("NaN", math.nan),
    ],
)
def test_numbers(text: str, value: float) -> None:
    (token,) = tokenize(text)[:-1]
    assert token.kind is TokenKind.NUMBER
    got = number_value(token)
    assert (math.isnan(got) and math.isnan(value)) or got == value


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("5m", 300),
        ("1h30m", 5400),
        ("500ms", 0.5),
        ("1d", 86400),
        ("2w", 1209600),
        ("1y", 31536000),
        ("1m30s500ms", 90.5),
    ],
)
def test_durations(text: str, seconds: float) -> None:
    (token,) = tokenize(text)[:-1]
    assert token.kind is TokenKind.DURATION
    assert parse_duration(token.text) == seconds


def test_durations_go_from_largest_unit_to_smallest() -> None:
    with pytest.raises(QueryError, match="not a valid duration"):
        parse_duration("30s1m")


def test_operators_and_punctuation_keep_offsets() -> None:
    tokens = tokenize('sum by (a) (x{b=~"c"}[5m]) >= bool 2')
    assert [t.pos for t in tokens[:4]] == [0, 4, 7, 8]
    assert (TokenKind.OPERATOR, ">=") in [(t.kind, t.text) for t in tokens]
    assert tokens[-1].kind is TokenKind.EOF and tokens[-1].pos == len('sum by (a) (x{b=~"c"}[5m]) >= bool 2')


def test_strings_unescape_like_go() -> None:
    assert kinds(r'"a\"b\n\x41\u00e9\101"') == [(TokenKind.STRING, 'a"b\nAé' + "A")]
    assert kinds(r"'it\'s'") == [(TokenKind.STRING, "it's")]
    assert kinds(r"`raw\d`") == [(TokenKind.STRING, r"raw\d")]


def test_inf_and_nan_are_label_names_inside_braces() -> None:
    assert kinds('x{nan="1"}')[2] == (TokenKind.IDENT, "nan")


def test_colon_is_punctuation_inside_brackets_and_part_of_names_elsewhere() -> None:
    assert kinds("a:b:c") == [(TokenKind.IDENT, "a:b:c")]
    assert (TokenKind.COLON, ":") in kinds("x[5m:1m]")


def test_comments_run_to_the_end_of_the_line() -> None:
    assert kinds("x # the rest\n+ 1") == [
        (TokenKind.IDENT, "x"),
        (TokenKind.OPERATOR, "+"),
        (TokenKind.NUMBER, "1"),
    ]


@pytest.mark.parametrize(
    ("text", "column", "fragment"),
    [
        ("x $ y", 3, "unexpected character: '$'"),
        ('x{a="b', 5, "unterminated quoted string"),
        ("`raw", 1, "unterminated raw string"),
        (r'"\d"', 2, "unknown escape sequence"),
        ("1 ! 2", 4, "unexpected character after '!'"),
        ("5mx", 1, "bad number or duration syntax"),
    ],
)
def test_errors_name_the_column(text: str, column: int, fragment: str) -> None:
    with pytest.raises(QueryError) as caught:
        tokenize(text)
    assert caught.value.column == column
    assert fragment in caught.value.reason
    assert caught.value.message.startswith(f"1:{column}: parse error: ")


def test_caret_points_at_the_column_on_the_right_line() -> None:
    error = QueryError("boom", "sum(\n  x $ y)", 9)
    assert error.message.startswith("2:5: ")
    assert error.caret() == "  x $ y)\n    ^"
