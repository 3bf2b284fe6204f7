"""The parser: PromQL's precedence, the subset's type checks, and errors with columns and upstream wording."""

from __future__ import annotations

import pytest

from promscope.query import QueryError, parse
from promscope.query.ast import (
    Aggregate,
    Binary,
    Call,
    MatrixSelector,
    NumberLiteral,
    Paren,
    Unary,
    ValueType,
    VectorSelector,
)


def shape(node: object) -> str:
    """The tree with explicit parentheses, to compare precedence."""
    if isinstance(node, Binary):
        return f"({shape(node.lhs)} {node.op} {shape(node.rhs)})"
    if isinstance(node, Unary):
        return f"(-{shape(node.expr)})"
    if isinstance(node, Paren):
        return shape(node.expr)
    return str(node)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a + b * c", "(a + (b * c))"),
        ("a * b + c", "((a * b) + c)"),
        ("a - b - c", "((a - b) - c)"),
        ("a ^ b ^ c", "(a ^ (b ^ c))"),
        ("-a ^ b", "(-(a ^ b))"),
        ("-a * b", "((-a) * b)"),
        ("a > b + 1", "(a > (b + 1))"),
        ("a or b and c unless d", "(a or ((b and c) unless d))"),
        ("a == b or c", "((a == b) or c)"),
        ("a + b % c / d", "(a + ((b % c) / d))"),
        ("(a + b) * c", "((a + b) * c)"),
    ],
)
def test_precedence_is_prometheus(text: str, expected: str) -> None:
    assert shape(parse(text)) == expected


def test_unary_minus_folds_into_numbers() -> None:
    assert parse("-2") == NumberLiteral(-2.0, pos=0)
    node = parse("-2 ^ 2")
    assert shape(node) == "(-(2 ^ 2))"


def test_selector_parts() -> None:
    node = parse('http_requests_total{code=~"5..", method!="GET"} offset 5m')
    assert isinstance(node, VectorSelector)
    assert node.name == "http_requests_total"
    assert [(m.name, m.op, m.value) for m in node.matchers] == [
        ("__name__", "=", "http_requests_total"),
        ("code", "=~", "5.."),
        ("method", "!=", "GET"),
    ]
    assert node.offset == 300
    assert node.matchers[1].matches("503") and not node.matchers[1].matches("5031")


def test_range_selector_and_offset_in_either_place() -> None:
    node = parse("rate(x[5m] offset 1h)")
    assert isinstance(node, Call)
    arg = node.args[0]
    assert isinstance(arg, MatrixSelector) and arg.range == 300 and arg.vector.offset == 3600
    assert parse("x[1m] offset -30s").type is ValueType.MATRIX


def test_grouping_before_or_after_the_argument() -> None:
    before, after = parse("sum by (a, b) (x)"), parse("sum(x) by (a, b)")
    assert isinstance(before, Aggregate) and isinstance(after, Aggregate)
    assert before.grouping == after.grouping == ("a", "b")
    top = parse("topk without (a) (3, x)")
    assert isinstance(top, Aggregate) and top.without and isinstance(top.param, NumberLiteral)


def test_keywords_are_case_insensitive_and_names_are_not_keywords() -> None:
    node = parse("SUM BY (job) (x) AND on(job) y")
    assert isinstance(node, Binary) and node.op == "and" and node.matching.on
    assert isinstance(parse("offset{step='1s'}"), VectorSelector)
    assert isinstance(parse("sum"), VectorSelector)


def test_quoted_metric_name_inside_braces() -> None:
    node = parse('{"my.metric", zone="eu"}')
    assert isinstance(node, VectorSelector) and node.name == "my.metric"


@pytest.mark.parametrize(
    "text",
    [
        'sum by (namespace) (rate(x{a=~"b|c"}[5m]))',
        "histogram_quantile(0.9, sum by (le) (rate(h_bucket[5m])))",
        "a / on(b, c) d > bool 1",
        "a - ignoring(x) b",
        "topk(3, x) or bottomk(2, y)",
        "-x offset 1h30m",
        'count_over_time(x[1d] offset 1w) unless {__name__=~"y.*"}',
        "round(x, 0.5) + clamp(y, 0, 1) * time()",
    ],
)
def test_printing_round_trips(text: str) -> None:
    node = parse(text)
    again = parse(str(node))
    assert str(again) == str(node)
    assert shape(again) == shape(node)


@pytest.mark.parametrize(
    ("text", "column", "fragment"),
    [
        ("", 1, "no expression found in input"),
        ("sum(", 4, "unclosed left parenthesis"),
        ("sum(x", 4, "unclosed left parenthesis"),
        ("rate(x[5m]", 5, "unclosed left parenthesis"),
        ("(1 + 2", 1, "unclosed left parenthesis"),
        ("1 + 2)", 6, "unexpected right parenthesis ')'"),
        ("*x", 1, "unexpected <op:*>"),
        ("rate(x)", 6, 'expected type range vector in call to function "rate", got instant vector'),
        ("abs(x[5m])", 5, 'expected type instant vector in call to function "abs", got range vector'),
        ("rate(x[5m], 1)", 1, 'expected 1 argument(s) in call to "rate", got 2'),
        ("round()", 1, 'expected at least 1 argument(s) in call to "round", got 0'),
        ("nope(x)", 1, 'unknown function with name "nope"'),
        ("label_replace(x, 'a', 'b', 'c', 'd')", 1, 'function "label_replace" is not supported by promscope'),
        ("1 > 2", 3, "comparisons between scalars must use BOOL modifier"),
        ("x + bool 1", 5, "bool modifier can only be used on comparison operators"),
        ("1 and x", 3, 'set operator "and" not allowed in binary scalar expression'),
        ("x + on(a) 1", 3, "vector matching only allowed between instant vectors"),
        ("x[5m] + 1", 1, "binary expression must contain only scalar and instant vector types"),
        (
            "-x[5m]",
            1,
            "unary expression only allowed on expressions of type scalar or instant vector, "
            'got "range vector"',
        ),
        ("sum(x[5m])", 5, "expected type instant vector in aggregation expression, got range vector"),
        ("topk(x, y)", 6, "expected type scalar in aggregation parameter, got instant vector"),
        ("sum(x, y)", 1, "wrong number of arguments for aggregate expression provided, expected 1, got 2"),
        ("topk(x)", 1, "wrong number of arguments for aggregate expression provided, expected 2, got 1"),
        ('{a=""}', 1, "vector selector must contain at least one non-empty matcher"),
        ('{a=~".*"}', 1, "vector selector must contain at least one non-empty matcher"),
        ('foo{__name__="bar"}', 1, 'metric name must not be set twice: "foo" or "bar"'),
        ('x{a~"b"}', 4, "unexpected character"),
        ('x{a="b" c="d"}', 9, 'in label matching, expected "," or "}"'),
        ("x{a=b}", 5, "in label matching, expected string"),
        ('x{a=~"("}', 7, "invalid regular expression"),
        ("1 offset 5m", 1, "offset modifier must be preceded by an instant vector selector"),
        ("x offset 1m offset 2m", 1, "offset may not be set multiple times"),
        ("x offset 5", 10, "in offset, expected duration"),
        ("(x)[5m]", 1, "ranges only allowed for vector selectors"),
        ("x[0s]", 3, "range must be greater than 0"),
        ("x[5m:1m]", 2, "subqueries are not supported by promscope"),
        ("x @ 100", 3, "the @ modifier is not supported by promscope"),
        ("a + on(b) group_left c", 11, "group_left (many-to-one matching) is not supported by promscope"),
        ("a + on(b) ignoring(c) d", 11, "unexpected <ignoring>"),
        ("a atan2 b", 3, "atan2 operator is not supported"),
        ("foo bar", 5, 'unexpected identifier "bar"'),
        ("x[5]", 3, ""),
    ],
)
def test_errors_have_a_column_and_upstream_words(text: str, column: int, fragment: str) -> None:
    if text == "x[5]":  # a bare number of seconds is accepted as a range, as Prometheus 3 does
        node = parse(text)
        assert isinstance(node, MatrixSelector) and node.range == 5
        return
    with pytest.raises(QueryError) as caught:
        parse(text)
    error = caught.value
    assert fragment in error.reason, error.message
    assert error.column == column, error.message
    assert error.message == f"1:{column}: parse error: {error.reason}"


def test_a_parse_error_is_a_promscope_error_with_a_hint() -> None:
    from promscope.errors import PromscopeError

    with pytest.raises(PromscopeError) as caught:
        parse("sum(")
    assert caught.value.hint
